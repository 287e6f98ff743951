// GoogleTest for csrc/select: hand-computed BM25 and combination, lazy MMR
// against an eager loop, knapsack DP against brute force, sufficiency,
// and the fused pipeline under 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "select/mmr.h"
#include "select/scoring.h"
#include "select/select_clues.h"
#include "select/truncate.h"

namespace rs = ragkernels::select;
using ragkernels::ConstView1;
using ragkernels::ConstView2;
using ragkernels::View1;

namespace {

template <typename T>
ConstView1<T> view(const std::vector<T>& v) {
  return ConstView1<T>{v.data(), static_cast<int64_t>(v.size()), 1};
}

TEST(SelectBm25, HandComputedFromSentences) {
  // Query {7}; sentences {7, 1}, {2}, {7, 7, 3}: N = 3, df = 2, avgdl = 2.
  const std::vector<int64_t> qv{7}, qo{0, 1}, sv{7, 1, 2, 7, 7, 3}, so{0, 2, 3, 6}, groups{0, 3};
  const rs::Ragged q{view(qv), view(qo)}, s{view(sv), view(so)};
  std::vector<double> out(3);
  rs::sentence_bm25(q, s, view(groups), 1.5, 0.75, nullptr, View1<double>{out.data(), 3, 1});
  const double idf = std::log(1 + (3 - 2 + 0.5) / (2 + 0.5));
  EXPECT_DOUBLE_EQ(out[0], idf * 1 / (1 + 1.5 * (0.25 + 0.75 * 2 / 2.0)));
  EXPECT_EQ(out[1], 0.0);
  EXPECT_DOUBLE_EQ(out[2], idf * 2 / (2 + 1.5 * (0.25 + 0.75 * 3 / 2.0)));
}

TEST(SelectPassageCosine, SumOfThePassagesSentences) {
  // Passage 9 = rows 0 and 2, (1, 0) + (0, 3) = (1, 3); passage -4 = row 1.
  const std::vector<float> rows{1, 0, 2, 0, 0, 3}, query{1, 0};
  const std::vector<int64_t> passages{9, -4, 9};
  double out[3];
  rs::passage_cosine_one(query.data(), ConstView2<float>{rows.data(), 3, 2, 2, 1}, view(passages), out);
  EXPECT_DOUBLE_EQ(out[0], 1 / std::sqrt(10.0));
  EXPECT_DOUBLE_EQ(out[1], 1.0);
  EXPECT_DOUBLE_EQ(out[2], out[0]);
  const std::vector<float> zero{0, 0};  // a zero query: 0
  rs::passage_cosine_one(zero.data(), ConstView2<float>{rows.data(), 3, 2, 2, 1}, view(passages), out);
  EXPECT_EQ(out[0], 0.0);
}

TEST(SelectCombine, MinMaxWeightedMean) {
  const double a[3] = {1, 3, 2}, b[3] = {5, 5, 5};
  const double* cols[2] = {a, b};
  const double w[2] = {3, 1};
  double out[3];
  rs::combine_one(cols, w, 2, 3, rs::Norm::kMinMax, out);  // the constant column adds 0
  EXPECT_DOUBLE_EQ(out[0], 0.0);
  EXPECT_DOUBLE_EQ(out[1], 0.75);
  EXPECT_DOUBLE_EQ(out[2], 0.375);
  rs::combine_one(cols, w, 2, 3, rs::Norm::kMax, out);  // s / max: (3 * a/3 + 1 * 1) / 4
  EXPECT_DOUBLE_EQ(out[0], (3 * (1 / 3.0) + 1) / 4);
  EXPECT_DOUBLE_EQ(out[1], 1.0);
  EXPECT_DOUBLE_EQ(out[2], (3 * (2 / 3.0) + 1) / 4);
}

// The eager loop MMR must equal.
rs::MmrResult eager_mmr(const std::vector<double>& rel, const rs::DenseSimilarity& sim, double lambda) {
  const auto n = static_cast<int64_t>(rel.size());
  rs::MmrResult r;
  std::vector<bool> picked(rel.size());
  for (int64_t step = 0; step < n; ++step) {
    int64_t best = -1;
    double best_score = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (picked[i]) continue;
      double m = 0;
      for (size_t p = 0; p < r.order.size(); ++p) m = p == 0 ? sim(i, r.order[p]) : std::max(m, sim(i, r.order[p]));
      const double score = lambda * rel[i] - (1 - lambda) * m;
      if (best < 0 || score > best_score) best = i, best_score = score;
    }
    picked[best] = true;
    r.order.push_back(best);
    r.gains.push_back(best_score);
  }
  return r;
}

TEST(SelectMmr, LazyEqualsEager) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> small(-2, 2);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t n = 1 + trial * 3, d = 5;
    std::vector<float> emb(static_cast<size_t>(n * d));
    for (auto& x : emb) x = static_cast<float>(small(rng));  // exact ties
    std::vector<double> rel(static_cast<size_t>(n));
    for (auto& x : rel) x = (small(rng) + 2) / 4.0;
    const ConstView2<float> rows = ragkernels::make_view2(static_cast<const float*>(emb.data()), n, d);
    const rs::DenseSimilarity sim(rows);
    for (const double lambda : {0.0, 0.25, 0.7, 1.0}) {
      rs::MmrResult lazy;
      rs::mmr(rel.data(), n, sim, lambda, n, false, lazy);
      const rs::MmrResult eager = eager_mmr(rel, sim, lambda);
      EXPECT_EQ(lazy.order, eager.order) << "trial " << trial << " lambda " << lambda;
      EXPECT_EQ(lazy.gains, eager.gains);
    }
  }
}

TEST(SelectMmr, DuplicateIsPickedLast) {
  const std::vector<float> emb{1, 0, 1, 0, 0, 1};
  const std::vector<double> rel{1.0, 0.9, 0.5};
  rs::MmrResult r;
  rs::mmr(rel.data(), 3, rs::DenseSimilarity(ragkernels::make_view2(emb.data(), 3, 2)), 0.5, 3, false, r);
  EXPECT_EQ(r.order, (std::vector<int64_t>{0, 2, 1}));
}

TEST(SelectKnapsack, DpEqualsBruteForceAndBeatsGreedy) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial % 12;
    std::vector<double> values(n);
    std::vector<int64_t> tokens(n);
    for (int i = 0; i < n; ++i) {
      values[i] = 0.01 + (rng() % 1000) / 1000.0;
      tokens[i] = rng() % 15;
    }
    const int64_t budget = 1 + rng() % 40;
    double best = 0;
    for (int mask = 0; mask < (1 << n); ++mask) {
      double v = 0;
      int64_t c = 0;
      for (int i = 0; i < n; ++i) {
        if (mask >> i & 1) v += values[i], c += tokens[i];
      }
      if (c <= budget) best = std::max(best, v);
    }
    auto total = [&](const std::vector<int64_t>& chosen) {
      double v = 0;
      int64_t c = 0;
      for (const int64_t i : chosen) v += values[i], c += tokens[i];
      EXPECT_LE(c, budget);
      return v;
    };
    const double dp = total(rs::knapsack(values, tokens, budget, true));
    EXPECT_NEAR(dp, best, 1e-12) << "trial " << trial;
    EXPECT_LE(total(rs::knapsack(values, tokens, budget, false)), dp + 1e-12);
  }
}

TEST(SelectTruncate, SufficiencyBudgetAndOrder) {
  const std::vector<int64_t> ranked{2, 0, 1, 3}, tokens{3, 4, 5, 1};
  const std::vector<double> values{0.5, 0.3, 0.2, 0.0};
  rs::TruncateConfig c;
  c.sufficiency = 0.8;  // 0.5 + 0.3 reaches 0.8 of 1.0
  EXPECT_EQ(rs::truncate(ranked.data(), values.data(), 4, tokens.data(), c), (std::vector<int64_t>{2, 0}));
  c.document_order = true;
  EXPECT_EQ(rs::truncate(ranked.data(), values.data(), 4, tokens.data(), c), (std::vector<int64_t>{0, 2}));
  c = rs::TruncateConfig{};
  c.budget = 2;  // smaller than every valued sentence
  EXPECT_TRUE(rs::truncate(ranked.data(), values.data(), 4, tokens.data(), c).empty());
  c.budget = 8;  // {2 (5 tokens), 0 (3)}: 0.8
  EXPECT_EQ(rs::truncate(ranked.data(), values.data(), 4, tokens.data(), c), (std::vector<int64_t>{2, 0}));
}

TEST(SelectTruncate, DpFillsRoomTheFloatSumsLeave) {
  // 1 + 1e-20 == 1 in float64: the DP alone would not take candidate 1.
  const std::vector<int64_t> ranked{0, 1}, tokens{5, 1};
  const std::vector<double> values{1.0, 1e-20};
  rs::TruncateConfig c;
  c.budget = 10;
  EXPECT_EQ(rs::truncate(ranked.data(), values.data(), 2, tokens.data(), c), (std::vector<int64_t>{0, 1}));
}

TEST(SelectClues, SameResultOnOneAndTwoThreads) {
  std::mt19937 rng(5);
  const int64_t nq = 17, d = 6;
  std::vector<int64_t> groups{0}, sv, so{0}, qv, qo{0}, tokens;
  for (int64_t g = 0; g < nq; ++g) {
    groups.push_back(groups.back() + static_cast<int64_t>(rng() % 40));
    for (int t = 0; t < 3; ++t) qv.push_back(rng() % 10);
    qo.push_back(static_cast<int64_t>(qv.size()));
  }
  const int64_t ns = groups.back();
  for (int64_t s = 0; s < ns; ++s) {
    for (unsigned t = 0; t < rng() % 8; ++t) sv.push_back(rng() % 10);
    so.push_back(static_cast<int64_t>(sv.size()));
    tokens.push_back(rng() % 30);
  }
  std::normal_distribution<float> normal;
  std::vector<float> se(static_cast<size_t>(ns * d)), qe(static_cast<size_t>(nq * d));
  for (auto& x : se) x = normal(rng);
  for (auto& x : qe) x = normal(rng);
  rs::ClueInputs in;
  in.groups = view(groups);
  in.query_terms = {view(qv), view(qo)};
  in.sentence_terms = {view(sv), view(so)};
  in.query_embeddings = ragkernels::make_view2(static_cast<const float*>(qe.data()), nq, d);
  in.sentence_embeddings = ragkernels::make_view2(static_cast<const float*>(se.data()), ns, d);
  in.token_counts = view(tokens);
  rs::ClueConfig config;
  config.weights[1] = 0.5;
  config.lambda = 0.7;
  config.truncate.budget = 50;
  config.truncate.sufficiency = 0.9;
  const int before = ragkernels::num_threads();
  rs::ClueOutput one, two;
  ragkernels::set_num_threads(1);
  rs::select_clues(in, config, one);
  ragkernels::set_num_threads(2);
  rs::select_clues(in, config, two);
  ragkernels::set_num_threads(before);
  EXPECT_EQ(one.relevance, two.relevance);
  EXPECT_EQ(one.selected, two.selected);
  EXPECT_EQ(one.offsets, two.offsets);
  EXPECT_EQ(static_cast<int64_t>(one.offsets.size()), nq + 1);
}

}  // namespace
