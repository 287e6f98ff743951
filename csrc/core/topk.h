// Row-wise top-k selection.
//
// For each row of `scores` (n_rows x n), writes the k best entries, best
// first, to out_ids / out_scores (n_rows x k). Order: higher score first; equal
// scores -> lower column index first; -0.0 equals +0.0; NaN ranks below every
// number (-inf included), NaNs among themselves by index. When k > n the tail
// is padded with id -1 and score -inf. Rows run in parallel (parallel_for), so
// the result does not depend on the thread count.
//
// Complexity per row: O(n + k log k) expected. The selection works on integer
// keys (the IEEE bits made monotone) so that one comparison orders score and
// index together and NaN needs no branch in the hot loop.
#pragma once

#include <cstdint>

#include "core/array_view.h"

namespace ragkernels {

// T: float or double (instantiated in topk.cpp). k >= 1, n < 2^32.
template <typename T>
void topk(ConstView2<T> scores, int64_t k, View2<int64_t> out_ids, View2<T> out_scores);

}  // namespace ragkernels
