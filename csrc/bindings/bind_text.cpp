// Bindings of csrc/text/: conversion and validation only.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace ragkernels::bindings {

void bind_text(py::module_& m) { (void)m; }

}  // namespace ragkernels::bindings
