// Conversion and validation of Python arguments, shared by every bind_*.cpp.
//
// Arrays are taken as they are: numpy arrays through the buffer protocol, any
// other framework's CPU tensor through DLPack (numpy.from_dlpack, zero-copy).
// Nothing is cast silently: a wrong dtype, rank or a non-finite value where
// one is not allowed raises TypeError/ValueError naming the op, the argument,
// what was expected and what was given.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/array_view.h"
#include "core/error.h"

namespace ragkernels::bindings {

namespace py = pybind11;

// A numpy array viewing `obj` without a copy: obj itself if it is an ndarray,
// else numpy.from_dlpack(obj) for objects that speak DLPack on the CPU.
py::array as_ndarray(py::handle obj, const char* op, const char* arg);

// A str's UTF-8 bytes, for text the analyzer reads; keep_alive holds what the
// view points into (an iterator's items may be temporaries). ASCII strs are
// read in place. Other strs are encoded to a temporary bytes object rather
// than through PyUnicode_AsUTF8, which would leave a UTF-8 copy cached in
// every text. A lone surrogate (legal in a str, not in UTF-8) passes as
// "surrogatepass" bytes, which the analyzer reads as non-word, uncased
// characters: exactly what Python's regex and str.lower() (and so bm25s)
// make of a surrogate. Not for strings stored as they are (tokens, ids).
std::string_view utf8_of(py::handle str, std::vector<py::object>& keep_alive);

// A str kept as it is (a token, an id) as UTF-8, in place: TypeError when
// `str` is not a str, ValueError when it has no UTF-8 form (a lone
// surrogate); both name `op` and `name` (e.g. "documents[3][1]").
std::string_view token_utf8(py::handle str, std::vector<py::object>& keep_alive, const char* op,
                            const std::string& name);

// "float32 with shape (8, 100)" for error messages.
std::string describe(const py::array& a);

template <typename T>
bool has_dtype(const py::array& a) {
  return a.dtype().is(py::dtype::of<T>());
}

// Checks rank and that strides are whole multiples of the item size; returns
// a non-owning view (the caller keeps `a` alive).
template <typename T>
View2<const T> view2(const py::array& a, const char* op, const char* arg) {
  RK_CHECK_ARG(a.ndim() == 2, op, ": ", arg, " must be 2-D, got ", describe(a));
  const auto item = static_cast<int64_t>(sizeof(T));
  RK_CHECK_ARG(a.strides(0) % item == 0 && a.strides(1) % item == 0 && a.strides(0) >= 0 &&
                   a.strides(1) >= 0,
               op, ": ", arg, " has unaligned or negative strides; pass numpy.ascontiguousarray(", arg, ")");
  return View2<const T>{static_cast<const T*>(a.data()), a.shape(0), a.shape(1), a.strides(0) / item,
                        a.strides(1) / item};
}

template <typename T>
View1<const T> view1(const py::array& a, const char* op, const char* arg) {
  RK_CHECK_ARG(a.ndim() == 1, op, ": ", arg, " must be 1-D, got ", describe(a));
  const auto item = static_cast<int64_t>(sizeof(T));
  RK_CHECK_ARG(a.strides(0) % item == 0 && a.strides(0) >= 0, op, ": ", arg,
               " has unaligned or negative strides; pass numpy.ascontiguousarray(", arg, ")");
  return View1<const T>{static_cast<const T*>(a.data()), a.shape(0), a.strides(0) / item};
}

// A fresh C-contiguous array owning its memory, and a view to fill it with.
template <typename T>
std::pair<py::array_t<T>, View2<T>> new_matrix(int64_t rows, int64_t cols) {
  py::array_t<T> out({rows, cols});
  return {out, make_view2(out.mutable_data(), rows, cols)};
}

}  // namespace ragkernels::bindings
