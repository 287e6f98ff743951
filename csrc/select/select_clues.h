// The fused clue-selection pipeline (issue 7 §2-3), for Q queries in one
// call: score -> combine -> rank (MMR) -> truncate, each query on its own
// thread slot, no Python anywhere, so a binding runs it without the GIL.
//
// Per query g, over its candidates [groups[g], groups[g+1]):
//  1. scorer columns, each present only when its weight is > 0:
//     lexical  sentence_bm25 against query_terms[g] (see scoring.h)
//     dense    cosine(query_embeddings[g], sentence_embeddings[s])
//     position 1 / (1 + positions[s])        (position in its passage)
//     passage  1 / (1 + passage_ranks[s])    (rank of its passage)
//     external external[s]                   (e.g. a cross-encoder's)
//     passage_dense  cosine(query_embeddings[g], sum of the embeddings of
//              the sentences sharing passage_ranks[s]) (passage_cosine_one):
//              how relevant the sentence's passage is as a whole
//  2. relevance = combine_one: per-query normalization (min-max or max),
//     weighted mean.
//  3. rank: MMR with lambda (mmr.h) over the sentence embeddings
//     (similarity kDense) or term-frequency vectors (kTerms), stopping at
//     the first pick whose gain is <= 0, or after max_picks picks: value
//     of a pick = its gain, or with temperature T > 0
//     exp((gain / best gain - 1) / T) (at least the smallest normal double,
//     so no value underflows to 0), which makes the values behave like
//     probabilities (the budget knapsack then maximizes the expected number
//     of answer-bearing clues kept, not the sum of raw scores, which
//     prefers many short weak clues to one long strong one; sufficiency
//     becomes a nucleus cut). Relative to the best gain, so T means the same
//     whatever the relevance's range (a constant scorer column adds 0 and
//     lowers every relevance). If no pick has a positive gain, the MMR order
//     (max_picks long) with every value 0 (truncate counts each rank 1).
//     MMR costs O(n d) per pick: max_picks is what bounds the latency
//     (a pool a few times the budget's worth of sentences is plenty).
//  4. truncate (truncate.h) with the sufficiency / budget / order config.
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"
#include "select/scoring.h"
#include "select/truncate.h"

namespace ragkernels::select {

enum class Scorer : int { kLexical = 0, kDense = 1, kPosition = 2, kPassage = 3, kExternal = 4, kPassageDense = 5 };
constexpr int kNumScorers = 6;

enum class Similarity { kDense, kTerms };

// Absent arrays have size (or rows) 0; those a positive weight needs must
// be present (the binding checks it).
struct ClueInputs {
  ConstView1<int64_t> groups;               // (Q + 1,)
  Ragged query_terms;                       // Q lists
  Ragged sentence_terms;                    // S lists
  ConstView2<float> query_embeddings;       // (Q, d), rows contiguous
  ConstView2<float> sentence_embeddings;    // (S, d), rows contiguous
  ConstView1<int64_t> positions;            // (S,), >= 0
  ConstView1<int64_t> passage_ranks;        // (S,), >= 0 (also the passage of a sentence)
  ConstView1<double> external;              // (S,), finite
  ConstView1<int64_t> token_counts;         // (S,), >= 0 (needed with a budget)
};

struct ClueConfig {
  double k1 = 1.5, b = 0.75;
  const Bm25Stats* stats = nullptr;         // null: statistics of the query's sentences
  double weights[kNumScorers] = {1, 0, 0, 0, 0, 0};
  Norm norm = Norm::kMinMax;
  double lambda = 1.0;                      // 1: no MMR
  int64_t max_picks = -1;                   // >= 1: rank at most this many; -1: all
  double temperature = 0;                   // > 0: values exp((gain / best - 1) / T); 0: the gains
  Similarity similarity = Similarity::kDense;
  TruncateConfig truncate;
};

struct ClueOutput {
  std::vector<double> relevance;            // (S,) combined scores
  std::vector<int64_t> selected;            // chosen candidates, local indices
  std::vector<int64_t> offsets;             // (Q + 1,) into selected
};

void select_clues(const ClueInputs& in, const ClueConfig& config, ClueOutput& out);

}  // namespace ragkernels::select
