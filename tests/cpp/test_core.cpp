// GoogleTest for csrc/core: parallel_for and topk, hand-checked cases.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/topk.h"

namespace rk = ragkernels;

TEST(ParallelFor, CoversEveryIndexOnceForAnyThreadCount) {
  const int before = rk::num_threads();
  for (int threads : {1, 2, 3, 7}) {
    rk::set_num_threads(threads);
    std::vector<int> hits(1001, 0);
    rk::parallel_for(0, 1001, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) hits[i]++;
    });
    for (int h : hits) EXPECT_EQ(h, 1);
  }
  rk::set_num_threads(before);
}

TEST(ParallelFor, RethrowsAWorkersExceptionAfterJoin) {
  const int before = rk::num_threads();
  rk::set_num_threads(4);
  EXPECT_THROW(rk::parallel_for(0, 100,
                                [](int64_t lo, int64_t) {
                                  if (lo > 0) throw rk::ValueError("boom");
                                }),
               rk::ValueError);
  rk::set_num_threads(before);
}

TEST(ParallelFor, RejectsZeroThreads) { EXPECT_THROW(rk::set_num_threads(0), rk::ValueError); }

TEST(TopK, OrdersByScoreThenIndexWithNaNLastAndPads) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> s = {1, nan, 3, 3, -0.0f, 0.0f, -inf, 2};
  std::vector<int64_t> ids(10);
  std::vector<float> top(10);
  rk::topk<float>(rk::make_view2<const float>(s.data(), 1, 8), 10, rk::make_view2(ids.data(), 1, 10),
                  rk::make_view2(top.data(), 1, 10));
  EXPECT_EQ(ids, (std::vector<int64_t>{2, 3, 7, 0, 4, 5, 6, 1, -1, -1}));
  EXPECT_TRUE(std::isnan(top[7]));
  EXPECT_EQ(top[9], -inf);
}

TEST(TopK, LongRowSmallKUsesTheHeapPathCorrectly) {
  std::vector<double> s(10000);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<double>((i * 7919) % 1000);
  std::vector<int64_t> ids(3);
  std::vector<double> top(3);
  rk::topk<double>(rk::make_view2<const double>(s.data(), 1, 10000), 3, rk::make_view2(ids.data(), 1, 3),
                   rk::make_view2(top.data(), 1, 3));
  // 999 = (i * 7919) % 1000 first holds at i = 321, then every 1000 after.
  EXPECT_EQ(ids, (std::vector<int64_t>{321, 1321, 2321}));
  EXPECT_EQ(top, (std::vector<double>{999, 999, 999}));
}

TEST(TopK, RejectsKBelowOne) {
  std::vector<float> s = {1};
  std::vector<int64_t> ids(1);
  std::vector<float> top(1);
  EXPECT_THROW(rk::topk<float>(rk::make_view2<const float>(s.data(), 1, 1), 0, rk::make_view2(ids.data(), 1, 0),
                               rk::make_view2(top.data(), 1, 0)),
               rk::ValueError);
}
