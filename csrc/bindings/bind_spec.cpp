// Bindings of csrc/spec: here token_tree.h and verify.h (the TokenTree
// object, its arrays viewed in place, read-only; merge, masks and
// verification); the drafters and the datastore have files of their own
// (bind_spec_drafters.cpp, bind_spec_datastore.cpp, bind_spec_trie.cpp), called from bind_spec.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bindings/checks.h"
#include "spec/token_tree.h"
#include "spec/verify.h"

namespace ragkernels::bindings {

void bind_spec_drafters(py::module_& m);
void bind_spec_datastore(py::module_& m);
void bind_spec_trie(py::module_& m);

namespace {

using spec::TokenTree;

template <typename T>
std::vector<T> vector_of(py::handle obj, const char* op, const char* arg, const char* dtype_name) {
  const py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<T>(a), op, ": ", arg, " must be ", dtype_name, ", got ", describe(a));
  const auto view = view1<T>(a, op, arg);
  std::vector<T> out(static_cast<size_t>(view.size));
  for (int64_t i = 0; i < view.size; ++i) out[static_cast<size_t>(i)] = view[i];
  return out;
}

TokenTree tree_from_arrays(py::handle tokens, py::handle parents, py::handle weights) {
  TokenTree tree;
  tree.tokens = vector_of<int32_t>(tokens, "TokenTree", "tokens", "int32");
  tree.parents = vector_of<int32_t>(parents, "TokenTree", "parents", "int32");
  tree.weights = vector_of<float>(weights, "TokenTree", "weights", "float32");
  spec::check_tree(tree, "TokenTree");
  return tree;
}

// A read-only numpy array over one of the tree's vectors; `owner` (the
// Python TokenTree) stays alive as long as the array does.
template <typename T>
py::array view_of(const std::vector<T>& values, py::handle owner) {
  py::array_t<T> out({static_cast<py::ssize_t>(values.size())}, {static_cast<py::ssize_t>(sizeof(T))},
                     values.data(), owner);
  py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return std::move(out);
}

py::tuple accepted_tuple(spec::Accepted&& accepted) {
  py::array_t<int64_t> nodes(static_cast<py::ssize_t>(accepted.nodes.size()), accepted.nodes.data());
  py::array_t<int64_t> tokens(static_cast<py::ssize_t>(accepted.tokens.size()), accepted.tokens.data());
  return py::make_tuple(nodes, tokens);
}

py::array attention_mask(const TokenTree& tree, int64_t past_length, const std::string& dtype) {
  RK_CHECK_ARG(past_length >= 0, "attention_mask: past_length must be >= 0, got ", past_length);
  const int64_t n = tree.size();
  const std::vector<py::ssize_t> shape{n, past_length + n};
  if (dtype == "float32") {
    py::array_t<float> out(shape);
    py::gil_scoped_release nogil;
    spec::tree_attention_mask<float>(tree, past_length, 0.0f, std::numeric_limits<float>::lowest(), out.mutable_data());
    return std::move(out);
  }
  if (dtype == "float64") {
    py::array_t<double> out(shape);
    py::gil_scoped_release nogil;
    spec::tree_attention_mask<double>(tree, past_length, 0.0, std::numeric_limits<double>::lowest(), out.mutable_data());
    return std::move(out);
  }
  if (dtype == "float16") {
    py::array out(py::dtype("float16"), shape);
    py::gil_scoped_release nogil;
    // 0x0000 is +0, 0xFBFF is -65504 (float16's lowest finite value).
    spec::tree_attention_mask<uint16_t>(tree, past_length, 0, 0xFBFF, static_cast<uint16_t*>(out.mutable_data()));
    return out;
  }
  if (dtype == "bool") {
    py::array_t<bool> out(shape);
    py::gil_scoped_release nogil;
    spec::tree_attention_mask<uint8_t>(tree, past_length, 1, 0, reinterpret_cast<uint8_t*>(out.mutable_data()));
    return std::move(out);
  }
  throw ValueError("attention_mask: dtype must be float32, float64, float16 or bool, got " + dtype);
}

}  // namespace

void bind_spec(py::module_& m) {
  py::class_<TokenTree>(m, "TokenTree", "A draft token tree (node 0 is the root); see ragkernels.spec.TokenTree")
      .def(py::init(&tree_from_arrays), py::arg("tokens"), py::arg("parents"), py::arg("weights"))
      .def_property_readonly("tokens", [](py::object self) { return view_of(self.cast<const TokenTree&>().tokens, self); })
      .def_property_readonly("parents", [](py::object self) { return view_of(self.cast<const TokenTree&>().parents, self); })
      .def_property_readonly("weights", [](py::object self) { return view_of(self.cast<const TokenTree&>().weights, self); })
      .def("depths", [](const TokenTree& tree) {
        const std::vector<int32_t> depths = spec::tree_depths(tree);
        return py::array_t<int32_t>(static_cast<py::ssize_t>(depths.size()), depths.data());
      })
      .def("__len__", &TokenTree::size)
      .def("attention_mask", &attention_mask, py::arg("past_length"), py::arg("dtype"));

  m.def(
      "spec_merge",
      [](const std::vector<const TokenTree*>& trees, int64_t budget) {
        py::gil_scoped_release nogil;
        return spec::merge_trees(trees, budget);
      },
      py::arg("trees"), py::arg("budget"));

  m.def(
      "spec_verify_greedy",
      [](const TokenTree& tree, py::handle argmax_obj) {
        const py::array argmax = as_ndarray(argmax_obj, "verify_greedy", "argmax");
        RK_CHECK_TYPE(has_dtype<int64_t>(argmax), "verify_greedy: argmax must be int64, got ", describe(argmax));
        const auto view = view1<int64_t>(argmax, "verify_greedy", "argmax");
        spec::Accepted accepted;
        {
          py::gil_scoped_release nogil;
          accepted = spec::verify_greedy(tree, view);
        }
        return accepted_tuple(std::move(accepted));
      },
      py::arg("tree"), py::arg("argmax"));

  m.def(
      "spec_verify_sampling",
      [](const TokenTree& tree, py::handle probs_obj, uint64_t seed) {
        const py::array probs = as_ndarray(probs_obj, "verify_sampling", "probs");
        RK_CHECK_TYPE(has_dtype<float>(probs), "verify_sampling: probs must be float32, got ", describe(probs));
        const auto view = view2<float>(probs, "verify_sampling", "probs");
        spec::Accepted accepted;
        {
          py::gil_scoped_release nogil;
          accepted = spec::verify_sampling(tree, view, seed);
        }
        return accepted_tuple(std::move(accepted));
      },
      py::arg("tree"), py::arg("probs"), py::arg("seed"));
  bind_spec_drafters(m);  // after TokenTree: drafters return it
  bind_spec_datastore(m);
  bind_spec_trie(m);
}

}  // namespace ragkernels::bindings
