// Lossless verification of a draft token tree against the target model's
// output at every node (docs/spec.md).
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"
#include "spec/token_tree.h"

namespace ragkernels::spec {

// The accepted path: node indices from the root (nodes[0] == 0), and the
// tokens to append: the tokens of nodes[1:], then the target's own token
// at the last accepted node (so at least one token per verification).
struct Accepted {
  std::vector<int64_t> nodes;
  std::vector<int64_t> tokens;
};

// Greedy: from the root, follow the child whose token is the target's
// argmax at the current node, while there is one. argmax[i] is the
// target's choice after node i's path; size tree.size().
Accepted verify_greedy(const TokenTree& tree, View1<const int64_t> argmax);

// Sampling (SpecInfer's multi-branch rejection sampling for drafts that are
// not sampled, i.e. a point mass on each child's token): at node u, with p
// the target's distribution there, each child c in order is accepted with
// probability r(token_c) / sum(r), where r is p with the tokens of the
// children already rejected set to 0; if every child is rejected, a token
// is drawn from r. The token emitted at each position is then distributed
// exactly as p. probs(i, v) is the target's probability of token v after
// node i (non-negative, finite, positive sum; need not be normalized).
// Uniforms come from SplitMix64 seeded with `seed`, so a seed gives one
// result on every machine.
Accepted verify_sampling(const TokenTree& tree, View2<const float> probs, uint64_t seed);

// The uniform draws of verify_sampling: SplitMix64's outputs' top 53 bits.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // in [0, 1)

 private:
  uint64_t state_;
};

}  // namespace ragkernels::spec
