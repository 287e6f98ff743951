// ragkernels._cuda: CUDA ops on DLPack tensors (torch, cupy, jax ...).
// Inputs are borrowed through __dlpack__ (their capsule keeps them alive for
// the call); outputs are fresh device buffers returned as DLPack capsules
// that free themselves. Validation here, arithmetic in the kernels.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/topk.cuh"
#include "dlpack_abi.h"

namespace py = pybind11;
using ragkernels::TypeError;
using ragkernels::ValueError;

namespace {

void check_cuda(cudaError_t status, const char* op) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(op) + ": CUDA error: " + cudaGetErrorString(status));
}

// Borrows obj's tensor; `capsule` must outlive the returned pointer.
const RkDLTensor& borrow(py::handle obj, py::object& capsule, const char* op, const char* arg) {
  RK_CHECK_TYPE(py::hasattr(obj, "__dlpack__"), op, ": ", arg, " must be a DLPack tensor");
  capsule = obj.attr("__dlpack__")();
  auto* managed = static_cast<RkDLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (managed == nullptr) throw py::error_already_set();
  const RkDLTensor& t = managed->dl_tensor;
  RK_CHECK_TYPE(t.device.device_type == kRkDLCUDA, op, ": ", arg, " must be on a CUDA device");
  return t;
}

bool c_contiguous(const RkDLTensor& t) {
  if (t.strides == nullptr) return true;
  int64_t expected = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    if (t.shape[d] != 1 && t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

struct Owned {
  RkDLManagedTensor managed{};
  std::vector<int64_t> shape;
};

// A (rows, cols) device buffer handed out as a "dltensor" capsule.
py::capsule new_device_matrix(int64_t rows, int64_t cols, RkDLDataType dtype, int device, void** data) {
  auto* owned = new Owned;
  owned->shape = {rows, cols};
  const size_t bytes = static_cast<size_t>(rows * cols) * (dtype.bits / 8);
  if (cudaMalloc(data, bytes == 0 ? 1 : bytes) != cudaSuccess) {
    delete owned;
    throw std::runtime_error("ragkernels._cuda: out of device memory");
  }
  owned->managed.dl_tensor = RkDLTensor{*data, {kRkDLCUDA, device}, 2, dtype, owned->shape.data(), nullptr, 0};
  owned->managed.manager_ctx = owned;
  owned->managed.deleter = [](RkDLManagedTensor* self) {
    cudaFree(self->dl_tensor.data);
    delete static_cast<Owned*>(self->manager_ctx);
  };
  return py::capsule(&owned->managed, "dltensor", [](PyObject* cap) {
    // Consumed capsules are renamed "used_dltensor"; only unconsumed ones free.
    if (PyCapsule_IsValid(cap, "dltensor")) {
      auto* m = static_cast<RkDLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      m->deleter(m);
    }
  });
}

py::tuple topk(py::handle scores_obj, int64_t k) {
  py::object capsule;
  const RkDLTensor& t = borrow(scores_obj, capsule, "topk", "scores");
  RK_CHECK_TYPE(t.dtype.code == kRkDLFloat && t.dtype.bits == 32 && t.dtype.lanes == 1,
                "topk: CUDA scores must be float32");
  RK_CHECK_ARG(t.ndim == 2, "topk: scores must be 2-D, got ", t.ndim, "-D");
  RK_CHECK_ARG(c_contiguous(t), "topk: CUDA scores must be C-contiguous; call .contiguous()");
  RK_CHECK_ARG(k >= 1, "topk: k must be >= 1, got ", k);
  const int64_t rows = t.shape[0], n = t.shape[1];
  RK_CHECK_ARG(n < (int64_t(1) << 32), "topk: rows longer than 2^32 - 1 are not supported");
  check_cuda(cudaSetDevice(t.device.device_id), "topk");
  void* ids = nullptr;
  void* top = nullptr;
  py::capsule ids_cap = new_device_matrix(rows, k, {kRkDLInt, 64, 1}, t.device.device_id, &ids);
  py::capsule top_cap = new_device_matrix(rows, k, {kRkDLFloat, 32, 1}, t.device.device_id, &top);
  unsigned long long* scratch = nullptr;
  check_cuda(cudaMalloc(&scratch, static_cast<size_t>(std::max<int64_t>(rows * n, 1)) * sizeof(*scratch)), "topk");
  const float* scores = reinterpret_cast<const float*>(static_cast<const char*>(t.data) + t.byte_offset);
  cudaError_t status;
  {
    py::gil_scoped_release nogil;
    status = ragkernels::cuda::topk(scores, rows, n, k, static_cast<int64_t*>(ids), static_cast<float*>(top),
                                    scratch, nullptr);
    if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
  }
  cudaFree(scratch);
  check_cuda(status, "topk");
  return py::make_tuple(ids_cap, top_cap);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "ragkernels CUDA kernels (reached through ragkernels, by where the input lives)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ValueError& e) {
      py::set_error(PyExc_ValueError, e.what());
    } catch (const TypeError& e) {
      py::set_error(PyExc_TypeError, e.what());
    }
  });
  m.def("device_count", [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
  });
  m.def("topk", &topk, py::arg("scores"), py::arg("k"));
}
