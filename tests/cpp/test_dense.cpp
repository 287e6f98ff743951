// The dense flat scan against a brute-force loop, on small integers where
// float32 arithmetic is exact (so ties, and their order, are exact too).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "dense/flat_search.h"

namespace ragkernels::dense {
namespace {

struct Hit {
  float score;
  int64_t id;
};

// Brute force: every score, sorted by (score desc, id asc).
std::vector<std::vector<Hit>> brute_force(const std::vector<float>& docs, const std::vector<float>& queries,
                                          int64_t dim, int64_t k) {
  const int64_t n = static_cast<int64_t>(docs.size()) / dim, nq = static_cast<int64_t>(queries.size()) / dim;
  std::vector<std::vector<Hit>> out(nq);
  for (int64_t q = 0; q < nq; ++q) {
    for (int64_t i = 0; i < n; ++i) {
      float s = 0;
      for (int64_t t = 0; t < dim; ++t) s += docs[i * dim + t] * queries[q * dim + t];
      out[q].push_back({s, i});
    }
    std::sort(out[q].begin(), out[q].end(),
              [](const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); });
    out[q].resize(std::min<int64_t>(k, n));
  }
  return out;
}

std::vector<float> small_integers(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<float> v(count);
  for (auto& x : v) x = static_cast<float>(dist(rng));
  return v;
}

void expect_search_equals_brute_force(int64_t n, int64_t dim, int64_t nq, int64_t k) {
  const auto docs = small_integers(n * dim, 1 + n);
  const auto queries = small_integers(nq * dim, 2 + nq);
  FlatVectors v;
  v.rows = n;
  v.dim = dim;
  v.data = docs.data();
  std::vector<int64_t> ids(nq * k);
  std::vector<float> scores(nq * k);
  search(v, make_view2(queries.data(), nq, dim), k, make_view2(ids.data(), nq, k), make_view2(scores.data(), nq, k));
  const auto expected = brute_force(docs, queries, dim, k);
  for (int64_t q = 0; q < nq; ++q) {
    for (int64_t j = 0; j < k; ++j) {
      if (j < static_cast<int64_t>(expected[q].size())) {
        EXPECT_EQ(ids[q * k + j], expected[q][j].id) << "query " << q << " rank " << j;
        EXPECT_EQ(scores[q * k + j], expected[q][j].score) << "query " << q << " rank " << j;
      } else {
        EXPECT_EQ(ids[q * k + j], -1);
        EXPECT_EQ(scores[q * k + j], -std::numeric_limits<float>::infinity());
      }
    }
  }
}

TEST(DenseFlatSearch, MatchesBruteForceOnEveryTileShape) {
  expect_search_equals_brute_force(1, 1, 1, 1);
  expect_search_equals_brute_force(7, 5, 3, 10);       // k > n, dim below one vector
  expect_search_equals_brute_force(130, 37, 9, 20);    // ragged rows, queries and dimensions
  expect_search_equals_brute_force(3000, 64, 17, 50);  // several parts and blocks
  expect_search_equals_brute_force(700, 20, 70, 15);   // the GEMM kernel: ragged panels and row tiles
}

TEST(DenseFlatSearch, SameResultOnAnyThreadCount) {
  const int64_t n = 50000, dim = 24, nq = 6, k = 30;  // enough work for three parts
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> docs(n * dim), queries_data(nq * dim);
  for (auto& x : docs) x = normal(rng);
  for (auto& x : queries_data) x = normal(rng);
  const std::vector<float>& queries = queries_data;
  FlatVectors v;
  v.rows = n;
  v.dim = dim;
  v.data = docs.data();
  const int saved = num_threads();
  std::vector<std::vector<int64_t>> all_ids;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<int64_t> ids(nq * k);
    std::vector<float> scores(nq * k);
    search(v, make_view2(queries.data(), nq, dim), k, make_view2(ids.data(), nq, k),
           make_view2(scores.data(), nq, k));
    all_ids.push_back(ids);
  }
  set_num_threads(saved);
  EXPECT_EQ(all_ids[0], all_ids[1]);
  EXPECT_EQ(all_ids[0], all_ids[2]);
}

TEST(DenseFlatSearch, Int8QuantizationRoundsHalfToEven) {
  // max|x| = 127 -> scale 1: codes are x rounded half to even.
  const std::vector<float> x = {127.0f, 0.5f, 1.5f, -2.5f, -127.0f, 3.49f};
  std::vector<int8_t> codes(6);
  float scale = 0;
  quantize_int8(make_view2(x.data(), 1, 6), make_view2(codes.data(), 1, 6), &scale);
  EXPECT_EQ(scale, 1.0f);
  EXPECT_EQ(codes, (std::vector<int8_t>{127, 0, 2, -2, -127, 3}));
  const std::vector<float> zeros(4, 0.0f);
  std::vector<int8_t> zero_codes(4, 9);
  quantize_int8(make_view2(zeros.data(), 1, 4), make_view2(zero_codes.data(), 1, 4), &scale);
  EXPECT_EQ(scale, 0.0f);
  EXPECT_EQ(zero_codes, std::vector<int8_t>(4, 0));
}

TEST(DenseFlatSearch, CosineRowTermsGiveZeroVectorsScoreZero) {
  const std::vector<float> docs = {3, 4, 0, 0};
  FlatVectors v;
  v.rows = 2;
  v.dim = 2;
  v.data = docs.data();
  std::vector<float> scale(2), offset(2);
  const auto written = row_terms(v, Metric::kCosine, nullptr, scale.data(), offset.data());
  EXPECT_TRUE(written.scale);
  EXPECT_FALSE(written.offset);
  EXPECT_FLOAT_EQ(scale[0], 0.2f);
  EXPECT_EQ(scale[1], 0.0f);
}

TEST(DenseFlatSearch, RejectsBadArguments) {
  const std::vector<float> docs(8, 1.0f), queries(3, 1.0f);
  FlatVectors v;
  v.rows = 2;
  v.dim = 4;
  v.data = docs.data();
  std::vector<int64_t> ids(1);
  std::vector<float> scores(1);
  EXPECT_THROW(search(v, make_view2(queries.data(), 1, 3), 1, make_view2(ids.data(), 1, 1),
                      make_view2(scores.data(), 1, 1)),
               ValueError);
  EXPECT_THROW(search(v, make_view2(docs.data(), 1, 4), 0, make_view2(ids.data(), 1, 1),
                      make_view2(scores.data(), 1, 1)),
               ValueError);
}

TEST(DenseFlatSearch, AllFiniteSeesNaNInfinityAndHalfInfinity) {
  const std::vector<float> ok = {1, -2, 0}, nan = {1, std::nanf(""), 0}, inf = {std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(all_finite(ok.data(), Storage::kFloat32, 3));
  EXPECT_FALSE(all_finite(nan.data(), Storage::kFloat32, 3));
  EXPECT_FALSE(all_finite(inf.data(), Storage::kFloat32, 1));
  const std::vector<uint16_t> half = {0x3C00, 0x7C00};  // 1.0, +inf
  EXPECT_TRUE(all_finite(half.data(), Storage::kFloat16, 1));
  EXPECT_FALSE(all_finite(half.data(), Storage::kFloat16, 2));
}

TEST(DenseFlatSearch, FirstNonFiniteRowIsTheFirstOnAnyThreadCount) {  // issue 14
  std::vector<float> v(5000 * 3, 1.0f);
  EXPECT_EQ(first_non_finite_row(v.data(), Storage::kFloat32, 5000, 3), -1);
  v[4321 * 3 + 2] = std::numeric_limits<float>::infinity();
  v[4999 * 3] = std::nanf("");
  const int saved = num_threads();
  for (int threads : {1, 2, 7}) {
    set_num_threads(threads);
    EXPECT_EQ(first_non_finite_row(v.data(), Storage::kFloat32, 5000, 3), 4321);
  }
  set_num_threads(saved);
  const std::vector<uint16_t> half = {0x3C00, 0x3C00, 0xFC00, 0x3C00};  // row 1 holds -inf
  EXPECT_EQ(first_non_finite_row(half.data(), Storage::kFloat16, 2, 2), 1);
  EXPECT_EQ(first_non_finite_row(nullptr, Storage::kInt8, 2, 2), -1);
}

}  // namespace
}  // namespace ragkernels::dense
