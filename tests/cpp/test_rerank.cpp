// MaxSim against a brute-force loop, on small integers where float32
// arithmetic is exact (so every score must match bit for bit), for each
// token type, ragged queries across several panels, empty items and NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/float16.h"
#include "core/parallel.h"
#include "rerank/maxsim.h"

namespace ragkernels::rerank {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Ragged {
  std::vector<float> values;
  std::vector<int64_t> offsets{0};
};

Ragged random_ragged(std::mt19937& rng, const std::vector<int64_t>& lengths, int64_t dim) {
  std::uniform_int_distribution<int> small(-4, 4);
  Ragged r;
  for (int64_t len : lengths) {
    for (int64_t i = 0; i < len * dim; ++i) r.values.push_back(static_cast<float>(small(rng)));
    r.offsets.push_back(r.offsets.back() + len);
  }
  return r;
}

float brute_force(const Ragged& q, int64_t qi, const Ragged& d, int64_t di, int64_t dim) {
  if (di < 0 || d.offsets[di + 1] == d.offsets[di]) return -kInf;
  float total = 0;
  for (int64_t i = q.offsets[qi]; i < q.offsets[qi + 1]; ++i) {
    float best = -kInf;
    bool nan = false;
    for (int64_t j = d.offsets[di]; j < d.offsets[di + 1]; ++j) {
      float s = 0;
      for (int64_t k = 0; k < dim; ++k) s += q.values[i * dim + k] * d.values[j * dim + k];
      nan |= std::isnan(s);
      best = std::max(best, s);
    }
    total += nan ? std::nanf("") : best;
  }
  return total;
}

QueryTokens query_tokens(const Ragged& q, int64_t dim) {
  return {q.values.data(), q.offsets.back(), dim, dim, q.offsets.data(), static_cast<int64_t>(q.offsets.size()) - 1};
}

DocTokens doc_tokens(const void* data, TokenType type, const Ragged& d, int64_t dim, const float* scales = nullptr) {
  return {data, type, d.offsets.back(), dim, dim, scales, d.offsets.data(), static_cast<int64_t>(d.offsets.size()) - 1};
}

std::vector<float> run(const QueryTokens& q, const DocTokens& d, const std::vector<int64_t>& cand, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(cand.size()) / cols;
  std::vector<float> out(cand.size());
  maxsim(q, d, ConstView2<int64_t>{cand.data(), rows, cols, cols, 1}, make_view2(out.data(), rows, cols));
  return out;
}

TEST(MaxSim, ExactOnSmallIntegersForEveryTokenType) {
  std::mt19937 rng(7);
  for (int64_t dim : {1, 3, 16, 40, 128, 129, 300}) {
    const Ragged docs = random_ragged(rng, {0, 1, 11, 12, 13, 25, 61, 0, 3}, dim);
    const Ragged queries = random_ragged(rng, {0, 1, 8, 31, 32, 33, 65}, dim);
    std::vector<int64_t> cand;
    for (int64_t q = 0; q < 7; ++q)
      for (int64_t c = -1; c < 9; ++c) cand.push_back(c);
    std::vector<float16> halves(docs.values.begin(), docs.values.end());
    std::vector<int8_t> bytes;
    for (float v : docs.values) bytes.push_back(static_cast<int8_t>(v));
    const std::vector<float> scales(docs.offsets.back(), 0.5f);
    const QueryTokens q = query_tokens(queries, dim);
    const auto f32 = run(q, doc_tokens(docs.values.data(), TokenType::kFloat32, docs, dim), cand, 10);
    const auto f16 = run(q, doc_tokens(halves.data(), TokenType::kFloat16, docs, dim), cand, 10);
    const auto i8 = run(q, doc_tokens(bytes.data(), TokenType::kInt8, docs, dim, scales.data()), cand, 10);
    for (int64_t qi = 0; qi < 7; ++qi)
      for (int64_t c = 0; c < 10; ++c) {
        const float want = brute_force(queries, qi, docs, c - 1, dim);
        const size_t at = static_cast<size_t>(qi * 10 + c);
        EXPECT_EQ(f32[at], want) << "dim " << dim << " query " << qi << " doc " << c - 1;
        EXPECT_EQ(f16[at], want);
        EXPECT_EQ(i8[at], want / 2);
      }
  }
}

TEST(MaxSim, NanPropagatesToItsQueryOnly) {
  std::mt19937 rng(3);
  Ragged docs = random_ragged(rng, {30, 30}, 8);
  const Ragged queries = random_ragged(rng, {5}, 8);
  docs.values[(30 + 29) * 8 + 2] = std::nanf("");  // the last token of document 1
  const auto out = run(query_tokens(queries, 8), doc_tokens(docs.values.data(), TokenType::kFloat32, docs, 8),
                       {0, 1}, 2);
  EXPECT_FALSE(std::isnan(out[0]));
  EXPECT_TRUE(std::isnan(out[1]));
}

TEST(MaxSim, SameScoresForAnyThreadCount) {
  std::mt19937 rng(5);
  const Ragged docs = random_ragged(rng, std::vector<int64_t>(300, 37), 64);
  const Ragged queries = random_ragged(rng, {32, 7, 50}, 64);
  std::vector<int64_t> cand;
  for (int64_t i = 0; i < 3 * 300; ++i) cand.push_back(i % 300);
  const QueryTokens q = query_tokens(queries, 64);
  const DocTokens d = doc_tokens(docs.values.data(), TokenType::kFloat32, docs, 64);
  const int threads = num_threads();
  set_num_threads(1);
  const auto one = run(q, d, cand, 300);
  set_num_threads(3);
  const auto three = run(q, d, cand, 300);
  set_num_threads(threads);
  EXPECT_EQ(one, three);
}

TEST(MaxSim, RejectsBadOffsetsAndCandidates) {
  std::mt19937 rng(1);
  Ragged docs = random_ragged(rng, {2, 2}, 4);
  const Ragged queries = random_ragged(rng, {2}, 4);
  const QueryTokens q = query_tokens(queries, 4);
  EXPECT_THROW(run(q, doc_tokens(docs.values.data(), TokenType::kFloat32, docs, 4), {2}, 1), ValueError);
  EXPECT_THROW(run(q, doc_tokens(docs.values.data(), TokenType::kFloat32, docs, 4), {-2}, 1), ValueError);
  EXPECT_THROW(run(q, doc_tokens(docs.values.data(), TokenType::kInt8, docs, 4), {0}, 1), ValueError);
  docs.offsets = {0, 3, 2};  // decreasing, and not ending at the row count
  EXPECT_THROW(run(q, doc_tokens(docs.values.data(), TokenType::kFloat32, docs, 4), {0}, 1), ValueError);
}

}  // namespace
}  // namespace ragkernels::rerank
