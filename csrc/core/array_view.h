// Non-owning views over arrays that live elsewhere (a numpy buffer, a DLPack
// tensor, a std::vector). The core never allocates its outputs: callers pass
// views of memory they own. Strides are in elements, not bytes, and may be any
// positive value, so sliced numpy views cross the boundary without a copy.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ragkernels {

template <typename T>
struct View1 {
  T* data = nullptr;
  int64_t size = 0;
  int64_t stride = 1;

  T& operator[](int64_t i) const { return data[i * stride]; }
  bool contiguous() const { return stride == 1 || size <= 1; }
};

template <typename T>
struct View2 {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // elements between rows
  int64_t col_stride = 1;  // elements between columns

  T& operator()(int64_t r, int64_t c) const { return data[r * row_stride + c * col_stride]; }
  View1<T> row(int64_t r) const { return View1<T>{data + r * row_stride, cols, col_stride}; }
};

template <typename T>
using ConstView1 = View1<const T>;
template <typename T>
using ConstView2 = View2<const T>;

// A contiguous row-major view over `rows * cols` elements starting at `data`.
template <typename T>
View2<T> make_view2(T* data, int64_t rows, int64_t cols) {
  return View2<T>{data, rows, cols, cols, 1};
}

}  // namespace ragkernels
