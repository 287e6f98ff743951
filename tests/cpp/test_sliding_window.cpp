// GoogleTest for csrc/rerank/sliding_window: hand-computed schedules, one
// window step with ties and NaN, the whole loop against a plain one, thread
// independence and caller errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "rerank/sliding_window.h"

namespace rr = ragkernels::rerank;
using ragkernels::ConstView1;
using ragkernels::ConstView2;
using ragkernels::make_view2;

namespace {

std::vector<std::pair<int64_t, int64_t>> pairs(const std::vector<rr::Window>& w) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& x : w) out.emplace_back(x.start, x.end);
  return out;
}

// One step on Q rows, returning the new orders.
template <typename Score>
std::vector<int64_t> step(const std::vector<int64_t>& orders, int64_t n, const std::vector<int64_t>& windows,
                          const std::vector<Score>& scores, int64_t w) {
  const int64_t q = static_cast<int64_t>(windows.size() / 2);
  std::vector<int64_t> out(orders.size(), -7);
  rr::sliding_window_order<Score>(make_view2(orders.data(), q, n), make_view2(windows.data(), q, 2),
                                  make_view2(scores.data(), q, w), make_view2(out.data(), q, n));
  return out;
}

}  // namespace

TEST(SlidingWindowSchedule, HandComputed) {
  using P = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(pairs(rr::sliding_windows(37, 10, 4)),
            (P{{27, 37}, {23, 33}, {19, 29}, {15, 25}, {11, 21}, {7, 17}, {3, 13}, {0, 9}}));
  EXPECT_EQ(pairs(rr::sliding_windows(100, 20, 10)).size(), 9u);  // RankGPT's default: 80..0
  EXPECT_EQ(pairs(rr::sliding_windows(5, 20, 10)), (P{{0, 5}}));
  EXPECT_EQ(pairs(rr::sliding_windows(10, 20, 10)), (P{{0, 10}}));  // RankLLM would run none
  EXPECT_EQ(pairs(rr::sliding_windows(20, 20, 10)), (P{{0, 20}}));
  EXPECT_EQ(pairs(rr::sliding_windows(1, 1, 1)), (P{{0, 1}}));
  EXPECT_EQ(pairs(rr::sliding_windows(3, 1, 1)), (P{{2, 3}, {1, 2}, {0, 1}}));
  EXPECT_EQ(pairs(rr::sliding_windows(6, 3, 3)), (P{{3, 6}, {0, 3}}));
  EXPECT_TRUE(rr::sliding_windows(0, 4, 2).empty());
}

TEST(SlidingWindowSchedule, BatchedPadsWithEmptyWindows) {
  const std::vector<int64_t> lengths = {3, 25, 0};
  const ConstView1<int64_t> view{lengths.data(), 3, 1};
  ASSERT_EQ(rr::sliding_window_steps(view, 20, 10), 2);
  std::vector<int64_t> out(2 * 3 * 2, -1);
  rr::sliding_window_schedule(view, 20, 10, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{0, 3, 5, 25, 0, 0, 0, 0, 0, 15, 0, 0}));
}

TEST(SlidingWindowSchedule, RejectsBadArguments) {
  EXPECT_THROW(rr::sliding_windows(-1, 4, 2), ragkernels::ValueError);
  EXPECT_THROW(rr::sliding_windows(5, 0, 1), ragkernels::ValueError);
  EXPECT_THROW(rr::sliding_windows(5, 4, 0), ragkernels::ValueError);
  EXPECT_THROW(rr::sliding_windows(5, 4, 5), ragkernels::ValueError);
  const std::vector<int64_t> lengths = {3, -2};
  EXPECT_THROW(rr::sliding_window_steps(ConstView1<int64_t>{lengths.data(), 2, 1}, 4, 2), ragkernels::ValueError);
}

TEST(SlidingWindowOrder, StableTiesAndNanLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  // Row 0: window [1, 6) of 7 items; row 1: padded list of 4, window [0, 4);
  // row 2: empty window.
  const std::vector<int64_t> orders = {6, 5, 4, 3, 2, 1, 0,  //
                                       2, 0, 3, 1, -1, -1, -1,  //
                                       0, 1, 2, 3, 4, 5, 6};
  const std::vector<int64_t> windows = {1, 6, 0, 4, 3, 3};
  const std::vector<float> scores = {nan, 2.0f, -inf, 2.0f, nan, 99.0f,  //
                                     1.0f, 1.0f, inf, 1.0f, 0.0f, 0.0f,   //
                                     0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const auto out = step(orders, 7, windows, scores, 6);
  // Row 0 window items 5,4,3,2,1 with scores nan,2,-inf,2,nan -> 4,2,3,5,1.
  EXPECT_EQ(out, (std::vector<int64_t>{6, 4, 2, 3, 5, 1, 0,  //
                                       3, 2, 0, 1, -1, -1, -1,  //
                                       0, 1, 2, 3, 4, 5, 6}));
}

TEST(SlidingWindowOrder, WholeLoopMatchesPlainLoop) {
  // A fixed per-item score, so each window's scores follow from its items.
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int> level(0, 5);
  const int64_t n = 37;
  std::vector<double> item_score(n);
  for (auto& s : item_score) s = level(rng) == 5 ? std::nan("") : level(rng);
  std::vector<int64_t> order(n), plain(n);
  for (int64_t i = 0; i < n; ++i) order[i] = plain[i] = i;
  for (const auto& w : rr::sliding_windows(n, 10, 4)) {
    std::vector<double> scores(10, 0.0);
    for (int64_t i = w.start; i < w.end; ++i) scores[i - w.start] = item_score[order[i]];
    order = step(order, n, {w.start, w.end}, scores, 10);
    // Plain: repeatedly pick the best remaining item (first on ties, NaN last).
    std::vector<int64_t> rest(plain.begin() + w.start, plain.begin() + w.end);
    for (int64_t i = w.start; i < w.end; ++i) {
      size_t best = 0;
      for (size_t j = 1; j < rest.size(); ++j) {
        const double a = item_score[rest[j]], b = item_score[rest[best]];
        if (!std::isnan(a) && (std::isnan(b) || a > b)) best = j;
      }
      plain[i] = rest[best];
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(best));
    }
  }
  EXPECT_EQ(order, plain);
}

TEST(SlidingWindowOrder, SameResultOnAnyThreadCount) {
  std::mt19937_64 rng(5);
  const int64_t q = 301, n = 23, w = 9;
  std::vector<int64_t> orders(q * n), windows(q * 2);
  std::vector<float> scores(q * w);
  for (int64_t r = 0; r < q; ++r) {
    for (int64_t i = 0; i < n; ++i) orders[r * n + i] = i;
    std::shuffle(orders.begin() + r * n, orders.begin() + (r + 1) * n, rng);
    const int64_t start = static_cast<int64_t>(rng() % (n - w + 1));
    windows[2 * r] = start;
    windows[2 * r + 1] = start + w;
  }
  for (auto& s : scores) s = static_cast<float>(rng() % 4);
  const int saved = ragkernels::num_threads();
  ragkernels::set_num_threads(1);
  const auto one = step(orders, n, windows, scores, w);
  ragkernels::set_num_threads(4);
  const auto four = step(orders, n, windows, scores, w);
  ragkernels::set_num_threads(saved);
  EXPECT_EQ(one, four);
}

TEST(SlidingWindowOrder, RejectsInvalidOrdersAndWindows) {
  const std::vector<float> s(3, 0.0f);
  auto bad = [&](const std::vector<int64_t>& order, const std::vector<int64_t>& window) {
    EXPECT_THROW(step(order, static_cast<int64_t>(order.size()), window, s, 3), ragkernels::ValueError);
  };
  bad({0, 0, 1}, {0, 1});      // repeat
  bad({0, 3, 1}, {0, 1});      // out of range
  bad({0, -2, -1}, {0, 1});    // negative other than -1
  bad({0, -1, 1}, {0, 1});     // item after a pad
  bad({0, 1, -1}, {0, 3});     // window past the list
  bad({2, 1, 0}, {2, 1});      // start > end
  bad({2, 1, 0}, {-1, 1});     // negative start
  const std::vector<float> narrow(2, 0.0f);
  const std::vector<int64_t> order = {2, 1, 0};
  EXPECT_THROW(step(order, 3, {0, 3}, narrow, 2), ragkernels::ValueError);  // wider than scores
  EXPECT_NO_THROW(step(order, 3, {1, 3}, narrow, 2));
}
