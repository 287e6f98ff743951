// Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998), exact
// greedy, over one query's n candidates:
//
//   pick_t = argmax over unpicked i of
//            lambda * rel(i) - (1 - lambda) * max_{j picked} sim(i, j)
//
// with the max over the empty set taken as 0 (so the first pick is the most
// relevant candidate when lambda > 0); ties go to the lower index; sim is a
// cosine clamped to [-1, 1]. The value of the expression at the moment a
// candidate is picked is its gain; gains never increase along the order.
//
// Lazy evaluation, exact: from the second pick on, max_j sim(i, j) only
// grows as picks are added, so a candidate's score computed against the
// first c picks bounds its current score from above. Candidates wait in a
// max-heap on (bound, -index); the top is refreshed against the picks it has
// not seen yet and picked once its score is current, which is then the
// argmax with the lower-index tie rule, bit for bit the eager result (the
// score is a pure function of the same max). Before the second pick the
// bound is lambda * rel(i) - (1 - lambda) * min_sim. Worst case O(n^2 d)
// as the eager loop; typically a few refreshes per pick. lambda == 1 is a
// sort by relevance (no similarity is computed).
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"
#include "select/scoring.h"

namespace ragkernels::select {

// Cosine of two rows of a (n, d) float32 matrix; a zero row has cosine 0.
class DenseSimilarity {
 public:
  // norms: the rows' norms (row_norms), or null to compute them.
  DenseSimilarity(ConstView2<float> rows, const double* norms = nullptr);
  double operator()(int64_t i, int64_t j) const;
  static constexpr double kMin = -1.0;

 private:
  ConstView2<float> rows_;
  std::vector<double> norms_;
};

// Cosine of term-frequency vectors: sentence i's terms are
// terms.values[terms.begin(first + i), terms.end(first + i)); negative ids
// are ignored; a sentence without terms has cosine 0 with everything.
class TermSimilarity {
 public:
  TermSimilarity(const Ragged& terms, int64_t first, int64_t n);
  double operator()(int64_t i, int64_t j) const;
  static constexpr double kMin = 0.0;

 private:
  std::vector<int64_t> offsets_;  // (n + 1,) into ids_/tf_
  std::vector<int64_t> ids_;      // per sentence: distinct ids ascending
  std::vector<double> tf_;
  std::vector<double> norms_;
};

struct MmrResult {
  std::vector<int64_t> order;  // candidate indices, picked first to last
  std::vector<double> gains;   // the MMR score of each pick when picked
};

// Picks min(k, n) candidates (k >= 0). stop_at_nonpositive: stop before the
// first pick whose gain is <= 0 (from the second pick on, gains never grow,
// so no later pick would have a positive gain either).
// relevance: (n,) finite; lambda in [0, 1].
template <typename Sim>
void mmr(const double* relevance, int64_t n, const Sim& sim, double lambda, int64_t k, bool stop_at_nonpositive,
         MmrResult& out);

// Order by relevance, higher first, ties to the lower index (lambda == 1).
void rank_by_relevance(const double* relevance, int64_t n, int64_t k, bool stop_at_nonpositive, MmrResult& out);

// Batch: query g's candidates are [groups[g], groups[g+1]); order holds
// indices local to the query. embeddings: (S, d), or rows == 0 to use the
// term vectors of `terms` (S lists).
void mmr_batch(ConstView1<double> relevance, ConstView2<float> embeddings, const Ragged* terms,
               ConstView1<int64_t> groups, double lambda, int64_t k, std::vector<MmrResult>& out);

}  // namespace ragkernels::select
