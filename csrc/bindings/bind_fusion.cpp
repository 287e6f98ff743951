// Bindings of csrc/fusion: runs as {query: {doc: score}} dicts or as compact
// (ids, scores) arrays, fused by fusion::fuse. Conversion and validation only:
// dict walking and per-query doc interning happen here with the GIL held
// (they read Python objects); the fusion itself runs without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bindings/checks.h"
#include "fusion/fuse.h"
#include "fusion/run_lists.h"

namespace ragkernels::bindings {

namespace {

using fusion::ArrayRun;
using fusion::FuseOptions;
using fusion::RunLists;

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

FuseOptions make_options(const std::string& method, const std::optional<std::string>& norm, double k, double gamma,
                         double sigma, double phi, const std::optional<std::vector<double>>& weights, int64_t top_k) {
  FuseOptions o;
  o.method = fusion::parse_method(method);
  o.norm = norm ? fusion::parse_norm(*norm) : fusion::Norm::kNone;
  o.k = k;
  o.gamma = gamma;
  o.sigma = sigma;
  o.phi = phi;
  if (weights) o.weights = *weights;
  RK_CHECK_ARG(top_k >= 1 || top_k == -1, "fuse: top_k must be >= 1 (or None for all), got ", top_k);
  o.top_k = top_k;
  return o;
}

// Per-query interning of doc-id strings: PyObject* (borrowed from the input
// dicts, alive for the call) -> per-query id, by Python's cached str hash.
class DocInterner {
 public:
  void reset(size_t entries) {
    size_t cap = 16;
    while (cap < entries * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    n_ = 0;
  }
  // Per-query id of `key`; appends new keys to `keys`.
  int32_t intern(PyObject* key, std::vector<PyObject*>& keys) {
    const Py_hash_t h = PyObject_Hash(key);
    if (h == -1) throw py::error_already_set();
    size_t at = static_cast<size_t>(h) & mask_;
    while (slots_[at].key != nullptr) {
      if (slots_[at].hash == h) {
        if (slots_[at].key == key) return slots_[at].id;
        const int eq = PyObject_RichCompareBool(slots_[at].key, key, Py_EQ);
        if (eq < 0) throw py::error_already_set();
        if (eq) return slots_[at].id;
      }
      at = (at + 1) & mask_;
    }
    slots_[at] = Slot{key, h, n_};
    keys.push_back(key);
    return n_++;
  }

 private:
  struct Slot {
    PyObject* key = nullptr;
    Py_hash_t hash = 0;
    int32_t id = 0;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int32_t n_ = 0;
};

struct DictRuns {
  RunLists lists;
  py::list query_ids;                 // sorted, as ranx sorts a Run's queries
  std::vector<PyObject*> doc_keys;    // per query, per-query id -> doc-id str
  std::vector<int64_t> key_offsets;   // n_queries + 1
};

// {qid: {doc: score}} docs of one (query, run) into the lists.
void walk_docs(PyObject* docs, size_t r, const std::string& qid, DocInterner& interner, DictRuns& out) {
  RK_CHECK_TYPE(PyDict_Check(docs), "fuse: runs[", r, "]['", qid, "'] must be a dict {doc_id: score}, got ",
                type_name(docs));
  Py_ssize_t pos = 0;
  PyObject *key = nullptr, *value = nullptr;
  std::vector<int32_t>& ids = out.lists.docs;
  while (PyDict_Next(docs, &pos, &key, &value)) {
    RK_CHECK_TYPE(PyUnicode_Check(key), "fuse: runs[", r, "]['", qid, "'] doc ids must be str, got ",
                  type_name(key));
    const double s = PyFloat_CheckExact(value) ? PyFloat_AS_DOUBLE(value) : PyFloat_AsDouble(value);
    if (s == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw TypeError(detail::message("fuse: runs[", r, "]['", qid, "'] scores must be numbers, got ",
                                      type_name(value)));
    }
    RK_CHECK_ARG(std::isfinite(s), "fuse: runs[", r, "]['", qid, "']['", std::string(py::str(key)), "'] is ",
                 fusion::non_finite_name(s), "; scores must be finite");
    ids.push_back(interner.intern(key, out.doc_keys));
    out.lists.scores.push_back(s);
  }
}

DictRuns runs_from_dicts(const py::list& runs, const std::vector<bool>& presorted) {
  DictRuns out;
  const size_t R = runs.size();
  RK_CHECK_ARG(R >= 1, "fuse: runs must hold at least one run");
  for (size_t r = 0; r < R; ++r)
    RK_CHECK_TYPE(PyDict_Check(runs[r].ptr()), "fuse: runs[", r, "] must be a dict {query_id: {doc_id: score}}, got ",
                  type_name(runs[r]));
  const py::dict first = runs[0].cast<py::dict>();
  for (auto item : first)
    RK_CHECK_TYPE(PyUnicode_Check(item.first.ptr()), "fuse: runs[0] query ids must be str, got ",
                  type_name(item.first));
  out.query_ids = py::module_::import("builtins").attr("sorted")(first);
  RunLists& l = out.lists;
  l.n_queries = static_cast<int64_t>(out.query_ids.size());
  l.n_runs = static_cast<int64_t>(R);
  for (size_t r = 0; r < R; ++r) l.presorted.push_back(presorted[r] ? 1 : 0);
  for (size_t r = 1; r < R; ++r)
    RK_CHECK_ARG(PyDict_Size(runs[r].ptr()) == l.n_queries, "fuse: runs[", r, "] has ", PyDict_Size(runs[r].ptr()),
                 " queries, runs[0] has ", l.n_queries, "; all runs must hold the same query ids");
  l.offsets.push_back(0);
  out.key_offsets.push_back(0);
  DocInterner interner;
  for (const auto qid_obj : out.query_ids) {
    const std::string qid = py::str(qid_obj);
    size_t entries = 0;
    std::vector<PyObject*> docs(R);
    for (size_t r = 0; r < R; ++r) {
      docs[r] = PyDict_GetItemWithError(runs[r].ptr(), qid_obj.ptr());
      if (docs[r] == nullptr && PyErr_Occurred()) throw py::error_already_set();
      RK_CHECK_ARG(docs[r] != nullptr, "fuse: runs[", r, "] lacks query '", qid, "' of runs[0]");
      if (PyDict_Check(docs[r])) entries += static_cast<size_t>(PyDict_Size(docs[r]));
    }
    interner.reset(entries);
    const size_t first_key = out.doc_keys.size();
    for (size_t r = 0; r < R; ++r) {
      walk_docs(docs[r], r, qid, interner, out);
      l.offsets.push_back(static_cast<int64_t>(l.docs.size()));
    }
    l.n_docs.push_back(static_cast<int64_t>(out.doc_keys.size() - first_key));
    out.key_offsets.push_back(static_cast<int64_t>(out.doc_keys.size()));
  }
  return out;
}

constexpr int64_t kPrefetch = 12;

// An empty dict with room for n items: no rehashing while it is filled
// (CPython's _PyDict_NewPresized where the headers still declare it).
py::dict new_dict(int64_t n) {
#if PY_VERSION_HEX < 0x030D0000
  PyObject* d = _PyDict_NewPresized(static_cast<Py_ssize_t>(n));
  if (d == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::dict>(d);
#else
  (void)n;
  return py::dict();
#endif
}

py::dict fuse_dicts(const py::list& runs, const std::vector<bool>& presorted, const FuseOptions& options) {
  RK_CHECK_ARG(presorted.size() == runs.size(), "fuse: presorted must have one flag per run");
  DictRuns in = runs_from_dicts(runs, presorted);
  fusion::Fused fused;
  {
    py::gil_scoped_release nogil;
    fused = fusion::fuse(in.lists, options);
  }
  py::dict result;
  for (int64_t q = 0; q < in.lists.n_queries; ++q) {
    const int64_t n_out = fused.offsets[static_cast<size_t>(q) + 1] - fused.offsets[static_cast<size_t>(q)];
    py::dict docs = new_dict(n_out);
    PyObject* const* keys = in.doc_keys.data() + in.key_offsets[static_cast<size_t>(q)];
    const int64_t end = fused.offsets[static_cast<size_t>(q) + 1];
    for (int64_t i = fused.offsets[static_cast<size_t>(q)]; i < end; ++i) {
      // The doc-id strs lie scattered in memory: fetch ahead the ones the
      // dict will read (refcount and cached hash share a cache line).
      if (i + kPrefetch < end) __builtin_prefetch(keys[fused.docs[static_cast<size_t>(i + kPrefetch)]], 1);
      py::object score = py::reinterpret_steal<py::object>(PyFloat_FromDouble(fused.scores[static_cast<size_t>(i)]));
      if (PyDict_SetItem(docs.ptr(), keys[fused.docs[static_cast<size_t>(i)]], score.ptr()) != 0)
        throw py::error_already_set();
    }
    result[in.query_ids[static_cast<size_t>(q)]] = docs;
  }
  return result;
}

// runs[r] = (ids, scores): 2-D, C-contiguous, same shape; rows aligned.
ArrayRun array_run(const py::handle& pair, size_t r, int64_t& n_queries, std::vector<py::array>& keep) {
  const std::string what = "runs[" + std::to_string(r) + "]";
  RK_CHECK_TYPE(py::isinstance<py::tuple>(pair) || py::isinstance<py::list>(pair), "fuse: ", what,
                " must be an (ids, scores) pair of arrays, got ", type_name(pair));
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(pair);
  RK_CHECK_ARG(seq.size() == 2, "fuse: ", what, " must be an (ids, scores) pair, got ", seq.size(), " items");
  const std::string ids_name = what + " ids", scores_name = what + " scores";
  py::array ids = as_ndarray(seq[0], "fuse", ids_name.c_str());
  py::array scores = as_ndarray(seq[1], "fuse", scores_name.c_str());
  keep.push_back(ids);
  keep.push_back(scores);
  ArrayRun a;
  a.wide_ids = has_dtype<int64_t>(ids);
  RK_CHECK_TYPE(a.wide_ids || has_dtype<int32_t>(ids), "fuse: ", ids_name, " must be int32 or int64, got ", describe(ids));
  a.wide_scores = has_dtype<double>(scores);
  RK_CHECK_TYPE(a.wide_scores || has_dtype<float>(scores), "fuse: ", scores_name, " must be float32 or float64, got ",
                describe(scores));
  RK_CHECK_ARG(ids.ndim() == 2 && scores.ndim() == 2 && ids.shape(0) == scores.shape(0) && ids.shape(1) == scores.shape(1),
               "fuse: ", what, " ids and scores must be 2-D of one shape (n_queries, depth), got ", describe(ids),
               " and ", describe(scores));
  for (const py::array* x : {&ids, &scores})
    RK_CHECK_ARG(x->flags() & py::array::c_style, "fuse: ", x == &ids ? ids_name : scores_name,
                 " must be C-contiguous; pass numpy.ascontiguousarray(...)");
  if (r == 0) n_queries = ids.shape(0);
  RK_CHECK_ARG(ids.shape(0) == n_queries, "fuse: ", what, " has ", ids.shape(0), " rows, runs[0] has ", n_queries,
               "; rows must be aligned by query");
  if (a.wide_ids) a.ids64 = view2<int64_t>(ids, "fuse", ids_name.c_str());
  else a.ids32 = view2<int32_t>(ids, "fuse", ids_name.c_str());
  if (a.wide_scores) a.scores64 = view2<double>(scores, "fuse", scores_name.c_str());
  else a.scores32 = view2<float>(scores, "fuse", scores_name.c_str());
  return a;
}

py::tuple fuse_arrays(const py::list& runs, const FuseOptions& options) {
  RK_CHECK_ARG(runs.size() >= 1, "fuse: runs must hold at least one run");
  std::vector<py::array> keep;
  std::vector<ArrayRun> views;
  int64_t n_queries = 0;
  for (size_t r = 0; r < runs.size(); ++r) views.push_back(array_run(runs[r], r, n_queries, keep));
  fusion::ArrayRunLists in;
  fusion::Fused fused;
  int64_t width = options.top_k;
  {
    py::gil_scoped_release nogil;
    in = fusion::runs_from_arrays(views, n_queries);
    fused = fusion::fuse(in.lists, options);
    if (width < 0) {
      width = 0;
      for (int64_t q = 0; q < n_queries; ++q)
        width = std::max(width, fused.offsets[static_cast<size_t>(q) + 1] - fused.offsets[static_cast<size_t>(q)]);
    }
  }
  auto [ids, ids_view] = new_matrix<int64_t>(n_queries, width);
  auto [scores, scores_view] = new_matrix<double>(n_queries, width);
  {
    py::gil_scoped_release nogil;
    for (int64_t q = 0; q < n_queries; ++q) {
      const int64_t b = fused.offsets[static_cast<size_t>(q)], n = fused.offsets[static_cast<size_t>(q) + 1] - b;
      const int64_t* raw = in.raw_ids.data() + in.raw_offsets[static_cast<size_t>(q)];
      for (int64_t c = 0; c < width; ++c) {
        ids_view(q, c) = c < n ? raw[fused.docs[static_cast<size_t>(b + c)]] : -1;
        scores_view(q, c) = c < n ? fused.scores[static_cast<size_t>(b + c)] : -std::numeric_limits<double>::infinity();
      }
    }
  }
  return py::make_tuple(ids, scores);
}

}  // namespace

void bind_fusion(py::module_& m) {
  m.def(
      "fuse_dicts",
      [](const py::list& runs, const std::vector<bool>& presorted, const std::string& method,
         const std::optional<std::string>& norm, double k, double gamma, double sigma, double phi,
         const std::optional<std::vector<double>>& weights, int64_t top_k) {
        return fuse_dicts(runs, presorted, make_options(method, norm, k, gamma, sigma, phi, weights, top_k));
      },
      py::arg("runs"), py::arg("presorted"), py::arg("method"), py::arg("norm"), py::arg("k"), py::arg("gamma"),
      py::arg("sigma"), py::arg("phi"), py::arg("weights"), py::arg("top_k"));
  m.def(
      "fuse_arrays",
      [](const py::list& runs, const std::string& method, const std::optional<std::string>& norm, double k,
         double gamma, double sigma, double phi, const std::optional<std::vector<double>>& weights, int64_t top_k) {
        return fuse_arrays(runs, make_options(method, norm, k, gamma, sigma, phi, weights, top_k));
      },
      py::arg("runs"), py::arg("method"), py::arg("norm"), py::arg("k"), py::arg("gamma"), py::arg("sigma"),
      py::arg("phi"), py::arg("weights"), py::arg("top_k"));
}

}  // namespace ragkernels::bindings
