// The KV bitstream (bitstream.h; byte layout in docs/formats.md).
#include "kv/bitstream.h"

#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/file_format.h"
#include "kv/quantize.h"
#include "kv/rans.h"

namespace ragkernels::kv::bitstream {

namespace {

constexpr char kStreamMagic[8] = {'R', 'K', 'K', 'V', 'S', 'T', 'R', 'M'};
constexpr char kLayerMagic[8] = {'R', 'K', 'K', 'V', 'L', 'A', 'Y', 'R'};
constexpr size_t kSectionHeadBytes = 32;
constexpr uint64_t kMaxLayerBytes = uint64_t{1} << 40;  // what one layer may decode to

enum Mode : uint8_t { kRaw = 0, kBytePlanes = 1, kCodesOrder0 = 2, kCodesOrder1 = 3 };

void put(std::vector<uint8_t>& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint64_t get(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

void patch(std::vector<uint8_t>& out, size_t at, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

size_t itemsize(Dtype d) { return d == Dtype::kFloat32 ? 4 : 2; }

// a * b, FormatError past kMaxLayerBytes (a corrupt header must not ask for petabytes)
uint64_t product(std::initializer_list<uint64_t> factors) {
  uint64_t out = 1;
  for (uint64_t f : factors) {
    RK_CHECK_FORMAT(f == 0 || out <= kMaxLayerBytes / f, "kv stream: a layer would decode to more than 2^40 bytes");
    out *= f;
  }
  RK_CHECK_FORMAT(out <= kMaxLayerBytes, "kv stream: a layer would decode to more than 2^40 bytes");
  return out;
}

// The codes of `rows` packed rows as one symbol per code.
std::vector<uint8_t> symbols_of(const uint8_t* packed, uint64_t rows, uint64_t dim, int bits) {
  std::vector<uint8_t> out(rows * dim);
  const int64_t row_bytes = packed_bytes(static_cast<int64_t>(dim), bits);
  for (uint64_t r = 0; r < rows; ++r) {
    unpack_codes(packed + r * row_bytes, bits, static_cast<int64_t>(dim), out.data() + r * dim);
  }
  return out;
}

// What a section is, for choosing its coding.
struct SectionKind {
  bool codes = false;  // packed quantization codes: rows of `dim` codes of `bits`
  uint64_t rows = 0, dim = 0;
  int bits = 0;
  size_t item = 1;  // element size in bytes (byte planes)
  int states = 1;   // interleaved rANS states (by the stream's version)
};

std::vector<uint8_t> byte_planes(const uint8_t* data, uint64_t bytes, size_t item, int states) {
  std::vector<uint8_t> out;
  const uint64_t count = bytes / item;
  std::vector<uint8_t> plane(count);
  for (size_t k = 0; k < item; ++k) {
    for (uint64_t i = 0; i < count; ++i) plane[i] = data[i * item + k];
    std::vector<uint8_t> coded;
    rans::encode(plane.data(), 1, static_cast<int64_t>(count), 8, 0, states, coded);
    put(out, coded.size(), 8);
    out.insert(out.end(), coded.begin(), coded.end());
  }
  return out;
}

void read_byte_planes(const uint8_t* data, uint64_t size, uint64_t bytes, size_t item, int states, uint8_t* out) {
  const uint64_t count = bytes / item;
  std::vector<uint8_t> plane(count);
  uint64_t at = 0;
  for (size_t k = 0; k < item; ++k) {
    RK_CHECK_FORMAT(size - at >= 8, "kv stream: a byte-plane section is truncated");
    const uint64_t length = get(data + at, 8);
    at += 8;
    RK_CHECK_FORMAT(length <= size - at, "kv stream: a byte-plane section is truncated");
    rans::decode(data + at, length, 1, static_cast<int64_t>(count), 8, 0, states, plane.data());
    at += length;
    for (uint64_t i = 0; i < count; ++i) out[i * item + k] = plane[i];
  }
  RK_CHECK_FORMAT(at == size, "kv stream: bytes left over after a byte-plane section");
}

// Appends one section: the smallest of its candidate codings.
void write_section(int id, const uint8_t* data, uint64_t bytes, const SectionKind& kind, std::vector<uint8_t>& out) {
  Mode mode = kRaw;
  std::vector<uint8_t> best(data, data + bytes);
  auto consider = [&](Mode m, std::vector<uint8_t> coded) {
    if (coded.size() < best.size()) {
      mode = m;
      best = std::move(coded);
    }
  };
  if (bytes > 0 && kind.codes) {
    const std::vector<uint8_t> symbols = symbols_of(data, kind.rows, kind.dim, kind.bits);
    for (int order : {0, 1}) {
      std::vector<uint8_t> coded;
      rans::encode(symbols.data(), static_cast<int64_t>(kind.rows), static_cast<int64_t>(kind.dim), kind.bits, order,
                   kind.states, coded);
      consider(order ? kCodesOrder1 : kCodesOrder0, std::move(coded));
    }
  } else if (bytes > 0) {
    consider(kBytePlanes, byte_planes(data, bytes, kind.item, kind.states));
  }
  put(out, static_cast<uint64_t>(id), 1);
  put(out, mode, 1);
  put(out, 0, 6);
  put(out, bytes, 8);
  put(out, best.size(), 8);
  put(out, format::xxh64(best.data(), best.size()), 8);
  out.insert(out.end(), best.begin(), best.end());
}

// Decodes one section at data[at...] into out (exactly `bytes`); returns the bytes consumed.
uint64_t read_section(const uint8_t* data, uint64_t size, int id, uint64_t bytes, const SectionKind& kind,
                      uint8_t* out) {
  RK_CHECK_FORMAT(size >= kSectionHeadBytes, "kv stream: a layer chunk is truncated (section ", id, ")");
  RK_CHECK_FORMAT(get(data, 1) == static_cast<uint64_t>(id), "kv stream: expected section ", id, ", found ",
                  get(data, 1));
  const uint64_t mode = get(data + 1, 1);
  RK_CHECK_FORMAT(get(data + 2, 6) == 0, "kv stream: reserved bytes of section ", id, " are not zero");
  RK_CHECK_FORMAT(get(data + 8, 8) == bytes, "kv stream: section ", id, " holds ", get(data + 8, 8),
                  " bytes, the layer head implies ", bytes);
  const uint64_t stored = get(data + 16, 8);
  RK_CHECK_FORMAT(stored <= size - kSectionHeadBytes, "kv stream: section ", id, " is truncated");
  const uint8_t* payload = data + kSectionHeadBytes;
  RK_CHECK_FORMAT(format::xxh64(payload, stored) == get(data + 24, 8), "kv stream: section ", id,
                  " fails its checksum (corrupt)");
  switch (mode) {
    case kRaw:
      RK_CHECK_FORMAT(stored == bytes, "kv stream: raw section ", id, " has ", stored, " bytes, not ", bytes);
      if (bytes) std::memcpy(out, payload, bytes);
      break;
    case kBytePlanes:
      RK_CHECK_FORMAT(!kind.codes && bytes > 0, "kv stream: section ", id, " cannot be byte planes");
      read_byte_planes(payload, stored, bytes, kind.item, kind.states, out);
      break;
    case kCodesOrder0:
    case kCodesOrder1: {
      RK_CHECK_FORMAT(kind.codes && bytes > 0, "kv stream: section ", id, " holds no codes");
      std::vector<uint8_t> symbols(kind.rows * kind.dim);
      rans::decode(payload, stored, static_cast<int64_t>(kind.rows), static_cast<int64_t>(kind.dim), kind.bits,
                   mode == kCodesOrder1 ? 1 : 0, kind.states, symbols.data());
      const int64_t row_bytes = packed_bytes(static_cast<int64_t>(kind.dim), kind.bits);
      for (uint64_t r = 0; r < kind.rows; ++r) {
        pack_codes(symbols.data() + r * kind.dim, kind.bits, static_cast<int64_t>(kind.dim), out + r * row_bytes);
      }
      break;
    }
    default:
      RK_CHECK_FORMAT(false, "kv stream: section ", id, " has an unknown coding ", mode);
  }
  return kSectionHeadBytes + stored;
}

std::array<SectionKind, kSections> kinds_of(const StreamInfo& info, const LayerHead& head) {
  const uint64_t streams = uint64_t{info.batch} * info.kv_heads;
  std::array<SectionKind, kSections> k{};
  k[kKeyCodes] = {true, streams * head.quantized, info.head_dim, head.key_bits, 1};
  k[kValueCodes] = {true, streams * head.quantized, info.value_dim, head.value_bits, 1};
  for (int s : {kKeyScale, kKeyMinimum, kValueScale, kValueMinimum}) k[s].item = 2;
  k[kKeyOffsets].item = 4;
  k[kResidualKeys].item = k[kResidualValues].item = itemsize(info.dtype);
  for (SectionKind& kind : k) kind.states = info.version >= 2 ? 4 : 1;
  return k;
}

bool supported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

}  // namespace

std::array<uint64_t, kSections> section_bytes(const StreamInfo& info, const LayerHead& h) {
  const uint64_t streams = product({info.batch, info.kv_heads});
  std::array<uint64_t, kSections> b{};
  if (h.compressed()) {
    const uint64_t groups = (info.value_dim + info.group_size - 1) / info.group_size;
    b[kKeyCodes] = product({streams, h.quantized, static_cast<uint64_t>(packed_bytes(info.head_dim, h.key_bits))});
    b[kKeyScale] = b[kKeyMinimum] = product({streams, h.blocks, info.head_dim, 2});
    b[kKeyOffsets] = product({streams, h.blocks + 1, 4});
    b[kValueCodes] =
        product({streams, h.quantized, static_cast<uint64_t>(packed_bytes(info.value_dim, h.value_bits))});
    b[kValueScale] = b[kValueMinimum] = product({streams, h.quantized, groups, 2});
  }
  b[kResidualKeys] = product({streams, h.residual, info.head_dim, itemsize(info.dtype)});
  b[kResidualValues] = product({streams, h.residual, info.value_dim, itemsize(info.dtype)});
  uint64_t total = 0;
  for (uint64_t x : b) total = product({1, total + x});
  return b;
}

void write_header(const StreamInfo& info, std::vector<uint8_t>& out) {
  const size_t at = out.size();
  RK_CHECK_ARG(info.version >= kOldestVersion && info.version <= kVersion, "kv stream: cannot write version ",
               info.version);
  out.insert(out.end(), kStreamMagic, kStreamMagic + 8);
  put(out, info.version, 4);
  put(out, kHeaderBytes, 4);
  for (uint32_t v : {info.layers, info.batch, info.kv_heads, info.head_dim, info.value_dim, info.group_size,
                     info.residual}) {
    put(out, v, 4);
  }
  put(out, static_cast<uint64_t>(info.dtype), 1);
  put(out, 0, 3);
  put(out, info.length, 8);
  put(out, format::xxh64(out.data() + at, 56), 8);
}

StreamInfo read_header(const uint8_t* p, size_t size) {
  RK_CHECK_FORMAT(size >= kHeaderBytes, "kv stream: ", size, " bytes, shorter than the ", kHeaderBytes,
                  "-byte header (truncated, or not a ragkernels KV stream)");
  RK_CHECK_FORMAT(std::memcmp(p, kStreamMagic, 8) == 0, "kv stream: bad magic (not a ragkernels KV stream)");
  const uint64_t version = get(p + 8, 4);
  RK_CHECK_FORMAT(version >= kOldestVersion && version <= kVersion, "kv stream: format version ", version,
                  " (this ragkernels reads versions ", kOldestVersion, " to ", kVersion,
                  version > kVersion ? "; a newer stream needs a newer ragkernels)" : ")");
  RK_CHECK_FORMAT(get(p + 12, 4) == kHeaderBytes, "kv stream: header size ", get(p + 12, 4), ", expected ",
                  kHeaderBytes);
  RK_CHECK_FORMAT(format::xxh64(p, 56) == get(p + 56, 8), "kv stream: the header fails its checksum (corrupt)");
  StreamInfo info;
  info.version = static_cast<uint32_t>(version);
  uint32_t* fields[] = {&info.layers, &info.batch, &info.kv_heads, &info.head_dim,
                        &info.value_dim, &info.group_size, &info.residual};
  for (int i = 0; i < 7; ++i) *fields[i] = static_cast<uint32_t>(get(p + 16 + 4 * i, 4));
  const uint64_t dtype = get(p + 44, 1);
  RK_CHECK_FORMAT(dtype <= 2, "kv stream: unknown residual dtype code ", dtype);
  RK_CHECK_FORMAT(get(p + 45, 3) == 0, "kv stream: reserved header bytes are not zero");
  info.dtype = static_cast<Dtype>(dtype);
  info.length = get(p + 48, 8);
  RK_CHECK_FORMAT(info.layers >= 1 && info.batch >= 1 && info.kv_heads >= 1 && info.head_dim >= 1 &&
                      info.value_dim >= 1 && info.group_size >= 1,
                  "kv stream: the header has a zero layer, batch, head, dimension or group size count");
  return info;
}

void write_layer(const StreamInfo& info, LayerHead head, const std::array<const void*, kSections>& data,
                 std::vector<uint8_t>& out) {
  RK_CHECK_ARG(head.key_bits == 0 ? head.value_bits == 0 && head.quantized == 0 && head.blocks == 0
                                  : supported(head.key_bits) && supported(head.value_bits),
               "kv stream: bad layer bits ", head.key_bits, "/", head.value_bits);
  const auto bytes = section_bytes(info, head);
  const auto kinds = kinds_of(info, head);
  const size_t at = out.size();
  out.insert(out.end(), kLayerMagic, kLayerMagic + 8);
  put(out, head.index, 4);
  put(out, static_cast<uint64_t>(head.key_bits), 1);
  put(out, static_cast<uint64_t>(head.value_bits), 1);
  put(out, 0, 2);
  put(out, head.quantized, 8);
  put(out, head.residual, 8);
  put(out, head.blocks, 8);
  put(out, 0, 8);  // chunk bytes, then the head's checksum: patched below
  put(out, 0, 8);
  for (int s = head.compressed() ? 0 : kResidualKeys; s < kSections; ++s) {
    write_section(s, static_cast<const uint8_t*>(data[s]), bytes[s], kinds[s], out);
  }
  patch(out, at + 40, out.size() - at, 8);
  patch(out, at + 48, format::xxh64(out.data() + at, 48), 8);
}

LayerHead read_layer_head(const uint8_t* p, size_t size, const StreamInfo& info, uint32_t expected_index) {
  RK_CHECK_FORMAT(size >= kLayerHeadBytes, "kv stream: truncated before layer ", expected_index);
  RK_CHECK_FORMAT(std::memcmp(p, kLayerMagic, 8) == 0, "kv stream: layer ", expected_index,
                  " does not start with the layer magic (corrupt or misaligned)");
  RK_CHECK_FORMAT(format::xxh64(p, 48) == get(p + 48, 8), "kv stream: the head of layer ", expected_index,
                  " fails its checksum (corrupt)");
  LayerHead h;
  h.index = static_cast<uint32_t>(get(p + 8, 4));
  RK_CHECK_FORMAT(h.index == expected_index, "kv stream: found layer ", h.index, " where layer ", expected_index,
                  " was expected");
  h.key_bits = static_cast<int>(get(p + 12, 1));
  h.value_bits = static_cast<int>(get(p + 13, 1));
  RK_CHECK_FORMAT(get(p + 14, 2) == 0, "kv stream: reserved bytes of layer ", h.index, " are not zero");
  h.quantized = get(p + 16, 8);
  h.residual = get(p + 24, 8);
  h.blocks = get(p + 32, 8);
  h.chunk_bytes = get(p + 40, 8);
  RK_CHECK_FORMAT(h.key_bits == 0 ? h.value_bits == 0 && h.quantized == 0 && h.blocks == 0
                                  : supported(h.key_bits) && supported(h.value_bits),
                  "kv stream: layer ", h.index, " has unsupported bits ", h.key_bits, "/", h.value_bits);
  // every block holds a token of some stream
  RK_CHECK_FORMAT(h.quantized <= std::numeric_limits<int32_t>::max() &&
                      h.blocks <= product({info.batch, info.kv_heads, h.quantized}),
                  "kv stream: layer ", h.index, " declares an impossible token or block count");
  RK_CHECK_FORMAT(h.quantized + h.residual <= info.length, "kv stream: layer ", h.index, " holds ",
                  h.quantized + h.residual, " tokens, more than the ", info.length, " the stream has seen");
  RK_CHECK_FORMAT(h.chunk_bytes >= kLayerHeadBytes, "kv stream: layer ", h.index, " has a bad chunk size");
  // Before anything is allocated: sizes past the limit, or more than the chunk's bytes can code.
  const auto bytes = section_bytes(info, h);
  uint64_t total = 0;
  for (uint64_t b : bytes) total += b;
  RK_CHECK_FORMAT(total / 4 <= rans::kMaxSymbolsPerByte * h.chunk_bytes, "kv stream: layer ", h.index,
                  " declares ", total, " bytes of arrays, more than its ", h.chunk_bytes, " bytes can code");
  return h;
}

void read_layer(const uint8_t* chunk, size_t size, const StreamInfo& info, const LayerHead& head,
                const std::array<void*, kSections>& out) {
  RK_CHECK_FORMAT(size == head.chunk_bytes, "kv stream: layer ", head.index, " is truncated (", size, " of ",
                  head.chunk_bytes, " bytes)");
  const auto bytes = section_bytes(info, head);
  const auto kinds = kinds_of(info, head);
  uint64_t at = kLayerHeadBytes;
  const uint64_t end = size;
  for (int s = head.compressed() ? 0 : kResidualKeys; s < kSections; ++s) {
    at += read_section(chunk + at, end - at, s, bytes[s], kinds[s], static_cast<uint8_t*>(out[s]));
  }
  RK_CHECK_FORMAT(at == end, "kv stream: layer ", head.index, " has ", end - at, " bytes after its sections");
  if (!head.compressed()) return;
  const uint64_t streams = uint64_t{info.batch} * info.kv_heads;
  const auto* offsets = static_cast<const int32_t*>(out[kKeyOffsets]);
  for (uint64_t s = 0; s < streams; ++s) {
    const int32_t* o = offsets + s * (head.blocks + 1);
    bool ok = o[0] == 0 && static_cast<uint64_t>(o[head.blocks]) == head.quantized;
    for (uint64_t j = 0; ok && j < head.blocks; ++j) ok = o[j + 1] >= o[j];
    RK_CHECK_FORMAT(ok, "kv stream: layer ", head.index, " has key block offsets that do not cover its ",
                    head.quantized, " quantized tokens in order");
  }
}

}  // namespace ragkernels::kv::bitstream
