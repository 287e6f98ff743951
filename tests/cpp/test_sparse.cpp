// GoogleTest for csrc/sparse: block codec, cursors, and the query algorithms
// against each other (PISA's test_ranked_queries in spirit, without slack).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "sparse/block_codec.h"
#include "sparse/sparse_index.h"

namespace rs = ragkernels::sparse;

TEST(BlockCodec, RoundTripsEveryWidthAndLength) {
  std::mt19937 rng(1);
  for (uint32_t width = 0; width <= 32; ++width) {
    for (size_t n : {size_t{1}, size_t{2}, rs::kBlockSize - 1, rs::kBlockSize}) {
      std::vector<uint32_t> values(n);
      const uint64_t limit = width == 0 ? 0 : (width == 32 ? 0xFFFFFFFFull : (1ull << width) - 1);
      for (auto& v : values) v = static_cast<uint32_t>(rng() % (limit + 1));
      if (width > 0) values[n / 2] = static_cast<uint32_t>(limit);  // the widest value is present
      ASSERT_EQ(rs::bit_width(values.data(), n), width);
      std::vector<uint8_t> bytes(rs::packed_bytes(n, width) + rs::kReadPadding, 0xAB);
      rs::pack(values.data(), n, width, bytes.data());
      std::vector<uint32_t> out(n, 7);
      rs::unpack(bytes.data(), n, width, out.data());
      ASSERT_EQ(out, values) << "width " << width << " n " << n;
    }
  }
}

namespace {

// Docs of token ids; term t appears in doc d with probability ~ 1/(t+1).
std::shared_ptr<rs::SparseIndex> random_index(uint32_t docs, uint32_t terms, uint32_t seed) {
  std::mt19937 rng(seed);
  auto builder = rs::IndexBuilder::bm25(std::nullopt, rs::Vocabulary::ids);
  std::vector<int64_t> ids;
  std::vector<uint64_t> offsets{0};
  for (uint32_t d = 0; d < docs; ++d) {
    for (uint32_t t = 0; t < terms; ++t) {
      if (rng() % (t + 2) == 0) {
        const uint32_t tf = 1 + rng() % 3;
        for (uint32_t i = 0; i < tf; ++i) ids.push_back(t);
      }
    }
    offsets.push_back(ids.size());
  }
  builder.add_ids(ids.data(), offsets.data(), docs, nullptr);
  return builder.finish_bm25(rs::Bm25Params{}, {});
}

std::pair<std::vector<int64_t>, std::vector<float>> search(const rs::SparseIndex& index,
                                                            const std::vector<rs::Query>& queries, size_t k,
                                                            rs::QueryAlgorithm algorithm) {
  std::vector<int64_t> docs(queries.size() * k);
  std::vector<float> scores(queries.size() * k);
  index.search(queries.size(), [&](size_t i) { return queries[i]; }, k, algorithm, docs.data(), scores.data());
  return {docs, scores};
}

}  // namespace

TEST(PostingCursor, NextGeqVisitsExactlyThePostings) {
  auto index = random_index(5000, 4, 2);
  const rs::IndexData& d = index->data();
  rs::PostingArrays arrays{d.term_first_block.data, d.term_df.data, d.term_max.data, d.block_last_doc.data,
                           d.block_max.data, d.block_offset.data, d.postings.data, nullptr, nullptr, d.num_terms(),
                           d.block_last_doc.size};
  for (uint32_t term = 0; term < 4; ++term) {
    rs::PostingCursor all, skipping;
    all.open(arrays, term);
    std::vector<uint32_t> docs;
    for (; all.doc() != rs::kEndDoc; all.next()) docs.push_back(all.doc());
    ASSERT_EQ(docs.size(), d.term_df[term]);
    skipping.open(arrays, term);
    for (uint32_t target = 0; target < 5000; target += 37) {
      skipping.next_geq(target);
      auto expected = std::lower_bound(docs.begin(), docs.end(), target);
      ASSERT_EQ(skipping.doc(), expected == docs.end() ? rs::kEndDoc : *expected);
    }
  }
}

TEST(QueryAlgorithms, PrunedEqualExhaustive) {
  auto index = random_index(3000, 12, 3);
  std::mt19937 rng(4);
  std::vector<rs::Query> queries;
  for (int q = 0; q < 60; ++q) {
    rs::Query query;
    for (uint32_t t = 0; t < 12; ++t) {
      if (rng() % 3 == 0) query.push_back({t, static_cast<float>(1 + rng() % 2)});
    }
    queries.push_back(query);
  }
  for (size_t k : {size_t{1}, size_t{10}, size_t{100}, size_t{4000}}) {
    auto exhaustive = search(*index, queries, k, rs::QueryAlgorithm::exhaustive);
    EXPECT_EQ(search(*index, queries, k, rs::QueryAlgorithm::maxscore), exhaustive) << "k " << k;
    EXPECT_EQ(search(*index, queries, k, rs::QueryAlgorithm::block_max_wand), exhaustive) << "k " << k;
    EXPECT_EQ(search(*index, queries, k, rs::QueryAlgorithm::term_at_a_time), exhaustive) << "k " << k;
  }
}

TEST(SparseIndex, BadArgumentsThrow) {
  EXPECT_THROW(rs::parse_bm25_method("bm99"), ragkernels::ValueError);
  EXPECT_THROW(rs::parse_query_algorithm("wand"), ragkernels::ValueError);
  EXPECT_THROW(rs::check_bm25_params(rs::Bm25Params{rs::Bm25Method::lucene, -1, 0.5, 0.5}), ragkernels::ValueError);
  auto index = random_index(10, 2, 5);
  std::vector<int64_t> docs(1);
  std::vector<float> scores(1);
  EXPECT_THROW(index->search(1, [](size_t) { return rs::Query{}; }, 0, rs::QueryAlgorithm::exhaustive, docs.data(),
                             scores.data()),
               ragkernels::ValueError);
}
