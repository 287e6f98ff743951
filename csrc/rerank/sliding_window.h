// Sliding-window bookkeeping of listwise LLM reranking.
//
// A listwise reranker (RankGPT: Sun et al., "Is ChatGPT Good at Search?",
// EMNLP 2023; FIRST: Reddy et al., arXiv:2406.15657) sees at most `window`
// passages per prompt. Long lists are reranked by windows slid from the back
// of the list to the front, so that good passages bubble up; the model call
// sits between two windows, so the loop itself stays with the caller and the
// core offers its two halves:
//
//   sliding_windows        the (start, end) windows of a list, in processing
//                          order (RankLLM's schedule, see below);
//   sliding_window_order   one step for a batch of queries: each row's window
//                          of its current ranking reordered by the model's
//                          scores of that window.
//
// Schedule. For a list of n items, window w >= 1 and stride 1 <= s <= w:
//   end_k = n - k*s,  start_k = max(end_k - w, 0),  k = 0, 1, ...
// stopping after the first window that starts at 0; n == 0 has no window and
// n <= w has one, [0, n). That is RankLLM's `sliding_windows` loop
// (castorini/rank_llm, `while end_pos > rank_start and start_pos + step !=
// rank_start`), except that RankLLM processes no window at all when
// n == w - s exactly; RankGPT's original loop (`while start_pos >= 0`) also
// skips the first (n - w) mod s items, which this schedule covers.
// Windows: 1 + ceil(max(n - w, 0) / s) for n >= 1. s > w would leave items
// that no window sees, so it is refused.
//
// Orders. An order is one row of an int64 matrix: a permutation of the
// positions 0..n_q-1 of query q's candidates, best first, followed by -1 pads
// (rows of one batch may hold lists of different lengths). A window (start,
// end) of row q must satisfy 0 <= start <= end <= n_q; start == end is an
// empty window that leaves the row as it is (a query with no window left).
//
// Tie rule: inside a window, higher score first; equal scores keep their
// current relative order (stable); NaN scores go last, in current order.
// Complexity O(Q * (n + w log w)); parallel over rows, identical results
// whatever the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"

namespace ragkernels::rerank {

struct Window {
  int64_t start = 0;
  int64_t end = 0;
};

// Windows of a list of n items in processing order. ValueError unless
// n >= 0, window >= 1 and 1 <= stride <= window.
std::vector<Window> sliding_windows(int64_t n, int64_t window, int64_t stride);

// Steps needed by the longest list: max over q of |sliding_windows(lengths[q])|.
// Same checks as sliding_windows, and lengths[q] >= 0.
int64_t sliding_window_steps(ConstView1<int64_t> lengths, int64_t window, int64_t stride);

// The batched schedule: out is (steps, Q, 2) row-major with steps from
// sliding_window_steps; out[k, q] = the k-th window of query q, or (0, 0)
// (empty) once q has none left.
void sliding_window_schedule(ConstView1<int64_t> lengths, int64_t window, int64_t stride, int64_t* out);

// The list length n_q of every row of `orders` (Q, n), after checking that
// each row is a permutation of 0..n_q-1 followed by -1 pads. ValueError
// naming the row and column otherwise.
std::vector<int64_t> order_lengths(ConstView2<int64_t> orders);

// One window step for Q queries.
//   orders  (Q, n) int64    current rankings, as described above
//   windows (Q, 2) int64    (start, end) per row
//   scores  (Q, w) float32/float64  scores[q, i] scores the item at
//           position windows[q].start + i of orders[q]; columns past the
//           window's width are ignored; requires w >= every width
//   out     (Q, n) int64    orders with each window reordered (may not
//                           alias `orders`)
// ValueError for an invalid order, a window out of [0, n_q] or wider than w.
template <typename Score>
void sliding_window_order(ConstView2<int64_t> orders, ConstView2<int64_t> windows, ConstView2<Score> scores,
                          View2<int64_t> out);

}  // namespace ragkernels::rerank
