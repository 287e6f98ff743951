// ragkernels._cuda: CUDA ops on DLPack tensors (torch, cupy, jax ...).
// Inputs are borrowed through __dlpack__ (their capsule keeps them alive for
// the call); outputs are fresh device buffers returned as DLPack capsules
// that free themselves. Validation here, arithmetic in the kernels.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/topk.cuh"
#include "dense/flat_search.cuh"
#include "bindings/dlpack_abi.h"
#include "kv/decode_attention.cuh"
#include "kv/quantize.cuh"
#include "kv/quantize.h"
#include "rerank/maxsim.cuh"
#include "spec/trie_mask.cuh"

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

// A device buffer of `shape` handed out as a "dltensor" capsule.
py::capsule new_device_array(std::vector<int64_t> shape, RkDLDataType dtype, int device, void** data) {
  auto* owned = new Owned;
  owned->shape = std::move(shape);
  int64_t count = 1;
  for (int64_t extent : owned->shape) count *= extent;
  const size_t bytes = static_cast<size_t>(count) * (dtype.bits / 8);
  if (cudaMalloc(data, bytes == 0 ? 1 : bytes) != cudaSuccess) {
    delete owned;
    throw std::runtime_error("ragkernels._cuda: out of device memory");
  }
  owned->managed.dl_tensor = RkDLTensor{*data, {kRkDLCUDA, device}, static_cast<int32_t>(owned->shape.size()),
                                        dtype, owned->shape.data(), nullptr, 0};
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

py::capsule new_device_matrix(int64_t rows, int64_t cols, RkDLDataType dtype, int device, void** data) {
  return new_device_array({rows, cols}, dtype, device, data);
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

// ------------------------------------------------------------ dense ------
namespace rkd = ragkernels::cuda::dense;

// Scratch device memory, freed on every path out of the call.
struct DeviceScratch {
  void* data = nullptr;
  DeviceScratch(size_t bytes, const char* op) {
    if (cudaMalloc(&data, std::max<size_t>(bytes, 1)) != cudaSuccess)
      throw std::runtime_error(std::string(op) + ": out of device memory for " + std::to_string(bytes) +
                               " bytes of workspace");
  }
  ~DeviceScratch() { cudaFree(data); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

const char* dtype_name(const RkDLDataType& t) {
  if (t.lanes != 1) return "a vector dtype";
  if (t.code == kRkDLBfloat) return t.bits == 16 ? "bfloat16" : "a bfloat dtype";
  if (t.code == kRkDLFloat)
    return t.bits == 32 ? "float32" : t.bits == 16 ? "float16" : t.bits == 64 ? "float64" : "float";
  if (t.code == kRkDLInt)
    return t.bits == 8 ? "int8" : t.bits == 16 ? "int16" : t.bits == 32 ? "int32" : t.bits == 64 ? "int64" : "int";
  if (t.code == kRkDLUInt) return t.bits == 8 ? "uint8" : "an unsigned dtype";
  return "an unknown dtype";
}

bool is_dtype(const RkDLTensor& t, uint8_t code, uint8_t bits) {
  return t.dtype.code == code && t.dtype.bits == bits && t.dtype.lanes == 1;
}

const char* data_ptr(const RkDLTensor& t) { return static_cast<const char*>(t.data) + t.byte_offset; }

rkd::Metric parse_metric(const std::string& metric) {
  if (metric == "ip") return rkd::Metric::kInnerProduct;
  if (metric == "cosine") return rkd::Metric::kCosine;
  if (metric == "l2") return rkd::Metric::kL2;
  throw ValueError("dense_search: metric must be 'ip', 'cosine' or 'l2', got '" + metric + "'");
}

// The documents: a CUDA (n, dim) C-contiguous float32 / float16 / int8 tensor.
rkd::DeviceFlatVectors as_vectors(const RkDLTensor& d, rkd::Metric metric, const char* op) {
  RK_CHECK_ARG(d.ndim == 2, op, ": docs must be 2-D (n, dim), got ", d.ndim, "-D");
  RK_CHECK_TYPE(is_dtype(d, kRkDLFloat, 32) || is_dtype(d, kRkDLFloat, 16) || is_dtype(d, kRkDLInt, 8), op,
                ": docs must be float32, float16 or int8, got ", dtype_name(d.dtype));
  RK_CHECK_ARG(c_contiguous(d), op, ": docs must be C-contiguous; call .contiguous()");
  RK_CHECK_ARG(d.shape[1] >= 1, op, ": docs must have dim >= 1, got shape (", d.shape[0], ", ", d.shape[1], ")");
  RK_CHECK_ARG(d.shape[0] < (int64_t(1) << 32), op, ": more than 2^32 - 1 docs are not supported");
  rkd::DeviceFlatVectors v;
  v.storage = d.dtype.code == kRkDLInt ? rkd::Storage::kInt8
              : d.dtype.bits == 16    ? rkd::Storage::kFloat16
                                      : rkd::Storage::kFloat32;
  v.metric = metric;
  v.rows = d.shape[0];
  v.dim = d.shape[1];
  v.data = data_ptr(d);
  return v;
}

// An optional (n,) float32 per-doc term on the docs' device.
const float* optional_row_terms(py::handle obj, py::object& capsule, int64_t n, int device, const char* op,
                                const char* arg) {
  if (obj.is_none()) return nullptr;
  const RkDLTensor& t = borrow(obj, capsule, op, arg);
  RK_CHECK_TYPE(is_dtype(t, kRkDLFloat, 32), op, ": ", arg, " must be float32, got ", dtype_name(t.dtype));
  RK_CHECK_ARG(t.ndim == 1 && t.shape[0] == n && c_contiguous(t), op, ": ", arg,
               " must be a contiguous (n,) = (", n, ",) tensor");
  RK_CHECK_ARG(t.device.device_id == device, op, ": ", arg, " must be on the docs' device cuda:", device);
  return reinterpret_cast<const float*>(data_ptr(t));
}

// Raises ValueError when `t` (float32 / float16) holds a NaN or inf.
void check_finite(const RkDLTensor& t, rkd::Storage storage, const char* op, const char* arg) {
  int64_t count = 1;
  for (int d = 0; d < t.ndim; ++d) count *= t.shape[d];
  DeviceScratch flag(sizeof(int), op);
  cudaError_t status = cudaMemsetAsync(flag.data, 0, sizeof(int), nullptr);
  if (status == cudaSuccess)
    status = rkd::any_non_finite(data_ptr(t), storage, count, static_cast<int*>(flag.data), nullptr);
  int found = 0;
  if (status == cudaSuccess) status = cudaMemcpy(&found, flag.data, sizeof(int), cudaMemcpyDeviceToHost);
  check_cuda(status, op);
  RK_CHECK_ARG(found == 0, op, ": ", arg, " contain NaN or inf");
}

constexpr int64_t kGemmMinQueries = 8;  // below, the fused scan reads the corpus few enough times

py::tuple dense_search(py::handle queries_obj, py::handle docs_obj, int64_t k, const std::string& metric_name,
                       py::handle row_scale_obj, py::handle row_offset_obj, py::object use_gemm_obj,
                       bool check_finite_docs) {
  const char* op = "dense_search";
  py::object q_cap, d_cap, s_cap, o_cap;
  const RkDLTensor& q = borrow(queries_obj, q_cap, op, "queries");
  const RkDLTensor& d = borrow(docs_obj, d_cap, op, "docs");
  rkd::DeviceFlatVectors v = as_vectors(d, parse_metric(metric_name), op);
  RK_CHECK_TYPE(is_dtype(q, kRkDLFloat, 32), op, ": queries must be float32, got ", dtype_name(q.dtype));
  RK_CHECK_ARG(q.ndim == 2, op, ": queries must be 2-D (n_queries, dim), got ", q.ndim, "-D");
  RK_CHECK_ARG(c_contiguous(q), op, ": queries must be C-contiguous; call .contiguous()");
  RK_CHECK_ARG(q.shape[1] == v.dim, op, ": queries have dim ", q.shape[1], ", docs have dim ", v.dim);
  RK_CHECK_ARG(q.device.device_id == d.device.device_id, op, ": queries are on cuda:", q.device.device_id,
               ", docs on cuda:", d.device.device_id);
  RK_CHECK_ARG(k >= 1, op, ": k must be >= 1, got ", k);
  const int device = d.device.device_id;
  v.row_scale = optional_row_terms(row_scale_obj, s_cap, v.rows, device, op, "row_scale");
  v.row_offset = optional_row_terms(row_offset_obj, o_cap, v.rows, device, op, "row_offset");
  const int64_t nq = q.shape[0];
  bool use_gemm = rkd::gemm_available() && nq >= kGemmMinQueries;
  if (!use_gemm_obj.is_none()) {
    use_gemm = use_gemm_obj.cast<bool>();
    RK_CHECK_ARG(!use_gemm || rkd::gemm_available(), op,
                 ": use_gemm=True, but this build has no cuBLAS (rebuild where CUDA::cublas is found)");
  }
  check_cuda(cudaSetDevice(device), op);
  check_finite(q, rkd::Storage::kFloat32, op, "queries");
  if (check_finite_docs) check_finite(d, v.storage, op, "docs");
  void* ids = nullptr;
  void* scores = nullptr;
  py::capsule ids_cap = new_device_matrix(nq, k, {kRkDLInt, 64, 1}, device, &ids);
  py::capsule scores_cap = new_device_matrix(nq, k, {kRkDLFloat, 32, 1}, device, &scores);
  const size_t bytes = rkd::search_workspace_bytes(v, nq, k, use_gemm);
  DeviceScratch workspace(bytes, op);
  std::string error;
  cudaError_t status = cudaSuccess;
  {
    py::gil_scoped_release nogil;
    error = rkd::search(v, reinterpret_cast<const float*>(data_ptr(q)), nq, k, static_cast<int64_t*>(ids),
                        static_cast<float*>(scores), workspace.data, bytes, use_gemm, nullptr);
    if (error.empty()) status = cudaStreamSynchronize(nullptr);
  }
  if (!error.empty()) throw std::runtime_error(std::string(op) + ": " + error);
  check_cuda(status, op);
  return py::make_tuple(ids_cap, scores_cap);
}

py::tuple dense_row_terms(py::handle docs_obj, const std::string& metric_name, py::handle int8_scales_obj) {
  const char* op = "dense_row_terms";
  py::object d_cap, s_cap;
  const RkDLTensor& d = borrow(docs_obj, d_cap, op, "docs");
  rkd::DeviceFlatVectors v = as_vectors(d, parse_metric(metric_name), op);
  const int device = d.device.device_id;
  const float* scales = optional_row_terms(int8_scales_obj, s_cap, v.rows, device, op, "int8_scales");
  RK_CHECK_ARG((v.storage == rkd::Storage::kInt8) == (scales != nullptr), op,
               ": int8_scales must be given for int8 docs and only for them");
  check_cuda(cudaSetDevice(device), op);
  void* row_scale = nullptr;
  void* row_offset = nullptr;
  py::capsule scale_cap = new_device_array({v.rows}, {kRkDLFloat, 32, 1}, device, &row_scale);
  py::capsule offset_cap = new_device_array({v.rows}, {kRkDLFloat, 32, 1}, device, &row_offset);
  bool wrote_scale = false, wrote_offset = false;
  cudaError_t status = rkd::row_terms(v, scales, static_cast<float*>(row_scale), static_cast<float*>(row_offset),
                                      &wrote_scale, &wrote_offset, nullptr);
  if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
  check_cuda(status, op);
  return py::make_tuple(wrote_scale ? py::object(scale_cap) : py::object(py::none()),
                        wrote_offset ? py::object(offset_cap) : py::object(py::none()));
}

// ----------------------------------------------------------- rerank ------
namespace rkr = ragkernels::cuda::rerank;

// C-contiguous, or holding no element (whose strides do not matter: torch
// gives a (3, 0) tensor strides (1, 1)).
bool contiguous_or_empty(const RkDLTensor& t) {
  for (int d = 0; d < t.ndim; ++d)
    if (t.shape[d] == 0) return true;
  return c_contiguous(t);
}

// A token matrix: 2-D (tokens, dim), C-contiguous (the kernel reads rows
// `dim` elements apart).
void check_token_matrix(const RkDLTensor& t, const char* arg) {
  RK_CHECK_ARG(t.ndim == 2, "maxsim: ", arg, " must be 2-D (tokens, dim), got ", t.ndim, "-D");
  RK_CHECK_ARG(contiguous_or_empty(t), "maxsim: ", arg, " must be C-contiguous; call .contiguous()");
}

void check_same_device(const RkDLTensor& t, int device, const char* arg) {
  RK_CHECK_ARG(t.device.device_id == device, "maxsim: ", arg, " is on cuda:", t.device.device_id,
               ", queries on cuda:", device);
}

// An offsets array: (count + 1,) int64, contiguous, on `device`; returns count.
int64_t check_offsets_array(const RkDLTensor& t, int device, const char* arg) {
  RK_CHECK_TYPE(is_dtype(t, kRkDLInt, 64), "maxsim: ", arg, " must be int64, got ", dtype_name(t.dtype));
  RK_CHECK_ARG(t.ndim == 1 && t.shape[0] >= 1 && c_contiguous(t), "maxsim: ", arg,
               " must be a contiguous 1-D tensor of at least one entry");
  check_same_device(t, device, arg);
  return t.shape[0] - 1;
}

template <typename T>
T read_device(const T* at) {
  T value{};
  check_cuda(cudaMemcpy(&value, at, sizeof(T), cudaMemcpyDeviceToHost), "maxsim");
  return value;
}

// Raises the CPU op's ValueError for offsets whose first bad index is `bad`
// (see rkr::ErrorSlot): reads the one or two entries it names.
void raise_bad_offsets(const int64_t* offsets, int64_t rows, unsigned long long bad, const char* arg) {
  const auto i = static_cast<int64_t>(bad);
  const int64_t at = read_device(offsets + i);
  RK_CHECK_ARG(i != 0 || at == 0, "maxsim: ", arg, "[0] must be 0, got ", at);
  if (i > 0) {
    const int64_t before = read_device(offsets + i - 1);
    RK_CHECK_ARG(at >= before, "maxsim: ", arg, " must not decrease: ", arg, "[", i - 1, "] = ", before, " > ", arg,
                 "[", i, "] = ", at);
  }
  throw ValueError(std::string("maxsim: ") + arg + "[-1] must equal the number of token rows (" +
                   std::to_string(rows) + "), got " + std::to_string(at));
}

py::capsule maxsim(py::handle queries_obj, py::handle query_offsets_obj, py::handle documents_obj,
                   py::handle doc_offsets_obj, py::handle scales_obj, py::handle candidates_obj) {
  const char* op = "maxsim";
  py::object q_cap, qo_cap, d_cap, do_cap, s_cap, c_cap;
  const RkDLTensor& q = borrow(queries_obj, q_cap, op, "queries");
  const RkDLTensor& qo = borrow(query_offsets_obj, qo_cap, op, "query_offsets");
  const RkDLTensor& d = borrow(documents_obj, d_cap, op, "documents");
  const RkDLTensor& dof = borrow(doc_offsets_obj, do_cap, op, "doc_offsets");
  const RkDLTensor& c = borrow(candidates_obj, c_cap, op, "candidates");
  const int device = q.device.device_id;

  RK_CHECK_TYPE(is_dtype(q, kRkDLFloat, 32), "maxsim: queries must be float32, got ", dtype_name(q.dtype));
  check_token_matrix(q, "queries");
  RK_CHECK_TYPE(is_dtype(d, kRkDLFloat, 32) || is_dtype(d, kRkDLFloat, 16) || is_dtype(d, kRkDLInt, 8),
                "maxsim: documents must be float32, float16 or int8, got ", dtype_name(d.dtype));
  check_token_matrix(d, "documents");
  check_same_device(d, device, "documents");
  RK_CHECK_ARG(q.shape[1] == d.shape[1], "maxsim: query tokens have dimension ", q.shape[1],
               " but document tokens have ", d.shape[1]);
  RK_CHECK_TYPE(is_dtype(c, kRkDLInt, 64), "maxsim: candidates must be int64, got ", dtype_name(c.dtype));
  RK_CHECK_ARG(c.ndim == 2 && contiguous_or_empty(c), "maxsim: candidates must be a C-contiguous 2-D tensor "
               "(num_queries, num_candidates), got ", c.ndim, "-D");
  check_same_device(c, device, "candidates");

  rkr::DeviceQueryTokens queries;
  queries.data = reinterpret_cast<const float*>(data_ptr(q));
  queries.rows = q.shape[0];
  queries.dim = q.shape[1];
  queries.num_queries = check_offsets_array(qo, device, "query_offsets");
  queries.offsets = reinterpret_cast<const int64_t*>(data_ptr(qo));
  RK_CHECK_ARG(c.shape[0] == queries.num_queries, "maxsim: candidates has ", c.shape[0],
               " rows but there are ", queries.num_queries, " queries");

  rkr::DeviceDocTokens docs;
  docs.data = data_ptr(d);
  docs.type = d.dtype.code == kRkDLInt ? rkr::TokenType::kInt8
              : d.dtype.bits == 16    ? rkr::TokenType::kFloat16
                                      : rkr::TokenType::kFloat32;
  docs.rows = d.shape[0];
  docs.dim = d.shape[1];
  docs.num_docs = check_offsets_array(dof, device, "doc_offsets");
  docs.offsets = reinterpret_cast<const int64_t*>(data_ptr(dof));
  if (docs.type == rkr::TokenType::kInt8) {
    RK_CHECK_ARG(!scales_obj.is_none(), "maxsim: int8 documents need scales (one float32 per token row)");
    const RkDLTensor& s = borrow(scales_obj, s_cap, op, "scales");
    RK_CHECK_TYPE(is_dtype(s, kRkDLFloat, 32), "maxsim: scales must be float32, got ", dtype_name(s.dtype));
    RK_CHECK_ARG(s.ndim == 1 && s.shape[0] == docs.rows && contiguous_or_empty(s),
                 "maxsim: scales must be a contiguous 1-D tensor of ", docs.rows, " entries (one per token row)");
    check_same_device(s, device, "scales");
    docs.scales = reinterpret_cast<const float*>(data_ptr(s));
  } else {
    RK_CHECK_ARG(scales_obj.is_none(), "maxsim: scales apply to int8 documents only, documents are ",
                 dtype_name(d.dtype));
  }

  check_cuda(cudaSetDevice(device), op);
  const int64_t num_candidates = c.shape[1];
  void* scores = nullptr;
  py::capsule scores_cap = new_device_matrix(queries.num_queries, num_candidates, {kRkDLFloat, 32, 1}, device,
                                             &scores);
  DeviceScratch errors(rkr::kErrorSlots * sizeof(unsigned long long), op);
  auto* error_slots = static_cast<unsigned long long*>(errors.data);
  unsigned long long found[rkr::kErrorSlots] = {};
  const auto* candidates = reinterpret_cast<const int64_t*>(data_ptr(c));
  cudaError_t status;
  {
    py::gil_scoped_release nogil;
    status = rkr::maxsim(queries, docs, candidates, num_candidates, static_cast<float*>(scores), error_slots,
                         nullptr);
    if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
    if (status == cudaSuccess) status = cudaMemcpy(found, error_slots, sizeof(found), cudaMemcpyDeviceToHost);
  }
  check_cuda(status, op);
  // Reported in the CPU op's order: offsets first, then candidates.
  if (found[rkr::kQueryOffsetsError] != rkr::kNoError)
    raise_bad_offsets(queries.offsets, queries.rows, found[rkr::kQueryOffsetsError], "query_offsets");
  if (found[rkr::kDocOffsetsError] != rkr::kNoError)
    raise_bad_offsets(docs.offsets, docs.rows, found[rkr::kDocOffsetsError], "doc_offsets");
  if (found[rkr::kCandidatesError] != rkr::kNoError) {
    const auto at = static_cast<int64_t>(found[rkr::kCandidatesError]);
    const int64_t doc = read_device(candidates + at);
    throw ValueError("maxsim: candidates[" + std::to_string(at / num_candidates) + ", " +
                     std::to_string(at % num_candidates) + "] = " + std::to_string(doc) + " is out of range [0, " +
                     std::to_string(docs.num_docs) + ") (-1 marks an empty slot)");
  }
  return scores_cap;
}

namespace rks = ragkernels::cuda::spec;

// A trie's mask arrays (row_ptr, tokens, terminal) copied to one device;
// ragkernels.spec.Trie keeps one per device it masks logits on.
class TrieMask {
 public:
  TrieMask(const py::array_t<int64_t, py::array::c_style>& row_ptr, const py::array_t<int32_t, py::array::c_style>& tokens,
           const py::array_t<uint8_t, py::array::c_style>& terminal, int64_t vocab_size, int device)
      : device_(device), vocab_size_(vocab_size) {
    RK_CHECK_ARG(row_ptr.ndim() == 1 && row_ptr.size() == terminal.size() + 1 && terminal.size() >= 1,
                 "TrieMask: row_ptr must have one entry more than terminal");
    check_cuda(cudaSetDevice(device), "TrieMask");
    trie_.num_nodes = terminal.size();
    trie_.row_ptr = static_cast<const int64_t*>(upload(row_ptr.data(), row_ptr.nbytes()));
    trie_.tokens = static_cast<const int32_t*>(upload(tokens.data(), tokens.nbytes()));
    trie_.terminal = static_cast<const uint8_t*>(upload(terminal.data(), terminal.nbytes()));
  }
  // Trie::mask_logits on a CUDA tensor in place; states are host int32
  // (the decoder's, one per row), checked here and copied over.
  void mask_logits(const py::array_t<int32_t, py::array::c_style>& states, py::handle logits_obj, int64_t eos) {
    constexpr const char* op = "mask_logits";
    py::object capsule;
    const RkDLTensor& t = borrow(logits_obj, capsule, op, "logits");
    RK_CHECK_ARG(t.device.device_id == device_, op, ": logits is on cuda:", t.device.device_id,
                 ", this trie's device copy on cuda:", device_);
    const bool f32 = is_dtype(t, kRkDLFloat, 32), f16 = is_dtype(t, kRkDLFloat, 16);
    const bool bf16 = is_dtype(t, kRkDLBfloat, 16);
    RK_CHECK_TYPE((f32 || f16 || bf16) && t.ndim == 2, op, ": logits must be a 2-D float32, float16 or bfloat16 ",
                  "tensor, got ", t.ndim, "-D ", dtype_name(t.dtype));
    const int64_t rows = t.shape[0], width = t.shape[1];
    const int64_t row_stride = t.strides ? t.strides[0] : width;
    RK_CHECK_ARG(t.strides == nullptr || width <= 1 || t.strides[1] == 1, op,
                 ": logits columns must be contiguous (pass a contiguous copy)");
    RK_CHECK_ARG(row_stride >= 0, op, ": logits rows must not run backwards");
    RK_CHECK_ARG(rows <= 1 || row_stride >= width, op,
                 ": logits rows overlap (an expanded tensor?); the mask is written to each row");
    RK_CHECK_ARG(rows == states.size(), op, ": logits has ", rows, " rows but states ", states.size());
    RK_CHECK_ARG(width >= vocab_size_, op, ": logits has ", width, " columns but the trie's vocabulary ", vocab_size_,
                 " tokens; was the trie built for another tokenizer?");
    RK_CHECK_ARG(eos >= -1 && eos < width, op, ": eos_token_id ", eos, " is outside the ", width, " logits");
    const int32_t* host_states = states.data();
    for (int64_t i = 0; i < rows; ++i) {
      RK_CHECK_ARG(host_states[i] >= -1 && host_states[i] < trie_.num_nodes, op, ": states[", i, "] = ",
                   host_states[i], " is not a state of this trie (-1 or a node in [0, ", trie_.num_nodes, "))");
    }
    const auto type = f32 ? rks::LogitsType::kFloat32 : f16 ? rks::LogitsType::kFloat16 : rks::LogitsType::kBfloat16;
    py::gil_scoped_release nogil;
    check_cuda(cudaSetDevice(device_), op);
    DeviceScratch device_states(static_cast<size_t>(rows) * sizeof(int32_t), op);
    // On the default stream, where torch's own kernels on these logits run
    // (unless it was given another); synchronized before the states' buffer goes.
    cudaError_t status = cudaMemcpyAsync(device_states.data, host_states, static_cast<size_t>(rows) * sizeof(int32_t),
                                         cudaMemcpyHostToDevice, nullptr);
    if (status == cudaSuccess)
      status = rks::trie_mask_logits(trie_, static_cast<const int32_t*>(device_states.data), static_cast<int32_t>(eos),
                                     const_cast<char*>(data_ptr(t)), type, rows, width, row_stride, nullptr);
    if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
    check_cuda(status, op);
  }

 private:
  const void* upload(const void* host, size_t bytes) {
    buffers_.push_back(std::make_unique<DeviceScratch>(bytes, "TrieMask"));
    check_cuda(cudaMemcpy(buffers_.back()->data, host, bytes, cudaMemcpyHostToDevice), "TrieMask");
    return buffers_.back()->data;
  }

  int device_;
  int64_t vocab_size_;
  rks::DeviceTrie trie_;
  std::vector<std::unique_ptr<DeviceScratch>> buffers_;  // freed with the object, or when the constructor throws
};

// ------------------------------------------------------------ kv ---------
// csrc/bindings/bind_kv.cpp's quantization and fused decode attention on
// CUDA tensors: the same names, checks and messages (the CPU op is the
// oracle); dtypes come from DLPack (bfloat16 included), outputs are fresh
// arrays on the input's device.
namespace rkv = ragkernels::cuda::kv;

std::string describe(const RkDLTensor& t) {
  std::string out = std::string(dtype_name(t.dtype)) + " with shape (";
  for (int d = 0; d < t.ndim; ++d) out += (d ? ", " : "") + std::to_string(t.shape[d]);
  return out + (t.ndim == 1 ? ",)" : ")");
}

// Stride of `axis` in elements (DLPack's NULL strides: C-contiguous).
int64_t stride_of(const RkDLTensor& t, int axis) {
  if (t.strides != nullptr) return t.strides[axis];
  int64_t stride = 1;
  for (int d = t.ndim - 1; d > axis; --d) stride *= t.shape[d];
  return stride;
}

// A 4-D [batch, heads, tokens, dim] float32 / float16 / bfloat16 view with
// contiguous channels, other axes strided (bind_kv.cpp's tokens_view).
rkv::DeviceTokens kv_tokens(const RkDLTensor& t, const char* op, const char* arg) {
  RK_CHECK_ARG(t.ndim == 4, op, ": ", arg, " must be 4-D [batch, heads, tokens, dim], got ", describe(t));
  rkv::DeviceTokens v;
  if (is_dtype(t, kRkDLFloat, 32)) {
    v.dtype = rkv::Dtype::kFloat32;
  } else if (is_dtype(t, kRkDLFloat, 16)) {
    v.dtype = rkv::Dtype::kFloat16;
  } else {
    RK_CHECK_TYPE(is_dtype(t, kRkDLBfloat, 16), op, ": ", arg, " must be float32, float16 or bfloat16, got ",
                  describe(t));
    v.dtype = rkv::Dtype::kBFloat16;
  }
  const bool empty = !(t.shape[0] && t.shape[1] && t.shape[2] && t.shape[3]);
  RK_CHECK_ARG(empty || t.shape[3] <= 1 || stride_of(t, 3) == 1, op, ": ", arg,
               " must have contiguous channels (the last axis); pass a contiguous tensor");
  for (int axis = 0; axis < 3; ++axis) {
    RK_CHECK_ARG(empty || stride_of(t, axis) >= 0, op, ": ", arg, " has negative strides; pass a contiguous tensor");
  }
  v.data = data_ptr(t);
  v.streams = t.shape[0] * t.shape[1];
  v.heads = t.shape[1];
  v.tokens = t.shape[2];
  v.dim = t.shape[3];
  v.batch_stride = stride_of(t, 0);
  v.head_stride = stride_of(t, 1);
  v.token_stride = stride_of(t, 2);
  return v;
}

void check_kv_bits(int bits, const char* op) {
  RK_CHECK_ARG(bits == 2 || bits == 3 || bits == 4 || bits == 8, op, ": bits must be 2, 3, 4 or 8, got ", bits);
}

void check_kv_group(int group, const char* op) {
  RK_CHECK_ARG(group >= 1, op, ": group_size must be >= 1, got ", group);
}

// A C-contiguous array of `dtype` (named `dtype_text`) with exactly `shape`, on `device`.
const void* kv_packed(const RkDLTensor& t, RkDLDataType dtype, const char* dtype_text,
                      std::initializer_list<int64_t> shape, int device, const char* op, const char* arg) {
  RK_CHECK_TYPE(is_dtype(t, dtype.code, dtype.bits), op, ": ", arg, " must be ", dtype_text, ", got ", describe(t));
  RK_CHECK_ARG(contiguous_or_empty(t), op, ": ", arg, " must be C-contiguous");
  bool same = t.ndim == static_cast<int>(shape.size());
  int axis = 0;
  std::string expected = "(";
  for (int64_t n : shape) {
    if (same) same = t.shape[axis] == n;
    expected += (axis++ ? ", " : "") + std::to_string(n);
  }
  RK_CHECK_ARG(same, op, ": ", arg, " must have shape ", expected, "), got ", describe(t));
  RK_CHECK_ARG(t.device.device_id == device, op, ": ", arg, " is on cuda:", t.device.device_id, ", the query on cuda:",
               device);
  return data_ptr(t);
}

constexpr RkDLDataType kUint8{kRkDLUInt, 8, 1}, kHalf{kRkDLFloat, 16, 1}, kInt32{kRkDLInt, 32, 1};
constexpr RkDLDataType kFloat32{kRkDLFloat, 32, 1};

// The CPU op's ValueError for the group `index` beyond float16, quoting its
// [lo, hi] (recomputed on the device).
[[noreturn]] void raise_group_overflow(const rkv::DeviceTokens& x, bool keys, int group, unsigned long long index,
                                       const char* op) {
  DeviceScratch range(2 * sizeof(float), op);
  float host[2] = {0.0f, 0.0f};
  cudaError_t status = rkv::group_range(x, keys, group, index, static_cast<float*>(range.data), nullptr);
  if (status == cudaSuccess) status = cudaMemcpy(host, range.data, sizeof host, cudaMemcpyDeviceToHost);
  check_cuda(status, op);
  throw ValueError(ragkernels::detail::message("KV quantization: a group spans [", host[0], ", ", host[1],
                                               "], beyond what a float16 scale and minimum hold (|x| <= 65504)"));
}

// Runs `launch(error_word)` on the default stream and waits; raises for a
// group beyond float16.
template <typename Launch>
void run_quantize(const rkv::DeviceTokens& x, bool keys, int group, const char* op, Launch launch) {
  DeviceScratch error(sizeof(unsigned long long), op);
  auto* word = static_cast<unsigned long long*>(error.data);
  unsigned long long found = rkv::kNoError;
  cudaError_t status;
  {
    py::gil_scoped_release nogil;
    status = cudaMemsetAsync(word, 0xff, sizeof found, nullptr);  // kNoError
    if (status == cudaSuccess) status = launch(word);
    if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
    if (status == cudaSuccess) status = cudaMemcpy(&found, word, sizeof found, cudaMemcpyDeviceToHost);
  }
  check_cuda(status, op);
  if (found != rkv::kNoError) raise_group_overflow(x, keys, group, found, op);
}

// The keys or values tensor checked as the CPU binding does; sets the device.
rkv::DeviceTokens quantize_input(const RkDLTensor& t, int bits, int group, const char* op, const char* arg) {
  check_kv_bits(bits, op);
  check_kv_group(group, op);
  const rkv::DeviceTokens x = kv_tokens(t, op, arg);
  RK_CHECK_ARG(x.dim >= 1, op, ": the head dimension must be >= 1");
  check_cuda(cudaSetDevice(t.device.device_id), op);
  return x;
}

py::tuple kv_quantize_keys(py::handle keys_obj, int bits, int group) {
  constexpr const char* kOp = "quantize_keys";
  py::object capsule;
  const RkDLTensor& t = borrow(keys_obj, capsule, kOp, "keys");
  const rkv::DeviceTokens x = quantize_input(t, bits, group, kOp, "keys");
  RK_CHECK_ARG(x.tokens <= INT32_MAX, kOp, ": at most 2^31 - 1 tokens (int32 block offsets), got ", x.tokens);
  const int device = t.device.device_id;
  const int64_t batch = t.shape[0], heads = t.shape[1], blocks = (x.tokens + group - 1) / group;
  void *codes = nullptr, *scale = nullptr, *minimum = nullptr, *offsets = nullptr;
  py::capsule codes_cap =
      new_device_array({batch, heads, x.tokens, rkv::packed_bytes(x.dim, bits)}, kUint8, device, &codes);
  py::capsule scale_cap = new_device_array({batch, heads, blocks, x.dim}, kHalf, device, &scale);
  py::capsule minimum_cap = new_device_array({batch, heads, blocks, x.dim}, kHalf, device, &minimum);
  py::capsule offsets_cap = new_device_array({batch, heads, blocks + 1}, kInt32, device, &offsets);
  run_quantize(x, true, group, kOp, [&](unsigned long long* error) {
    return rkv::quantize_keys(x, bits, group, static_cast<uint8_t*>(codes), static_cast<uint16_t*>(scale),
                              static_cast<uint16_t*>(minimum), static_cast<int32_t*>(offsets), error, nullptr);
  });
  return py::make_tuple(codes_cap, scale_cap, minimum_cap, offsets_cap);
}

py::tuple kv_quantize_values(py::handle values_obj, int bits, int group) {
  constexpr const char* kOp = "quantize_values";
  py::object capsule;
  const RkDLTensor& t = borrow(values_obj, capsule, kOp, "values");
  const rkv::DeviceTokens x = quantize_input(t, bits, group, kOp, "values");
  const int device = t.device.device_id;
  const int64_t batch = t.shape[0], heads = t.shape[1], groups = (x.dim + group - 1) / group;
  void *codes = nullptr, *scale = nullptr, *minimum = nullptr;
  py::capsule codes_cap =
      new_device_array({batch, heads, x.tokens, rkv::packed_bytes(x.dim, bits)}, kUint8, device, &codes);
  py::capsule scale_cap = new_device_array({batch, heads, x.tokens, groups}, kHalf, device, &scale);
  py::capsule minimum_cap = new_device_array({batch, heads, x.tokens, groups}, kHalf, device, &minimum);
  run_quantize(x, false, group, kOp, [&](unsigned long long* error) {
    return rkv::quantize_values(x, bits, group, static_cast<uint8_t*>(codes), static_cast<uint16_t*>(scale),
                                static_cast<uint16_t*>(minimum), error, nullptr);
  });
  return py::make_tuple(codes_cap, scale_cap, minimum_cap);
}

// The packed keys of `batch` x `heads` streams (bind_kv.cpp's packed_keys;
// the offsets' values are checked on the device).
rkv::DevicePackedKeys kv_packed_keys(const RkDLTensor& codes, const RkDLTensor& scale, const RkDLTensor& minimum,
                                     const RkDLTensor& offsets, int bits, int device, const char* op) {
  check_kv_bits(bits, op);
  RK_CHECK_ARG(codes.ndim == 4, op, ": key codes must be 4-D [batch, heads, tokens, bytes], got ", describe(codes));
  RK_CHECK_ARG(offsets.ndim == 3, op, ": key offsets must be 3-D [batch, heads, blocks + 1], got ",
               describe(offsets));
  rkv::DevicePackedKeys k;
  const int64_t batch = codes.shape[0], heads = codes.shape[1];
  k.tokens = codes.shape[2];
  k.blocks = offsets.shape[2] - 1;
  k.bits = bits;
  RK_CHECK_ARG(k.blocks >= 0, op, ": key offsets need at least one entry per stream");
  RK_CHECK_ARG(scale.ndim == 4, op, ": key scale must be 4-D [batch, heads, blocks, dim], got ", describe(scale));
  k.dim = scale.shape[3];
  k.codes = static_cast<const uint8_t*>(kv_packed(
      codes, kUint8, "uint8", {batch, heads, k.tokens, rkv::packed_bytes(k.dim, bits)}, device, op, "key codes"));
  k.scale = static_cast<const uint16_t*>(
      kv_packed(scale, kHalf, "float16", {batch, heads, k.blocks, k.dim}, device, op, "key scale"));
  k.minimum = static_cast<const uint16_t*>(
      kv_packed(minimum, kHalf, "float16", {batch, heads, k.blocks, k.dim}, device, op, "key minimum"));
  k.offsets = static_cast<const int32_t*>(
      kv_packed(offsets, kInt32, "int32", {batch, heads, k.blocks + 1}, device, op, "key offsets"));
  return k;
}

rkv::DevicePackedValues kv_packed_values(const RkDLTensor& codes, const RkDLTensor& scale,
                                         const RkDLTensor& minimum, int bits, int group, int64_t dim, int device,
                                         const char* op) {
  check_kv_bits(bits, op);
  check_kv_group(group, op);
  RK_CHECK_ARG(codes.ndim == 4, op, ": value codes must be 4-D [batch, heads, tokens, bytes], got ",
               describe(codes));
  rkv::DevicePackedValues v;
  const int64_t batch = codes.shape[0], heads = codes.shape[1], groups = (dim + group - 1) / group;
  v.tokens = codes.shape[2];
  v.dim = dim;
  v.bits = bits;
  v.group = group;
  v.codes = static_cast<const uint8_t*>(kv_packed(
      codes, kUint8, "uint8", {batch, heads, v.tokens, rkv::packed_bytes(dim, bits)}, device, op, "value codes"));
  v.scale = static_cast<const uint16_t*>(
      kv_packed(scale, kHalf, "float16", {batch, heads, v.tokens, groups}, device, op, "value scale"));
  v.minimum = static_cast<const uint16_t*>(
      kv_packed(minimum, kHalf, "float16", {batch, heads, v.tokens, groups}, device, op, "value minimum"));
  return v;
}

// The CPU op's ValueError for bad key offsets (the device found some): the
// offsets are copied back and checked by csrc's check_key_offsets.
[[noreturn]] void raise_bad_key_offsets(const rkv::DevicePackedKeys& keys, int64_t streams, const char* op) {
  std::vector<int32_t> host(static_cast<size_t>(streams * (keys.blocks + 1)));
  check_cuda(cudaMemcpy(host.data(), keys.offsets, host.size() * sizeof(int32_t), cudaMemcpyDeviceToHost), op);
  ragkernels::kv::PackedKeys k;
  k.offsets = host.data();
  k.streams = streams;
  k.tokens = keys.tokens;
  k.blocks = keys.blocks;
  ragkernels::kv::check_key_offsets(k);
  throw ValueError(std::string(op) + ": bad key block offsets");  // the device and the CPU check disagree
}

// Residual keys / values and mask checked against the query and cache (bind_kv.cpp's order and messages).
void kv_attention_extras(rkv::DeviceDecodeAttention& a, const RkDLTensor& q, const RkDLTensor& rk,
                         const RkDLTensor& rv, py::handle mask_obj, py::object& mask_capsule, const char* op) {
  const int device = q.device.device_id;
  const int64_t dim = a.keys.dim;
  a.residual_keys = kv_tokens(rk, op, "residual_keys");
  a.residual_values = kv_tokens(rv, op, "residual_values");
  for (const RkDLTensor* r : {&rk, &rv}) {
    RK_CHECK_ARG(r->shape[0] == a.batch && r->shape[1] == a.kv_heads && r->shape[3] == dim &&
                     r->shape[2] == rk.shape[2],
                 op, ": residual keys and values must both be (", a.batch, ", ", a.kv_heads, ", tokens, ", dim,
                 "), got ", describe(rk), " and ", describe(rv));
    RK_CHECK_TYPE(r->dtype.code == q.dtype.code && r->dtype.bits == q.dtype.bits, op,
                  ": query, residual_keys and residual_values must share one dtype");
    RK_CHECK_ARG(r->device.device_id == device, op, ": the residual tensors must be on the query's device cuda:",
                 device);
  }
  const int64_t length = a.keys.tokens + a.residual_keys.tokens;
  RK_CHECK_ARG(length >= 1, op, ": the cache is empty (no token to attend to)");
  if (mask_obj.is_none()) return;
  const RkDLTensor& m = borrow(mask_obj, mask_capsule, op, "mask");
  a.mask_per_head = m.ndim == 3;
  a.mask = static_cast<const float*>(a.mask_per_head
                                         ? kv_packed(m, kFloat32, "float32", {a.batch, a.kv_heads, length}, device,
                                                     op, "mask")
                                         : kv_packed(m, kFloat32, "float32", {a.batch, length}, device, op, "mask"));
}

py::capsule kv_decode_attention(py::handle query_obj, py::handle key_codes_obj, py::handle key_scale_obj,
                                py::handle key_minimum_obj, py::handle key_offsets_obj, int key_bits,
                                py::handle value_codes_obj, py::handle value_scale_obj,
                                py::handle value_minimum_obj, int value_bits, int value_group,
                                py::handle residual_keys_obj, py::handle residual_values_obj, py::handle mask_obj,
                                double scaling) {
  constexpr const char* kOp = "decode_attention";
  py::object caps[11];
  const RkDLTensor& q = borrow(query_obj, caps[0], kOp, "query");
  const int device = q.device.device_id;
  rkv::DeviceDecodeAttention a;
  a.query = kv_tokens(q, kOp, "query");
  RK_CHECK_ARG(a.query.tokens == 1, kOp, ": query must hold one token per head (decoding), got ", describe(q));
  const RkDLTensor& kc = borrow(key_codes_obj, caps[1], kOp, "key codes");
  a.keys = kv_packed_keys(kc, borrow(key_scale_obj, caps[2], kOp, "key scale"),
                          borrow(key_minimum_obj, caps[3], kOp, "key minimum"),
                          borrow(key_offsets_obj, caps[4], kOp, "key offsets"), key_bits, device, kOp);
  a.batch = kc.shape[0];
  a.kv_heads = kc.shape[1];
  a.q_heads = q.shape[1];
  const int64_t dim = a.keys.dim;
  RK_CHECK_ARG(q.shape[0] == a.batch && q.shape[3] == dim, kOp, ": query must be (", a.batch, ", heads, 1, ", dim,
               ") to match the keys, got ", describe(q));
  RK_CHECK_ARG(a.kv_heads >= 1 && a.q_heads % a.kv_heads == 0, kOp, ": the query's ", a.q_heads,
               " heads must be a multiple of the cache's ", a.kv_heads, " key/value heads");
  const RkDLTensor& vc = borrow(value_codes_obj, caps[5], kOp, "value codes");
  a.values = kv_packed_values(vc, borrow(value_scale_obj, caps[6], kOp, "value scale"),
                              borrow(value_minimum_obj, caps[7], kOp, "value minimum"), value_bits, value_group, dim,
                              device, kOp);
  RK_CHECK_ARG(vc.shape[0] == a.batch && vc.shape[1] == a.kv_heads && a.values.tokens == a.keys.tokens, kOp,
               ": value codes must cover the keys' ", a.batch, " x ", a.kv_heads, " streams of ", a.keys.tokens,
               " tokens, got ", describe(vc));
  kv_attention_extras(a, q, borrow(residual_keys_obj, caps[8], kOp, "residual_keys"),
                      borrow(residual_values_obj, caps[9], kOp, "residual_values"), mask_obj, caps[10], kOp);
  a.scaling = static_cast<float>(scaling);
  check_cuda(cudaSetDevice(device), kOp);
  int shared_limit = 0;
  check_cuda(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), kOp);
  const size_t shared = rkv::decode_attention_shared_bytes(a);
  RK_CHECK_ARG(shared <= static_cast<size_t>(shared_limit), kOp, ": head_dim ", dim, " needs ", shared,
               " bytes of shared memory per block, more than this GPU's ", shared_limit);
  void* out = nullptr;
  py::capsule out_cap = new_device_array({a.batch, a.q_heads, dim}, kFloat32, device, &out);
  a.out = static_cast<float*>(out);
  DeviceScratch workspace(rkv::decode_attention_workspace_bytes(a), kOp);
  DeviceScratch error(sizeof(unsigned long long), kOp);
  auto* word = static_cast<unsigned long long*>(error.data);
  unsigned long long found = rkv::kNoError;
  cudaError_t status;
  {
    py::gil_scoped_release nogil;
    status = cudaMemsetAsync(word, 0xff, sizeof found, nullptr);  // kNoError
    if (status == cudaSuccess) status = rkv::decode_attention(a, workspace.data, word, nullptr);
    if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
    if (status == cudaSuccess) status = cudaMemcpy(&found, word, sizeof found, cudaMemcpyDeviceToHost);
  }
  check_cuda(status, kOp);
  if (found != rkv::kNoError) raise_bad_key_offsets(a.keys, a.batch * a.kv_heads, kOp);
  return out_cap;
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
  m.def("dense_gemm_available", &rkd::gemm_available,
        "True when the batched (cuBLAS GEMM + top-k) path of dense_search was built");
  m.def("dense_search", &dense_search, py::arg("queries"), py::arg("docs"), py::arg("k"), py::arg("metric") = "ip",
        py::arg("row_scale") = py::none(), py::arg("row_offset") = py::none(), py::arg("use_gemm") = py::none(),
        py::arg("check_finite_docs") = true,
        "Exact top-k of docs for each query (csrc/dense/flat_search.h scores and order). queries: CUDA\n"
        "float32 (nq, dim); docs: CUDA float32/float16/int8 (n, dim); row_scale / row_offset: CUDA float32\n"
        "(n,) or None (from dense_row_terms). use_gemm: None picks the cuBLAS GEMM path for nq >= 8 when\n"
        "built. Returns (ids int64 (nq, k), scores float32 (nq, k)) as DLPack capsules, padded -1 / -inf.");
  m.def("dense_row_terms", &dense_row_terms, py::arg("docs"), py::arg("metric") = "ip",
        py::arg("int8_scales") = py::none(),
        "Per-doc (row_scale, row_offset) of `metric` for dense_search, each a CUDA float32 (n,) capsule or\n"
        "None where the metric needs none.");
  m.def("maxsim", &maxsim, py::arg("queries"), py::arg("query_offsets"), py::arg("documents"),
        py::arg("doc_offsets"), py::arg("scales"), py::arg("candidates"),
        "MaxSim scores (csrc/rerank/maxsim.h semantics) of ragged CUDA token matrices. queries: float32\n"
        "(Tq, dim); query_offsets: int64 (Q + 1,); documents: float32/float16/int8 (T, dim); doc_offsets:\n"
        "int64 (N + 1,); scales: float32 (T,) for int8 documents, else None; candidates: int64 (Q, C), -1 =\n"
        "empty slot. Returns float32 (Q, C) scores as a DLPack capsule on the same device.");
  m.def("kv_quantize_keys", &kv_quantize_keys, py::arg("keys"), py::arg("bits"), py::arg("group_size"),
        "quantize_keys (csrc/kv/quantize.h, the same bits) of a CUDA float32/float16/bfloat16 tensor\n"
        "[batch, heads, tokens, dim] (strided, channels contiguous). Returns (codes uint8, scale float16,\n"
        "minimum float16, offsets int32) as DLPack capsules on its device.");
  m.def("kv_quantize_values", &kv_quantize_values, py::arg("values"), py::arg("bits"), py::arg("group_size"),
        "quantize_values (csrc/kv/quantize.h, the same bits) of a CUDA float32/float16/bfloat16 tensor\n"
        "[batch, heads, tokens, dim]. Returns (codes uint8, scale float16, minimum float16) capsules.");
  m.def("kv_decode_attention", &kv_decode_attention, py::arg("query"), py::arg("key_codes"), py::arg("key_scale"),
        py::arg("key_minimum"), py::arg("key_offsets"), py::arg("key_bits"), py::arg("value_codes"),
        py::arg("value_scale"), py::arg("value_minimum"), py::arg("value_bits"), py::arg("value_group_size"),
        py::arg("residual_keys"), py::arg("residual_values"), py::arg("mask"), py::arg("scaling"),
        "decode_attention (csrc/kv/decode_attention.h semantics) over CUDA packed keys/values, residual\n"
        "tokens and an optional float32 mask [batch, tokens] or [batch, kv_heads, tokens]. Returns float32\n"
        "[batch, q_heads, head_dim] as a DLPack capsule.");
  py::class_<TrieMask>(m, "TrieMask", "A ragkernels.spec.Trie's mask arrays on one device (use the Trie).")
      .def(py::init<const py::array_t<int64_t, py::array::c_style>&, const py::array_t<int32_t, py::array::c_style>&,
                    const py::array_t<uint8_t, py::array::c_style>&, int64_t, int>(),
           py::arg("row_ptr"), py::arg("tokens"), py::arg("terminal"), py::arg("vocab_size"), py::arg("device"))
      .def("mask_logits", &TrieMask::mask_logits, py::arg("states"), py::arg("logits"), py::arg("eos"),
           "Trie.mask_logits on a CUDA float32/float16/bfloat16 (rows, width) tensor, in place; states: host\n"
           "int32 (rows,) in [-1, num_nodes).");
}
