#include "dense/flat_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "sparse/topk_queue.h"

// The kernels below return vectors only to force-inlined callers, so the
// ABI note GCC gives for vector returns does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ragkernels::dense {
namespace {

using sparse::ScoredDoc;
using sparse::TopKQueue;

// The scan is written once with GCC vector extensions and compiled three
// times: for AVX-512, for AVX2 and for the baseline (SSE2 on x86-64, NEON on
// aarch64); the best one the processor supports is picked at run time. The
// kernels are force-inlined into each target-specific entry point, so every
// copy is compiled for its own instruction set.
#define RK_INLINE inline __attribute__((always_inline))

using V4 = float __attribute__((vector_size(16)));
using V8 = float __attribute__((vector_size(32)));
using V16 = float __attribute__((vector_size(64)));

template <typename V>
constexpr int kLanes = sizeof(V) / sizeof(float);

// W elements of T, loaded in one go. (Spelled out per width: GCC ignores
// vector_size on a type that depends on a template parameter.)
using I8x4 = int8_t __attribute__((vector_size(4)));
using I8x8 = int8_t __attribute__((vector_size(8)));
using I8x16 = int8_t __attribute__((vector_size(16)));
using H4 = _Float16 __attribute__((vector_size(8)));
using H8 = _Float16 __attribute__((vector_size(16)));
using H16 = _Float16 __attribute__((vector_size(32)));
template <typename V, typename T>
struct Packed;
template <typename V>
struct Packed<V, float> {
  using type = V;
};
template <>
struct Packed<V4, int8_t> {
  using type = I8x4;
};
template <>
struct Packed<V8, int8_t> {
  using type = I8x8;
};
template <>
struct Packed<V16, int8_t> {
  using type = I8x16;
};
template <>
struct Packed<V4, _Float16> {
  using type = H4;
};
template <>
struct Packed<V8, _Float16> {
  using type = H8;
};
template <>
struct Packed<V16, _Float16> {
  using type = H16;
};

// W consecutive elements of T at p (any alignment), as float lanes.
template <typename V, typename T>
RK_INLINE V load(const T* p) {
  typename Packed<V, T>::type raw;
  std::memcpy(&raw, p, sizeof(raw));
  if constexpr (std::is_same_v<T, float>) {
    return raw;
  } else {
    return __builtin_convertvector(raw, V);
  }
}

RK_INLINE float hsum(V4 v) { return (v[0] + v[2]) + (v[1] + v[3]); }
RK_INLINE float hsum(V8 v) {
  return hsum(V4(__builtin_shufflevector(v, v, 0, 1, 2, 3)) + V4(__builtin_shufflevector(v, v, 4, 5, 6, 7)));
}
RK_INLINE float hsum(V16 v) {
  return hsum(V8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)) +
              V8(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15)));
}

template <typename T>
RK_INLINE float to_float(T x) {
  return static_cast<float>(x);
}

// Dot products of MR rows with NR queries, written to out[i * NR + j]. Each
// product accumulates W-lane partial sums in dimension order, then adds the
// lanes in a fixed tree and the tail in order: the same sequence for every
// (row, query) pair, whatever MR and NR, so a score never depends on which
// tile computed it.
template <typename V, typename T, int MR, int NR>
RK_INLINE void dot_tile(const T* const* rows, const float* const* queries, int64_t dim, float* out) {
  constexpr int W = kLanes<V>;
  V acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = V{};
  int64_t d = 0;
  for (; d + W <= dim; d += W) {
    V q[NR];
    for (int j = 0; j < NR; ++j) q[j] = load<V>(queries[j] + d);
    for (int i = 0; i < MR; ++i) {
      const V x = load<V, T>(rows[i] + d);
      for (int j = 0; j < NR; ++j) acc[i][j] += x * q[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t t = d; t < dim; ++t) s = std::fma(to_float(rows[i][t]), queries[j][t], s);
      out[i * NR + j] = s;
    }
  }
}

// What one part of the scan needs; every pointer is shared and read-only
// except the queues (one per query of the part) and the scratch rows.
struct ScanJob {
  const FlatVectors* vectors;
  const float* queries;  // nq x dim, contiguous
  int64_t nq;
  const float* query_scale;
  const float* query_offset;
};

constexpr int64_t kBlockRows = 64;  // rows scanned together: 64 x 768 floats stay in L2

// Turns tile dot products into scores and offers them to the queues.
RK_INLINE void offer(const ScanJob& job, const float* dots, int mr, int nr, int64_t row0, int64_t q0,
                     TopKQueue* queues) {
  const FlatVectors& v = *job.vectors;
  for (int j = 0; j < nr; ++j) {
    const int64_t q = q0 + j;
    TopKQueue& queue = queues[q];
    for (int i = 0; i < mr; ++i) {
      const int64_t row = row0 + i;
      // Explicit fma: left to contraction, the rounding could differ
      // between the places this is inlined.
      float s = dots[i * nr + j];
      if (v.row_offset) {
        s = std::fma(s, v.row_scale ? v.row_scale[row] : 1.0f, v.row_offset[row]);
      } else if (v.row_scale) {
        s *= v.row_scale[row];
      }
      s = std::fma(s, job.query_scale[q], job.query_offset[q]);
      if (std::isnan(s)) s = -std::numeric_limits<float>::infinity();
      if (queue.would_enter(s)) queue.push(s, static_cast<uint32_t>(row));
    }
  }
}

// Scores `count` rows starting at row `row0`, stored from `base` on (R: the
// stored type, or float for a converted block), against every query.
template <typename V, typename R, int MR, int NR>
RK_INLINE void scan_block(const ScanJob& job, const R* base, int64_t row0, int64_t count, TopKQueue* queues) {
  const int64_t dim = job.vectors->dim;
  float dots[MR * NR];
  for (int64_t q0 = 0; q0 < job.nq; q0 += NR) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, job.nq - q0));
    const float* qs[NR];
    for (int j = 0; j < NR; ++j) qs[j] = job.queries + (q0 + std::min(j, nr - 1)) * dim;
    for (int64_t r = 0; r < count; r += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, count - r));
      if (mr == MR && nr == NR) {
        const R* rows[MR];
        for (int i = 0; i < MR; ++i) rows[i] = base + (r + i) * dim;
        dot_tile<V, R, MR, NR>(rows, qs, dim, dots);
        offer(job, dots, MR, NR, row0 + r, q0, queues);
        continue;
      }
      // Ragged edges: one pair at a time, through the same arithmetic.
      for (int i = 0; i < mr; ++i) {
        const R* row[1] = {base + (r + i) * dim};
        for (int j = 0; j < nr; ++j) {
          const float* query[1] = {qs[j]};
          float dot;
          dot_tile<V, R, 1, 1>(row, query, dim, &dot);
          offer(job, &dot, 1, 1, row0 + r + i, q0 + j, queues);
        }
      }
    }
  }
}

// Scans rows [begin, end) against every query of the job, a block of rows at
// a time. A block is converted to float32 once when several query groups
// will read it (the conversion is exact, so the scores are the same).
template <typename V, typename T, int MR, int NR>
RK_INLINE void scan_rows(const ScanJob& job, int64_t begin, int64_t end, TopKQueue* queues) {
  const int64_t dim = job.vectors->dim;
  const T* data = static_cast<const T*>(job.vectors->data);
  const bool convert = !std::is_same_v<T, float> && job.nq > NR;
  std::vector<float> scratch(convert ? static_cast<size_t>(kBlockRows * dim) : 0);
  for (int64_t block = begin; block < end; block += kBlockRows) {
    const int64_t count = std::min(end - block, kBlockRows);
    if (convert) {
      const T* src = data + block * dim;
      for (int64_t t = 0; t < count * dim; ++t) scratch[t] = to_float(src[t]);
      scan_block<V, float, MR, NR>(job, scratch.data(), block, count, queues);
    } else {
      scan_block<V, T, MR, NR>(job, data + block * dim, block, count, queues);
    }
  }
}

template <typename V, int MR, int NR>
RK_INLINE void scan_dispatch(const ScanJob& job, int64_t begin, int64_t end, TopKQueue* queues) {
  switch (job.vectors->storage) {
    case Storage::kFloat32:
      return scan_rows<V, float, MR, NR>(job, begin, end, queues);
    case Storage::kFloat16:
      return scan_rows<V, _Float16, MR, NR>(job, begin, end, queues);
    case Storage::kInt8:
      return scan_rows<V, int8_t, MR, NR>(job, begin, end, queues);
  }
}

// Tile shapes: MR x NR accumulators plus MR + NR operands must fit the
// register file (32 zmm for AVX-512, 16 ymm for AVX2, 16 xmm for SSE2).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,f16c"))) void scan_avx512(
    const ScanJob& job, int64_t begin, int64_t end, TopKQueue* queues) {
  scan_dispatch<V16, 4, 4>(job, begin, end, queues);
}
__attribute__((target("avx2,fma,f16c"))) void scan_avx2(const ScanJob& job, int64_t begin, int64_t end,
                                                          TopKQueue* queues) {
  scan_dispatch<V8, 4, 2>(job, begin, end, queues);
}
#endif
void scan_baseline(const ScanJob& job, int64_t begin, int64_t end, TopKQueue* queues) {
  scan_dispatch<V4, 4, 2>(job, begin, end, queues);
}

using ScanFn = void (*)(const ScanJob&, int64_t, int64_t, TopKQueue*);

ScanFn pick_scan() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return scan_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return scan_avx2;
#endif
  return scan_baseline;
}

// Queries per pass: the queues of a pass hold parts x queries x k entries.
int64_t queries_per_pass(int64_t k, int64_t parts) {
  const int64_t budget = int64_t(1) << 23;  // queue entries (64 MiB)
  return std::max<int64_t>(1, budget / (k * parts));
}

double squared_norm(const float* q, int64_t dim) {
  double s = 0;
  for (int64_t t = 0; t < dim; ++t) s += double(q[t]) * q[t];
  return s;
}

}  // namespace

void search(const FlatVectors& vectors, ConstView2<float> queries, int64_t k, View2<int64_t> ids,
            View2<float> scores) {
  RK_CHECK_ARG(k >= 1, "search: k must be >= 1, got ", k);
  RK_CHECK_ARG(queries.cols == vectors.dim, "search: queries have dimension ", queries.cols,
               ", the index has ", vectors.dim);
  RK_CHECK_ARG(vectors.rows < (int64_t(1) << 32), "search: more than 2^32 - 1 rows are not supported");
  RK_DCHECK(queries.row_stride == queries.cols && queries.col_stride == 1);
  static const ScanFn scan = pick_scan();
  const int64_t nq = queries.rows, dim = vectors.dim;
  const int64_t keep = std::min<int64_t>(k, vectors.rows);

  std::vector<float> query_scale(nq, 1.0f), query_offset(nq, 0.0f);
  for (int64_t q = 0; q < nq; ++q) {
    const double norm2 = squared_norm(queries.data + q * dim, dim);
    if (vectors.metric == Metric::kCosine) query_scale[q] = norm2 > 0 ? float(1.0 / std::sqrt(norm2)) : 0.0f;
    if (vectors.metric == Metric::kL2) query_offset[q] = float(-norm2);
  }

  // The rows are split into parts, one per thread; each part keeps its own
  // top-k per query and the parts merge exactly, so the split never shows.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_threads(), vectors.rows / 1024));
  const int64_t pass = queries_per_pass(std::max<int64_t>(keep, 1), parts);
  for (int64_t q_begin = 0; q_begin < nq; q_begin += pass) {
    const int64_t q_count = std::min(pass, nq - q_begin);
    const ScanJob job{&vectors, queries.data + q_begin * dim, q_count, query_scale.data() + q_begin,
                      query_offset.data() + q_begin};
    std::vector<TopKQueue> queues(static_cast<size_t>(parts * q_count));
    for (auto& queue : queues) queue.reset(static_cast<size_t>(keep));
    if (keep > 0) {
      parallel_for(0, parts, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          scan(job, vectors.rows * p / parts, vectors.rows * (p + 1) / parts, queues.data() + p * q_count);
      });
    }
    std::vector<ScoredDoc> merged;
    for (int64_t q = 0; q < q_count; ++q) {
      merged.clear();
      for (int64_t p = 0; p < parts; ++p) {
        auto& best = queues[p * q_count + q].sorted();
        merged.insert(merged.end(), best.begin(), best.end());
      }
      std::sort(merged.begin(), merged.end(), sparse::ranks_before);
      const int64_t out_row = q_begin + q;
      for (int64_t j = 0; j < k; ++j) {
        const bool hit = j < keep;
        ids(out_row, j) = hit ? int64_t(merged[j].doc) : -1;
        scores(out_row, j) = hit ? merged[j].score : -std::numeric_limits<float>::infinity();
      }
    }
  }
}

void quantize_int8(ConstView2<float> vectors, View2<int8_t> out, float* scales) {
  parallel_for(0, vectors.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float max_abs = 0;
      for (int64_t t = 0; t < vectors.cols; ++t) max_abs = std::max(max_abs, std::fabs(vectors(r, t)));
      const float scale = max_abs / 127.0f;
      scales[r] = scale;
      for (int64_t t = 0; t < vectors.cols; ++t) {
        const float q = scale > 0 ? std::nearbyint(vectors(r, t) / scale) : 0.0f;
        out(r, t) = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
      }
    }
  }, 256);
}

void convert_float16(ConstView2<float> vectors, View2<uint16_t> out) {
  parallel_for(0, vectors.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t t = 0; t < vectors.cols; ++t) {
        const _Float16 h = static_cast<_Float16>(vectors(r, t));
        std::memcpy(&out(r, t), &h, sizeof(h));
      }
    }
  }, 256);
}

namespace {

template <typename T>
double stored_squared_norm(const T* row, int64_t dim) {
  double s = 0;
  for (int64_t t = 0; t < dim; ++t) s += double(to_float(row[t])) * double(to_float(row[t]));
  return s;
}

double stored_squared_norm(const FlatVectors& v, int64_t r) {
  switch (v.storage) {
    case Storage::kFloat32:
      return stored_squared_norm(static_cast<const float*>(v.data) + r * v.dim, v.dim);
    case Storage::kFloat16:
      return stored_squared_norm(static_cast<const _Float16*>(v.data) + r * v.dim, v.dim);
    case Storage::kInt8:
      return stored_squared_norm(static_cast<const int8_t*>(v.data) + r * v.dim, v.dim);
  }
  return 0;
}

}  // namespace

RowTermsWritten row_terms(const FlatVectors& stored, Metric metric, const float* int8_scales, float* row_scale,
                          float* row_offset) {
  const bool int8 = stored.storage == Storage::kInt8;
  RK_CHECK_ARG(!int8 || int8_scales != nullptr, "row_terms: int8 storage needs its scales");
  RowTermsWritten written;
  written.scale = int8 || metric != Metric::kInnerProduct;
  written.offset = metric == Metric::kL2;
  if (!written.scale) return written;
  parallel_for(0, stored.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const double scale = int8 ? double(int8_scales[r]) : 1.0;
      const double norm2 = (metric == Metric::kInnerProduct) ? 0.0 : stored_squared_norm(stored, r) * scale * scale;
      switch (metric) {
        case Metric::kInnerProduct:
          row_scale[r] = float(scale);
          break;
        case Metric::kCosine:
          row_scale[r] = norm2 > 0 ? float(scale / std::sqrt(norm2)) : 0.0f;
          break;
        case Metric::kL2:
          row_scale[r] = float(2.0 * scale);
          row_offset[r] = float(-norm2);
          break;
      }
    }
  }, 256);
  return written;
}

bool all_finite(const void* data, Storage storage, int64_t count) {
  switch (storage) {
    case Storage::kFloat32: {
      const float* p = static_cast<const float*>(data);
      bool ok = true;
      for (int64_t i = 0; i < count; ++i) ok &= std::isfinite(p[i]);
      return ok;
    }
    case Storage::kFloat16: {
      // binary16 is non-finite when its exponent bits are all ones.
      const uint16_t* p = static_cast<const uint16_t*>(data);
      bool ok = true;
      for (int64_t i = 0; i < count; ++i) ok &= (p[i] & 0x7C00u) != 0x7C00u;
      return ok;
    }
    case Storage::kInt8:
      return true;
  }
  return true;
}

}  // namespace ragkernels::dense
