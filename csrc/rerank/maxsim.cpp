#include "rerank/maxsim.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/float16.h"
#include "core/isa.h"
#include "core/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The kernels return vectors only to force-inlined callers, so the ABI note
// GCC gives for vector returns does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 flags the deliberately undefined vectors inside its own AVX-512
// headers (_mm512_undefined_*) as maybe-uninitialized: a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace ragkernels::rerank {
namespace {

// Everything one call shares between threads, read-only but the scores
// (each pair writes its own slot).
struct Job {
  const QueryTokens* queries;
  const DocTokens* docs;
  ConstView2<int64_t> candidates;
  View2<float> scores;
  std::vector<float> panels;           // every query packed by the kernel's pack_query
  std::vector<int64_t> panel_offsets;  // where query q's panels start
};

struct Kernel {
  int64_t (*packed_floats)(int64_t len, int64_t dim);  // a query's packed panels, in floats
  void (*pack_query)(const QueryTokens&, int64_t, float*);
  void (*score)(const Job&, int64_t begin, int64_t end);  // pairs [begin, end), row-major
};

}  // namespace

// The kernel (maxsim_kernel.inc) is compiled once per instruction set, in
// its own namespace, under `#pragma GCC target`; core/isa.h picks the copy.
#ifdef RK_ISA_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma,f16c")
#define RK_ISA RK_ISA_AVX512
namespace avx512 {
#include "rerank/maxsim_kernel.inc"
}  // namespace avx512
#undef RK_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define RK_ISA RK_ISA_AVX2
namespace avx2 {
#include "rerank/maxsim_kernel.inc"
}  // namespace avx2
#undef RK_ISA
#pragma GCC pop_options
#endif
#define RK_ISA RK_ISA_BASELINE
namespace baseline {
#include "rerank/maxsim_kernel.inc"
}  // namespace baseline
#undef RK_ISA

namespace {

const Kernel& pick_kernel() {
  switch (best_isa()) {
#ifdef RK_ISA_X86
    case Isa::kAvx512:
      return avx512::kKernel;
    case Isa::kAvx2:
      return avx2::kKernel;
#endif
    default:
      return baseline::kKernel;
  }
}

// Packs every query once, before the threads start.
void pack_queries(const Kernel& kernel, Job& job) {
  const QueryTokens& queries = *job.queries;
  job.panel_offsets.resize(static_cast<size_t>(queries.num_queries));
  int64_t total = 0;
  for (int64_t q = 0; q < queries.num_queries; ++q) {
    job.panel_offsets[q] = total;
    total += kernel.packed_floats(queries.offsets[q + 1] - queries.offsets[q], queries.dim);
  }
  job.panels.resize(static_cast<size_t>(total));
  for (int64_t q = 0; q < queries.num_queries; ++q)
    kernel.pack_query(queries, q, job.panels.data() + job.panel_offsets[q]);
}

}  // namespace

void check_offsets(const int64_t* offsets, int64_t count, int64_t rows, const char* op, const char* arg) {
  RK_CHECK_ARG(offsets[0] == 0, op, ": ", arg, "[0] must be 0, got ", offsets[0]);
  for (int64_t i = 0; i < count; ++i)
    RK_CHECK_ARG(offsets[i + 1] >= offsets[i], op, ": ", arg, " must not decrease: ", arg, "[", i, "] = ",
                 offsets[i], " > ", arg, "[", i + 1, "] = ", offsets[i + 1]);
  RK_CHECK_ARG(offsets[count] == rows, op, ": ", arg, "[-1] must equal the number of token rows (", rows,
               "), got ", offsets[count]);
}

void check_candidates(ConstView2<int64_t> candidates, int64_t num_docs, const char* op, const char* arg) {
  for (int64_t q = 0; q < candidates.rows; ++q)
    for (int64_t c = 0; c < candidates.cols; ++c) {
      const int64_t doc = candidates(q, c);
      RK_CHECK_ARG(doc >= -1 && doc < num_docs, op, ": ", arg, "[", q, ", ", c, "] = ", doc,
                   " is out of range [0, ", num_docs, ") (-1 marks an empty slot)");
    }
}

void maxsim(const QueryTokens& queries, const DocTokens& docs, ConstView2<int64_t> candidates,
            View2<float> scores) {
  RK_CHECK_ARG(queries.dim == docs.dim, "maxsim: query tokens have dimension ", queries.dim,
               " but document tokens have ", docs.dim);
  RK_CHECK_ARG(candidates.rows == queries.num_queries, "maxsim: candidates has ", candidates.rows,
               " rows but there are ", queries.num_queries, " queries");
  RK_CHECK_ARG(docs.type != TokenType::kInt8 || docs.scales != nullptr, "maxsim: int8 document tokens need scales");
  check_offsets(queries.offsets, queries.num_queries, queries.rows, "maxsim", "query_offsets");
  check_offsets(docs.offsets, docs.num_docs, docs.rows, "maxsim", "doc_offsets");
  check_candidates(candidates, docs.num_docs, "maxsim", "candidates");
  const int64_t pairs = candidates.rows * candidates.cols;
  if (pairs == 0) return;
  const Kernel& kernel = pick_kernel();  // per call: RAGKERNELS_ISA may change between calls (tests)
  Job job{&queries, &docs, candidates, scores, {}, {}};
  pack_queries(kernel, job);
  parallel_for(
      0, pairs, [&](int64_t begin, int64_t end) { kernel.score(job, begin, end); }, 4);
}

}  // namespace ragkernels::rerank
