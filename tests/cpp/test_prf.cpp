// GoogleTest for csrc/prf: the forward view, Anserini's term filters, RM3 and
// Rocchio on hand-computed examples, dense Rocchio, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "prf/forward_index.h"
#include "prf/rm3.h"
#include "prf/rocchio.h"
#include "prf/rocchio_dense.h"

namespace rp = ragkernels::prf;
namespace rs = ragkernels::sparse;
using ragkernels::ConstView2;
using ragkernels::make_view2;

namespace {

std::shared_ptr<rs::SparseIndex> build(const std::vector<std::vector<std::string>>& docs) {
  std::vector<std::string_view> tokens;
  std::vector<uint64_t> offsets{0};
  for (const auto& d : docs) {
    for (const auto& t : d) tokens.push_back(t);
    offsets.push_back(tokens.size());
  }
  auto builder = rs::IndexBuilder::bm25(std::nullopt, rs::Vocabulary::strings);
  builder.add_tokens(tokens, offsets);
  return builder.finish_bm25(rs::Bm25Params{}, {});
}

// Ten one-word filler docs keep every df ratio of the real terms <= 0.3.
std::vector<std::vector<std::string>> corpus(std::vector<std::vector<std::string>> docs) {
  for (int i = 0; i < 10; ++i) docs.push_back({"filler" + std::to_string(i)});
  return docs;
}

std::map<std::string, float> as_map(const rs::SparseIndex& index, const rp::FeatureVector& v) {
  std::map<std::string, float> out;
  for (const auto& t : v) out[std::string(index.term(t.term))] = t.weight;
  return out;
}

}  // namespace

TEST(PrfForwardIndex, TransposesPostings) {
  auto index = build({{"a", "b", "a"}, {}, {"c", "b"}, {"a"}});
  rp::ForwardIndex f(index);
  ASSERT_EQ(f.num_docs(), 4u);
  ASSERT_EQ(f.num_postings(), 5u);
  // Term ids: a=0, b=1, c=2 (first occurrence).
  ASSERT_EQ(f.size(0), 2u);
  EXPECT_EQ(f.terms(0)[0], 0u);
  EXPECT_EQ(f.tfs(0)[0], 2u);
  EXPECT_EQ(f.terms(0)[1], 1u);
  EXPECT_EQ(f.tfs(0)[1], 1u);
  EXPECT_EQ(f.size(1), 0u);
  ASSERT_EQ(f.size(2), 2u);
  EXPECT_EQ(f.terms(2)[0], 1u);
  EXPECT_EQ(f.terms(2)[1], 2u);
  EXPECT_EQ(f.size(3), 1u);
}

TEST(PrfForwardIndex, RefusesImpactAndIdIndexes) {
  auto ids = rs::IndexBuilder::bm25(std::nullopt, rs::Vocabulary::ids);
  const int64_t tokens[] = {1, 2};
  const uint64_t offsets[] = {0, 2};
  ids.add_ids(tokens, offsets, 1);
  EXPECT_THROW(rp::ForwardIndex(ids.finish_bm25(rs::Bm25Params{}, {})), ragkernels::ValueError);
}

TEST(PrfTermFilter, LengthAsciiAndDocumentFrequency) {
  EXPECT_EQ(rp::utf16_length("abc"), 3u);
  EXPECT_EQ(rp::utf16_length("caf\xC3\xA9"), 4u);          // café
  EXPECT_EQ(rp::utf16_length("\xF0\x9F\x98\x80"), 2u);     // one emoji: a surrogate pair
  auto index = build(corpus({{"ok", "x", "caf\xC3\xA9", "Up", "common"}, {"common"}, {"common"}}));
  // common: df 3 of 13 (0.23); the rest df 1.
  const auto ascii = rp::term_filter(*index, true, true, 0.2f);
  const auto any = rp::term_filter(*index, true, false, 0.25f);
  const auto unchecked = rp::term_filter(*index, false, true, 0.2f);
  auto id = [&](const char* t) { return static_cast<size_t>(index->term_id(t)); };
  EXPECT_TRUE(ascii[id("ok")]);
  EXPECT_FALSE(ascii[id("x")]);             // too short
  EXPECT_FALSE(ascii[id("caf\xC3\xA9")]);   // not [a-z0-9]+
  EXPECT_FALSE(ascii[id("Up")]);            // upper case
  EXPECT_FALSE(ascii[id("common")]);        // df ratio 0.23 > 0.2
  EXPECT_TRUE(any[id("caf\xC3\xA9")]);
  EXPECT_TRUE(any[id("Up")]);
  EXPECT_TRUE(any[id("common")]);
  EXPECT_TRUE(unchecked[id("x")]);
  EXPECT_TRUE(unchecked[id("caf\xC3\xA9")]);
  EXPECT_FALSE(unchecked[id("common")]);  // the df test stays
}

TEST(PrfRm3, HandComputedExample) {
  // Docs 0 and 1 hold "cat"; the query is "cat cat zebra" (zebra unknown).
  auto index = build(corpus({{"cat", "purr"}, {"cat", "purr", "purr", "meow"}, {"dog"}}));
  rp::ForwardIndex f(index);
  const std::vector<int64_t> docs{0, 1};
  const std::vector<float> scores{2.0f, 1.0f};
  const int64_t cat = index->term_id("cat"), purr = index->term_id("purr"), meow = index->term_id("meow");
  const std::vector<std::vector<int64_t>> queries{{cat, cat, -1}};
  rp::Rm3Params p;
  p.max_df_ratio = 0.5;
  const auto out = rp::rm3(f, queries, make_view2(docs.data(), 1, 2), make_view2(scores.data(), 1, 2), p);
  // rm(cat) = 1/2 * 2 + 1/4 * 1 = 1.25, rm(purr) = 1/2 * 2 + 2/4 * 1 = 1.5, rm(meow) = 0.25; sum 3.
  // q(cat) = 2/3. expanded = 0.5 q + 0.5 rm.
  auto m = as_map(*index, out[0]);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_FLOAT_EQ(m["cat"], 0.5f * (2.0f / 3) + 0.5f * (1.25f / 3));
  EXPECT_FLOAT_EQ(m["purr"], 0.5f * (1.5f / 3));
  EXPECT_FLOAT_EQ(m["meow"], 0.5f * (0.25f / 3));
  EXPECT_EQ(out[0][0].term, static_cast<uint32_t>(cat));  // heaviest first
  EXPECT_EQ(out[0][1].term, static_cast<uint32_t>(purr));
  EXPECT_EQ(out[0][2].term, static_cast<uint32_t>(meow));
  // fb_terms = 1: each doc keeps its largest tf (doc 0: a tie, the lower id "cat"; doc 1: purr).
  p.fb_terms = 1;
  const auto one = rp::rm3(f, queries, make_view2(docs.data(), 1, 2), make_view2(scores.data(), 1, 2), p);
  m = as_map(*index, one[0]);
  // rm before pruning: cat 2, purr 1 -> keeps cat alone, normalized to 1.
  ASSERT_EQ(m.size(), 1u);
  EXPECT_FLOAT_EQ(m["cat"], 0.5f * (2.0f / 3) + 0.5f);
}

TEST(PrfRm3, PaddingOnlyRunKeepsTheQuery) {
  auto index = build(corpus({{"cat"}}));
  rp::ForwardIndex f(index);
  const std::vector<int64_t> docs{-1, -1};
  const std::vector<float> scores{0, 0};
  const auto out = rp::rm3(f, {{index->term_id("cat")}}, make_view2(docs.data(), 1, 2),
                           make_view2(scores.data(), 1, 2), rp::Rm3Params{});
  ASSERT_EQ(out[0].size(), 1u);
  EXPECT_FLOAT_EQ(out[0][0].weight, 0.5f);
}

TEST(PrfRm3, BadParametersAndRuns) {
  auto index = build(corpus({{"cat"}}));
  rp::ForwardIndex f(index);
  const std::vector<int64_t> docs{0, 99};
  const std::vector<float> scores{1, 1};
  rp::Rm3Params p;
  p.fb_docs = 0;
  EXPECT_THROW(rp::check_rm3_params(p), ragkernels::ValueError);
  p = rp::Rm3Params{};
  p.original_weight = 1.5;
  EXPECT_THROW(rp::check_rm3_params(p), ragkernels::ValueError);
  EXPECT_THROW(rp::rm3(f, {{0}}, make_view2(docs.data(), 1, 2), make_view2(scores.data(), 1, 2), rp::Rm3Params{}),
               ragkernels::ValueError);  // doc 99 is not in the index
}

TEST(PrfRocchio, HandComputedExample) {
  auto index = build(corpus({{"cat", "purr"}, {"cat", "purr", "purr"}, {"dog"}}));
  rp::ForwardIndex f(index);
  const std::vector<int64_t> docs{0, 1};
  rp::RocchioParams p;
  p.max_df_ratio = 0.5;
  const auto out = rp::rocchio(f, {{index->term_id("cat")}}, make_view2(docs.data(), 1, 2), p);
  // mean = ((1,1)/sqrt2 + (1,2)/sqrt5) / 2, then unit L2; q = (1, 0).
  const double c = (1 / std::sqrt(2.0) + 1 / std::sqrt(5.0)) / 2, r = (1 / std::sqrt(2.0) + 2 / std::sqrt(5.0)) / 2;
  const double n = std::hypot(c, r);
  auto m = as_map(*index, out[0]);
  EXPECT_NEAR(m["cat"], 1 + 0.75 * c / n, 1e-6);
  EXPECT_NEAR(m["purr"], 0.75 * r / n, 1e-6);
  p.alpha = -1;
  EXPECT_THROW(rp::check_rocchio_params(p), ragkernels::ValueError);
}

TEST(PrfRocchioDense, MeanOfFeedbackAndPadding) {
  const std::vector<float> q{1, 0, 0, 1};          // 2 queries, dim 2
  const std::vector<float> d{0, 1, 1, 1, 3, 0};    // 3 docs
  const std::vector<int64_t> ids{1, 2, -1, -1, -1, -1};  // query 1 has no feedback
  std::vector<float> out(4);
  rp::RocchioDenseParams p{3, 1.0, 2.0, false};
  rp::rocchio_dense(make_view2(q.data(), 2, 2), make_view2(d.data(), 3, 2), make_view2(ids.data(), 2, 3), p,
                    make_view2(out.data(), 2, 2));
  EXPECT_FLOAT_EQ(out[0], 1 + 2 * 2.0f);  // mean of (1,1), (3,0) = (2, 0.5)
  EXPECT_FLOAT_EQ(out[1], 2 * 0.5f);
  EXPECT_FLOAT_EQ(out[2], 0);
  EXPECT_FLOAT_EQ(out[3], 1);
  p.normalize = true;
  rp::rocchio_dense(make_view2(q.data(), 2, 2), make_view2(d.data(), 3, 2), make_view2(ids.data(), 2, 3), p,
                    make_view2(out.data(), 2, 2));
  EXPECT_NEAR(std::hypot(out[0], out[1]), 1.0, 1e-6);
  const std::vector<float> nan_docs{0, 1, NAN, 1, 3, 0};
  EXPECT_THROW(rp::rocchio_dense(make_view2(q.data(), 2, 2), make_view2(nan_docs.data(), 3, 2),
                                 make_view2(ids.data(), 2, 3), p, make_view2(out.data(), 2, 2)),
               ragkernels::ValueError);
  const std::vector<float> nan_unused{NAN, NAN, 1, 1, 3, 0};  // doc 0 is never a feedback doc
  EXPECT_NO_THROW(rp::rocchio_dense(make_view2(q.data(), 2, 2), make_view2(nan_unused.data(), 3, 2),
                                    make_view2(ids.data(), 2, 3), p, make_view2(out.data(), 2, 2)));
  p.fb_docs = 0;
  EXPECT_THROW(rp::rocchio_dense(make_view2(q.data(), 2, 2), make_view2(d.data(), 3, 2),
                                 make_view2(ids.data(), 2, 3), p, make_view2(out.data(), 2, 2)),
               ragkernels::ValueError);
}

TEST(PrfRm3, SameResultOnOneThreadAndMany) {
  std::vector<std::vector<std::string>> docs;
  for (int d = 0; d < 200; ++d) {
    std::vector<std::string> doc;
    for (int t = 0; t < 12; ++t) doc.push_back("w" + std::to_string((d * 7 + t * t) % 97));
    docs.push_back(doc);
  }
  auto index = build(docs);
  rp::ForwardIndex f(index);
  std::vector<std::vector<int64_t>> queries;
  std::vector<int64_t> run;
  std::vector<float> scores;
  for (int q = 0; q < 50; ++q) {
    queries.push_back({index->term_id("w" + std::to_string(q % 97))});
    for (int j = 0; j < 10; ++j) {
      run.push_back((q * 13 + j * 17) % 200);
      scores.push_back(10.0f - j);
    }
  }
  const std::vector<int64_t>& crun = run;  // const views
  const std::vector<float>& cscores = scores;
  rp::Rm3Params p;
  p.max_df_ratio = 1.0;
  const int before = ragkernels::num_threads();
  ragkernels::set_num_threads(1);
  const auto one = rp::rm3(f, queries, make_view2(crun.data(), 50, 10), make_view2(cscores.data(), 50, 10), p);
  ragkernels::set_num_threads(4);
  const auto many = rp::rm3(f, queries, make_view2(crun.data(), 50, 10), make_view2(cscores.data(), 50, 10), p);
  ragkernels::set_num_threads(before);
  ASSERT_EQ(one.size(), many.size());
  for (size_t q = 0; q < one.size(); ++q) {
    ASSERT_EQ(one[q].size(), many[q].size());
    for (size_t i = 0; i < one[q].size(); ++i) {
      EXPECT_EQ(one[q][i].term, many[q][i].term);
      EXPECT_EQ(one[q][i].weight, many[q][i].weight);
    }
  }
}
