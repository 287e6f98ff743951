// GoogleTest for csrc/rerank/term_match: hand-computed scores, building
// (sort, max of duplicates), a brute-force comparison on random data, BM25
// weights, save/load, and bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "rerank/term_match.h"
#include "sparse/sparse_index.h"

namespace rr = ragkernels::rerank;
using ragkernels::ConstView1;
using ragkernels::ConstView2;
using ragkernels::make_view2;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

template <typename T>
ConstView1<T> view(const std::vector<T>& v) {
  return ConstView1<T>{v.data(), static_cast<int64_t>(v.size()), 1};
}

std::shared_ptr<rr::TermMatchIndex> build(const std::vector<int64_t>& terms, const std::vector<float>& weights,
                                          const std::vector<int64_t>& offsets, int64_t vocab_size = -1) {
  return rr::TermMatchIndex::from_arrays(view(terms), view(weights), view(offsets), vocab_size);
}

rr::QueryTerms queries(const std::vector<std::vector<int64_t>>& qs, uint64_t vocab) {
  std::vector<ConstView1<int64_t>> views;
  for (const auto& q : qs) views.push_back(view(q));
  return rr::prepare_queries(views, vocab, rr::QueryLayout::list);
}

std::vector<float> scores(const rr::TermMatchIndex& index, const rr::QueryTerms& q, const std::vector<int64_t>& cand,
                          int64_t cols) {
  const int64_t rows = q.size();
  std::vector<float> out(rows * cols);
  rr::term_match(index, q, make_view2(cand.data(), rows, cols), make_view2(out.data(), rows, cols));
  return out;
}

template <typename F>
void expect_value_error(F&& f, const std::string& fragment) {
  try {
    f();
    FAIL() << "expected ValueError containing: " << fragment;
  } catch (const ragkernels::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

std::string temp_path(const char* name) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/rk_term_match_" + std::to_string(::getpid()) + "_" + name;
}

}  // namespace

TEST(TermMatch, HandComputedScores) {
  // doc 0: {2: 1, 5: 2, 9: 4}; doc 1: {5: 8}; doc 2: empty.
  auto index = build({9, 2, 5, 5}, {4, 1, 2, 8}, {0, 3, 4, 4});
  EXPECT_EQ(index->num_docs(), 3);
  EXPECT_EQ(index->vocab_size(), 10u);
  const auto q = queries({{5, 9, 5, -1}, {}, {2, 100}}, index->vocab_size());
  EXPECT_EQ(q.terms, (std::vector<uint32_t>{5, 9, 2}));  // 100 is beyond the vocabulary: dropped
  const auto s = scores(*index, q, {0, 1, 2, -1, 0, 1, 2, 0, 0, -1, 1, 2}, 4);
  EXPECT_EQ(s, (std::vector<float>{6, 8, 0, -kInf, 0, 0, 0, 0, 1, -kInf, 0, 0}));
}

TEST(TermMatch, BuildSortsAndKeepsTheLargestWeightOfARepeatedTerm) {
  auto index = build({7, 3, 7, 7, 1, 1}, {1, 2, 5, -3, -1, -2}, {0, 4, 6});
  const std::vector<int64_t> offsets(index->offsets(), index->offsets() + 3);
  const std::vector<uint32_t> terms(index->terms(), index->terms() + index->num_postings());
  const std::vector<float> weights(index->weights(), index->weights() + index->num_postings());
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(terms, (std::vector<uint32_t>{3, 7, 1}));
  EXPECT_EQ(weights, (std::vector<float>{2, 5, -1}));
}

TEST(TermMatch, RandomDataMatchesBruteForceAtAnyThreadCount) {
  std::mt19937 rng(7);
  const int64_t num_docs = 500, vocab = 300, nq = 23, cols = 150;
  std::vector<int64_t> offsets{0}, terms;
  std::vector<float> weights;
  std::vector<std::map<int64_t, float>> docs(num_docs);
  std::normal_distribution<float> normal;
  for (int64_t d = 0; d < num_docs; ++d) {
    const int64_t len = rng() % 60;
    for (int64_t i = 0; i < len; ++i) {
      const int64_t t = rng() % vocab;
      const float w = normal(rng);
      terms.push_back(t);
      weights.push_back(w);
      docs[d][t] = docs[d].count(t) ? std::max(docs[d][t], w) : w;
    }
    offsets.push_back(static_cast<int64_t>(terms.size()));
  }
  std::vector<std::vector<int64_t>> qs(nq);
  for (auto& q : qs) {
    for (int64_t i = 0, n = rng() % 12; i < n; ++i) q.push_back(static_cast<int64_t>(rng() % (vocab + 5)) - 1);
  }
  std::vector<int64_t> cand(nq * cols);
  for (auto& c : cand) c = static_cast<int64_t>(rng() % (num_docs + 1)) - 1;
  const int before = ragkernels::num_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 4}) {
    ragkernels::set_num_threads(threads);
    auto index = build(terms, weights, offsets);
    results.push_back(scores(*index, queries(qs, index->vocab_size()), cand, cols));
  }
  ragkernels::set_num_threads(before);
  for (int64_t i = 0; i < nq; ++i) {
    std::map<int64_t, bool> distinct;
    for (int64_t t : qs[i]) if (t >= 0) distinct[t] = true;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t d = cand[i * cols + j];
      double sum = 0;
      if (d >= 0) {
        for (const auto& [t, unused] : distinct) sum += docs[d].count(t) ? docs[d][t] : 0.0;
      }
      const float expected = d < 0 ? -kInf : static_cast<float>(sum);
      ASSERT_EQ(results[0][i * cols + j], expected) << i << ", " << j;
    }
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

TEST(TermMatch, FromBm25HoldsThePostingScores) {
  std::vector<std::string_view> tokens{"a", "b", "a", "c", "b", "c", "c", "a"};
  auto builder = ragkernels::sparse::IndexBuilder::bm25(std::nullopt, ragkernels::sparse::Vocabulary::strings);
  builder.add_tokens(tokens, {0, 3, 4, 8});
  auto bm25 = builder.finish_bm25(ragkernels::sparse::Bm25Params{}, {});
  auto index = rr::TermMatchIndex::from_bm25(*bm25);
  EXPECT_EQ(index->num_docs(), 3);
  EXPECT_EQ(index->num_postings(), 6);  // doc 0: a, b; doc 1: c; doc 2: a, b, c
  EXPECT_EQ(index->vocab_size(), bm25->num_terms());
  // One-term BM25 searches return the stored posting score of each document.
  for (uint32_t t = 0; t < bm25->num_terms(); ++t) {
    std::vector<int64_t> docs(3);
    std::vector<float> expected(3);
    bm25->search(1, [&](size_t) { return ragkernels::sparse::Query{{t, 1.0f}}; }, 3,
                 ragkernels::sparse::QueryAlgorithm::exhaustive, docs.data(), expected.data());
    const auto q = queries({{t}}, index->vocab_size());
    for (int64_t j = 0; j < 3 && docs[j] >= 0; ++j) {
      EXPECT_EQ(scores(*index, q, {docs[j]}, 1)[0], expected[j]);
    }
  }
}

TEST(TermMatch, SaveLoadRoundTripAndRefusals) {
  auto index = build({4, 1, 2}, {0.5f, 1.5f, 2.5f}, {0, 2, 2, 3}, 10);
  const std::string path = temp_path("index.rk");
  index->save(path);
  for (bool verify : {true, false}) {
    auto loaded = rr::TermMatchIndex::load(path, verify);
    EXPECT_EQ(loaded->num_docs(), 3);
    EXPECT_EQ(loaded->vocab_size(), 10u);
    const auto q = queries({{1, 2, 4}}, 10);
    EXPECT_EQ(scores(*loaded, q, {0, 1, 2}, 3), (std::vector<float>{2, 0, 2.5f}));
  }
  // Truncated: FormatError naming the file.
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  try {
    rr::TermMatchIndex::load(path, true);
    FAIL() << "expected FormatError";
  } catch (const ragkernels::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(TermMatch, RefusesBadInput) {
  expect_value_error([] { build({1, 2}, {1, 2}, {1, 2}); }, "offsets[0] must be 0, got 1");
  expect_value_error([] { build({1, 2}, {1, 2}, {0, 2, 1, 2}); }, "non-decreasing");
  expect_value_error([] { build({1, 2}, {1, 2}, {0, 1}); }, "offsets[-1] = 1 must equal len(term_ids) = 2");
  expect_value_error([] { build({1, 2}, {1}, {0, 2}); }, "weights has 1 entries but term_ids has 2");
  expect_value_error([] { build({1, 2}, {1, std::nanf("")}, {0, 2}); }, "weights[1] = nan is not finite");
  expect_value_error([] { build({1, -2}, {1, 2}, {0, 2}); }, "term_ids[1] = -2 is negative");
  expect_value_error([] { build({1, 5}, {1, 2}, {0, 2}, 5); }, "term_ids[1] = 5 >= vocab_size = 5");
  expect_value_error([] { build({int64_t(1) << 32}, {1}, {0, 1}); }, "exceeds the largest term id");
  auto index = build({1}, {1}, {0, 1});
  expect_value_error([&] { queries({{1, -4}}, 2); }, "query_term_ids[0][1] = -4 is negative");
  const auto q = queries({{1}}, 2);
  expect_value_error([&] { scores(*index, q, {0, 1}, 2); }, "candidates[0, 1] = 1 is out of range [0, 1)");
}
