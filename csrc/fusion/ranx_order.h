// The order in which ranx (and so ranx.fuse) ranks a query's documents.
//
// ranx sorts each query's {doc: score} with numba's np.argsort(-scores) whose
// default kind is quicksort: numba/misc/quicksort.py (median-of-three
// partition, insertion sort under 15 elements, larger half pushed on a stack),
// which is NOT stable. Ties are therefore ordered by that algorithm applied to
// the input (insertion) order, not by doc id. To return exactly ranx's ranking,
// ties included, ranx_argsort replays the same algorithm step by step.
//
// NaN handling follows numba's lt_floats on the negated scores: NaN last.
// Complexity: O(n) for distinct values; else O(n log n) expected, O(n^2)
// worst case (as numba's).
#pragma once

#include <cstdint>
#include <vector>

namespace ragkernels::fusion {

// perm[0..n) = numba np.argsort(-values[0..n), kind="quicksort"): positions of
// `values`, best first. `stack` is scratch reused between calls. Values that
// are all distinct have one sorted order, found by a radix sort; any tie
// falls back to replaying numba. likely_ties (rank-based fusions, where equal
// scores are the rule) skips the radix attempt; the result is the same.
void ranx_argsort(const double* values, int32_t n, int32_t* perm, std::vector<int32_t>& stack,
                  bool likely_ties = false);

}  // namespace ragkernels::fusion
