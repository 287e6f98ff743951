// Bindings of csrc/core: thread count, top-k, and the binary file format.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings/checks.h"
#include "core/file_format.h"
#include "core/parallel.h"
#include "core/topk.h"

namespace ragkernels::bindings {

namespace {

template <typename T>
py::tuple topk_typed(const py::array& scores, int64_t k) {
  auto view = view2<T>(scores, "topk", "scores");
  auto [ids, ids_view] = new_matrix<int64_t>(view.rows, k);
  auto [top, top_view] = new_matrix<T>(view.rows, k);
  {
    py::gil_scoped_release nogil;
    topk<T>(view, k, ids_view, top_view);
  }
  return py::make_tuple(ids, top);
}

// numpy (kind, itemsize) <-> file-format dtype code, for numeric sections.
struct DTypeCode {
  char kind;
  int size;
  format::DType code;
  const char* numpy;
};
constexpr DTypeCode kDTypeCodes[] = {
    {'u', 1, format::DType::u8, "u1"},  {'i', 1, format::DType::i8, "i1"},  {'u', 2, format::DType::u16, "u2"},
    {'i', 2, format::DType::i16, "i2"}, {'u', 4, format::DType::u32, "u4"}, {'i', 4, format::DType::i32, "i4"},
    {'u', 8, format::DType::u64, "u8"}, {'i', 8, format::DType::i64, "i8"}, {'f', 2, format::DType::f16, "f2"},
    {'f', 4, format::DType::f32, "f4"}, {'f', 8, format::DType::f64, "f8"}, {'u', 1, format::DType::bytes, "u1"}};

format::DType section_dtype(const py::array& a, const std::string& name) {
  const bool native = a.dtype().attr("isnative").cast<bool>();
  for (const auto& c : kDTypeCodes)
    if (native && a.dtype().kind() == c.kind && a.itemsize() == c.size) return c.code;
  throw TypeError(detail::message("save_arrays: arrays['", name,
                                  "'] must be a native-endian (u)int8/16/32/64 or float16/32/64 array, got ",
                                  describe(a)));
}

const char* numpy_dtype(format::DType code) {
  for (const auto& c : kDTypeCodes)
    if (c.code == code) return c.numpy;
  return "u1";
}

void save_arrays(const std::string& path, const py::dict& arrays, const std::string& kind) {
  std::vector<format::SectionIn> sections;
  std::vector<py::array> keep_alive;
  for (auto [key, value] : arrays) {
    RK_CHECK_TYPE(py::isinstance<py::str>(key), "save_arrays: array names must be str");
    const std::string name = key.cast<std::string>();
    py::array a = as_ndarray(value, "save_arrays", ("arrays['" + name + "']").c_str());
    RK_CHECK_ARG(a.ndim() == 1, "save_arrays: arrays['", name, "'] must be 1-D, got ", describe(a),
                 " (store the shape in another array and reshape after load)");
    RK_CHECK_ARG(a.strides(0) == a.itemsize() || a.shape(0) <= 1, "save_arrays: arrays['", name,
                 "'] must be contiguous; pass numpy.ascontiguousarray(...)");
    sections.push_back({name, section_dtype(a, name), a.data(), static_cast<uint64_t>(a.nbytes())});
    keep_alive.push_back(a);
  }
  py::gil_scoped_release nogil;
  format::write_file(path, kind, sections);
}

// Every section as a read-only numpy array viewing the mapping; each array
// holds the MappedFile alive through its base capsule.
py::dict load_arrays(const std::string& path, const std::string& kind, bool verify) {
  std::shared_ptr<format::MappedFile> file;
  {
    py::gil_scoped_release nogil;
    file = format::MappedFile::open(path, kind, verify);
  }
  py::dict out;
  for (const auto& s : file->sections()) {
    auto* holder = new std::shared_ptr<format::MappedFile>(file);
    py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<format::MappedFile>*>(p); });
    py::array a(py::dtype(numpy_dtype(s.dtype)), {static_cast<py::ssize_t>(s.count())}, {}, s.data, base);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    out[py::str(s.name)] = a;
  }
  return out;
}

}  // namespace

void bind_core(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &num_threads);
  m.def(
      "topk",
      [](py::handle scores_obj, int64_t k) {
        py::array scores = as_ndarray(scores_obj, "topk", "scores");
        RK_CHECK_ARG(k >= 1, "topk: k must be >= 1, got ", k);
        if (has_dtype<float>(scores)) return topk_typed<float>(scores, k);
        if (has_dtype<double>(scores)) return topk_typed<double>(scores, k);
        throw TypeError(detail::message("topk: scores must be float32 or float64, got ", describe(scores)));
      },
      py::arg("scores"), py::arg("k"));
  m.def("save_arrays", &save_arrays, py::arg("path"), py::arg("arrays"), py::arg("kind"));
  m.def("load_arrays", &load_arrays, py::arg("path"), py::arg("kind"), py::arg("verify"));
}

}  // namespace ragkernels::bindings
