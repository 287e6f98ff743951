#include "metrics/file_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace ragkernels {
namespace metrics {
namespace detail {

Buffer::~Buffer() {
  if (mapped_) ::munmap(const_cast<char*>(data_), size_);
}

std::shared_ptr<Buffer> Buffer::copy(std::string_view text) {
  auto b = std::make_shared<Buffer>();
  b->owned_.assign(text.begin(), text.end());
  b->data_ = b->owned_.data();
  b->size_ = b->owned_.size();
  return b;
}

std::shared_ptr<Buffer> Buffer::load(const std::string& path, const char* op) {
  // O_NONBLOCK: opening a FIFO nobody writes to would block forever before
  // fstat could refuse it (issue 14); it changes nothing for a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw IOError(ragkernels::detail::message(op, ": cannot open '", path, "': ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IOError(ragkernels::detail::message(op, ": cannot stat '", path, "': ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    // Refused rather than read: a FIFO with no writer would hang, or read
    // as an empty (silently wrong) file with O_NONBLOCK.
    throw IOError(ragkernels::detail::message(op, ": '", path, "' is ",
                                              S_ISDIR(st.st_mode) ? "a directory, not a file"
                                                                  : "not a regular file (a FIFO, socket or device); "
                                                                    "write the data to a file first"));
  }
  auto b = std::make_shared<Buffer>();
  if (st.st_size == 0) {
    ::close(fd);
    return b;
  }
  // Reads straight from the page cache; no copy of a 400 MB run.
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (p != MAP_FAILED) {
    ::close(fd);
    b->data_ = static_cast<const char*>(p);
    b->size_ = static_cast<size_t>(st.st_size);
    b->mapped_ = true;
    return b;
  }
  char chunk[1 << 16];  // mmap refused (some file systems)
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw IOError(ragkernels::detail::message(op, ": cannot read '", path, "': ", std::strerror(err)));
    }
    b->owned_.insert(b->owned_.end(), chunk, chunk + n);
  }
  ::close(fd);
  b->data_ = b->owned_.data();
  b->size_ = b->owned_.size();
  return b;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
