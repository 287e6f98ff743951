// Bindings of csrc/prf: conversion and validation only; the GIL is released
// while feedback runs. Queries arrive as texts (analyzed with the index's
// analyzer) or token lists; expanded queries leave as {term: weight} dicts,
// the weighted queries that SparseIndex search takes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/checks.h"
#include "prf/forward_index.h"
#include "prf/rm3.h"
#include "prf/rocchio.h"
#include "prf/rocchio_dense.h"
#include "sparse/sparse_index.h"

namespace ragkernels::bindings {

namespace {

using prf::FeatureVector;
using prf::ForwardIndex;

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

// Token term ids of every query (see prf::query_term_ids): texts, or lists
// of token strings. Strings are read with the GIL, analyzed without it.
std::vector<std::vector<int64_t>> query_ids(const sparse::SparseIndex& index, const py::sequence& queries,
                                            bool texts, const char* op) {
  const size_t n = py::len(queries);
  std::vector<std::vector<std::string_view>> tokens(n);
  std::vector<py::object> keep_alive;
  for (size_t i = 0; i < n; ++i) {
    const std::string name = "queries[" + std::to_string(i) + "]";
    py::object query = queries[i];
    if (texts) {
      RK_CHECK_TYPE(PyUnicode_Check(query.ptr()), op, ": ", name, " must be str, got ", type_name(query));
      tokens[i].push_back(utf8_of(query, keep_alive));  // analyzed: surrogates are non-word (checks.h)
      continue;
    }
    RK_CHECK_TYPE(py::isinstance<py::sequence>(query) && !PyUnicode_Check(query.ptr()), op, ": ", name,
                  " must be a list of str, got ", type_name(query));
    const py::sequence list = py::reinterpret_borrow<py::sequence>(query);
    for (size_t t = 0; t < py::len(list); ++t) {
      tokens[i].push_back(token_utf8(list[t], keep_alive, op, name + "[" + std::to_string(t) + "]"));
    }
  }
  RK_CHECK_ARG(n == 0 || !texts || index.analyzer() != nullptr, op,
               ": this index was built from tokens, not texts: give the queries as token lists");
  std::vector<std::vector<int64_t>> out(n);
  py::gil_scoped_release nogil;
  text::TokenList scratch;
  for (size_t i = 0; i < n; ++i) {
    out[i] = texts ? prf::query_term_ids(index, tokens[i][0], scratch)
                   : prf::query_term_ids(index, tokens[i].data(), tokens[i].size());
  }
  return out;
}

// A 2-D array of T viewed in place (numpy or DLPack); TypeError for another dtype.
template <typename T>
std::pair<py::array, View2<const T>> matrix(py::handle obj, const char* op, const char* arg) {
  py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<T>(a), op, ": ", arg, " must be ", std::string(py::str(py::dtype::of<T>())), ", got ",
                describe(a));
  const View2<const T> v = view2<T>(a, op, arg);
  return {std::move(a), v};
}

py::list to_dicts(const sparse::SparseIndex& index, const std::vector<FeatureVector>& queries) {
  py::list out;
  for (const FeatureVector& q : queries) {
    py::dict d;
    for (const prf::WeightedTerm& t : q) d[py::str(std::string(index.term(t.term)))] = py::float_(t.weight);
    out.append(std::move(d));
  }
  return out;
}

py::list rm3(const ForwardIndex& forward, const py::sequence& queries, bool texts, const py::object& docs,
             const py::object& scores, int64_t fb_docs, int64_t fb_terms, double original_weight,
             double max_df_ratio, bool filter_terms) {
  const prf::Rm3Params params{fb_docs, fb_terms, original_weight, max_df_ratio, filter_terms};
  prf::check_rm3_params(params);
  const auto [docs_array, docs_view] = matrix<int64_t>(docs, "rm3", "docs");
  const auto [scores_array, scores_view] = matrix<float>(scores, "rm3", "scores");
  const auto ids = query_ids(forward.index(), queries, texts, "rm3");
  std::vector<FeatureVector> expanded;
  {
    py::gil_scoped_release nogil;
    expanded = prf::rm3(forward, ids, docs_view, scores_view, params);
  }
  return to_dicts(forward.index(), expanded);
}

py::list rocchio(const ForwardIndex& forward, const py::sequence& queries, bool texts, const py::object& docs,
                 int64_t fb_docs, int64_t fb_terms, double alpha, double beta, double max_df_ratio) {
  const prf::RocchioParams params{fb_docs, fb_terms, alpha, beta, max_df_ratio};
  prf::check_rocchio_params(params);
  const auto [docs_array, docs_view] = matrix<int64_t>(docs, "rocchio", "docs");
  const auto ids = query_ids(forward.index(), queries, texts, "rocchio");
  std::vector<FeatureVector> expanded;
  {
    py::gil_scoped_release nogil;
    expanded = prf::rocchio(forward, ids, docs_view, params);
  }
  return to_dicts(forward.index(), expanded);
}

py::array rocchio_dense(const py::object& queries, const py::object& doc_vectors, const py::object& feedback_ids,
                        int64_t fb_docs, double alpha, double beta, bool normalize) {
  const auto [q_array, q] = matrix<float>(queries, "rocchio_dense", "queries");
  const auto [d_array, d] = matrix<float>(doc_vectors, "rocchio_dense", "doc_vectors");
  const auto [i_array, ids] = matrix<int64_t>(feedback_ids, "rocchio_dense", "feedback_ids");
  auto [out, out_view] = new_matrix<float>(q.rows, q.cols);
  {
    py::gil_scoped_release nogil;
    prf::rocchio_dense(q, d, ids, prf::RocchioDenseParams{fb_docs, alpha, beta, normalize}, out_view);
  }
  return std::move(out);
}

}  // namespace

void bind_prf(py::module_& m) {
  py::class_<ForwardIndex, std::shared_ptr<ForwardIndex>>(
      m, "PrfForwardIndex", "Document -> (term, tf) rows of a BM25 index (use ragkernels.prf, not this class).")
      .def(py::init([](std::shared_ptr<sparse::SparseIndex> index) {
             py::gil_scoped_release nogil;
             return std::make_shared<ForwardIndex>(std::move(index));
           }),
           py::arg("index"))
      .def_property_readonly("num_docs", &ForwardIndex::num_docs)
      .def_property_readonly("num_postings", &ForwardIndex::num_postings)
      .def("row", [](const ForwardIndex& f, int64_t doc) {
        RK_CHECK_ARG(doc >= 0 && static_cast<uint64_t>(doc) < f.num_docs(), "row: doc must be in [0, ", f.num_docs(),
                     "), got ", doc);
        const auto n = static_cast<py::ssize_t>(f.size(static_cast<uint64_t>(doc)));
        py::array_t<int64_t> terms(n), tfs(n);
        for (py::ssize_t i = 0; i < n; ++i) {
          terms.mutable_at(i) = f.terms(static_cast<uint64_t>(doc))[i];
          tfs.mutable_at(i) = f.tfs(static_cast<uint64_t>(doc))[i];
        }
        return py::make_tuple(terms, tfs);
      }, py::arg("doc"));
  m.def("prf_rm3", &rm3, py::arg("forward"), py::arg("queries"), py::arg("texts"), py::arg("docs"), py::arg("scores"),
        py::arg("fb_docs"), py::arg("fb_terms"), py::arg("original_weight"), py::arg("max_df_ratio"),
        py::arg("filter_terms"));
  m.def("prf_rocchio", &rocchio, py::arg("forward"), py::arg("queries"), py::arg("texts"), py::arg("docs"),
        py::arg("fb_docs"), py::arg("fb_terms"), py::arg("alpha"), py::arg("beta"), py::arg("max_df_ratio"));
  m.def("prf_rocchio_dense", &rocchio_dense, py::arg("queries"), py::arg("doc_vectors"), py::arg("feedback_ids"),
        py::arg("fb_docs"), py::arg("alpha"), py::arg("beta"), py::arg("normalize"));
}

}  // namespace ragkernels::bindings
