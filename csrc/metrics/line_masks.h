// Internal: the readers' line iteration (trec_io.cpp), and splitting short
// lines into whitespace-separated tokens with bit masks instead of a byte
// loop (tested against the byte loop in tests/cpp/test_metrics_lines.cpp).
//
// Why: a run line is ~36 bytes and 6 tokens; walking it byte by byte with a
// branch per byte made tokenizing most of read_run. Classifying 64 bytes at
// once (SSE2, which every x86-64 has; a plain loop elsewhere) gives the line
// end and every token boundary as bit masks, read with ctz.
//
// "Blank" here is exactly trec_io's set: ' ', '\t', '\r', '\v', '\f'.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "metrics/arena.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ragkernels {
namespace metrics {
namespace detail {

// Bit i describes byte p[i] of the 64 readable bytes at p.
struct ByteMasks {
  uint64_t blank = 0;
  uint64_t newline = 0;
};

inline ByteMasks classify64(const char* p) {
  ByteMasks m;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n'), sp = _mm_set1_epi8(' ');
  const __m128i lo = _mm_set1_epi8(8), hi = _mm_set1_epi8(14);
  for (int i = 0; i < 4; ++i) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    const __m128i is_nl = _mm_cmpeq_epi8(v, nl);
    // '\t' .. '\r' (signed compare: bytes >= 0x80 are negative, so outside).
    const __m128i ctrl = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
    const __m128i blank = _mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_andnot_si128(is_nl, ctrl));
    m.blank |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(blank))) << (16 * i);
    m.newline |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(is_nl))) << (16 * i);
  }
#else
  for (int i = 0; i < 64; ++i) {
    const char c = p[i];
    const bool b = c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
    m.blank |= static_cast<uint64_t>(b) << i;
    m.newline |= static_cast<uint64_t>(c == '\n') << i;
  }
#endif
  return m;
}

// The tokens of one line of at most 63 bytes: bit i of `first` (`last`) is
// set when byte i is the first (last) byte of a token.
struct LineTokens {
  uint64_t first = 0;
  uint64_t last = 0;

  // Whether there are at least n tokens (both masks have one bit per token;
  // a loop, because baseline x86-64 has no popcnt instruction).
  bool at_least(int n) const {
    uint64_t f = first;
    for (int i = 0; i < n; ++i, f &= f - 1)
      if (f == 0) return false;
    return true;
  }

  // Removes and returns the leftmost token; count() must be > 0.
  std::string_view pop(const char* line) {
    const int b = __builtin_ctzll(first), e = __builtin_ctzll(last);
    first &= first - 1;
    last &= last - 1;
    return std::string_view(line + b, static_cast<size_t>(e - b + 1));
  }
};

// Tokens of the line of length `len` (< 64) whose bytes were classified in m.
inline LineTokens line_tokens(const ByteMasks& m, int len) {
  const uint64_t word = ~m.blank & ((uint64_t(1) << len) - 1);  // token bytes
  return LineTokens{word & ~(word << 1), word & ~(word >> 1)};
}

// First '\n' in [p, e) or nullptr. Lines are ~40 bytes, where a libc memchr
// call costs more than its search; this tests 8 bytes at a time (a zero byte
// of w ^ "\n\n..." marks a newline; the lowest flagged byte is exact).
inline const char* find_newline(const char* p, const char* e) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  for (; e - p >= 8; p += 8) {
    const uint64_t w = load64(p) ^ (kOnes * '\n');
    const uint64_t t = (w - kOnes) & ~w & kHigh;
    if (t != 0) return p + (__builtin_ctzll(t) >> 3);
  }
#endif
  return static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(e - p)));
}

// Calls fn(line_begin, line_end) for each physical line of [p, e).
template <typename Fn>
void for_each_line(const char* p, const char* e, Fn&& fn) {
  while (p < e) {
    const char* nl = find_newline(p, e);
    const char* le = nl ? nl : e;
    if (!fn(p, le)) return;
    p = nl ? nl + 1 : e;
  }
}

// for_each_line, handing fn(line_begin, line_end, tokens) the line's token
// masks when it is shorter than 64 bytes and 64 bytes can be read from its
// start (tokens is nullptr otherwise: the caller falls back to the byte loop).
template <typename Fn>
void for_each_line_tokens(const char* p, const char* e, const char* text_end, Fn&& fn) {
  while (p < e) {
    if (text_end - p >= 64) {
      const ByteMasks m = classify64(p);
      const int len = m.newline ? __builtin_ctzll(m.newline) : 64;
      if (m.newline != 0 && len < e - p) {  // the newline ends a line of this chunk
        const LineTokens tok = line_tokens(m, len);
        if (!fn(p, p + len, &tok)) return;
        p += len + 1;
        continue;
      }
    }
    const char* nl = find_newline(p, e);
    const char* le = nl ? nl : e;
    if (!fn(p, le, static_cast<const LineTokens*>(nullptr))) return;
    p = nl ? nl + 1 : e;
  }
}

// skip_line for a line given as tokens: blank, or its first token starts with '#'.
inline bool skip_tokens(const char* lb, const LineTokens& tok) {
  return tok.first == 0 || lb[__builtin_ctzll(tok.first)] == '#';
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
