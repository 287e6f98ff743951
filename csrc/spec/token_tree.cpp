#include "spec/token_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <utility>
#include <vector>

#include "core/error.h"

namespace ragkernels::spec {

void check_tree(const TokenTree& tree, const char* op) {
  const int64_t n = tree.size();
  RK_CHECK_ARG(n >= 1, op, ": a token tree has at least its root (node 0)");
  RK_CHECK_ARG(static_cast<int64_t>(tree.parents.size()) == n && static_cast<int64_t>(tree.weights.size()) == n,
               op, ": tokens, parents and weights must have the same length, got ", n, ", ",
               tree.parents.size(), " and ", tree.weights.size());
  RK_CHECK_ARG(tree.parents[0] == -1, op, ": parents[0] must be -1 (node 0 is the root), got ", tree.parents[0]);
  RK_CHECK_ARG(tree.weights[0] == 1.0f, op, ": weights[0] (the root's) must be 1, got ", tree.weights[0]);
  // Children tokens seen per parent, for the uniqueness check: a sorted list of (parent, token).
  std::vector<std::pair<int32_t, int32_t>> edges;
  edges.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    RK_CHECK_ARG(tree.tokens[i] >= 0, op, ": tokens[", i, "] must be >= 0, got ", tree.tokens[i]);
    const float w = tree.weights[i];
    RK_CHECK_ARG(std::isfinite(w) && w >= 0.0f && w <= 1.0f, op, ": weights[", i, "] must be in [0, 1], got ", w);
    if (i == 0) continue;
    const int32_t p = tree.parents[i];
    RK_CHECK_ARG(p >= 0 && p < i, op, ": parents[", i, "] must be in [0, ", i, ") (a parent comes before its child), got ",
                 p);
    RK_CHECK_ARG(w <= tree.weights[p], op, ": weights[", i, "] = ", w, " is above its parent's (weights[", p,
                 "] = ", tree.weights[p], "); a path's weight never grows");
    edges.emplace_back(p, tree.tokens[i]);
  }
  std::sort(edges.begin(), edges.end());
  const auto dup = std::adjacent_find(edges.begin(), edges.end());
  RK_CHECK_ARG(dup == edges.end(), op, ": node ", (dup == edges.end() ? 0 : dup->first), " has two children with token ",
               (dup == edges.end() ? 0 : dup->second), "; siblings must hold distinct tokens");
}

std::vector<int32_t> tree_depths(const TokenTree& tree) {
  std::vector<int32_t> depth(tree.tokens.size(), 0);
  for (size_t i = 1; i < depth.size(); ++i) depth[i] = depth[static_cast<size_t>(tree.parents[i])] + 1;
  return depth;
}

namespace {

// The union trie: children per node keyed by token.
struct UnionNode {
  int32_t token;
  int32_t depth;
  float weight;
  int64_t found;  // order of first appearance, for deterministic ties
  std::map<int32_t, int32_t> children;
};

}  // namespace

TokenTree merge_trees(const std::vector<const TokenTree*>& trees, int64_t budget) {
  RK_CHECK_ARG(!trees.empty(), "merge: give at least one tree");
  RK_CHECK_ARG(budget >= 0, "merge: budget must be >= 0, got ", budget);
  const int32_t root_token = trees.front()->tokens[0];
  std::vector<UnionNode> nodes{UnionNode{root_token, 0, 1.0f, 0, {}}};
  for (size_t t = 0; t < trees.size(); ++t) {
    const TokenTree& tree = *trees[t];
    RK_CHECK_ARG(tree.tokens[0] == root_token, "merge: trees[", t, "] has root token ", tree.tokens[0],
                 ", trees[0] has ", root_token, "; merged trees must share their root");
    std::vector<int32_t> to_union(tree.tokens.size(), 0);
    for (size_t i = 1; i < tree.tokens.size(); ++i) {
      const int32_t parent = to_union[static_cast<size_t>(tree.parents[i])];
      auto [it, inserted] = nodes[static_cast<size_t>(parent)].children.try_emplace(
          tree.tokens[i], static_cast<int32_t>(nodes.size()));
      if (inserted) {
        nodes.push_back(UnionNode{tree.tokens[i], nodes[static_cast<size_t>(parent)].depth + 1, tree.weights[i],
                                  static_cast<int64_t>(nodes.size()), {}});
      } else {
        nodes[static_cast<size_t>(it->second)].weight =
            std::max(nodes[static_cast<size_t>(it->second)].weight, tree.weights[i]);
      }
      to_union[i] = it->second;
    }
  }
  // A child of the union may hold a larger weight than its parent (a
  // different tree gave it): clamp down the path so the order is prefix-closed.
  for (size_t i = 1; i < nodes.size(); ++i)
    for (const auto& [token, child] : nodes[i].children)
      nodes[static_cast<size_t>(child)].weight = std::min(nodes[static_cast<size_t>(child)].weight, nodes[i].weight);
  // Nodes were appended after their parents, so the clamp above saw each
  // parent's final weight first.
  std::vector<char> keep(nodes.size(), 1);
  if (static_cast<int64_t>(nodes.size()) - 1 > budget) {
    std::vector<int32_t> order(nodes.size() - 1);
    std::iota(order.begin(), order.end(), 1);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      const UnionNode& x = nodes[static_cast<size_t>(a)];
      const UnionNode& y = nodes[static_cast<size_t>(b)];
      if (x.weight != y.weight) return x.weight > y.weight;
      if (x.depth != y.depth) return x.depth < y.depth;
      return x.found < y.found;
    });
    for (size_t r = static_cast<size_t>(budget); r < order.size(); ++r) keep[static_cast<size_t>(order[r])] = 0;
  }
  // Depth-first, children best-first.
  TokenTree out(root_token);
  std::vector<std::pair<int32_t, int32_t>> stack{{0, -1}};  // (union node, parent in out)
  std::vector<int32_t> children;
  while (!stack.empty()) {
    const auto [u, parent] = stack.back();
    stack.pop_back();
    const int32_t here = u == 0 ? 0 : out.add(parent, nodes[static_cast<size_t>(u)].token, nodes[static_cast<size_t>(u)].weight);
    children.clear();
    for (const auto& [token, child] : nodes[static_cast<size_t>(u)].children)
      if (keep[static_cast<size_t>(child)]) children.push_back(child);
    std::stable_sort(children.begin(), children.end(), [&](int32_t a, int32_t b) {
      return nodes[static_cast<size_t>(a)].weight > nodes[static_cast<size_t>(b)].weight;  // map order: token ascending
    });
    for (auto c = children.rbegin(); c != children.rend(); ++c) stack.emplace_back(*c, here);
  }
  return out;
}

template <typename T>
void tree_attention_mask(const TokenTree& tree, int64_t past_length, T allowed, T masked, T* out) {
  const int64_t n = tree.size();
  const int64_t width = past_length + n;
  for (int64_t i = 0; i < n; ++i) {
    T* row = out + i * width;
    std::fill(row, row + past_length, allowed);
    std::fill(row + past_length, row + width, masked);
    for (int64_t a = i; a >= 0; a = tree.parents[static_cast<size_t>(a)]) row[past_length + a] = allowed;
  }
}

template void tree_attention_mask<float>(const TokenTree&, int64_t, float, float, float*);
template void tree_attention_mask<double>(const TokenTree&, int64_t, double, double, double*);
template void tree_attention_mask<uint16_t>(const TokenTree&, int64_t, uint16_t, uint16_t, uint16_t*);
template void tree_attention_mask<uint8_t>(const TokenTree&, int64_t, uint8_t, uint8_t, uint8_t*);

}  // namespace ragkernels::spec
