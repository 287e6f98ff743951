// Errors of the C++ core.
//
// Two kinds, as in faiss: a caller mistake throws a ragkernels::Error subclass
// (RK_CHECK_ARG / RK_CHECK_TYPE / RK_CHECK_FORMAT), mapped once to a Python
// exception in bindings/module.cpp; a broken internal invariant is a bug and
// aborts with a message (RK_DCHECK), because no caller can recover from it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ragkernels {

// Base of every error the core throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A value out of range or shapes that disagree -> Python ValueError.
class ValueError : public Error {
 public:
  using Error::Error;
};

// A wrong dtype or kind of object -> Python TypeError.
class TypeError : public Error {
 public:
  using Error::Error;
};

// A file that cannot be opened, read or written -> Python OSError.
class IOError : public Error {
 public:
  using Error::Error;
};

// A file whose content is malformed, truncated, corrupt or of a future
// version -> ragkernels.FormatError (a ValueError subclass).
class FormatError : public Error {
 public:
  using Error::Error;
};

namespace detail {
// Concatenates anything streamable: message("k must be >= 1, got ", k).
template <typename... Args>
std::string message(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

[[noreturn]] inline void dcheck_failed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "ragkernels: internal invariant violated: %s at %s:%d\n", cond, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace ragkernels

#define RK_CHECK_ARG(cond, ...)                                                     \
  do {                                                                              \
    if (!(cond)) throw ::ragkernels::ValueError(::ragkernels::detail::message(__VA_ARGS__)); \
  } while (0)

#define RK_CHECK_TYPE(cond, ...)                                                    \
  do {                                                                              \
    if (!(cond)) throw ::ragkernels::TypeError(::ragkernels::detail::message(__VA_ARGS__)); \
  } while (0)

#define RK_CHECK_FORMAT(cond, ...)                                                    \
  do {                                                                                \
    if (!(cond)) throw ::ragkernels::FormatError(::ragkernels::detail::message(__VA_ARGS__)); \
  } while (0)

#define RK_DCHECK(cond)                                                        \
  do {                                                                         \
    if (!(cond)) ::ragkernels::detail::dcheck_failed(#cond, __FILE__, __LINE__); \
  } while (0)
