// Bindings of csrc/spec/datastore.h: the retrieval datastore (build, save,
// load, its arrays viewed in place) and the retrieval drafter's sessions.
// Validation and conversion only; the GIL is released while sorting, loading,
// checking ids and drafting.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings/checks.h"
#include "spec/datastore.h"

namespace ragkernels::bindings {

namespace {

using spec::Datastore;
using spec::DatastoreBuilder;
using spec::RetrievalSession;

// A 1-D int32 or int64 array (numpy or CPU DLPack), TypeError/ValueError otherwise.
py::array id_array(py::handle obj, const char* op, const char* arg) {
  py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<int32_t>(a) || has_dtype<int64_t>(a), op, ": ", arg, " must be int32 or int64, got ",
                describe(a));
  RK_CHECK_ARG(a.ndim() == 1, op, ": ", arg, " must be 1-D, got ", describe(a));
  return a;
}

// Every id in [0, limit): the first one outside raises, naming arg[i].
template <typename Id>
void check_ids(ConstView1<Id> ids, int64_t vocab_size, const char* op, const char* arg) {
  const int64_t limit = vocab_size == Datastore::kNoVocab ? int64_t{INT32_MAX} + 1 : vocab_size;
  for (int64_t i = 0; i < ids.size; ++i) {
    const auto id = static_cast<int64_t>(ids[i]);
    if (id >= 0 && id < limit) continue;
    RK_CHECK_ARG(vocab_size != Datastore::kNoVocab, op, ": ", arg, "[", i, "] = ", id,
                 " is not a token id (>= 0, < 2^31)");
    RK_CHECK_ARG(false, op, ": ", arg, "[", i, "] = ", id, " is outside [0, vocab_size = ", vocab_size, ")");
  }
}

// One of the datastore's arrays, read-only, keeping the datastore alive.
py::array datastore_array(const std::shared_ptr<Datastore>& ds, const int32_t* data, int64_t n) {
  auto* holder = new std::shared_ptr<Datastore>(ds);
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<Datastore>*>(p); });
  py::array a(py::dtype::of<int32_t>(), {static_cast<py::ssize_t>(n)}, {}, data, base);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

py::object vocab_of(const Datastore& ds) {
  return ds.vocab_size() == Datastore::kNoVocab ? py::object(py::none()) : py::object(py::int_(ds.vocab_size()));
}

void builder_add(DatastoreBuilder& builder, py::handle ids_obj, py::handle offsets_obj) {
  const char* op = "Datastore.build";
  const py::array ids = id_array(ids_obj, op, "ids");
  const py::array offsets = as_ndarray(offsets_obj, op, "offsets");
  RK_CHECK_TYPE(has_dtype<int64_t>(offsets), op, ": offsets must be int64, got ", describe(offsets));
  const auto o = view1<int64_t>(offsets, op, "offsets");
  if (has_dtype<int32_t>(ids)) {
    const auto v = view1<int32_t>(ids, op, "ids");
    py::gil_scoped_release nogil;
    builder.add(v, o);
  } else {
    const auto v = view1<int64_t>(ids, op, "ids");
    py::gil_scoped_release nogil;
    builder.add(v, o);
  }
}

// Appends tokens after checking them against the datastore's vocabulary;
// `op` and `arg` name the Python call ("RetrievalDrafter.start", "prompt").
void session_extend(RetrievalSession& session, py::handle tokens_obj, const std::string& op, const std::string& arg) {
  const py::array tokens = id_array(tokens_obj, op.c_str(), arg.c_str());
  const int64_t vocab = session.datastore().vocab_size();
  if (has_dtype<int32_t>(tokens)) {
    const auto v = view1<int32_t>(tokens, op.c_str(), arg.c_str());
    py::gil_scoped_release nogil;
    check_ids(v, vocab, op.c_str(), arg.c_str());
    session.extend(v);
  } else {
    const auto v = view1<int64_t>(tokens, op.c_str(), arg.c_str());
    py::gil_scoped_release nogil;
    check_ids(v, vocab, op.c_str(), arg.c_str());
    session.extend(v);
  }
}

py::tuple longest_match(const Datastore& ds, py::handle context_obj, int32_t max_match) {
  const char* op = "Datastore.longest_match";
  RK_CHECK_ARG(max_match >= 1, op, ": max_match must be >= 1, got ", max_match);
  const py::array context = id_array(context_obj, op, "context");
  Datastore::Match match;
  auto run = [&](auto view) {
    py::gil_scoped_release nogil;
    check_ids(view, ds.vocab_size(), op, "context");
    // The last max_match tokens, as int32 (all a match can use).
    const int64_t first = std::max<int64_t>(0, view.size - max_match);
    std::vector<int32_t> tail;
    for (int64_t i = first; i < view.size; ++i) tail.push_back(static_cast<int32_t>(view[i]));
    match = ds.longest_match(tail.data(), static_cast<int64_t>(tail.size()), max_match);
  };
  if (has_dtype<int32_t>(context)) run(view1<int32_t>(context, op, "context"));
  else run(view1<int64_t>(context, op, "context"));
  return py::make_tuple(match.length, match.lo, match.hi);
}

}  // namespace

void bind_spec_datastore(py::module_& m) {
  py::class_<Datastore, std::shared_ptr<Datastore>>(
      m, "SpecDatastore", "A retrieval datastore (use ragkernels.spec.Datastore, not this class).")
      .def_static(
          "load",
          [](const std::string& path, bool verify) {
            py::gil_scoped_release nogil;
            return Datastore::load(path, verify);
          },
          py::arg("path"), py::arg("verify"))
      .def(
          "save",
          [](const Datastore& ds, const std::string& path) {
            py::gil_scoped_release nogil;
            ds.save(path);
          },
          py::arg("path"))
      .def_property_readonly("num_tokens", &Datastore::num_tokens)
      .def_property_readonly("num_sequences", &Datastore::num_sequences)
      .def_property_readonly("vocab_size", &vocab_of)
      .def_property_readonly("text", [](const std::shared_ptr<Datastore>& ds) {
        return datastore_array(ds, ds->text(), ds->text_size());
      })
      .def_property_readonly("suffix_array", [](const std::shared_ptr<Datastore>& ds) {
        return datastore_array(ds, ds->suffix_array(), ds->num_tokens());
      })
      .def_property_readonly("token_start", [](const std::shared_ptr<Datastore>& ds) {
        return datastore_array(ds, ds->token_start(), ds->table_ids() ? ds->table_ids() + 1 : 0);
      })
      .def("longest_match", &longest_match, py::arg("context"), py::arg("max_match"));

  py::class_<DatastoreBuilder>(m, "SpecDatastoreBuilder",
                               "Collects sequences (use ragkernels.spec.Datastore.build, not this class).")
      .def(py::init<int64_t>(), py::arg("vocab_size"))
      .def("add", &builder_add, py::arg("ids"), py::arg("offsets"))
      .def_property_readonly("num_sequences", &DatastoreBuilder::num_sequences)
      .def_property_readonly("num_tokens", &DatastoreBuilder::num_tokens)
      .def("finish", [](DatastoreBuilder& builder) {
        py::gil_scoped_release nogil;
        return builder.finish();
      });

  py::class_<RetrievalSession, std::shared_ptr<RetrievalSession>>(
      m, "RetrievalSession", "A sequence drafted from a datastore (use ragkernels.spec.RetrievalDrafter).")
      .def(py::init([](std::shared_ptr<Datastore> ds, int32_t max_match, int32_t min_match, int32_t max_depth,
                       int32_t max_candidates, float min_weight) {
             spec::RetrievalParams params{max_match, min_match, max_depth, max_candidates, min_weight};
             return std::make_shared<RetrievalSession>(std::move(ds), params);
           }),
           py::arg("datastore"), py::arg("max_match"), py::arg("min_match"), py::arg("max_depth"),
           py::arg("max_candidates"), py::arg("min_weight"))
      .def("extend", &session_extend, py::arg("tokens"), py::arg("op"), py::arg("arg"))
      .def(
          "draft",
          [](RetrievalSession& session, int64_t max_nodes) {
            py::gil_scoped_release nogil;
            return session.draft(max_nodes);
          },
          py::arg("max_nodes"))
      .def_property_readonly("length", &RetrievalSession::length)
      .def_property_readonly("match_length", &RetrievalSession::match_length)
      .def_property_readonly("match_count", &RetrievalSession::match_count);
}

}  // namespace ragkernels::bindings
