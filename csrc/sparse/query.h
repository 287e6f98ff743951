// What the query algorithms share: a query term's cursor with its weight and
// bound, and the rules that make pruning exact.
//
// A document's score is the float32 sum of its terms' contributions
// weight * base score, in the canonical term order (largest term maximum
// first, ties by query position), plus the query's constant (the summed
// nonoccurrence of BM25L/BM25+, else 0). Every algorithm computes a
// candidate's final score that way, from its saved contributions, so pruned and
// exhaustive search return bit-identical scores. Pruning decisions compare
// upper bounds widened by the worst float32 rounding of a sum of m terms
// (safe_bound), so rounding can never prune a document that would enter.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "sparse/posting_cursor.h"
#include "sparse/topk_queue.h"

namespace ragkernels::sparse {

struct QueryTerm {
  uint32_t term;
  float weight;  // BM25: times the term occurs in the query; impacts: query weight (>= 0)
};

struct TermCursor {
  PostingCursor postings;
  uint32_t term = 0;
  float weight = 1;
  float max_score = 0;      // weight * the term's largest base score
  uint32_t position = 0;    // index of the term in the canonical (summation) order

  // What the current posting adds to its document's score.
  float contribution() const { return weight * postings.score(); }
};

// Per-thread state of one query: contributions by query position.
struct QueryContext {
  std::vector<TermCursor> terms;      // in canonical order (see above)
  std::vector<float> contributions;   // [terms.size()], zero between candidates
  // Scratch of maxscore_query, kept between queries to avoid reallocating.
  std::vector<double> suffix;
  std::vector<float> window;
  float constant = 0;                 // added to every final score
  double bound_factor = 1;            // see safe_bound

  void prepare_bounds() {
    const double m = static_cast<double>(terms.size());
    // float32 sums of m non-negative terms err by < m * 2^-24 relative, for
    // the score and for the bound alike; the final + constant rounds once more.
    bound_factor = 1 + (2 * m + 8) * 0x1p-24;
    contributions.assign(terms.size(), 0.0f);
  }
  // An upper bound of the final score of a document whose contributions sum
  // to at most `raw` (a sum of term maxima, in float64).
  double safe_bound(double raw) const { return raw * bound_factor + constant; }

  // The final score of a candidate from its saved contributions; clears them.
  float finish_candidate() {
    float sum = 0;
    for (float& c : contributions) {
      sum += c;
      c = 0;
    }
    return sum + constant;
  }
};

}  // namespace ragkernels::sparse
