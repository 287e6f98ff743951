// Python bindings of csrc/prf (filled in by its area).
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace ragkernels::bindings {
void bind_prf(py::module_& m) { (void)m; }
}  // namespace ragkernels::bindings
