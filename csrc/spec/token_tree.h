// A draft token tree: what a drafter proposes for one sequence, verified by
// one forward pass of the target model (docs/spec.md).
//
// Node 0 is the root: the last token of the sequence so far, whose KV the
// model has not cached yet (the forward pass feeds it together with the
// draft). Every other node i has a parent parents[i] < i (so the arrays are
// in topological order), a token and a weight: the drafter's estimate of
// the probability that the target model produces the node's whole path
// (1 for the root; never larger than the parent's weight). The children
// of a node are stored in the order the drafter ranks them (best first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ragkernels::spec {

struct TokenTree {
  std::vector<int32_t> tokens{0};
  std::vector<int32_t> parents{-1};
  std::vector<float> weights{1.0f};

  explicit TokenTree(int32_t root_token = 0) : tokens{root_token} {}
  // A root-only tree with room for `capacity` nodes (one allocation per array).
  TokenTree(int32_t root_token, size_t capacity) : tokens(), parents(), weights() {
    tokens.reserve(capacity);
    parents.reserve(capacity);
    weights.reserve(capacity);
    add(-1, root_token, 1.0f);
  }
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  // Appends a node and returns its index; parent must be an existing node.
  int32_t add(int32_t parent, int32_t token, float weight) {
    tokens.push_back(token);
    parents.push_back(parent);
    weights.push_back(weight);
    return static_cast<int32_t>(tokens.size() - 1);
  }
};

}  // namespace ragkernels::spec

namespace ragkernels::spec {

// Checks what every tree operation relies on, naming `op` in the error:
// equal lengths, a root (parents[0] == -1), 0 <= parents[i] < i, tokens >= 0,
// weights finite in [0, 1], root weight 1, a weight never above its
// parent's, and no two children of a node with the same token (verification
// follows the child whose token the target chose: it must be unique).
void check_tree(const TokenTree& tree, const char* op);

// Depth of each node (the root 0).
std::vector<int32_t> tree_depths(const TokenTree& tree);

// One tree of the union of several with the same root token: a path shared
// by several trees appears once, with the largest of their weights. Over
// `budget` non-root nodes, the `budget` of highest weight are kept (ties:
// the shallower, then the earlier found); weights never grow down a path,
// so the kept set is closed under parents. Nodes come out in depth-first
// order, children best-first (weight descending, then token ascending), so
// a chain is nodes 0, 1, 2, ... in order.
TokenTree merge_trees(const std::vector<const TokenTree*>& trees, int64_t budget);

// The additive attention mask of one forward pass over the tree's nodes
// after `past_length` cached positions: row i holds 0 for every past
// position and for i's ancestors and i itself, `masked` elsewhere.
// out is n x (past_length + n), row-major.
template <typename T>
void tree_attention_mask(const TokenTree& tree, int64_t past_length, T allowed, T masked, T* out);

}  // namespace ragkernels::spec
