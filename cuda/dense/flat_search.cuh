// Exact dense search on the GPU: the CUDA mirror of csrc/dense/flat_search.h.
//
// Same scores as the CPU op, one formula for every metric:
//
//   score(q, i) = (dot(q, row_i) * row_scale[i] + row_offset[i]) * query_scale(q) + query_offset(q)
//
//   inner product  row_scale = int8 scale (else 1)             query: 1, 0
//   cosine         row_scale = 1 / |row| (0 for a zero row)    query: 1/|q| (0 for a zero q), 0
//   L2             row_scale = 2 * int8 scale, offset -|row|^2 query: 1, -|q|^2
//
// (row_scale / row_offset: nullptr means 1 / 0; `row_terms` below computes
// them on the device.) L2 reports the negative squared distance, so higher is
// better for every metric. Order: higher score first, ties -> lower row id; a
// NaN score ranks as -inf and is reported as -inf. Padding: id -1, score -inf
// when k > rows. Dots accumulate in float32 (float16 / int8 rows are widened
// exactly), so scores equal the CPU op's up to float32 summation order.
//
// Two paths, chosen by the caller (`use_gemm`):
//  - scan (any batch, the default for a few queries): one block scores a chunk
//    of kScanChunk rows for one query (a warp per row, coalesced loads) into
//    shared memory, selects the chunk's top-k there (radix select on packed
//    (score, id) keys), and writes only those k candidates; a second kernel
//    selects the query's k best among all chunks' candidates. The score
//    matrix never reaches global memory.
//  - GEMM (when built with cuBLAS): queries in batches, the corpus in tiles;
//    each (batch, tile) is one cuBLAS SGEMM into a bounded scratch (float16 /
//    int8 tiles are widened to float32 first, exactly), then one block per
//    query keeps a running top-k: radix select over (running k) + (tile).
// Both end with a per-query sort of the k keys. Any k works: selection is a
// radix select, not a heap with a size cap; the final sort is a shared-memory
// bitonic sort up to 4096 and a rank-by-counting pass above.
//
// Raw device pointers (row-major, contiguous), a workspace and a stream; no
// framework types.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ragkernels::cuda::dense {

// Same values as ragkernels::dense::Metric / Storage (csrc/dense/flat_search.h).
enum class Metric : int { kInnerProduct = 0, kCosine = 1, kL2 = 2 };
enum class Storage : int { kFloat32 = 0, kFloat16 = 1, kInt8 = 2 };

struct DeviceFlatVectors {
  Storage storage = Storage::kFloat32;
  Metric metric = Metric::kInnerProduct;
  int64_t rows = 0;  // < 2^32 - 1
  int64_t dim = 0;   // >= 1
  const void* data = nullptr;           // rows x dim, row-major
  const float* row_scale = nullptr;     // (rows,) or nullptr (1)
  const float* row_offset = nullptr;    // (rows,) or nullptr (0)
};

// True when this build links cuBLAS (the GEMM path exists).
bool gemm_available();

// Bytes of device workspace `search` needs for these sizes and path.
size_t search_workspace_bytes(const DeviceFlatVectors& vectors, int64_t n_queries, int64_t k, bool use_gemm);

// queries: (n_queries, dim) float32, finite. ids: (n_queries, k) int64,
// scores: (n_queries, k) float32, both written. k >= 1. use_gemm needs
// gemm_available(); its cuBLAS handle is made once per device and kept (calls
// on the GEMM path are serialized by a mutex). Returns "" on success, else an
// error message; kernels are queued on `stream` and not synchronized.
std::string search(const DeviceFlatVectors& vectors, const float* queries, int64_t n_queries, int64_t k,
                   int64_t* ids, float* scores, void* workspace, size_t workspace_bytes, bool use_gemm,
                   cudaStream_t stream);

// The per-row terms of `vectors.metric` (see the table above) from the stored
// rows; int8_scales: (rows,) for int8 storage, else nullptr. Writes
// row_scale / row_offset (each (rows,) float32) where the metric needs them;
// sets *wrote_scale / *wrote_offset accordingly.
cudaError_t row_terms(const DeviceFlatVectors& vectors, const float* int8_scales, float* row_scale,
                      float* row_offset, bool* wrote_scale, bool* wrote_offset, cudaStream_t stream);

// Writes 1 to *device_flag when any of `count` elements (float32 or float16)
// is NaN or inf; *device_flag must be 0 before the call.
cudaError_t any_non_finite(const void* data, Storage storage, int64_t count, int* device_flag,
                           cudaStream_t stream);

}  // namespace ragkernels::cuda::dense
