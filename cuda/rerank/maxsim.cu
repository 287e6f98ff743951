// Late-interaction MaxSim on the GPU; the contract is in maxsim.cuh.
//
// Design. One thread block (128 threads) scores one (query, candidate) pair
// at a time; a 1-D grid walks the pairs with a grid-stride loop (num_queries
// x num_candidates may exceed any grid dimension). Per pair, the Lq x Ld
// similarity matrix is a small GEMM, computed tile by tile and folded into a
// running maximum per query token as soon as a tile is done, so it never
// reaches memory:
//
//   for each query tile (kQT = 32 tokens)
//     for each document tile (kDT = 64 tokens)
//       for each dimension chunk (kKC = 64 floats)
//         stage the query tile and the document tile in shared memory as
//         float32 (float16 / int8 widened on load, int8 times its token's
//         scale), zero outside the valid tokens and dimensions;
//         each thread accumulates a 4 x 4 register tile of dots (query tokens
//         ty + 8i, document tokens tx + 16j) with float4 shared loads;
//       fold: each thread's maximum over its valid document tokens, a
//       half-warp shuffle maximum (the 16 threads of one query token row),
//       then into the running maximum of the query token (registers);
//     the tile's maxima go through shared memory to thread 0, which adds the
//     valid ones in token order.
//
// The query tile is staged again for each document tile unless the whole
// dimension fits one chunk (then it stays from the first document tile):
// it is small and served by L1/L2. Any dim works: chunks are zero-padded, the
// inner loop stops at the chunk's valid width rounded up to 4, and global
// loads are 4-wide only when dim % 4 == 0 and the base pointer is aligned
// (else one element at a time). Any token count works: tiles loop, rows past
// the end are zero and excluded from the maxima (excluded, not just zero: a
// padded 0 could beat negative dots, and 0 * inf is NaN).
//
// NaN: fmaxf drops NaN, so maxima use nan_max (NaN wins), as numpy's max.
// The arithmetic is the CPU op's: each dot an fma chain in dimension order
// (chunks continue the same accumulator), maxima summed in token order. No
// tensor cores, on purpose: TF32 products or float16 outputs would leave
// the CPU oracle's float32 results by ~1e-3; float16 / int8 documents are
// widened instead and their gain is the bytes they save.
//
// Validation without host copies: two small kernels check the offset arrays
// and record the first bad index in the error slots; the scoring kernel reads
// those slots first and does nothing when offsets are bad (it would index
// out of bounds), and records the first out-of-range candidate itself.
//
// Shared memory: (32 + 64) x 68 floats = 25.5 KiB a block; rows are kKC + 4
// floats apart: 16-byte aligned for float4, and the 8 threads of a quarter
// warp reading 8 different rows hit 8 different 16-byte bank groups.
#include "rerank/maxsim.cuh"

#include <cuda_fp16.h>

#include <algorithm>

namespace ragkernels::cuda::rerank {
namespace {

constexpr int kThreads = 128;
constexpr int kQT = 32;          // query tokens per tile
constexpr int kDT = 64;          // document tokens per tile
constexpr int kKC = 64;          // dimensions per chunk
constexpr int kStride = kKC + 4; // floats between rows of a shared tile
constexpr int kTX = 16;          // threads along the document tokens of a tile
constexpr int kTY = kThreads / kTX;  // 8 along the query tokens
constexpr int kMR = kQT / kTY;   // 4 query tokens per thread
constexpr int kMC = kDT / kTX;   // 4 document tokens per thread
static_assert(kMR == 4 && kMC == 4, "the register tile is 4 x 4");
static_assert(kKC % 4 == 0 && kStride % 4 == 0, "float4 rows");
static_assert((kQT * kKC / 4) % kThreads == 0 && (kDT * kKC / 4) % kThreads == 0, "whole load rounds");
static_assert((kQT * kKC) % kThreads == 0 && (kDT * kKC) % kThreads == 0, "whole load rounds");
static_assert(kTX == 16, "the fold reduces over a half warp");

constexpr int kMaxBlocks = 1 << 24;

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// max(a, b) where a NaN on either side wins (fmaxf would drop it).
__device__ __forceinline__ float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(__half x) { return __half2float(x); }
__device__ __forceinline__ float widen(int8_t x) { return static_cast<float>(x); }

// Four adjacent elements widened to float32; p is aligned to 4 elements.
__device__ __forceinline__ float4 load4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }

__device__ __forceinline__ float4 load4(const __half* p) {
  const uint2 raw = __ldg(reinterpret_cast<const uint2*>(p));
  const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(&raw.x));
  const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(&raw.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

__device__ __forceinline__ float4 load4(const int8_t* p) {
  const char4 c = __ldg(reinterpret_cast<const char4*>(p));
  return make_float4(static_cast<float>(c.x), static_cast<float>(c.y), static_cast<float>(c.z),
                     static_cast<float>(c.w));
}

// Stages rows [row0, row0 + rows) x dimensions [k0, k0 + kKC) of a row-major
// (*, dim) matrix into tile (kRows x kStride floats) as float32, times
// scales[row] when scales is given; zero where the row (>= rows) or the
// dimension (>= dim) is out of range. `vec`: dim % 4 == 0 and the data is
// aligned to 4 elements, so every in-range group of 4 is whole and aligned.
// All threads of the block call it.
template <int kRows, typename T>
__device__ __forceinline__ void stage(float* tile, const T* data, const float* scales, int64_t row0, int rows,
                                      int64_t dim, int64_t k0, bool vec) {
  if (vec) {
    constexpr int kGroups = kKC / 4;
#pragma unroll
    for (int round = 0; round < kRows * kGroups / kThreads; ++round) {
      const int e = round * kThreads + static_cast<int>(threadIdx.x);
      const int r = e / kGroups, g = e % kGroups;
      const int64_t k = k0 + 4 * g;
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r < rows && k < dim) {
        v = load4(data + (row0 + r) * dim + k);
        if (scales != nullptr) {
          const float s = scales[row0 + r];
          v.x *= s, v.y *= s, v.z *= s, v.w *= s;
        }
      }
      *reinterpret_cast<float4*>(tile + r * kStride + 4 * g) = v;
    }
  } else {
#pragma unroll 4
    for (int round = 0; round < kRows * kKC / kThreads; ++round) {
      const int e = round * kThreads + static_cast<int>(threadIdx.x);
      const int r = e / kKC, c = e % kKC;
      const int64_t k = k0 + c;
      float v = 0.0f;
      if (r < rows && k < dim) {
        v = widen(data[(row0 + r) * dim + k]);
        if (scales != nullptr) v *= scales[row0 + r];
      }
      tile[r * kStride + c] = v;
    }
  }
}

// acc[i][j] += dot over [0, width) of query row ty + 8i and document row
// tx + 16j of the staged tiles (width a multiple of 4, <= kKC), one fma at a
// time in dimension order.
__device__ __forceinline__ void multiply(const float* qs, const float* ds, int width, int tx, int ty,
                                         float (&acc)[kMR][kMC]) {
#pragma unroll 2
  for (int k = 0; k < width; k += 4) {
    float4 a[kMR], b[kMC];
#pragma unroll
    for (int i = 0; i < kMR; ++i) a[i] = *reinterpret_cast<const float4*>(qs + (ty + kTY * i) * kStride + k);
#pragma unroll
    for (int j = 0; j < kMC; ++j) b[j] = *reinterpret_cast<const float4*>(ds + (tx + kTX * j) * kStride + k);
#pragma unroll
    for (int i = 0; i < kMR; ++i) {
#pragma unroll
      for (int j = 0; j < kMC; ++j) {
        float s = acc[i][j];
        s = fmaf(a[i].x, b[j].x, s);
        s = fmaf(a[i].y, b[j].y, s);
        s = fmaf(a[i].z, b[j].z, s);
        s = fmaf(a[i].w, b[j].w, s);
        acc[i][j] = s;
      }
    }
  }
}

// Folds a finished tile of dots into run[i], the running maxima of query
// rows ty + 8i: only document tokens < valid_cols count. Every thread of the
// block calls it (the shuffles need whole warps); afterwards all 16 threads
// of a row hold the same run[i].
__device__ __forceinline__ void fold(const float (&acc)[kMR][kMC], int valid_cols, int tx, float (&run)[kMR]) {
#pragma unroll
  for (int i = 0; i < kMR; ++i) {
    float m = neg_inf();
#pragma unroll
    for (int j = 0; j < kMC; ++j)
      if (tx + kTX * j < valid_cols) m = nan_max(m, acc[i][j]);
    // The 16 threads of one query row are one half warp (tx = lane % 16).
#pragma unroll
    for (int offset = kTX / 2; offset > 0; offset >>= 1) m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, offset));
    run[i] = nan_max(run[i], m);
  }
}

struct Problem {
  DeviceQueryTokens queries;
  DeviceDocTokens docs;
  const int64_t* candidates;
  int64_t num_candidates;
  float* scores;
  unsigned long long* errors;
  bool query_vec;  // 4-wide loads of the queries are safe
  bool doc_vec;    // ... of the documents
};

template <typename T>
__global__ void __launch_bounds__(kThreads) maxsim_kernel(Problem p) {
  // Bad offsets were recorded by the check kernels queued before this one:
  // indexing by them could leave the arrays, so score nothing (the caller
  // raises). The same words for every thread: a uniform exit.
  if (p.errors[kQueryOffsetsError] != kNoError || p.errors[kDocOffsetsError] != kNoError) return;

  __shared__ __align__(16) float qs[kQT * kStride];
  __shared__ __align__(16) float ds[kDT * kStride];
  __shared__ float tile_max[kQT];

  const T* docs = static_cast<const T*>(p.docs.data);
  const int64_t dim = p.docs.dim;
  const int64_t chunks = (dim + kKC - 1) / kKC;
  const int tx = static_cast<int>(threadIdx.x) % kTX;
  const int ty = static_cast<int>(threadIdx.x) / kTX;
  const int64_t pairs = p.queries.num_queries * p.num_candidates;

  // Every value that steers control flow below is the same for all threads
  // of the block (read from the same addresses), so the __syncthreads()
  // inside the loops are reached by all of them.
  for (int64_t pair = blockIdx.x; pair < pairs; pair += gridDim.x) {
    const int64_t doc = p.candidates[pair];
    if (doc < 0 || doc >= p.docs.num_docs) {
      if (threadIdx.x == 0) {
        if (doc != -1) atomicMin(&p.errors[kCandidatesError], static_cast<unsigned long long>(pair));
        p.scores[pair] = doc == -1 ? neg_inf() : __int_as_float(0x7fc00000);
      }
      continue;
    }
    const int64_t d_begin = p.docs.offsets[doc];
    const int64_t d_len = p.docs.offsets[doc + 1] - d_begin;
    if (d_len == 0) {
      if (threadIdx.x == 0) p.scores[pair] = neg_inf();
      continue;
    }
    const int64_t query = pair / p.num_candidates;
    const int64_t q_begin = p.queries.offsets[query];
    const int64_t q_len = p.queries.offsets[query + 1] - q_begin;

    float total = 0.0f;  // meaningful in thread 0 only
    for (int64_t qt = 0; qt < q_len; qt += kQT) {
      const int q_rows = static_cast<int>(min(static_cast<int64_t>(kQT), q_len - qt));
      float run[kMR];
#pragma unroll
      for (int i = 0; i < kMR; ++i) run[i] = neg_inf();
      for (int64_t dt = 0; dt < d_len; dt += kDT) {
        const int d_rows = static_cast<int>(min(static_cast<int64_t>(kDT), d_len - dt));
        float acc[kMR][kMC];
#pragma unroll
        for (int i = 0; i < kMR; ++i)
#pragma unroll
          for (int j = 0; j < kMC; ++j) acc[i][j] = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t k0 = c * kKC;
          // With one chunk the query tile staged for the first document
          // tile is still in place (nothing else writes qs).
          if (chunks > 1 || dt == 0)
            stage<kQT>(qs, p.queries.data, static_cast<const float*>(nullptr), q_begin + qt, q_rows, dim, k0,
                       p.query_vec);
          stage<kDT>(ds, docs, p.docs.scales, d_begin + dt, d_rows, dim, k0, p.doc_vec);
          __syncthreads();
          const int width = static_cast<int>((min(static_cast<int64_t>(kKC), dim - k0) + 3) & ~int64_t(3));
          multiply(qs, ds, width, tx, ty, acc);
          __syncthreads();  // before the next chunk, tile or pair restages
        }
        fold(acc, d_rows, tx, run);
      }
      // Rows ty + 8i of this query tile are final: thread 0 adds them in
      // token order. The second barrier keeps the next tile's writers (or
      // the next pair's) off tile_max until thread 0 has read it: with
      // dim = 0 no other barrier lies between.
      if (tx == 0) {
#pragma unroll
        for (int i = 0; i < kMR; ++i) tile_max[ty + kTY * i] = run[i];
      }
      __syncthreads();
      if (threadIdx.x == 0)
        for (int r = 0; r < q_rows; ++r) total += tile_max[r];
      __syncthreads();
    }
    if (threadIdx.x == 0) p.scores[pair] = total;
  }
}

// errors[slot] = the smallest i in [0, count] where offsets break the rules
// (see ErrorSlot in maxsim.cuh).
__global__ void check_offsets_kernel(const int64_t* offsets, int64_t count, int64_t rows,
                                     unsigned long long* error) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i <= count; i += stride) {
    const int64_t at = offsets[i];
    const bool bad = (i == 0 && at != 0) || (i > 0 && at < offsets[i - 1]) || (i == count && at != rows);
    if (bad) atomicMin(error, static_cast<unsigned long long>(i));
  }
}

cudaError_t check_offsets(const int64_t* offsets, int64_t count, int64_t rows, unsigned long long* error,
                          cudaStream_t stream) {
  constexpr int kCheckThreads = 256;
  const int64_t blocks = std::min<int64_t>((count + kCheckThreads) / kCheckThreads, 4096);
  check_offsets_kernel<<<static_cast<unsigned>(blocks), kCheckThreads, 0, stream>>>(offsets, count, rows, error);
  return cudaGetLastError();
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

cudaError_t maxsim(const DeviceQueryTokens& queries, const DeviceDocTokens& docs, const int64_t* candidates,
                   int64_t num_candidates, float* scores, unsigned long long* errors, cudaStream_t stream) {
  cudaError_t status = cudaMemsetAsync(errors, 0xFF, kErrorSlots * sizeof(*errors), stream);  // kNoError
  if (status != cudaSuccess) return status;
  status = check_offsets(queries.offsets, queries.num_queries, queries.rows, errors + kQueryOffsetsError, stream);
  if (status != cudaSuccess) return status;
  status = check_offsets(docs.offsets, docs.num_docs, docs.rows, errors + kDocOffsetsError, stream);
  if (status != cudaSuccess) return status;
  const int64_t pairs = queries.num_queries * num_candidates;
  if (pairs == 0) return cudaSuccess;

  const size_t item = docs.type == TokenType::kFloat32 ? 4 : docs.type == TokenType::kFloat16 ? 2 : 1;
  Problem p{queries, docs, candidates, num_candidates, scores, errors,
            queries.dim % 4 == 0 && aligned(queries.data, 16), docs.dim % 4 == 0 && aligned(docs.data, 4 * item)};
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(pairs, kMaxBlocks));
  switch (docs.type) {
    case TokenType::kFloat32:
      maxsim_kernel<float><<<blocks, kThreads, 0, stream>>>(p);
      break;
    case TokenType::kFloat16:
      maxsim_kernel<__half><<<blocks, kThreads, 0, stream>>>(p);
      break;
    case TokenType::kInt8:
      maxsim_kernel<int8_t><<<blocks, kThreads, 0, stream>>>(p);
      break;
  }
  return cudaGetLastError();
}

}  // namespace ragkernels::cuda::rerank
