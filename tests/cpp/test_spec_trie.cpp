// The constrained-decoding trie (csrc/spec/trie.h) on a hand-made set: the
// CSR arrays, steps, bitmask words and terminals (the Python tests compare
// random sets with tests/reference/spec.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "spec/trie.h"

namespace {

using ragkernels::spec::Trie;

std::shared_ptr<Trie> build(const std::vector<std::vector<int32_t>>& sequences, int64_t vocab_size) {
  std::vector<int32_t> values;
  std::vector<int64_t> offsets{0};
  for (const auto& s : sequences) {
    values.insert(values.end(), s.begin(), s.end());
    offsets.push_back(static_cast<int64_t>(values.size()));
  }
  return Trie::build(values.data(), offsets.data(), static_cast<int64_t>(sequences.size()), vocab_size);
}

template <typename T>
std::vector<std::remove_const_t<T>> copy(ragkernels::View1<T> view) {
  return {view.data, view.data + view.size};
}

}  // namespace

TEST(Trie, CsrOfASmallSet) {
  // Sorted: [5 6], [5 7 8], [5 7 8] (again), [9]; preorder: 0 root, 1=5, 2=6, 3=7, 4=8, 5=9.
  const auto built = build({{9}, {5, 7, 8}, {5, 6}, {5, 7, 8}}, 40);
  const Trie& trie = *built;
  EXPECT_EQ(trie.num_sequences(), 3);
  EXPECT_EQ(copy(trie.row_ptr()), (std::vector<int64_t>{0, 2, 4, 4, 5, 5, 5}));
  EXPECT_EQ(copy(trie.tokens()), (std::vector<int32_t>{5, 9, 6, 7, 8}));
  EXPECT_EQ(copy(trie.child()), (std::vector<int32_t>{1, 5, 2, 3, 4}));
  EXPECT_EQ(copy(trie.terminal()), (std::vector<uint8_t>{0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(trie.step(0, 5), 1);
  EXPECT_EQ(trie.step(1, 8), -1);
  EXPECT_EQ(trie.step(-1, 5), -1);
  const std::vector<int32_t> states{0, 3, -1};
  std::vector<int32_t> mask(states.size() * 2);
  trie.next_token_bitmask(states.data(), 3, mask.data());
  EXPECT_EQ(mask, (std::vector<int32_t>{(1 << 5) | (1 << 9), 0, 1 << 8, 0, 0, 0}));
}

TEST(Trie, RefusesBadSets) {
  EXPECT_THROW(build({}, 5), ragkernels::ValueError);
  EXPECT_THROW(build({{1}, {}}, 5), ragkernels::ValueError);
  EXPECT_THROW(build({{5}}, 5), ragkernels::ValueError);
}

TEST(Trie, MaskLogitsWritesMinusInfinityOnlyWhereNotAllowed) {
  // [5 6], [5 7 8], [9] over 40 tokens, logits 45 wide (5 padded columns).
  const auto trie = build({{5, 6}, {5, 7, 8}, {9}}, 40);
  const int32_t states[] = {0, 1, 5, -1};  // root, after 5, after 9 (a leaf), dead
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> source(4 * 45, 1.5f), logits(4 * 45, 7.0f);
  const Trie::Logits source_view{source.data(), 4, 45, 45, Trie::LogitsType::kFloat32};
  trie->mask_logits(states, 42, {logits.data(), 4, 45, 45, Trie::LogitsType::kFloat32}, source_view);  // a copy
  trie->mask_logits(states, 42, source_view, source_view);  // in place
  EXPECT_EQ(logits, source);
  const std::vector<std::vector<int>> allowed = {{5, 9}, {6, 7}, {42}, {42}};  // eos 42 after 9 and when dead
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < 45; ++t) {
      const bool keep = std::find(allowed[r].begin(), allowed[r].end(), t) != allowed[r].end();
      EXPECT_EQ(logits[r * 45 + t], keep ? 1.5f : -inf) << "row " << r << " token " << t;
    }
  }
  // Without eos a row that allows nothing is left alone; float16 -inf is 0xFC00.
  std::vector<uint16_t> half(2 * 40, 0x3C00);  // 1.0
  const int32_t ended[] = {5, 1};
  const Trie::Logits half_view{half.data(), 2, 40, 40, Trie::LogitsType::kFloat16};
  trie->mask_logits(ended, -1, half_view, half_view);
  EXPECT_EQ(std::count(half.begin(), half.begin() + 40, 0x3C00), 40);
  EXPECT_EQ(std::count(half.begin() + 40, half.end(), 0xFC00), 38);
}
