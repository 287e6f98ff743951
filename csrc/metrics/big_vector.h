// BigVector: the std::vector used for Qrels/Run's per-line arrays (tens to
// hundreds of MB for a large run file).
//
// Why not std::vector<T>: resize() value-initialises, so the whole array is
// zero-filled, and every page faulted in, by one thread before the parallel
// parse writes each slot anyway. BigAlloc leaves trivially constructible
// elements uninitialised, so each parse thread first-touches its own slots.
// Callers must write every slot after resize(); assign()/resize(n, value)
// still initialise. Arrays of 4 MiB and more are 2 MiB-aligned and marked
// MADV_HUGEPAGE (a hint, Linux only): a 10 M-line run then takes ~500x fewer
// page faults, warm evaluations get ~20% faster, and the first call in a
// fresh process costs about what it did (measured: docs/benchmarks.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ragkernels {
namespace metrics {
namespace detail {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugeFrom = size_t(4) << 20;

inline void* big_allocate(size_t bytes) {
  if (bytes < kHugeFrom) return ::operator new(bytes);
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, bytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // a hint; failure only costs speed
#endif
  return p;
}

inline void big_deallocate(void* p, size_t bytes) noexcept {
  if (bytes < kHugeFrom)
    ::operator delete(p);
  else
    free(p);
}

template <typename T>
struct BigAlloc {
  using value_type = T;
  using is_always_equal = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;

  BigAlloc() = default;
  template <typename U>
  BigAlloc(const BigAlloc<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(big_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept { big_deallocate(p, n * sizeof(T)); }

  // resize(n) leaves plain-data slots (string_view, double, int64_t) as
  // they are: the caller overwrites each one, so the zero fill is wasted.
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    if constexpr (!(std::is_trivially_copyable_v<U> && std::is_trivially_destructible_v<U>))
      ::new (static_cast<void*>(p)) U();
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  template <typename U>
  bool operator==(const BigAlloc<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const BigAlloc<U>&) const noexcept { return false; }
};

template <typename T>
using BigVector = std::vector<T, BigAlloc<T>>;

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
