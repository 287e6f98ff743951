// Bindings of csrc/text/: conversion and validation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bindings/checks.h"
#include "core/error.h"
#include "sparse/string_interner.h"
#include "text/analyzer.h"
#include "text/segment.h"

namespace py = pybind11;

namespace ragkernels::bindings {

namespace {

using text::Analyzer;
using text::AnalyzerConfig;
using text::TokenList;

// Texts analyzed between two progress reports: enough to keep every thread
// busy, few enough that a bar moves on a corpus of a few thousand texts.
constexpr size_t kTextsPerProgressStep = 2048;

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

bool as_bool(py::handle obj, const char* arg) {
  RK_CHECK_TYPE(PyBool_Check(obj.ptr()), "Analyzer: ", arg, " must be True or False, got ", type_name(obj));
  return obj.ptr() == Py_True;
}

// A str, or an iterable of str, as UTF-8 views; names the first bad item.
std::vector<std::string_view> utf8_items(py::handle items, const char* op, const char* arg,
                                         std::vector<py::object>& keep_alive) {
  std::vector<std::string_view> views;
  if (py::isinstance<py::str>(items)) {
    views.push_back(utf8_of(items, keep_alive));
    return views;
  }
  RK_CHECK_TYPE(!py::isinstance<py::bytes>(items) && !PyByteArray_Check(items.ptr()), op, ": ", arg,
                " must be str, not bytes: decode it first");
  RK_CHECK_TYPE(py::isinstance<py::iterable>(items), op, ": ", arg, " must be a str or an iterable of str, got ",
                type_name(items));
  for (py::handle item : py::iter(items)) {
    RK_CHECK_TYPE(py::isinstance<py::str>(item), op, ": ", arg, "[", views.size(), "] must be str, got ",
                  type_name(item));
    views.push_back(utf8_of(item, keep_alive));
  }
  return views;
}

// "en"/"english"/True: bm25s's English list; None/False: none; else an
// iterable of str (bm25s.tokenization._infer_stopwords, English only).
std::vector<std::string> stopword_list(py::handle stopwords) {
  if (stopwords.is_none() || stopwords.ptr() == Py_False) return {};
  if (stopwords.ptr() == Py_True) return text::english_stopwords();
  if (py::isinstance<py::str>(stopwords)) {
    const auto name = stopwords.cast<std::string>();
    RK_CHECK_ARG(name == "en" || name == "english", "Analyzer: stopwords must be \"en\", \"english\", None or ",
                 "an iterable of str, got \"", name, "\"");
    return text::english_stopwords();
  }
  std::vector<py::object> keep_alive;
  std::vector<std::string> words;
  for (std::string_view word : utf8_items(stopwords, "Analyzer", "stopwords", keep_alive)) words.emplace_back(word);
  return words;
}

bool wants_stemmer(py::handle stemmer) {
  if (stemmer.is_none() || stemmer.ptr() == Py_False) return false;
  RK_CHECK_TYPE(py::isinstance<py::str>(stemmer), "Analyzer: stemmer must be \"english\" or None, got ",
                type_name(stemmer));
  const auto name = stemmer.cast<std::string>();
  RK_CHECK_ARG(name == "english", "Analyzer: stemmer must be \"english\" or None, got \"", name, "\"");
  return true;
}

// The inverse of utf8_of (tokens themselves never hold a surrogate).
py::str to_str(std::string_view utf8) {
  PyObject* s = PyUnicode_DecodeUTF8(utf8.data(), static_cast<Py_ssize_t>(utf8.size()), "surrogatepass");
  if (!s) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

py::list to_python(const TokenList& tokens) {
  py::list out(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), to_str(tokens[i]).release().ptr());
  }
  return out;
}

// One str per distinct term of a tokenize call, shared by every list that
// holds it (bm25s's lists share theirs too): a corpus has far fewer
// distinct terms than tokens, so this saves most allocations and memory.
class SharedTerms {
 public:
  py::list to_python(const TokenList& tokens) {
    py::list out(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), str_of(tokens[i]).release().ptr());
    }
    return out;
  }

 private:
  py::object str_of(std::string_view term) {
    if (auto found = strings_.find(term); found != strings_.end()) return found->second;
    py::str s = to_str(term);
    // The key views the str's own UTF-8 (cached in it by CPython), which
    // lives as long as the map holds the str.
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
    if (!utf8) throw py::error_already_set();
    strings_.emplace(std::string_view(utf8, static_cast<size_t>(size)), s);
    return std::move(s);
  }

  std::unordered_map<std::string_view, py::object> strings_;
};

// The terms of every text as dense ids, in first-seen order, without a
// Python str per token: (values, offsets, terms by id).
py::tuple term_ids(const Analyzer& analyzer, py::handle texts) {
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> views = utf8_items(texts, "Analyzer.term_ids", "texts", keep_alive);
  std::vector<TokenList> lists;
  sparse::StringInterner vocabulary;
  py::array_t<int64_t> offsets(static_cast<py::ssize_t>(views.size() + 1));
  std::vector<int64_t> values;
  {
    py::gil_scoped_release nogil;
    analyzer.analyze_batch(views, lists);
    text::flatten_term_ids(lists, [&](std::string_view term) { return vocabulary.intern(term); }, values,
                           offsets.mutable_data());
  }
  py::array_t<int64_t> ids(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), ids.mutable_data());
  py::list terms(vocabulary.size());
  for (size_t i = 0; i < vocabulary.size(); ++i) {
    PyList_SET_ITEM(terms.ptr(), static_cast<Py_ssize_t>(i), to_str(vocabulary[i]).release().ptr());
  }
  return py::make_tuple(std::move(ids), std::move(offsets), std::move(terms));
}

// Texts in steps (one step when there is no progress callback), each
// analyzed in parallel without the GIL; progress(n) after each step.
py::list tokenize(const Analyzer& analyzer, py::handle texts, py::handle progress) {
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> views = utf8_items(texts, "Analyzer.tokenize", "texts", keep_alive);
  const size_t step = progress.is_none() ? std::max<size_t>(views.size(), 1) : kTextsPerProgressStep;
  py::list out;
  std::vector<TokenList> lists;
  SharedTerms terms;
  for (size_t lo = 0; lo < views.size(); lo += step) {
    const size_t hi = std::min(views.size(), lo + step);
    const std::vector<std::string_view> batch(views.begin() + lo, views.begin() + hi);
    {
      py::gil_scoped_release nogil;
      analyzer.analyze_batch(batch, lists);
    }
    for (const auto& tokens : lists) out.append(terms.to_python(tokens));
    if (!progress.is_none()) progress(hi - lo);
  }
  return out;
}

py::list stem(const Analyzer& analyzer, py::handle words) {
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> views = utf8_items(words, "Analyzer.stem", "words", keep_alive);
  TokenList terms;
  {
    py::gil_scoped_release nogil;
    for (std::string_view word : views) terms.push_back(analyzer.normalize(word));
  }
  return to_python(terms);
}

py::dict config_dict(const Analyzer& analyzer) {
  const AnalyzerConfig& c = analyzer.config();
  py::dict out;
  out["lowercase"] = c.lowercase;
  py::list stopwords;
  for (const auto& word : c.stopwords) stopwords.append(to_str(word));
  out["stopwords"] = stopwords;
  out["stemmer"] = c.stem ? py::object(py::str("english")) : py::object(py::none());
  out["keep_numbers"] = c.keep_numbers;
  return out;
}

// Sentences of every text as code-point spans, flattened: spans (total, 2)
// int64 [begin, end) and offsets (n_texts + 1,) int64, text i owning rows
// offsets[i]:offsets[i + 1]. Segmented without the GIL, texts in parallel.
py::tuple split_sentences(py::handle texts) {
  std::vector<py::object> keep_alive;
  const std::vector<std::string_view> views = utf8_items(texts, "split_sentences", "texts", keep_alive);
  std::vector<std::vector<text::SentenceSpan>> per_text;
  py::array_t<int64_t> offsets(static_cast<py::ssize_t>(views.size() + 1));
  int64_t* off = offsets.mutable_data();
  int64_t total = 0;
  {
    py::gil_scoped_release nogil;
    text::split_sentences_batch(views, per_text);
    off[0] = 0;
    for (size_t i = 0; i < per_text.size(); ++i) off[i + 1] = total += static_cast<int64_t>(per_text[i].size());
  }
  py::array_t<int64_t> spans({static_cast<py::ssize_t>(total), static_cast<py::ssize_t>(2)});
  int64_t* out = spans.mutable_data();
  {
    py::gil_scoped_release nogil;
    for (const auto& sentences : per_text) {
      for (const auto& s : sentences) {
        *out++ = s.begin;
        *out++ = s.end;
      }
    }
  }
  return py::make_tuple(std::move(spans), std::move(offsets));
}

}  // namespace

void bind_text(py::module_& m) {
  m.def("split_sentences", &split_sentences, py::arg("texts"));
  m.attr("text_unicode_version") = py::str(std::string(text::unicode_version()));
  py::class_<Analyzer>(m, "Analyzer")
      .def(py::init([](py::handle lowercase, py::handle stopwords, py::handle stemmer, py::handle keep_numbers) {
             AnalyzerConfig config;
             config.lowercase = as_bool(lowercase, "lowercase");
             config.keep_numbers = as_bool(keep_numbers, "keep_numbers");
             config.stem = wants_stemmer(stemmer);
             config.stopwords = stopword_list(stopwords);
             return Analyzer(std::move(config));
           }),
           py::arg("lowercase"), py::arg("stopwords"), py::arg("stemmer"), py::arg("keep_numbers"))
      .def("tokenize", &tokenize, py::arg("texts"), py::arg("progress") = py::none())
      .def("term_ids", &term_ids, py::arg("texts"))
      .def("stem", &stem, py::arg("words"))
      .def_property_readonly("config", &config_dict);
}

}  // namespace ragkernels::bindings
