// Bindings of csrc/rerank/term_match: validation and conversion only.
// Query ids and candidates are viewed in place (numpy buffers, CPU DLPack
// tensors); the GIL is released while queries are prepared and scored.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "bindings/checks.h"
#include "rerank/term_match.h"
#include "sparse/sparse_index.h"

namespace ragkernels::bindings {

namespace {

using rerank::QueryLayout;
using rerank::QueryTerms;
using rerank::TermMatchIndex;

constexpr const char* kOp = "term_match";

bool is_int32_or_64(const py::array& a) { return has_dtype<int32_t>(a) || has_dtype<int64_t>(a); }

void check_ints(const py::array& a, const char* op, const std::string& arg) {
  RK_CHECK_TYPE(is_int32_or_64(a), op, ": ", arg, " must be int32 or int64, got ", describe(a));
}

// One of the index's arrays, read-only, keeping the index alive.
template <typename T>
py::array index_array(const std::shared_ptr<TermMatchIndex>& index, const T* data, int64_t n) {
  auto* holder = new std::shared_ptr<TermMatchIndex>(index);
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<TermMatchIndex>*>(p); });
  py::array a(py::dtype::of<T>(), {static_cast<py::ssize_t>(n)}, {}, n ? data : nullptr, base);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

std::shared_ptr<TermMatchIndex> from_arrays(py::handle term_ids_obj, py::handle weights_obj, py::handle offsets_obj,
                                            const py::object& vocab_size_obj) {
  const char* op = "TermMatchIndex.from_arrays";
  const py::array term_ids = as_ndarray(term_ids_obj, op, "term_ids");
  const py::array weights = as_ndarray(weights_obj, op, "weights");
  const py::array offsets = as_ndarray(offsets_obj, op, "offsets");
  check_ints(term_ids, op, "term_ids");
  RK_CHECK_TYPE(has_dtype<float>(weights), op, ": weights must be float32, got ", describe(weights),
                "; convert with .astype(numpy.float32)");
  RK_CHECK_TYPE(has_dtype<int64_t>(offsets), op, ": offsets must be int64, got ", describe(offsets));
  int64_t vocab_size = -1;
  if (!vocab_size_obj.is_none()) {
    vocab_size = vocab_size_obj.cast<int64_t>();
    RK_CHECK_ARG(vocab_size >= 0, op, ": vocab_size must be >= 0, got ", vocab_size);
  }
  const auto w = view1<float>(weights, op, "weights");
  const auto o = view1<int64_t>(offsets, op, "offsets");
  if (has_dtype<int32_t>(term_ids)) {
    const auto t = view1<int32_t>(term_ids, op, "term_ids");
    py::gil_scoped_release nogil;
    return TermMatchIndex::from_arrays(t, w, o, vocab_size);
  }
  const auto t = view1<int64_t>(term_ids, op, "term_ids");
  py::gil_scoped_release nogil;
  return TermMatchIndex::from_arrays(t, w, o, vocab_size);
}

// Query ids as given: one 1-D array, a 2-D array padded with -1, or a list
// of 1-D arrays; `keep` holds the arrays that `rows` view.
struct QueryInput {
  struct Row {
    ConstView1<int32_t> i32;  // used when is32
    ConstView1<int64_t> i64;
    bool is32 = false;
  };
  std::vector<py::array> keep;
  std::vector<Row> rows;
  QueryLayout layout = QueryLayout::single;

  void add(const py::array& a, const std::string& arg) {
    QueryInput::Row row;
    row.is32 = has_dtype<int32_t>(a);
    if (a.ndim() == 1) {
      if (row.is32) row.i32 = view1<int32_t>(a, kOp, arg.c_str());
      else row.i64 = view1<int64_t>(a, kOp, arg.c_str());
      rows.push_back(row);
      return;
    }
    const View2<const int32_t> m32 = row.is32 ? view2<int32_t>(a, kOp, arg.c_str()) : View2<const int32_t>{};
    const View2<const int64_t> m64 = row.is32 ? View2<const int64_t>{} : view2<int64_t>(a, kOp, arg.c_str());
    for (int64_t i = 0; i < a.shape(0); ++i) {
      if (row.is32) row.i32 = m32.row(i);
      else row.i64 = m64.row(i);
      rows.push_back(row);
    }
  }
};

QueryInput query_input(py::handle obj) {
  QueryInput in;
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    in.layout = QueryLayout::list;
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    for (size_t i = 0; i < py::len(seq); ++i) {
      const std::string arg = "query_term_ids[" + std::to_string(i) + "]";
      py::array a = as_ndarray(seq[i], kOp, arg.c_str());
      check_ints(a, kOp, arg);
      RK_CHECK_ARG(a.ndim() == 1, kOp, ": ", arg, " must be 1-D, got ", describe(a));
      in.add(a, arg);
      in.keep.push_back(std::move(a));
    }
    return in;
  }
  py::array a = as_ndarray(obj, kOp, "query_term_ids");
  check_ints(a, kOp, "query_term_ids");
  RK_CHECK_ARG(a.ndim() == 1 || a.ndim() == 2, kOp,
               ": query_term_ids must be 1-D (one query) or 2-D (a batch padded with -1), got ", describe(a));
  in.layout = a.ndim() == 1 ? QueryLayout::single : QueryLayout::matrix;
  in.add(a, "query_term_ids");
  in.keep.push_back(std::move(a));
  return in;
}

// Sorted distinct in-vocabulary ids per query; runs without the GIL (reads
// only the views taken with it).
QueryTerms prepare(const QueryInput& in, uint64_t vocab) {
  QueryTerms out;
  out.offsets.reserve(in.rows.size() + 1);
  for (size_t i = 0; i < in.rows.size(); ++i) {
    const QueryInput::Row& r = in.rows[i];
    const auto row = static_cast<int64_t>(i);
    if (r.is32) {
      rerank::append_query(out, r.i32, vocab, in.layout, row);
    } else {
      rerank::append_query(out, r.i64, vocab, in.layout, row);
    }
  }
  return out;
}

template <typename Doc>
py::array_t<float> run(const TermMatchIndex& index, const QueryInput& in, const py::array& cand) {
  const bool single = in.layout == QueryLayout::single;
  View2<const Doc> c;
  if (single) {
    const auto v = view1<Doc>(cand, kOp, "candidates");
    c = View2<const Doc>{v.data, 1, v.size, 0, v.stride};
  } else {
    c = view2<Doc>(cand, kOp, "candidates");
  }
  std::vector<py::ssize_t> shape = single ? std::vector<py::ssize_t>{c.cols} : std::vector<py::ssize_t>{c.rows, c.cols};
  py::array_t<float> scores(shape);
  const View2<float> sv = make_view2(scores.mutable_data(), c.rows, c.cols);
  {
    py::gil_scoped_release nogil;
    rerank::term_match(index, prepare(in, index.vocab_size()), c, sv);
  }
  return scores;
}

py::array_t<float> term_match(py::handle queries_obj, const TermMatchIndex& index, py::handle candidates_obj) {
  const QueryInput in = query_input(queries_obj);
  const py::array cand = as_ndarray(candidates_obj, kOp, "candidates");
  check_ints(cand, kOp, "candidates");
  if (in.layout == QueryLayout::single) {
    RK_CHECK_ARG(cand.ndim() == 1, kOp, ": one query (1-D query_term_ids) takes 1-D candidates, got ",
                 describe(cand));
  } else {
    const auto nq = static_cast<int64_t>(in.rows.size());
    RK_CHECK_ARG(cand.ndim() == 2 && cand.shape(0) == nq, kOp, ": candidates must have shape (", nq,
                 ", C), one row per query, got ", describe(cand));
  }
  return has_dtype<int32_t>(cand) ? run<int32_t>(index, in, cand) : run<int64_t>(index, in, cand);
}

}  // namespace

void bind_rerank_term_match(py::module_& m) {
  py::class_<TermMatchIndex, std::shared_ptr<TermMatchIndex>>(
      m, "TermMatchIndex", "Per-document (term id, weight) lists (use ragkernels.rerank, not this class).")
      .def_static("from_arrays", &from_arrays, py::arg("term_ids"), py::arg("weights"), py::arg("offsets"),
                  py::arg("vocab_size"))
      .def_static(
          "from_bm25",
          [](const sparse::SparseIndex& index) {
            py::gil_scoped_release nogil;
            return TermMatchIndex::from_bm25(index);
          },
          py::arg("index"))
      .def_static(
          "load",
          [](const std::string& path, bool verify) {
            py::gil_scoped_release nogil;
            return TermMatchIndex::load(path, verify);
          },
          py::arg("path"), py::arg("verify"))
      .def(
          "save",
          [](const TermMatchIndex& index, const std::string& path) {
            py::gil_scoped_release nogil;
            index.save(path);
          },
          py::arg("path"))
      .def_property_readonly("num_docs", &TermMatchIndex::num_docs)
      .def_property_readonly("num_postings", &TermMatchIndex::num_postings)
      .def_property_readonly("vocab_size", &TermMatchIndex::vocab_size)
      .def_property_readonly("offsets", [](const std::shared_ptr<TermMatchIndex>& i) {
        return index_array(i, i->offsets(), i->num_docs() + 1);
      })
      .def_property_readonly("terms", [](const std::shared_ptr<TermMatchIndex>& i) {
        return index_array(i, i->terms(), i->num_postings());
      })
      .def_property_readonly("weights", [](const std::shared_ptr<TermMatchIndex>& i) {
        return index_array(i, i->weights(), i->num_postings());
      });
  m.def("term_match", &term_match, py::arg("query_term_ids"), py::arg("index"), py::arg("candidates"));
}

}  // namespace ragkernels::bindings
