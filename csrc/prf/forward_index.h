// The forward (document -> terms) view of a BM25 index, for feedback.
//
// Pseudo-relevance feedback reads the terms of its feedback documents, as
// Anserini reads Lucene's stored document vectors. Our inverted index stores
// no document vectors, only postings (doc ids ascending, term frequencies),
// so ForwardIndex transposes the postings once: row d holds the (term id,
// tf) pairs of document d, term ids ascending. Building reads every posting
// (O(postings) time, 8 bytes per posting); the Python layer builds it lazily,
// on the first feedback call, and caches it with the index.
//
// Also here: the term filters of Anserini's feedback (term_filter), computed
// once per call over the vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "sparse/sparse_index.h"

namespace ragkernels::prf {

class ForwardIndex {
 public:
  // index: a BM25 index (postings hold term frequencies) with a string
  // vocabulary; throws ValueError otherwise.
  explicit ForwardIndex(std::shared_ptr<const sparse::SparseIndex> index);

  const sparse::SparseIndex& index() const { return *index_; }
  uint64_t num_docs() const { return row_begin_.size() - 1; }
  uint64_t num_postings() const { return terms_.size(); }

  // Row d: terms(d)[i] occurs tfs(d)[i] >= 1 times in d; i < size(d).
  uint64_t size(uint64_t doc) const { return row_begin_[doc + 1] - row_begin_[doc]; }
  const uint32_t* terms(uint64_t doc) const { return terms_.data() + row_begin_[doc]; }
  const uint32_t* tfs(uint64_t doc) const { return tfs_.data() + row_begin_[doc]; }

  // term_filter(index(), ascii_only, max_df_ratio), computed on first use and
  // kept (the last few settings), so that a call with one query does not
  // pay a pass over the vocabulary. Thread-safe.
  std::shared_ptr<const std::vector<uint8_t>> filter(bool check_chars, bool ascii_only, float max_df_ratio) const;

 private:
  std::shared_ptr<const sparse::SparseIndex> index_;
  std::vector<uint64_t> row_begin_;  // [num_docs + 1]
  std::vector<uint32_t> terms_;
  std::vector<uint32_t> tfs_;
  struct CachedFilter {
    bool check_chars;
    bool ascii_only;
    float max_df_ratio;
    std::shared_ptr<const std::vector<uint8_t>> keep;
  };
  mutable std::mutex filters_mutex_;
  mutable std::vector<CachedFilter> filters_;  // most recent last
};

// Which terms may become feedback terms (Anserini's createdFeatureVector):
//  - with check_chars: length in 2..20, counted in UTF-16 code units as
//    Java's String.length(), and with ascii_only (RM3, not Rocchio) only
//    [a-z0-9]+ (RM3's filter_terms=False turns these off: other scripts);
//  - df / num_docs <= max_df_ratio, the ratio taken in float32 as Anserini
//    does ((float) df / numDocs > 0.1f drops the term).
// Returns one flag per term id.
std::vector<uint8_t> term_filter(const sparse::SparseIndex& index, bool check_chars, bool ascii_only,
                                 float max_df_ratio);

// Java's String.length() of a UTF-8 string: code points, two for those
// beyond the BMP (surrogate pairs).
size_t utf16_length(std::string_view utf8);

// The term ids of a query's tokens in order; a token not in the vocabulary
// gets a negative id, the same for every occurrence of the same token
// (-1 for the first such token, -2 for the next, ...). Texts are analyzed with the index's analyzer (the index must
// have one), token lists taken as given.
std::vector<int64_t> query_term_ids(const sparse::SparseIndex& index, std::string_view text,
                                    text::TokenList& scratch);
std::vector<int64_t> query_term_ids(const sparse::SparseIndex& index, const std::string_view* tokens, size_t n);

}  // namespace ragkernels::prf
