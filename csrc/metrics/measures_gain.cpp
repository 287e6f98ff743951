// Graded-gain measures: nDCG family (Järvelin & Kekäläinen, TOIS 2002, with
// trec_eval's linear gain rel / log2(rank + 1)), G, rbp. Each mirrors
// trec_eval's m_<name>.c and gain_init.c; see measure_impl.h.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "metrics/measure_impl.h"

namespace ragkernels {
namespace metrics {
namespace detail {
namespace {

struct RelGain {
  int64_t rel_level;
  int64_t num_at_level;
  double gain;
};

// gain_init.c: valid_int.
bool valid_int(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

// glibc's qsort is a top-down merge sort (msort.c); trec_eval sorts gains
// with comp_rel_gain, which returns (int)(g1 - g2), so gains closer than 1
// compare equal and the order is not transitive. Replaying the same merge
// sort keeps the exact order trec_eval gets on glibc.
void glibc_msort(RelGain* b, size_t n, RelGain* tmp) {
  if (n <= 1) return;
  size_t n1 = n / 2, n2 = n - n1;
  RelGain *b1 = b, *b2 = b + n1;
  glibc_msort(b1, n1, tmp);
  glibc_msort(b2, n2, tmp);
  RelGain* t = tmp;
  while (n1 > 0 && n2 > 0) {
    if (b1->gain - b2->gain < 1.0) {  // (int)(g1 - g2) <= 0
      *t++ = *b1++;
      --n1;
    } else {
      *t++ = *b2++;
      --n2;
    }
  }
  std::copy(b1, b1 + n1, t);
  std::copy(tmp, tmp + (n - n2), b);
}

constexpr int64_t kMaxDenseLevels = int64_t(1) << 20;

// gain_init.c setup_gains: explicit "level=gain" pairs, then every level
// 0 .. num_rel_levels-1 with gain = level unless given; sorted by gain.
std::vector<RelGain> setup_gains(const QueryData& q, const MeasureSpec& s) {
  RK_CHECK_ARG(q.num_rel_levels <= kMaxDenseLevels, s.names[0],
               ": relevance levels up to ", q.num_rel_levels - 1, " exceed the supported ",
               kMaxDenseLevels - 1);
  std::vector<RelGain> g;
  for (const auto& kv : s.pairs)
    if (valid_int(kv.first)) g.push_back({std::atol(kv.first.c_str()), 0, kv.second});
  const size_t num_params = g.size();
  int64_t li = 0;
  for (int64_t i = 0; i < q.num_rel_levels; ++i) {
    while (li < q.num_levels && q.levels[li].first < i) ++li;
    const int64_t count = li < q.num_levels && q.levels[li].first == i ? q.levels[li].second : 0;
    size_t j = 0;
    while (j < num_params && g[j].rel_level != i) ++j;
    if (j < num_params)
      g[j].num_at_level = count;
    else
      g.push_back({i, count, static_cast<double>(i)});
  }
  std::vector<RelGain> tmp(g.size());
  glibc_msort(g.data(), g.size(), tmp.data());
  return g;
}

double get_gain(int64_t rel, const std::vector<RelGain>& g) {
  for (const RelGain& x : g)
    if (x.rel_level == rel) return x.gain;
  return 0.0;
}

// The ideal ranking, walked from the highest gain down (one doc per call).
struct IdealWalk {
  const std::vector<RelGain>& g;
  int64_t cur;
  int64_t num_at_level = 0;
  double gain;
  explicit IdealWalk(const std::vector<RelGain>& gains)
      : g(gains), cur(static_cast<int64_t>(gains.size()) - 1), gain(cur >= 0 ? gains[cur].gain : 0.0) {}
  void step() {
    ++num_at_level;
    while (cur >= 0 && num_at_level > g[cur].num_at_level) {
      num_at_level = 1;
      --cur;
      gain = cur >= 0 ? g[cur].gain : 0.0;
    }
  }
};

struct Dcg {
  double results = 0.0, ideal = 0.0;
};

// m_ndcg.c: DCG of the ranking and of the ideal ranking (which may be longer).
Dcg dcg_pair(const QueryData& q, const MeasureSpec& s) {
  const std::vector<RelGain> g = setup_gains(q, s);
  IdealWalk w(g);
  Dcg d;
  int64_t i = 0;
  for (; i < q.num_ret && w.gain > 0.0; ++i) {
    const double rg = get_gain(q.rel[i], g);
    if (rg != 0) d.results += rg / std::log2(static_cast<double>(i + 2));
    w.step();
    if (w.gain > 0.0) d.ideal += w.gain / std::log2(static_cast<double>(i + 2));
  }
  for (; i < q.num_ret; ++i) {
    const double rg = get_gain(q.rel[i], g);
    if (rg != 0) d.results += rg / std::log2(static_cast<double>(i + 2));
  }
  for (; w.gain > 0.0; ++i) {
    w.step();
    if (w.gain > 0.0) d.ideal += w.gain / std::log2(static_cast<double>(i + 2));
  }
  return d;
}

}  // namespace

void calc_dcg(const QueryData& q, const MeasureSpec& s, double* out) { out[0] = dcg_pair(q, s).results; }

void calc_ideal_dcg(const QueryData& q, const MeasureSpec& s, double* out) { out[0] = dcg_pair(q, s).ideal; }

void calc_ndcg(const QueryData& q, const MeasureSpec& s, double* out) {
  const Dcg d = dcg_pair(q, s);
  if (d.ideal > 0.0) out[0] = d.results / d.ideal;
}

// m_ndcg_rel.c: nDCG averaged over the ranks of the relevant docs.
void calc_ndcg_rel(const QueryData& q, const MeasureSpec& s, double* out) {
  const std::vector<RelGain> g = setup_gains(q, s);
  IdealWalk w(g);
  double results_dcg = 0.0, ideal_dcg = 0.0, sum = 0.0;
  int64_t num_rel_ret = 0, num_rel = 0, i = 0;
  for (; i < q.num_ret && w.gain > 0.0; ++i) {
    const double rg = get_gain(q.rel[i], g);
    if (rg != 0) results_dcg += rg / std::log2(static_cast<double>(i + 2));
    w.step();
    if (w.gain > 0.0) {
      ++num_rel;
      ideal_dcg += w.gain / std::log2(static_cast<double>(i + 2));
    }
    if (rg > 0) {
      sum += results_dcg / ideal_dcg;
      ++num_rel_ret;
    }
  }
  for (; i < q.num_ret; ++i) {
    const double rg = get_gain(q.rel[i], g);
    if (rg != 0) results_dcg += rg / std::log2(static_cast<double>(i + 2));
    if (rg > 0) {
      sum += results_dcg / ideal_dcg;
      ++num_rel_ret;
    }
  }
  for (; w.gain > 0.0; ++i) {
    w.step();
    if (w.gain > 0.0) {
      ++num_rel;
      ideal_dcg += w.gain / std::log2(static_cast<double>(i + 2));
    }
  }
  sum += static_cast<double>(num_rel - num_rel_ret) * results_dcg / ideal_dcg;
  if (sum > 0.0) out[0] = sum / num_rel;
}

// m_Rndcg.c: nDCG averaged at the ranks where the ideal gain drops a level.
void calc_Rndcg(const QueryData& q, const MeasureSpec& s, double* out) {
  const std::vector<RelGain> g = setup_gains(q, s);
  if (q.num_rel == 0) return;
  IdealWalk w(g);
  double results_dcg = 0.0, ideal_dcg = 0.0, sum = 0.0, old_gain = w.gain;
  int64_t changes = 0, i = 0;
  auto at_boundary = [&] {
    if (old_gain != w.gain) {
      if (ideal_dcg > 0.0) {
        sum += results_dcg / ideal_dcg;
        ++changes;
      }
      old_gain = w.gain;
    }
  };
  for (; i < q.num_ret && w.gain > 0.0; ++i) {
    const double rg = get_gain(q.rel[i], g);
    w.step();
    at_boundary();
    if (rg != 0) results_dcg += rg / std::log2(static_cast<double>(i + 2));
    if (w.gain > 0.0) ideal_dcg += w.gain / std::log2(static_cast<double>(i + 2));
  }
  if (i < q.num_ret) {
    for (; i < q.num_ret; ++i) {
      const double rg = get_gain(q.rel[i], g);
      if (rg != 0) results_dcg += rg / std::log2(static_cast<double>(i + 2));
    }
    if (ideal_dcg > 0.0) {
      sum += results_dcg / ideal_dcg;
      ++changes;
    }
  }
  for (; w.gain > 0.0; ++i) {
    w.step();
    at_boundary();
    if (w.gain > 0.0) ideal_dcg += w.gain / std::log2(static_cast<double>(i + 2));
  }
  out[0] = sum / changes;
}

// m_G.c: normalized gain with a cost model (each doc costs at least 1).
void calc_G(const QueryData& q, const MeasureSpec& s, double* out) {
  const std::vector<RelGain> g = setup_gains(q, s);
  IdealWalk w(g);
  double results_g = 0.0, sum_results = 0.0, sum_ideal = 0.0, sum_cost = 0.0;
  const double min_cost = 1.0;
  int64_t i = 0;
  for (; i < q.num_ret && w.gain > 0.0; ++i) {
    const double rg = get_gain(q.rel[i], g);
    sum_results += rg;
    w.step();
    if (w.gain > 0.0) sum_ideal += w.gain;
    if (w.gain >= min_cost)
      sum_cost += w.gain;
    else
      sum_cost += min_cost;
    if (rg != 0) results_g += rg / std::log2(static_cast<double>(2 + sum_cost - sum_results));
  }
  for (; i < q.num_ret; ++i) {
    const double rg = get_gain(q.rel[i], g);
    sum_results += rg;
    sum_cost += min_cost;
    if (rg != 0) results_g += rg / std::log2(static_cast<double>(2 + sum_cost - sum_results));
  }
  for (; w.gain > 0.0; ++i) {
    w.step();
    if (w.gain > 0.0) sum_ideal += w.gain;
  }
  if (sum_ideal > 0.0) out[0] = results_g / sum_ideal;
}

// m_ndcg_cut.c: gain = the judged value itself (levels >= 1, whatever -l
// says), ideal from the level histogram.
void calc_ndcg_cut(const QueryData& q, const MeasureSpec& s, double* out) {
  const auto& cuts = s.long_cutoffs;
  const int64_t n = static_cast<int64_t>(cuts.size());
  int64_t ci = 0;
  double sum = 0.0;
  for (int64_t i = 0; i < q.num_ret; ++i) {
    if (i == cuts[ci]) {
      out[ci] = sum;
      if (++ci == n) break;
    }
    const double gain = static_cast<double>(q.rel[i]);
    if (gain > 0) sum += gain / std::log2(static_cast<double>(i + 2));
  }
  for (; ci < n; ++ci) out[ci] = sum;
  // No level >= 0 (trec_eval reads a stale level count here): every
  // ranked gain was 0, the values stay 0.
  if (q.num_rel_levels <= 0) return;
  // Levels with no judgments are stepped over, as trec_eval's loop does one by one.
  int64_t li = q.num_levels - 1;  // index of cur_lvl in levels
  int64_t cur_lvl = q.levels[li].first, lvl_count = 0;
  double ideal = 0.0;
  ci = 0;
  for (int64_t i = 0;; ++i) {
    ++lvl_count;
    while (cur_lvl > 0 && lvl_count > q.levels[li].second) {
      --li;
      cur_lvl = li >= 0 && q.levels[li].first > 0 ? q.levels[li].first : 0;
      lvl_count = 1;
    }
    if (cur_lvl == 0) break;
    if (i == cuts[ci]) {
      if (ideal > 0.0) out[ci] /= ideal;
      if (++ci == n) break;
    }
    ideal += static_cast<double>(cur_lvl) / std::log2(static_cast<double>(i + 2));
  }
  for (; ci < n; ++ci)
    if (ideal > 0.0) out[ci] /= ideal;
}

// m_rbp.c (Moffat & Zobel, TOIS 2008), persistence p (default 0.9); gains
// outside [0, 1] are rescaled to it. trec_eval leaves min/max uninitialized;
// we take the true min and max over the gain table.
void calc_rbp(const QueryData& q, const MeasureSpec& s, double* out) {
  double p = 0.9;
  for (const auto& kv : s.pairs)
    if (kv.first == "p") p = kv.second;
  std::vector<RelGain> g = setup_gains(q, s);
  if (!g.empty()) {
    double mn = g[0].gain, mx = g[0].gain;
    for (const RelGain& x : g) mn = std::min(mn, x.gain), mx = std::max(mx, x.gain);
    if (mn < 0 || mx > 1)
      for (RelGain& x : g) x.gain = (x.gain - mn) / (mx - mn);
  }
  double sum = 0.0, cur_p = 1.0;
  for (int64_t i = 0; i < q.num_ret; ++i) {
    const double gain = get_gain(q.rel[i], g);
    if (gain != 0) sum += gain * cur_p;
    cur_p = cur_p * p;
  }
  out[0] = (1.0 - p) * sum;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
