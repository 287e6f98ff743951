// Internal: the bytes of a qrels/run file, kept alive by the Qrels/Run
// whose string_views point into them.
//
// Only regular files are read (/dev/stdin redirected from a file is one): a
// FIFO, socket, device or directory raises IOError naming the path, without
// blocking on a FIFO nobody writes to (issue 14). Files are mmap'ed read-only
// (MAP_POPULATE: one pass of page-table setup, no copy of a 400 MB run); a
// refused mmap falls back to read(). As with any mmap, truncating the file
// while a Qrels/Run still views it is not supported.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ragkernels {
namespace metrics {
namespace detail {

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  // Throws IOError "<op>: cannot open|read '<path>': <reason>" or
  // "<op>: '<path>' is not a regular file (...)".
  static std::shared_ptr<Buffer> load(const std::string& path, const char* op);
  static std::shared_ptr<Buffer> copy(std::string_view text);

  std::string_view view() const { return std::string_view(data_, size_); }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<char> owned_;
};

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
