// Bindings of csrc/rerank/sliding_window.h: the sliding-window schedule and
// one window step of listwise reranking. Validation and conversion only;
// arrays are viewed in place (numpy, CPU DLPack), outputs are fresh arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/checks.h"
#include "rerank/sliding_window.h"

namespace ragkernels::bindings {

namespace {

constexpr const char* kOrderOp = "sliding_window_order";

py::array int64_matrix(py::handle obj, const char* arg, View2<const int64_t>& view) {
  py::array a = as_ndarray(obj, kOrderOp, arg);
  RK_CHECK_TYPE(has_dtype<int64_t>(a), kOrderOp, ": ", arg, " must be int64, got ", describe(a),
                "; convert with .astype(numpy.int64)");
  view = view2<int64_t>(a, kOrderOp, arg);
  return a;
}

py::array_t<int64_t> sliding_windows(int64_t n, int64_t window, int64_t stride) {
  const std::vector<rerank::Window> windows = rerank::sliding_windows(n, window, stride);
  auto [out, view] = new_matrix<int64_t>(static_cast<int64_t>(windows.size()), 2);
  for (size_t k = 0; k < windows.size(); ++k) {
    view(static_cast<int64_t>(k), 0) = windows[k].start;
    view(static_cast<int64_t>(k), 1) = windows[k].end;
  }
  return out;
}

py::array_t<int64_t> sliding_window_schedule(py::handle lengths_obj, int64_t window, int64_t stride) {
  const py::array lengths = as_ndarray(lengths_obj, "sliding_windows", "n");
  RK_CHECK_TYPE(has_dtype<int64_t>(lengths), "sliding_windows: n must be an int or int64 lengths, got ",
                describe(lengths));
  const auto view = view1<int64_t>(lengths, "sliding_windows", "n");
  const int64_t steps = rerank::sliding_window_steps(view, window, stride);
  py::array_t<int64_t> out({steps, view.size, int64_t{2}});
  rerank::sliding_window_schedule(view, window, stride, out.mutable_data());
  return out;
}

template <typename Score>
void order_typed(View2<const int64_t> orders, View2<const int64_t> windows, const py::array& scores,
                 View2<int64_t> out) {
  const auto s = view2<Score>(scores, kOrderOp, "scores");
  py::gil_scoped_release nogil;
  rerank::sliding_window_order<Score>(orders, windows, s, out);
}

py::array_t<int64_t> sliding_window_order(py::handle orders_obj, py::handle windows_obj, py::handle scores_obj) {
  View2<const int64_t> orders, windows;
  const py::array orders_array = int64_matrix(orders_obj, "orders", orders);
  const py::array windows_array = int64_matrix(windows_obj, "windows", windows);
  const py::array scores = as_ndarray(scores_obj, kOrderOp, "scores");
  const bool is_f32 = has_dtype<float>(scores);
  RK_CHECK_TYPE(is_f32 || has_dtype<double>(scores), kOrderOp, ": scores must be float32 or float64, got ",
                describe(scores));
  auto [out, out_view] = new_matrix<int64_t>(orders.rows, orders.cols);
  if (is_f32) {
    order_typed<float>(orders, windows, scores, out_view);
  } else {
    order_typed<double>(orders, windows, scores, out_view);
  }
  return out;
}

}  // namespace

void bind_rerank_window(py::module_& m) {
  m.def("sliding_windows", &sliding_windows, py::arg("n"), py::arg("window"), py::arg("stride"));
  m.def("sliding_window_schedule", &sliding_window_schedule, py::arg("lengths"), py::arg("window"),
        py::arg("stride"));
  m.def("sliding_window_order", &sliding_window_order, py::arg("orders"), py::arg("windows"), py::arg("scores"));
}

}  // namespace ragkernels::bindings
