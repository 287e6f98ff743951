// RM3 query expansion (Lavrenko & Croft, SIGIR 2001; Abdul-Jaleel et al.,
// TREC 2004), exactly as Anserini's Rm3Reranker computes it.
//
// For one query with feedback documents d_1..d_n (the first fb_docs hits of a
// first-stage run, -1 entries skipped) and their retrieval scores s_i:
//   1. doc vector v_i: tf of each term of d_i that passes term_filter(ascii
//      only, max_df_ratio; without filter_terms the df test alone), pruned
//      to its fb_terms largest tfs;
//   2. relevance model rm(t) = sum_i v_i(t) / |v_i|_1 * s_i over docs with
//      |v_i|_1 > 0.001 (float32, docs in rank order), pruned to fb_terms
//      terms, then scaled to unit L1 norm;
//   3. query vector q(t) = count of t among the query tokens / number of
//      tokens (unit L1 norm);
//   4. expanded(t) = w * q(t) + (1 - w) * rm(t), w = original_weight.
// Terms whose final weight is not > 0 are dropped (they add nothing to a
// BM25 score; Lucene would still match documents on them with boost 0).
// Ties in pruning go to the lower term id (Anserini: hash order).
//
// Complexity per query: O(sum of feedback doc lengths * log + vocab union).
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"
#include "prf/feature_vector.h"
#include "prf/forward_index.h"

namespace ragkernels::prf {

struct Rm3Params {
  int64_t fb_docs = 10;          // >= 1
  int64_t fb_terms = 10;         // >= 1
  double original_weight = 0.5;  // in [0, 1]
  double max_df_ratio = 0.1;     // in [0, 1]: Anserini's 10 % df threshold
  bool filter_terms = true;      // the length and [a-z0-9]+ filters (pyserini's filter_terms)
};

// Throws ValueError naming the bad parameter.
void check_rm3_params(const Rm3Params& params);

// Checks a first-stage run against an index of num_docs documents: docs and
// scores of one shape, ids in [-1, num_docs), finite scores where ids >= 0.
void check_feedback_run(const char* op, ConstView2<int64_t> docs, ConstView2<float> scores, uint64_t num_docs,
                        size_t num_queries);

// queries[q]: term ids of query q's tokens (see query_term_ids); docs/scores:
// (n_queries, depth) first-stage run, best first, -1 pads (any depth: only
// the first fb_docs columns are read). Returns one expanded query per row,
// sorted by weight (ties: lower term id). Parallel over queries.
std::vector<FeatureVector> rm3(const ForwardIndex& forward, const std::vector<std::vector<int64_t>>& queries,
                               ConstView2<int64_t> docs, ConstView2<float> scores, const Rm3Params& params);

}  // namespace ragkernels::prf
