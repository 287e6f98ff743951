// Anserini's FeatureVector (io.anserini.util.FeatureVector) over term ids,
// with its float32/float64 steps kept: weights are float32, norms are summed
// in float64 and each scaled weight is rounded back to float32, as Java does.
//
// One difference: Anserini keeps features in a hash map, so which of several
// equal weights survives pruneToSize depends on hash order. Here the order is
// fixed: higher weight first, then lower term id (the order of first
// occurrence in the corpus), so results never depend on anything else.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace ragkernels::prf {

struct WeightedTerm {
  uint32_t term;
  float weight;
};

// Terms, each at most once; kept sorted by ranks_first after sort_by_weight.
using FeatureVector = std::vector<WeightedTerm>;

inline bool ranks_first(const WeightedTerm& a, const WeightedTerm& b) {
  return a.weight > b.weight || (a.weight == b.weight && a.term < b.term);
}

inline void sort_by_weight(FeatureVector& v) { std::sort(v.begin(), v.end(), ranks_first); }

// pruneToSize(k), k >= 1: the k heaviest terms, sorted by ranks_first.
inline void prune_to_size(FeatureVector& v, size_t k) {
  sort_by_weight(v);
  if (v.size() > k) v.resize(k);
}

// computeL1Norm / computeL2Norm: float64 sums over the current order.
inline double l1_norm(const FeatureVector& v) {
  double norm = 0;
  for (const WeightedTerm& t : v) norm += std::fabs(static_cast<double>(t.weight));
  return norm;
}
inline double l2_norm(const FeatureVector& v) {
  double norm = 0;
  for (const WeightedTerm& t : v) norm += static_cast<double>(t.weight) * static_cast<double>(t.weight);
  return std::sqrt(norm);
}

// scaleToUnitL1Norm / scaleToUnitL2Norm: weight = (float) (weight / norm).
// A zero norm (no terms, or all weights 0) leaves the vector as it is, where
// Java would divide 0 by 0.
inline void scale(FeatureVector& v, double norm) {
  if (norm == 0) return;
  for (WeightedTerm& t : v) t.weight = static_cast<float>(static_cast<double>(t.weight) / norm);
}

// FeatureVector.fromTerms(tokens) of a query: each token adds 1 to its term.
// Query tokens are term ids, and distinct tokens absent from the vocabulary
// have distinct negative ids (-1, -2, ...): Anserini's query vector holds them
// too, so they count in its norms, but they match no document and are left
// out of `known`.
struct QueryCounts {
  FeatureVector known;  // counts of the vocabulary's terms, in query order
  double l1 = 0;        // norms over every token, known or not
  double l2 = 0;
};

inline QueryCounts count_terms(const std::vector<int64_t>& ids) {
  std::vector<std::pair<int64_t, float>> counts;
  for (int64_t id : ids) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == id; });
    if (it == counts.end()) {
      counts.emplace_back(id, 1.0f);
    } else {
      it->second += 1.0f;
    }
  }
  QueryCounts q;
  double squares = 0;
  for (const auto& [id, count] : counts) {
    if (id >= 0) q.known.push_back({static_cast<uint32_t>(id), count});
    q.l1 += count;
    squares += static_cast<double>(count) * count;
  }
  q.l2 = std::sqrt(squares);
  return q;
}

// Sorted term ids of the union of vectors' terms.
inline std::vector<uint32_t> union_terms(const std::vector<FeatureVector>& vectors) {
  std::vector<uint32_t> terms;
  for (const FeatureVector& v : vectors) {
    for (const WeightedTerm& t : v) terms.push_back(t.term);
  }
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  return terms;
}

inline size_t slot_of(const std::vector<uint32_t>& sorted_terms, uint32_t term) {
  return static_cast<size_t>(std::lower_bound(sorted_terms.begin(), sorted_terms.end(), term) - sorted_terms.begin());
}

}  // namespace ragkernels::prf
