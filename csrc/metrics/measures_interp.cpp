// Interpolated precision, R-multiples, and the measures that look only at
// judged docs (bpref, infAP) or at gaps (binG, rbp_resid). Each mirrors
// trec_eval's m_<name>.c (cited); see measure_impl.h.
#include <algorithm>
#include <cmath>
#include <vector>

#include "metrics/measure_impl.h"

namespace ragkernels {
namespace metrics {
namespace detail {
namespace {

constexpr double kMinGeoMean = 0.00001;   // MIN_GEO_MEAN
constexpr double kInfapEpsilon = 0.00001;  // INFAP_EPSILON

// Walks the ranking bottom-up keeping the interpolated precision
// (max precision at any rank >= here) and calls emit(cut_index, int_prec)
// for each recall cutoff, as m_iprec_at_recall.c and m_11pt_avg.c do.
// Cutoffs are numbers of relevant docs, lround(fraction * num_rel) (v10;
// v9 used (long)(x + 0.9)).
template <typename Emit>
void interpolated(const QueryData& q, const std::vector<double>& fractions, Emit emit) {
  const int64_t n = static_cast<int64_t>(fractions.size());
  std::vector<int64_t> cutoffs(n);
  for (int64_t i = 0; i < n; ++i) cutoffs[i] = std::lround(fractions[i] * q.num_rel);
  int64_t cur = n - 1;
  while (cur >= 0 && cutoffs[cur] > q.num_rel_ret) --cur;
  double precis = static_cast<double>(q.num_rel_ret) / static_cast<double>(q.num_ret);
  double int_precis = precis;
  int64_t rel_so_far = q.num_rel_ret;
  for (int64_t i = q.num_ret; i > 0 && rel_so_far > 0; --i) {
    precis = static_cast<double>(rel_so_far) / static_cast<double>(i);
    if (int_precis < precis) int_precis = precis;
    if (q.rel[i - 1] >= q.relevance_level) {
      while (cur >= 0 && rel_so_far == cutoffs[cur]) emit(cur--, int_precis);
      --rel_so_far;
    }
  }
  while (cur >= 0) emit(cur--, int_precis);
}

// Shared by bpref and gm_bpref (m_bpref.c): over judged docs only, each
// relevant doc scores 1 - (nonrel above it, capped at R) / min(num_nonrel, R).
double bpref_value(const QueryData& q) {
  int64_t num_nonrel = 0;
  for (int64_t j = 0; j < q.num_levels && q.levels[j].first < q.relevance_level; ++j)
    num_nonrel += q.levels[j].second;
  int64_t nonrel_so_far = 0;
  double bpref = 0.0;
  for (int64_t j = 0; j < q.num_ret; ++j) {
    const int64_t r = q.rel[j];
    if (r == -1 || r == -2) continue;  // not in pool / in pool but unjudged
    if (r >= 0 && r < q.relevance_level) {
      ++nonrel_so_far;
    } else if (nonrel_so_far > 0) {
      bpref += 1.0 - (static_cast<double>(std::min(nonrel_so_far, q.num_rel)) /
                      static_cast<double>(std::min(num_nonrel, q.num_rel)));
    } else {
      bpref += 1.0;
    }
  }
  if (q.num_rel) bpref /= q.num_rel;
  return bpref;
}

double rbp_p(const MeasureSpec& s) {
  double p = 0.9;  // m_rbp.c default; the last "p=" pair wins
  for (const auto& kv : s.pairs)
    if (kv.first == "p") p = kv.second;
  return p;
}

}  // namespace

// m_iprec_at_recall.c
void calc_iprec_at_recall(const QueryData& q, const MeasureSpec& s, double* out) {
  interpolated(q, s.doubles, [out](int64_t c, double v) { out[c] = v; });
}

// m_11pt_avg.c: mean interpolated precision over the recall points.
void calc_11pt_avg(const QueryData& q, const MeasureSpec& s, double* out) {
  double sum = 0.0;
  interpolated(q, s.doubles, [&sum](int64_t, double v) { sum += v; });
  out[0] = sum / static_cast<double>(s.doubles.size());
}

// m_Rprec_mult.c: precision at rank (long)(m * R + 0.9); ranks past num_ret
// count missing docs as nonrelevant.
void calc_Rprec_mult(const QueryData& q, const MeasureSpec& s, double* out) {
  const int64_t n = static_cast<int64_t>(s.doubles.size());
  std::vector<int64_t> cutoffs(n);
  for (int64_t i = 0; i < n; ++i) cutoffs[i] = static_cast<int64_t>(s.doubles[i] * q.num_rel + 0.9);
  int64_t cur = n - 1;
  while (cur >= 0 && cutoffs[cur] > q.num_ret) {
    out[cur] = static_cast<double>(q.num_rel_ret) / static_cast<double>(cutoffs[cur]);
    --cur;
  }
  int64_t rel_so_far = q.num_rel_ret;
  for (int64_t i = q.num_ret; i > 0 && rel_so_far > 0; --i) {
    const double precis = static_cast<double>(rel_so_far) / static_cast<double>(i);
    while (cur >= 0 && i == cutoffs[cur]) out[cur--] = precis;
    if (q.rel[i - 1] >= q.relevance_level) --rel_so_far;
  }
}

// m_bpref.c
void calc_bpref(const QueryData& q, const MeasureSpec&, double* out) { out[0] = bpref_value(q); }

// m_gm_bpref.c
void calc_gm_bpref(const QueryData& q, const MeasureSpec&, double* out) {
  out[0] = std::log(std::max(bpref_value(q), kMinGeoMean));
}

// m_infap.c (Yilmaz & Aslam, CIKM 2006): judged nonrelevant and pooled
// unjudged docs above each relevant doc estimate its precision.
void calc_infAP(const QueryData& q, const MeasureSpec&, double* out) {
  int64_t nonrel_so_far = 0, rel_so_far = 0, pool_unjudged_so_far = 0;
  double inf_ap = 0.0;
  for (int64_t j = 0; j < q.num_ret; ++j) {
    const int64_t r = q.rel[j];
    if (r == -1) continue;
    if (r == -2) {
      ++pool_unjudged_so_far;
      continue;
    }
    if (r >= 0 && r < q.relevance_level) {
      ++nonrel_so_far;
      continue;
    }
    ++rel_so_far;
    if (j == 0) {
      inf_ap += 1.0;
    } else {
      const double fj = static_cast<double>(j);
      inf_ap += 1.0 / (fj + 1.0) +
                (fj / (fj + 1.0)) * ((rel_so_far - 1 + nonrel_so_far + pool_unjudged_so_far) / fj) *
                    ((rel_so_far - 1 + kInfapEpsilon) /
                     (rel_so_far - 1 + nonrel_so_far + 2 * kInfapEpsilon));
    }
  }
  if (q.num_rel) inf_ap /= q.num_rel;
  out[0] = inf_ap;
}

// m_binG.c: mean over relevant docs of 1 / log2(2 + nonrelevant docs above it).
void calc_binG(const QueryData& q, const MeasureSpec&, double* out) {
  int64_t rel_so_far = 0;
  double sum = 0.0;
  for (int64_t i = 0; i < q.num_ret; ++i) {
    if (q.rel[i] >= q.relevance_level) {
      ++rel_so_far;
      sum += 1.0 / std::log2(static_cast<double>(3 + i - rel_so_far));
    }
  }
  if (rel_so_far) out[0] = sum / static_cast<double>(q.num_rel);
}

// m_rbp_resid.c (Moffat & Zobel, TOIS 2008): the RBP mass still open,
// unjudged docs taken as relevant plus everything past the ranking.
void calc_rbp_resid(const QueryData& q, const MeasureSpec& s, double* out) {
  const double p = rbp_p(s);
  int64_t unj_so_far = 0;
  double sum = 0.0, cur_p = 1.0;
  for (int64_t i = 0; i < q.num_ret; ++i) {
    if (q.rel[i] < 0) {
      ++unj_so_far;
      sum += cur_p;
    }
    cur_p = cur_p * p;
  }
  if (unj_so_far) out[0] = cur_p + (1 - p) * sum;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
