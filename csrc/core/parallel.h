// The one parallel loop of the core.
//
// parallel_for splits [begin, end) into at most num_threads() contiguous
// chunks whose boundaries depend only on (begin, end, grain, thread count) and
// runs body(chunk_begin, chunk_end) on each. Callers write results to disjoint
// slots indexed by the loop variable, so the output never depends on the
// thread count or on scheduling. An exception thrown by any chunk is rethrown
// in the caller after every worker has joined (the first one by chunk order).
#pragma once

#include <cstdint>
#include <functional>

namespace ragkernels {

// Threads used by parallel_for. Defaults to the RAGKERNELS_NUM_THREADS
// environment variable if set, else the number of hardware threads.
int num_threads();

// n >= 1; throws ValueError otherwise.
void set_num_threads(int n);

// grain: the smallest number of iterations worth a thread of its own.
void parallel_for(int64_t begin, int64_t end,
                  const std::function<void(int64_t, int64_t)>& body,
                  int64_t grain = 1);

}  // namespace ragkernels
