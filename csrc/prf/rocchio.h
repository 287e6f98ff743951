// Rocchio query expansion over a BM25 index (Rocchio, 1971), exactly as
// Anserini's RocchioReranker computes it (positive feedback only, its
// default: useNegative = false, so gamma plays no part).
//
// For one query with feedback documents d_1..d_n (the first fb_docs hits of
// a first-stage run, -1 entries skipped):
//   1. doc vector v_i: tf of each term of d_i that passes term_filter (length
//      2..20, df / num_docs <= max_df_ratio; unlike RM3, any characters);
//   2. mean(t) = (sum_i v_i(t) / |v_i|_2 over docs with |v_i|_2 > 0.001) / n,
//      pruned to its fb_terms largest weights, scaled to unit L2 norm;
//   3. query vector q(t) = count of t among the query tokens, unit L2 norm;
//   4. expanded(t) = alpha * q(t) + beta * mean(t), kept where > 0.
// Why tf vectors (and not BM25 or tf-idf weights): they are Anserini's, so
// results compare with its published Rocchio runs, and the second-stage BM25
// search weighs every expansion term by its idf anyway; the df filter keeps
// frequent terms out. Ties in pruning go to the lower term id.
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"
#include "prf/feature_vector.h"
#include "prf/forward_index.h"

namespace ragkernels::prf {

struct RocchioParams {
  int64_t fb_docs = 10;       // >= 1 (Anserini's topFbDocs)
  int64_t fb_terms = 10;      // >= 1 (topFbTerms)
  double alpha = 1.0;         // >= 0, finite
  double beta = 0.75;         // >= 0, finite
  double max_df_ratio = 0.1;  // in [0, 1]
};

void check_rocchio_params(const RocchioParams& params);  // ValueError naming the parameter

// As rm3(): queries[q] are token term ids, docs (n_queries, depth) a
// first-stage run (scores are not used by Rocchio). Parallel over queries.
std::vector<FeatureVector> rocchio(const ForwardIndex& forward, const std::vector<std::vector<int64_t>>& queries,
                                   ConstView2<int64_t> docs, const RocchioParams& params);

}  // namespace ragkernels::prf
