#include "rerank/sliding_window.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::rerank {

namespace {

void check_schedule_args(int64_t window, int64_t stride) {
  RK_CHECK_ARG(window >= 1, "sliding_windows: window must be >= 1, got ", window);
  RK_CHECK_ARG(stride >= 1, "sliding_windows: stride must be >= 1, got ", stride);
  RK_CHECK_ARG(stride <= window, "sliding_windows: stride must be <= window (", window, "), got ", stride,
               "; a larger stride leaves items that no window sees");
}

int64_t window_count(int64_t n, int64_t window, int64_t stride) {
  if (n == 0) return 0;
  const int64_t rest = std::max<int64_t>(n - window, 0);
  return 1 + (rest + stride - 1) / stride;
}

Window window_at(int64_t n, int64_t window, int64_t stride, int64_t k) {
  const int64_t end = n - k * stride;
  return Window{std::max<int64_t>(end - window, 0), end};
}

// a before b: higher score first, NaN after every number. A strict weak
// order in which all NaN are equivalent, so stable_sort keeps ties and NaN in
// their current order.
template <typename Score>
bool better(Score a, Score b) {
  if (std::isnan(a)) return false;
  return std::isnan(b) || a > b;
}

void check_windows(ConstView2<int64_t> windows, ConstView2<int64_t> orders, const std::vector<int64_t>& lengths,
                   int64_t width) {
  RK_CHECK_ARG(windows.rows == orders.rows && windows.cols == 2, "sliding_window_order: windows must have shape (",
               orders.rows, ", 2) for ", orders.rows, " orders, got (", windows.rows, ", ", windows.cols, ")");
  for (int64_t q = 0; q < windows.rows; ++q) {
    const int64_t start = windows(q, 0), end = windows(q, 1), n = lengths[static_cast<size_t>(q)];
    RK_CHECK_ARG(0 <= start && start <= end && end <= n, "sliding_window_order: windows[", q, "] = (", start, ", ",
                 end, ") must satisfy 0 <= start <= end <= ", n, " (the length of orders[", q, "])");
    RK_CHECK_ARG(end - start <= width, "sliding_window_order: windows[", q, "] = (", start, ", ", end, ") spans ",
                 end - start, " items but scores has ", width, " columns");
  }
}

}  // namespace

std::vector<Window> sliding_windows(int64_t n, int64_t window, int64_t stride) {
  RK_CHECK_ARG(n >= 0, "sliding_windows: n must be >= 0, got ", n);
  check_schedule_args(window, stride);
  std::vector<Window> out;
  const int64_t count = window_count(n, window, stride);
  out.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) out.push_back(window_at(n, window, stride, k));
  return out;
}

int64_t sliding_window_steps(ConstView1<int64_t> lengths, int64_t window, int64_t stride) {
  check_schedule_args(window, stride);
  int64_t steps = 0;
  for (int64_t q = 0; q < lengths.size; ++q) {
    RK_CHECK_ARG(lengths[q] >= 0, "sliding_windows: n[", q, "] must be >= 0, got ", lengths[q]);
    steps = std::max(steps, window_count(lengths[q], window, stride));
  }
  return steps;
}

void sliding_window_schedule(ConstView1<int64_t> lengths, int64_t window, int64_t stride, int64_t* out) {
  const int64_t steps = sliding_window_steps(lengths, window, stride);
  const int64_t nq = lengths.size;
  std::fill(out, out + steps * nq * 2, int64_t{0});
  for (int64_t q = 0; q < nq; ++q) {
    const int64_t count = window_count(lengths[q], window, stride);
    for (int64_t k = 0; k < count; ++k) {
      const Window w = window_at(lengths[q], window, stride, k);
      out[(k * nq + q) * 2] = w.start;
      out[(k * nq + q) * 2 + 1] = w.end;
    }
  }
}

std::vector<int64_t> order_lengths(ConstView2<int64_t> orders) {
  std::vector<int64_t> lengths(static_cast<size_t>(orders.rows));
  std::vector<int64_t> seen_at(static_cast<size_t>(orders.cols));
  for (int64_t q = 0; q < orders.rows; ++q) {
    int64_t n = 0;
    while (n < orders.cols && orders(q, n) >= 0) ++n;
    for (int64_t j = n; j < orders.cols; ++j) {
      RK_CHECK_ARG(orders(q, j) == -1 || j > n, "sliding_window_order: orders[", q, ", ", j, "] = ", orders(q, j),
                   " is negative; only -1 pads are allowed");
      RK_CHECK_ARG(orders(q, j) == -1, "sliding_window_order: orders[", q, ", ", j, "] = ", orders(q, j),
                   " must be -1: it follows the pad at column ", n, " and pads must come last");
    }
    std::fill(seen_at.begin(), seen_at.begin() + n, int64_t{-1});
    for (int64_t j = 0; j < n; ++j) {
      const int64_t v = orders(q, j);
      RK_CHECK_ARG(v < n, "sliding_window_order: orders[", q, "] must be a permutation of 0..", n - 1,
                   " followed by -1 pads; orders[", q, ", ", j, "] = ", v, " is out of range [0, ", n, ")");
      RK_CHECK_ARG(seen_at[static_cast<size_t>(v)] < 0, "sliding_window_order: orders[", q,
                   "] must be a permutation; orders[", q, ", ", j, "] = ", v, " repeats orders[", q, ", ",
                   seen_at[static_cast<size_t>(v)], "]");
      seen_at[static_cast<size_t>(v)] = j;
    }
    lengths[static_cast<size_t>(q)] = n;
  }
  return lengths;
}

template <typename Score>
void sliding_window_order(ConstView2<int64_t> orders, ConstView2<int64_t> windows, ConstView2<Score> scores,
                          View2<int64_t> out) {
  RK_DCHECK(out.rows == orders.rows && out.cols == orders.cols);
  RK_CHECK_ARG(scores.rows == orders.rows, "sliding_window_order: scores must have one row per order (",
               orders.rows, "), got ", scores.rows);
  const std::vector<int64_t> lengths = order_lengths(orders);
  check_windows(windows, orders, lengths, scores.cols);
  parallel_for(
      0, orders.rows,
      [&](int64_t lo, int64_t hi) {
        std::vector<int64_t> perm;
        std::vector<int64_t> items;
        for (int64_t q = lo; q < hi; ++q) {
          for (int64_t j = 0; j < orders.cols; ++j) out(q, j) = orders(q, j);
          const int64_t start = windows(q, 0), width = windows(q, 1) - start;
          perm.resize(static_cast<size_t>(width));
          std::iota(perm.begin(), perm.end(), int64_t{0});
          std::stable_sort(perm.begin(), perm.end(),
                           [&](int64_t a, int64_t b) { return better(scores(q, a), scores(q, b)); });
          items.resize(static_cast<size_t>(width));
          for (int64_t i = 0; i < width; ++i) items[static_cast<size_t>(i)] = orders(q, start + i);
          for (int64_t i = 0; i < width; ++i)
            out(q, start + i) = items[static_cast<size_t>(perm[static_cast<size_t>(i)])];
        }
      },
      16);
}

template void sliding_window_order<float>(ConstView2<int64_t>, ConstView2<int64_t>, ConstView2<float>,
                                          View2<int64_t>);
template void sliding_window_order<double>(ConstView2<int64_t>, ConstView2<int64_t>, ConstView2<double>,
                                           View2<int64_t>);

}  // namespace ragkernels::rerank
