#include "select/select_clues.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "select/mmr.h"

namespace ragkernels::select {

namespace {

// The per-query scorer columns of step 1 (null where the weight is 0).
struct Columns {
  std::vector<double> data[kNumScorers];
  const double* ptrs[kNumScorers] = {};
  std::vector<double> norms;  // of the sentence embeddings, when used
};

ConstView2<float> sentence_rows(const ClueInputs& in, int64_t s0, int64_t n) {
  return {&in.sentence_embeddings(s0, 0), n, in.sentence_embeddings.cols, in.sentence_embeddings.row_stride, 1};
}

void score_columns(const ClueInputs& in, const ClueConfig& config, int64_t g, Columns& cols) {
  const int64_t s0 = in.groups[g], n = in.groups[g + 1] - s0;
  cols.norms.clear();
  const bool dense_mmr = config.lambda < 1 && config.similarity == Similarity::kDense;
  if (config.weights[static_cast<int>(Scorer::kDense)] > 0 || dense_mmr) {  // shared by both
    cols.norms.resize(static_cast<size_t>(n));
    row_norms(sentence_rows(in, s0, n), cols.norms.data());
  }
  for (int k = 0; k < kNumScorers; ++k) {
    cols.ptrs[k] = nullptr;
    if (!(config.weights[k] > 0)) continue;
    std::vector<double>& col = cols.data[k];
    col.resize(static_cast<size_t>(n));
    cols.ptrs[k] = col.data();
    switch (static_cast<Scorer>(k)) {
      case Scorer::kLexical:
        sentence_bm25_one(in.query_terms, g, in.sentence_terms, s0, n, config.k1, config.b, config.stats,
                          col.data());
        break;
      case Scorer::kDense:
        sentence_cosine_one(&in.query_embeddings(g, 0), sentence_rows(in, s0, n), cols.norms.data(), col.data());
        break;
      case Scorer::kPosition:
        position_prior({in.positions.data + s0 * in.positions.stride, n, in.positions.stride}, {col.data(), n, 1});
        break;
      case Scorer::kPassage:
        position_prior({in.passage_ranks.data + s0 * in.passage_ranks.stride, n, in.passage_ranks.stride},
                       {col.data(), n, 1});
        break;
      case Scorer::kExternal:
        for (int64_t i = 0; i < n; ++i) col[i] = in.external[s0 + i];
        break;
      case Scorer::kPassageDense:
        passage_cosine_one(&in.query_embeddings(g, 0), sentence_rows(in, s0, n),
                           {in.passage_ranks.data + s0 * in.passage_ranks.stride, n, in.passage_ranks.stride},
                           col.data());
        break;
    }
  }
}

void rank(const ClueInputs& in, const ClueConfig& config, int64_t g, const double* rel, const Columns& cols,
          MmrResult& r) {
  const int64_t s0 = in.groups[g], n = in.groups[g + 1] - s0;
  const int64_t k = config.max_picks < 0 ? n : std::min(n, config.max_picks);
  auto run = [&](bool stop) {
    if (config.lambda == 1.0) return rank_by_relevance(rel, n, k, stop, r);
    if (config.similarity == Similarity::kTerms) return mmr(rel, n, TermSimilarity(in.sentence_terms, s0, n),
                                                           config.lambda, k, stop, r);
    mmr(rel, n, DenseSimilarity(sentence_rows(in, s0, n), cols.norms.data()), config.lambda, k, stop, r);
  };
  run(true);
  if (r.order.empty()) {  // no positive gain: the whole order, every value 0
    run(false);
    std::fill(r.gains.begin(), r.gains.end(), 0.0);
    return;
  }
  if (config.temperature > 0) {  // every gain > 0 here (the picks stop at the first gain <= 0)
    const double best = *std::max_element(r.gains.begin(), r.gains.end());
    for (double& v : r.gains) {
      v = std::max(std::exp((v / best - 1) / config.temperature), std::numeric_limits<double>::min());
    }
  }
}

}  // namespace

void select_clues(const ClueInputs& in, const ClueConfig& config, ClueOutput& out) {
  const int64_t nq = in.groups.size - 1;
  const int64_t total = nq > 0 ? in.groups[nq] : 0;
  out.relevance.assign(static_cast<size_t>(total), 0.0);
  std::vector<std::vector<int64_t>> chosen(static_cast<size_t>(nq));
  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    Columns cols;
    MmrResult ranked;
    std::vector<int64_t> tokens;
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t s0 = in.groups[g], n = in.groups[g + 1] - s0;
      if (n == 0) continue;
      score_columns(in, config, g, cols);
      double* rel = out.relevance.data() + s0;
      combine_one(cols.ptrs, config.weights, kNumScorers, n, config.norm, rel);
      rank(in, config, g, rel, cols, ranked);
      tokens.assign(static_cast<size_t>(n), 0);
      if (in.token_counts.size > 0) {
        for (int64_t i = 0; i < n; ++i) tokens[i] = in.token_counts[s0 + i];
      }
      chosen[g] = truncate(ranked.order.data(), ranked.gains.data(), static_cast<int64_t>(ranked.order.size()),
                           tokens.data(), config.truncate);
    }
  });
  out.offsets.assign(1, 0);
  out.selected.clear();
  for (const auto& c : chosen) {
    out.selected.insert(out.selected.end(), c.begin(), c.end());
    out.offsets.push_back(static_cast<int64_t>(out.selected.size()));
  }
}

}  // namespace ragkernels::select
