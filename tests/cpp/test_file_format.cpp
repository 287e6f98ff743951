// GoogleTest for csrc/core/file_format: round trips, the documented byte
// layout (docs/formats.md), every refusal of a bad file, atomic writes.
#include "core/file_format.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace ragkernels;
using namespace ragkernels::format;

namespace {

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}
template <typename T>
SectionIn section_of(const std::string& name, const std::vector<T>& v) {
  return SectionIn{name, dtype_of<T>::value, v.data(), v.size() * sizeof(T)};
}
// Runs f, expects an exception of type E whose message is exactly `message`.
template <typename E, typename F>
void expect_error(F f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected: " << message;
  } catch (const E& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

class FileFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp ? tmp : "/tmp") + "/rk_file_format_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    ::chmod(dir_.c_str(), 0755);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  // A small valid file: kind "test-kind", sections a (i32 x 5) and b (f64 x 3).
  std::string small_file() {
    std::string p = path("small.rk");
    write_file(p, "test-kind", {section_of("a", ints_), section_of("b", doubles_)});
    return p;
  }
  std::string dir_;
  std::vector<int32_t> ints_{1, -2, 3, -4, 5};
  std::vector<double> doubles_{0.5, -1e300, 3.25};
};

TEST(Xxh64, MatchesReferenceVectors) {
  // From the reference implementation (python xxhash 4.1 / libxxhash 0.8.4, xxh64_intdigest).
  EXPECT_EQ(xxh64("", 0), 0xef46db3751d8e999ull);
  EXPECT_EQ(xxh64("a", 1), 0xd24ec4f1a98c6e5bull);
  EXPECT_EQ(xxh64("abc", 3), 0x44bc2cf5ad770999ull);
  EXPECT_EQ(xxh64("0123456789abcdef0123456789abcde", 31), 0x1fdfc63febacfde7ull);
  std::vector<unsigned char> b45(45);
  std::iota(b45.begin(), b45.end(), 0);
  EXPECT_EQ(xxh64(b45.data(), 45), 0x10fdd84d6409abdfull);
  EXPECT_EQ(xxh64(b45.data(), 45, 7), 0xe4ed0032f0c9066aull);
  std::vector<unsigned char> b771;
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 256; ++i) b771.push_back(static_cast<unsigned char>(i));
  b771.insert(b771.end(), {'x', 'y', 'z'});
  EXPECT_EQ(xxh64(b771.data(), b771.size()), 0xe921a1b45bd779f8ull);
  std::vector<unsigned char> big(1000003);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<unsigned char>(i * 7 % 251);
  EXPECT_EQ(xxh64(big.data(), big.size()), 0x96ab1f2d959335aaull);
}

TEST_F(FileFormat, RoundTripZeroSections) {
  write_file(path("z.rk"), "empty-kind", {});
  auto f = MappedFile::open(path("z.rk"), "empty-kind");
  EXPECT_EQ(f->kind(), "empty-kind");
  EXPECT_EQ(f->version(), kFormatVersion);
  EXPECT_TRUE(f->sections().empty());
  EXPECT_EQ(f->file_size(), 128u);
  EXPECT_EQ(entries(), std::vector<std::string>{"z.rk"});  // no temp file left
}

TEST_F(FileFormat, RoundTripSmallAndTypedViews) {
  auto f = MappedFile::open(small_file(), "test-kind");
  ASSERT_EQ(f->sections().size(), 2u);
  auto a = f->array<int32_t>("a");
  ASSERT_EQ(a.size, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a[i], ints_[i]);
  auto b = f->array<double>("b");
  ASSERT_EQ(b.size, 3);
  EXPECT_EQ(b[1], -1e300);
  EXPECT_EQ(f->section("b").dtype, DType::f64);
  EXPECT_EQ(f->section("b").count(), 3u);
  EXPECT_EQ(f->find("c"), nullptr);
  std::string p = path("small.rk");
  expect_error<FormatError>([&] { f->section("c"); },
                            p + ": no section 'c' in this 'test-kind' file");
  expect_error<FormatError>([&] { f->array<float>("a"); },
                            p + ": section 'a' has dtype i32, expected f32");
}

TEST_F(FileFormat, RoundTripManySectionsEmptyAndOddSizes) {
  std::mt19937_64 rng(11);
  std::vector<std::vector<unsigned char>> payloads;
  std::vector<SectionIn> in;
  const DType kinds[] = {DType::bytes, DType::u8, DType::i16, DType::f32, DType::i64, DType::bf16};
  for (int i = 0; i < 300; ++i) {
    DType d = kinds[i % 6];
    size_t n = (i % 7 == 0) ? 0 : (rng() % 200) * dtype_size(d);  // includes empty sections
    payloads.emplace_back(n);
    for (auto& byte : payloads.back()) byte = static_cast<unsigned char>(rng());
    in.push_back({"section_" + std::to_string(i), d, n ? payloads.back().data() : nullptr, n});
  }
  in.push_back({std::string(32, 'n'), DType::u8, nullptr, 0});  // longest allowed name, last+empty
  write_file(path("many.rk"), "many", in);
  auto f = MappedFile::open(path("many.rk"));
  ASSERT_EQ(f->sections().size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const SectionOut& s = f->sections()[i];  // file order is write order
    EXPECT_EQ(s.name, in[i].name);
    EXPECT_EQ(s.dtype, in[i].dtype);
    ASSERT_EQ(s.bytes, in[i].bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % kAlignment, 0u) << s.name;
    if (s.bytes) {
      EXPECT_EQ(std::memcmp(s.data, in[i].data, s.bytes), 0) << s.name;
    }
  }
}

TEST_F(FileFormat, RoundTripLargeSection) {
  std::vector<float> big((48u << 20) / 4 + 3);  // 48 MiB + 12 bytes
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(i) * 0.5f;
  std::vector<uint8_t> tail{7};
  write_file(path("big.rk"), "big", {section_of("big", big), section_of("tail", tail)});
  auto f = MappedFile::open(path("big.rk"), "big");
  auto v = f->array<float>("big");
  ASSERT_EQ(v.size, int64_t(big.size()));
  EXPECT_EQ(std::memcmp(v.data, big.data(), big.size() * 4), 0);
  EXPECT_EQ(f->array<uint8_t>("tail")[0], 7);
}

TEST_F(FileFormat, ByteLayoutIsTheDocumentedOne) {
  auto bytes = read_bytes(small_file());
  ASSERT_EQ(std::memcmp(bytes.data(), "RKIDX\r\n\x1a", 8), 0);
  uint32_t u32;
  std::memcpy(&u32, &bytes[8], 4);
  EXPECT_EQ(u32, 1u);  // version
  EXPECT_EQ(bytes[12], 0x04);  // endian marker 0x01020304 on a little-endian writer
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&bytes[16])), "test-kind");
  std::memcpy(&u32, &bytes[48], 4);
  EXPECT_EQ(u32, 2u);  // section count
  uint64_t u64;
  std::memcpy(&u64, &bytes[56], 8);
  EXPECT_EQ(u64, bytes.size());
  std::memcpy(&u64, &bytes[120], 8);
  EXPECT_EQ(u64, xxh64(bytes.data(), 120));  // header checksum
  std::memcpy(&u64, &bytes[64], 8);
  EXPECT_EQ(u64, xxh64(&bytes[128], 128));  // table checksum over 2 x 64-byte entries
  // Entry 1 ("b") at byte 192: offset after "a" (256 + 20 bytes) aligned up = 320.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&bytes[192])), "b");
  std::memcpy(&u32, &bytes[192 + 32], 4);
  EXPECT_EQ(u32, 12u);  // DType::f64
  std::memcpy(&u64, &bytes[192 + 40], 8);
  EXPECT_EQ(u64, 320u);
  std::memcpy(&u64, &bytes[192 + 48], 8);
  EXPECT_EQ(u64, 24u);
  std::memcpy(&u64, &bytes[192 + 56], 8);
  EXPECT_EQ(u64, xxh64(doubles_.data(), 24));
  EXPECT_EQ(bytes.size(), 320u + 24u);
}

TEST_F(FileFormat, TruncatedFile) {
  std::string p = small_file();
  auto bytes = read_bytes(p);
  bytes.resize(bytes.size() - 1);
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": truncated: section 'b' ends at byte 344 but the file has 343 bytes");
  bytes.resize(200);
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": truncated: section table ends at byte 256 but the file has 200 bytes");
  bytes.resize(100);
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": truncated: the header needs 128 bytes but the file has 100 bytes");
  bytes.clear();
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": empty file (0 bytes), not a ragkernels file");
}

TEST_F(FileFormat, TrailingDataIsRefused) {
  std::string p = small_file();
  auto bytes = read_bytes(p);
  bytes.push_back(0);
  write_bytes(p, bytes);
  EXPECT_THROW(MappedFile::open(p), FormatError);
}

TEST_F(FileFormat, FlippedPayloadByte) {
  std::string p = small_file();
  auto bytes = read_bytes(p);
  bytes[320 + 5] ^= 0x10;  // inside section 'b'
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": section 'b' checksum mismatch (file corrupt)");
  EXPECT_NO_THROW(MappedFile::open(p, "test-kind", /*verify=*/false));  // payloads unchecked
}

TEST_F(FileFormat, FlippedHeaderAndTableBytes) {
  std::string p = small_file();
  const auto good = read_bytes(p);
  auto bytes = good;
  bytes[20] ^= 1;  // inside the kind
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": header checksum mismatch (file corrupt)");
  bytes = good;
  bytes[192 + 40] ^= 1;  // offset of section 'b'
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": section table checksum mismatch (file corrupt)");
}

TEST_F(FileFormat, EveryFlippedByteIsRefused) {
  // Every byte is covered: header/table/payload checksums, zero padding, size.
  std::string p = small_file();
  const auto good = read_bytes(p);
  for (size_t i = 0; i < good.size(); ++i) {
    auto bytes = good;
    bytes[i] ^= 0x40;
    write_bytes(p, bytes);
    EXPECT_THROW(MappedFile::open(p), FormatError) << "byte " << i;
  }
}

TEST_F(FileFormat, FutureVersion) {
  std::string p = small_file();
  auto bytes = read_bytes(p);
  uint32_t seven = 7;
  std::memcpy(&bytes[8], &seven, 4);
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": format version 7 is newer than this ragkernels (supports 1); "
                                "upgrade ragkernels");
}

TEST_F(FileFormat, WrongMagicAndOtherByteOrder) {
  std::string p = small_file();
  auto bytes = read_bytes(p);
  bytes[0] = 'X';
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": not a ragkernels file (bad magic bytes)");
  write_bytes(p, {'h', 'i', '\n'});
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": not a ragkernels file (bad magic bytes)");
  bytes = read_bytes(small_file());
  std::reverse(bytes.begin() + 12, bytes.begin() + 16);
  write_bytes(p, bytes);
  expect_error<FormatError>([&] { MappedFile::open(p); },
                            p + ": written on a machine of the other byte order; cannot be read here");
}

TEST_F(FileFormat, WrongKind) {
  std::string p = small_file();
  expect_error<FormatError>([&] { MappedFile::open(p, "bm25-index"); },
                            p + ": file kind is 'test-kind', expected 'bm25-index'");
}

TEST_F(FileFormat, MissingFileAndDirectory) {
  std::string p = path("nope.rk");
  expect_error<IOError>([&] { MappedFile::open(p); }, p + ": cannot open: No such file or directory");
  expect_error<IOError>([&] { MappedFile::open(dir_); }, dir_ + ": not a regular file (a directory, FIFO or device cannot hold a ragkernels file)");
}

TEST_F(FileFormat, BadArgumentsAreValueErrorsAndWriteNothing) {
  std::string p = path("x.rk");
  std::vector<uint8_t> one{1};
  expect_error<ValueError>([&] { write_file(p, "k", {section_of(std::string(33, 'n'), one)}); },
                           p + ": section name '" + std::string(33, 'n') +
                               "' must be 1..32 bytes long, got 33");
  EXPECT_THROW(write_file(p, "k", {section_of("", one)}), ValueError);
  EXPECT_THROW(write_file(p, "k", {section_of(std::string("a\0b", 3), one)}), ValueError);
  EXPECT_THROW(write_file(p, std::string(33, 'k'), {}), ValueError);
  EXPECT_THROW(write_file(p, "", {}), ValueError);
  EXPECT_THROW(write_file(p, "k", {section_of("a", one), section_of("a", one)}), ValueError);
  EXPECT_THROW(write_file(p, "k", {{"a", DType::f32, one.data(), 1}}), ValueError);  // 1 byte
  EXPECT_THROW(write_file(p, "k", {{"a", DType::u8, nullptr, 4}}), ValueError);
  EXPECT_THROW(write_file(p, "k", {{"a", static_cast<DType>(99), one.data(), 1}}), ValueError);
  EXPECT_THROW(write_file("", "k", {}), ValueError);
  EXPECT_TRUE(entries().empty());
}

TEST_F(FileFormat, UnwritableOrMissingDirectory) {
  std::string missing = path("no/such/dir/x.rk");
  EXPECT_THROW(write_file(missing, "k", {}), IOError);
  ASSERT_EQ(::mkdir(path("ro").c_str(), 0555), 0);
  if (::geteuid() == 0) {
    EXPECT_TRUE(entries() == std::vector<std::string>{"ro"});
    GTEST_SKIP() << "running as root: permission bits do not stop writes";
  }
  std::string p = path("ro/x.rk");
  try {
    write_file(p, "k", {});
    ADD_FAILURE() << "no IOError";
  } catch (const IOError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(p + ": cannot create temporary file '" + p + ".tmp.", 0),
              0u) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(path("ro")));
}

TEST_F(FileFormat, FailedRenameRemovesTempFile) {
  ASSERT_EQ(::mkdir(path("target").c_str(), 0755), 0);  // rename(file, dir) fails
  std::vector<int64_t> v(1000, 42);
  EXPECT_THROW(write_file(path("target"), "k", {section_of("v", v)}), IOError);
  EXPECT_EQ(entries(), std::vector<std::string>{"target"});
}

TEST_F(FileFormat, FailedWriteKeepsOldFileAndRemovesTemp) {
  std::string p = small_file();
  const auto old = read_bytes(p);
  // Cap file size so write() fails midway with EFBIG (SIGXFSZ ignored).
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit saved, cap;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  cap = saved;
  cap.rlim_cur = 64 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &cap), 0);
  std::vector<double> big(1 << 20, 1.0);  // 8 MiB
  EXPECT_THROW(write_file(p, "test-kind", {section_of("big", big)}), IOError);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(entries(), std::vector<std::string>{"small.rk"});
  EXPECT_EQ(read_bytes(p), old);
  EXPECT_NO_THROW(MappedFile::open(p, "test-kind"));
}

TEST_F(FileFormat, OverwriteIsAtomicAndOldMappingsStayValid) {
  std::string p = small_file();
  auto before = MappedFile::open(p);
  std::vector<int32_t> other{9, 9};
  write_file(p, "test-kind", {section_of("a", other)});
  auto after = MappedFile::open(p);
  EXPECT_EQ(after->array<int32_t>("a").size, 2);
  auto a = before->array<int32_t>("a");  // the old inode is still mapped, unchanged
  ASSERT_EQ(a.size, 5);
  EXPECT_EQ(a[4], 5);
  EXPECT_EQ(entries(), std::vector<std::string>{"small.rk"});
  // A section view outlives every other handle as long as it holds the pointer.
  std::shared_ptr<MappedFile> keep = after;
  after.reset();
  EXPECT_EQ(keep->array<int32_t>("a")[1], 9);
}

}  // namespace
