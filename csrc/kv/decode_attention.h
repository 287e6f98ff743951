// Decode attention over a quantized KV cache, reading the packed codes
// directly: one query token per head attends to the quantized tokens (scores
// q.K from key codes with the per-block scale folded into the query, the
// weighted sum over V from value codes with the per-token scale folded into
// the weight) followed by the full-precision residual tokens. No dequantized
// copy of the cache is made.
//
// Grouped-query attention: query head i reads KV head i / (q_heads / kv_heads),
// as transformers' repeat_kv lays them out. The tokens of each stream are cut
// into fixed chunks scored in parallel and merged with the log-sum-exp rule
// (split-K, as flash-decoding does); chunk boundaries do not depend on the
// thread count, so the result does not either.
#pragma once

#include <cstdint>

#include "kv/quantize.h"
#include "kv/tokens.h"

namespace ragkernels::kv {

struct DecodeAttention {
  Tokens query;  // batch * q_heads streams of one token
  int64_t batch = 0;
  int64_t kv_heads = 0;
  int64_t q_heads = 0;
  PackedKeys keys;                        // batch * kv_heads streams (tokens may be 0)
  PackedValues values;                    // same streams and tokens
  Tokens residual_keys, residual_values;  // batch * kv_heads streams, after the quantized tokens
  // Additive mask (0, or -inf for padding) over keys.tokens + residual
  // tokens: [batch][tokens], or [batch][kv_heads][tokens] when
  // mask_per_head (eviction keeps other positions in each head); or nullptr.
  const float* mask = nullptr;
  bool mask_per_head = false;
  float scaling = 1.0f;
  float* out = nullptr;  // [batch * q_heads][dim]; a fully masked row gets zeros, as torch SDPA does
};

void decode_attention(const DecodeAttention& args);

}  // namespace ragkernels::kv
