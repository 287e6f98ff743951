// Google Benchmark: row-wise top-k of the core, against std::partial_sort as
// the textbook baseline, on float32 rows of random scores.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "core/topk.h"

namespace rk = ragkernels;

static std::vector<float> random_scores(int64_t rows, int64_t n) {
  std::mt19937 gen(42);
  std::normal_distribution<float> dist;
  std::vector<float> s(rows * n);
  for (auto& x : s) x = dist(gen);
  return s;
}

static void BM_topk(benchmark::State& state) {
  const int64_t rows = state.range(0), n = state.range(1), k = state.range(2);
  rk::set_num_threads(1);
  auto s = random_scores(rows, n);
  std::vector<int64_t> ids(rows * k);
  std::vector<float> top(rows * k);
  for (auto _ : state) {
    rk::topk<float>(rk::make_view2<const float>(s.data(), rows, n), k, rk::make_view2(ids.data(), rows, k),
                    rk::make_view2(top.data(), rows, k));
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * n);
}

static void BM_partial_sort(benchmark::State& state) {
  const int64_t rows = state.range(0), n = state.range(1), k = state.range(2);
  auto s = random_scores(rows, n);
  std::vector<int32_t> idx(n);
  for (auto _ : state) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = s.data() + r * n;
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
      benchmark::DoNotOptimize(idx.data());
    }
  }
  state.SetItemsProcessed(state.iterations() * rows * n);
}

#define TOPK_ARGS ->Args({64, 100000, 10})->Args({64, 100000, 1000})->Args({1024, 1000, 10})->Unit(benchmark::kMillisecond)
BENCHMARK(BM_topk) TOPK_ARGS;
BENCHMARK(BM_partial_sort) TOPK_ARGS;
