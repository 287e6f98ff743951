#include "bindings/checks.h"

#include <sstream>

namespace ragkernels::bindings {

py::array as_ndarray(py::handle obj, const char* op, const char* arg) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  if (py::hasattr(obj, "__dlpack__")) {
    if (py::hasattr(obj, "__dlpack_device__")) {
      auto device = obj.attr("__dlpack_device__")().cast<py::tuple>();
      const int kind = device[0].cast<int>();
      RK_CHECK_TYPE(kind == 1 || kind == 3, op, ": ", arg,
                    " lives on a device (DLPack device type ", kind,
                    "); the CPU op needs a CPU array (CUDA tensors go to the CUDA module)");
    }
    return py::module_::import("numpy").attr("from_dlpack")(obj).cast<py::array>();
  }
  throw TypeError(detail::message(op, ": ", arg, " must be a numpy array or a DLPack tensor, got ",
                                  std::string(py::str(py::type::of(obj).attr("__name__")))));
}

std::string_view utf8_of(py::handle str, std::vector<py::object>& keep_alive) {
  keep_alive.push_back(py::reinterpret_borrow<py::object>(str));
  if (PyUnicode_IS_ASCII(str.ptr())) {
    return {static_cast<const char*>(PyUnicode_DATA(str.ptr())), static_cast<size_t>(PyUnicode_GET_LENGTH(str.ptr()))};
  }
  py::object bytes = py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(str.ptr(), "utf-8", "surrogatepass"));
  if (!bytes) throw py::error_already_set();
  keep_alive.push_back(bytes);
  return {PyBytes_AS_STRING(bytes.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(bytes.ptr()))};
}

std::string_view token_utf8(py::handle str, std::vector<py::object>& keep_alive, const char* op,
                            const std::string& name) {
  RK_CHECK_TYPE(PyUnicode_Check(str.ptr()), op, ": ", name, " must be str, got ",
                std::string(py::str(py::type::handle_of(str).attr("__name__"))));
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(str.ptr(), &size);
  if (data == nullptr) {
    const py::error_already_set cause;  // fetches (and clears) the UnicodeEncodeError
    throw ValueError(detail::message(op, ": ", name, " cannot be encoded as UTF-8 (", cause.what(),
                                     "); lone surrogates usually come from decoding bytes with "
                                     "errors='surrogateescape'"));
  }
  keep_alive.push_back(py::reinterpret_borrow<py::object>(str));
  return {data, static_cast<size_t>(size)};
}

std::string describe(const py::array& a) {
  std::ostringstream out;
  out << std::string(py::str(a.dtype())) << " with shape (";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out << (i ? ", " : "") << a.shape(i);
  out << (a.ndim() == 1 ? ",)" : ")");
  return out.str();
}

}  // namespace ragkernels::bindings
