// The one binary file format of ragkernels: every index and cache is a file of
// named, typed, checksummed sections. Byte layout, checksum, alignment, atomic
// write protocol and versioning policy: docs/formats.md.
//
//   [header 128 B][section table 64 B x n][pad][payload 0][pad][payload 1]...
//
// Payloads start at multiples of kAlignment (64) so that, once the file is
// mmapped (page-aligned base), a section can be viewed in place as an array of
// any dtype, by C++ or by a numpy array that holds the MappedFile alive.
//
// Errors: a caller mistake (bad name, kind, dtype/size) -> ValueError; a file
// that cannot be opened/written -> IOError; a file that is truncated, corrupt,
// of the wrong kind or of a future version -> FormatError. Every IOError and
// FormatError message starts with the file path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/array_view.h"
#include "core/error.h"

namespace ragkernels::format {

inline constexpr uint32_t kFormatVersion = 1;   // the newest version this code reads and writes
inline constexpr uint64_t kAlignment = 64;      // payload offsets are multiples of this
inline constexpr size_t kMaxNameBytes = 32;     // section names and the file kind

// Element type of a section. The codes are part of the file format (frozen;
// docs/formats.md); `bytes` is an opaque payload (UTF-8 text, packed records).
enum class DType : uint32_t {
  bytes = 0, u8 = 1, i8 = 2, u16 = 3, i16 = 4, u32 = 5, i32 = 6,
  u64 = 7, i64 = 8, f16 = 9, bf16 = 10, f32 = 11, f64 = 12,
};
size_t dtype_size(DType d);        // 1 for bytes; throws ValueError on an unknown code
const char* dtype_name(DType d);   // "f32", ...; "unknown" for an unknown code

template <typename T> struct dtype_of;  // C++ type -> DType, for typed access
template <> struct dtype_of<uint8_t>  { static constexpr DType value = DType::u8; };
template <> struct dtype_of<int8_t>   { static constexpr DType value = DType::i8; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::u16; };
template <> struct dtype_of<int16_t>  { static constexpr DType value = DType::i16; };
template <> struct dtype_of<uint32_t> { static constexpr DType value = DType::u32; };
template <> struct dtype_of<int32_t>  { static constexpr DType value = DType::i32; };
template <> struct dtype_of<uint64_t> { static constexpr DType value = DType::u64; };
template <> struct dtype_of<int64_t>  { static constexpr DType value = DType::i64; };
template <> struct dtype_of<float>    { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double>   { static constexpr DType value = DType::f64; };

// XXH64 (Yann Collet's xxHash, 64-bit variant) of `n` bytes, bit-exact with
// the reference implementation (python: xxhash.xxh64_intdigest(b, seed)).
// Bytes are read little-endian whatever the host, so a checksum names bytes.
uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);

// One section to write. `data` may be null only when `bytes` is 0; `bytes`
// must be a multiple of dtype_size(dtype). Name: 1..32 bytes, no NUL, unique.
struct SectionIn {
  std::string name;
  DType dtype = DType::bytes;
  const void* data = nullptr;
  uint64_t bytes = 0;
};

// Writes `sections`, in order, to `path` atomically: a temporary file
// "<path>.tmp.<pid>.<random hex>" in the same directory is written, fsynced,
// renamed over `path`, then the directory is fsynced. On any failure the
// temporary is removed and IOError is thrown; `path` then holds either its old
// content or nothing, never a partial file (except when only the final
// directory fsync fails: the new file is then in place, its durability not
// assured). `kind` (1..32 bytes, no NUL)
// names what the file holds, e.g. "bm25-index". Bad names/sizes: ValueError,
// thrown before anything touches the disk.
void write_file(const std::string& path, const std::string& kind,
                const std::vector<SectionIn>& sections);

// One section of an open file; `data` points into the mapping (64-aligned)
// and is valid while the MappedFile lives.
struct SectionOut {
  std::string name;
  DType dtype = DType::bytes;
  const void* data = nullptr;
  uint64_t bytes = 0;
  uint64_t count() const { return bytes / dtype_size(dtype); }  // elements
};

// A file opened read-only and mmapped (MAP_SHARED, PROT_READ). Held through a
// shared_ptr: every view of a section (a numpy array's base object included)
// keeps a copy, and the mapping is unmapped when the last one goes. Because
// writers replace files by rename, never in place, a mapping stays valid and
// unchanged after the file is overwritten.
class MappedFile {
 public:
  // Opens and validates `path`: magic, byte order, version, header and table
  // checksums, section bounds and alignment, file size, and, when
  // `expected_kind` is non-empty, the kind. With verify=true (default) every
  // payload checksum is verified too (reads the whole file once; XXH64 runs
  // at memory speed); verify=false skips only that, for huge trusted files.
  // Missing/unreadable file -> IOError; anything wrong inside -> FormatError.
  // (Non-const pointee only so pybind11 can hold it; every member is const.)
  static std::shared_ptr<MappedFile> open(const std::string& path,
                                          const std::string& expected_kind = "",
                                          bool verify = true);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& kind() const { return kind_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  const std::vector<SectionOut>& sections() const { return sections_; }  // file order

  const SectionOut* find(const std::string& name) const;  // nullptr when absent
  const SectionOut& section(const std::string& name) const;  // absent -> FormatError

  // Section `name` as a contiguous 1-D array of T; FormatError when absent or
  // when its dtype is not dtype_of<T>. Valid while this MappedFile lives.
  template <typename T>
  ConstView1<T> array(const std::string& name) const {
    const SectionOut& s = section(name);
    check_dtype(s, dtype_of<std::remove_cv_t<T>>::value);
    return ConstView1<T>{static_cast<const T*>(s.data), static_cast<int64_t>(s.count()), 1};
  }

 private:
  MappedFile() = default;
  void validate(const std::string& expected_kind, bool verify);
  void check_dtype(const SectionOut& s, DType expected) const;

  std::string path_;
  std::string kind_;
  uint32_t version_ = 0;
  const unsigned char* base_ = nullptr;
  uint64_t size_ = 0;
  std::vector<SectionOut> sections_;
};

}  // namespace ragkernels::format
