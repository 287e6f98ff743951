// IEEE binary16, the storage type of float16 vectors.
#pragma once

#include <cstdint>
#include <cstring>

namespace ragkernels {

// _Float16 is the standard name (x86-64 since GCC 12, every target since
// GCC 13). GCC 12 on aarch64 has only ARM's __fp16: the same IEEE format (the
// only one on aarch64), converted with the same round-to-nearest-even, and
// arithmetic on it is done in float, as our kernels do anyway.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
using float16 = __fp16;
#else
using float16 = _Float16;
#endif

// Conversions from and to the bits of a float16, exact (round to nearest
// even), in plain integer and float arithmetic: x86-64's baseline has no F16C,
// and there GCC converts a float16 with a library call per value; these
// inline and vectorize on every target.
inline float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t magnitude = half & 0x7fffu;
  uint32_t bits = magnitude << 13;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  value *= 0x1p112f;  // rebias the exponent; a subnormal half becomes an exact normal float
  std::memcpy(&bits, &value, sizeof bits);
  if (magnitude >= 0x7c00u) bits = (magnitude << 13) | 0x7f800000u;  // inf, NaN (payload kept)
  bits |= sign;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline uint16_t float_to_half(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint32_t out;
  if (bits >= 0x47800000u) {  // >= 65536, inf or NaN
    out = bits > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (bits < 0x38800000u) {  // below 2^-14: a subnormal half (the addition rounds)
    float magnitude;
    std::memcpy(&magnitude, &bits, sizeof magnitude);
    magnitude += 0.5f;
    std::memcpy(&out, &magnitude, sizeof out);
    out -= 0x3f000000u;
  } else {
    const uint32_t odd = (bits >> 13) & 1u;
    bits += 0xc8000fffu + odd;  // rebias the exponent (15 - 127) and round to nearest even
    out = bits >> 13;
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

}  // namespace ragkernels
