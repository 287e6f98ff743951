// Static rANS entropy coding of small-alphabet symbol arrays (the KV
// bitstream's codes and byte planes; docs/formats.md, "KV bitstream").
//
// Symbols form a [rows][cols] array. A model is a set of frequency tables,
// one per context: order 0 has one context; order 1 conditions each symbol
// on the symbol above it (same column, previous row: the same channel of the
// previous token), row 0 on context 0. Frequencies sum to 2^12 and none is
// 2^12 (every symbol costs at least log2(4096/4095) bits, so n symbols take
// at least n / 22,700 bytes: kMaxSymbolsPerByte bounds what a stream decodes
// to). The coder is byte-oriented rANS with 32-bit states (Duda 2013;
// Giesen's rans_byte), `states` of them interleaved: symbol i is coded by
// state i mod states, so a decoder keeps that many independent chains of
// dependent operations in flight (format version 1 streams use one state,
// version 2 four).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ragkernels::kv::rans {

inline constexpr int kProbBits = 12;
inline constexpr uint64_t kMaxSymbolsPerByte = 22800;
inline constexpr int kMaxStates = 8;

// Appends the encoding of `symbols` (each < 2^alphabet_bits, alphabet_bits in
// 1..8) to `out`: the frequency tables, then the rANS payload.
void encode(const uint8_t* symbols, int64_t rows, int64_t cols, int alphabet_bits, int order, int states,
            std::vector<uint8_t>& out);

// Decodes exactly rows * cols symbols from data[0, size): FormatError when the
// tables are invalid, the payload is truncated or corrupt (the final state
// must be the initial one), or bytes are left over.
void decode(const uint8_t* data, size_t size, int64_t rows, int64_t cols, int alphabet_bits, int order, int states,
            uint8_t* symbols);

}  // namespace ragkernels::kv::rans
