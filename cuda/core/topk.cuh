// Row-wise top-k on the GPU: the CUDA mirror of csrc/core/topk.h, with the
// same order (higher score first, equal scores -> lower index, -0.0 == 0.0,
// NaN below every number) and padding (id -1, score -inf when k > n).
// Raw device pointers, row-major contiguous, and a stream; no framework types.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ragkernels::cuda {

// scores: (rows, n) float32; out_ids: (rows, k) int64; out_scores: (rows, k)
// float32. scratch: rows * n uint64 of device memory. Returns the launch
// status. One block per row; k rounds of a block-wide arg-max over packed
// (score key, index) words: O(k * n / blockDim) per row, a correct baseline
// for the small k of retrieval (k <= a few hundred).
cudaError_t topk(const float* scores, int64_t rows, int64_t n, int64_t k, int64_t* out_ids, float* out_scores,
                 unsigned long long* scratch, cudaStream_t stream);

}  // namespace ragkernels::cuda
