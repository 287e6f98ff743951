// Bindings of csrc/sparse: conversion and validation only. Strings are read
// in place (CPython's UTF-8 buffer of each str), arrays through checks.h; the
// GIL is released for building and searching.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/checks.h"
#include "sparse/sparse_index.h"

namespace ragkernels::bindings {

namespace {

using sparse::IndexBuilder;
using sparse::Query;
using sparse::SparseIndex;

// The UTF-8 bytes of every str in `items`, viewed in place; keep_alive holds
// each str (a sequence's items may be temporaries, and the views outlive the
// GIL). For strings kept as they are (tokens): a str that has no UTF-8 form
// (a lone surrogate) is a ValueError. Errors name the item by its position in
// the caller's whole input, first + i (callers pass batches one by one).
std::vector<std::string_view> utf8_views(const py::sequence& items, const char* op, const char* arg,
                                         std::vector<py::object>& keep_alive, size_t first = 0) {
  std::vector<std::string_view> out;
  const size_t n = py::len(items);
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(token_utf8(items[i], keep_alive, op, detail::message(arg, "[", first + i, "]")));
  }
  return out;
}

// Texts to analyze, as utf8_views but read as the analyzer reads them: a lone
// surrogate is a non-word character there, as in bm25s's regex (checks.h).
std::vector<std::string_view> text_views(const py::sequence& items, const char* op, const char* arg,
                                         std::vector<py::object>& keep_alive, size_t first = 0) {
  std::vector<std::string_view> out;
  const size_t n = py::len(items);
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    py::object item = items[i];
    RK_CHECK_TYPE(PyUnicode_Check(item.ptr()), op, ": ", arg, "[", first + i, "] must be str, got ",
                  std::string(py::str(py::type::handle_of(item).attr("__name__"))));
    out.push_back(utf8_of(item, keep_alive));
  }
  return out;
}

// Token strings can be looked up: a string vocabulary (even of 0 terms), or
// an id vocabulary given names at build.
bool has_strings(const SparseIndex& index) {
  return index.vocabulary() == sparse::Vocabulary::strings || index.data().vocab_ends.size > 0;
}

// A 1-D array of T viewed in place; must be contiguous.
template <typename T>
const T* contiguous1(const py::array& a, int64_t expected, const char* op, const char* arg) {
  RK_CHECK_TYPE(has_dtype<T>(a), op, ": ", arg, " must be ", py::str(py::dtype::of<T>()).cast<std::string>(),
                ", got ", describe(a));
  const View1<const T> v = view1<T>(a, op, arg);
  RK_CHECK_ARG(expected < 0 || v.size == expected, op, ": ", arg, " must have ", expected, " entries, got ",
               describe(a));
  RK_CHECK_ARG(v.contiguous(), op, ": ", arg, " must be contiguous; pass numpy.ascontiguousarray(", arg, ")");
  return v.data;
}

// CSR offsets: n + 1 non-decreasing int64 starting at 0.
std::vector<uint64_t> check_offsets(const py::array& a, const char* op, const char* arg, uint64_t total) {
  const int64_t* p = contiguous1<int64_t>(a, -1, op, arg);
  const int64_t n = a.shape(0);
  RK_CHECK_ARG(n >= 1 && p[0] == 0 && static_cast<uint64_t>(p[n - 1]) == total, op, ": ", arg,
               " must start at 0 and end at the number of entries (", total, ")");
  std::vector<uint64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    RK_CHECK_ARG(i == 0 || p[i] >= p[i - 1], op, ": ", arg, " must not decrease (at ", i, ")");
    out[i] = static_cast<uint64_t>(p[i]);
  }
  return out;
}

std::optional<text::AnalyzerConfig> analyzer_config(const py::object& config) {
  if (config.is_none()) return std::nullopt;
  const py::dict d = config.cast<py::dict>();
  text::AnalyzerConfig a;
  a.lowercase = d["lowercase"].cast<bool>();
  a.keep_numbers = d["keep_numbers"].cast<bool>();
  a.stem = !d["stemmer"].is_none();  // "english", the one stemmer there is (checked by ragkernels.text)
  a.stopwords = d["stopwords"].cast<std::vector<std::string>>();
  return a;
}

py::object analyzer_dict(const SparseIndex& index) {
  if (!index.analyzer()) return py::none();
  const text::AnalyzerConfig& a = index.analyzer()->config();
  py::dict d;
  d["lowercase"] = a.lowercase;
  d["keep_numbers"] = a.keep_numbers;
  d["stemmer"] = a.stem ? py::object(py::str("english")) : py::none();
  d["stopwords"] = a.stopwords;
  return std::move(d);
}

sparse::Vocabulary parse_vocabulary(const std::string& name) {
  if (name == "strings") return sparse::Vocabulary::strings;
  if (name == "ids") return sparse::Vocabulary::ids;
  throw ValueError("vocabulary must be 'strings' or 'ids', got '" + name + "'");
}

// Runs queries built by make_query(i) without the GIL; returns (docs, scores).
py::tuple run_search(const SparseIndex& index, size_t n, int64_t k, const std::string& algorithm,
                     const std::function<Query(size_t)>& make_query) {
  RK_CHECK_ARG(k >= 1, "search: k must be >= 1, got ", k);
  const sparse::QueryAlgorithm algo = sparse::parse_query_algorithm(algorithm);
  auto [docs, docs_view] = new_matrix<int64_t>(static_cast<int64_t>(n), k);
  auto [scores, scores_view] = new_matrix<float>(static_cast<int64_t>(n), k);
  {
    py::gil_scoped_release nogil;
    index.search(n, make_query, static_cast<size_t>(k), algo, docs_view.data, scores_view.data);
  }
  return py::make_tuple(docs, scores);
}

py::tuple search_texts(const SparseIndex& index, const py::sequence& queries, int64_t k, const std::string& algorithm,
                       size_t first) {
  RK_CHECK_ARG(index.analyzer(), "search: this index was built from tokens, not texts: pass token lists");
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> texts = text_views(queries, "search", "queries", keep_alive, first);
  return run_search(index, texts.size(), k, algorithm, [&](size_t i) {
    thread_local text::TokenList scratch;
    return index.query_from_text(texts[i], scratch);
  });
}

// Texts analyzed as the index analyzed its documents, each term mapped to its
// id (-1: not in the vocabulary): (values, offsets), texts in parallel.
py::tuple text_term_ids(const SparseIndex& index, const py::sequence& texts) {
  RK_CHECK_ARG(index.analyzer(), "term_ids: this index was built from tokens, not texts");
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> views = text_views(texts, "term_ids", "texts", keep_alive);
  py::array_t<int64_t> offsets(static_cast<py::ssize_t>(views.size() + 1));
  std::vector<int64_t> values;
  {
    py::gil_scoped_release nogil;
    std::vector<text::TokenList> lists;
    index.analyzer()->analyze_batch(views, lists);
    text::flatten_term_ids(lists, [&](std::string_view term) { return index.term_id(term); }, values,
                           offsets.mutable_data());
  }
  py::array_t<int64_t> ids(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), ids.mutable_data());
  return py::make_tuple(std::move(ids), std::move(offsets));
}

// Queries as {token: weight}: tokens flat with end offsets, a weight per token.
py::tuple search_weighted_tokens(const SparseIndex& index, const py::sequence& tokens, const py::array& offsets,
                                 const py::array& weights, int64_t k, const std::string& algorithm) {
  RK_CHECK_ARG(has_strings(index), "search: this index has no string vocabulary: pass token ids");
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> flat = utf8_views(tokens, "search", "tokens", keep_alive);
  const std::vector<uint64_t> ends = check_offsets(offsets, "search", "offsets", flat.size());
  const py::array weights_array = as_ndarray(weights, "search", "weights");
  const float* w = contiguous1<float>(weights_array, static_cast<int64_t>(flat.size()), "search", "weights");
  return run_search(index, ends.size() - 1, k, algorithm, [&](size_t i) {
    std::vector<int64_t> ids;
    for (uint64_t t = ends[i]; t < ends[i + 1]; ++t) ids.push_back(index.term_id(flat[t]));
    return index.query_from_ids(ids.data(), ids.size(), w + ends[i]);
  });
}

// Lists of token strings as one flat list of views + end offsets, read in
// place (no flattening in Python). Errors name the list and the token.
std::pair<std::vector<std::string_view>, std::vector<uint64_t>> token_lists(const py::sequence& lists, const char* op,
                                                                            const char* arg,
                                                                            std::vector<py::object>& keep_alive,
                                                                            size_t first = 0) {
  std::vector<std::string_view> flat;
  std::vector<uint64_t> ends{0};
  const size_t n = py::len(lists);
  for (size_t i = 0; i < n; ++i) {
    const std::string name = std::string(arg) + "[" + std::to_string(first + i) + "]";
    const std::vector<std::string_view> tokens = utf8_views(lists[i], op, name.c_str(), keep_alive);
    flat.insert(flat.end(), tokens.begin(), tokens.end());
    ends.push_back(flat.size());
  }
  return {std::move(flat), std::move(ends)};
}

// Queries as lists of token strings.
py::tuple search_token_lists(const SparseIndex& index, const py::sequence& queries, int64_t k,
                             const std::string& algorithm, size_t first) {
  RK_CHECK_ARG(has_strings(index), "search: this index has no string vocabulary: pass token ids");
  std::vector<py::object> keep_alive;
  const auto [flat, ends] = token_lists(queries, "search", "queries", keep_alive, first);
  return run_search(index, ends.size() - 1, k, algorithm, [&](size_t i) {
    return index.query_from_tokens({flat.begin() + ends[i], flat.begin() + ends[i + 1]});
  });
}

py::tuple search_ids(const SparseIndex& index, const py::array& ids, const py::array& offsets,
                     const py::object& weights, int64_t k, const std::string& algorithm) {
  const py::array ids_array = as_ndarray(ids, "search", "ids");
  const int64_t* id = contiguous1<int64_t>(ids_array, -1, "search", "ids");
  const std::vector<uint64_t> ends = check_offsets(offsets, "search", "offsets", ids_array.shape(0));
  const float* w = nullptr;
  py::array weights_array;
  if (!weights.is_none()) {
    weights_array = as_ndarray(weights, "search", "weights");
    w = contiguous1<float>(weights_array, ids_array.shape(0), "search", "weights");
  }
  return run_search(index, ends.size() - 1, k, algorithm, [&](size_t i) {
    return index.query_from_ids(id + ends[i], ends[i + 1] - ends[i], w ? w + ends[i] : nullptr);
  });
}

}  // namespace

void bind_sparse(py::module_& m) {
  py::class_<SparseIndex, std::shared_ptr<SparseIndex>>(m, "SparseIndex",
                                                         "Inverted index (use ragkernels.sparse, not this class).")
      .def_property_readonly("scoring", [](const SparseIndex& i) {
        return i.scoring() == sparse::Scoring::bm25 ? "bm25" : "impact";
      })
      .def_property_readonly("vocabulary", [](const SparseIndex& i) {
        return i.vocabulary() == sparse::Vocabulary::strings ? "strings" : "ids";
      })
      .def_property_readonly("num_docs", &SparseIndex::num_docs)
      .def_property_readonly("num_terms", &SparseIndex::num_terms)
      .def_property_readonly("num_postings", &SparseIndex::num_postings)
      .def("document_frequencies", [](const SparseIndex& i) {
        const auto& df = i.data().term_df;  // documents holding term id t
        py::array_t<uint32_t> out(static_cast<py::ssize_t>(df.size));
        std::copy(df.data, df.data + df.size, out.mutable_data());
        return out;
      })
      .def_property_readonly("method", [](const SparseIndex& i) { return bm25_method_name(i.data().bm25.method); })
      .def_property_readonly("k1", [](const SparseIndex& i) { return i.data().bm25.k1; })
      .def_property_readonly("b", [](const SparseIndex& i) { return i.data().bm25.b; })
      .def_property_readonly("delta", [](const SparseIndex& i) { return i.data().bm25.delta; })
      .def_property_readonly("avg_doc_length", [](const SparseIndex& i) { return i.data().avg_doc_length; })
      .def_property_readonly("impact_bits", [](const SparseIndex& i) { return i.data().impact_bits; })
      .def_property_readonly("impact_scale", [](const SparseIndex& i) { return i.data().impact_scale; })
      .def_property_readonly("analyzer_config", &analyzer_dict)
      .def("doc_ids", [](const SparseIndex& i) {
        py::list out;
        if (i.has_doc_ids()) {
          for (uint64_t d = 0; d < i.num_docs(); ++d) out.append(py::str(std::string(i.doc_id(d))));
        }
        return out;
      })
      .def("terms", [](const SparseIndex& i) {
        py::list out;
        for (uint64_t t = 0; t < i.data().vocab_ends.size; ++t) out.append(py::str(std::string(i.term(t))));
        return out;
      })
      .def("term_id", &SparseIndex::term_id, py::arg("token"))
      .def("text_term_ids", &text_term_ids, py::arg("texts"))
      .def("search_texts", &search_texts, py::arg("queries"), py::arg("k"), py::arg("algorithm"),
           py::arg("first") = 0)
      .def("search_weighted_tokens", &search_weighted_tokens, py::arg("tokens"), py::arg("offsets"), py::arg("weights"), py::arg("k"),
           py::arg("algorithm"))
      .def("search_token_lists", &search_token_lists, py::arg("queries"), py::arg("k"), py::arg("algorithm"),
           py::arg("first") = 0)
      .def("search_ids", &search_ids, py::arg("ids"), py::arg("offsets"), py::arg("weights"), py::arg("k"),
           py::arg("algorithm"))
      .def("save", &SparseIndex::save, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def_static("load", &SparseIndex::load, py::arg("path"), py::arg("verify") = true,
                  py::call_guard<py::gil_scoped_release>());

  py::class_<IndexBuilder>(m, "IndexBuilder", "Index builder (use ragkernels.sparse, not this class).")
      .def_static("bm25", [](const py::object& analyzer, const std::string& vocabulary) {
        return IndexBuilder::bm25(analyzer_config(analyzer), parse_vocabulary(vocabulary));
      }, py::arg("analyzer"), py::arg("vocabulary"))
      .def_static("impact", [](const std::string& vocabulary) {
        return IndexBuilder::impact(parse_vocabulary(vocabulary));
      }, py::arg("vocabulary"))
      .def_property_readonly("num_docs", &IndexBuilder::num_docs)
      .def("add_texts", [](IndexBuilder& b, const py::sequence& texts) {
        std::vector<py::object> keep_alive;
        const std::vector<std::string_view> views = text_views(texts, "build", "documents", keep_alive, b.num_docs());
        py::gil_scoped_release nogil;
        b.add_texts(views);
      }, py::arg("texts"))
      .def("add_token_lists", [](IndexBuilder& b, const py::sequence& documents) {
        std::vector<py::object> keep_alive;
        const auto [flat, ends] = token_lists(documents, "build", "documents", keep_alive, b.num_docs());
        py::gil_scoped_release nogil;
        b.add_tokens(flat, ends, nullptr);
      }, py::arg("documents"))
      .def("add_tokens", [](IndexBuilder& b, const py::sequence& tokens, const py::array& offsets,
                            const py::object& weights) {
        std::vector<py::object> keep_alive;
        const std::vector<std::string_view> flat = utf8_views(tokens, "build", "tokens", keep_alive);
        const std::vector<uint64_t> ends = check_offsets(offsets, "build", "offsets", flat.size());
        py::array weights_array;
        const float* w = nullptr;
        if (!weights.is_none()) {
          weights_array = as_ndarray(weights, "build", "weights");
          w = contiguous1<float>(weights_array, static_cast<int64_t>(flat.size()), "build", "weights");
        }
        py::gil_scoped_release nogil;
        b.add_tokens(flat, ends, w);
      }, py::arg("tokens"), py::arg("offsets"), py::arg("weights"))
      .def("add_ids", [](IndexBuilder& b, const py::array& ids, const py::array& offsets, const py::object& weights) {
        const py::array ids_array = as_ndarray(ids, "build", "ids");
        const int64_t* id = contiguous1<int64_t>(ids_array, -1, "build", "ids");
        const std::vector<uint64_t> ends = check_offsets(offsets, "build", "offsets", ids_array.shape(0));
        py::array weights_array;
        const float* w = nullptr;
        if (!weights.is_none()) {
          weights_array = as_ndarray(weights, "build", "weights");
          w = contiguous1<float>(weights_array, ids_array.shape(0), "build", "weights");
        }
        py::gil_scoped_release nogil;
        b.add_ids(id, ends.data(), ends.size() - 1, w);
      }, py::arg("ids"), py::arg("offsets"), py::arg("weights"))
      .def("finish_bm25", [](IndexBuilder& b, const std::string& method, double k1, double bb, double delta,
                             std::vector<std::string> doc_ids) {
        const sparse::Bm25Params params{sparse::parse_bm25_method(method), k1, bb, delta};
        py::gil_scoped_release nogil;
        return b.finish_bm25(params, std::move(doc_ids));
      }, py::arg("method"), py::arg("k1"), py::arg("b"), py::arg("delta"), py::arg("doc_ids"))
      .def("finish_impact", [](IndexBuilder& b, uint32_t bits, std::vector<std::string> doc_ids, uint64_t num_terms,
                               std::vector<std::string> vocabulary) {
        py::gil_scoped_release nogil;
        return b.finish_impact(bits, std::move(doc_ids), num_terms, vocabulary);
      }, py::arg("bits"), py::arg("doc_ids"), py::arg("num_terms"), py::arg("vocabulary"));
}

}  // namespace ragkernels::bindings
