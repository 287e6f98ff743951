// Bit-packing of small blocks of unsigned integers: the posting compression.
//
// A block of n <= kBlockSize values is stored with one bit width w (the width
// of its largest value): value i occupies bits [i*w, (i+1)*w) of the block's
// bytes, least significant bit first, so a block takes ceil(n*w/8) bytes.
// Doc ids are stored as gaps (d[i] - d[i-1] - 1, the first against the previous
// block's last doc), frequencies as tf - 1, so typical widths are 1..8 bits.
//
// Decoding reads whole 64-bit words, so a buffer that holds packed blocks must
// have kReadPadding readable bytes after its last block.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ragkernels::sparse {

inline constexpr size_t kBlockSize = 128;
inline constexpr size_t kReadPadding = 8;

// Bits needed to store every one of values[0, n): 0 when all are zero.
uint32_t bit_width(const uint32_t* values, size_t n);

// Bytes that n values of `width` bits take.
inline size_t packed_bytes(size_t n, uint32_t width) { return (n * width + 7) / 8; }

// Writes values[0, n) with `width` bits each to out (packed_bytes(n, width)
// bytes, which the caller provides). Values must fit in `width` bits.
void pack(const uint32_t* values, size_t n, uint32_t width, uint8_t* out);

// Reads n values of `width` bits from in into out[0, n). Reads up to
// kReadPadding bytes past the packed bytes (see above).
void unpack(const uint8_t* in, size_t n, uint32_t width, uint32_t* out);

}  // namespace ragkernels::sparse
