#include "select/truncate.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/parallel.h"

namespace ragkernels::select {

namespace {

std::vector<int64_t> knapsack_dp(const std::vector<double>& values, const std::vector<int64_t>& tokens,
                                 int64_t budget) {
  const auto n = static_cast<int64_t>(values.size());
  // Capacities above the items' total behave as the total: cap the table.
  budget = std::min(budget, std::accumulate(tokens.begin(), tokens.end(), int64_t(0)));
  const int64_t width = budget + 1;
  std::vector<double> best(static_cast<size_t>(width), 0.0);
  std::vector<uint64_t> take(static_cast<size_t>((n * width + 63) / 64), 0);
  for (int64_t it = 0; it < n; ++it) {
    const int64_t c = tokens[it];
    for (int64_t w = budget; w >= c; --w) {
      const double candidate = best[w - c] + values[it];
      if (candidate > best[w]) {
        best[w] = candidate;
        const int64_t bit = it * width + w;
        take[bit >> 6] |= uint64_t(1) << (bit & 63);
      }
    }
  }
  std::vector<int64_t> chosen;
  int64_t w = budget;
  for (int64_t it = n - 1; it >= 0; --it) {
    const int64_t bit = it * width + w;
    if (take[bit >> 6] >> (bit & 63) & 1) {
      chosen.push_back(it);
      w -= tokens[it];
    }
  }
  std::reverse(chosen.begin(), chosen.end());
  return chosen;
}

std::vector<int64_t> knapsack_greedy(const std::vector<double>& values, const std::vector<int64_t>& tokens,
                                     int64_t budget) {
  const auto n = static_cast<int64_t>(values.size());
  std::vector<double> ratio(static_cast<size_t>(n));
  for (int64_t it = 0; it < n; ++it) {
    ratio[it] = tokens[it] == 0 ? std::numeric_limits<double>::infinity() : values[it] / static_cast<double>(tokens[it]);
  }
  std::vector<int64_t> by_ratio(static_cast<size_t>(n));
  std::iota(by_ratio.begin(), by_ratio.end(), 0);
  std::sort(by_ratio.begin(), by_ratio.end(),
            [&](int64_t a, int64_t b) { return ratio[a] > ratio[b] || (ratio[a] == ratio[b] && a < b); });
  std::vector<int64_t> chosen;
  int64_t used = 0;
  for (const int64_t it : by_ratio) {
    if (used + tokens[it] <= budget) {
      used += tokens[it];
      chosen.push_back(it);
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace

std::vector<int64_t> knapsack(const std::vector<double>& values, const std::vector<int64_t>& tokens, int64_t budget,
                              bool exact) {
  return exact ? knapsack_dp(values, tokens, budget) : knapsack_greedy(values, tokens, budget);
}

namespace {

// A value far below the others vanishes in the DP's float64 sums (1 + 1e-17
// == 1), so the DP can leave room that such an item fits in; any item that
// fits raises the exact optimum, so the room is filled in rank order.
// `picked` (item positions, ascending) stays ascending. A no-op for the
// greedy, which already takes every item that fits.
void fill_leftover(const std::vector<int64_t>& tokens, int64_t budget, std::vector<int64_t>& picked) {
  std::vector<char> taken(tokens.size(), 0);
  int64_t used = 0;
  for (const int64_t it : picked) {
    taken[it] = 1;
    used += tokens[it];
  }
  bool added = false;
  for (size_t it = 0; it < tokens.size(); ++it) {
    if (!taken[it] && tokens[it] <= budget - used) {
      picked.push_back(static_cast<int64_t>(it));
      used += tokens[it];
      added = true;
    }
  }
  if (added) std::sort(picked.begin(), picked.end());
}

}  // namespace

std::vector<int64_t> truncate(const int64_t* ranked, const double* values, int64_t n, const int64_t* tokens,
                              const TruncateConfig& config) {
  double total = 0;
  for (int64_t t = 0; t < n; ++t) total += values[t];
  const bool uniform = !(total > 0);  // every value 0: each rank counts 1
  auto value = [&](int64_t t) { return uniform ? 1.0 : values[t]; };
  if (uniform) total = static_cast<double>(n);
  int64_t kept = n;
  if (config.sufficiency > 0) {
    const double target = config.sufficiency * total;
    double cum = 0;
    for (kept = 0; kept < n;) {
      cum += value(kept++);
      if (cum >= target) break;
    }
  }
  std::vector<int64_t> ranks;  // positions in `ranked`, ascending
  if (config.budget < 0) {
    ranks.resize(static_cast<size_t>(kept));
    std::iota(ranks.begin(), ranks.end(), 0);
  } else {
    std::vector<int64_t> item_rank, item_tokens;
    std::vector<double> item_values;
    for (int64_t t = 0; t < kept; ++t) {
      const int64_t c = tokens[ranked[t]];
      if (value(t) > 0 && c <= config.budget) {
        item_rank.push_back(t);
        item_values.push_back(value(t));
        item_tokens.push_back(c);
      }
    }
    const int64_t capacity =
        std::min(config.budget, std::accumulate(item_tokens.begin(), item_tokens.end(), int64_t(0)));
    const double cells = static_cast<double>(item_rank.size()) * static_cast<double>(capacity + 1);
    const bool exact = cells <= static_cast<double>(config.max_dp_cells);
    std::vector<int64_t> picked = knapsack(item_values, item_tokens, config.budget, exact);
    fill_leftover(item_tokens, config.budget, picked);
    for (const int64_t it : picked) ranks.push_back(item_rank[it]);
  }
  std::vector<int64_t> chosen;
  chosen.reserve(ranks.size());
  for (const int64_t t : ranks) chosen.push_back(ranked[t]);
  if (config.document_order) std::sort(chosen.begin(), chosen.end());
  return chosen;
}

void truncate_batch(const std::vector<int64_t>& ranked, const std::vector<double>& values,
                    const std::vector<int64_t>& rank_offsets, ConstView1<int64_t> tokens, ConstView1<int64_t> groups,
                    const TruncateConfig& config, std::vector<std::vector<int64_t>>& out) {
  out.assign(static_cast<size_t>(groups.size - 1), {});
  parallel_for(0, groups.size - 1, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> local_tokens;
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t s0 = groups[g], n = groups[g + 1] - s0;
      local_tokens.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) local_tokens[i] = tokens[s0 + i];
      const int64_t r0 = rank_offsets[g];
      out[g] = truncate(ranked.data() + r0, values.data() + r0, rank_offsets[g + 1] - r0, local_tokens.data(),
                        config);
    }
  });
}

}  // namespace ragkernels::select
