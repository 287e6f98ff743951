// Writer, reader and checksum of the ragkernels file format (docs/formats.md).
#include "core/file_format.h"
#include "core/utf8.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <unordered_set>

namespace ragkernels::format {
namespace {

// Layouts on disk, in the writer's native byte order (the endian marker tells
// a reader which that was). Every field is naturally aligned: no padding.
constexpr char kMagic[8] = {'R', 'K', 'I', 'D', 'X', '\r', '\n', '\x1a'};
constexpr uint32_t kEndianMarker = 0x01020304u;

struct FileHeader {                  // 128 bytes at offset 0
  char magic[8];                     // kMagic
  uint32_t version;                  // kFormatVersion
  uint32_t endian;                   // kEndianMarker
  char kind[kMaxNameBytes];          // NUL-padded
  uint32_t section_count;
  uint32_t flags;                    // 0 in version 1
  uint64_t file_size;                // total bytes
  uint64_t table_checksum;           // xxh64 of the section table
  uint8_t reserved[48];              // 0 in version 1
  uint64_t header_checksum;          // xxh64 of bytes [0, 120)
};
struct SectionEntry {                // 64 bytes each, right after the header
  char name[kMaxNameBytes];          // NUL-padded
  uint32_t dtype;                    // DType code
  uint32_t flags;                    // 0 in version 1
  uint64_t offset;                   // from the start of the file, % kAlignment == 0
  uint64_t size;                     // bytes
  uint64_t checksum;                 // xxh64 of the payload
};
static_assert(sizeof(FileHeader) == 128 && offsetof(FileHeader, header_checksum) == 120);
static_assert(offsetof(FileHeader, kind) == 16 && offsetof(FileHeader, file_size) == 56);
static_assert(sizeof(SectionEntry) == 64 && offsetof(SectionEntry, offset) == 40);
constexpr uint64_t kHeaderBytes = sizeof(FileHeader);
constexpr uint64_t kEntryBytes = sizeof(SectionEntry);

uint64_t align_up(uint64_t x) { return (x + kAlignment - 1) / kAlignment * kAlignment; }
bool dtype_known(DType d) { return static_cast<uint32_t>(d) <= static_cast<uint32_t>(DType::f64); }

// ---- XXH64 (xxHash spec, github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md)
constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full,
                   P3 = 0x165667B19E3779F9ull, P4 = 0x85EBCA77C2B2AE63ull,
                   P5 = 0x27D4EB2F165667C5ull;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}
inline uint64_t read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}
inline uint64_t xround(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
inline uint64_t xmerge(uint64_t h, uint64_t v) { return (h ^ xround(0, v)) * P1 + P4; }

// ---- names
void check_name(const std::string& path, const std::string& name, const char* what) {
  RK_CHECK_ARG(!name.empty() && name.size() <= kMaxNameBytes, path, ": ", what, " '", name,
               "' must be 1..", kMaxNameBytes, " bytes long, got ", name.size());
  RK_CHECK_ARG(name.find('\0') == std::string::npos, path, ": ", what,
               " must not contain a NUL byte");
}
void put_name(char (&field)[kMaxNameBytes], const std::string& name) {
  std::memset(field, 0, kMaxNameBytes);
  std::memcpy(field, name.data(), name.size());
}
// A NUL-padded name field -> string; empty when malformed (caller reports).
std::string get_name(const char (&field)[kMaxNameBytes]) {
  size_t n = 0;
  while (n < kMaxNameBytes && field[n] != '\0') ++n;
  for (size_t i = n; i < kMaxNameBytes; ++i)
    if (field[i] != '\0') return std::string();
  return std::string(field, n);
}

// ---- writer
[[noreturn]] void throw_io(const std::string& path, const std::string& what, int err) {
  throw IOError(detail::message(path, ": ", what, ": ", std::strerror(err)));
}

std::string random_hex() {
  uint64_t r;
  try {
    std::random_device rd;
    r = (uint64_t(rd()) << 32) ^ rd();
  } catch (...) {  // no entropy source: time and an address still make clashes unlikely
    r = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        reinterpret_cast<uintptr_t>(&r);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
  return buf;
}

// The temporary file of one write: unlinked on destruction unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    for (int attempt = 0; fd_ < 0; ++attempt) {  // O_EXCL: never reuse someone's temp
      tmp_ = target + ".tmp." + std::to_string(::getpid()) + "." + random_hex();
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0 && (errno != EEXIST || attempt == 8))
        throw_io(target_, "cannot create temporary file '" + tmp_ + "'", errno);
    }
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void write(const void* data, uint64_t n) {
    auto p = static_cast<const unsigned char*>(data);
    while (n > 0) {  // write() may be partial and caps at ~2 GiB per call
      ssize_t w = ::write(fd_, p, static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30)));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw_io(target_, "cannot write temporary file '" + tmp_ + "'", w ? errno : EIO);
      p += w;
      n -= static_cast<uint64_t>(w);
    }
  }
  // fsync the data, rename over the target, fsync the directory so the rename
  // itself survives a crash.
  void commit() {
    if (::fsync(fd_) != 0) throw_io(target_, "cannot fsync '" + tmp_ + "'", errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_io(target_, "cannot close '" + tmp_ + "'", errno);
    if (::rename(tmp_.c_str(), target_.c_str()) != 0)
      throw_io(target_, "cannot rename '" + tmp_ + "' over it", errno);
    committed_ = true;
    size_t slash = target_.rfind('/');
    std::string dir = slash == std::string::npos ? "." : target_.substr(0, slash + (slash == 0));
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) throw_io(target_, "cannot open directory '" + dir + "' to fsync it", errno);
    // EINVAL: this file system cannot fsync directories; nothing more to do.
    int rc = ::fsync(dfd), err = errno;
    ::close(dfd);
    if (rc != 0 && err != EINVAL) throw_io(target_, "cannot fsync directory '" + dir + "'", err);
  }

 private:
  std::string target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

uint64_t xxh64(const void* data, size_t n, uint64_t seed) {
  auto p = static_cast<const unsigned char*>(data);
  const unsigned char* end = p + n;
  uint64_t h;
  if (n >= 32) {  // four independent lanes over 32-byte stripes
    uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    for (const unsigned char* limit = end - 32; p <= limit; p += 32) {
      v1 = xround(v1, read64(p));
      v2 = xround(v2, read64(p + 8));
      v3 = xround(v3, read64(p + 16));
      v4 = xround(v4, read64(p + 24));
    }
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
  } else {
    h = seed + P5;
  }
  h += static_cast<uint64_t>(n);
  for (; end - p >= 8; p += 8) h = rotl(h ^ xround(0, read64(p)), 27) * P1 + P4;
  if (end - p >= 4) {
    h = rotl(h ^ (read32(p) * P1), 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl(h ^ (*p * P5), 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  return h ^ (h >> 32);
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::bytes: case DType::u8: case DType::i8: return 1;
    case DType::u16: case DType::i16: case DType::f16: case DType::bf16: return 2;
    case DType::u32: case DType::i32: case DType::f32: return 4;
    case DType::u64: case DType::i64: case DType::f64: return 8;
  }
  throw ValueError(detail::message("unknown dtype code ", static_cast<uint32_t>(d)));
}

const char* dtype_name(DType d) {
  static const char* const kNames[] = {"bytes", "u8",  "i8",  "u16", "i16", "u32", "i32",
                                       "u64",   "i64", "f16", "bf16", "f32", "f64"};
  return dtype_known(d) ? kNames[static_cast<uint32_t>(d)] : "unknown";
}

void write_file(const std::string& path, const std::string& kind,
                const std::vector<SectionIn>& sections) {
  // Validate and lay out everything before touching the disk.
  RK_CHECK_ARG(!path.empty(), "write_file: path must not be empty");
  check_name(path, kind, "kind");
  RK_CHECK_ARG(sections.size() <= UINT32_MAX, path, ": too many sections");
  std::vector<unsigned char> head(kHeaderBytes + kEntryBytes * sections.size(), 0);
  std::unordered_set<std::string> seen;
  uint64_t pos = head.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    const SectionIn& s = sections[i];
    check_name(path, s.name, "section name");
    RK_CHECK_ARG(seen.insert(s.name).second, path, ": duplicate section name '", s.name, "'");
    RK_CHECK_ARG(dtype_known(s.dtype), path, ": section '",
                 s.name, "' has unknown dtype code ", static_cast<uint32_t>(s.dtype));
    RK_CHECK_ARG(s.bytes % dtype_size(s.dtype) == 0, path, ": section '", s.name, "' has ",
                 s.bytes, " bytes, not a multiple of its ", dtype_name(s.dtype), " element size");
    RK_CHECK_ARG(s.data != nullptr || s.bytes == 0, path, ": section '", s.name,
                 "' has null data and ", s.bytes, " bytes");
    SectionEntry e{};
    put_name(e.name, s.name);
    e.dtype = static_cast<uint32_t>(s.dtype);
    e.offset = align_up(pos);
    e.size = s.bytes;
    e.checksum = xxh64(s.data, static_cast<size_t>(s.bytes));
    pos = e.offset + e.size;
    std::memcpy(head.data() + kHeaderBytes + kEntryBytes * i, &e, sizeof e);
  }
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.endian = kEndianMarker;
  put_name(h.kind, kind);
  h.section_count = static_cast<uint32_t>(sections.size());
  h.file_size = pos;
  h.table_checksum = xxh64(head.data() + kHeaderBytes, head.size() - kHeaderBytes);
  h.header_checksum = xxh64(&h, offsetof(FileHeader, header_checksum));
  std::memcpy(head.data(), &h, sizeof h);

  static const unsigned char kZeros[kAlignment] = {};
  TempFile tmp(path);
  tmp.write(head.data(), head.size());
  pos = head.size();
  for (const SectionIn& s : sections) {
    uint64_t offset = align_up(pos);
    tmp.write(kZeros, offset - pos);
    tmp.write(s.data, s.bytes);
    pos = offset + s.bytes;
  }
  tmp.commit();
}

// ---- reader

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path,
                                             const std::string& expected_kind, bool verify) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  // O_NONBLOCK: opening a FIFO nobody writes to would otherwise block forever
  // before fstat could refuse it (issue 14). It changes nothing for a regular file.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_io(path, "cannot open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw_io(path, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IOError(path + ": not a regular file (a directory, FIFO or device cannot hold a ragkernels file)");
  }
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ == 0) {
    ::close(fd);
    throw FormatError(path + ": empty file (0 bytes), not a ragkernels file");
  }
  void* base = ::mmap(nullptr, file->size_, PROT_READ, MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file open
  if (base == MAP_FAILED) throw_io(path, "cannot mmap", err);
  file->base_ = static_cast<const unsigned char*>(base);
  file->validate(expected_kind, verify);
  return file;
}

MappedFile::~MappedFile() {
  if (base_ != nullptr) ::munmap(const_cast<unsigned char*>(base_), size_);
}

namespace {
// Checks the header of a mapped file of `size` bytes and returns it.
FileHeader read_header(const std::string& p, const unsigned char* base, uint64_t size) {
  // Magic, version and byte order sit in bytes [0, 16), frozen for all versions.
  RK_CHECK_FORMAT(size >= sizeof kMagic && std::memcmp(base, kMagic, sizeof kMagic) == 0, p,
                  ": not a ragkernels file (bad magic bytes)");
  RK_CHECK_FORMAT(size >= kHeaderBytes, p, ": truncated: the header needs ", kHeaderBytes,
                  " bytes but the file has ", size, " bytes");
  FileHeader h;
  std::memcpy(&h, base, sizeof h);
  RK_CHECK_FORMAT(h.endian != __builtin_bswap32(kEndianMarker), p,
                  ": written on a machine of the other byte order; cannot be read here");
  RK_CHECK_FORMAT(h.endian == kEndianMarker, p, ": bad byte-order marker (file corrupt)");
  RK_CHECK_FORMAT(h.version <= kFormatVersion, p, ": format version ", h.version,
                  " is newer than this ragkernels (supports ", kFormatVersion,
                  "); upgrade ragkernels");
  RK_CHECK_FORMAT(h.version >= 1, p, ": format version 0 is invalid (file corrupt)");
  RK_CHECK_FORMAT(xxh64(&h, offsetof(FileHeader, header_checksum)) == h.header_checksum, p,
                  ": header checksum mismatch (file corrupt)");
  RK_CHECK_FORMAT(h.flags == 0, p, ": unknown header flags ", h.flags);
  return h;
}
}  // namespace

void MappedFile::validate(const std::string& expected_kind, bool verify) {
  const std::string& p = path_;
  const FileHeader h = read_header(p, base_, size_);
  version_ = h.version;
  kind_ = get_name(h.kind);
  RK_CHECK_FORMAT(!kind_.empty() && is_valid_utf8(kind_), p, ": malformed file kind (file corrupt)");
  RK_CHECK_FORMAT(expected_kind.empty() || kind_ == expected_kind, p, ": file kind is '", kind_,
                  "', expected '", expected_kind, "'");

  const uint64_t table_end = kHeaderBytes + kEntryBytes * uint64_t{h.section_count};
  RK_CHECK_FORMAT(table_end <= size_, p, ": truncated: section table ends at byte ", table_end,
                  " but the file has ", size_, " bytes");
  RK_CHECK_FORMAT(xxh64(base_ + kHeaderBytes, table_end - kHeaderBytes) == h.table_checksum, p,
                  ": section table checksum mismatch (file corrupt)");
  std::vector<uint64_t> checksums;
  std::unordered_set<std::string> seen;
  uint64_t prev_end = table_end;
  for (uint32_t i = 0; i < h.section_count; ++i) {
    SectionEntry e;
    std::memcpy(&e, base_ + kHeaderBytes + kEntryBytes * i, sizeof e);
    SectionOut s;
    s.name = get_name(e.name);
    RK_CHECK_FORMAT(!s.name.empty() && is_valid_utf8(s.name), p, ": section ", i,
                    " has a malformed name (file corrupt)");
    RK_CHECK_FORMAT(seen.insert(s.name).second, p, ": duplicate section '", s.name, "'");
    s.dtype = static_cast<DType>(e.dtype);
    RK_CHECK_FORMAT(dtype_known(s.dtype), p, ": section '", s.name,
                    "' has unknown dtype code ", e.dtype);
    RK_CHECK_FORMAT(e.flags == 0, p, ": section '", s.name, "' has unknown flags ", e.flags);
    RK_CHECK_FORMAT(e.size % dtype_size(s.dtype) == 0, p, ": section '", s.name, "' has ",
                    e.size, " bytes, not a multiple of its ", dtype_name(s.dtype), " size");
    RK_CHECK_FORMAT(e.offset % kAlignment == 0 && e.offset >= prev_end, p, ": section '",
                    s.name, "' has a bad offset ", e.offset, " (file corrupt)");
    RK_CHECK_FORMAT(e.size <= UINT64_MAX - e.offset && e.offset + e.size <= size_, p,
                    ": truncated: section '", s.name, "' ends at byte ", e.offset + e.size,
                    " but the file has ", size_, " bytes");
    for (uint64_t b = prev_end; b < e.offset; ++b)  // so that every byte is checked
      RK_CHECK_FORMAT(base_[b] == 0, p, ": non-zero padding at byte ", b, " (file corrupt)");
    prev_end = e.offset + e.size;
    s.data = base_ + e.offset;
    s.bytes = e.size;
    sections_.push_back(std::move(s));
    checksums.push_back(e.checksum);
  }
  RK_CHECK_FORMAT(h.file_size <= size_, p, ": truncated: the header says ", h.file_size,
                  " bytes but the file has ", size_, " bytes");
  RK_CHECK_FORMAT(h.file_size == size_ && prev_end == size_, p, ": the file has ", size_,
                  " bytes but its header says ", h.file_size, " (trailing data; file corrupt)");
  if (!verify) return;
  for (size_t i = 0; i < sections_.size(); ++i) {
    const SectionOut& s = sections_[i];
    RK_CHECK_FORMAT(xxh64(s.data, static_cast<size_t>(s.bytes)) == checksums[i], p,
                    ": section '", s.name, "' checksum mismatch (file corrupt)");
  }
}

const SectionOut* MappedFile::find(const std::string& name) const {
  for (const SectionOut& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

const SectionOut& MappedFile::section(const std::string& name) const {
  const SectionOut* s = find(name);
  RK_CHECK_FORMAT(s != nullptr, path_, ": no section '", name, "' in this '", kind_, "' file");
  return *s;
}

void MappedFile::check_dtype(const SectionOut& s, DType expected) const {
  RK_CHECK_FORMAT(s.dtype == expected, path_, ": section '", s.name, "' has dtype ",
                  dtype_name(s.dtype), ", expected ", dtype_name(expected));
}

}  // namespace ragkernels::format
