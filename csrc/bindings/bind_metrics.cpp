// Bindings of csrc/metrics: qrels and runs from files, dicts or arrays, and
// trec_eval-exact evaluation. Conversion and validation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/checks.h"
#include "metrics/evaluate.h"
#include "metrics/from_columns.h"
#include "metrics/run_qrels.h"
#include "metrics/trec_format.h"
#include "metrics/trec_io.h"

namespace ragkernels::bindings {

namespace {

using metrics::Evaluation;
using metrics::Qrels;
using metrics::Run;

std::string_view as_id(py::handle key, const char* op, const char* what) {
  RK_CHECK_TYPE(PyUnicode_Check(key.ptr()), op, ": ", what, " must be str, got ",
                std::string(py::str(py::type::of(key).attr("__name__"))), " (", std::string(py::repr(key)), ")");
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(key.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return std::string_view(data, static_cast<size_t>(size));
}

const py::dict& as_dict(const py::handle& obj, const char* op, const std::string& what) {
  RK_CHECK_TYPE(PyDict_Check(obj.ptr()), op, ": ", what, " must be a dict, got ",
                std::string(py::str(py::type::of(obj).attr("__name__"))));
  return reinterpret_cast<const py::dict&>(obj);
}

// {query_id: {doc_id: int relevance}}, as pytrec_eval takes it.
Qrels qrels_from_dict(const py::dict& qrels) {
  metrics::QrelsBuilder builder;
  for (auto [qid_obj, docs_obj] : qrels) {
    auto qid = as_id(qid_obj, "qrels", "query ids");
    const py::dict& docs = as_dict(docs_obj, "qrels", "qrels['" + std::string(qid) + "']");
    for (auto [doc_obj, rel_obj] : docs) {
      auto doc = as_id(doc_obj, "qrels", "doc ids");
      RK_CHECK_TYPE(PyLong_Check(rel_obj.ptr()) && !PyBool_Check(rel_obj.ptr()), "qrels: relevance of ('", qid,
                    "', '", doc, "') must be int, got ", std::string(py::repr(rel_obj)));
      builder.add(qid, doc, rel_obj.cast<int64_t>());
    }
  }
  return builder.finish();
}

// {query_id: {doc_id: float score}}, as pytrec_eval takes it.
Run run_from_dict(const py::dict& run) {
  metrics::RunBuilder builder;
  for (auto [qid_obj, docs_obj] : run) {
    auto qid = as_id(qid_obj, "run", "query ids");
    const py::dict& docs = as_dict(docs_obj, "run", "run['" + std::string(qid) + "']");
    for (auto [doc_obj, score_obj] : docs) {
      auto doc = as_id(doc_obj, "run", "doc ids");
      const double score = PyFloat_AsDouble(score_obj.ptr());
      if (score == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw TypeError(detail::message("run: score of ('", qid, "', '", doc, "') must be a number, got ",
                                        std::string(py::repr(score_obj))));
      }
      RK_CHECK_ARG(!std::isnan(score), "run: score of ('", qid, "', '", doc, "') is NaN");
      builder.add(qid, doc, score);
    }
  }
  return builder.finish();
}

py::array int_ids(py::handle obj, const char* op, const char* arg) {
  py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<int64_t>(a) || has_dtype<int32_t>(a), op, ": ", arg,
                " must be int32 or int64, got ", describe(a));
  RK_CHECK_ARG(a.ndim() == 1, op, ": ", arg, " must be 1-D, got ", describe(a));
  return a;
}

// An int32 or int64 1-D array as the metrics core's column (no copy).
metrics::IdColumn id_column(const py::array& a, const char* op, const char* arg) {
  metrics::IdColumn c;
  if (has_dtype<int64_t>(a))
    c.i64 = view1<int64_t>(a, op, arg);
  else
    c.i32 = view1<int32_t>(a, op, arg);
  return c;
}

void check_same_length(const py::array& a, const py::array& b, const py::array& c, const char* op) {
  RK_CHECK_ARG(a.shape(0) == b.shape(0) && a.shape(0) == c.shape(0), op,
               ": query_ids, doc_ids and values must have the same length, got ", a.shape(0), ", ", b.shape(0),
               " and ", c.shape(0));
}

Qrels qrels_from_arrays(py::handle qids_obj, py::handle docs_obj, py::handle rels_obj) {
  py::array qids = int_ids(qids_obj, "qrels", "query_ids");
  py::array docs = int_ids(docs_obj, "qrels", "doc_ids");
  py::array rels = int_ids(rels_obj, "qrels", "relevance");
  check_same_length(qids, docs, rels, "qrels");
  const metrics::IdColumn q = id_column(qids, "qrels", "query_ids"), d = id_column(docs, "qrels", "doc_ids"),
                          r = id_column(rels, "qrels", "relevance");
  py::gil_scoped_release nogil;
  return metrics::qrels_from_columns(q, d, r);
}

template <typename T>
Run run_from_typed_arrays(const py::array& qids, const py::array& docs, const py::array& scores) {
  auto s = view1<T>(scores, "run", "scores");
  const metrics::IdColumn q = id_column(qids, "run", "query_ids"), d = id_column(docs, "run", "doc_ids");
  py::gil_scoped_release nogil;
  for (int64_t i = 0; i < s.size; ++i)
    RK_CHECK_ARG(!std::isnan(s[i]), "run: scores[", i, "] is NaN");
  return metrics::run_from_columns(q, d, s);
}

Run run_from_arrays(py::handle qids_obj, py::handle docs_obj, py::handle scores_obj) {
  py::array qids = int_ids(qids_obj, "run", "query_ids");
  py::array docs = int_ids(docs_obj, "run", "doc_ids");
  py::array scores = as_ndarray(scores_obj, "run", "scores");
  RK_CHECK_ARG(scores.ndim() == 1, "run: scores must be 1-D, got ", describe(scores));
  check_same_length(qids, docs, scores, "run");
  if (has_dtype<double>(scores)) return run_from_typed_arrays<double>(qids, docs, scores);
  if (has_dtype<float>(scores)) return run_from_typed_arrays<float>(qids, docs, scores);
  throw TypeError(detail::message("run: scores must be float32 or float64, got ", describe(scores)));
}

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& values, int64_t rows, int64_t cols) {
  py::array_t<T> out({rows, cols});
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

}  // namespace

void bind_metrics(py::module_& m) {
  py::class_<Qrels>(m, "Qrels", "Relevance judgments grouped by query (build with ragkernels.metrics).");
  py::class_<Run>(m, "Run", "A ranking per query (build with ragkernels.metrics).");
  py::class_<metrics::MeasureSet>(m, "MeasureSet")
      .def_property_readonly("names", &metrics::MeasureSet::names);
  py::class_<Evaluation>(m, "Evaluation")
      .def_readonly("query_ids", &Evaluation::query_ids)
      .def_readonly("measure_names", &Evaluation::measure_names)
      .def_readonly("relstrings", &Evaluation::relstrings)
      .def_readonly("runid", &Evaluation::runid)
      .def_property_readonly("per_query",
                             [](const Evaluation& e) {
                               return to_numpy(e.per_query, static_cast<int64_t>(e.query_ids.size()),
                                               static_cast<int64_t>(e.measure_names.size()));
                             })
      .def_property_readonly("summary",
                             [](const Evaluation& e) {
                               return to_numpy(e.summary, 1, static_cast<int64_t>(e.summary.size())).attr("ravel")();
                             })
      .def_property_readonly("is_integer",
                             [](const Evaluation& e) {
                               return std::vector<bool>(e.is_integer.begin(), e.is_integer.end());
                             })
      .def("format_trec_eval", [](const Evaluation& e, bool per_query) {
        return metrics::format_trec_eval(e, per_query);
      }, py::arg("per_query"));

  m.def("read_qrels", &metrics::read_qrels, py::arg("path"), py::call_guard<py::gil_scoped_release>());
  m.def("read_run", &metrics::read_run, py::arg("path"), py::call_guard<py::gil_scoped_release>());
  m.def("qrels_from_dict", &qrels_from_dict, py::arg("qrels"));
  m.def("run_from_dict", &run_from_dict, py::arg("run"));
  m.def("qrels_from_arrays", &qrels_from_arrays, py::arg("query_ids"), py::arg("doc_ids"), py::arg("relevance"));
  m.def("run_from_arrays", &run_from_arrays, py::arg("query_ids"), py::arg("doc_ids"), py::arg("scores"));
  m.def("parse_measures", &metrics::MeasureSet::parse, py::arg("measures"));
  m.def(
      "evaluate",
      [](const Qrels& qrels, const Run& run, const metrics::MeasureSet& measures, int64_t relevance_level,
         bool all_queries, int64_t max_docs, bool judged_only) {
        RK_CHECK_ARG(max_docs >= 1, "evaluate: depth must be >= 1, got ", max_docs);
        // trec_eval -l does not check, but every measure assumes grade 0 (and
        // infAP's -1) is not relevant: at -5, MAP came out as 2.0 (issue 14).
        RK_CHECK_ARG(relevance_level >= 1, "evaluate: relevance_level must be >= 1, got ", relevance_level);
        metrics::EvalOptions options;
        options.relevance_level = relevance_level;
        options.all_queries = all_queries;
        options.max_docs = max_docs;
        options.judged_only = judged_only;
        py::gil_scoped_release nogil;
        return metrics::evaluate(qrels, run, measures, options);
      },
      py::arg("qrels"), py::arg("run"), py::arg("measures"), py::arg("relevance_level"), py::arg("all_queries"),
      py::arg("max_docs"), py::arg("judged_only"));
}

}  // namespace ragkernels::bindings
