// Small building blocks shared by the metrics readers and builders.
//
// Arena: append-only string storage whose views never move, so Qrels/Run can
// hold std::string_view into it and keep it alive through a shared_ptr.
// hash_bytes: a fast 64-bit hash for docno/qid lookups (not cryptographic;
// every hit is confirmed by comparing the strings).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace ragkernels {
namespace metrics {
namespace detail {

class Arena {
 public:
  // Copies `s` into the arena; the returned view stays valid as long as the
  // arena lives (blocks are never reallocated).
  std::string_view store(std::string_view s) {
    char* p = take(s.size());
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return std::string_view(p, s.size());
  }

  // n bytes to write in place, valid as long as store()'s views.
  char* take(size_t n) {
    if (n > left_) {
      const size_t size = n > kBlock ? n : kBlock;
      blocks_.emplace_back(new char[size]);
      next_ = blocks_.back().get();
      left_ = size;
    }
    char* out = next_;
    next_ += n;
    left_ -= n;
    return out;
  }

 private:
  static constexpr size_t kBlock = 1 << 16;
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* next_ = nullptr;
  size_t left_ = 0;
};

inline uint64_t load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

inline uint64_t load32(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// Multiply-xorshift over 8-byte words; short keys (docnos are mostly under
// 16 bytes) are read with overlapping loads instead of a byte loop.
inline uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ULL * (n + 1);
  auto mix = [&h](uint64_t w) {
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
  };
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) mix(load64(p + i));
    if (i < n) mix(load64(p + n - 8));
  } else if (n >= 4) {
    mix(load32(p) | (load32(p + n - 4) << 32));
  } else if (n > 0) {
    mix(uint64_t(uint8_t(p[0])) | uint64_t(uint8_t(p[n / 2])) << 8 | uint64_t(uint8_t(p[n - 1])) << 16);
  }
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  h ^= h >> 32;
  return h;
}

struct StringViewHash {
  size_t operator()(std::string_view s) const { return static_cast<size_t>(hash_bytes(s)); }
};

// Equality for short strings without a libc call.
inline bool same_text(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  const size_t n = a.size();
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8)
      if (load64(a.data() + i) != load64(b.data() + i)) return false;
    return load64(a.data() + n - 8) == load64(b.data() + n - 8);
  }
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// Three-way byte-wise (unsigned, strcmp-like) comparison, inline for the
// short docnos that decide score ties.
inline int compare_text(std::string_view a, std::string_view b) {
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// The first 8 bytes of s as a big-endian integer, zero-padded: a < b as
// integers implies compare_text(a, b) < 0, and a > b the reverse, so sorting
// by it reads the text only on equal prefixes.
inline uint64_t text_prefix(std::string_view s) {
  uint64_t w = 0;
  if (s.size() >= 8) {
    w = load64(s.data());
  } else if (!s.empty()) {
    std::memcpy(&w, s.data(), s.size());
  }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
