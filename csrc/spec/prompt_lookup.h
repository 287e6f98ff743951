// Prompt lookup drafting with an online suffix automaton (issue 15).
//
// A request's text is its context pieces (each followed by a separator
// token of its own, -1, -2, ..., so that no match spans two pieces), then
// its prompt, then every token accepted since. A suffix automaton over that
// text (Blumer et al. 1985; the online construction of Crochemore & Hancart)
// is extended by one token at a time in amortized O(1) expected (transitions
// live in one hash table, so ids up to 2^31 - 1 cost no vocabulary-sized
// array), never by a rescan.
//
// Draft: with last = the state of the whole text and v = link(last), len(v)
// is the length L of the longest suffix of the text that also occurs ending
// earlier. The draft copies the tokens that followed its FIRST occurrence
// (firstpos(v), fixed when a state is created: O(1)). The most recent
// occurrence would need every suffix-link ancestor of each new state updated,
// O(n) per token on a run of one repeated token. When the copy reaches the
// present (overlapping occurrences, e.g. a a a a or a repeated phrase) it
// goes on copying from the drafted tokens, as an LZ77 overlapping copy does:
// the draft extends the period. It stops at a separator, at
// min(max_nodes, max_depth) tokens, and is empty when L < min_match.
//
// Weights (the chain's k-th node, k >= 1): (L + 1) / (L + 1 + k), Laplace's
// rule of succession applied token by token: after L tokens that repeated an
// earlier occurrence, the next repeats it with probability (L + 1) / (L + 2),
// and each accepted token lengthens the match, so the product telescopes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "spec/token_tree.h"

namespace ragkernels::spec {

namespace detail {

// Open-addressing hash map (node, token) -> node with linear probing and
// backward-shift deletion, shared by the suffix automaton and the suffix
// tree. Keys pack a non-negative int32 node and any int32 token. Load stays
// within [1/8, 3/4] (the table shrinks as entries are erased).
class EdgeMap {
 public:
  int32_t find(int32_t node, int32_t token) const {
    if (keys_.empty()) return -1;
    const uint64_t k = key(node, token);
    for (uint64_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return values_[i];
      if (keys_[i] == kEmpty) return -1;
    }
  }
  void insert_or_assign(int32_t node, int32_t token, int32_t value);
  void erase(int32_t node, int32_t token);  // the key must be present
  size_t size() const { return size_; }
  size_t memory_bytes() const { return keys_.capacity() * sizeof(uint64_t) + values_.capacity() * sizeof(int32_t); }
  void clear() { *this = EdgeMap(); }
  void reserve(size_t n);

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // node 0xFFFFFFFF never exists
  static uint64_t key(int32_t node, int32_t token) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(node)) << 32) | static_cast<uint32_t>(token);
  }
  uint64_t slot(uint64_t k) const {  // MurmurHash3's 64-bit finalizer
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k & mask_;
  }
  void rehash(size_t capacity);

  std::vector<uint64_t> keys_;
  std::vector<int32_t> values_;
  size_t size_ = 0;
  uint64_t mask_ = 0;
};

}  // namespace detail

// The online suffix automaton of a token sequence. States are int32
// (state 0 is the empty string); the text may hold up to 2^30 tokens.
class SuffixAutomaton {
 public:
  SuffixAutomaton();
  // Appends one token (any int32; separators are negative). Amortized O(1).
  void append(int32_t token);
  void reserve(size_t tokens);

  int32_t last() const { return last_; }
  int32_t len(int32_t s) const { return states_[static_cast<size_t>(s)].len; }
  int32_t link(int32_t s) const { return states_[static_cast<size_t>(s)].link; }
  // End index (in text()) of the first occurrence of the strings of s.
  int32_t first_end(int32_t s) const { return states_[static_cast<size_t>(s)].first_end; }
  int32_t next(int32_t s, int32_t token) const { return next_.find(s, token); }
  const std::vector<int32_t>& text() const { return text_; }
  int64_t num_states() const { return static_cast<int64_t>(states_.size()); }
  size_t memory_bytes() const;

 private:
  struct State {
    int32_t len;
    int32_t link;
    int32_t first_end;
    int32_t edges;  // head of this state's outgoing-token list (for clones)
  };
  struct Edge {
    int32_t token;
    int32_t next;
  };
  int32_t new_state(int32_t len, int32_t first_end);
  void add_edge(int32_t s, int32_t token, int32_t target);

  std::vector<State> states_;
  std::vector<Edge> edges_;
  detail::EdgeMap next_;
  std::vector<int32_t> text_;
  int32_t last_ = 0;
};

struct PromptLookupParams {
  int64_t max_depth = 16;  // longest draft, >= 1
  int64_t min_match = 2;   // shortest match that drafts, >= 1
  void check(const char* op) const;
};

// One request of the prompt lookup drafter. Calls on one session are
// serialized by its own mutex; sessions share nothing.
class PromptLookup {
 public:
  // Context pieces, then the prompt; token ids must be >= 0 (checked by the
  // binding). O(total tokens).
  PromptLookup(const PromptLookupParams& params, const std::vector<std::vector<int32_t>>& context,
               const std::vector<int32_t>& prompt);
  // Appends accepted tokens: amortized O(1) each.
  void extend(const int32_t* tokens, int64_t n);
  // A chain rooted at the sequence's last token (which must exist), at most
  // min(max_nodes, max_depth) drafted nodes. O(draft length).
  TokenTree draft(int64_t max_nodes) const;
  // Ends the request and frees the automaton; later calls raise.
  void finish();
  // Tokens of the sequence (prompt + accepted), context excluded.
  int64_t size() const;
  // L: the longest suffix of the text that occurs earlier (0 if none).
  int64_t match_length() const;
  size_t memory_bytes() const;

 private:
  void append_all(const int32_t* tokens, int64_t n);

  PromptLookupParams params_;
  SuffixAutomaton sam_;
  int64_t size_ = 0;
  bool finished_ = false;
  mutable std::mutex mutex_;
};

}  // namespace ragkernels::spec
