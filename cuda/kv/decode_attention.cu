// Fused decode attention on the GPU; the contract is in decode_attention.cuh.
//
// Design (flash-decoding). A block of 256 threads takes one (KV stream, group
// of up to 8 query heads that read it, 512-token chunk); a merge kernel then
// combines a head's chunks. Per chunk block:
//
//   1. the heads' queries, times `scaling`, go to shared memory;
//   2. scores: a warp per token (tokens warp, warp + 8, ...), its lanes over
//      channels (lane, lane + 32, ...): a key channel is c * s + m, with c
//      read from the packed row (neighbouring lanes read the same or
//      neighbouring bytes) and the block's scale and minimum (the block is a
//      binary search in the stream's offsets, so partial and empty blocks of
//      a compacted cache work); residual keys are read from their view. One
//      warp sum per head; the mask is added; scores go to shared memory;
//   3. softmax within the chunk: a warp per head finds the maximum (NaN
//      flagged), turns scores into weights exp(s - max) in place and sums
//      them; the chunk's (max, sum) go to global scratch;
//   4. values: threads are (channel lane, token lane) pairs, a channel lane
//      per channel (32 to 256 lanes, the head dimension rounded up to a power
//      of two), the rest of the 256 threads splitting the tokens; each thread
//      sums weight * (c * s + m) (or weight * the residual value) for its
//      channel over its tokens, skipping tokens whose weights are all zero;
//      the token lanes' sums are added through shared memory in lane order,
//      and the chunk's unnormalized output goes to global scratch.
//
// The merge kernel (a block per query head, threads over channels) takes the
// largest chunk maximum M and writes sum_c e^(max_c - M) acc_c / sum_c
// e^(max_c - M) sum_c; NaN when a chunk's sum is NaN (a NaN score), zeros when
// every chunk is fully masked (M = -inf), as the CPU op's merge.
//
// The chunks are the CPU op's (512 tokens of the quantized-then-residual
// sequence), so "a weight of zero within its chunk" means the same positions
// on both sides; exp is expf (about 1 ulp) where the CPU uses a polynomial
// (2 ulp), and sums run in another order: agreement is to float32 rounding.
//
// Shared memory: R x 512 floats of scores plus max(R x dim, 256 x R) floats
// (the queries, then the value sums' reduction), R = heads per block: 24 KiB
// for R = 8 and head_dim 128.
#include "kv/decode_attention.cuh"

#include <algorithm>
#include <climits>

#include "kv/codes.cuh"

namespace ragkernels::cuda::kv {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kChunk = 512;  // tokens per chunk: the CPU op's kChunkTokens
constexpr int kMaxReps = 8;      // query heads per block
constexpr int kMergeThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr size_t kDefaultSharedBytes = 48 * 1024;  // above it, the kernel opts in

static_assert(kMaxReps <= kWarps, "the softmax takes one warp per query head");

struct ChunkPlan {
  int64_t chunks = 1;
  int64_t rep_groups = 1;
  int reps_per_block = 1;  // R
  int channel_lanes = 32;  // value phase: threads per token lane
};

ChunkPlan plan_of(const DeviceDecodeAttention& a) {
  ChunkPlan p;
  const int64_t length = a.keys.tokens + a.residual_keys.tokens;
  p.chunks = std::max<int64_t>(1, (length + kChunk - 1) / kChunk);
  const int64_t reps = std::max<int64_t>(1, a.q_heads / std::max<int64_t>(1, a.kv_heads));
  p.reps_per_block = static_cast<int>(std::min<int64_t>(reps, kMaxReps));
  p.rep_groups = (reps + p.reps_per_block - 1) / p.reps_per_block;
  while (p.channel_lanes < a.keys.dim && p.channel_lanes < kThreads) p.channel_lanes *= 2;
  return p;
}

__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fffffff); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {  // v is never NaN here
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// The block holding token t: the last j with offsets[j] <= t (upper bound
// minus one), which skips empty blocks; checked offsets give 0 <= j < blocks.
__device__ __forceinline__ int64_t block_of(const int32_t* offsets, int64_t blocks, int64_t t) {
  int64_t lo = 0, hi = blocks + 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= t) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo - 1;
}

// dot[r] += query[r][d] * k for the block's heads.
__device__ __forceinline__ void accumulate(float (&dot)[kMaxReps], const float* query, int64_t dim, int64_t d, float k,
                                           int heads) {
#pragma unroll
  for (int r = 0; r < kMaxReps; ++r) {
    if (r < heads) dot[r] += query[r * dim + d] * k;
  }
}

// Phase 2: scores[r][t - begin] = query_r . key_t (+ mask) for t in [begin, end).
__device__ __forceinline__ void score_tokens(const DeviceDecodeAttention& a, int64_t stream, int64_t begin,
                                             int64_t end, int heads, const float* query, float* scores) {
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int64_t dim = a.keys.dim, quantized = a.keys.tokens;
  const int64_t length = quantized + a.residual_keys.tokens;
  const int64_t row_bytes = packed_bytes(dim, a.keys.bits), plane2 = (dim + 3) / 4;
  const int32_t* offsets = a.keys.offsets + stream * (a.keys.blocks + 1);
  const float* mask = nullptr;
  if (a.mask) mask = a.mask + (a.mask_per_head ? stream : stream / a.kv_heads) * length;
  for (int64_t t = begin + warp; t < end; t += kWarps) {  // warp-uniform
    float dot[kMaxReps];
#pragma unroll
    for (int r = 0; r < kMaxReps; ++r) dot[r] = 0.0f;
    if (t < quantized) {
      const int64_t params = (stream * a.keys.blocks + block_of(offsets, a.keys.blocks, t)) * dim;
      const uint8_t* row = a.keys.codes + (stream * quantized + t) * row_bytes;
      for (int64_t d = lane; d < dim; d += 32) {
        const float c = static_cast<float>(code_at(row, d, a.keys.bits, plane2));
        const float k = c * half_bits_to_float(a.keys.scale[params + d]) + half_bits_to_float(a.keys.minimum[params + d]);
        accumulate(dot, query, dim, d, k, heads);
      }
    } else {
      const DeviceTokens& rk = a.residual_keys;
      const int64_t at = rk.offset(stream, t - quantized);
      for (int64_t d = lane; d < dim; d += 32) accumulate(dot, query, dim, d, load_element(rk, at + d), heads);
    }
    const float bias = mask ? mask[t] : 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxReps; ++r) {
      if (r < heads) {  // uniform: every lane takes part in the sum
        const float s = warp_sum(dot[r]);
        if (lane == 0) scores[r * kChunk + (t - begin)] = s + bias;
      }
    }
  }
}

// Phase 3, one warp: scores -> weights exp(s - max) in place; the chunk's max
// and sum of weights. A NaN score: sum NaN (the head's output will be NaN),
// weights zero. Every score -inf: sum and weights zero (the chunk counts for
// nothing).
__device__ __forceinline__ void softmax(float* s, int count, float& max_out, float& sum_out) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  float m = -INFINITY;
  bool nan = false;
  for (int i = lane; i < count; i += 32) {
    const float v = s[i];
    m = v > m ? v : m;
    nan = nan || isnan(v);
  }
  m = warp_max(m);
  nan = __any_sync(kFullMask, nan);
  float sum = 0.0f;
  if (nan || m == -INFINITY) {  // warp-uniform
    for (int i = lane; i < count; i += 32) s[i] = 0.0f;
    sum = nan ? quiet_nan() : 0.0f;
  } else {
    for (int i = lane; i < count; i += 32) {
      const float p = expf(s[i] - m);
      s[i] = p;
      sum += p;
    }
    sum = warp_sum(sum);
  }
  max_out = m;
  sum_out = sum;
}

// The value of channel d of token t (quantized: c * s + m of its group).
__device__ __forceinline__ float value_at(const DeviceDecodeAttention& a, int64_t stream, int64_t t, int64_t d) {
  const DevicePackedValues& v = a.values;
  if (t >= v.tokens) {
    const DeviceTokens& rv = a.residual_values;
    return load_element(rv, rv.offset(stream, t - v.tokens) + d);
  }
  const int64_t token = stream * v.tokens + t;
  const int64_t groups = (v.dim + v.group - 1) / v.group;
  const int64_t at = token * groups + d / v.group;
  const float c = static_cast<float>(code_at(v.codes + token * packed_bytes(v.dim, v.bits), d, v.bits, (v.dim + 3) / 4));
  return c * half_bits_to_float(v.scale[at]) + half_bits_to_float(v.minimum[at]);
}

// Phase 4: out[r * out_stride + d] = sum_t weights[r][t] * value_t[d] over
// the chunk, for every channel d; `work` holds the token lanes' sums.
__device__ __forceinline__ void weigh_values(const DeviceDecodeAttention& a, const ChunkPlan& plan, int64_t stream,
                                             int64_t begin, int64_t end, int heads, const float* weights,
                                             float* work, float* out, int64_t out_stride) {
  const int R = plan.reps_per_block, lanes = plan.channel_lanes, token_lanes = kThreads / lanes;
  const int cl = static_cast<int>(threadIdx.x) % lanes, tl = static_cast<int>(threadIdx.x) / lanes;
  const int64_t dim = a.values.dim;
  for (int64_t d0 = 0; d0 < dim; d0 += lanes) {  // block-uniform
    const int64_t d = d0 + cl;
    float acc[kMaxReps];
#pragma unroll
    for (int r = 0; r < kMaxReps; ++r) acc[r] = 0.0f;
    for (int64_t t = begin + tl; d < dim && t < end; t += token_lanes) {
      const int64_t i = t - begin;
      bool any = false;
#pragma unroll
      for (int r = 0; r < kMaxReps; ++r) any = any || (r < heads && weights[r * kChunk + i] != 0.0f);
      if (!any) continue;  // masked or underflown: its values are not read
      const float v = value_at(a, stream, t, d);
#pragma unroll
      for (int r = 0; r < kMaxReps; ++r) {
        if (r < heads) {
          const float p = weights[r * kChunk + i];
          if (p != 0.0f) acc[r] += p * v;
        }
      }
    }
    __syncthreads();  // the previous pass's sums were read; the queries are no longer needed
#pragma unroll
    for (int r = 0; r < kMaxReps; ++r) {
      if (r < heads) work[(tl * R + r) * lanes + cl] = acc[r];
    }
    __syncthreads();
    if (tl == 0 && d < dim) {
      for (int r = 0; r < heads; ++r) {
        float total = 0.0f;
        for (int l = 0; l < token_lanes; ++l) total += work[(l * R + r) * lanes + cl];
        out[r * out_stride + d] = total;
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    chunk_kernel(DeviceDecodeAttention a, ChunkPlan plan, float* part_max, float* part_sum, float* part_acc,
                 const unsigned long long* error) {
  if (*error != kNoError) return;  // bad offsets: the binding raises
  extern __shared__ float shared[];
  const int R = plan.reps_per_block;
  float* scores = shared;             // [R][kChunk]: scores, then weights
  float* work = shared + R * kChunk;  // [R][dim] queries, then [token lanes][R][channel lanes] sums
  const auto item = static_cast<int64_t>(blockIdx.x);
  const int64_t chunk = item % plan.chunks, rep_group = item / plan.chunks % plan.rep_groups;
  const int64_t stream = item / plan.chunks / plan.rep_groups;
  const int64_t reps = a.q_heads / a.kv_heads;
  const int heads = static_cast<int>(min(static_cast<int64_t>(R), reps - rep_group * R));
  const int64_t first_query = (stream / a.kv_heads) * a.q_heads + (stream % a.kv_heads) * reps + rep_group * R;
  const int64_t dim = a.keys.dim, length = a.keys.tokens + a.residual_keys.tokens;
  const int64_t begin = chunk * kChunk, end = min(length, begin + kChunk);

  for (int64_t i = threadIdx.x; i < heads * dim; i += kThreads) {
    work[i] = load_element(a.query, a.query.offset(first_query + i / dim, 0) + i % dim) * a.scaling;
  }
  __syncthreads();
  score_tokens(a, stream, begin, end, heads, work, scores);
  __syncthreads();
  const int warp = static_cast<int>(threadIdx.x >> 5);
  if (warp < heads) {
    float m, sum;
    softmax(scores + warp * kChunk, static_cast<int>(end - begin), m, sum);
    if ((threadIdx.x & 31) == 0) {
      part_max[(first_query + warp) * plan.chunks + chunk] = m;
      part_sum[(first_query + warp) * plan.chunks + chunk] = sum;
    }
  }
  __syncthreads();
  weigh_values(a, plan, stream, begin, end, heads, scores, work, part_acc + (first_query * plan.chunks + chunk) * dim,
               plan.chunks * dim);
}

__global__ void __launch_bounds__(kMergeThreads)
    merge_kernel(const float* part_max, const float* part_sum, const float* part_acc, int64_t chunks, int64_t dim,
                 float* out, const unsigned long long* error) {
  if (*error != kNoError) return;
  const auto q = static_cast<int64_t>(blockIdx.x);
  const float* maxima = part_max + q * chunks;
  const float* sums = part_sum + q * chunks;
  float m = -INFINITY;
  bool nan = false;
  for (int64_t c = 0; c < chunks; ++c) {
    m = fmaxf(m, maxima[c]);
    nan = nan || isnan(sums[c]);
  }
  float* o = out + q * dim;
  if (nan || m == -INFINITY) {  // a NaN score; or every position masked: zeros, as torch's SDPA
    const float fill = nan ? quiet_nan() : 0.0f;
    for (int64_t d = threadIdx.x; d < dim; d += kMergeThreads) o[d] = fill;
    return;
  }
  float total = 0.0f;
  for (int64_t c = 0; c < chunks; ++c) {
    if (maxima[c] != -INFINITY) total += expf(maxima[c] - m) * sums[c];
  }
  const float inverse = 1.0f / total;  // total >= 1: the chunk holding M has a weight of 1
  const float* acc = part_acc + q * chunks * dim;
  for (int64_t d = threadIdx.x; d < dim; d += kMergeThreads) {
    float sum = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      if (maxima[c] != -INFINITY) sum += expf(maxima[c] - m) * acc[c * dim + d];
    }
    o[d] = sum * inverse;
  }
}

// error = the smallest stream whose offsets do not start at 0, decrease, or
// do not end at `tokens` (check_key_offsets' conditions).
__global__ void check_offsets_kernel(const int32_t* offsets, int64_t streams, int64_t blocks, int64_t tokens,
                                     unsigned long long* error) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < streams; s += step) {
    const int32_t* o = offsets + s * (blocks + 1);
    bool ok = o[0] == 0;
    for (int64_t j = 0; ok && j < blocks; ++j) ok = o[j + 1] >= o[j];
    if (!ok || o[blocks] != tokens) atomicMin(error, static_cast<unsigned long long>(s));
  }
}

}  // namespace

size_t decode_attention_workspace_bytes(const DeviceDecodeAttention& a) {
  const ChunkPlan plan = plan_of(a);
  const int64_t partials = a.batch * a.q_heads * plan.chunks;
  return static_cast<size_t>(partials * (2 + a.keys.dim)) * sizeof(float);
}

size_t decode_attention_shared_bytes(const DeviceDecodeAttention& a) {
  const ChunkPlan plan = plan_of(a);
  const int64_t r = plan.reps_per_block;
  return static_cast<size_t>(r * kChunk + std::max<int64_t>(r * a.keys.dim, int64_t{kThreads} * r)) * sizeof(float);
}

cudaError_t decode_attention(const DeviceDecodeAttention& a, void* workspace, unsigned long long* error,
                             cudaStream_t stream) {
  const int64_t streams = a.batch * a.kv_heads, queries = a.batch * a.q_heads;
  if (streams > 0) {
    const auto grid = static_cast<unsigned>(std::min<int64_t>((streams + kThreads - 1) / kThreads, 1 << 20));
    check_offsets_kernel<<<grid, kThreads, 0, stream>>>(a.keys.offsets, streams, a.keys.blocks, a.keys.tokens, error);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  if (queries == 0 || a.keys.dim == 0) return cudaSuccess;
  const ChunkPlan plan = plan_of(a);
  const int64_t blocks = streams * plan.rep_groups * plan.chunks;
  if (blocks > INT_MAX || queries > INT_MAX) return cudaErrorInvalidConfiguration;
  const size_t shared = decode_attention_shared_bytes(a);
  if (shared > kDefaultSharedBytes) {
    const cudaError_t status =
        cudaFuncSetAttribute(chunk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (status != cudaSuccess) return status;
  }
  float* part_max = static_cast<float*>(workspace);
  float* part_sum = part_max + queries * plan.chunks;
  float* part_acc = part_sum + queries * plan.chunks;
  chunk_kernel<<<static_cast<unsigned>(blocks), kThreads, shared, stream>>>(a, plan, part_max, part_sum, part_acc,
                                                                            error);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  merge_kernel<<<static_cast<unsigned>(queries), kMergeThreads, 0, stream>>>(part_max, part_sum, part_acc, plan.chunks,
                                                                            a.keys.dim, a.out, error);
  return cudaGetLastError();
}

}  // namespace ragkernels::cuda::kv
