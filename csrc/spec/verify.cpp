#include "spec/verify.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace ragkernels::spec {

namespace {

// Children of each node in stored (best-first) order, as CSR.
struct Children {
  std::vector<int32_t> offsets, nodes;
  explicit Children(const TokenTree& tree) : offsets(tree.tokens.size() + 1, 0), nodes(tree.tokens.size() - 1) {
    for (size_t i = 1; i < tree.tokens.size(); ++i) ++offsets[static_cast<size_t>(tree.parents[i]) + 1];
    for (size_t i = 1; i < offsets.size(); ++i) offsets[i] += offsets[i - 1];
    std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
    for (size_t i = 1; i < tree.tokens.size(); ++i)
      nodes[static_cast<size_t>(fill[static_cast<size_t>(tree.parents[i])]++)] = static_cast<int32_t>(i);
  }
};

}  // namespace

Accepted verify_greedy(const TokenTree& tree, View1<const int64_t> argmax) {
  RK_CHECK_ARG(argmax.size == tree.size(), "verify_greedy: argmax must have one entry per tree node (", tree.size(),
               "), got ", argmax.size);
  const Children children(tree);
  Accepted out;
  int32_t u = 0;
  out.nodes.push_back(0);
  while (true) {
    const int64_t next = argmax[u];
    RK_CHECK_ARG(next >= 0, "verify_greedy: argmax[", u, "] must be a token id >= 0, got ", next);
    int32_t match = -1;
    for (int32_t k = children.offsets[static_cast<size_t>(u)]; k < children.offsets[static_cast<size_t>(u) + 1]; ++k) {
      const int32_t c = children.nodes[static_cast<size_t>(k)];
      if (tree.tokens[static_cast<size_t>(c)] == next) {
        match = c;
        break;
      }
    }
    out.tokens.push_back(next);
    if (match < 0) return out;
    out.nodes.push_back(match);
    u = match;
  }
}

Accepted verify_sampling(const TokenTree& tree, View2<const float> probs, uint64_t seed) {
  RK_CHECK_ARG(probs.rows == tree.size(), "verify_sampling: probs must have one row per tree node (", tree.size(),
               "), got ", probs.rows);
  RK_CHECK_ARG(probs.cols >= 1, "verify_sampling: probs must have at least one column (the vocabulary)");
  const Children children(tree);
  SplitMix64 rng(seed);
  Accepted out;
  int32_t u = 0;
  out.nodes.push_back(0);
  std::vector<int64_t> rejected;
  while (true) {
    const View1<const float> p = probs.row(u);
    double total = 0.0;
    for (int64_t v = 0; v < p.size; ++v) {
      const float x = p[v];
      RK_CHECK_ARG(std::isfinite(x) && x >= 0.0f, "verify_sampling: probs[", u, ", ", v,
                   "] must be finite and >= 0, got ", x);
      total += x;
    }
    RK_CHECK_ARG(total > 0.0, "verify_sampling: probs[", u, "] sums to 0; each row must be a distribution");
    rejected.clear();
    int32_t accepted = -1;
    double residual = total;
    int64_t last_with_mass = -1;
    for (int32_t k = children.offsets[static_cast<size_t>(u)]; k < children.offsets[static_cast<size_t>(u) + 1]; ++k) {
      const int32_t c = children.nodes[static_cast<size_t>(k)];
      const int64_t token = tree.tokens[static_cast<size_t>(c)];
      const double mass = token < p.size ? static_cast<double>(p[token]) : 0.0;
      if (mass > 0.0 && rng.uniform() * residual < mass) {
        accepted = c;
        break;
      }
      if (token < p.size) rejected.push_back(token);
      if (mass > 0.0) last_with_mass = token;
      residual -= mass;
    }
    if (accepted >= 0) {
      out.tokens.push_back(tree.tokens[static_cast<size_t>(accepted)]);
      out.nodes.push_back(accepted);
      u = accepted;
      continue;
    }
    // Every child rejected: draw from p without the rejected tokens. The
    // residual is recomputed from the row (not total minus masses) so that
    // rounding cannot leave a target past the last token.
    std::sort(rejected.begin(), rejected.end());
    residual = 0.0;
    for (int64_t v = 0; v < p.size; ++v)
      if (!std::binary_search(rejected.begin(), rejected.end(), v)) residual += p[v];
    if (residual <= 0.0) {
      // Only rounding gets here: the children held all of p's mass, so the
      // last of them had acceptance probability 1 and lost to a rounding
      // of `residual` above. Emit it, as exact arithmetic would have.
      out.tokens.push_back(last_with_mass);
      return out;
    }
    const double target = rng.uniform() * residual;
    double cumulative = 0.0;
    int64_t chosen = -1;
    for (int64_t v = 0; v < p.size; ++v) {
      if (p[v] == 0.0f || std::binary_search(rejected.begin(), rejected.end(), v)) continue;
      chosen = v;  // the last token with mass, should rounding leave target past the end
      cumulative += p[v];
      if (target < cumulative) break;
    }
    out.tokens.push_back(chosen);
    return out;
  }
}

}  // namespace ragkernels::spec
