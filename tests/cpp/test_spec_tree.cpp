// Token trees in C++: the checks, merge's union and budget, the mask, and
// both verifications on hand-made trees (the Python tests compare the
// same ops with tests/reference/spec.py on random trees).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "spec/token_tree.h"
#include "spec/verify.h"

namespace ragkernels::spec {
namespace {

// 7 -> {1 -> {3}, 2}
TokenTree small_tree() {
  TokenTree tree(7);
  const int32_t a = tree.add(0, 1, 0.5f);
  tree.add(0, 2, 0.25f);
  tree.add(a, 3, 0.25f);
  return tree;
}

TEST(SpecTree, CheckRefusesBrokenInvariants) {
  TokenTree tree = small_tree();
  EXPECT_NO_THROW(check_tree(tree, "test"));
  tree.parents[3] = 3;
  EXPECT_THROW(check_tree(tree, "test"), ValueError);
  tree = small_tree();
  tree.weights[3] = 0.75f;  // above its parent's 0.5
  EXPECT_THROW(check_tree(tree, "test"), ValueError);
  tree = small_tree();
  tree.tokens[2] = 1;  // a second child of the root with token 1
  EXPECT_THROW(check_tree(tree, "test"), ValueError);
}

TEST(SpecTree, DepthsAndMask) {
  const TokenTree tree = small_tree();
  EXPECT_EQ(tree_depths(tree), (std::vector<int32_t>{0, 1, 1, 2}));
  std::vector<uint8_t> mask(4 * 6);
  tree_attention_mask<uint8_t>(tree, 2, 1, 0, mask.data());
  const std::vector<uint8_t> expected{1, 1, 1, 0, 0, 0,   //
                                      1, 1, 1, 1, 0, 0,   //
                                      1, 1, 1, 0, 1, 0,   //
                                      1, 1, 1, 1, 0, 1};
  EXPECT_EQ(mask, expected);
}

TEST(SpecTree, MergeUnionBudgetAndOrder) {
  TokenTree a(9), b(9);
  a.add(a.add(0, 1, 0.5f), 2, 0.4f);
  b.add(b.add(0, 1, 0.8f), 3, 0.1f);
  const TokenTree all = merge_trees({&a, &b}, 10);
  EXPECT_EQ(all.tokens, (std::vector<int32_t>{9, 1, 2, 3}));
  EXPECT_EQ(all.parents, (std::vector<int32_t>{-1, 0, 1, 1}));
  EXPECT_EQ(all.weights, (std::vector<float>{1.0f, 0.8f, 0.4f, 0.1f}));
  const TokenTree two = merge_trees({&a, &b}, 2);
  EXPECT_EQ(two.tokens, (std::vector<int32_t>{9, 1, 2}));
  EXPECT_EQ(merge_trees({&a}, 0).size(), 1);
  TokenTree other(8);
  EXPECT_THROW(merge_trees({&a, &other}, 3), ValueError);
}

TEST(SpecTree, VerifyGreedyFollowsTheArgmax) {
  const TokenTree tree = small_tree();
  const std::vector<int64_t> argmax{1, 3, 0, 5};
  const Accepted accepted = verify_greedy(tree, View1<const int64_t>{argmax.data(), 4, 1});
  EXPECT_EQ(accepted.nodes, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(accepted.tokens, (std::vector<int64_t>{1, 3, 5}));
  const std::vector<int64_t> miss{4, 0, 0, 0};
  EXPECT_EQ(verify_greedy(tree, View1<const int64_t>{miss.data(), 4, 1}).tokens, (std::vector<int64_t>{4}));
}

TEST(SpecTree, VerifySamplingPointMassesAcceptTheirPath) {
  // Each row puts all its mass on the drafted child: the whole path is kept.
  const TokenTree tree = small_tree();
  std::vector<float> probs(4 * 6, 0.0f);
  probs[0 * 6 + 1] = 1.0f;  // root -> 1
  probs[1 * 6 + 3] = 1.0f;  // 1 -> 3
  probs[2 * 6 + 0] = 1.0f;
  probs[3 * 6 + 5] = 1.0f;  // after 3: the bonus token 5
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const Accepted accepted = verify_sampling(tree, make_view2<const float>(probs.data(), 4, 6), seed);
    EXPECT_EQ(accepted.tokens, (std::vector<int64_t>{1, 3, 5}));
  }
  probs[0 * 6 + 1] = 0.0f;
  probs[0 * 6 + 4] = 1.0f;  // the target wants 4, never drafted
  EXPECT_EQ(verify_sampling(tree, make_view2<const float>(probs.data(), 4, 6), 1).tokens, (std::vector<int64_t>{4}));
}

}  // namespace
}  // namespace ragkernels::spec
