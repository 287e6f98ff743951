// The drafters of csrc/spec (issue 15): the edge hash map against
// std::unordered_map, the suffix automaton against brute force, prompt
// lookup and the suffix tree on hand-computed cases, and the suffix tree's
// invariants through additions and evictions; the vocabulary bridge.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "spec/prompt_lookup.h"
#include "spec/suffix_tree.h"
#include "spec/vocab_bridge.h"

namespace rk = ragkernels;
using rk::spec::TokenTree;

namespace {

std::vector<int32_t> random_tokens(std::mt19937& rng, int n, int vocab) {
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& t : out) t = dist(rng);
  return out;
}

// Longest L < n with text[n-L, n) also ending before n - 1, and the first
// such end; {0, -1} when none.
std::pair<int, int> brute_match(const std::vector<int32_t>& text) {
  const int n = static_cast<int>(text.size());
  for (int len = n - 1; len >= 1; --len) {
    for (int end = len - 1; end < n - 1; ++end) {
      bool same = true;
      for (int k = 0; k < len && same; ++k) same = text[static_cast<size_t>(end - k)] == text[static_cast<size_t>(n - 1 - k)];
      if (same) return {len, end};
    }
  }
  return {0, -1};
}

std::vector<int32_t> draft_tokens(const TokenTree& tree) {
  return std::vector<int32_t>(tree.tokens.begin() + 1, tree.tokens.end());
}

}  // namespace

TEST(SpecDrafters, EdgeMapMatchesUnorderedMap) {
  rk::spec::detail::EdgeMap map;
  std::unordered_map<int64_t, int32_t> ref;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> node(0, 300), token(-5, 40), op(0, 2);
  for (int step = 0; step < 200000; ++step) {
    const int32_t x = node(rng), t = token(rng);
    const int64_t key = (int64_t{x} << 32) | static_cast<uint32_t>(t);
    const int what = op(rng);
    if (what == 0) {
      map.insert_or_assign(x, t, step);
      ref[key] = step;
    } else if (what == 1 && ref.count(key)) {
      map.erase(x, t);
      ref.erase(key);
    } else {
      const auto it = ref.find(key);
      ASSERT_EQ(map.find(x, t), it == ref.end() ? -1 : it->second);
    }
  }
  ASSERT_EQ(map.size(), ref.size());
  for (const auto& [key, value] : ref) {
    map.erase(static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xffffffff));
  }
  EXPECT_EQ(map.size(), 0u);
  EXPECT_LE(map.memory_bytes(), 2048u);  // shrank back
}

TEST(SpecDrafters, SuffixAutomatonMatchesBruteForce) {
  std::mt19937 rng(11);
  for (int vocab : {1, 2, 3, 7}) {
    const auto text = random_tokens(rng, 120, vocab);
    rk::spec::SuffixAutomaton sam;
    std::vector<int32_t> prefix;
    for (const int32_t t : text) {
      sam.append(t);
      prefix.push_back(t);
      const auto [len, end] = brute_match(prefix);
      const int32_t v = sam.link(sam.last());
      ASSERT_EQ(sam.len(v), len) << "vocab " << vocab << " at " << prefix.size();
      if (len > 0) {
        ASSERT_EQ(sam.first_end(v), end);
      }
    }
    EXPECT_LE(sam.num_states(), 2 * static_cast<int64_t>(text.size()));
  }
}

TEST(SpecDrafters, PromptLookupCopiesThePeriod) {
  // 1 2 3 4 1 2: "1 2" ended first at 1; the copy runs 3 4 1 2 and then
  // repeats what it drafted (the period 3 4 1 2).
  rk::spec::PromptLookup lookup({10, 2}, {}, {1, 2, 3, 4, 1, 2});
  const TokenTree tree = lookup.draft(7);
  EXPECT_EQ(tree.tokens[0], 2);
  EXPECT_EQ(draft_tokens(tree), (std::vector<int32_t>{3, 4, 1, 2, 3, 4, 1}));
  EXPECT_EQ(tree.parents, (std::vector<int32_t>{-1, 0, 1, 2, 3, 4, 5, 6}));
  EXPECT_FLOAT_EQ(tree.weights[1], 3.0f / 4.0f);  // (L + 1) / (L + 1 + k), L = 2
  EXPECT_FLOAT_EQ(tree.weights[7], 3.0f / 10.0f);
  EXPECT_EQ(lookup.draft(0).size(), 1);
  EXPECT_EQ(lookup.draft(100).size(), 11);  // max_depth
}

TEST(SpecDrafters, PromptLookupRepeatedTokenAndContext) {
  rk::spec::PromptLookup run({5, 1}, {}, {7, 7, 7, 7});
  EXPECT_EQ(run.match_length(), 3);
  EXPECT_EQ(draft_tokens(run.draft(9)), (std::vector<int32_t>(5, 7)));
  // The match "5 6" is found in the context; the copy stops at its end.
  rk::spec::PromptLookup ctx({8, 2}, {{4, 5, 6, 9}, {1}}, {3, 5, 6});
  EXPECT_EQ(draft_tokens(ctx.draft(8)), (std::vector<int32_t>{9}));
  // min_match: one matching token is not enough.
  rk::spec::PromptLookup weak({8, 2}, {}, {1, 2, 3, 1});
  EXPECT_EQ(weak.draft(8).size(), 1);
  const int32_t more[] = {2};
  weak.extend(more, 1);
  EXPECT_EQ(draft_tokens(weak.draft(3)), (std::vector<int32_t>{3, 1, 2}));
  const rk::spec::PromptLookup empty({8, 2}, {}, {});
  EXPECT_THROW(empty.draft(1), rk::ValueError);
}

TEST(SpecDrafters, SuffixTreeCountsByHand) {
  // Documents 1 2 1 3 and 1 2, max_depth 2: count(1) = 3, count(1 2) = 2,
  // count(1 3) = 1, count(2) = 2, count(2 1) = 1, count(3) = 1; root 6.
  rk::spec::SuffixTree tree(2);
  tree.add_document({1, 2, 1, 3});
  tree.add_document({1, 2});
  std::vector<int32_t> tokens, parents;
  std::vector<int64_t> counts;
  tree.export_trie(tokens, parents, counts);
  EXPECT_EQ(tokens, (std::vector<int32_t>{-1, 1, 2, 3, 2, 3, 1}));
  EXPECT_EQ(parents, (std::vector<int32_t>{-1, 0, 0, 0, 1, 1, 2}));
  EXPECT_EQ(counts, (std::vector<int64_t>{6, 3, 2, 1, 2, 1, 1}));
  EXPECT_EQ(tree.check(), "");
  // Pattern ... 1: the children of "1" are 2 (2/3) and 3 (1/3).
  const int32_t pattern[] = {5, 1};
  const auto draft = tree.draft(pattern, 2, 1, 8, {16, 4.0, 0.0});
  EXPECT_EQ(draft.match_length, 1);
  EXPECT_EQ(draft_tokens(draft.tree), (std::vector<int32_t>{2, 3}));
  EXPECT_FLOAT_EQ(draft.tree.weights[1], 2.0f / 3.0f);
  EXPECT_FLOAT_EQ(draft.tree.weights[2], 1.0f / 3.0f);
  // The floor drops 3, the cap (factor * L) keeps one node.
  EXPECT_EQ(tree.draft(pattern, 2, 1, 8, {16, 4.0, 0.5}).tree.size(), 2);
  EXPECT_EQ(tree.draft(pattern, 2, 1, 8, {16, 1.0, 0.0}).tree.size(), 2);
}

TEST(SpecDrafters, SuffixTreeEvictionIsCanonical) {
  std::mt19937 rng(5);
  struct Case {
    int vocab, docs, max_len, keep;
  };
  for (const Case c : {Case{1, 40, 60, 7}, Case{2, 40, 60, 7}, Case{5, 40, 60, 7}, Case{50, 40, 60, 7},
                       Case{50, 120, 400, 5}, Case{3, 60, 300, 2}}) {
    std::vector<std::vector<int32_t>> docs;
    for (int i = 0; i < c.docs; ++i) docs.push_back(random_tokens(rng, 1 + static_cast<int>(rng() % c.max_len), c.vocab));
    rk::spec::SuffixTree rolling(6);
    size_t peak = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
      rolling.add_document(docs[i]);
      if (static_cast<int>(i) >= c.keep) rolling.evict_oldest();
      peak = std::max(peak, rolling.memory_bytes());
      ASSERT_EQ(rolling.check(), "") << "vocab " << c.vocab << " doc " << i;
    }
    rk::spec::SuffixTree fresh(6);
    for (size_t i = docs.size() - static_cast<size_t>(c.keep); i < docs.size(); ++i) fresh.add_document(docs[i]);
    std::vector<int32_t> t1, p1, t2, p2;
    std::vector<int64_t> c1, c2;
    rolling.export_trie(t1, p1, c1);
    fresh.export_trie(t2, p2, c2);
    EXPECT_EQ(t1, t2);
    EXPECT_EQ(p1, p2);
    EXPECT_EQ(c1, c2);
    EXPECT_EQ(rolling.num_nodes(), fresh.num_nodes());
    while (rolling.num_documents() > 0) rolling.evict_oldest();
    EXPECT_EQ(rolling.num_nodes(), 1);
    EXPECT_EQ(rolling.check(), "");
    if (c.max_len >= 300) {  // thousands of nodes freed: compaction gave memory back
      EXPECT_GT(peak, size_t{50000});
      EXPECT_LT(rolling.memory_bytes(), size_t{16384});
    }
  }
}

TEST(SpecDrafters, SuffixSessionsDraftWhileOthersFinish) {
  rk::spec::SuffixDrafterParams params;
  params.max_depth = 8;
  params.draft.max_match = 4;
  params.max_answers = 1000;
  auto drafter = std::make_shared<rk::spec::SuffixDrafter>(params);
  std::mt19937 rng(9);
  for (int i = 0; i < 50; ++i) drafter->add(random_tokens(rng, 40, 6));
  const auto prompt = random_tokens(rng, 30, 6);
  rk::spec::SuffixSession probe(drafter, {}, prompt);
  const TokenTree expected = probe.draft(16);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 200; ++i) {
        if (w % 2 == 0) {
          // Answers over other tokens: they change no count the probe reads.
          rk::spec::SuffixSession s(drafter, {}, {1000 + w});
          const int32_t answer[] = {2000 + i, 2001 + i, 2002};
          s.extend(answer, 3);
          s.finish();
        } else {
          EXPECT_EQ(probe.draft(16).tokens, expected.tokens);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(drafter->check(), "");
}

// ---- the cross-vocabulary bridge -------------------------------------------------------------

namespace {

using ragkernels::spec::BridgeSession;
using ragkernels::spec::ByteVocab;
using ragkernels::spec::VocabBridge;

}  // namespace

TEST(ByteVocab, LongestMatchAndOpenEnds) {
  const ByteVocab vocab({"a", "ab", "abc", "b", "", "ab"});
  const auto m = vocab.longest("abd");
  EXPECT_EQ(m.id, 1);  // "ab": of equal bytes the lowest id
  EXPECT_EQ(m.length, 2);
  EXPECT_FALSE(m.open);
  EXPECT_TRUE(vocab.longest("ab").open);  // "abc" could follow
  EXPECT_EQ(vocab.longest("x").id, -1);
  std::vector<int64_t> ends;
  EXPECT_EQ(vocab.encode("abxbab", ByteVocab::Mode::kCommit, &ends), (std::vector<int32_t>{1, 3, 1}));
  EXPECT_EQ(ends, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(vocab.encode("abxbab", ByteVocab::Mode::kDraft), (std::vector<int32_t>{1}));  // stops at "x"
  EXPECT_EQ(vocab.encode("bab", ByteVocab::Mode::kDraft), (std::vector<int32_t>{3}));   // "ab" may grow
}

TEST(BridgeSession, CommitsWordsAndMapsTheContinuation) {
  auto bridge = std::make_shared<const VocabBridge>(ByteVocab({"a", "b", " ", "ba"}),
                                                    ByteVocab({"a", "b", " ", "ab", " ab"}));
  BridgeSession session(bridge);
  const std::vector<int32_t> prompt{3, 0, 2, 3};  // "aba ab"
  EXPECT_EQ(session.extend(prompt.data(), 4), (std::vector<int32_t>{0, 3}));  // "aba"
  EXPECT_EQ(session.pending(), " ab");
  ragkernels::spec::TokenTree drafted(3);  // drafter: " ", "a", "ba", " " (and a branch that disagrees)
  const int32_t space = drafted.add(0, 2, 0.9f);
  const int32_t a = drafted.add(space, 0, 0.8f);
  drafted.add(drafted.add(a, 3, 0.7f), 2, 0.6f);
  drafted.add(space, 1, 0.1f);  // " b": not the pending " ab"
  const auto tree = session.map(drafted, 8);
  EXPECT_EQ(tree.tokens, (std::vector<int32_t>{3, 0}));  // "a" then " " (open: " ab" may follow): left out
  EXPECT_EQ(tree.parents, (std::vector<int32_t>{-1, 0}));
  EXPECT_FLOAT_EQ(tree.weights[1], 0.7f);  // the bytes of "a" need the drafter's "ba"
}
