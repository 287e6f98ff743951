// GoogleTest for csrc/fusion: hand-computed fusions, the ranx order of ties,
// array conversion, thread independence and caller errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "fusion/fuse.h"
#include "fusion/normalize.h"
#include "fusion/ranx_order.h"
#include "fusion/run_lists.h"

namespace rf = ragkernels::fusion;

namespace {

// One query; run r lists (doc, score) pairs in insertion order.
rf::RunLists one_query(const std::vector<std::vector<std::pair<int32_t, double>>>& runs, int64_t n_docs) {
  rf::RunLists l;
  l.n_queries = 1;
  l.n_runs = static_cast<int64_t>(runs.size());
  l.offsets.push_back(0);
  for (const auto& run : runs) {
    for (auto [d, s] : run) {
      l.docs.push_back(d);
      l.scores.push_back(s);
    }
    l.offsets.push_back(static_cast<int64_t>(l.docs.size()));
  }
  l.n_docs = {n_docs};
  l.presorted.assign(runs.size(), 0);
  return l;
}

rf::FuseOptions options(rf::Method m, rf::Norm n) {
  rf::FuseOptions o;
  o.method = m;
  o.norm = n;
  return o;
}

}  // namespace

TEST(FusionRanxOrder, SmallArraysSortDescendingWithInsertionSortTies) {
  // Under 15 elements numba's quicksort is an insertion sort: stable.
  const std::vector<double> v{1.0, 3.0, 2.0, 3.0, 1.0};
  std::vector<int32_t> perm(v.size()), stack;
  rf::ranx_argsort(v.data(), 5, perm.data(), stack);
  EXPECT_EQ(perm, (std::vector<int32_t>{1, 3, 2, 0, 4}));
}

TEST(FusionRanxOrder, LargeTiedArraysFollowNumbaPartition) {
  // 16 equal scores: one median-of-three partition, then insertion sorts.
  // Expected: numba 0.68 njit(lambda x: np.argsort(-x))(np.zeros(16)).
  std::vector<double> v(16, 0.0);
  std::vector<int32_t> perm(16), stack;
  rf::ranx_argsort(v.data(), 16, perm.data(), stack);
  const std::vector<int32_t> expected{14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15};
  EXPECT_EQ(perm, expected);
}

TEST(FusionRanxOrder, RadixPathEqualsNumbaReplay) {
  // Distinct values take the radix sort, ties the replay: both must give the
  // permutation numba gives (the replay is forced with likely_ties).
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  for (int n : {63, 64, 65, 200, 1500}) {
    for (int ties : {0, 1, 2}) {
      std::vector<double> v(static_cast<size_t>(n));
      for (auto& x : v) x = ties == 2 ? static_cast<double>(rng() % 7) : normal(rng);
      if (ties == 1) v[5] = v[static_cast<size_t>(n) - 3];  // one tie
      if (n == 200) {
        v[0] = 0.0;
        v[1] = -0.0;  // equal values with different bits
      }
      std::vector<int32_t> fast(v.size()), replay(v.size()), stack;
      rf::ranx_argsort(v.data(), n, fast.data(), stack);
      rf::ranx_argsort(v.data(), n, replay.data(), stack, true);
      EXPECT_EQ(fast, replay) << "n " << n << " ties " << ties;
      for (int i = 0; i + 1 < n; ++i) EXPECT_GE(v[static_cast<size_t>(fast[i])], v[static_cast<size_t>(fast[i + 1])]);
    }
  }
}

TEST(FusionRanxOrder, NanGoesLast) {
  const std::vector<double> v{NAN, 1.0, 2.0};
  std::vector<int32_t> perm(3), stack;
  rf::ranx_argsort(v.data(), 3, perm.data(), stack);
  EXPECT_EQ(perm, (std::vector<int32_t>{2, 1, 0}));
}

TEST(FusionNormalize, HandComputed) {
  std::vector<double> s{4.0, 2.0, 0.0};
  rf::normalize(rf::Norm::kMinMax, s.data(), 3);
  EXPECT_EQ(s, (std::vector<double>{1.0, 0.5, 0.0}));
  s = {4.0, 2.0, 0.0};
  rf::normalize(rf::Norm::kSum, s.data(), 3);
  EXPECT_EQ(s, (std::vector<double>{4.0 / 6, 2.0 / 6, 0.0}));
  s = {3.0, 1.0};
  rf::normalize(rf::Norm::kZmuv, s.data(), 2);
  EXPECT_EQ(s, (std::vector<double>{1.0, -1.0}));
  s = {-3.0, -4.0};
  rf::normalize(rf::Norm::kMax, s.data(), 2);  // ranx divides by the 1e-9 floor
  EXPECT_DOUBLE_EQ(s[0], -3e9);
  s = {9.0, 8.0, 7.0, 6.0};
  rf::normalize(rf::Norm::kRank, s.data(), 4);
  EXPECT_EQ(s, (std::vector<double>{1.0, 0.75, 0.5, 0.25}));
  EXPECT_THROW(rf::parse_norm("l2"), ragkernels::ValueError);
}

TEST(FusionFuse, RrfHandComputed) {
  // run 0: d0 > d1; run 1: d1 > d2. rrf(d1) = 1/62 + 1/61.
  auto l = one_query({{{0, 2.0}, {1, 1.0}}, {{1, 5.0}, {2, 4.0}}}, 3);
  const auto f = rf::fuse(l, options(rf::Method::kRrf, rf::Norm::kMinMax));
  EXPECT_EQ(f.docs, (std::vector<int32_t>{1, 0, 2}));
  EXPECT_EQ(f.scores[0], 1.0 / 62 + 1.0 / 61);
  EXPECT_EQ(f.scores[1], 1.0 / 61);
  EXPECT_EQ(f.scores[2], 1.0 / 62);
}

TEST(FusionFuse, CombFamilyHandComputed) {
  // Raw scores (no norm): d0 in both runs (1, 3), d1 only in run 0 (2).
  auto l = one_query({{{1, 2.0}, {0, 1.0}}, {{0, 3.0}}}, 2);
  auto score_of = [&](rf::Method m, int32_t doc) -> double {
    rf::FuseOptions o = options(m, rf::Norm::kNone);
    if (rf::needs_weights(m)) o.weights = {0.25, 0.75};
    o.gamma = 2.0;
    const auto f = rf::fuse(l, o);
    for (size_t i = 0; i < f.docs.size(); ++i)
      if (f.docs[i] == doc) return f.scores[i];
    return NAN;
  };
  EXPECT_EQ(score_of(rf::Method::kSum, 0), 4.0);
  EXPECT_EQ(score_of(rf::Method::kMnz, 0), 8.0);
  EXPECT_EQ(score_of(rf::Method::kMnz, 1), 2.0);
  EXPECT_EQ(score_of(rf::Method::kMax, 0), 3.0);
  EXPECT_EQ(score_of(rf::Method::kMin, 0), 1.0);
  EXPECT_EQ(score_of(rf::Method::kMin, 1), 2.0);  // missing = 1e9 never wins
  EXPECT_EQ(score_of(rf::Method::kMed, 0), 2.0);
  EXPECT_EQ(score_of(rf::Method::kAnz, 0), 2.0);
  EXPECT_EQ(score_of(rf::Method::kGmnz, 0), 16.0);
  EXPECT_EQ(score_of(rf::Method::kWsum, 0), 0.25 + 2.25);
  EXPECT_EQ(score_of(rf::Method::kWsum, 1), 0.5);
  EXPECT_EQ(score_of(rf::Method::kWmnz, 0), 4.0 * 1.0);
  EXPECT_EQ(score_of(rf::Method::kMixed, 0), (0.25 + 2.25) * std::sqrt(2.0));
}

TEST(FusionFuse, TopKAndEmptyQueries) {
  rf::RunLists l = one_query({{{0, 1.0}, {1, 2.0}, {2, 3.0}}}, 3);
  rf::FuseOptions o = options(rf::Method::kSum, rf::Norm::kNone);
  o.top_k = 2;
  auto f = rf::fuse(l, o);
  EXPECT_EQ(f.docs, (std::vector<int32_t>{2, 1}));
  rf::RunLists empty = one_query({{}, {}}, 0);
  f = rf::fuse(empty, options(rf::Method::kRrf, rf::Norm::kMinMax));
  EXPECT_EQ(f.offsets, (std::vector<int64_t>{0, 0}));
}

TEST(FusionFuse, CallerErrors) {
  rf::RunLists l = one_query({{{0, NAN}}}, 1);
  EXPECT_THROW(rf::fuse(l, options(rf::Method::kSum, rf::Norm::kNone)), ragkernels::ValueError);
  l = one_query({{{0, 1.0}, {1, -INFINITY}}}, 2);  // issue 14: min-max made the whole row NaN
  EXPECT_THROW(rf::fuse(l, options(rf::Method::kSum, rf::Norm::kMinMax)), ragkernels::ValueError);
  l = one_query({{{0, 1.0}}}, 1);
  EXPECT_THROW(rf::fuse(l, options(rf::Method::kWsum, rf::Norm::kNone)), ragkernels::ValueError);
  rf::FuseOptions o = options(rf::Method::kRrf, rf::Norm::kNone);
  o.k = -1;
  EXPECT_THROW(rf::fuse(l, o), ragkernels::ValueError);
  EXPECT_THROW(rf::parse_method("combsum"), ragkernels::ValueError);
  EXPECT_EQ(rf::parse_method("log_isr"), rf::Method::kLogIsr);
}

TEST(FusionArrays, InternsIdsAndSkipsPads) {
  const std::vector<int64_t> ids0{7, -1, 9, 5, 5, 5};
  const std::vector<float> s0{1.0f, 0.0f, 2.0f, 1.0f, 0.0f, 0.0f};
  const std::vector<int32_t> ids1{9, 4, -1, 5, 6, 7};
  const std::vector<double> s1{3.0, 2.0, 0.0, 1.0, 2.0, 3.0};
  rf::ArrayRun a, b;
  a.ids64 = ragkernels::make_view2(ids0.data(), 2, 3);
  a.scores32 = ragkernels::make_view2(s0.data(), 2, 3);
  a.wide_scores = false;
  b.ids32 = ragkernels::make_view2(ids1.data(), 2, 3);
  b.wide_ids = false;
  b.scores64 = ragkernels::make_view2(s1.data(), 2, 3);
  // Row 1 of run 0 repeats doc 5.
  EXPECT_THROW(rf::runs_from_arrays({a, b}, 2), ragkernels::ValueError);
  a.ids64.rows = b.ids32.rows = a.scores32.rows = b.scores64.rows = 1;
  const auto in = rf::runs_from_arrays({a, b}, 1);
  EXPECT_EQ(in.lists.n_docs[0], 3);
  EXPECT_EQ(in.lists.docs, (std::vector<int32_t>{0, 1, 1, 2}));
  EXPECT_EQ(std::vector<int64_t>(in.raw_ids.begin(), in.raw_ids.begin() + 3), (std::vector<int64_t>{7, 9, 4}));
}

TEST(FusionFuse, ThreadCountDoesNotChangeResults) {
  std::mt19937 rng(3);
  rf::RunLists l;
  l.n_queries = 200;
  l.n_runs = 3;
  l.offsets.push_back(0);
  for (int64_t q = 0; q < l.n_queries; ++q) {
    for (int r = 0; r < 3; ++r) {
      for (int32_t d = 0; d < 40; ++d) {
        if (rng() % 3 == 0) continue;
        l.docs.push_back(d);
        l.scores.push_back(static_cast<double>(rng() % 5));
      }
      l.offsets.push_back(static_cast<int64_t>(l.docs.size()));
    }
    l.n_docs.push_back(40);
  }
  l.presorted.assign(3, 0);
  // Every doc must occur: add any missing one to run 0 of its query.
  rf::RunLists full = l;
  full.docs.clear();
  full.scores.clear();
  full.offsets.assign(1, 0);
  for (int64_t q = 0; q < l.n_queries; ++q) {
    std::vector<bool> seen(40, false);
    for (int64_t i = l.offsets[static_cast<size_t>(q * 3)]; i < l.offsets[static_cast<size_t>(q * 3 + 3)]; ++i)
      seen[static_cast<size_t>(l.docs[static_cast<size_t>(i)])] = true;
    for (int r = 0; r < 3; ++r) {
      for (int64_t i = l.offsets[static_cast<size_t>(q * 3 + r)]; i < l.offsets[static_cast<size_t>(q * 3 + r + 1)]; ++i) {
        full.docs.push_back(l.docs[static_cast<size_t>(i)]);
        full.scores.push_back(l.scores[static_cast<size_t>(i)]);
      }
      if (r == 0)
        for (int32_t d = 0; d < 40; ++d)
          if (!seen[static_cast<size_t>(d)]) {
            full.docs.push_back(d);
            full.scores.push_back(-1.0);
          }
      full.offsets.push_back(static_cast<int64_t>(full.docs.size()));
    }
  }
  const int before = ragkernels::num_threads();
  ragkernels::set_num_threads(1);
  const auto one = rf::fuse(full, options(rf::Method::kMnz, rf::Norm::kZmuv));
  ragkernels::set_num_threads(4);
  const auto four = rf::fuse(full, options(rf::Method::kMnz, rf::Norm::kZmuv));
  ragkernels::set_num_threads(before);
  EXPECT_EQ(one.docs, four.docs);
  EXPECT_EQ(one.scores, four.scores);
}
