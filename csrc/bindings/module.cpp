// The ragkernels._core extension: one bind_<area> function per area, and the
// one place where C++ errors become Python exceptions.
#include <pybind11/pybind11.h>

#include "core/error.h"

namespace py = pybind11;

namespace ragkernels::bindings {
void bind_core(py::module_& m);
void bind_metrics(py::module_& m);
void bind_text(py::module_& m);
void bind_sparse(py::module_& m);
void bind_dense(py::module_& m);
void bind_fusion(py::module_& m);
void bind_prf(py::module_& m);
void bind_rerank(py::module_& m);
void bind_select(py::module_& m);
void bind_spec(py::module_& m);
void bind_kv(py::module_& m);
}  // namespace ragkernels::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "ragkernels compiled core (use the ragkernels package, not this module)";
  // FormatError: a file we read is malformed, truncated, corrupt or too new.
  static py::exception<ragkernels::FormatError> format_error(m, "FormatError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ragkernels::FormatError& e) {
      py::set_error(format_error, e.what());
    } catch (const ragkernels::ValueError& e) {
      py::set_error(PyExc_ValueError, e.what());
    } catch (const ragkernels::TypeError& e) {
      py::set_error(PyExc_TypeError, e.what());
    } catch (const ragkernels::IOError& e) {
      py::set_error(PyExc_OSError, e.what());
    }
  });
  ragkernels::bindings::bind_core(m);
  ragkernels::bindings::bind_metrics(m);
  ragkernels::bindings::bind_text(m);
  ragkernels::bindings::bind_sparse(m);
  ragkernels::bindings::bind_dense(m);
  ragkernels::bindings::bind_fusion(m);
  ragkernels::bindings::bind_prf(m);
  ragkernels::bindings::bind_rerank(m);
  ragkernels::bindings::bind_select(m);
  ragkernels::bindings::bind_spec(m);
  ragkernels::bindings::bind_kv(m);
}
