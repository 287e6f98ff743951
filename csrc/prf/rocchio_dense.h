// Vector pseudo-relevance feedback for dense retrieval: Rocchio over
// embeddings (Li et al., "Pseudo Relevance Feedback with Deep Language
// Models and Dense Retrievers: Successes and Pitfalls", TOIS 2023; the
// "Rocchio" variant of pyserini's vector PRF, without negative feedback).
//
//   q'_i = alpha * q_i + beta * mean_{j < fb_docs, ids(i, j) >= 0} docs[ids(i, j)]
//
// then, with normalize, q'_i / |q'_i|_2 (a zero vector stays zero). A query
// with no feedback doc (a row of -1) gets alpha * q_i. Sums and the norm are
// taken in float64, each output rounded once to float32. A repeated id counts
// as often as it appears (it is the caller's run).
//
// Shapes: queries (n, dim), docs (n_docs, dim), ids (n, depth) int64 with -1
// padding (e.g. from a dense index search), out (n, dim). Any strides.
// Complexity O(n * fb_docs * dim), parallel over queries; deterministic.
#pragma once

#include <cstdint>

#include "core/array_view.h"

namespace ragkernels::prf {

struct RocchioDenseParams {
  int64_t fb_docs = 5;   // >= 1: the first fb_docs columns of ids are read
  double alpha = 0.4;    // >= 0, finite
  double beta = 0.6;     // >= 0, finite
  bool normalize = true;
};

// Throws ValueError for shapes that disagree, bad parameters, ids outside
// [-1, n_docs), or a non-finite value in a query or in a feedback doc it uses.
void rocchio_dense(ConstView2<float> queries, ConstView2<float> docs, ConstView2<int64_t> ids,
                   const RocchioDenseParams& params, View2<float> out);

}  // namespace ragkernels::prf
