// Bindings of csrc/spec/prompt_lookup.h, suffix_tree.h and vocab_bridge.h:
// the drafters' sessions (use ragkernels.spec, not these classes). Token ids are checked
// here (1-D int32/int64, >= 0, < vocab_size when one is given, int32 range)
// while the GIL is released; each draft is one call returning a
// _core.TokenTree (registered by bind_spec.cpp) without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings/checks.h"
#include "spec/prompt_lookup.h"
#include "spec/suffix_tree.h"
#include "spec/vocab_bridge.h"

namespace ragkernels::bindings {

namespace {

using spec::PromptLookup;
using spec::SuffixDrafter;
using spec::SuffixSession;
using spec::TokenTree;
using spec::BridgeSession;
using spec::ByteVocab;
using spec::VocabBridge;

template <typename T>
void copy_ids(View1<const T> ids, const char* op, const std::string& arg, int64_t vocab_size,
              std::vector<int32_t>& out) {
  const int64_t limit = vocab_size > 0 ? vocab_size : int64_t{std::numeric_limits<int32_t>::max()} + 1;
  out.resize(static_cast<size_t>(ids.size));
  for (int64_t i = 0; i < ids.size; ++i) {
    const auto id = static_cast<int64_t>(ids[i]);
    if (id < 0 || id >= limit) {
      RK_CHECK_ARG(id >= 0, op, ": ", arg, "[", i, "] = ", id, " is negative; token ids are >= 0");
      RK_CHECK_ARG(vocab_size <= 0, op, ": ", arg, "[", i, "] = ", id, " is outside the vocabulary [0, ", vocab_size,
                   "); was the drafter made for another tokenizer?");
      throw ValueError(detail::message(op, ": ", arg, "[", i, "] = ", id, " exceeds 2**31 - 1, the largest token id"));
    }
    out[static_cast<size_t>(i)] = static_cast<int32_t>(id);
  }
}

// The token ids of `obj` (a 1-D int32 or int64 array or CPU DLPack tensor).
std::vector<int32_t> token_ids(py::handle obj, const char* op, const std::string& arg, int64_t vocab_size) {
  const py::array a = as_ndarray(obj, op, arg.c_str());
  const bool is_int32 = has_dtype<int32_t>(a);
  RK_CHECK_TYPE(is_int32 || has_dtype<int64_t>(a), op, ": ", arg, " must be int32 or int64 token ids, got ",
                describe(a), "; convert with .astype(numpy.int64)");
  std::vector<int32_t> out;
  if (is_int32) {
    const auto view = view1<int32_t>(a, op, arg.c_str());
    py::gil_scoped_release nogil;
    copy_ids(view, op, arg, vocab_size, out);
  } else {
    const auto view = view1<int64_t>(a, op, arg.c_str());
    py::gil_scoped_release nogil;
    copy_ids(view, op, arg, vocab_size, out);
  }
  return out;
}

// None, one array, or a list/tuple of arrays (pieces matched separately).
std::vector<std::vector<int32_t>> context_pieces(py::handle obj, const char* op, int64_t vocab_size) {
  std::vector<std::vector<int32_t>> pieces;
  if (obj.is_none()) return pieces;
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    const auto items = py::reinterpret_borrow<py::sequence>(obj);
    for (size_t i = 0; i < items.size(); ++i) {
      pieces.push_back(token_ids(items[i], op, "context[" + std::to_string(i) + "]", vocab_size));
    }
  } else {
    pieces.push_back(token_ids(obj, op, "context", vocab_size));
  }
  return pieces;
}

std::unique_ptr<PromptLookup> new_prompt_lookup(py::handle prompt_obj, py::handle context_obj, int64_t max_depth,
                                                int64_t min_match, int64_t vocab_size) {
  constexpr const char* op = "PromptLookupDrafter.start";
  const spec::PromptLookupParams params{max_depth, min_match};
  params.check("PromptLookupDrafter");
  const std::vector<int32_t> prompt = token_ids(prompt_obj, op, "prompt", vocab_size);
  const auto context = context_pieces(context_obj, op, vocab_size);
  py::gil_scoped_release nogil;
  return std::make_unique<PromptLookup>(params, context, prompt);
}

std::unique_ptr<SuffixSession> new_suffix_session(std::shared_ptr<SuffixDrafter> drafter, py::handle prompt_obj,
                                                  py::handle context_obj, int64_t vocab_size) {
  constexpr const char* op = "SuffixDrafter.start";
  const std::vector<int32_t> prompt = token_ids(prompt_obj, op, "prompt", vocab_size);
  const auto context = context_pieces(context_obj, op, vocab_size);
  py::gil_scoped_release nogil;
  return std::make_unique<SuffixSession>(std::move(drafter), context, prompt);
}

py::tuple export_trie(const SuffixDrafter& drafter) {
  std::vector<int32_t> tokens, parents;
  std::vector<int64_t> counts;
  {
    py::gil_scoped_release nogil;
    drafter.export_trie(tokens, parents, counts);
  }
  const auto n = static_cast<py::ssize_t>(tokens.size());
  return py::make_tuple(py::array_t<int32_t>(n, tokens.data()), py::array_t<int32_t>(n, parents.data()),
                        py::array_t<int64_t>(n, counts.data()));
}

template <typename Session>
void extend(Session& session, py::handle tokens_obj, int64_t vocab_size) {
  const std::vector<int32_t> tokens = token_ids(tokens_obj, "extend", "tokens", vocab_size);
  py::gil_scoped_release nogil;
  session.extend(tokens.data(), static_cast<int64_t>(tokens.size()));
}

template <typename Session>
TokenTree draft(const Session& session, int64_t max_nodes) {
  py::gil_scoped_release nogil;
  return session.draft(max_nodes);
}

template <typename Session>
void finish(Session& session) {
  py::gil_scoped_release nogil;
  session.finish();
}

// A vocabulary as a list of bytes objects, one per token id.
ByteVocab byte_vocab(const py::list& pieces, const char* name) {
  RK_CHECK_ARG(!pieces.empty(), "VocabBridge: ", name, " is empty");
  std::vector<std::string> bytes;
  bytes.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    RK_CHECK_TYPE(py::isinstance<py::bytes>(pieces[i]), "VocabBridge: ", name, "[", i,
                  "] must be bytes (the token's UTF-8 or raw bytes), got ",
                  py::str(py::type::of(pieces[i]).attr("__name__")).cast<std::string>());
    bytes.push_back(pieces[i].cast<std::string>());
  }
  py::gil_scoped_release nogil;
  return ByteVocab(std::move(bytes));
}

py::array_t<int32_t> int32_array(const std::vector<int32_t>& values) {
  return py::array_t<int32_t>(static_cast<py::ssize_t>(values.size()), values.data());
}

}  // namespace

void bind_spec_drafters(py::module_& m) {
  py::class_<PromptLookup>(m, "SpecPromptLookupSession", "A prompt lookup session (use ragkernels.spec).")
      .def(py::init(&new_prompt_lookup), py::arg("prompt"), py::arg("context"), py::arg("max_depth"),
           py::arg("min_match"), py::arg("vocab_size"))
      .def("extend", &extend<PromptLookup>, py::arg("tokens"), py::arg("vocab_size"))
      .def("draft", &draft<PromptLookup>, py::arg("max_nodes"))
      .def("finish", &finish<PromptLookup>)
      .def_property_readonly("size", &PromptLookup::size)
      .def_property_readonly("match_length", &PromptLookup::match_length)
      .def_property_readonly("memory_bytes", &PromptLookup::memory_bytes);

  py::class_<SuffixDrafter, std::shared_ptr<SuffixDrafter>>(m, "SpecSuffixDrafter",
                                                            "The shared suffix tree (use ragkernels.spec).")
      .def(py::init([](int64_t max_depth, int64_t max_match, double max_spec_factor, double min_probability,
                       int64_t max_answers, int64_t max_tokens) {
             const spec::SuffixDrafterParams params{
                 max_depth, spec::SuffixDraftParams{max_match, max_spec_factor, min_probability}, max_answers,
                 max_tokens};
             return std::make_shared<SuffixDrafter>(params);
           }),
           py::arg("max_depth"), py::arg("max_match"), py::arg("max_spec_factor"), py::arg("min_probability"),
           py::arg("max_answers"), py::arg("max_tokens"))
      .def(
          "add",
          [](SuffixDrafter& drafter, py::handle tokens_obj, int64_t vocab_size) {
            std::vector<int32_t> tokens = token_ids(tokens_obj, "SuffixDrafter.add", "tokens", vocab_size);
            py::gil_scoped_release nogil;
            drafter.add(std::move(tokens));
          },
          py::arg("tokens"), py::arg("vocab_size"))
      .def_property_readonly("num_answers", &SuffixDrafter::num_documents)
      .def_property_readonly("num_tokens", &SuffixDrafter::num_tokens)
      .def_property_readonly("num_nodes", &SuffixDrafter::num_nodes)
      .def_property_readonly("memory_bytes", &SuffixDrafter::memory_bytes)
      .def("export_trie", &export_trie)
      .def("check", [](const SuffixDrafter& drafter) {
        py::gil_scoped_release nogil;
        return drafter.check();
      });

  py::class_<SuffixSession>(m, "SpecSuffixSession", "A SuffixDrafter session (use ragkernels.spec).")
      .def(py::init(&new_suffix_session), py::arg("drafter"), py::arg("prompt"), py::arg("context"),
           py::arg("vocab_size"))
      .def("extend", &extend<SuffixSession>, py::arg("tokens"), py::arg("vocab_size"))
      .def("draft", &draft<SuffixSession>, py::arg("max_nodes"))
      .def("finish", &finish<SuffixSession>)
      .def_property_readonly("size", &SuffixSession::size)
      .def_property_readonly("request_num_nodes", &SuffixSession::request_num_nodes);

  py::class_<VocabBridge, std::shared_ptr<VocabBridge>>(m, "SpecVocabBridge",
                                                        "Two vocabularies' bytes (use ragkernels.spec).")
      .def(py::init([](const py::list& drafter_vocab, const py::list& target_vocab) {
             auto drafter = byte_vocab(drafter_vocab, "drafter_vocab");
             auto target = byte_vocab(target_vocab, "target_vocab");
             return std::make_shared<VocabBridge>(std::move(drafter), std::move(target));
           }),
           py::arg("drafter_vocab"), py::arg("target_vocab"))
      .def_property_readonly("drafter_size", [](const VocabBridge& b) { return b.drafter().size(); })
      .def_property_readonly("target_size", [](const VocabBridge& b) { return b.target().size(); })
      .def_property_readonly("memory_bytes",
                             [](const VocabBridge& b) { return b.drafter().memory_bytes() + b.target().memory_bytes(); })
      .def(
          "to_drafter",
          [](const VocabBridge& b, py::handle ids_obj) {
            const auto ids = token_ids(ids_obj, "VocabBridge.to_drafter", "tokens", b.target().size());
            std::vector<int32_t> out;
            {
              py::gil_scoped_release nogil;
              out = b.drafter().encode(b.target().decode(ids.data(), static_cast<int64_t>(ids.size())),
                                       ByteVocab::Mode::kCommit);
            }
            return int32_array(out);
          },
          py::arg("tokens"));

  py::class_<BridgeSession>(m, "SpecBridgeSession", "A VocabBridge session (use ragkernels.spec).")
      .def(py::init([](std::shared_ptr<VocabBridge> bridge) { return BridgeSession(std::move(bridge)); }),
           py::arg("bridge"))
      .def(
          "extend",
          [](BridgeSession& session, py::handle tokens_obj, int64_t vocab_size) {
            const auto tokens = token_ids(tokens_obj, "extend", "tokens", vocab_size);
            std::vector<int32_t> committed;
            {
              py::gil_scoped_release nogil;
              committed = session.extend(tokens.data(), static_cast<int64_t>(tokens.size()));
            }
            return int32_array(committed);
          },
          py::arg("tokens"), py::arg("vocab_size"))
      .def(
          "map",
          [](const BridgeSession& session, const TokenTree& drafter_tree, int64_t max_nodes) {
            py::gil_scoped_release nogil;
            return session.map(drafter_tree, max_nodes);
          },
          py::arg("drafter_tree"), py::arg("max_nodes"))
      .def("flush",
           [](BridgeSession& session) {
             std::vector<int32_t> committed;
             {
               py::gil_scoped_release nogil;
               committed = session.flush();
             }
             return int32_array(committed);
           })
      .def_property_readonly("size", &BridgeSession::size)
      .def_property_readonly("num_committed", &BridgeSession::num_committed)
      .def_property_readonly("pending", [](const BridgeSession& s) { return py::bytes(s.pending()); });
}

}  // namespace ragkernels::bindings
