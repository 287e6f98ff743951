// Google Benchmark: fusion hot loops on synthetic runs (queries x 1,000 docs
// each, drawn from a pool of 1,500 per query, sorted float32 scores), one
// thread: array runs -> per-query ids, then fuse with a score-based method
// (sum: radix path of the final ranking) and a rank-based one (rrf: numba
// replay, ties being the rule).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "fusion/fuse.h"
#include "fusion/run_lists.h"

namespace rf = ragkernels::fusion;

namespace {

constexpr int64_t kDepth = 1000;
constexpr int64_t kPool = 1500;

struct Synthetic {
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::vector<float>> scores;
  std::vector<rf::ArrayRun> runs;
};

Synthetic make_synthetic(int64_t runs, int64_t queries) {
  std::mt19937_64 gen(7);
  std::normal_distribution<float> normal;
  Synthetic s;
  s.ids.assign(static_cast<size_t>(runs), std::vector<int64_t>(static_cast<size_t>(queries * kDepth)));
  s.scores.assign(static_cast<size_t>(runs), std::vector<float>(static_cast<size_t>(queries * kDepth)));
  std::vector<int64_t> pool(kPool);
  std::vector<float> row(kDepth);
  for (int64_t r = 0; r < runs; ++r) {
    for (int64_t q = 0; q < queries; ++q) {
      for (int64_t i = 0; i < kPool; ++i) pool[static_cast<size_t>(i)] = q * 10'000 + i;
      std::shuffle(pool.begin(), pool.end(), gen);
      for (auto& x : row) x = normal(gen);
      std::sort(row.begin(), row.end(), std::greater<float>());
      std::copy(pool.begin(), pool.begin() + kDepth, s.ids[static_cast<size_t>(r)].begin() + q * kDepth);
      std::copy(row.begin(), row.end(), s.scores[static_cast<size_t>(r)].begin() + q * kDepth);
    }
    rf::ArrayRun a;
    a.ids64 = ragkernels::make_view2<const int64_t>(s.ids[static_cast<size_t>(r)].data(), queries, kDepth);
    a.scores32 = ragkernels::make_view2<const float>(s.scores[static_cast<size_t>(r)].data(), queries, kDepth);
    a.wide_scores = false;
    s.runs.push_back(a);
  }
  return s;
}

void BM_RunsFromArrays(benchmark::State& state) {
  ragkernels::set_num_threads(1);
  const Synthetic s = make_synthetic(state.range(0), 200);
  for (auto _ : state) benchmark::DoNotOptimize(rf::runs_from_arrays(s.runs, 200));
  state.SetItemsProcessed(state.iterations() * state.range(0) * 200 * kDepth);
}

void BM_Fuse(benchmark::State& state, rf::Method method) {
  ragkernels::set_num_threads(1);
  const Synthetic s = make_synthetic(state.range(0), 200);
  const auto in = rf::runs_from_arrays(s.runs, 200);
  rf::FuseOptions options;
  options.method = method;
  for (auto _ : state) benchmark::DoNotOptimize(rf::fuse(in.lists, options));
  state.SetItemsProcessed(state.iterations() * state.range(0) * 200 * kDepth);
}

}  // namespace

BENCHMARK(BM_RunsFromArrays)->Arg(2)->Arg(5)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fuse, sum, rf::Method::kSum)->Arg(2)->Arg(5)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fuse, rrf, rf::Method::kRrf)->Arg(2)->Arg(5)->Unit(benchmark::kMillisecond);
