// GoogleTest for csrc/spec/suffix_array and datastore: SA-IS and the
// reversed suffix array against comparison sorts, the linear-time check
// against every kind of wrong array, hand-computed matches and drafts, and
// save / load (issue 15).
#include "spec/datastore.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_format.h"
#include "spec/suffix_array.h"

namespace fs = std::filesystem;
using namespace ragkernels;
using namespace ragkernels::spec;

namespace {

std::vector<int32_t> naive_suffix_array(const std::vector<int32_t>& s) {
  std::vector<int32_t> sa(s.size());
  std::iota(sa.begin(), sa.end(), 0);
  std::sort(sa.begin(), sa.end(), [&](int32_t a, int32_t b) {
    return std::lexicographical_compare(s.begin() + a, s.end(), s.begin() + b, s.end());
  });
  return sa;
}

// Token positions by (backward prefix, position).
std::vector<int32_t> naive_reversed(const std::vector<int32_t>& text) {
  std::vector<std::pair<std::vector<int32_t>, int32_t>> keys;
  for (int32_t e = 0; e < static_cast<int32_t>(text.size()); ++e) {
    if (text[e] < 0) continue;
    std::vector<int32_t> key;
    for (int32_t q = e; q >= 0 && text[q] >= 0; --q) key.push_back(text[q]);
    keys.emplace_back(key, e);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<int32_t> out;
  for (const auto& k : keys) out.push_back(k.second);
  return out;
}

std::vector<int32_t> text_of(const std::vector<std::vector<int32_t>>& seqs) {
  std::vector<int32_t> text;
  for (const auto& s : seqs) {
    text.insert(text.end(), s.begin(), s.end());
    text.push_back(Datastore::kSeparator);
  }
  return text;
}

std::shared_ptr<Datastore> build(const std::vector<std::vector<int32_t>>& seqs, int64_t vocab = Datastore::kNoVocab) {
  return Datastore::from_text(text_of(seqs), vocab);
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("rk_test_spec_datastore_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(SpecSuffixArray, SaisMatchesComparisonSort) {
  std::mt19937 rng(1);
  for (int it = 0; it < 3000; ++it) {
    const int n = static_cast<int>(rng() % 60);
    const int k = 1 + static_cast<int>(rng() % 5);
    std::vector<int32_t> s(static_cast<size_t>(n));
    for (auto& x : s) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(k));
    std::vector<int32_t> sa(s.size());
    sais(s.data(), sa.data(), n, k);
    ASSERT_EQ(sa, naive_suffix_array(s)) << "n=" << n << " k=" << k;
  }
}

TEST(SpecSuffixArray, SaisRepetitiveInputs) {
  for (int n : {0, 1, 2, 3, 1000}) {
    std::vector<int32_t> same(static_cast<size_t>(n), 0), alternating(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) alternating[static_cast<size_t>(i)] = i % 2;
    for (auto* s : {&same, &alternating}) {
      std::vector<int32_t> sa(s->size());
      sais(s->data(), sa.data(), n, 2);
      EXPECT_EQ(sa, naive_suffix_array(*s));
    }
  }
}

TEST(SpecSuffixArray, ReversedMatchesComparisonSortWithSeparatorsAndHugeIds) {
  std::mt19937 rng(2);
  for (int it = 0; it < 3000; ++it) {
    std::vector<int32_t> text;
    const int seqs = 1 + static_cast<int>(rng() % 6);
    for (int s = 0; s < seqs; ++s) {
      const int len = static_cast<int>(rng() % 9);
      for (int i = 0; i < len; ++i) {
        const auto v = static_cast<int32_t>(rng() % 3);
        text.push_back(rng() % 2 ? v : INT32_MAX - v);
      }
      text.push_back(-1);
    }
    const auto sa = reversed_suffix_array(text.data(), static_cast<int64_t>(text.size()));
    ASSERT_EQ(sa, naive_reversed(text));
    ASSERT_EQ(check_reversed_suffix_array(text.data(), static_cast<int64_t>(text.size()), sa.data(),
                                          static_cast<int64_t>(sa.size())),
              "");
  }
}

TEST(SpecSuffixArray, CheckRefusesEveryWrongArray) {
  std::mt19937 rng(3);
  for (int it = 0; it < 2000; ++it) {
    std::vector<int32_t> text;
    for (int s = 0; s < 3; ++s) {
      for (int i = 0, len = 1 + static_cast<int>(rng() % 6); i < len; ++i) text.push_back(static_cast<int32_t>(rng() % 2));
      text.push_back(-1);
    }
    const auto size = static_cast<int64_t>(text.size());
    const auto sa = reversed_suffix_array(text.data(), size);
    auto wrong = sa;
    std::shuffle(wrong.begin(), wrong.end(), rng);  // any other order is refused
    EXPECT_EQ(check_reversed_suffix_array(text.data(), size, wrong.data(), static_cast<int64_t>(wrong.size())).empty(),
              wrong == sa);
  }
  const std::vector<int32_t> text{1, 2, -1, 2, -1};
  const std::vector<int32_t> sa = reversed_suffix_array(text.data(), 5);
  ASSERT_EQ(sa, (std::vector<int32_t>{0, 3, 1}));
  auto check = [&](std::vector<int32_t> a) { return check_reversed_suffix_array(text.data(), 5, a.data(), 3); };
  EXPECT_EQ(check({0, 1, 3}), "entry 1 (position 1) and entry 2 (position 3) are out of order");
  EXPECT_EQ(check({0, 3, 5}), "entry 2 (position 5) lies outside the text of 5 entries");
  EXPECT_EQ(check({0, 3, 2}), "entry 2 (position 2) points at a separator, not a token");
  EXPECT_EQ(check({0, 3, 0}), "entry 2 (position 0) repeats entry 0");
  EXPECT_EQ(check_reversed_suffix_array(text.data(), 5, sa.data(), 2), "token position 1 is missing from the array");
}

TEST(SpecDatastore, LongestMatchHandComputed) {
  // text 5 6 7 | 6 7 8 |; backward prefixes sorted: 5, 6, 6 5, 7 6, 7 6 5, 8 7 6.
  const auto ds = build({{5, 6, 7}, {6, 7, 8}});
  EXPECT_EQ(std::vector<int32_t>(ds->suffix_array(), ds->suffix_array() + 6), (std::vector<int32_t>{0, 4, 1, 5, 2, 6}));
  ASSERT_EQ(ds->table_ids(), 9);  // 1 + the largest id
  EXPECT_EQ(std::vector<int32_t>(ds->token_start(), ds->token_start() + 10),
            (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 1, 3, 5, 6}));
  const std::vector<int32_t> ctx{1, 6, 7};
  auto m = ds->longest_match(ctx.data(), 3, 16);
  EXPECT_EQ(m.length, 2);
  EXPECT_EQ(m.lo, 3);
  EXPECT_EQ(m.hi, 5);
  m = ds->longest_match(ctx.data(), 3, 1);  // max_match caps the length
  EXPECT_EQ(m.length, 1);
  EXPECT_EQ(m.hi - m.lo, 2);
  const std::vector<int32_t> absent{7, 9};
  m = ds->longest_match(absent.data(), 2, 16);
  EXPECT_EQ(m.length, 0);
  EXPECT_EQ(m.hi, m.lo);
  const std::vector<int32_t> across{7, 6};  // "7 | 6" spans the separator: only "6"
  EXPECT_EQ(ds->longest_match(across.data(), 2, 16).length, 1);
}

TEST(SpecDatastore, DraftHandComputed) {
  const auto ds = build({{1, 2, 3, 4}, {1, 2, 3, 5}, {2, 3, 4, 6}});
  RetrievalSession session(ds, RetrievalParams{});
  const std::vector<int32_t> prompt{9, 2, 3};
  session.extend(ConstView1<int32_t>{prompt.data(), 3, 1});
  TokenTree tree = session.draft(10);
  EXPECT_EQ(tree.tokens, (std::vector<int32_t>{3, 4, 6, 5}));
  EXPECT_EQ(tree.parents, (std::vector<int32_t>{-1, 0, 1, 0}));
  EXPECT_EQ(tree.weights, (std::vector<float>{1.0f, 2.0f / 3.0f, 1.0f / 3.0f, 1.0f / 3.0f}));
  EXPECT_EQ(session.match_length(), 2);
  EXPECT_EQ(session.match_count(), 3);
  tree = session.draft(2);  // the two heaviest: 4 (2/3), then 5 (1/3, shallower than 4 -> 6)
  EXPECT_EQ(tree.tokens, (std::vector<int32_t>{3, 4, 5}));
  tree = session.draft(0);
  EXPECT_EQ(tree.tokens, (std::vector<int32_t>{3}));
  RetrievalParams sampled;
  sampled.max_candidates = 2;  // entries lo + 0 and lo + 1 of the 3 (j * 3 / 2)
  RetrievalSession two(ds, sampled);
  two.extend(ConstView1<int32_t>{prompt.data(), 3, 1});
  EXPECT_EQ(two.draft(10).weights.size(), 3u);
}

TEST(SpecDatastore, ErrorsOfBuildAndDraft) {
  DatastoreBuilder builder(10);
  const std::vector<int64_t> ids{1, 10};
  const std::vector<int64_t> offsets{0, 2};
  try {
    builder.add(ConstView1<int64_t>{ids.data(), 2, 1}, ConstView1<int64_t>{offsets.data(), 2, 1});
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(), "Datastore.build: sequences[0][1] = 10 is outside [0, vocab_size = 10)");
  }
  EXPECT_EQ(builder.num_sequences(), 0);
  EXPECT_THROW(builder.finish(), ValueError);  // nothing in it
  EXPECT_THROW(DatastoreBuilder(0), ValueError);
  RetrievalSession session(build({{1}}), RetrievalParams{});
  EXPECT_THROW(session.draft(3), ValueError);  // empty sequence: no root
  RetrievalParams bad;
  bad.min_match = 17;
  EXPECT_THROW(RetrievalSession(build({{1}}), bad), ValueError);
}

TEST(SpecDatastore, SaveLoadRoundTripAndCorruption) {
  const auto ds = build({{1, 2, 3, 1, 2}, {2, 3, 4}, {1}}, 5);
  const std::string path = temp_path("a.rk");
  ds->save(path);
  for (bool verify : {true, false}) {
    const auto loaded = Datastore::load(path, verify);
    EXPECT_EQ(loaded->num_tokens(), 9);
    EXPECT_EQ(loaded->num_sequences(), 3);
    EXPECT_EQ(loaded->vocab_size(), 5);
    EXPECT_TRUE(std::equal(ds->text(), ds->text() + 12, loaded->text()));
    EXPECT_TRUE(std::equal(ds->suffix_array(), ds->suffix_array() + 9, loaded->suffix_array()));
  }
  // A text whose last sequence changed, written with valid checksums.
  std::vector<int32_t> text(ds->text(), ds->text() + 12);
  text[10] = 4;
  const int64_t meta[4] = {1, 9, 3, 5};
  const std::string forged = temp_path("b.rk");
  format::write_file(forged, "spec-datastore",
                     {{"meta", format::DType::i64, meta, sizeof(meta)},
                      {"text", format::DType::i32, text.data(), 12 * 4},
                      {"reversed_suffix_array", format::DType::i32, ds->suffix_array(), 9 * 4},
                      {"token_start", format::DType::i32, ds->token_start(), 6 * 4}});
  try {
    Datastore::load(forged);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(forged + ": section 'reversed_suffix_array' is not the sorted array", 0), 0u)
        << e.what();
  }
  EXPECT_NO_THROW(Datastore::load(forged, false));  // trusted: only sizes checked
  fs::remove(path);
  fs::remove(forged);
}
