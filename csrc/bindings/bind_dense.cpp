// Bindings of csrc/dense: validation and conversion only. Vectors and
// queries are viewed in place (numpy buffers, CPU DLPack tensors); the GIL is
// released for the scan and for preparing an index.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/checks.h"
#include "dense/flat_search.h"

namespace ragkernels::bindings {

namespace {

using dense::FlatVectors;
using dense::Metric;
using dense::Storage;

Metric parse_metric(const std::string& name, const char* op) {
  if (name == "ip") return Metric::kInnerProduct;
  if (name == "cosine") return Metric::kCosine;
  if (name == "l2") return Metric::kL2;
  throw ValueError(std::string(op) + ": metric must be \"ip\", \"cosine\" or \"l2\", got \"" + name + "\"");
}

Storage parse_storage(const std::string& name, const char* op) {
  if (name == "float32") return Storage::kFloat32;
  if (name == "float16") return Storage::kFloat16;
  if (name == "int8") return Storage::kInt8;
  throw ValueError(std::string(op) + ": dtype must be \"float32\", \"float16\" or \"int8\", got \"" + name + "\"");
}

bool has_storage(const py::array& a, Storage s) {
  switch (s) {
    case Storage::kFloat32:
      return has_dtype<float>(a);
    case Storage::kFloat16:
      return a.dtype().kind() == 'f' && a.itemsize() == 2;
    case Storage::kInt8:
      return has_dtype<int8_t>(a);
  }
  return false;
}

const char* storage_name(Storage s) {
  switch (s) {
    case Storage::kFloat32:
      return "float32";
    case Storage::kFloat16:
      return "float16";
    case Storage::kInt8:
      return "int8";
  }
  return "?";
}

// A 2-D C-contiguous array of the given storage type, viewed in place.
void check_matrix(const py::array& a, Storage s, const char* op, const char* arg) {
  RK_CHECK_TYPE(has_storage(a, s), op, ": ", arg, " must be ", storage_name(s), ", got ", describe(a),
                s == Storage::kFloat32 ? "; convert with .astype(numpy.float32)" : "");
  RK_CHECK_ARG(a.ndim() == 2, op, ": ", arg, " must be 2-D, got ", describe(a));
  RK_CHECK_ARG(a.flags() & py::array::c_style, op, ": ", arg,
               " must be C-contiguous; pass numpy.ascontiguousarray(", arg, ")");
}

const float* optional_terms(const py::object& obj, int64_t rows, const char* op, const char* arg) {
  if (obj.is_none()) return nullptr;
  const py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<float>(a), op, ": ", arg, " must be float32, got ", describe(a));
  RK_CHECK_ARG(a.ndim() == 1 && a.shape(0) == rows && (a.flags() & py::array::c_style), op, ": ", arg,
               " must be a contiguous 1-D array of ", rows, " entries, got ", describe(a));
  return static_cast<const float*>(a.data());
}

FlatVectors flat_vectors(const py::array& vectors, Storage storage, Metric metric) {
  FlatVectors v;
  v.storage = storage;
  v.metric = metric;
  v.rows = vectors.shape(0);
  v.dim = vectors.shape(1);
  v.data = vectors.data();
  return v;
}

// Checks and converts a user's vectors into what a FlatIndex stores: the
// vectors in `dtype` (the input itself when it already is), the int8 scales,
// and the per-row terms of the metric.
py::dict dense_prepare(py::handle vectors_obj, const std::string& metric_name, const std::string& dtype_name) {
  const char* op = "FlatIndex";
  const Metric metric = parse_metric(metric_name, op);
  const Storage storage = parse_storage(dtype_name, op);
  py::array vectors = as_ndarray(vectors_obj, op, "vectors");
  const bool is_half = has_storage(vectors, Storage::kFloat16);
  RK_CHECK_TYPE(has_dtype<float>(vectors) || (is_half && storage == Storage::kFloat16), op,
                ": vectors must be float32 (or float16 for dtype=\"float16\"), got ", describe(vectors),
                "; convert with .astype(numpy.float32)");
  check_matrix(vectors, is_half ? Storage::kFloat16 : Storage::kFloat32, op, "vectors");
  const int64_t rows = vectors.shape(0), dim = vectors.shape(1);
  RK_CHECK_ARG(dim >= 1, op, ": vectors must have at least one dimension, got ", describe(vectors));
  RK_CHECK_ARG(rows < (int64_t(1) << 32), op, ": more than 2^32 - 1 vectors are not supported");
  int64_t bad_row;
  {
    py::gil_scoped_release nogil;
    bad_row = dense::first_non_finite_row(vectors.data(), is_half ? Storage::kFloat16 : Storage::kFloat32, rows, dim);
  }
  RK_CHECK_ARG(bad_row < 0, op, ": vectors contain NaN or infinity (first in row ", bad_row, ")");

  py::dict out;
  py::object stored = vectors;
  py::object scales = py::none();
  if (storage == Storage::kInt8) {
    auto [q, qv] = new_matrix<int8_t>(rows, dim);
    py::array_t<float> s(rows);
    const auto in = make_view2(static_cast<const float*>(vectors.data()), rows, dim);
    float* sp = s.mutable_data();
    {
      py::gil_scoped_release nogil;
      dense::quantize_int8(in, qv, sp);
    }
    stored = q;
    scales = s;
  } else if (storage == Storage::kFloat16 && !is_half) {
    auto [h, hv] = new_matrix<uint16_t>(rows, dim);
    const auto in = make_view2(static_cast<const float*>(vectors.data()), rows, dim);
    {
      py::gil_scoped_release nogil;
      dense::convert_float16(in, hv);
      bad_row = dense::first_non_finite_row(hv.data, Storage::kFloat16, rows, dim);
    }
    // Past float16's range a value became inf and every score -inf (issue 14).
    RK_CHECK_ARG(bad_row < 0, op, ": vectors overflow float16 (|x| > 65504) in row ", bad_row,
                 "; scale them down or use dtype=\"float32\"");
    stored = h.view("float16");
  }
  const py::array stored_array = stored;
  const FlatVectors v = flat_vectors(stored_array, storage, metric);
  py::array_t<float> row_scale(rows), row_offset(rows);
  const float* scale_data = scales.is_none() ? nullptr : static_cast<const float*>(py::array(scales).data());
  dense::RowTermsWritten written;
  {
    float* rs = row_scale.mutable_data();
    float* ro = row_offset.mutable_data();
    py::gil_scoped_release nogil;
    written = dense::row_terms(v, metric, scale_data, rs, ro);
  }
  out["vectors"] = stored;
  out["scales"] = scales;
  // Under inner product the int8 scales are the row scales: one array, not two.
  const bool scales_are_row_scale = storage == Storage::kInt8 && metric == Metric::kInnerProduct;
  out["row_scale"] = scales_are_row_scale ? scales : written.scale ? py::object(row_scale) : py::none();
  out["row_offset"] = written.offset ? py::object(row_offset) : py::none();
  return out;
}

py::tuple dense_search(py::handle vectors_obj, const std::string& dtype_name, const std::string& metric_name,
                       const py::object& row_scale, const py::object& row_offset, py::handle queries_obj,
                       int64_t k) {
  const char* op = "search";
  const Storage storage = parse_storage(dtype_name, op);
  const Metric metric = parse_metric(metric_name, op);
  const py::array vectors = as_ndarray(vectors_obj, op, "vectors");
  check_matrix(vectors, storage, op, "vectors");
  const py::array queries = as_ndarray(queries_obj, op, "queries");
  check_matrix(queries, Storage::kFloat32, op, "queries");
  RK_CHECK_ARG(k >= 1, op, ": k must be >= 1, got ", k);
  const int64_t dim = vectors.shape(1), nq = queries.shape(0);
  RK_CHECK_ARG(queries.shape(1) == dim, op, ": queries must have the index's dimension ", dim, ", got ",
               describe(queries));
  FlatVectors v = flat_vectors(vectors, storage, metric);
  v.row_scale = optional_terms(row_scale, v.rows, op, "row_scale");
  v.row_offset = optional_terms(row_offset, v.rows, op, "row_offset");
  const auto q = make_view2(static_cast<const float*>(queries.data()), nq, dim);
  auto [ids, ids_view] = new_matrix<int64_t>(nq, k);
  auto [scores, scores_view] = new_matrix<float>(nq, k);
  {
    py::gil_scoped_release nogil;
    RK_CHECK_ARG(dense::all_finite(q.data, Storage::kFloat32, nq * dim), op, ": queries contain NaN or infinity");
    dense::search(v, q, k, ids_view, scores_view);
  }
  return py::make_tuple(ids, scores);
}

// (row_scale, row_offset) of stored vectors, None where the metric has none:
// what the constructor computed, so FlatIndex.load can hold a file's terms
// to them (a forged row_scale reorders results; issue 14, fuzzer finding).
py::tuple dense_row_terms(py::handle vectors_obj, const std::string& dtype_name, const std::string& metric_name,
                          const py::object& scales_obj) {
  const char* op = "FlatIndex.load";
  const Storage storage = parse_storage(dtype_name, op);
  const Metric metric = parse_metric(metric_name, op);
  const py::array vectors = as_ndarray(vectors_obj, op, "vectors");
  check_matrix(vectors, storage, op, "vectors");
  const FlatVectors v = flat_vectors(vectors, storage, metric);
  const int64_t rows = vectors.shape(0);
  const float* scales = optional_terms(scales_obj, rows, op, "scales");
  RK_CHECK_ARG(storage != Storage::kInt8 || scales != nullptr, op, ": int8 vectors need their scales");
  py::array_t<float> row_scale(rows), row_offset(rows);
  dense::RowTermsWritten written;
  {
    float* rs = row_scale.mutable_data();
    float* ro = row_offset.mutable_data();
    py::gil_scoped_release nogil;
    written = dense::row_terms(v, metric, scales, rs, ro);
  }
  return py::make_tuple(written.scale ? py::object(row_scale) : py::none(),
                        written.offset ? py::object(row_offset) : py::none());
}

// The first row of stored vectors holding NaN or inf, or -1: the cheap check
// FlatIndex.load applies to a file (one pass, parallel, no copy).
int64_t dense_first_non_finite_row(py::handle vectors_obj, const std::string& dtype_name) {
  const char* op = "FlatIndex.load";
  const Storage storage = parse_storage(dtype_name, op);
  const py::array vectors = as_ndarray(vectors_obj, op, "vectors");
  check_matrix(vectors, storage, op, "vectors");
  py::gil_scoped_release nogil;
  return dense::first_non_finite_row(vectors.data(), storage, vectors.shape(0), vectors.shape(1));
}

}  // namespace

void bind_dense(py::module_& m) {
  m.def("dense_prepare", &dense_prepare, py::arg("vectors"), py::arg("metric"), py::arg("dtype"));
  m.def("dense_search", &dense_search, py::arg("vectors"), py::arg("dtype"), py::arg("metric"),
        py::arg("row_scale"), py::arg("row_offset"), py::arg("queries"), py::arg("k"));
  m.def("dense_first_non_finite_row", &dense_first_non_finite_row, py::arg("vectors"), py::arg("dtype"));
  m.def("dense_row_terms", &dense_row_terms, py::arg("vectors"), py::arg("dtype"), py::arg("metric"),
        py::arg("scales"));
}

}  // namespace ragkernels::bindings
