// Python bindings of csrc/dense (filled in by its area).
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace ragkernels::bindings {
void bind_dense(py::module_& m) { (void)m; }
}  // namespace ragkernels::bindings
