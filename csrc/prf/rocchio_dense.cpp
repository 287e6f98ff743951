#include "prf/rocchio_dense.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::prf {

namespace {
bool finite_row(View1<const float> row) {
  for (int64_t c = 0; c < row.size; ++c) {
    if (!std::isfinite(row[c])) return false;
  }
  return true;
}
}  // namespace

void rocchio_dense(ConstView2<float> queries, ConstView2<float> docs, ConstView2<int64_t> ids,
                   const RocchioDenseParams& p, View2<float> out) {
  RK_CHECK_ARG(p.fb_docs >= 1, "rocchio_dense: fb_docs must be >= 1, got ", p.fb_docs);
  RK_CHECK_ARG(std::isfinite(p.alpha) && p.alpha >= 0, "rocchio_dense: alpha must be finite and >= 0, got ", p.alpha);
  RK_CHECK_ARG(std::isfinite(p.beta) && p.beta >= 0, "rocchio_dense: beta must be finite and >= 0, got ", p.beta);
  RK_CHECK_ARG(docs.cols == queries.cols, "rocchio_dense: doc_vectors must have the dimension of queries (",
               queries.cols, "), got ", docs.cols);
  RK_CHECK_ARG(ids.rows == queries.rows, "rocchio_dense: feedback_ids must have one row per query (", queries.rows,
               "), got ", ids.rows);
  RK_CHECK_ARG(out.rows == queries.rows && out.cols == queries.cols, "rocchio_dense: out has the wrong shape");
  const int64_t depth = std::min<int64_t>(ids.cols, p.fb_docs);
  for (int64_t q = 0; q < ids.rows; ++q) {
    RK_CHECK_ARG(finite_row(queries.row(q)), "rocchio_dense: queries[", q, "] has a NaN or infinite value");
    for (int64_t j = 0; j < depth; ++j) {
      const int64_t d = ids(q, j);
      RK_CHECK_ARG(d >= -1 && d < docs.rows, "rocchio_dense: feedback_ids[", q, ", ", j, "] = ", d,
                   " is not a row of doc_vectors (0..", docs.rows, ") nor -1");
      RK_CHECK_ARG(d < 0 || finite_row(docs.row(d)), "rocchio_dense: doc_vectors[", d, "] (feedback of query ", q,
                   ") has a NaN or infinite value");
    }
  }
  const int64_t dim = queries.cols;
  parallel_for(0, queries.rows, [&](int64_t lo, int64_t hi) {
    std::vector<double> sum(static_cast<size_t>(dim));
    for (int64_t q = lo; q < hi; ++q) {
      std::fill(sum.begin(), sum.end(), 0.0);
      int64_t n = 0;
      for (int64_t j = 0; j < depth; ++j) {
        const int64_t d = ids(q, j);
        if (d < 0) continue;
        ++n;
        for (int64_t c = 0; c < dim; ++c) sum[c] += docs(d, c);
      }
      const double mean_weight = n > 0 ? p.beta / static_cast<double>(n) : 0.0;
      double squares = 0;
      for (int64_t c = 0; c < dim; ++c) {
        sum[c] = p.alpha * queries(q, c) + mean_weight * sum[c];
        squares += sum[c] * sum[c];
      }
      const double scale = p.normalize && squares > 0 ? 1.0 / std::sqrt(squares) : 1.0;
      for (int64_t c = 0; c < dim; ++c) out(q, c) = static_cast<float>(sum[c] * scale);
    }
  }, 16);
}

}  // namespace ragkernels::prf
