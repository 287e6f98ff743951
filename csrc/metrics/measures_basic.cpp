// Counting and precision-style measures. Each function mirrors trec_eval's
// m_<name>.c (cited), same arithmetic in the same order; see measure_impl.h.
#include <algorithm>
#include <cmath>

#include "metrics/measure_impl.h"

namespace ragkernels {
namespace metrics {
namespace detail {
namespace {

constexpr double kMinGeoMean = 0.00001;  // MIN_GEO_MEAN, trec_eval.h

inline bool is_rel(const QueryData& q, int64_t i) { return q.rel[i] >= q.relevance_level; }

// Sum of rel_so_far / rank over relevant retrieved docs (the AP numerator).
double ap_sum(const QueryData& q, int64_t* rel_so_far) {
  double sum = 0.0;
  int64_t k = 0;
  for (int64_t i = 0; i < q.num_ret; ++i) {
    if (is_rel(q, i)) {
      ++k;
      sum += static_cast<double>(k) / static_cast<double>(i + 1);
    }
  }
  *rel_so_far = k;
  return sum;
}

// The loop shared by P, recall, success, unj, relative_P (m_P.c and kin):
// at_cut(i, count) is called for each cutoff reached at rank i (count = hits
// among the first i docs), missing(cut, count) for cutoffs beyond num_ret.
template <typename Hit, typename AtCut, typename Missing>
void cutoff_loop(const QueryData& q, const MeasureSpec& s, double* out, Hit hit, AtCut at_cut,
                 Missing missing) {
  const auto& cuts = s.long_cutoffs;
  const int64_t n = static_cast<int64_t>(cuts.size());
  int64_t ci = 0, count = 0;
  for (int64_t i = 0; i < q.num_ret && ci < n; ++i) {
    if (i == cuts[ci]) {
      out[ci] = at_cut(i, count);
      if (++ci == n) break;
    }
    if (hit(i)) ++count;
  }
  for (; ci < n; ++ci) out[ci] = missing(cuts[ci], count);
}

}  // namespace

std::string relstring(const QueryData& q, int64_t len) {
  len = std::min(len, q.num_ret);
  std::string s(static_cast<size_t>(std::max<int64_t>(len, 0)), ' ');
  for (int64_t i = 0; i < len; ++i) {
    const int64_t r = q.rel[i];
    s[i] = r > 9 ? '>' : r >= 0 ? static_cast<char>('0' + r) : r == -1 ? '-' : r == -2 ? '.' : '<';
  }
  return s;
}

void calc_num_q(const QueryData&, const MeasureSpec&, double* out) { out[0] = 1; }
void calc_num_ret(const QueryData& q, const MeasureSpec&, double* out) { out[0] = static_cast<double>(q.num_ret); }
void calc_num_rel(const QueryData& q, const MeasureSpec&, double* out) { out[0] = static_cast<double>(q.num_rel); }
void calc_num_rel_ret(const QueryData& q, const MeasureSpec&, double* out) {
  out[0] = static_cast<double>(q.num_rel_ret);
}

// m_map.c
void calc_map(const QueryData& q, const MeasureSpec&, double* out) {
  int64_t k;
  const double sum = ap_sum(q, &k);
  if (k) out[0] = sum / static_cast<double>(q.num_rel);
}

// m_gm_map.c: the per-query value is log(max(AP, 1e-5)); the mean is geometric.
void calc_gm_map(const QueryData& q, const MeasureSpec&, double* out) {
  int64_t k;
  double sum = ap_sum(q, &k);
  if (k) sum = sum / static_cast<double>(q.num_rel);
  out[0] = std::log(std::max(sum, kMinGeoMean));
}

// m_Rprec.c
void calc_Rprec(const QueryData& q, const MeasureSpec&, double* out) {
  const int64_t look = std::min(q.num_ret, q.num_rel);
  if (look == 0) return;
  int64_t k = 0;
  for (int64_t i = 0; i < look; ++i) k += is_rel(q, i);
  out[0] = static_cast<double>(k) / static_cast<double>(q.num_rel);
}

// m_recip_rank.c
void calc_recip_rank(const QueryData& q, const MeasureSpec&, double* out) {
  for (int64_t i = 0; i < q.num_ret; ++i) {
    if (is_rel(q, i)) {
      out[0] = 1.0 / static_cast<double>(i + 1);
      return;
    }
  }
}

// m_P.c: missing docs past num_ret count as nonrelevant.
void calc_P(const QueryData& q, const MeasureSpec& s, double* out) {
  cutoff_loop(q, s, out, [&](int64_t i) { return is_rel(q, i); },
              [](int64_t i, int64_t c) { return double(c) / double(i); },
              [](int64_t cut, int64_t c) { return double(c) / double(cut); });
}

// m_recall.c
void calc_recall(const QueryData& q, const MeasureSpec& s, double* out) {
  if (q.num_rel == 0) return;
  const double r = static_cast<double>(q.num_rel);
  cutoff_loop(q, s, out, [&](int64_t i) { return is_rel(q, i); },
              [r](int64_t, int64_t c) { return double(c) / r; },
              [r](int64_t, int64_t c) { return double(c) / r; });
}

// m_map_cut.c: AP over the first `cut` docs, still divided by num_rel.
void calc_map_cut(const QueryData& q, const MeasureSpec& s, double* out) {
  if (q.num_rel == 0) return;
  const auto& cuts = s.long_cutoffs;
  const int64_t n = static_cast<int64_t>(cuts.size());
  int64_t ci = 0, k = 0;
  double sum = 0.0;
  for (int64_t i = 0; i < q.num_ret; ++i) {
    if (i == cuts[ci]) {
      out[ci] = sum / static_cast<double>(q.num_rel);
      if (++ci == n) break;
    }
    if (is_rel(q, i)) {
      ++k;
      sum += static_cast<double>(k) / static_cast<double>(i + 1);
    }
  }
  for (; ci < n; ++ci) out[ci] = sum / static_cast<double>(q.num_rel);
}

// m_rel_P.c: precision relative to the best possible at that cutoff.
void calc_relative_P(const QueryData& q, const MeasureSpec& s, double* out) {
  if (q.num_rel == 0) return;
  const int64_t R = q.num_rel;
  auto f = [R](int64_t i, int64_t c) { return double(c) / double(i > R ? R : i); };
  cutoff_loop(q, s, out, [&](int64_t i) { return is_rel(q, i); }, f, f);
}

// m_success.c
void calc_success(const QueryData& q, const MeasureSpec& s, double* out) {
  auto f = [](int64_t, int64_t c) { return c ? 1.0 : 0.0; };
  cutoff_loop(q, s, out, [&](int64_t i) { return is_rel(q, i); }, f, f);
}

// m_unjudged.c: fraction of the first `cut` that is not judged (>= 0).
void calc_unj(const QueryData& q, const MeasureSpec& s, double* out) {
  cutoff_loop(q, s, out, [&](int64_t i) { return q.rel[i] == -1 || q.rel[i] == -2; },
              [](int64_t i, int64_t c) { return double(c) / double(i); },
              [](int64_t cut, int64_t c) { return double(c) / double(cut); });
}

// Judged@k as ir_measures (JudgedProvider) defines it: among the top
// min(k, num_ret) docs, the fraction that appear in the qrels at all (any
// value, negative included). ir_measures ranks ties by docno ASCENDING
// (sorted by (-score, docno)), the reverse of trec_eval; within the tie
// group straddling position k it therefore takes the group's last members
// in our order. Divides by min(k, num_ret); 0 when nothing was retrieved.
void calc_judged(const QueryData& q, const MeasureSpec& s, double* out) {
  auto same = [&](int64_t a, int64_t b) {
    const double x = q.score[a], y = q.score[b];
    return x == y || (std::isnan(x) && std::isnan(y));
  };
  auto judged = [&](int64_t i) { return q.rel[i] != -1 ? 1 : 0; };
  for (size_t c = 0; c < s.long_cutoffs.size(); ++c) {
    const int64_t k = std::min(s.long_cutoffs[c], q.num_ret);
    if (k <= 0) continue;
    int64_t g0 = k - 1, g1 = k;  // tie group around the last position taken
    while (g0 > 0 && same(g0 - 1, k - 1)) --g0;
    while (g1 < q.num_ret && same(g1, k - 1)) ++g1;
    int64_t count = 0;
    for (int64_t i = 0; i < g0; ++i) count += judged(i);
    for (int64_t i = g1 - (k - g0); i < g1; ++i) count += judged(i);
    out[c] = static_cast<double>(count) / static_cast<double>(k);
  }
}

// m_set_P.c
void calc_set_P(const QueryData& q, const MeasureSpec&, double* out) {
  if (q.num_ret) out[0] = double(q.num_rel_ret) / double(q.num_ret);
}

// m_set_rel_P.c
void calc_set_relative_P(const QueryData& q, const MeasureSpec&, double* out) {
  if (q.num_ret && q.num_rel) out[0] = double(q.num_rel_ret) / double(std::min(q.num_ret, q.num_rel));
}

// m_set_recall.c
void calc_set_recall(const QueryData& q, const MeasureSpec&, double* out) {
  if (q.num_rel) out[0] = double(q.num_rel_ret) / double(q.num_rel);
}

// m_set_map.c
void calc_set_map(const QueryData& q, const MeasureSpec&, double* out) {
  if (q.num_ret && q.num_rel)
    out[0] = (double(q.num_rel_ret) * double(q.num_rel_ret)) / (double(q.num_ret) * double(q.num_rel));
}

// m_set_F.c: van Rijsbergen's F with beta^2 = params[0] (default 1).
void calc_set_F(const QueryData& q, const MeasureSpec& s, double* out) {
  if (!q.num_rel_ret) return;
  const double P = double(q.num_rel_ret) / double(q.num_ret);
  const double R = double(q.num_rel_ret) / double(q.num_rel);
  const double x = s.doubles[0];
  out[0] = (x + 1.0) * P * R / (x * P + R);
}

// m_num_nonrel_judged_ret.c
void calc_num_nonrel_judged_ret(const QueryData& q, const MeasureSpec&, double* out) {
  out[0] = static_cast<double>(q.num_ret) - q.num_nonpool - q.num_unjudged_in_pool - q.num_rel_ret;
}

// m_utility.c: a*rel_ret + b*nonrel_ret + c*rel_nonret + d*nonrel_nonret.
void calc_utility(const QueryData& q, const MeasureSpec& s, double* out) {
  const double* p = s.doubles.data();
  out[0] = p[0] * q.num_rel_ret + p[1] * (q.num_ret - q.num_rel_ret) +
           p[2] * (q.num_rel - q.num_rel_ret) +
           p[3] * (q.num_docs_in_coll + q.num_rel_ret - q.num_ret - q.num_rel);
}

// m_yaap.c
void calc_yaap(const QueryData& q, const MeasureSpec&, double* out) {
  int64_t k;
  const double sum = ap_sum(q, &k);
  out[0] = std::log((1.0 + sum) / (1.0 + static_cast<double>(q.num_rel) - sum));
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
