// Internal: the measure table and the per-query input every measure reads.
//
// QueryData is trec_eval's RES_RELS (form_res_rels.c): the relevance of each
// retrieved doc in rank order, after -M truncation and -J filtering:
//   rel >= 0   judged, the qrels value
//   rel == -1  not in the qrels (RELVALUE_NONPOOL)
//   rel == -2  in the qrels with a negative value (RELVALUE_UNJUDGED)
// and the judged-level histogram of the query (levels >= 0 only).
// Every calc function writes its values (already zeroed) into out[0..k) and
// does the same arithmetic, in the same order, as trec_eval's m_*.c, so the
// doubles are bit-identical.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "metrics/measures.h"

namespace ragkernels {
namespace metrics {
namespace detail {

struct QueryData {
  const int64_t* rel = nullptr;  // num_ret values
  const double* score = nullptr;  // num_ret scores (trec_eval rank order)
  int64_t num_ret = 0;
  int64_t num_rel = 0;            // judged >= relevance_level
  int64_t num_rel_ret = 0;
  int64_t num_nonpool = 0;
  int64_t num_unjudged_in_pool = 0;
  int64_t num_rel_levels = 0;     // max judged level + 1; 0 when no level >= 0
  const std::pair<int64_t, int64_t>* levels = nullptr;  // (level, count > 0), ascending
  int64_t num_levels = 0;
  int64_t relevance_level = 1;
  int64_t num_docs_in_coll = 0;

  int64_t level_count(int64_t level) const;
};

using CalcFn = void (*)(const QueryData&, const MeasureSpec&, double* out);

enum class ParamKind { kNone, kLongCutoffs, kDoubleCutoffs, kDoubleParams, kPairParams };

// How the "all" row is formed (meas_avg.c and the custom calc_avg's).
enum class AccKind {
  kNone,     // runid, relstring: no column
  kMean,     // sum / num_q
  kSum,      // num_ret, num_rel_ret, num_nonrel_judged_ret
  kNumRel,   // sum, or with -c every judgment > 0 of the qrels (m_num_rel.c)
  kNumQ,     // number of queries averaged over
  kGeoMean,  // exp(mean of the per-query logs) (gm_map, gm_bpref)
};

struct MeasureDef {
  const char* name;
  ParamKind params;
  std::vector<int64_t> default_long;
  std::vector<double> default_double;
  AccKind acc;
  bool is_integer;
  bool per_query_printed;
  CalcFn calc;  // nullptr for runid and relstring
};

// In trec_eval's order (te_trec_measures in measures.c), judged last.
const std::vector<MeasureDef>& measure_table();

// relstring (m_relstring.c): one char per doc of the first `len`.
std::string relstring(const QueryData& q, int64_t len);

// measures_basic.cpp
void calc_num_q(const QueryData&, const MeasureSpec&, double*);
void calc_num_ret(const QueryData&, const MeasureSpec&, double*);
void calc_num_rel(const QueryData&, const MeasureSpec&, double*);
void calc_num_rel_ret(const QueryData&, const MeasureSpec&, double*);
void calc_map(const QueryData&, const MeasureSpec&, double*);
void calc_gm_map(const QueryData&, const MeasureSpec&, double*);
void calc_Rprec(const QueryData&, const MeasureSpec&, double*);
void calc_recip_rank(const QueryData&, const MeasureSpec&, double*);
void calc_P(const QueryData&, const MeasureSpec&, double*);
void calc_recall(const QueryData&, const MeasureSpec&, double*);
void calc_map_cut(const QueryData&, const MeasureSpec&, double*);
void calc_relative_P(const QueryData&, const MeasureSpec&, double*);
void calc_success(const QueryData&, const MeasureSpec&, double*);
void calc_unj(const QueryData&, const MeasureSpec&, double*);
void calc_judged(const QueryData&, const MeasureSpec&, double*);
void calc_set_P(const QueryData&, const MeasureSpec&, double*);
void calc_set_relative_P(const QueryData&, const MeasureSpec&, double*);
void calc_set_recall(const QueryData&, const MeasureSpec&, double*);
void calc_set_map(const QueryData&, const MeasureSpec&, double*);
void calc_set_F(const QueryData&, const MeasureSpec&, double*);
void calc_num_nonrel_judged_ret(const QueryData&, const MeasureSpec&, double*);
void calc_utility(const QueryData&, const MeasureSpec&, double*);
void calc_yaap(const QueryData&, const MeasureSpec&, double*);

// measures_interp.cpp
void calc_iprec_at_recall(const QueryData&, const MeasureSpec&, double*);
void calc_11pt_avg(const QueryData&, const MeasureSpec&, double*);
void calc_Rprec_mult(const QueryData&, const MeasureSpec&, double*);
void calc_bpref(const QueryData&, const MeasureSpec&, double*);
void calc_gm_bpref(const QueryData&, const MeasureSpec&, double*);
void calc_infAP(const QueryData&, const MeasureSpec&, double*);
void calc_binG(const QueryData&, const MeasureSpec&, double*);
void calc_rbp_resid(const QueryData&, const MeasureSpec&, double*);

// measures_gain.cpp
void calc_G(const QueryData&, const MeasureSpec&, double*);
void calc_dcg(const QueryData&, const MeasureSpec&, double*);
void calc_ideal_dcg(const QueryData&, const MeasureSpec&, double*);
void calc_ndcg(const QueryData&, const MeasureSpec&, double*);
void calc_ndcg_rel(const QueryData&, const MeasureSpec&, double*);
void calc_Rndcg(const QueryData&, const MeasureSpec&, double*);
void calc_ndcg_cut(const QueryData&, const MeasureSpec&, double*);
void calc_rbp(const QueryData&, const MeasureSpec&, double*);

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
