// Google Benchmark: BM25 query processing of the core on a synthetic corpus of
// token ids with a Zipfian term distribution (500k docs of 5-60 tokens, 50k
// terms), one thread, per algorithm and k. Queries: 2-8 terms drawn from the
// same distribution. Items/s = queries/s.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "sparse/sparse_index.h"

namespace rs = ragkernels::sparse;

namespace {

struct Fixture {
  std::shared_ptr<rs::SparseIndex> index;
  std::vector<rs::Query> queries;
};

uint32_t zipf_term(std::mt19937& gen, const std::vector<double>& cdf) {
  const double u = std::uniform_real_distribution<double>(0, cdf.back())(gen);
  return static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
}

const Fixture& fixture() {
  static const Fixture f = [] {
    ragkernels::set_num_threads(1);
    std::mt19937 gen(7);
    const uint32_t terms = 50000, docs = 500000;
    std::vector<double> cdf(terms);
    double acc = 0;
    for (uint32_t t = 0; t < terms; ++t) cdf[t] = acc += 1.0 / std::pow(t + 1.0, 1.1);
    std::vector<int64_t> ids;
    std::vector<uint64_t> offsets{0};
    for (uint32_t d = 0; d < docs; ++d) {
      const int length = 5 + static_cast<int>(gen() % 56);
      for (int i = 0; i < length; ++i) ids.push_back(zipf_term(gen, cdf));
      offsets.push_back(ids.size());
    }
    auto builder = rs::IndexBuilder::bm25(std::nullopt, rs::Vocabulary::ids);
    builder.add_ids(ids.data(), offsets.data(), docs, nullptr);
    Fixture out{builder.finish_bm25(rs::Bm25Params{}, {}), {}};
    for (int q = 0; q < 500; ++q) {
      rs::Query query;
      const int n = 2 + static_cast<int>(gen() % 7);
      for (int i = 0; i < n; ++i) query.push_back({zipf_term(gen, cdf) / 4 + 20, 1.0f});  // skip the stopword-like top
      out.queries.push_back(query);
    }
    return out;
  }();
  return f;
}

void BM_search(benchmark::State& state, rs::QueryAlgorithm algorithm) {
  const Fixture& f = fixture();
  const size_t k = static_cast<size_t>(state.range(0));
  ragkernels::set_num_threads(1);
  std::vector<int64_t> docs(f.queries.size() * k);
  std::vector<float> scores(f.queries.size() * k);
  for (auto _ : state) {
    f.index->search(f.queries.size(), [&](size_t i) { return f.queries[i]; }, k, algorithm, docs.data(),
                    scores.data());
    benchmark::DoNotOptimize(docs.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(f.queries.size()));
}

}  // namespace

BENCHMARK_CAPTURE(BM_search, exhaustive, rs::QueryAlgorithm::exhaustive)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_search, maxscore, rs::QueryAlgorithm::maxscore)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_search, taat, rs::QueryAlgorithm::term_at_a_time)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_search, bmw, rs::QueryAlgorithm::block_max_wand)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);
