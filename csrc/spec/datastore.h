// The retrieval datastore of REST (He, Zhong, Cai, Lee & He, "REST:
// Retrieval-Based Speculative Decoding", NAACL 2024, arXiv 2311.08252) and
// its drafter: the longest suffix of a sequence that occurs in a tokenized
// corpus, and the most frequent continuations of its occurrences, merged into
// a token tree.
//
// Text layout: the sequences concatenated, each followed by kSeparator (-1);
// token ids are >= 0 (and < vocab_size when it is known), so no match runs
// into a separator, hence across a sequence boundary. Positions are int32:
// tokens + sequences <= kMaxTextSize.
//
// The sorted array is the suffix array of the *reversed* sequences: entry r
// is the position e of a token, the entries ordered by the prefix that ends
// at e read backwards, text[e], text[e - 1], ... down to the start of e's
// sequence (a prefix that is a prefix of another, read that way, sorts first;
// equal ones by sequence number). The occurrences of a sequence's longest
// matching suffix w are then one interval of entries (those whose backward
// prefix starts with w reversed), found by narrowing the interval one token
// at a time, newest first: a single pass of binary searches, where a suffix
// array of the forward text needs one search per candidate length (REST
// shortens the suffix until it matches). Entry e's continuation is
// text[e + 1 ...], read forward up to the separator.
//
// File: kind "spec-datastore" (docs/formats.md). Everything is read-only
// once built or loaded, so sessions on several threads share a datastore.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/array_view.h"
#include "core/file_format.h"
#include "spec/token_tree.h"

namespace ragkernels::spec {

class Datastore {
 public:
  static constexpr int32_t kSeparator = -1;
  static constexpr int64_t kMaxTextSize = INT32_MAX - 1;  // tokens + sequences
  static constexpr int64_t kMaxVocabSize = int64_t{1} << 31;
  static constexpr int64_t kNoVocab = -1;  // vocab_size when not given: ids only checked >= 0
  static constexpr int64_t kMaxTableIds = int64_t{1} << 22;  // token_start covers at most this many ids

  // Sorts `text` (the layout above, ids already checked, at least one token;
  // vocab_size kNoVocab or in [1, kMaxVocabSize]). O(text) time (SA-IS).
  static std::shared_ptr<Datastore> from_text(std::vector<int32_t> text, int64_t vocab_size);

  // Atomic write (file_format.h). Load: maps the file; the arrays are read in
  // place. Always checked: kind, meta, section dtypes and sizes, the final
  // separator. With verify (default) also the checksums, every id, the
  // separators, and that the array is exactly the sorted one (linear time:
  // docs/formats.md). verify=false trusts the contents; drafting still never
  // reads outside the arrays nor proposes an id outside [0, vocab_size).
  void save(const std::string& path) const;
  static std::shared_ptr<Datastore> load(const std::string& path, bool verify = true);

  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_sequences() const { return text_size_ - num_tokens_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t text_size() const { return text_size_; }
  const int32_t* text() const { return text_; }                    // text_size entries
  const int32_t* suffix_array() const { return suffix_array_; }    // num_tokens entries
  // The entries of token t are suffix_array()[token_start[t], token_start[t + 1])
  // for t < table_ids(); ids >= table_ids() do not occur. No table
  // (table_ids() 0) when the ids are too large for one (> kMaxTableIds).
  const int32_t* token_start() const { return token_start_; }     // table_ids + 1 entries, or none
  int64_t table_ids() const { return table_ids_; }

  // The longest suffix of context[0, n) (context[n - 1] the newest token) of
  // at most max_match tokens that occurs in the datastore, and its
  // occurrences: suffix_array()[lo, hi). length 0 (and lo = hi = 0) when
  // even the newest token never occurs.
  struct Match {
    int32_t length = 0;
    int64_t lo = 0;
    int64_t hi = 0;
  };
  Match longest_match(const int32_t* context, int64_t n, int32_t max_match) const;

 private:
  Datastore() = default;
  std::vector<int32_t> own_text_, own_suffix_array_, own_token_start_;  // when built
  std::shared_ptr<format::MappedFile> file_;           // when loaded
  const int32_t* text_ = nullptr;
  const int32_t* suffix_array_ = nullptr;
  const int32_t* token_start_ = nullptr;
  int64_t table_ids_ = 0;
  int64_t text_size_ = 0;
  int64_t num_tokens_ = 0;
  int64_t vocab_size_ = kNoVocab;
};

// Collects sequences batch by batch (so that a caller can show progress),
// checking ids as they come; finish() sorts.
class DatastoreBuilder {
 public:
  explicit DatastoreBuilder(int64_t vocab_size);  // kNoVocab or [1, kMaxVocabSize]
  // Sequences ids[offsets[i], offsets[i + 1]); offsets start at 0, never
  // decrease and end at ids.size. Errors name "sequences[i][j]" (i counted
  // over every batch).
  template <typename Id>
  void add(ConstView1<Id> ids, ConstView1<int64_t> offsets);
  int64_t num_sequences() const { return num_sequences_; }
  int64_t num_tokens() const { return static_cast<int64_t>(text_.size()) - num_sequences_; }
  // ValueError when no sequence holds a token (an empty datastore drafts
  // nothing: refused, like an empty index).
  std::shared_ptr<Datastore> finish();

 private:
  std::vector<int32_t> text_;
  int64_t num_sequences_ = 0;
  int64_t vocab_size_;
};

struct RetrievalParams {
  int32_t max_match = 16;       // longest context suffix searched
  int32_t min_match = 1;        // shorter matches draft nothing
  int32_t max_depth = 16;       // tokens of continuation read per occurrence
  int32_t max_candidates = 64;  // occurrences whose continuations are counted
  float min_weight = 0.0f;      // nodes whose empirical probability is lower are dropped
};
void check_params(const RetrievalParams& params, const char* op);

// One sequence being generated. draft() proposes a tree rooted at the
// sequence's last token: the occurrences of its longest matching suffix are
// counted (all of them, or max_candidates evenly spaced over the interval
// when there are more: a deterministic stratified sample), their
// continuations (up to max_depth tokens, to the end of their sequence) form a
// trie whose node weight is the fraction of the counted occurrences that
// continue with the node's path; the max_nodes nodes of largest weight are
// kept (ties: the shallower, then the lexicographically smaller path), which
// is a prefix-closed set since weights never grow down a path. Out: depth
// first, children best-first (weight, then token id). Cost: O(max_match log N)
// for the match + O(max_candidates max_depth log) for the tree; the sequence
// itself is not scanned (only its last max_match tokens are kept).
// A session's calls are serialized by a mutex; sessions share the datastore.
class RetrievalSession {
 public:
  RetrievalSession(std::shared_ptr<const Datastore> datastore, const RetrievalParams& params);
  // Appends tokens (ids already checked against the datastore's vocabulary).
  template <typename Id>
  void extend(ConstView1<Id> tokens);
  // ValueError when the sequence is empty (no root) or max_nodes < 0.
  TokenTree draft(int64_t max_nodes);

  int64_t length() const;        // tokens of the sequence so far
  int32_t match_length() const;  // of the last draft (0: none)
  int64_t match_count() const;   // occurrences found by the last draft
  const Datastore& datastore() const { return *datastore_; }

 private:
  void collect(const Datastore::Match& match);
  void select(int64_t max_nodes);
  TokenTree emit(int32_t root);

  std::shared_ptr<const Datastore> datastore_;
  RetrievalParams params_;
  mutable std::mutex mutex_;
  std::vector<int32_t> tail_;  // the last tokens, at most 2 max_match (trimmed to max_match)
  int64_t length_ = 0;
  int32_t match_length_ = 0;
  int64_t match_count_ = 0;
  // Scratch of draft(), kept between calls (no allocation per draft).
  int32_t items_ = 0;                  // occurrences counted
  std::vector<int32_t> continuation_;  // items_ x max_depth
  std::vector<int32_t> item_length_;
  std::vector<int32_t> order_;   // items sorted by continuation
  std::vector<int32_t> sorted_;  // their continuations in that order, items_ x max_depth
  std::vector<int32_t> sorted_length_;
  // Pending trie nodes: a heap of packed keys (count, depth, first item of
  // the node's run); a pending node is known by its first item (no two
  // pending nodes share it: runs nest, and a child is pushed only once its
  // parent is popped), which indexes its parent and the end of its run.
  std::vector<uint64_t> heap_;
  std::vector<int32_t> pending_parent_, pending_last_;
  struct Chosen {
    int32_t parent, token, count, first_child, next_sibling, last_child;
  };
  std::vector<Chosen> chosen_;
  std::vector<std::pair<int32_t, int32_t>> stack_;
};

}  // namespace ragkernels::spec
