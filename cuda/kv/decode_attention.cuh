// Fused decode attention over a quantized KV cache on the GPU: the CUDA
// mirror of csrc/kv/decode_attention.h, which is its oracle.
//
// One query token per head attends to the stream's quantized tokens (read
// as packed codes: a key is c * s + m with its block's per-channel float16
// scale and minimum, a value c * s + m with its token's group scale and
// minimum) then to its full-precision residual tokens. Grouped-query
// attention: query head i reads KV head i / (q_heads / kv_heads). An
// additive float32 mask per batch row [batch][tokens] or per KV head
// [batch][kv_heads][tokens] is added to the scores. The tokens are cut into
// the CPU op's 512-token chunks, each scored on its own and merged with the
// log-sum-exp rule (split-K), with the CPU op's semantics: a NaN score
// anywhere (masked positions too) makes the head's output NaN; a fully masked
// head gets zeros; a position whose weight is zero within its chunk has its
// value never read (a NaN there is ignored). float32 arithmetic in another
// order than the CPU's: results agree with it to float32 rounding (the tests
// use rtol 1e-4, atol 1e-5), not bit for bit.
//
// Raw device pointers, element strides and a stream; no framework types.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kv/quantize.cuh"

namespace ragkernels::cuda::kv {

// Packed keys (csrc/kv/quantize.h PackedKeys) of batch * kv_heads streams:
// codes [streams][tokens][packed_bytes(dim, bits)], scale and minimum
// [streams][blocks][dim] float16 bits, offsets [streams][blocks + 1].
struct DevicePackedKeys {
  const uint8_t* codes = nullptr;
  const uint16_t* scale = nullptr;
  const uint16_t* minimum = nullptr;
  const int32_t* offsets = nullptr;
  int64_t tokens = 0;
  int64_t dim = 0;
  int64_t blocks = 0;
  int bits = 0;
};

// Packed values: codes [streams][tokens][packed_bytes(dim, bits)], scale and
// minimum [streams][tokens][ceil(dim / group)] float16 bits.
struct DevicePackedValues {
  const uint8_t* codes = nullptr;
  const uint16_t* scale = nullptr;
  const uint16_t* minimum = nullptr;
  int64_t tokens = 0;  // == the keys'
  int64_t dim = 0;     // == the keys'
  int bits = 0;
  int group = 0;
};

struct DeviceDecodeAttention {
  DeviceTokens query;  // batch * q_heads streams of one token
  int64_t batch = 0;
  int64_t kv_heads = 0;
  int64_t q_heads = 0;  // a multiple of kv_heads
  DevicePackedKeys keys;
  DevicePackedValues values;
  DeviceTokens residual_keys, residual_values;  // batch * kv_heads streams, after the quantized tokens
  const float* mask = nullptr;                  // or nullptr
  bool mask_per_head = false;
  float scaling = 1.0f;
  float* out = nullptr;  // [batch * q_heads][dim] float32
};

// Device scratch `decode_attention` needs (the chunks' partial results).
size_t decode_attention_workspace_bytes(const DeviceDecodeAttention& a);

// Dynamic shared memory of the chunk kernel; above 48 KiB it is requested
// with cudaFuncSetAttribute, so it must not exceed the device's opt-in
// maximum (cudaDevAttrMaxSharedMemoryPerBlockOptin; the caller checks).
size_t decode_attention_shared_bytes(const DeviceDecodeAttention& a);

// Writes a.out. The key offsets are checked on the device first: `error` (one
// device word, set to kNoError by the caller) receives the smallest stream
// whose offsets do not start at 0, decrease, or do not end at keys.tokens,
// and then nothing else runs (a.out is left unwritten). Shapes are the
// caller's to check; the cache must hold at least one token. Queued on
// `stream`; returns the launch status.
cudaError_t decode_attention(const DeviceDecodeAttention& a, void* workspace, unsigned long long* error,
                             cudaStream_t stream);

}  // namespace ragkernels::cuda::kv
