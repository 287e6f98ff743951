#include "sparse/block_codec.h"

#include <cstring>
#include <utility>

#include "core/error.h"

namespace ragkernels::sparse {

uint32_t bit_width(const uint32_t* values, size_t n) {
  uint32_t all = 0;
  for (size_t i = 0; i < n; ++i) all |= values[i];
  return all == 0 ? 0 : 32 - static_cast<uint32_t>(__builtin_clz(all));
}

void pack(const uint32_t* values, size_t n, uint32_t width, uint8_t* out) {
  std::memset(out, 0, packed_bytes(n, width));
  if (width == 0) return;
  for (size_t i = 0; i < n; ++i) {
    uint64_t bit = i * width;
    uint64_t shifted = static_cast<uint64_t>(values[i]) << (bit & 7);
    // A value of <= 32 bits shifted by <= 7 spans at most 5 bytes.
    for (size_t byte = bit >> 3; shifted != 0; ++byte, shifted >>= 8) {
      out[byte] |= static_cast<uint8_t>(shifted);
    }
  }
}

namespace {

inline uint64_t load_le64(const uint8_t* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);  // x86-64 is little-endian, as the format
  return word;
}

// The width is a template argument so that the shifts and the mask are
// constants and the loop unrolls: one instantiation per width.
template <uint32_t W>
void unpack_fixed(const uint8_t* in, size_t n, uint32_t* out) {
  constexpr uint64_t mask = (W == 32) ? 0xFFFFFFFFull : ((1ull << W) - 1);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t bit = i * W;
    out[i] = static_cast<uint32_t>((load_le64(in + (bit >> 3)) >> (bit & 7)) & mask);
  }
}

using UnpackFn = void (*)(const uint8_t*, size_t, uint32_t*);

template <uint32_t... W>
constexpr auto make_table(std::integer_sequence<uint32_t, W...>) {
  struct Table { UnpackFn fn[sizeof...(W)]; };
  return Table{{&unpack_fixed<W + 1>...}};
}

constexpr auto kUnpackers = make_table(std::make_integer_sequence<uint32_t, 32>{});

}  // namespace

void unpack(const uint8_t* in, size_t n, uint32_t width, uint32_t* out) {
  RK_DCHECK(width <= 32);
  if (width == 0) {
    std::memset(out, 0, n * sizeof(uint32_t));
    return;
  }
  kUnpackers.fn[width - 1](in, n, out);
}

}  // namespace ragkernels::sparse
