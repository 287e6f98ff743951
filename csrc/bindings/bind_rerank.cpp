// Bindings of csrc/rerank: validation and conversion only. MaxSim is bound
// here; the term-match index and the sliding-window bookkeeping have files of
// their own (bind_rerank_term_match.cpp, bind_rerank_window.cpp), called from
// bind_rerank below.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "bindings/checks.h"
#include "rerank/maxsim.h"

namespace ragkernels::bindings {

void bind_rerank_term_match(py::module_& m);
void bind_rerank_window(py::module_& m);

namespace {

using rerank::DocTokens;
using rerank::QueryTokens;
using rerank::TokenType;

constexpr const char* kOp = "maxsim";

// Rows of a token matrix may be strided, their elements must be adjacent.
template <typename T>
View2<const T> token_matrix(const py::array& a, const char* arg) {
  const View2<const T> v = view2<T>(a, kOp, arg);
  // numpy gives an empty array strides of 0: no rows is contiguous (a
  // zero-token query scores 0, issue 14).
  RK_CHECK_ARG(v.col_stride == 1 || v.cols <= 1 || v.rows == 0, kOp, ": ", arg,
               " rows must be contiguous; pass numpy.ascontiguousarray(", arg, ")");
  return v;
}

View1<const int64_t> offsets_array(const py::array& a, int64_t min_size, const char* arg) {
  RK_CHECK_TYPE(has_dtype<int64_t>(a), kOp, ": ", arg, " must be int64, got ", describe(a));
  const View1<const int64_t> v = view1<int64_t>(a, kOp, arg);
  RK_CHECK_ARG(v.contiguous() && v.size >= min_size, kOp, ": ", arg,
               " must be a contiguous 1-D array of at least one entry, got ", describe(a));
  return v;
}

TokenType token_type(const py::array& a) {
  if (has_dtype<float>(a)) return TokenType::kFloat32;
  if (a.dtype().kind() == 'f' && a.itemsize() == 2) return TokenType::kFloat16;
  RK_CHECK_TYPE(has_dtype<int8_t>(a), kOp, ": documents must be float32, float16 or int8, got ", describe(a));
  return TokenType::kInt8;
}

py::array_t<float> maxsim(py::handle queries_obj, py::handle query_offsets_obj, py::handle documents_obj,
                          py::handle doc_offsets_obj, py::handle scales_obj, py::handle candidates_obj) {
  const py::array queries = as_ndarray(queries_obj, kOp, "queries");
  const py::array query_offsets = as_ndarray(query_offsets_obj, kOp, "query_offsets");
  const py::array documents = as_ndarray(documents_obj, kOp, "documents");
  const py::array doc_offsets = as_ndarray(doc_offsets_obj, kOp, "doc_offsets");
  const py::array candidates = as_ndarray(candidates_obj, kOp, "candidates");
  RK_CHECK_TYPE(has_dtype<float>(queries), kOp, ": queries must be float32, got ", describe(queries));
  RK_CHECK_TYPE(has_dtype<int64_t>(candidates), kOp, ": candidates must be int64, got ", describe(candidates));

  QueryTokens q;
  const View2<const float> qv = token_matrix<float>(queries, "queries");
  const View1<const int64_t> qo = offsets_array(query_offsets, 1, "query_offsets");
  q.data = qv.data, q.rows = qv.rows, q.dim = qv.cols, q.row_stride = qv.row_stride;
  q.offsets = qo.data, q.num_queries = qo.size - 1;

  DocTokens d;
  d.type = token_type(documents);
  if (d.type == TokenType::kFloat32) {
    const auto v = token_matrix<float>(documents, "documents");
    d.data = v.data, d.rows = v.rows, d.dim = v.cols, d.row_stride = v.row_stride;
  } else if (d.type == TokenType::kFloat16) {
    const auto v = token_matrix<uint16_t>(documents, "documents");
    d.data = v.data, d.rows = v.rows, d.dim = v.cols, d.row_stride = v.row_stride;
  } else {
    const auto v = token_matrix<int8_t>(documents, "documents");
    d.data = v.data, d.rows = v.rows, d.dim = v.cols, d.row_stride = v.row_stride;
  }
  const View1<const int64_t> dofs = offsets_array(doc_offsets, 1, "doc_offsets");
  d.offsets = dofs.data, d.num_docs = dofs.size - 1;

  py::array scales;
  if (d.type == TokenType::kInt8) {
    RK_CHECK_ARG(!scales_obj.is_none(), kOp, ": int8 documents need scales (one float32 per token row)");
    scales = as_ndarray(scales_obj, kOp, "scales");
    RK_CHECK_TYPE(has_dtype<float>(scales), kOp, ": scales must be float32, got ", describe(scales));
    RK_CHECK_ARG(scales.ndim() == 1 && scales.shape(0) == d.rows && (scales.flags() & py::array::c_style), kOp,
                 ": scales must be a contiguous 1-D array of ", d.rows, " entries (one per token row), got ",
                 describe(scales));
    d.scales = static_cast<const float*>(scales.data());
  } else {
    RK_CHECK_ARG(scales_obj.is_none(), kOp, ": scales apply to int8 documents only, documents are ",
                 describe(documents));
  }

  const View2<const int64_t> cands = view2<int64_t>(candidates, kOp, "candidates");
  auto [out, view] = new_matrix<float>(cands.rows, cands.cols);
  {
    py::gil_scoped_release nogil;
    rerank::maxsim(q, d, cands, view);
  }
  return out;
}

}  // namespace

void bind_rerank(py::module_& m) {
  m.def("maxsim", &maxsim, py::arg("queries"), py::arg("query_offsets"), py::arg("documents"),
        py::arg("doc_offsets"), py::arg("scales"), py::arg("candidates"),
        "MaxSim scores (num_queries, num_candidates) float32 of ragged query and document tokens.");
  bind_rerank_term_match(m);
  bind_rerank_window(m);
}

}  // namespace ragkernels::bindings
