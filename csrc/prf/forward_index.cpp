#include "prf/forward_index.h"

#include <algorithm>

#include "core/error.h"
#include "sparse/posting_cursor.h"

namespace ragkernels::prf {

ForwardIndex::ForwardIndex(std::shared_ptr<const sparse::SparseIndex> index) : index_(std::move(index)) {
  RK_CHECK_ARG(index_ != nullptr, "ForwardIndex: index is null");
  RK_CHECK_ARG(index_->scoring() == sparse::Scoring::bm25,
               "feedback needs a BM25Index (term frequencies in its postings), got an impact index");
  RK_CHECK_ARG(index_->vocabulary() == sparse::Vocabulary::strings &&
                   index_->data().vocab_ends.size == index_->num_terms(),
               "feedback needs an index with a string vocabulary (built from texts or token lists), "
               "got one of integer token ids");
  const sparse::IndexData& d = index_->data();
  const sparse::PostingArrays arrays = sparse::posting_arrays(d);  // no base scores: only doc ids and tfs are read
  const uint64_t num_terms = d.num_terms();
  // Two passes over the postings: count each row, then fill the rows; terms
  // are visited in id order, so every row comes out sorted by term id.
  row_begin_.assign(d.num_docs + 1, 0);
  sparse::PostingCursor cursor;
  for (uint64_t t = 0; t < num_terms; ++t) {
    for (cursor.open(arrays, static_cast<uint32_t>(t)); cursor.doc() != sparse::kEndDoc; cursor.next()) {
      ++row_begin_[cursor.doc() + 1];
    }
  }
  for (uint64_t doc = 0; doc < d.num_docs; ++doc) row_begin_[doc + 1] += row_begin_[doc];
  terms_.resize(row_begin_.back());
  tfs_.resize(row_begin_.back());
  std::vector<uint64_t> fill(row_begin_.begin(), row_begin_.end() - 1);
  for (uint64_t t = 0; t < num_terms; ++t) {
    for (cursor.open(arrays, static_cast<uint32_t>(t)); cursor.doc() != sparse::kEndDoc; cursor.next()) {
      const uint64_t slot = fill[cursor.doc()]++;
      terms_[slot] = static_cast<uint32_t>(t);
      tfs_[slot] = cursor.value();
    }
  }
}

std::shared_ptr<const std::vector<uint8_t>> ForwardIndex::filter(bool check_chars, bool ascii_only, float max_df_ratio) const {
  std::lock_guard<std::mutex> lock(filters_mutex_);
  for (const CachedFilter& f : filters_) {
    if (f.check_chars == check_chars && f.ascii_only == ascii_only && f.max_df_ratio == max_df_ratio) return f.keep;
  }
  auto keep = std::make_shared<const std::vector<uint8_t>>(term_filter(*index_, check_chars, ascii_only, max_df_ratio));
  if (filters_.size() == 4) filters_.erase(filters_.begin());
  filters_.push_back({check_chars, ascii_only, max_df_ratio, keep});
  return keep;
}

size_t utf16_length(std::string_view utf8) {
  size_t n = 0;
  for (unsigned char c : utf8) {
    if ((c & 0xC0) != 0x80) ++n;  // a lead byte starts a code point
    if (c >= 0xF0) ++n;           // 4-byte sequences are beyond the BMP: a surrogate pair
  }
  return n;
}

namespace {
bool lower_alnum(std::string_view term) {
  for (char c : term) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return !term.empty();
}
}  // namespace

std::vector<uint8_t> term_filter(const sparse::SparseIndex& index, bool check_chars, bool ascii_only,
                                 float max_df_ratio) {
  const sparse::IndexData& d = index.data();
  const uint64_t n = d.vocab_ends.size;
  std::vector<uint8_t> keep(d.num_terms(), 0);
  const float num_docs = static_cast<float>(d.num_docs);  // Java: (float) df / numDocs, an int promoted to float
  for (uint64_t t = 0; t < n; ++t) {
    const std::string_view term = sparse::string_at(d.vocab_ends, d.vocab_chars, t);
    if (check_chars) {
      const size_t length = utf16_length(term);
      if (length < 2 || length > 20) continue;
      if (ascii_only && !lower_alnum(term)) continue;
    }
    const float ratio = static_cast<float>(d.term_df[t]) / num_docs;
    if (ratio > max_df_ratio) continue;
    keep[t] = 1;
  }
  return keep;
}

std::vector<int64_t> query_term_ids(const sparse::SparseIndex& index, std::string_view text,
                                    text::TokenList& scratch) {
  RK_CHECK_ARG(index.analyzer() != nullptr,
               "this index was built from tokens, not texts: give the queries as token lists");
  scratch.clear();
  index.analyzer()->analyze(text, scratch);
  std::vector<std::string_view> tokens(scratch.size());
  for (size_t i = 0; i < scratch.size(); ++i) tokens[i] = scratch[i];
  return query_term_ids(index, tokens.data(), tokens.size());
}

std::vector<int64_t> query_term_ids(const sparse::SparseIndex& index, const std::string_view* tokens, size_t n) {
  std::vector<int64_t> ids(n);
  std::vector<std::string_view> unknown;
  for (size_t i = 0; i < n; ++i) {
    ids[i] = index.term_id(tokens[i]);
    if (ids[i] >= 0) continue;
    const auto it = std::find(unknown.begin(), unknown.end(), tokens[i]);
    ids[i] = -1 - static_cast<int64_t>(it - unknown.begin());
    if (it == unknown.end()) unknown.push_back(tokens[i]);
  }
  return ids;
}

}  // namespace ragkernels::prf
