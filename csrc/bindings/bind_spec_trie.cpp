// Bindings of csrc/spec/trie.h: build a CSR trie of allowed sequences, view
// its arrays in place, and the batched step ops over decoder states (use
// ragkernels.spec.Trie). Arrays arrive as ragkernels.spec made them (C-order
// int32 / int64); states and tokens are range-checked here, with the GIL
// released while building and stepping.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "bindings/checks.h"
#include "bindings/dlpack_abi.h"
#include "spec/trie.h"

namespace ragkernels::bindings {

namespace {

using spec::Trie;

// A C-contiguous 1-D array of T (the Python layer converts), else TypeError.
template <typename T>
const T* contiguous(const py::array& a, const char* op, const char* arg) {
  RK_CHECK_TYPE(has_dtype<T>(a) && a.ndim() == 1 && (a.flags() & py::array::c_style), op, ": ", arg,
                " must be a C-contiguous 1-D ", py::str(py::dtype::of<T>()).cast<std::string>(), " array, got ",
                describe(a));
  return static_cast<const T*>(a.data());
}

// States in [-1, num_nodes): ValueError naming the first one outside.
void check_states(const Trie& trie, const int32_t* states, int64_t n, const char* op) {
  for (int64_t i = 0; i < n; ++i) {
    RK_CHECK_ARG(states[i] >= -1 && states[i] < trie.num_nodes(), op, ": states[", i, "] = ", states[i],
                 " is not a state of this trie (-1 or a node in [0, ", trie.num_nodes(), "))");
  }
}

// A read-only numpy view of a trie array; `owner` (the Python trie) keeps it alive.
template <typename T>
py::array_t<T> view_of(ConstView1<T> values, py::handle owner) {
  py::array_t<T> out(static_cast<py::ssize_t>(values.size), values.data, owner);
  py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return out;
}

// Logits mask_logits reads or writes (`arg`): a numpy float32 or float16
// array (writable when `writable`), or a CPU DLPack tensor (torch) of float32,
// float16 or bfloat16 (a dtype numpy lacks, hence DLPack read here rather
// than through numpy.from_dlpack); 2-D with contiguous columns, `rows` rows,
// at least the trie's vocabulary wide. `keep` holds what the view points into.
Trie::Logits logits_view(const Trie& trie, py::handle obj, int64_t rows, py::object& keep, const char* arg,
                         bool writable) {
  constexpr const char* kOp = "mask_logits";
  Trie::Logits logits{};
  int64_t item = 0;
  bool columns_contiguous = true;
  int64_t shape[2] = {0, 0};
  if (py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    const bool f32 = has_dtype<float>(a), f16 = a.dtype().is(py::dtype("float16"));
    RK_CHECK_TYPE((f32 || f16) && a.ndim() == 2, kOp, ": ", arg, " must be a 2-D float32 or float16 array, got ",
                  describe(a));
    RK_CHECK_ARG(!writable || a.writeable(), kOp, ": ", arg, " is read-only; the mask is written to it");
    item = f32 ? 4 : 2;
    logits.type = f32 ? Trie::LogitsType::kFloat32 : Trie::LogitsType::kFloat16;
    logits.data = const_cast<void*>(a.data());
    shape[0] = a.shape(0), shape[1] = a.shape(1);
    RK_CHECK_ARG(a.strides(0) % item == 0 && a.strides(0) >= 0, kOp, ": ", arg, " rows must be whole elements apart");
    logits.row_stride = a.strides(0) / item;
    columns_contiguous = shape[1] <= 1 || a.strides(1) == item;
    keep = a;
  } else {
    RK_CHECK_TYPE(py::hasattr(obj, "__dlpack__"), kOp, ": ", arg, " must be a numpy array or a DLPack tensor, got ",
                  py::str(py::type::of(obj)).cast<std::string>());
    keep = obj.attr("__dlpack__")();
    auto* managed = static_cast<RkDLManagedTensor*>(PyCapsule_GetPointer(keep.ptr(), "dltensor"));
    if (managed == nullptr) throw py::error_already_set();
    const RkDLTensor& t = managed->dl_tensor;
    RK_CHECK_TYPE(t.device.device_type == kRkDLCPU, kOp, ": ", arg, " lives on a device (DLPack device type ",
                  t.device.device_type, "); this is the CPU op");
    const RkDLDataType d = t.dtype;
    const bool f32 = d.code == kRkDLFloat && d.bits == 32, f16 = d.code == kRkDLFloat && d.bits == 16;
    const bool bf16 = d.code == kRkDLBfloat && d.bits == 16;
    RK_CHECK_TYPE((f32 || f16 || bf16) && d.lanes == 1 && t.ndim == 2, kOp, ": ", arg,
                  " must be a 2-D float32, float16 or bfloat16 tensor, got ", t.ndim,
                  "-D with DLPack dtype (code ", int{d.code}, ", bits ", int{d.bits}, ")");
    item = f32 ? 4 : 2;
    logits.type = f32 ? Trie::LogitsType::kFloat32 : f16 ? Trie::LogitsType::kFloat16 : Trie::LogitsType::kBfloat16;
    logits.data = static_cast<char*>(t.data) + t.byte_offset;
    shape[0] = t.shape[0], shape[1] = t.shape[1];
    logits.row_stride = t.strides ? t.strides[0] : shape[1];
    columns_contiguous = t.strides == nullptr || shape[1] <= 1 || t.strides[1] == 1;
    RK_CHECK_ARG(logits.row_stride >= 0, kOp, ": ", arg, " rows must not run backwards");
  }
  RK_CHECK_ARG(columns_contiguous, kOp, ": ", arg, " columns must be contiguous (pass a contiguous copy)");
  RK_CHECK_ARG(shape[0] == rows, kOp, ": ", arg, " has ", shape[0], " rows but states ", rows);
  RK_CHECK_ARG(!writable || rows <= 1 || logits.row_stride >= shape[1], kOp, ": ", arg,
               " rows overlap (an expanded tensor?); the mask is written to each row");
  RK_CHECK_ARG(shape[1] >= trie.vocab_size(), kOp, ": ", arg, " has ", shape[1], " columns but the trie's vocabulary ",
               trie.vocab_size(), " tokens; was the trie built for another tokenizer?");
  logits.rows = shape[0];
  logits.width = shape[1];
  return logits;
}

}  // namespace

void bind_spec_trie(py::module_& m) {
  py::class_<Trie, std::shared_ptr<Trie>>(m, "SpecTrie", "A CSR trie of allowed sequences (use ragkernels.spec).")
      .def(py::init([](const py::array& values, const py::array& offsets, int64_t vocab_size) {
             const int32_t* v = contiguous<int32_t>(values, "Trie.build", "values");
             const int64_t* o = contiguous<int64_t>(offsets, "Trie.build", "offsets");
             const int64_t n = offsets.shape(0) - 1;
             const int64_t num_values = values.shape(0);
             py::gil_scoped_release nogil;
             RK_CHECK_ARG(n >= 0 && o[0] == 0 && o[n] == num_values, "Trie.build: offsets must start at 0 and "
                          "end at len(values)");
             for (int64_t i = 0; i < n; ++i) {
               RK_CHECK_ARG(o[i] <= o[i + 1], "Trie.build: offsets must not decrease (offsets[", i + 1, "])");
             }
             return Trie::build(v, o, n, vocab_size);
           }),
           py::arg("values"), py::arg("offsets"), py::arg("vocab_size"))
      .def_static(
          "load",
          [](const std::string& path, bool verify) {
            py::gil_scoped_release nogil;
            return Trie::load(path, verify);
          },
          py::arg("path"), py::arg("verify"))
      .def(
          "save",
          [](const Trie& trie, const std::string& path) {
            py::gil_scoped_release nogil;
            trie.save(path);
          },
          py::arg("path"))
      .def_property_readonly("num_nodes", &Trie::num_nodes)
      .def_property_readonly("num_edges", &Trie::num_edges)
      .def_property_readonly("num_sequences", &Trie::num_sequences)
      .def_property_readonly("vocab_size", &Trie::vocab_size)
      .def_property_readonly("memory_bytes", &Trie::memory_bytes)
      .def_property_readonly("row_ptr", [](py::object self) { return view_of(self.cast<const Trie&>().row_ptr(), self); })
      .def_property_readonly("tokens", [](py::object self) { return view_of(self.cast<const Trie&>().tokens(), self); })
      .def_property_readonly("child", [](py::object self) { return view_of(self.cast<const Trie&>().child(), self); })
      .def_property_readonly("terminal",
                             [](py::object self) { return view_of(self.cast<const Trie&>().terminal(), self); })
      .def(
          "next_token_bitmask",
          [](const Trie& trie, const py::array& states_obj) {
            const int32_t* states = contiguous<int32_t>(states_obj, "next_token_bitmask", "states");
            const int64_t n = states_obj.shape(0);
            py::array_t<int32_t> out({n, trie.bitmask_words()});
            int32_t* data = out.mutable_data();
            {
              py::gil_scoped_release nogil;
              check_states(trie, states, n, "next_token_bitmask");
              trie.next_token_bitmask(states, n, data);
            }
            return out;
          },
          py::arg("states"))
      .def(
          "advance",
          [](const Trie& trie, const py::array& states_obj, const py::array& tokens_obj) {
            const int32_t* states = contiguous<int32_t>(states_obj, "advance", "states");
            const int32_t* tokens = contiguous<int32_t>(tokens_obj, "advance", "tokens");
            const int64_t n = states_obj.shape(0);
            RK_CHECK_ARG(tokens_obj.shape(0) == n, "advance: tokens has ", tokens_obj.shape(0), " entries but states ",
                         n);
            py::array_t<int32_t> out(n);
            int32_t* data = out.mutable_data();
            {
              py::gil_scoped_release nogil;
              check_states(trie, states, n, "advance");
              for (int64_t i = 0; i < n; ++i) {
                RK_CHECK_ARG(tokens[i] >= 0 && tokens[i] < trie.vocab_size(), "advance: tokens[", i, "] = ", tokens[i],
                             " is outside the vocabulary [0, ", trie.vocab_size(), ")");
              }
              trie.advance(states, tokens, n, data);
            }
            return out;
          },
          py::arg("states"), py::arg("tokens"))
      .def(
          "mask_logits",
          [](const Trie& trie, const py::array& states_obj, py::handle logits_obj, int64_t eos, py::handle out_obj) {
            const int32_t* states = contiguous<int32_t>(states_obj, "mask_logits", "states");
            const int64_t n = states_obj.shape(0);
            py::object keep_logits, keep_out;
            const bool copy = !out_obj.is_none();
            const Trie::Logits source = logits_view(trie, logits_obj, n, keep_logits, "logits", !copy);
            const Trie::Logits target = copy ? logits_view(trie, out_obj, n, keep_out, "out", true) : source;
            RK_CHECK_TYPE(target.type == source.type && target.width == source.width, "mask_logits: out must have "
                          "the dtype and shape of logits");
            const auto bytes = [](const Trie::Logits& l) {
              const int64_t item = l.type == Trie::LogitsType::kFloat32 ? 4 : 2;
              const char* first = static_cast<const char*>(l.data);
              return std::make_pair(first, first + ((l.rows - 1) * l.row_stride + l.width) * item);
            };
            if (copy && n > 0) {
              const auto [s0, s1] = bytes(source);
              const auto [t0, t1] = bytes(target);
              RK_CHECK_ARG(t1 <= s0 || s1 <= t0, "mask_logits: out overlaps logits (mask in place with out=None)");
            }
            RK_CHECK_ARG(eos >= -1 && eos < source.width, "mask_logits: eos_token_id ", eos, " is outside the ",
                         source.width, " logits");
            py::gil_scoped_release nogil;
            check_states(trie, states, n, "mask_logits");
            trie.mask_logits(states, static_cast<int32_t>(eos), target, source);
          },
          py::arg("states"), py::arg("logits"), py::arg("eos"), py::arg("out"))
      .def(
          "is_terminal",
          [](const Trie& trie, const py::array& states_obj) {
            const int32_t* states = contiguous<int32_t>(states_obj, "is_terminal", "states");
            const int64_t n = states_obj.shape(0);
            py::array_t<bool> out(n);
            auto* data = reinterpret_cast<uint8_t*>(out.mutable_data());
            {
              py::gil_scoped_release nogil;
              check_states(trie, states, n, "is_terminal");
              trie.is_terminal(states, n, data);
            }
            return out;
          },
          py::arg("states"));
}

}  // namespace ragkernels::bindings
