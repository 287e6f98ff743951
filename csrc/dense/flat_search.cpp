#include "dense/flat_search.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/float16.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "dense/candidate_queue.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The kernels return vectors only to force-inlined callers, so the ABI note
// GCC gives for vector returns does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 flags the deliberately undefined vectors inside its own AVX-512
// headers (_mm512_undefined_*) as maybe-uninitialized: a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace ragkernels::dense {
namespace {


template <typename T>
inline float to_float(T x) {
  return static_cast<float>(x);
}

// What one part of the scan needs: everything is shared and read-only
// except the queues (one per query of the part).
struct ScanJob {
  const FlatVectors* vectors;
  const float* queries;  // nq x dim, contiguous
  int64_t nq;
  const float* query_scale;
  const float* query_offset;
  int64_t batch;  // queries in the whole call: it alone picks the kernel, so results never depend on the split
};

using ScanFn = void (*)(const ScanJob&, int64_t, int64_t, CandidateQueue*);

}  // namespace

// The scan kernel (scan_kernel.inc) is compiled once per instruction set, in
// its own namespace, under `#pragma GCC target`; core/isa.h picks the copy.
#ifdef RK_ISA_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma,f16c")
#define RK_ISA RK_ISA_AVX512
namespace avx512 {
#include "dense/scan_kernel.inc"
}  // namespace avx512
#undef RK_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define RK_ISA RK_ISA_AVX2
namespace avx2 {
#include "dense/scan_kernel.inc"
}  // namespace avx2
#undef RK_ISA
#pragma GCC pop_options
#endif
#define RK_ISA RK_ISA_BASELINE
namespace baseline {
#include "dense/scan_kernel.inc"
}  // namespace baseline
#undef RK_ISA

namespace {

ScanFn pick_scan() {
  switch (best_isa()) {
#ifdef RK_ISA_X86
    case Isa::kAvx512:
      return avx512::scan;
    case Isa::kAvx2:
      return avx2::scan;
#endif
    default:
      return baseline::scan;
  }
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
  const ScanFn scan = pick_scan();  // per call: RAGKERNELS_ISA may change between calls (tests)
  const int64_t nq = queries.rows, dim = vectors.dim;
  const int64_t keep = std::min<int64_t>(k, vectors.rows);

  std::vector<float> query_scale(nq, 1.0f), query_offset(nq, 0.0f);
  for (int64_t q = 0; q < nq; ++q) {
    const double norm2 = squared_norm(queries.data + q * dim, dim);
    if (vectors.metric == Metric::kCosine) query_scale[q] = norm2 > 0 ? float(1.0 / std::sqrt(norm2)) : 0.0f;
    if (vectors.metric == Metric::kL2) query_offset[q] = float(-norm2);
  }

  // Work is split between threads by rows or by queries. By rows (small
  // batches, large corpora): each part keeps its own top-k per query and the
  // parts merge exactly. By queries (many queries): each thread scans every
  // row for its own queries, so no merge and fewer queue updates; worth it
  // when each thread gets a few GEMM panels. Either way the split never shows.
  const int64_t threads = num_threads();
  const bool by_queries = threads > 1 && nq >= 64 * threads;
  // A thread is worth starting for about 2^21 multiply-adds (a few hundred microseconds).
  const int64_t work = vectors.rows * dim * std::max<int64_t>(nq, 1);
  const int64_t parts = by_queries ? 1 : std::clamp<int64_t>(work >> 21, 1, std::max<int64_t>(1, std::min(threads, vectors.rows / 64)));
  const int64_t pass = queries_per_pass(std::max<int64_t>(keep, 1), by_queries ? 1 : parts);
  for (int64_t q_begin = 0; q_begin < nq; q_begin += pass) {
    const int64_t q_count = std::min(pass, nq - q_begin);
    const ScanJob job{&vectors, queries.data + q_begin * dim, q_count, query_scale.data() + q_begin,
                      query_offset.data() + q_begin, nq};
    std::vector<CandidateQueue> queues(static_cast<size_t>(parts * q_count));
    for (auto& queue : queues) queue.reset(static_cast<size_t>(keep));
    if (keep > 0 && by_queries) {
      parallel_for(0, q_count, [&](int64_t q0, int64_t q1) {
        const ScanJob mine{&vectors, job.queries + q0 * dim, q1 - q0, job.query_scale + q0, job.query_offset + q0,
                           nq};
        scan(mine, 0, vectors.rows, queues.data() + q0);
      }, 32);
    } else if (keep > 0) {
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
        const float16 h = static_cast<float16>(vectors(r, t));
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
      return stored_squared_norm(static_cast<const float16*>(v.data) + r * v.dim, v.dim);
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

int64_t first_non_finite_row(const void* data, Storage storage, int64_t rows, int64_t dim) {
  if (storage == Storage::kInt8 || rows == 0 || dim == 0) return -1;
  const size_t item = storage == Storage::kFloat32 ? sizeof(float) : sizeof(uint16_t);
  std::atomic<int64_t> first{rows};
  parallel_for(0, rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < std::min(r1, first.load(std::memory_order_relaxed)); ++r) {
      if (all_finite(static_cast<const char*>(data) + static_cast<size_t>(r * dim) * item, storage, dim)) continue;
      int64_t seen = first.load();
      while (r < seen && !first.compare_exchange_weak(seen, r)) {
      }
      return;
    }
  }, 1024);
  return first.load() == rows ? -1 : first.load();
}

}  // namespace ragkernels::dense
