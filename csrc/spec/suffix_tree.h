// SuffixDecoding's frequency-weighted suffix tree (Oliaro et al., arXiv
// 2411.04975), issue 15.
//
// The tree is the trie of every suffix of every document, each truncated at
// max_depth tokens: a path x has count(x) = the number of occurrences of x in
// the documents (|x| <= max_depth; the root counts every suffix start), so
// count(x + t) / count(x) estimates P(next = t | x). To stay O(document
// length) in memory, a path met once (count 1) is not materialized: the
// node where a path's count drops to 1 is a "tail" that points into its
// document (ref_doc, [ref_pos, ref_end)) for the rest of its chain. Every node
// keeps a reference to the most recent occurrence through it; since
// documents leave oldest first, the occurrence left when a node's count falls
// back to 1 is always that one, and the node folds back into a tail. The
// tree is therefore canonical: the same kept documents give the same nodes,
// whatever was added and evicted before.
//
// Draft (one tree): L = the longest suffix of the sequence, up to
// max_match and max_depth - 1 tokens, that occurs followed by some token
// (tried from the longest down; most tries stop after a token or two).
// From its node m the draft grows best-first by count(x) (the
// empirical path probability count(x) / count(m), exact integers, so no
// rounding decides an order; ties: shallower, then lower token id, then
// earlier parent), skipping nodes under min_probability and stopping at
// min(max_nodes, floor(max_spec_factor * L)) nodes. A node with many
// children keeps them in count order, so an expansion reads only the
// children above the floor (at most 1 / min_probability), however many
// distinct tokens followed a frequent one.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "spec/prompt_lookup.h"  // detail::EdgeMap
#include "spec/token_tree.h"

namespace ragkernels::spec {

struct SuffixDraftParams {
  int64_t max_match = 16;         // longest suffix matched
  double max_spec_factor = 1.0;   // draft size <= factor * match length
  double min_probability = 0.1;   // floor on count(x) / count(m)
};

// A draft from one tree, with what it takes to compare it with another.
struct SuffixDraft {
  TokenTree tree;
  int64_t match_length = 0;  // L (0: no match)
  int64_t match_count = 0;   // count(m)
  int64_t count_sum = 0;     // sum of count(x) over the drafted nodes
  // Expected accepted tokens if the estimates are right: sum of weights.
  double score() const { return match_count == 0 ? 0.0 : static_cast<double>(count_sum) / match_count; }
};

class SuffixTree {
 public:
  explicit SuffixTree(int32_t max_depth);

  // Adds a complete document: every suffix. O(length * max_depth). Returns
  // its id (ids increase by one per document, open ones included).
  int64_t add_document(std::vector<int32_t> tokens);
  // Starts a growing document (a request's sequence): append() inserts a
  // suffix once it is max_depth tokens long, so its paths are complete and
  // a pattern at the document's end never meets its own occurrence.
  int64_t open_document();
  void append(int64_t doc, const int32_t* tokens, int64_t n);
  const std::vector<int32_t>& document(int64_t doc) const { return docs_[static_cast<size_t>(doc - first_doc_)]; }
  // Removes the oldest document (all its suffixes). O(length * max_depth).
  void evict_oldest();

  // See the header comment. pattern[0, n) is the sequence (its last tokens
  // matter); root is the tree's root token.
  SuffixDraft draft(const int32_t* pattern, int64_t n, int32_t root, int64_t max_nodes,
                    const SuffixDraftParams& params) const;

  int32_t max_depth() const { return max_depth_; }
  int64_t num_documents() const { return static_cast<int64_t>(docs_.size()); }
  int64_t num_tokens() const { return num_tokens_; }
  // Nodes in memory (root, branching nodes, tails).
  int64_t num_nodes() const { return static_cast<int64_t>(nodes_.size() - free_.size()); }
  size_t memory_bytes() const;

  // Every path of the trie (tails unrolled), breadth-first, children by
  // token: parents[0] == -1 is the root. For tests and inspection.
  void export_trie(std::vector<int32_t>& tokens, std::vector<int32_t>& parents, std::vector<int64_t>& counts) const;
  // "" when every invariant holds, else what broke. O(size).
  std::string check() const;

 private:
  struct Node {
    int64_t ref_doc = -1;
    int32_t count = 0;  // the root's is total_suffixes_
    int32_t token = 0;
    int32_t parent = -1;
    int32_t depth = 0;
    int32_t first_child = -1;
    int32_t last_child = -1;
    int32_t next_sibling = -1;
    int32_t prev_sibling = -1;
    int32_t num_children = 0;
    // The most recent occurrence through this node: the tokens after it
    // are document(ref_doc)[ref_pos, ref_end) (a tail's whole chain).
    int32_t ref_pos = 0;
    int32_t ref_end = 0;
    // Children kept in count order (nodes with over kSortAbove children).
    bool sorted = false;
  };
  // A position in the trie: a node, and for a tail how many tokens of its
  // chain were followed past the node itself.
  struct Cursor {
    int32_t node;
    int32_t offset;
  };

  bool is_tail(int32_t x) const { return x != 0 && nodes_[static_cast<size_t>(x)].count == 1; }
  int64_t count_of(int32_t x) const { return x == 0 ? total_suffixes_ : nodes_[static_cast<size_t>(x)].count; }
  int32_t token_at(int64_t doc, int32_t pos) const { return document(doc)[static_cast<size_t>(pos)]; }
  int32_t new_node(int32_t parent, int32_t token, int32_t count, int64_t doc, int32_t pos, int32_t end);
  void free_node(int32_t x);
  // Sibling lists (first_child .. last_child).
  void link_before(int32_t x, int32_t next);  // next == -1: at the end
  void unlink(int32_t x);
  // Count changes of a child, keeping a sorted parent's order: its children
  // with equal counts form a block; block_first_/block_last_ hold each
  // block's first and last node, so a child moves to the edge of its block
  // in O(1) (as an LFU cache does).
  void increment(int32_t x);
  void decrement(int32_t x);
  void leave_block(int32_t x);
  void join_block(int32_t x, bool at_front);
  void sort_children(int32_t p);
  void rebuild_blocks();
  void insert_suffix(int64_t doc, int32_t start, int32_t end);
  void split_tail(int32_t x, int64_t doc, int32_t pos, int32_t end);
  void remove_suffix(int64_t doc, int32_t start, int32_t end, std::vector<int32_t>& path);
  void maybe_compact();
  bool walk(const int32_t* tokens, int64_t n, Cursor& at) const;
  bool has_continuation(const Cursor& at) const;
  int64_t longest_match(const int32_t* pattern, int64_t n, int64_t max_match, Cursor& at) const;

  int32_t max_depth_;
  std::vector<Node> nodes_;     // nodes_[0] is the root
  std::vector<int32_t> free_;   // free slots of nodes_
  detail::EdgeMap children_;    // (node, token) -> child
  detail::EdgeMap block_first_; // (sorted node, count) -> first child of that count
  detail::EdgeMap block_last_;  // (sorted node, count) -> last child of that count
  int64_t total_suffixes_ = 0;  // the root's count
  std::deque<std::vector<int32_t>> docs_;
  int64_t first_doc_ = 0;       // id of docs_.front()
  int64_t num_tokens_ = 0;
  int64_t open_doc_ = -1;       // the growing document, if any
  int64_t open_inserted_ = 0;   // its suffixes inserted so far
};

struct SuffixDrafterParams {
  int64_t max_depth = 32;
  SuffixDraftParams draft;
  int64_t max_answers = -1;  // documents kept in the global tree, -1: no limit
  int64_t max_tokens = -1;   // their tokens, -1: no limit
  void check(const char* op) const;
};

// The global tree of earlier answers and added texts: several sessions draft
// from it (shared lock) while others add to it (exclusive lock).
class SuffixDrafter {
 public:
  explicit SuffixDrafter(const SuffixDrafterParams& params);
  // Adds a document, evicting the oldest ones beyond max_answers /
  // max_tokens first; a document longer than max_tokens is not kept.
  void add(std::vector<int32_t> tokens);
  SuffixDraft draft(const int32_t* pattern, int64_t n, int32_t root, int64_t max_nodes) const;
  const SuffixDrafterParams& params() const { return params_; }

  int64_t num_documents() const;
  int64_t num_tokens() const;
  int64_t num_nodes() const;
  size_t memory_bytes() const;
  void export_trie(std::vector<int32_t>& tokens, std::vector<int32_t>& parents, std::vector<int64_t>& counts) const;
  std::string check() const;

 private:
  SuffixDrafterParams params_;
  mutable std::shared_mutex mutex_;
  SuffixTree tree_;
};

// One request: its own tree over its context pieces and its sequence
// (prompt + accepted tokens, inserted max_depth tokens late), and the
// shared drafter. Calls on one session are serialized by its own mutex.
class SuffixSession {
 public:
  SuffixSession(std::shared_ptr<SuffixDrafter> drafter, const std::vector<std::vector<int32_t>>& context,
                const std::vector<int32_t>& prompt);
  void extend(const int32_t* tokens, int64_t n);
  // The better of the request tree's and the global tree's drafts (higher
  // score = sum of weights; a tie goes to the request's).
  TokenTree draft(int64_t max_nodes) const;
  // Adds the accepted tokens (the answer) to the drafter; once.
  void finish();
  int64_t size() const;
  int64_t request_num_nodes() const;  // nodes of the request's own tree

 private:
  std::shared_ptr<SuffixDrafter> drafter_;
  SuffixTree request_;
  int64_t doc_ = -1;
  int64_t prompt_size_ = 0;
  bool finished_ = false;
  mutable std::mutex mutex_;
};

}  // namespace ragkernels::spec
