// Quantization, packing and dequantization of key/value states (quantize.h).
// Compiled with -ffp-contract=off: codes and dequantized values are the same
// bits on every CPU and equal to the numpy reference's (tests/reference/kv.py).
#include "kv/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/isa.h"
#include "core/parallel.h"

namespace ragkernels::kv {

namespace {

constexpr int64_t kParallelGrain = 1 << 16;  // elements worth a thread

// Tables of a byte's codes as floats, for 1-, 2- and 4-bit rows.
struct UnpackTables {
  float one[256][8];
  float two[256][4];
  float four[256][2];
  UnpackTables() {
    for (int b = 0; b < 256; ++b) {
      for (int k = 0; k < 8; ++k) one[b][k] = static_cast<float>((b >> k) & 1);
      for (int k = 0; k < 4; ++k) two[b][k] = static_cast<float>((b >> (2 * k)) & 3);
      for (int k = 0; k < 2; ++k) four[b][k] = static_cast<float>((b >> (4 * k)) & 15);
    }
  }
};

const UnpackTables& tables() {
  static const UnpackTables instance;
  return instance;
}

// Unpacks a row of `count` codes of width 1, 2, 4 or 8 (a plane of a 3-bit row).
void unpack_plane(const uint8_t* row, int width, int64_t count, float* out) {
  const UnpackTables& t = tables();
  const int per_byte = 8 / width;
  const int64_t whole = count / per_byte;
  switch (width) {
    case 8:
      for (int64_t i = 0; i < count; ++i) out[i] = row[i];
      return;
    case 4:
      for (int64_t i = 0; i < whole; ++i) std::memcpy(out + 2 * i, t.four[row[i]], sizeof t.four[0]);
      break;
    case 2:
      for (int64_t i = 0; i < whole; ++i) std::memcpy(out + 4 * i, t.two[row[i]], sizeof t.two[0]);
      break;
    default:
      for (int64_t i = 0; i < whole; ++i) std::memcpy(out + 8 * i, t.one[row[i]], sizeof t.one[0]);
      break;
  }
  const int mask = (1 << width) - 1;
  for (int64_t i = whole * per_byte; i < count; ++i) {
    out[i] = static_cast<float>((row[i / per_byte] >> ((i % per_byte) * width)) & mask);
  }
}

// Packs eight codes (each < 2^width, one per byte of `w`, little-endian)
// into `width` bytes: the shifts move code k to bit k * width of its output
// byte, and the masks keep only those bits.
inline uint64_t pack8(uint64_t w, int width) {
  switch (width) {
    case 4:  // bytes at bits 0, 16, 32, 48
      return (w | w >> 4) & 0x00ff00ff00ff00ffull;
    case 2:  // bytes at bits 0, 32
      return (w | w >> 6 | w >> 12 | w >> 18) & 0x000000ff000000ffull;
    default:  // one byte at bit 0
      return (w | w >> 7 | w >> 14 | w >> 21 | w >> 28 | w >> 35 | w >> 42 | w >> 49) & 0xffull;
  }
}

// Packs codes (each < 2^width) of width 1, 2, 4 or 8 into a row of bytes,
// eight codes at a time.
void pack_plane(const uint8_t* codes, int width, int64_t count, uint8_t* row) {
  if (width == 8) {
    std::memcpy(row, codes, static_cast<size_t>(count));
    return;
  }
  const int per_byte = 8 / width;
  const int64_t whole = count / 8;
  for (int64_t i = 0; i < whole; ++i) {
    uint64_t w;
    std::memcpy(&w, codes + 8 * i, sizeof w);
    const uint64_t packed = pack8(w, width);
    uint8_t* out = row + i * width;
    for (int k = 0; k < width; ++k) out[k] = static_cast<uint8_t>(packed >> (64 / width * k));
  }
  const int64_t bytes = (count + per_byte - 1) / per_byte;
  std::memset(row + whole * width, 0, static_cast<size_t>(bytes - whole * width));
  for (int64_t i = whole * 8; i < count; ++i) {
    row[i / per_byte] = static_cast<uint8_t>(row[i / per_byte] | (codes[i] << ((i % per_byte) * width)));
  }
}

uint16_t bits_of(float16 h) {
  uint16_t out;
  std::memcpy(&out, &h, sizeof out);
  return out;
}

float to_float(float16 h) { return half_to_float(bits_of(h)); }

// The bits of the largest float16 <= x and of the smallest float16 >= x
// (x finite), written with selects so that a loop over groups vectorizes.
inline uint16_t half_at_most(float x) {
  const uint16_t b = float_to_half(x);
  const uint16_t below = (b & 0x7fff) == 0 ? uint16_t{0x8001} : static_cast<uint16_t>((b & 0x8000) ? b + 1 : b - 1);
  return half_to_float(b) <= x ? b : below;
}

inline uint16_t half_at_least(float x) {
  const uint16_t b = float_to_half(x);
  const uint16_t above = (b & 0x7fff) == 0 ? uint16_t{0x0001} : static_cast<uint16_t>((b & 0x8000) ? b - 1 : b + 1);
  return half_to_float(b) >= x ? b : above;
}

// Scale and minimum of n groups, group i spanning [lo[i], hi[i]]; NaN for a
// group with a non-finite value (finite[i] false).
RK_TARGET_CLONES void group_params_of(const float* lo, const float* hi, const bool* finite, int64_t n, int levels,
                                      uint16_t* scale, uint16_t* minimum) {
  const uint16_t nan = float_to_half(std::numeric_limits<float>::quiet_NaN());
  for (int64_t i = 0; i < n; ++i) {
    // + 0: a zero extreme is +0, whichever zero a scan met first (-0 + 0 is +0)
    const uint16_t m = half_at_most(lo[i] + 0.0f);
    const uint16_t s = half_at_least((hi[i] + 0.0f - half_to_float(m)) / static_cast<float>(levels));
    minimum[i] = finite[i] ? m : nan;
    scale[i] = finite[i] ? s : nan;
  }
}

// group_params_of, then a ValueError for a finite group whose float16
// minimum or scale overflowed.
void group_params(const float* lo, const float* hi, const bool* finite, int64_t n, int levels, float16* scale,
                  float16* minimum) {
  uint16_t* scale_bits = reinterpret_cast<uint16_t*>(scale);
  uint16_t* minimum_bits = reinterpret_cast<uint16_t*>(minimum);
  group_params_of(lo, hi, finite, n, levels, scale_bits, minimum_bits);
  for (int64_t i = 0; i < n; ++i) {
    const bool overflow = (scale_bits[i] & 0x7c00) == 0x7c00 || (minimum_bits[i] & 0x7c00) == 0x7c00;
    RK_CHECK_ARG(!finite[i] || !overflow, "KV quantization: a group spans [", lo[i], ", ", hi[i],
                 "], beyond what a float16 scale and minimum hold (|x| <= 65504)");
  }
}

// floor((x - m) / s + 1/2) clamped to [0, levels]; the clamp comes first, so
// truncation is the floor (and no libm call).
uint8_t code_of(float x, float minimum, float inverse_scale, int levels) {
  float v = (x - minimum) * inverse_scale + 0.5f;
  if (!(v >= 0.0f)) v = 0.0f;  // NaN too
  if (v > static_cast<float>(levels)) v = static_cast<float>(levels);
  return static_cast<uint8_t>(static_cast<int>(v));
}

RK_TARGET_CLONES void codes_of(const float* x, const float* minimum, const float* inverse_scale, int levels,
                               int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = code_of(x[i], minimum[i], inverse_scale[i], levels);
}

// The codes of one value group: one minimum and scale.
RK_TARGET_CLONES void group_codes(const float* x, float minimum, float inverse_scale, int levels, int64_t n,
                                  uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = code_of(x[i], minimum, inverse_scale, levels);
}

// The smallest and largest of x[0, n), and whether every value is finite
// (x - x is 0 for a finite x, NaN otherwise), eight lanes at a time.
RK_TARGET_CLONES bool group_range(const float* x, int64_t n, float* lo_out, float* hi_out) {
  using Lanes = float __attribute__((vector_size(32)));
  Lanes lo = Lanes{} + std::numeric_limits<float>::infinity(), hi = -lo, probe{};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    Lanes v;
    std::memcpy(&v, x + i, sizeof v);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    probe += v - v;
  }
  float out_lo = std::numeric_limits<float>::infinity(), out_hi = -out_lo, sum = 0.0f;
  for (int k = 0; k < 8; ++k) {
    out_lo = lo[k] < out_lo ? lo[k] : out_lo;
    out_hi = hi[k] > out_hi ? hi[k] : out_hi;
    sum += probe[k];
  }
  for (; i < n; ++i) {
    out_lo = x[i] < out_lo ? x[i] : out_lo;
    out_hi = x[i] > out_hi ? x[i] : out_hi;
    sum += x[i] - x[i];
  }
  *lo_out = out_lo;
  *hi_out = out_hi;
  return sum == 0.0f;
}

float inverse(float16 scale) {
  const float s = to_float(scale);
  return s > 0.0f ? 1.0f / s : 0.0f;
}

// row = row * scale + minimum, channel by channel
RK_TARGET_CLONES void scale_shift(float* row, const float* scale, const float* minimum, int64_t n) {
  for (int64_t i = 0; i < n; ++i) row[i] = row[i] * scale[i] + minimum[i];
}

RK_TARGET_CLONES void to_floats(const float16* in, int64_t n, float* out) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(in);
  for (int64_t i = 0; i < n; ++i) out[i] = half_to_float(bits[i]);
}

void check_quantize_args(const Tokens& x, int bits, int group, const char* op) {
  RK_CHECK_ARG(supported_bits(bits), op, ": bits must be 2, 3, 4 or 8, got ", bits);
  RK_CHECK_ARG(group >= 1, op, ": group_size must be >= 1, got ", group);
  RK_CHECK_ARG(x.dim >= 1, op, ": the head dimension must be >= 1");
}

// One block of one stream: tokens [begin, end).
void quantize_key_block(const Tokens& keys, int bits, int64_t stream, int64_t begin, int64_t end, uint8_t* codes,
                        float16* scale, float16* minimum, std::vector<float>& rows, std::vector<uint8_t>& row_codes) {
  const int64_t dim = keys.dim;
  const int levels = (1 << bits) - 1;
  const int64_t count = end - begin;
  rows.resize(static_cast<size_t>(count * dim));
  for (int64_t t = 0; t < count; ++t) load_row(keys, stream, begin + t, rows.data() + t * dim);
  std::vector<float> lo(dim, std::numeric_limits<float>::infinity());
  std::vector<float> hi(dim, -std::numeric_limits<float>::infinity());
  std::vector<float> probe(dim, 0.0f);  // NaN once a non-finite value was seen
  for (int64_t t = 0; t < count; ++t) {
    const float* x = rows.data() + t * dim;
    for (int64_t d = 0; d < dim; ++d) {
      lo[d] = x[d] < lo[d] ? x[d] : lo[d];
      hi[d] = x[d] > hi[d] ? x[d] : hi[d];
      probe[d] += x[d] - x[d];
    }
  }
  std::unique_ptr<bool[]> finite(new bool[dim]);
  for (int64_t d = 0; d < dim; ++d) finite[d] = probe[d] == 0.0f;
  group_params(lo.data(), hi.data(), finite.get(), dim, levels, scale, minimum);
  std::vector<float> base(dim), inverse_scale(dim);
  for (int64_t d = 0; d < dim; ++d) {
    base[d] = to_float(minimum[d]);
    inverse_scale[d] = inverse(scale[d]);
  }
  const int64_t row_bytes = packed_bytes(dim, bits);
  row_codes.resize(static_cast<size_t>(dim));
  for (int64_t t = 0; t < count; ++t) {
    const float* x = rows.data() + t * dim;
    codes_of(x, base.data(), inverse_scale.data(), levels, dim, row_codes.data());
    pack_codes(row_codes.data(), bits, dim, codes + t * row_bytes);
  }
}

// Value rows [first, last) of the flattened (stream, token) rows, in
// batches: the ranges of a batch's groups, then their scales and minimums in
// one vectorized pass, then the codes.
void quantize_value_rows(const Tokens& values, int bits, int group, int64_t first, int64_t last, uint8_t* codes,
                         float16* scale, float16* minimum) {
  constexpr int64_t kBatch = 64;
  const int levels = (1 << bits) - 1;
  const int64_t dim = values.dim, groups = (dim + group - 1) / group, row_bytes = packed_bytes(dim, bits);
  std::vector<float> rows(static_cast<size_t>(kBatch * dim)), lo(kBatch * groups), hi(kBatch * groups);
  std::unique_ptr<bool[]> finite(new bool[kBatch * groups]);
  std::vector<uint8_t> row_codes(static_cast<size_t>(dim));
  for (int64_t start = first; start < last; start += kBatch) {
    const int64_t n = std::min(kBatch, last - start);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t item = start + i;
      float* x = rows.data() + i * dim;
      load_row(values, item / values.tokens, item % values.tokens, x);
      for (int64_t k = 0; k < groups; ++k) {
        const int64_t g0 = k * group, g1 = std::min<int64_t>(dim, g0 + group);
        finite[i * groups + k] = group_range(x + g0, g1 - g0, &lo[i * groups + k], &hi[i * groups + k]);
      }
    }
    float16* batch_scale = scale + start * groups;
    float16* batch_minimum = minimum + start * groups;
    group_params(lo.data(), hi.data(), finite.get(), n * groups, levels, batch_scale, batch_minimum);
    for (int64_t i = 0; i < n; ++i) {
      const float* x = rows.data() + i * dim;
      for (int64_t k = 0; k < groups; ++k) {
        const int64_t g0 = k * group, g1 = std::min<int64_t>(dim, g0 + group);
        group_codes(x + g0, to_float(batch_minimum[i * groups + k]), inverse(batch_scale[i * groups + k]), levels,
                    g1 - g0, row_codes.data() + g0);
      }
      pack_codes(row_codes.data(), bits, dim, codes + (start + i) * row_bytes);
    }
  }
}

int64_t grain_for(int64_t elements_per_item) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, elements_per_item)); }

}  // namespace

bool supported_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

int64_t packed_bytes(int64_t count, int bits) {
  if (bits == 3) return (count + 3) / 4 + (count + 7) / 8;
  return (count * bits + 7) / 8;
}

void pack_codes(const uint8_t* codes, int bits, int64_t count, uint8_t* row) {
  if (bits != 3) {
    pack_plane(codes, bits, count, row);
    return;
  }
  // Low two bits, then the high bit, each its own plane.
  std::vector<uint8_t> plane(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) plane[i] = codes[i] & 3;
  pack_plane(plane.data(), 2, count, row);
  for (int64_t i = 0; i < count; ++i) plane[i] = codes[i] >> 2;
  pack_plane(plane.data(), 1, count, row + packed_bytes(count, 2));
}

void unpack_codes(const uint8_t* row, int bits, int64_t count, uint8_t* codes) {
  auto plane = [&](const uint8_t* bytes, int width, int shift) {
    const int per_byte = 8 / width, mask = (1 << width) - 1;
    for (int64_t i = 0; i < count; ++i) {
      codes[i] |= static_cast<uint8_t>(((bytes[i / per_byte] >> ((i % per_byte) * width)) & mask) << shift);
    }
  };
  std::memset(codes, 0, static_cast<size_t>(count));
  if (bits == 3) {
    plane(row, 2, 0);
    plane(row + packed_bytes(count, 2), 1, 2);
  } else {
    plane(row, bits, 0);
  }
}

void unpack_row(const uint8_t* row, int bits, int64_t count, float* out) {
  if (bits != 3) {
    unpack_plane(row, bits, count, out);
    return;
  }
  unpack_plane(row, 2, count, out);
  const uint8_t* high = row + packed_bytes(count, 2);
  const UnpackTables& t = tables();
  const int64_t whole = count / 8;
  for (int64_t i = 0; i < whole; ++i) {
    for (int k = 0; k < 8; ++k) out[8 * i + k] += 4.0f * t.one[high[i]][k];
  }
  for (int64_t i = whole * 8; i < count; ++i) out[i] += static_cast<float>(4 * ((high[i / 8] >> (i % 8)) & 1));
}

void quantize_keys(const Tokens& keys, int bits, int group, uint8_t* codes, float16* scale, float16* minimum) {
  check_quantize_args(keys, bits, group, "quantize_keys");
  const int64_t blocks = (keys.tokens + group - 1) / group;
  const int64_t row_bytes = packed_bytes(keys.dim, bits);
  parallel_for(
      0, keys.streams * blocks,
      [&](int64_t first, int64_t last) {
        std::vector<float> rows;
        std::vector<uint8_t> row_codes;
        for (int64_t item = first; item < last; ++item) {
          const int64_t stream = item / blocks, block = item % blocks;
          const int64_t begin = block * group, end = std::min<int64_t>(keys.tokens, begin + group);
          quantize_key_block(keys, bits, stream, begin, end, codes + (stream * keys.tokens + begin) * row_bytes,
                             scale + item * keys.dim, minimum + item * keys.dim, rows, row_codes);
        }
      },
      grain_for(static_cast<int64_t>(group) * keys.dim));
}

void quantize_values(const Tokens& values, int bits, int group, uint8_t* codes, float16* scale,
                     float16* minimum) {
  check_quantize_args(values, bits, group, "quantize_values");
  parallel_for(
      0, values.streams * values.tokens,
      [&](int64_t first, int64_t last) { quantize_value_rows(values, bits, group, first, last, codes, scale, minimum); },
      grain_for(values.dim));
}

void check_key_offsets(const PackedKeys& keys) {
  for (int64_t s = 0; s < keys.streams; ++s) {
    const int32_t* o = keys.offsets + s * (keys.blocks + 1);
    RK_CHECK_ARG(o[0] == 0, "key block offsets of stream ", s, " must start at 0, got ", o[0]);
    for (int64_t j = 0; j < keys.blocks; ++j) {
      RK_CHECK_ARG(o[j + 1] >= o[j], "key block offsets of stream ", s, " decrease at block ", j, " (", o[j],
                   " then ", o[j + 1], ")");
    }
    RK_CHECK_ARG(o[keys.blocks] == keys.tokens, "key block offsets of stream ", s, " must end at the ",
                 keys.tokens, " quantized tokens, got ", o[keys.blocks]);
  }
}

void dequantize_keys(const PackedKeys& keys, const MutableTokens& out) {
  const int64_t dim = keys.dim, row_bytes = keys.row_bytes();
  parallel_for(
      0, keys.streams,
      [&](int64_t first, int64_t last) {
        std::vector<float> row(static_cast<size_t>(dim)), scale(dim), minimum(dim);
        for (int64_t s = first; s < last; ++s) {
          const int32_t* offsets = keys.offsets + s * (keys.blocks + 1);
          for (int64_t j = 0; j < keys.blocks; ++j) {
            if (offsets[j] == offsets[j + 1]) continue;
            to_floats(keys.scale + (s * keys.blocks + j) * dim, dim, scale.data());
            to_floats(keys.minimum + (s * keys.blocks + j) * dim, dim, minimum.data());
            for (int64_t t = offsets[j]; t < offsets[j + 1]; ++t) {
              unpack_row(keys.codes + (s * keys.tokens + t) * row_bytes, keys.bits, dim, row.data());
              scale_shift(row.data(), scale.data(), minimum.data(), dim);
              store_row(out, s, t, row.data());
            }
          }
        }
      },
      grain_for(keys.tokens * dim));
}

void dequantize_values(const PackedValues& values, const MutableTokens& out) {
  const int64_t dim = values.dim, groups = values.groups(), row_bytes = values.row_bytes();
  parallel_for(
      0, values.streams * values.tokens,
      [&](int64_t first, int64_t last) {
        std::vector<float> row(static_cast<size_t>(dim)), channel_scale(dim), channel_minimum(dim);
        for (int64_t item = first; item < last; ++item) {
          unpack_row(values.codes + item * row_bytes, values.bits, dim, row.data());
          const float16* scale = values.scale + item * groups;
          const float16* minimum = values.minimum + item * groups;
          for (int64_t k = 0; k < groups; ++k) {
            const int64_t g0 = k * values.group, g1 = std::min<int64_t>(dim, g0 + values.group);
            std::fill(channel_scale.begin() + g0, channel_scale.begin() + g1, to_float(scale[k]));
            std::fill(channel_minimum.begin() + g0, channel_minimum.begin() + g1, to_float(minimum[k]));
          }
          scale_shift(row.data(), channel_scale.data(), channel_minimum.data(), dim);
          store_row(out, item / values.tokens, item % values.tokens, row.data());
        }
      },
      grain_for(dim));
}

}  // namespace ragkernels::kv
