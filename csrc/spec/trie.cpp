#include "spec/trie.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::spec {

namespace {

struct Sequences {
  const int32_t* values;
  const int64_t* offsets;
  const int32_t* begin(int64_t i) const { return values + offsets[i]; }
  const int32_t* end(int64_t i) const { return values + offsets[i + 1]; }
  bool less(int64_t a, int64_t b) const {
    return std::lexicographical_compare(begin(a), end(a), begin(b), end(b));
  }
  bool equal(int64_t a, int64_t b) const {
    return offsets[a + 1] - offsets[a] == offsets[b + 1] - offsets[b] && std::equal(begin(a), end(a), begin(b));
  }
};

void check_sequences(const Sequences& seqs, int64_t n, int64_t vocab_size) {
  RK_CHECK_ARG(n >= 1, "Trie.build: sequences is empty; a trie needs at least one allowed sequence");
  RK_CHECK_ARG(vocab_size >= 1 && vocab_size <= int64_t{std::numeric_limits<int32_t>::max()} + 1,
               "Trie.build: vocab_size must be in [1, 2**31], got ", vocab_size);
  for (int64_t i = 0; i < n; ++i) {
    RK_CHECK_ARG(seqs.offsets[i + 1] > seqs.offsets[i], "Trie.build: sequences[", i,
                 "] is empty; every allowed sequence has at least one token");
    for (const int32_t* t = seqs.begin(i); t != seqs.end(i); ++t) {
      RK_CHECK_ARG(*t >= 0 && *t < vocab_size, "Trie.build: sequences[", i, "][", t - seqs.begin(i), "] = ", *t,
                   " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
}

// Indices of the sequences in lexicographic order: one sorted run per
// thread, merged pairwise (the order is total up to equal sequences, which
// are then adjacent: the result does not depend on the thread count).
std::vector<int64_t> sorted_order(const Sequences& seqs, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  const auto less = [&](int64_t a, int64_t b) { return seqs.less(a, b); };
  const int64_t runs = std::max<int64_t>(1, std::min<int64_t>(num_threads(), n / 4096));
  std::vector<int64_t> bounds(static_cast<size_t>(runs) + 1);
  for (int64_t r = 0; r <= runs; ++r) bounds[static_cast<size_t>(r)] = n * r / runs;
  parallel_for(0, runs, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      std::sort(order.begin() + bounds[static_cast<size_t>(r)], order.begin() + bounds[static_cast<size_t>(r) + 1],
                less);
    }
  });
  for (int64_t width = 1; width < runs; width *= 2) {
    for (int64_t r = 0; r + width < runs; r += 2 * width) {
      const auto first = order.begin() + bounds[static_cast<size_t>(r)];
      const auto middle = order.begin() + bounds[static_cast<size_t>(r + width)];
      const auto last = order.begin() + bounds[static_cast<size_t>(std::min(r + 2 * width, runs))];
      std::inplace_merge(first, middle, last, less);
    }
  }
  return order;
}

}  // namespace

Trie Trie::build(const int32_t* values, const int64_t* offsets, int64_t num_sequences, int64_t vocab_size) {
  const Sequences seqs{values, offsets};
  check_sequences(seqs, num_sequences, vocab_size);
  const std::vector<int64_t> order = sorted_order(seqs, num_sequences);

  Trie trie;
  trie.vocab_size_ = vocab_size;
  trie.terminal_.push_back(0);  // the root
  std::vector<int32_t> edge_parent, edge_token, edge_child;
  std::vector<int32_t> path{0};  // nodes of the previous sequence, the root first
  int64_t previous = -1;
  for (const int64_t s : order) {
    if (previous >= 0 && seqs.equal(previous, s)) continue;
    const int32_t* tokens = seqs.begin(s);
    const int64_t length = seqs.end(s) - tokens;
    int64_t common = 0;
    if (previous >= 0) {
      const int32_t* before = seqs.begin(previous);
      const int64_t limit = std::min(length, seqs.end(previous) - before);
      while (common < limit && before[common] == tokens[common]) ++common;
    }
    path.resize(static_cast<size_t>(common) + 1);
    for (int64_t d = common; d < length; ++d) {
      RK_CHECK_ARG(trie.terminal_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                   "Trie.build: more than 2**31 - 1 nodes");
      const auto node = static_cast<int32_t>(trie.terminal_.size());
      trie.terminal_.push_back(0);
      edge_parent.push_back(path.back());
      edge_token.push_back(tokens[d]);
      edge_child.push_back(node);
      path.push_back(node);
    }
    trie.terminal_[static_cast<size_t>(path.back())] = 1;
    ++trie.num_sequences_;
    previous = s;
  }
  // CSR by parent. A parent's edges were made in increasing token order
  // (sorted input), and the counting placement keeps that order.
  const auto nodes = static_cast<size_t>(trie.num_nodes());
  trie.row_ptr_.assign(nodes + 1, 0);
  for (const int32_t p : edge_parent) ++trie.row_ptr_[static_cast<size_t>(p) + 1];
  for (size_t v = 0; v < nodes; ++v) trie.row_ptr_[v + 1] += trie.row_ptr_[v];
  trie.tokens_.resize(edge_parent.size());
  trie.child_.resize(edge_parent.size());
  std::vector<int64_t> next(trie.row_ptr_.begin(), trie.row_ptr_.end() - 1);
  for (size_t e = 0; e < edge_parent.size(); ++e) {
    const auto slot = static_cast<size_t>(next[static_cast<size_t>(edge_parent[e])]++);
    trie.tokens_[slot] = edge_token[e];
    trie.child_[slot] = edge_child[e];
  }
  return trie;
}

size_t Trie::memory_bytes() const {
  return row_ptr_.capacity() * sizeof(int64_t) + (tokens_.capacity() + child_.capacity()) * sizeof(int32_t) +
         terminal_.capacity();
}

int32_t Trie::step(int32_t state, int32_t token) const {
  if (state < 0) return -1;
  const auto first = tokens_.begin() + row_ptr_[static_cast<size_t>(state)];
  const auto last = tokens_.begin() + row_ptr_[static_cast<size_t>(state) + 1];
  const auto it = std::lower_bound(first, last, token);
  return it != last && *it == token ? child_[static_cast<size_t>(it - tokens_.begin())] : -1;
}

void Trie::next_token_bitmask(const int32_t* states, int64_t n, int32_t* out) const {
  const int64_t words = bitmask_words();
  std::memset(out, 0, static_cast<size_t>(n * words) * sizeof(int32_t));
  for (int64_t r = 0; r < n; ++r) {
    if (states[r] < 0) continue;
    auto* row = reinterpret_cast<uint32_t*>(out + r * words);
    const auto s = static_cast<size_t>(states[r]);
    for (int64_t e = row_ptr_[s]; e < row_ptr_[s + 1]; ++e) {
      const auto t = static_cast<uint32_t>(tokens_[static_cast<size_t>(e)]);
      row[t / 32] |= uint32_t{1} << (t % 32);
    }
  }
}

void Trie::advance(const int32_t* states, const int32_t* tokens, int64_t n, int32_t* out) const {
  for (int64_t r = 0; r < n; ++r) out[r] = step(states[r], tokens[r]);
}

void Trie::is_terminal(const int32_t* states, int64_t n, uint8_t* out) const {
  for (int64_t r = 0; r < n; ++r) out[r] = states[r] >= 0 && terminal_[static_cast<size_t>(states[r])];
}

}  // namespace ragkernels::spec
