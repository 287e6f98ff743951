// A trie of allowed token-id sequences, flattened to CSR, for constrained
// decoding (issue 16; "Vectorizing the Trie", arXiv 2602.22647).
//
// Nodes are numbered in depth-first preorder from the root (0). Node v's
// children are the edges row_ptr[v] .. row_ptr[v + 1] - 1: `tokens` holds
// their token ids in increasing order and `child` the node each leads to;
// `terminal[v]` is 1 when the path to v is one of the sequences (a sequence
// may be a prefix of another, so terminal nodes may have children). A
// decoder's state is a node id; -1 is the dead state (the sequence so far is
// no prefix of any allowed one).
//
// Build: the sequences are sorted (in parallel: one sorted run per thread,
// then merged) and deduplicated, then inserted in order, so each new
// sequence shares the stack of its predecessor's nodes up to their common
// prefix: O(total tokens) after the sort. Steps: a bitmask row is O(V / 32 +
// children), an advance a binary search among the children.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/array_view.h"
#include "core/file_format.h"

namespace ragkernels::spec {

class Trie {
 public:
  // Sequence i is values[offsets[i] .. offsets[i + 1]). Every sequence is
  // non-empty, every id in [0, vocab_size); at least one sequence.
  static std::shared_ptr<Trie> build(const int32_t* values, const int64_t* offsets, int64_t num_sequences,
                                     int64_t vocab_size);

  // File: kind "spec-trie" (docs/formats.md), written atomically. load maps
  // it and always checks what keeps every step in bounds (row_ptr monotone
  // within the edges, children and tokens in range); verify also proves it
  // is the trie build makes (children sorted, nodes in depth-first order,
  // every leaf terminal, the sequence count). FormatError naming the file.
  void save(const std::string& path) const;
  static std::shared_ptr<Trie> load(const std::string& path, bool verify);

  int64_t num_nodes() const { return num_nodes_; }
  int64_t num_edges() const { return num_nodes_ - 1; }
  int64_t num_sequences() const { return num_sequences_; }  // distinct
  int64_t vocab_size() const { return vocab_size_; }
  int64_t bitmask_words() const { return (vocab_size_ + 31) / 32; }
  size_t memory_bytes() const;

  ConstView1<int64_t> row_ptr() const { return {row_ptr_, num_nodes_ + 1, 1}; }
  ConstView1<int32_t> tokens() const { return {tokens_, num_edges(), 1}; }
  ConstView1<int32_t> child() const { return {child_, num_edges(), 1}; }
  ConstView1<uint8_t> terminal() const { return {terminal_, num_nodes_, 1}; }

  // The state after `token` from `state` (-1 stays -1; -1 when no edge).
  int32_t step(int32_t state, int32_t token) const;

  // States must be in [-1, num_nodes) (the caller checks); n rows.
  // out: n x bitmask_words(), bit t of row r set when token t may follow
  // states[r] (xgrammar's layout: word t / 32, bit t % 32).
  void next_token_bitmask(const int32_t* states, int64_t n, int32_t* out) const;
  void advance(const int32_t* states, const int32_t* tokens, int64_t n, int32_t* out) const;
  void is_terminal(const int32_t* states, int64_t n, uint8_t* out) const;

  // A (rows, width) logits matrix seen in place: row r starts at element
  // r * row_stride, its columns are contiguous; width >= vocab_size.
  enum class LogitsType { kFloat32, kFloat16, kBfloat16 };
  struct Logits {
    void* data;
    int64_t rows, width, row_stride;
    LogitsType type;
  };
  // The additive mask: every logit of a token that may not follow the
  // row's state (columns >= vocab_size too) becomes -inf; the others are
  // left bit for bit. eos in [0, width) is allowed too after a whole
  // sequence, and is the only token of a dead row; eos = -1 leaves a row
  // that allows nothing (dead, or at a leaf) as it is. States in [-1,
  // num_nodes) (the caller checks), one per row. Rows in parallel. The
  // masked rows are written to `logits`, read from `source`: the same view
  // (in place), or another of the same type and shape (a masked copy in
  // one pass, never overlapping `logits`).
  void mask_logits(const int32_t* states, int32_t eos, const Logits& logits, const Logits& source) const;

 private:
  Trie() = default;
  void point_at_owned();
  // The bitmask rows of nodes with more children than the row has words
  // (the first levels of a large set: the root of 10^6 ids has ~all of the
  // vocabulary), so that their step is one copy instead of a bit per child.
  // At most 4 bytes per edge; computed at build and at load (not stored).
  void precompute_dense_rows();
  // Row of next_token_bitmask for state s (bitmask_words() words).
  void bitmask_row(int32_t s, uint32_t* row) const;
  // Sets the bit of each child's token of node v in `row`.
  void set_child_bits(int32_t v, uint32_t* row) const;

  std::vector<int64_t> own_row_ptr_;  // when built
  std::vector<int32_t> own_tokens_, own_child_;
  std::vector<uint8_t> own_terminal_;
  std::shared_ptr<format::MappedFile> file_;  // when loaded
  const int64_t* row_ptr_ = nullptr;
  const int32_t* tokens_ = nullptr;
  const int32_t* child_ = nullptr;
  const uint8_t* terminal_ = nullptr;
  int64_t num_nodes_ = 0;
  int64_t num_sequences_ = 0;
  int64_t vocab_size_ = 0;
  std::vector<int32_t> dense_nodes_;  // increasing
  std::vector<int32_t> dense_rows_;   // dense_nodes_.size() x bitmask_words()
};

}  // namespace ragkernels::spec
