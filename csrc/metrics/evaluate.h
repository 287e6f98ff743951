// Evaluate a Run against Qrels with trec_eval 10.0 semantics (trec_eval.c,
// form_res_rels.c), parallel over queries.
//
// Which queries: those of the qrels (every qid with at least one judgment,
// whatever its values) that also appear in the run, in qid strcmp order.
// Run queries without judgments are ignored, and so are qrels queries the
// run lacks: trec_eval's documented behaviour, pytrec_eval's and 9.x's
// (the 10.0 source instead aborts with "result qid '..' not found in
// qrels", a regression of commit 9812815). With all_queries (-c), every
// qrels query is evaluated; a missing one gets trec_eval's stand-in ranking
// (one doc "ceci_nest_pas_un_docno", score 1) and then num_ret, utility
// (default params only), relstring, unj* and rbp_resid are reset to 0/""
// exactly as trec_eval does it by measure name.
//
// Per query, docs are ranked by score descending, ties by docno strcmp
// descending (see run_qrels.h); the first max_docs are kept (-M); then with
// judged_only (-J) every doc without a judgment >= 0 is dropped. A doc is
// relevant when its judgment >= relevance_level (-l); judgments < 0 count
// as "in pool, unjudged" (infAP, bpref, unj, rbp_resid, relstring '.').
// Queries whose relevant docs are all below the level (or only negative)
// are still evaluated, with num_rel = 0. A query whose judgments are all
// negative sees, in trec_eval, the level histogram left by the previous
// query with a judgment >= 0 (static buffers in form_res_rels.c); we replay
// that, so ideal_dcg and the gain-based measures agree there too (trec_eval
// itself fails when such a query is the first one evaluated).
//
// Summary ("all" row) as trec_eval: mean over the evaluated queries (with -c
// over all qrels queries); num_ret, num_rel_ret, num_nonrel_judged_ret are
// sums; num_rel is a sum, or with -c the count of judgments > 0 in the whole
// qrels (m_num_rel.c ignores -l there); gm_map and gm_bpref are
// exp(mean of log(max(v, 1e-5))), and their per-query values are those logs;
// num_q is the number of queries averaged over.
// When no query is evaluated (trec_eval exits with an error) the Evaluation
// has no rows and a summary of zeros.
//
// Deterministic: the same bits for any thread count (each query is computed
// alone; the summary sums in query order).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "metrics/measures.h"
#include "metrics/run_qrels.h"

namespace ragkernels {
namespace metrics {

struct EvalOptions {
  int64_t relevance_level = 1;                              // -l
  bool all_queries = false;                                 // -c
  int64_t max_docs = std::numeric_limits<int64_t>::max();   // -M, >= 0
  bool judged_only = false;                                 // -J
  int64_t num_docs_in_coll = 0;                             // -N (utility only)
};

struct Evaluation {
  std::vector<std::string> query_ids;      // evaluated queries, trec_eval -q order
  std::vector<std::string> measure_names;  // == MeasureSet::names()
  std::vector<double> per_query;           // row-major (query_ids.size(), measure_names.size())
  std::vector<double> summary;             // the "all" row, as trec_eval computes it
  std::vector<uint8_t> is_integer;         // per measure: trec_eval prints it with %ld
  std::vector<std::string> relstrings;     // per query, only when relstring was requested
  std::string runid;                       // Run::runid

  // What format_trec_eval needs to reproduce trec_eval's layout.
  std::vector<uint8_t> per_query_printed;  // per measure: printed by -q
  bool has_runid = false;                  // print "runid <TAB>all<TAB>..." first
  std::string relstring_name;              // "" unless requested ("relstring", "relstring_20")
  int64_t relstring_column = 0;            // -q prints relstring before this column
};

// Throws ValueError for max_docs < 0, or for a gain-based measure on a query
// whose relevance levels exceed 2**20 (trec_eval allocates one slot per level).
Evaluation evaluate(const Qrels& qrels, const Run& run, const MeasureSet& measures,
                    const EvalOptions& options = EvalOptions());

}  // namespace metrics
}  // namespace ragkernels
