#include "core/topk.cuh"



namespace ragkernels::cuda {
namespace {

constexpr int kThreads = 256;

// The same monotone key as the CPU op: NaN -> 0, -0.0 -> +0.0. Packed with
// the complemented index, so a larger word is a better (score, index) pair.
__device__ unsigned long long packed_key(float x, uint32_t index) {
  uint32_t key = 0;
  if (x == x) {
    if (x == 0.0f) x = 0.0f;
    const uint32_t bits = __float_as_uint(x);
    key = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  }
  return (static_cast<unsigned long long>(key) << 32) | (0xFFFFFFFFu - index);
}

__global__ void topk_kernel(const float* scores, int64_t n, int64_t k, int64_t* out_ids, float* out_scores,
                            unsigned long long* scratch) {
  const int64_t row = blockIdx.x;
  const float* in = scores + row * n;
  unsigned long long* keys = scratch + row * n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) keys[i] = packed_key(in[i], static_cast<uint32_t>(i)) + 1;
  __syncthreads();
  __shared__ unsigned long long best[kThreads];
  const int64_t take = k < n ? k : n;
  for (int64_t j = 0; j < take; ++j) {
    unsigned long long mine = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mine = keys[i] > mine ? keys[i] : mine;
    best[threadIdx.x] = mine;
    __syncthreads();
    for (int width = kThreads / 2; width > 0; width /= 2) {
      if (threadIdx.x < width && best[threadIdx.x + width] > best[threadIdx.x])
        best[threadIdx.x] = best[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const int64_t index = 0xFFFFFFFFu - static_cast<uint32_t>((best[0] - 1) & 0xFFFFFFFFu);
      out_ids[row * k + j] = index;
      out_scores[row * k + j] = in[index];
      keys[index] = 0;  // taken: below every live word (live words are >= 1)
    }
    __syncthreads();
  }
  for (int64_t j = take + threadIdx.x; j < k; j += blockDim.x) {
    out_ids[row * k + j] = -1;
    out_scores[row * k + j] = __int_as_float(0xff800000)  /* -inf */;
  }
}

}  // namespace

cudaError_t topk(const float* scores, int64_t rows, int64_t n, int64_t k, int64_t* out_ids, float* out_scores,
                 unsigned long long* scratch, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  topk_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(scores, n, k, out_ids, out_scores, scratch);
  return cudaGetLastError();
}

}  // namespace ragkernels::cuda
