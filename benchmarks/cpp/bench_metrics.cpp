// Google Benchmark: the metric kernels on an in-memory synthetic run
// (queries x 1,000 docs, ~150 judgments per query), one thread, and the TREC
// run parser on the same data as text.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "core/parallel.h"
#include "metrics/evaluate.h"
#include "metrics/run_qrels.h"
#include "metrics/trec_io.h"

namespace m = ragkernels::metrics;

namespace {

constexpr int64_t kDepth = 1000;

struct Synthetic {
  m::Qrels qrels;
  m::Run run;
  std::string run_text;
};

Synthetic make_synthetic(int64_t queries) {
  std::mt19937_64 gen(7);
  std::uniform_int_distribution<int64_t> doc(0, 8'000'000);
  std::uniform_int_distribution<int64_t> grade(0, 3);
  std::uniform_real_distribution<double> score(0.0, 100.0);
  m::QrelsBuilder qb;
  m::RunBuilder rb;
  std::string text;
  for (int64_t q = 0; q < queries; ++q) {
    for (int64_t j = 0; j < 150; ++j) qb.add(q, q * 1'000'000 + j * 13, grade(gen));
    for (int64_t j = 0; j < kDepth; ++j) {
      const int64_t d = q * 1'000'000 + j * (j % 2 ? 13 : 7);
      const double s = score(gen);
      rb.add(q, d, s);
      text += std::to_string(q) + " Q0 D" + std::to_string(d) + " " + std::to_string(j + 1) + " " +
              std::to_string(s) + " bench\n";
    }
  }
  return {qb.finish(), rb.finish("bench"), std::move(text)};
}

const Synthetic& data() {
  static const Synthetic s = make_synthetic(1000);
  return s;
}

void BM_evaluate(benchmark::State& state, std::vector<std::string> requests) {
  ragkernels::set_num_threads(1);
  const auto& s = data();
  const auto measures = m::MeasureSet::parse(requests);
  for (auto _ : state) benchmark::DoNotOptimize(m::evaluate(s.qrels, s.run, measures).summary.data());
  state.SetItemsProcessed(state.iterations() * s.run.size());
}

void BM_read_run_text(benchmark::State& state) {
  ragkernels::set_num_threads(1);
  const auto& s = data();
  for (auto _ : state) benchmark::DoNotOptimize(m::read_run_text(s.run_text, "bench").size());
  state.SetItemsProcessed(state.iterations() * s.run.size());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(s.run_text.size()));
}

}  // namespace

BENCHMARK_CAPTURE(BM_evaluate, five_measures, {"map", "ndcg_cut.10", "P.10", "recall.100", "recip_rank"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_evaluate, all_trec, {"all_trec"})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_read_run_text)->Unit(benchmark::kMillisecond);
