// The KV bitstream (docs/formats.md, "KV bitstream"): a compressed cache as
// a header followed by one self-checking chunk per layer, so it can be
// written and read layer by layer (streaming), e.g. the KV of a frequently
// retrieved passage stored once and loaded instead of re-running prefill.
//
// A layer's arrays are the sections below; each is stored raw or entropy
// coded (rans.h), whichever is smaller: quantization codes as symbols with an
// order-0 or an order-1 model (the same channel of the previous token as
// context), other arrays as byte planes with an order-0 model. Decoding is
// exact: the arrays come back bit for bit.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/tokens.h"

namespace ragkernels::kv::bitstream {

// Version 2 codes every rANS stream with four interleaved states; version 1
// (one state) is still read.
inline constexpr uint32_t kVersion = 2;
inline constexpr uint32_t kOldestVersion = 1;
inline constexpr size_t kHeaderBytes = 64;
inline constexpr size_t kLayerHeadBytes = 56;

struct StreamInfo {
  uint32_t layers = 0;
  uint32_t batch = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;    // keys
  uint32_t value_dim = 0;   // values
  uint32_t group_size = 0;
  uint32_t residual = 0;
  Dtype dtype = Dtype::kFloat32;  // of the full-precision residual
  uint64_t length = 0;            // tokens the cache has seen
  uint32_t version = kVersion;    // written by write_header (an older one only in tests), found by read_header
};

// Sections of a layer, in stream order. A full-precision layer (bits 0) has
// only the residual ones.
enum Section : int {
  kKeyCodes = 0, kKeyScale, kKeyMinimum, kKeyOffsets,
  kValueCodes, kValueScale, kValueMinimum,
  kResidualKeys, kResidualValues,
  kSections
};

struct LayerHead {
  uint32_t index = 0;
  int key_bits = 0;    // 0: full precision
  int value_bits = 0;
  uint64_t quantized = 0;  // tokens per stream
  uint64_t residual = 0;
  uint64_t blocks = 0;     // key blocks per stream
  uint64_t chunk_bytes = 0;

  bool compressed() const { return key_bits != 0; }
};

// Bytes of each section of a layer (0 for the sections it does not have).
std::array<uint64_t, kSections> section_bytes(const StreamInfo& info, const LayerHead& head);

void write_header(const StreamInfo& info, std::vector<uint8_t>& out);

// Reads and checks the 64-byte header (FormatError on any mismatch).
StreamInfo read_header(const uint8_t* data, size_t size);

// Appends layer `head.index`'s chunk; data[s] points at section s's bytes
// (section_bytes long; C-order arrays as ragkernels.kv lays them out).
void write_layer(const StreamInfo& info, LayerHead head, const std::array<const void*, kSections>& data,
                 std::vector<uint8_t>& out);

// Reads and checks a chunk's head (its first kLayerHeadBytes bytes):
// expected index, supported bits, sizes consistent with `info`.
LayerHead read_layer_head(const uint8_t* data, size_t size, const StreamInfo& info, uint32_t expected_index);

// Decodes a whole chunk (head.chunk_bytes bytes) into out[s] (section_bytes
// each), verifying every section's checksum and the key block offsets.
void read_layer(const uint8_t* chunk, size_t size, const StreamInfo& info, const LayerHead& head,
                const std::array<void*, kSections>& out);

}  // namespace ragkernels::kv::bitstream
