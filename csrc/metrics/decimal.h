// Integer ids as trec_eval sees them: the decimal text str(id).
//
// The array builders keep ids as integers while grouping and sorting, so
// they need the text's strcmp order without writing the text:
// compare_decimal(a, b) has the sign of strcmp(str(a), str(b)). '-' (0x2D)
// sorts before every digit, so negatives come first, and among them the
// digits after the '-' compare as for non-negatives ("-1" < "-10" < "-2").
#pragma once

#include <cstdint>
#include <cstring>

namespace ragkernels {
namespace metrics {
namespace detail {

inline constexpr uint64_t kPow10u[20] = {1ULL,
                                         10ULL,
                                         100ULL,
                                         1000ULL,
                                         10000ULL,
                                         100000ULL,
                                         1000000ULL,
                                         10000000ULL,
                                         100000000ULL,
                                         1000000000ULL,
                                         10000000000ULL,
                                         100000000000ULL,
                                         1000000000000ULL,
                                         10000000000000ULL,
                                         100000000000000ULL,
                                         1000000000000000ULL,
                                         10000000000000000ULL,
                                         100000000000000000ULL,
                                         1000000000000000000ULL,
                                         10000000000000000000ULL};

// Digits of v (1 for 0): log10 from the bit length, corrected by one compare.
// v | 1 keeps the count (powers of 10 are even) and avoids clz(0).
inline int decimal_digits(uint64_t v) {
  v |= 1;
  const int t = ((64 - __builtin_clzll(v)) * 1233) >> 12;
  return t - (v < kPow10u[t]) + 1;
}

inline uint64_t magnitude(int64_t v) { return v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v); }

// Length of str(v).
inline int decimal_length(int64_t v) { return decimal_digits(magnitude(v)) + (v < 0); }

// Writes str(v) at out (no terminator); returns its length.
inline int write_decimal(int64_t v, char* out) {
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  uint64_t m = magnitude(v);
  const int len = decimal_length(v);
  char* p = out + len;
  while (m >= 100) {
    const uint64_t r = m % 100;
    m /= 100;
    p -= 2;
    std::memcpy(p, kPairs + 2 * r, 2);
  }
  if (m >= 10) {
    p -= 2;
    std::memcpy(p, kPairs + 2 * m, 2);
  } else {
    *--p = static_cast<char>('0' + m);
  }
  if (v < 0) out[0] = '-';
  return len;
}

// Sign of strcmp(str(a), str(b)). The shorter magnitude is scaled to the
// longer's digit count (at most 19 digits, so no overflow); equal scaled
// values mean the shorter text is a prefix of the longer.
inline int compare_decimal(int64_t a, int64_t b) {
  if (a == b) return 0;
  if ((a < 0) != (b < 0)) return a < 0 ? -1 : 1;
  const uint64_t x = magnitude(a), y = magnitude(b);
  const int lx = decimal_digits(x), ly = decimal_digits(y);
  if (lx == ly) return x < y ? -1 : 1;
  if (lx < ly) {
    const uint64_t xs = x * kPow10u[ly - lx];
    return xs <= y ? -1 : 1;
  }
  const uint64_t ys = y * kPow10u[lx - ly];
  return x < ys ? -1 : 1;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
