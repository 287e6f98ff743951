// KIVI quantization of key/value states on the GPU: the CUDA mirror of
// csrc/kv/quantize.h (same layouts, same codes), which is its oracle.
//
// Keys: per channel over blocks of `group` tokens; values: per token over
// groups of `group` channels (a shorter tail group). A group spanning
// [lo, hi] gets the float16 minimum m = lo rounded down and the float16
// scale s = (hi - m) / (2^bits - 1) rounded up; a value becomes
// floor((x - m) / s + 1/2) clamped to [0, 2^bits - 1], in float32 with every
// product and sum rounded on its own (no FMA contraction), so codes, scales
// and minimums are the CPU op's bits; a zero lo or hi counts as +0 (x + 0),
// so which of 0.0 and -0.0 a scan met first does not matter. lo and hi are
// still found in the CPU's scan order (keys: tokens in order; values: channel
// i in lane i % 8 over the whole eights, lanes merged in order, then the
// tail), so that the overflow error quotes the same [lo, hi]. A group
// holding NaN or +-inf gets scale and minimum NaN (0x7e00) and codes 0.
// A finite group that float16 cannot describe is reported through `error`
// (the CPU op raises ValueError there; the binding does, with its message).
//
// Raw device pointers, element strides and a stream; no framework types.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ragkernels::cuda::kv {

enum class Dtype : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// A [batch, heads, tokens, dim] view in device memory (csrc/kv/tokens.h's
// Tokens): channels contiguous, other axes strided in elements.
struct DeviceTokens {
  const void* data = nullptr;
  Dtype dtype = Dtype::kFloat32;
  int64_t streams = 0;  // batch * heads
  int64_t tokens = 0;
  int64_t dim = 0;
  int64_t heads = 1;  // stream s is (batch row s / heads, head s % heads)
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
  int64_t token_stride = 0;

  __host__ __device__ int64_t offset(int64_t stream, int64_t token) const {
    return (stream / heads) * batch_stride + (stream % heads) * head_stride + token * token_stride;
  }
};

// No error: the value of `error` when every group fits float16.
constexpr unsigned long long kNoError = ~0ull;

// Bytes of a packed row of `count` codes (csrc/kv/quantize.h packed_bytes).
__host__ __device__ inline int64_t packed_bytes(int64_t count, int bits) {
  if (bits == 3) return (count + 3) / 4 + (count + 7) / 8;
  return (count * bits + 7) / 8;
}

// Keys of x.streams streams, ceil(tokens / group) blocks each:
//   codes   [streams][tokens][packed_bytes(dim, bits)]
//   scale   [streams][blocks][dim] float16 bits, minimum likewise
//   offsets [streams][blocks + 1] int32: min(j * group, tokens)
// `error` (one device word, set to kNoError by the caller) receives the
// smallest index (stream * blocks + block) * dim + channel of a group beyond
// float16 (atomicMin). bits in {2, 3, 4, 8}, group >= 1, dim >= 1 (the
// caller checks). Queued on `stream`; returns the launch status.
cudaError_t quantize_keys(const DeviceTokens& x, int bits, int group, uint8_t* codes, uint16_t* scale,
                          uint16_t* minimum, int32_t* offsets, unsigned long long* error, cudaStream_t stream);

// Values: codes [streams][tokens][packed_bytes(dim, bits)], scale and
// minimum [streams][tokens][ceil(dim / group)] float16 bits; `error` gets the
// smallest (stream * tokens + token) * groups + group index beyond float16.
cudaError_t quantize_values(const DeviceTokens& x, int bits, int group, uint8_t* codes, uint16_t* scale,
                            uint16_t* minimum, unsigned long long* error, cudaStream_t stream);

// The [lo, hi] of the group that `error` named (keys when `keys`, else
// values), written to range[0], range[1]: what the error message quotes.
cudaError_t group_range(const DeviceTokens& x, bool keys, int group, unsigned long long index, float* range,
                        cudaStream_t stream);

}  // namespace ragkernels::cuda::kv
