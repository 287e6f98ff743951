// Exact dense search on the GPU; the contract is in flat_search.cuh.
#include "dense/flat_search.cuh"

#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>
#include <vector>

#ifdef RAGKERNELS_CUDA_CUBLAS
#include <cublas_v2.h>
#endif

namespace ragkernels::cuda::dense {
namespace {

using Key = unsigned long long;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kScanChunk = 2048;           // rows per scan block: 16 KiB of keys in shared memory
// Longer queries are read from global memory (L1): 16 KiB of keys + 16 KiB
// of query + ~1 KiB of selection state stay under the 48 KiB default.
constexpr int64_t kMaxSharedQueryDim = 4096;
constexpr int64_t kBitonicMax = 4096;          // k sorted in shared memory (32 KiB) up to this
constexpr int64_t kScanCandidateKeys = int64_t(1) << 25;  // 256 MiB of chunk candidates per pass
constexpr int64_t kGemmTileFloats = int64_t(1) << 25;     // 128 MiB of GEMM scores per tile
constexpr int64_t kGemmQueryBatch = 2048;
constexpr int64_t kMaxGridY = 65535;

// ---------------------------------------------------------------- keys ----
// A (score, row) pair packed so that a larger word is a better pair: the
// monotone image of the float in the high half (NaN -> -inf, as the CPU op
// ranks it; -0.0 -> +0.0), the complemented row id in the low half (ties ->
// lower id). The high half of any score is >= 0x007FFFFF, so 0 never is a
// key and marks an empty slot.
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ Key pack(float score, int64_t row) {
  if (score != score) score = neg_inf();
  if (score == 0.0f) score = 0.0f;
  const uint32_t bits = __float_as_uint(score);
  const uint32_t mono = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (Key(mono) << 32) | Key(0xFFFFFFFFu - static_cast<uint32_t>(row));
}

__device__ __forceinline__ float key_score(Key key) {
  const uint32_t mono = static_cast<uint32_t>(key >> 32);
  return __uint_as_float((mono & 0x80000000u) ? (mono & 0x7FFFFFFFu) : ~mono);
}

__device__ __forceinline__ int64_t key_row(Key key) {
  return int64_t(0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu));
}

// The CPU op's epilogue (csrc/dense/flat_search.cpp, offer()), with the
// same explicit fmas so that equal dots give equal scores.
__device__ __forceinline__ float finish(float dot, const DeviceFlatVectors& v, int64_t row, float q_scale,
                                        float q_offset) {
  float s = dot;
  if (v.row_offset != nullptr) {
    s = fmaf(s, v.row_scale != nullptr ? v.row_scale[row] : 1.0f, v.row_offset[row]);
  } else if (v.row_scale != nullptr) {
    s *= v.row_scale[row];
  }
  return fmaf(s, q_scale, q_offset);
}

// ------------------------------------------------------------- dot ------
__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(__half x) { return __half2float(x); }
__device__ __forceinline__ float widen(int8_t x) { return static_cast<float>(x); }

// One warp: dot(rows[u], q) in float32 for R rows at once (their loads are
// in flight together: a warp per single row keeps too few bytes moving for a
// float16 or int8 corpus). R = 2 for float32 rows, 4 for the narrower ones
// (4 float32 rows would spill registers). `vec`: rows and q are 16-byte aligned and
// dim * sizeof(T) is a multiple of 16, so each lane loads 16 bytes at once.
// Per row: lane partial sums in a fixed order, then a butterfly, so a fixed
// result whatever the batch or the neighbours.
template <typename T>
struct RowsPerWarp {
  static constexpr int value = sizeof(T) == 4 ? 2 : 4;
};

template <typename T, int kRows>
__device__ __forceinline__ void warp_dots(const T* const (&rows)[kRows], const float* q, int64_t dim, bool vec,
                                          int lane, float (&acc)[kRows]) {
#pragma unroll
  for (int u = 0; u < kRows; ++u) acc[u] = 0.0f;
  int64_t tail = 0;
  if (vec) {
    constexpr int kVec = 16 / sizeof(T);
    const int64_t n_vec = dim / kVec;
    for (int64_t i = lane; i < n_vec; i += 32) {
      uint4 raw[kRows];
#pragma unroll
      for (int u = 0; u < kRows; ++u) raw[u] = __ldg(reinterpret_cast<const uint4*>(rows[u]) + i);
      const float4* qv = reinterpret_cast<const float4*>(q + i * kVec);
#pragma unroll
      for (int t = 0; t < kVec / 4; ++t) {
        const float4 w = qv[t];
#pragma unroll
        for (int u = 0; u < kRows; ++u) {
          const T* e = reinterpret_cast<const T*>(&raw[u]);
          acc[u] = fmaf(widen(e[4 * t + 0]), w.x, acc[u]);
          acc[u] = fmaf(widen(e[4 * t + 1]), w.y, acc[u]);
          acc[u] = fmaf(widen(e[4 * t + 2]), w.z, acc[u]);
          acc[u] = fmaf(widen(e[4 * t + 3]), w.w, acc[u]);
        }
      }
    }
    tail = n_vec * kVec;
  }
  for (int64_t i = tail + lane; i < dim; i += 32) {
    const float w = q[i];
#pragma unroll
    for (int u = 0; u < kRows; ++u) acc[u] = fmaf(widen(rows[u][i]), w, acc[u]);
  }
#pragma unroll
  for (int u = 0; u < kRows; ++u) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) acc[u] += __shfl_xor_sync(0xffffffffu, acc[u], offset);
  }
}

// -------------------------------------------------------- selection ----
// Block-wide radix select of the k largest of m unique keys (0 = empty,
// never selected), read through src(j). MSB first, 8 bits a pass, over the
// keys that share the digits fixed so far; stops as soon as every key with
// that prefix is needed (usually after the 3-4 passes that separate the
// scores; ties are separated by the id bits). Writes min(k, #keys) keys to
// out[0..) in no order and zeros to the rest of out[0..k). `out` must not
// alias what src reads. Returns (to every thread) how many keys it kept and
// a lower bound of them (the fixed prefix): with k kept, no key below that
// bound can enter the top k later.
struct Selected {
  Key floor;
  int64_t count;
};

template <typename Source>
__device__ Selected block_select(const Source& src, int64_t m, int64_t k, Key* out) {
  __shared__ unsigned int hist[256];
  __shared__ Key s_prefix, s_mask;
  __shared__ long long s_need;
  __shared__ int s_done;
  __shared__ unsigned long long s_count;
  if (threadIdx.x == 0) {
    s_prefix = 0;
    s_mask = 0;
    s_need = k;
    s_done = 0;
    s_count = 0;
  }
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    const Key prefix = s_prefix, mask = s_mask;
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
      const Key key = src(j);
      if (key != 0 && (key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xFF], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const long long need = s_need;
      long long above = 0;
      int digit = -1;
      for (int b = 255; b >= 0; --b) {
        if (above + hist[b] >= need) {
          digit = b;
          break;
        }
        above += hist[b];
      }
      if (digit < 0) {
        s_done = 1;  // first pass only: fewer than k keys in all; take every one
      } else {
        s_need = need - above;
        s_prefix = prefix | (Key(digit) << shift);
        s_mask = mask | (Key(0xFF) << shift);
        if (hist[digit] == s_need) s_done = 1;  // all keys with this prefix are needed
      }
    }
    __syncthreads();
    if (s_done) break;
  }
  // Taken: the keys whose fixed digits are >= the prefix (exactly k of them,
  // or all keys when there are fewer).
  const Key prefix = s_prefix, mask = s_mask;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const Key key = src(j);
    if (key != 0 && (key & mask) >= prefix) {
      const unsigned long long at = atomicAdd(&s_count, 1ull);
      if (at < static_cast<unsigned long long>(k)) out[at] = key;  // < k unless keys repeat (an invariant)
    }
  }
  __syncthreads();
  const int64_t kept = static_cast<int64_t>(min(s_count, static_cast<unsigned long long>(k)));
  for (int64_t j = kept + threadIdx.x; j < k; j += blockDim.x) out[j] = 0;
  return {prefix, kept};
}

struct ArrayKeys {
  const Key* keys;
  __device__ Key operator()(int64_t j) const { return keys[j]; }
};

#ifdef RAGKERNELS_CUDA_CUBLAS
// The running top-k of one query (k slots) followed by one GEMM tile of its
// dot products, turned into keys on the fly.
struct TileKeys {
  const Key* best;
  const float* dots;  // tile_rows dots of this query
  DeviceFlatVectors v;
  int64_t k, row0;
  float q_scale, q_offset;
  __device__ Key operator()(int64_t j) const {
    if (j < k) return best[j];
    const int64_t row = row0 + (j - k);
    const Key key = pack(finish(dots[j - k], v, row, q_scale, q_offset), row);
    return key >= floor ? key : 0;  // below the floor: cannot enter, as if empty
  }
  Key floor;
};

// The running top-k followed by the tile keys that passed the floor, kept
// in shared memory.
struct SurvivorKeys {
  const Key* best;
  const Key* survivors;
  int64_t k;
  __device__ Key operator()(int64_t j) const { return j < k ? best[j] : survivors[j - k]; }
};

// Tile keys kept in shared memory when at most this many pass the floor
// (32 KiB): after the first tiles almost none do, and the selection then
// reads the tile once instead of once per radix pass.
constexpr int kSurvivorCapacity = 4096;
#endif

// ---------------------------------------------------------- kernels ----
__global__ void query_terms_kernel(const float* queries, int64_t n_queries, int64_t dim, Metric metric,
                                   float* q_scale, float* q_offset) {
  const int64_t q = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (q >= n_queries) return;
  double s = 0;  // double, as the CPU op: the float terms then round alike
  for (int64_t i = lane; i < dim; i += 32) {
    const double x = queries[q * dim + i];
    s += x * x;
  }
  for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
  if (lane == 0) {
    q_scale[q] = metric == Metric::kCosine ? (s > 0 ? float(1.0 / sqrt(s)) : 0.0f) : 1.0f;
    q_offset[q] = metric == Metric::kL2 ? float(-s) : 0.0f;
  }
}

template <typename T>
__global__ void row_terms_kernel(const T* data, int64_t rows, int64_t dim, Metric metric, const float* int8_scales,
                                 float* row_scale, float* row_offset) {
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  double s = 0;
  if (metric != Metric::kInnerProduct) {
    for (int64_t i = lane; i < dim; i += 32) {
      const double x = widen(data[r * dim + i]);
      s += x * x;
    }
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
  }
  if (lane != 0) return;
  const double scale = int8_scales != nullptr ? double(int8_scales[r]) : 1.0;
  const double norm2 = s * scale * scale;
  switch (metric) {  // csrc/dense/flat_search.cpp, row_terms()
    case Metric::kInnerProduct:
      row_scale[r] = float(scale);
      break;
    case Metric::kCosine:
      row_scale[r] = norm2 > 0 ? float(scale / sqrt(norm2)) : 0.0f;
      break;
    case Metric::kL2:
      row_scale[r] = float(2.0 * scale);
      row_offset[r] = float(-norm2);
      break;
  }
}

__global__ void non_finite_f32_kernel(const float* data, int64_t count, int* flag) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    if (!isfinite(data[i])) *flag = 1;
}

__global__ void non_finite_f16_kernel(const uint16_t* data, int64_t count, int* flag) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    if ((data[i] & 0x7C00u) == 0x7C00u) *flag = 1;  // binary16 exponent all ones: inf or NaN
}

// Scan: block (chunk, query). Scores kScanChunk rows into shared keys, then
// keeps the chunk's best k_chunk as candidates (the rest never leave).
template <typename T>
__global__ void __launch_bounds__(kThreads) scan_kernel(DeviceFlatVectors v, const float* queries,
                                                        const float* q_scale, const float* q_offset,
                                                        int64_t k_chunk, int64_t n_chunks, Key* candidates,
                                                        bool vec, bool shared_query) {
  extern __shared__ float4 shared[];
  Key* keys = reinterpret_cast<Key*>(shared);
  const int64_t chunk = blockIdx.x, q = blockIdx.y;
  const float* query = queries + q * v.dim;
  if (shared_query) {
    float* copy = reinterpret_cast<float*>(keys + kScanChunk);
    for (int64_t i = threadIdx.x; i < v.dim; i += blockDim.x) copy[i] = query[i];
    query = copy;
    __syncthreads();
  }
  const int64_t row0 = chunk * kScanChunk;
  const int64_t count = min(kScanChunk, v.rows - row0);
  const T* data = static_cast<const T*>(v.data);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float qs = q_scale[q], qo = q_offset[q];
  // Warp w scores rows w, w + kWarps, ... kRows at a time; a row past the
  // chunk's end reads the last row again and its result is dropped.
  constexpr int kRows = RowsPerWarp<T>::value;
  for (int64_t r = warp; r < count; r += kWarps * kRows) {
    const T* rows[kRows];
#pragma unroll
    for (int u = 0; u < kRows; ++u) rows[u] = data + (row0 + min(r + u * kWarps, count - 1)) * v.dim;
    float dots[kRows];
    warp_dots(rows, query, v.dim, vec, lane, dots);
    if (lane == 0) {
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        const int64_t local = r + u * kWarps;
        if (local < count) keys[local] = pack(finish(dots[u], v, row0 + local, qs, qo), row0 + local);
      }
    }
  }
  __syncthreads();
  block_select(ArrayKeys{keys}, count, k_chunk, candidates + (q * n_chunks + chunk) * k_chunk);
}

// One block per query: its k best among m candidate keys.
__global__ void __launch_bounds__(kThreads) merge_kernel(const Key* candidates, int64_t m, int64_t k, Key* best) {
  const int64_t q = blockIdx.x;
  block_select(ArrayKeys{candidates + q * m}, m, k, best + q * k);
}

__device__ __forceinline__ void emit(Key key, int64_t* id, float* score) {
  *id = key != 0 ? key_row(key) : -1;
  *score = key != 0 ? key_score(key) : neg_inf();
}

// One block per query: sorts its k_eff keys, best first, writes k outputs
// (padding past k_eff). Bitonic sort in shared memory for k_eff <= 4096;
// above, each key's place is the number of larger keys (keys are unique).
__global__ void __launch_bounds__(kThreads) finish_kernel(const Key* best, int64_t k_eff, int64_t k, int64_t* ids,
                                                          float* scores) {
  extern __shared__ Key sorted[];
  __shared__ unsigned long long s_valid;
  const int64_t q = blockIdx.x;
  const Key* in = best + q * k_eff;
  int64_t* out_ids = ids + q * k;
  float* out_scores = scores + q * k;
  if (k_eff == 0) {  // no rows at all
    for (int64_t r = threadIdx.x; r < k; r += blockDim.x) emit(0, out_ids + r, out_scores + r);
    return;
  }
  if (k_eff <= kBitonicMax) {
    int64_t p = 1;
    while (p < k_eff) p <<= 1;
    for (int64_t i = threadIdx.x; i < p; i += blockDim.x) sorted[i] = i < k_eff ? in[i] : 0;
    __syncthreads();
    for (int64_t size = 2; size <= p; size <<= 1) {
      for (int64_t stride = size / 2; stride > 0; stride >>= 1) {
        for (int64_t i = threadIdx.x; i < p; i += blockDim.x) {
          const int64_t j = i ^ stride;
          if (j > i) {
            const Key a = sorted[i], b = sorted[j];
            if ((i & size) == 0 ? a < b : a > b) {  // descending overall
              sorted[i] = b;
              sorted[j] = a;
            }
          }
        }
        __syncthreads();
      }
    }
    for (int64_t r = threadIdx.x; r < k; r += blockDim.x)
      emit(r < k_eff ? sorted[r] : 0, out_ids + r, out_scores + r);
    return;
  }
  if (threadIdx.x == 0) s_valid = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < k_eff; i += blockDim.x) {
    const Key key = in[i];
    if (key == 0) continue;
    atomicAdd(&s_valid, 1ull);
    int64_t rank = 0;
    for (int64_t j = 0; j < k_eff; ++j) rank += in[j] > key;
    emit(key, out_ids + rank, out_scores + rank);
  }
  __syncthreads();
  for (int64_t r = static_cast<int64_t>(s_valid) + threadIdx.x; r < k; r += blockDim.x)
    emit(0, out_ids + r, out_scores + r);
}

// ------------------------------------------------------------ host ------
unsigned blocks_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned>(std::min<int64_t>((items + per_block - 1) / per_block, int64_t(1) << 30));
}

// Workspace layout shared by search_workspace_bytes and search.
struct Plan {
  int64_t k_eff = 0;
  // scan
  int64_t k_chunk = 0, n_chunks = 0, scan_batch = 0;
  // gemm
  int64_t gemm_batch = 0, tile_rows = 0;
  size_t q_terms = 0, keys_a = 0, keys_b = 0, floors = 0, tile = 0, widened = 0, total = 0;
};

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

Plan make_plan(const DeviceFlatVectors& v, int64_t nq, int64_t k, bool use_gemm) {
  Plan p;
  p.k_eff = std::min(k, v.rows);
  size_t offset = aligned(sizeof(float) * 2 * std::max<int64_t>(nq, 1));
  p.q_terms = 0;
  if (p.k_eff == 0 || nq == 0) {
    p.total = offset;
    return p;
  }
  if (!use_gemm) {
    p.k_chunk = std::min(p.k_eff, kScanChunk);
    p.n_chunks = (v.rows + kScanChunk - 1) / kScanChunk;
    const int64_t per_query = p.n_chunks * p.k_chunk;
    p.scan_batch = std::max<int64_t>(1, std::min({nq, kMaxGridY, kScanCandidateKeys / per_query}));
    p.keys_a = offset;  // candidates
    offset += aligned(sizeof(Key) * per_query * p.scan_batch);
    p.keys_b = offset;  // best
    offset += aligned(sizeof(Key) * p.k_eff * p.scan_batch);
  } else {
    p.gemm_batch = std::min(nq, kGemmQueryBatch);
    p.tile_rows = std::max<int64_t>(1, std::min(v.rows, kGemmTileFloats / p.gemm_batch));
    // float16 / int8 tiles are widened to float32 first: bound that copy too.
    if (v.storage != Storage::kFloat32)
      p.tile_rows = std::max<int64_t>(1, std::min(p.tile_rows, kGemmTileFloats / v.dim));
    p.keys_a = offset;
    offset += aligned(sizeof(Key) * p.k_eff * p.gemm_batch);
    p.keys_b = offset;
    offset += aligned(sizeof(Key) * p.k_eff * p.gemm_batch);
    p.floors = offset;
    offset += aligned(sizeof(Key) * p.gemm_batch);
    p.tile = offset;
    offset += aligned(sizeof(float) * p.tile_rows * p.gemm_batch);
    p.widened = offset;
    if (v.storage != Storage::kFloat32) offset += aligned(sizeof(float) * p.tile_rows * v.dim);
  }
  p.total = offset;
  return p;
}

size_t finish_shared_bytes(int64_t k_eff) {
  if (k_eff > kBitonicMax) return 0;
  int64_t p = 1;
  while (p < k_eff) p <<= 1;
  return sizeof(Key) * p;
}

template <typename T>
cudaError_t launch_scan(const DeviceFlatVectors& v, const float* queries, int64_t nq, const float* q_scale,
                        const float* q_offset, const Plan& p, Key* candidates, cudaStream_t stream) {
  const bool shared_query = v.dim <= kMaxSharedQueryDim;
  const size_t shared = sizeof(Key) * kScanChunk + (shared_query ? aligned(sizeof(float) * v.dim) : 0);
  const bool vec = reinterpret_cast<uintptr_t>(v.data) % 16 == 0 && reinterpret_cast<uintptr_t>(queries) % 16 == 0 &&
                   (v.dim * sizeof(T)) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(p.n_chunks), static_cast<unsigned>(nq));
  scan_kernel<T><<<grid, kThreads, shared, stream>>>(v, queries, q_scale, q_offset, p.k_chunk, p.n_chunks,
                                                    candidates, vec, shared_query);
  return cudaGetLastError();
}

std::string cuda_message(cudaError_t status) { return std::string("CUDA error: ") + cudaGetErrorString(status); }

std::string search_scan(const DeviceFlatVectors& v, const float* queries, int64_t nq, int64_t k, int64_t* ids,
                        float* scores, const Plan& p, char* ws, const float* q_scale, const float* q_offset,
                        cudaStream_t stream) {
  Key* candidates = reinterpret_cast<Key*>(ws + p.keys_a);
  Key* best = reinterpret_cast<Key*>(ws + p.keys_b);
  const int64_t m = p.n_chunks * p.k_chunk;
  for (int64_t q0 = 0; q0 < nq; q0 += p.scan_batch) {
    const int64_t qb = std::min(p.scan_batch, nq - q0);
    cudaError_t s;
    switch (v.storage) {
      case Storage::kFloat32:
        s = launch_scan<float>(v, queries + q0 * v.dim, qb, q_scale + q0, q_offset + q0, p, candidates, stream);
        break;
      case Storage::kFloat16:
        s = launch_scan<__half>(v, queries + q0 * v.dim, qb, q_scale + q0, q_offset + q0, p, candidates, stream);
        break;
      default:
        s = launch_scan<int8_t>(v, queries + q0 * v.dim, qb, q_scale + q0, q_offset + q0, p, candidates, stream);
        break;
    }
    if (s != cudaSuccess) return cuda_message(s);
    merge_kernel<<<static_cast<unsigned>(qb), kThreads, 0, stream>>>(candidates, m, p.k_eff, best);
    finish_kernel<<<static_cast<unsigned>(qb), kThreads, finish_shared_bytes(p.k_eff), stream>>>(
        best, p.k_eff, k, ids + q0 * k, scores + q0 * k);
    if ((s = cudaGetLastError()) != cudaSuccess) return cuda_message(s);
  }
  return {};
}

#ifdef RAGKERNELS_CUDA_CUBLAS
// One block per query of the batch: running top-k (best_in) + this tile.
// floors[q]: a lower bound of the query's running top-k once it holds k
// keys (else 0); a tile key below it cannot enter and is dropped at once.
__global__ void __launch_bounds__(kThreads) tile_select_kernel(DeviceFlatVectors v, const float* dots,
                                                               int64_t tile_rows, int64_t row0,
                                                               const float* q_scale, const float* q_offset,
                                                               int64_t k, const Key* best_in, Key* best_out,
                                                               Key* floors) {
  __shared__ Key survivors[kSurvivorCapacity];
  __shared__ unsigned long long s_survivors;
  const int64_t q = blockIdx.x;
  const TileKeys tile{best_in + q * k, dots + q * tile_rows, v, k, row0, q_scale[q], q_offset[q], floors[q]};
  if (threadIdx.x == 0) s_survivors = 0;
  __syncthreads();
  for (int64_t j = threadIdx.x; j < tile_rows; j += blockDim.x) {
    const Key key = tile(k + j);
    if (key != 0) {
      const unsigned long long at = atomicAdd(&s_survivors, 1ull);
      if (at < kSurvivorCapacity) survivors[at] = key;
    }
  }
  __syncthreads();
  const int64_t passed = static_cast<int64_t>(s_survivors);
  const Selected kept = passed <= kSurvivorCapacity
                            ? block_select(SurvivorKeys{best_in + q * k, survivors, k}, k + passed, k, best_out + q * k)
                            : block_select(tile, k + tile_rows, k, best_out + q * k);
  if (threadIdx.x == 0 && kept.count == k) floors[q] = kept.floor;
}

template <typename T>
__global__ void widen_kernel(const T* in, int64_t count, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = widen(in[i]);
}

std::string cublas_message(cublasStatus_t status) {
  return std::string("cuBLAS error: ") + cublasGetStatusString(status);
}

// One handle per device, made on first use and kept for the process (as
// torch does); the mutex serializes the GEMM path, whose handle carries the
// stream.
std::mutex& gemm_mutex() {
  static std::mutex m;
  return m;
}

std::string device_handle(cublasHandle_t* handle) {
  static std::vector<cublasHandle_t> handles;
  int device = 0;
  cudaError_t s = cudaGetDevice(&device);
  if (s != cudaSuccess) return cuda_message(s);
  if (handles.size() <= static_cast<size_t>(device)) handles.resize(device + 1, nullptr);
  if (handles[device] == nullptr) {
    const cublasStatus_t c = cublasCreate(&handles[device]);
    if (c != CUBLAS_STATUS_SUCCESS) return cublas_message(c);
    // Full float32 products, no TF32 (the CPU op is the oracle): the
    // default math mode; set explicitly in case a caller's environment
    // changed the handle defaults.
    cublasSetMathMode(handles[device], CUBLAS_DEFAULT_MATH);
  }
  *handle = handles[device];
  return {};
}

std::string search_gemm(const DeviceFlatVectors& v, const float* queries, int64_t nq, int64_t k, int64_t* ids,
                        float* scores, const Plan& p, char* ws, const float* q_scale, const float* q_offset,
                        cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(gemm_mutex());
  cublasHandle_t handle = nullptr;
  std::string error = device_handle(&handle);
  if (!error.empty()) return error;
  cublasStatus_t c = cublasSetStream(handle, stream);
  if (c != CUBLAS_STATUS_SUCCESS) return cublas_message(c);
  float* tile = reinterpret_cast<float*>(ws + p.tile);
  float* widened = reinterpret_cast<float*>(ws + p.widened);
  const float one = 1.0f, zero = 0.0f;
  const int dim = static_cast<int>(v.dim);
  for (int64_t q0 = 0; q0 < nq; q0 += p.gemm_batch) {
    const int64_t qb = std::min(p.gemm_batch, nq - q0);
    Key* best_in = reinterpret_cast<Key*>(ws + p.keys_a);
    Key* best_out = reinterpret_cast<Key*>(ws + p.keys_b);
    Key* floors = reinterpret_cast<Key*>(ws + p.floors);
    cudaError_t s = cudaMemsetAsync(best_in, 0, sizeof(Key) * p.k_eff * qb, stream);
    if (s == cudaSuccess) s = cudaMemsetAsync(floors, 0, sizeof(Key) * qb, stream);
    if (s != cudaSuccess) return cuda_message(s);
    for (int64_t row0 = 0; row0 < v.rows; row0 += p.tile_rows) {
      const int64_t rows = std::min(p.tile_rows, v.rows - row0);
      const float* a = widened;
      if (v.storage == Storage::kFloat32) {
        a = static_cast<const float*>(v.data) + row0 * v.dim;
      } else {  // widen the tile exactly, then a float32 GEMM
        const unsigned blocks = blocks_for(rows * v.dim, kThreads * 8);
        if (v.storage == Storage::kFloat16)
          widen_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const __half*>(v.data) + row0 * v.dim,
                                                        rows * v.dim, widened);
        else
          widen_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const int8_t*>(v.data) + row0 * v.dim,
                                                        rows * v.dim, widened);
      }
      // Row-major dots (qb x rows) = Q (qb x dim) . A^T; in cuBLAS's
      // column-major terms, C (rows x qb) = A^T (rows x dim) . Q^T (dim x qb).
      c = cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(qb), dim, &one, a,
                      dim, queries + q0 * v.dim, dim, &zero, tile, static_cast<int>(rows));
      if (c != CUBLAS_STATUS_SUCCESS) return cublas_message(c);
      tile_select_kernel<<<static_cast<unsigned>(qb), kThreads, 0, stream>>>(
          v, tile, rows, row0, q_scale + q0, q_offset + q0, p.k_eff, best_in, best_out, floors);
      if ((s = cudaGetLastError()) != cudaSuccess) return cuda_message(s);
      std::swap(best_in, best_out);
    }
    finish_kernel<<<static_cast<unsigned>(qb), kThreads, finish_shared_bytes(p.k_eff), stream>>>(
        best_in, p.k_eff, k, ids + q0 * k, scores + q0 * k);
    if ((s = cudaGetLastError()) != cudaSuccess) return cuda_message(s);
  }
  return {};
}
#endif

}  // namespace

bool gemm_available() {
#ifdef RAGKERNELS_CUDA_CUBLAS
  return true;
#else
  return false;
#endif
}

size_t search_workspace_bytes(const DeviceFlatVectors& vectors, int64_t n_queries, int64_t k, bool use_gemm) {
  return make_plan(vectors, n_queries, k, use_gemm && gemm_available()).total;
}

std::string search(const DeviceFlatVectors& v, const float* queries, int64_t nq, int64_t k, int64_t* ids,
                   float* scores, void* workspace, size_t workspace_bytes, bool use_gemm, cudaStream_t stream) {
  if (use_gemm && !gemm_available()) return "dense search: this build has no cuBLAS (GEMM path)";
  const Plan p = make_plan(v, nq, k, use_gemm);
  if (workspace_bytes < p.total) return "dense search: workspace too small";
  if (nq == 0) return {};
  char* ws = static_cast<char*>(workspace);
  float* q_scale = reinterpret_cast<float*>(ws + p.q_terms);
  float* q_offset = q_scale + nq;
  if (p.k_eff == 0) {  // no rows: every slot is padding
    finish_kernel<<<static_cast<unsigned>(std::min<int64_t>(nq, int64_t(1) << 30)), kThreads, 0, stream>>>(
        nullptr, 0, k, ids, scores);
    const cudaError_t s = cudaGetLastError();
    return s == cudaSuccess ? std::string() : cuda_message(s);
  }
  query_terms_kernel<<<blocks_for(nq * 32, kThreads), kThreads, 0, stream>>>(queries, nq, v.dim, v.metric, q_scale,
                                                                              q_offset);
  const cudaError_t s = cudaGetLastError();
  if (s != cudaSuccess) return cuda_message(s);
#ifdef RAGKERNELS_CUDA_CUBLAS
  if (use_gemm) return search_gemm(v, queries, nq, k, ids, scores, p, ws, q_scale, q_offset, stream);
#endif
  return search_scan(v, queries, nq, k, ids, scores, p, ws, q_scale, q_offset, stream);
}

cudaError_t row_terms(const DeviceFlatVectors& v, const float* int8_scales, float* row_scale, float* row_offset,
                      bool* wrote_scale, bool* wrote_offset, cudaStream_t stream) {
  const bool int8 = v.storage == Storage::kInt8;
  *wrote_scale = int8 || v.metric != Metric::kInnerProduct;
  *wrote_offset = v.metric == Metric::kL2;
  if (!*wrote_scale || v.rows == 0) return cudaSuccess;
  const unsigned blocks = blocks_for(v.rows * 32, kThreads);
  switch (v.storage) {
    case Storage::kFloat32:
      row_terms_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(v.data), v.rows, v.dim, v.metric,
                                                        int8_scales, row_scale, row_offset);
      break;
    case Storage::kFloat16:
      row_terms_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const __half*>(v.data), v.rows, v.dim, v.metric,
                                                        int8_scales, row_scale, row_offset);
      break;
    case Storage::kInt8:
      row_terms_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const int8_t*>(v.data), v.rows, v.dim, v.metric,
                                                        int8_scales, row_scale, row_offset);
      break;
  }
  return cudaGetLastError();
}

cudaError_t any_non_finite(const void* data, Storage storage, int64_t count, int* device_flag, cudaStream_t stream) {
  if (count == 0 || storage == Storage::kInt8) return cudaSuccess;
  const unsigned blocks = std::min<unsigned>(blocks_for(count, kThreads), 4096);
  if (storage == Storage::kFloat32)
    non_finite_f32_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(data), count, device_flag);
  else
    non_finite_f16_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const uint16_t*>(data), count, device_flag);
  return cudaGetLastError();
}

}  // namespace ragkernels::cuda::dense
