// Truncation of a ranked clue list (issue 7 §3): the smallest sufficient
// prefix, then the best set under a token budget.
//
// Input: n candidates in rank order (ranked[t], best first, indices local to
// the query), the value of each rank (finite, >= 0: e.g. the MMR gain
// clamped at 0), and the token count of every candidate (>= 0).
//
// Values. If every value is 0, each rank counts 1 instead (no score tells
// the clues apart, so each weighs the same).
//
// sufficiency s in (0, 1]: keep the smallest prefix 1..m with
//   v_1 + ... + v_m >= s * (v_1 + ... + v_n)
// (sums in rank order, float64; m = 0 when n = 0).
//
// budget B >= 1: among the kept ranks, choose the set of maximal total value
// whose tokens sum to at most B (0/1 knapsack). Ranks of value 0 are never
// chosen. Exactly, by dynamic programming over capacities 0..C, C =
// min(B, the items' total tokens) (items in rank order; an item is taken
// only when it strictly improves, so ties keep the better-ranked set), when
// items * (C + 1) <= max_dp_cells (default
// 2e7: 2.5 MB of decision bits, a few ms at worst); otherwise greedily: by
// value per token, higher first (0 tokens first), ties to the better rank,
// each taken if it still fits -- no optimality guarantee there. After the
// DP, room left that a chosen-able item fits in is filled in rank order: in
// exact arithmetic there is none, but a value ~1e-16 below the total is lost
// in float64 sums and the DP would not take it.
//
// No budget: the kept prefix whole. Output: the chosen candidates in rank
// order, or in document order (ascending candidate index: the caller lays
// out candidates by passage, then position).
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"

namespace ragkernels::select {

struct TruncateConfig {
  int64_t budget = -1;         // >= 1, or -1: no budget
  double sufficiency = -1;     // in (0, 1], or -1: none
  int64_t max_dp_cells = 20000000;
  bool document_order = false;
};

constexpr int64_t kDefaultMaxDpCells = 20000000;

// Returns the chosen candidate indices. tokens is indexed by candidate.
std::vector<int64_t> truncate(const int64_t* ranked, const double* values, int64_t n, const int64_t* tokens,
                              const TruncateConfig& config);

// The value-maximizing subset of items (values > 0, tokens <= budget),
// returned as item positions ascending. exact: the DP, else the greedy.
std::vector<int64_t> knapsack(const std::vector<double>& values, const std::vector<int64_t>& tokens, int64_t budget,
                              bool exact);

// Batch: query g has ranks [rank_offsets[g], rank_offsets[g+1]) of
// `ranked`/`values`, candidates [groups[g], groups[g+1]) of `tokens`.
void truncate_batch(const std::vector<int64_t>& ranked, const std::vector<double>& values,
                    const std::vector<int64_t>& rank_offsets, ConstView1<int64_t> tokens, ConstView1<int64_t> groups,
                    const TruncateConfig& config, std::vector<std::vector<int64_t>>& out);

}  // namespace ragkernels::select
