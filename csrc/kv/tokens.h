// Views of key/value states as the KV kernels read and write them: a batch of
// streams (one per batch row and head), each a run of token vectors, in
// float32, float16 or bfloat16. Channels are contiguous; batch rows, heads and
// tokens may be strided, so a [batch, heads, tokens, dim] tensor (transformers
// hands out transposed views) is read in place.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/float16.h"

namespace ragkernels::kv {

enum class Dtype : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct Tokens {
  const void* data = nullptr;
  Dtype dtype = Dtype::kFloat32;
  int64_t streams = 0;  // batch * heads
  int64_t tokens = 0;
  int64_t dim = 0;
  int64_t heads = 1;          // stream s is (batch row s / heads, head s % heads)
  int64_t batch_stride = 0;   // elements between batch rows
  int64_t head_stride = 0;    // elements between heads
  int64_t token_stride = 0;   // elements between tokens

  int64_t offset(int64_t stream, int64_t token) const {
    return (stream / heads) * batch_stride + (stream % heads) * head_stride + token * token_stride;
  }
};

// The same view, writable (dequantized output).
struct MutableTokens {
  void* data = nullptr;
  Dtype dtype = Dtype::kFloat32;
  int64_t streams = 0;
  int64_t tokens = 0;
  int64_t dim = 0;
  int64_t heads = 1;
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
  int64_t token_stride = 0;

  int64_t offset(int64_t stream, int64_t token) const {
    return (stream / heads) * batch_stride + (stream % heads) * head_stride + token * token_stride;
  }
};

inline float bfloat16_to_float(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &word, sizeof out);
  return out;
}

// Round to nearest even; NaN stays NaN (a quiet bit is forced).
inline uint16_t float_to_bfloat16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof word);
  if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((word >> 16) | 0x40u);
  word += 0x7fffu + ((word >> 16) & 1u);
  return static_cast<uint16_t>(word >> 16);
}

// Converts one token vector to float32.
inline void load_row(const Tokens& t, int64_t stream, int64_t token, float* out) {
  const int64_t at = t.offset(stream, token);
  switch (t.dtype) {
    case Dtype::kFloat32: {
      const float* src = static_cast<const float*>(t.data) + at;
      for (int64_t d = 0; d < t.dim; ++d) out[d] = src[d];
      break;
    }
    case Dtype::kFloat16: {
      const uint16_t* src = static_cast<const uint16_t*>(t.data) + at;
      for (int64_t d = 0; d < t.dim; ++d) out[d] = half_to_float(src[d]);
      break;
    }
    case Dtype::kBFloat16: {
      const uint16_t* src = static_cast<const uint16_t*>(t.data) + at;
      for (int64_t d = 0; d < t.dim; ++d) out[d] = bfloat16_to_float(src[d]);
      break;
    }
  }
}

// Writes one float32 token vector in the view's dtype (round to nearest even).
inline void store_row(const MutableTokens& t, int64_t stream, int64_t token, const float* row) {
  const int64_t at = t.offset(stream, token);
  switch (t.dtype) {
    case Dtype::kFloat32: {
      float* dst = static_cast<float*>(t.data) + at;
      for (int64_t d = 0; d < t.dim; ++d) dst[d] = row[d];
      break;
    }
    case Dtype::kFloat16: {
      uint16_t* dst = static_cast<uint16_t*>(t.data) + at;
      for (int64_t d = 0; d < t.dim; ++d) dst[d] = float_to_half(row[d]);
      break;
    }
    case Dtype::kBFloat16: {
      uint16_t* dst = static_cast<uint16_t*>(t.data) + at;
      for (int64_t d = 0; d < t.dim; ++d) dst[d] = float_to_bfloat16(row[d]);
      break;
    }
  }
}

}  // namespace ragkernels::kv
