// KIVI-style asymmetric min-max quantization of key/value states.
//
// Keys are quantized per channel: the tokens of a stream are cut into blocks
// of `group` tokens, and each (block, channel) has its own scale and minimum,
// because outlier channels in keys are what per-token scales get wrong (KIVI).
// Values are quantized per token: each token's channels are cut into groups of
// `group` channels; when `group` does not divide the head dimension the last
// group is shorter (its own scale and minimum over the remaining channels).
//
// A value x becomes the code c = floor((x - m) / s + 1/2) clamped to
// [0, 2^bits - 1] and comes back as c * s + m, with s and m stored as float16:
// m is the group minimum rounded down to float16, s = (max - m) / (2^bits - 1)
// rounded up, so every code is in range and |x - (c*s + m)| <= s/2 (plus
// float32 rounding). A group holding NaN or +-inf gets scale and minimum NaN:
// it dequantizes to NaN rather than to a finite lie. A finite group whose
// float16 minimum or scale would overflow (a value below -65504, or a range
// past 65504 * (2^bits - 1)) is a ValueError.
//
// Codes are packed little-endian along the row: code i occupies bits
// [i*bits, (i+1)*bits) of the row's bytes, each row padded to whole bytes.
// 3-bit rows are two bit planes, the low two bits of every code (a 2-bit row)
// followed by the high bits (a 1-bit row), so no code straddles a byte.
#pragma once

#include <cstdint>

#include "core/float16.h"
#include "kv/tokens.h"

namespace ragkernels::kv {

bool supported_bits(int bits);  // 2, 3, 4 or 8

// Bytes of one packed row of `count` codes.
int64_t packed_bytes(int64_t count, int bits);

// Keys of `streams` streams after quantization, in caller memory:
//   codes   [streams][tokens][packed_bytes(dim, bits)]
//   scale   [streams][blocks][dim], minimum likewise
//   offsets [streams][blocks + 1]: block j of a stream holds its tokens
//           [offsets[j], offsets[j + 1]) (empty blocks allowed: compaction
//           keeps a subset of each block's tokens, per stream).
struct PackedKeys {
  const uint8_t* codes = nullptr;
  const float16* scale = nullptr;
  const float16* minimum = nullptr;
  const int32_t* offsets = nullptr;
  int64_t streams = 0;
  int64_t tokens = 0;
  int64_t dim = 0;
  int64_t blocks = 0;
  int bits = 0;

  int64_t row_bytes() const { return packed_bytes(dim, bits); }
};

// Values after quantization:
//   codes   [streams][tokens][packed_bytes(dim, bits)]
//   scale   [streams][tokens][groups()], minimum likewise
struct PackedValues {
  const uint8_t* codes = nullptr;
  const float16* scale = nullptr;
  const float16* minimum = nullptr;
  int64_t streams = 0;
  int64_t tokens = 0;
  int64_t dim = 0;
  int bits = 0;
  int group = 0;

  int64_t groups() const { return (dim + group - 1) / group; }
  int64_t row_bytes() const { return packed_bytes(dim, bits); }
};

// Quantizes keys in blocks of `group` tokens: ceil(tokens / group) blocks,
// block j holding tokens [j * group, min((j + 1) * group, tokens)).
void quantize_keys(const Tokens& keys, int bits, int group, uint8_t* codes, float16* scale, float16* minimum);

void quantize_values(const Tokens& values, int bits, int group, uint8_t* codes, float16* scale,
                     float16* minimum);

// ValueError unless every stream's offsets start at 0, never decrease and end
// at `tokens`.
void check_key_offsets(const PackedKeys& keys);

// Writes the dequantized states into `out` (same streams, tokens and dim).
void dequantize_keys(const PackedKeys& keys, const MutableTokens& out);
void dequantize_values(const PackedValues& values, const MutableTokens& out);

// Packs `count` codes (each < 2^bits) into a row, and back (the bitstream
// codes rows as symbols).
void pack_codes(const uint8_t* codes, int bits, int64_t count, uint8_t* row);
void unpack_codes(const uint8_t* row, int bits, int64_t count, uint8_t* codes);

// Unpacks `count` codes of a packed row as floats (the fused attention reads
// codes this way, a row at a time).
void unpack_row(const uint8_t* row, int bits, int64_t count, float* out);

}  // namespace ragkernels::kv
