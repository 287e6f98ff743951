// Exact-term-matching reranking, TILDE-style (Zhuang & Zuccon, "TILDE:
// Term Independent Likelihood moDEl for Passage Re-ranking", SIGIR 2021;
// "Fast Passage Re-ranking with Contextualized Exact Term Matching and
// Efficient Passage Expansion" (TILDEv2), 2021).
//
// A TermMatchIndex is a forward index: document d holds a list of
// (term id, weight) pairs, term ids strictly ascending. A model computes the
// weights offline (TILDEv2: one contextualized weight per passage token); at
// query time only the query's token ids are needed:
//
//   score(q, d) = sum over the distinct in-vocabulary terms t of q of w(d, t)
//
// where w(d, t) is 0 when d does not hold t. Terms are summed in ascending
// term id, in double, rounded once to float32, so a score does not depend on
// the batch, the candidate's position or the thread count. Building from
// lists with a repeated term keeps its largest weight (TILDEv2's rule for a
// token that occurs several times in a passage).
//
// Lookup, per (query, candidate) pair, whichever costs less (measured on
// random 4..30-term queries against 40..300-term documents, see
// docs/architecture.md): a scan of the document's terms through a 8192-bit
// hashed filter of the query's terms (O(|d|), no mispredicted branches but
// on the rare filter hits), or, for a query much shorter than the document,
// a binary search of each query term after the previous match
// (O(|q| log |d|)). Both add the matched weights in ascending term id, so
// the choice never changes a score.
//
// File: kind "term-match-index" (docs/formats.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/array_view.h"
#include "core/file_format.h"

namespace ragkernels::sparse {
class SparseIndex;
}

namespace ragkernels::rerank {

class TermMatchIndex {
 public:
  // Term ids are stored as uint32: the vocabulary holds at most 2^32 ids.
  static constexpr uint64_t kMaxVocabSize = uint64_t(1) << 32;

  // Document d is term_ids[offsets[d], offsets[d+1]) with their weights.
  // offsets: (num_docs + 1,), offsets[0] == 0, non-decreasing, last ==
  // term_ids.size; weights: same size as term_ids, finite; term ids in
  // [0, vocab_size). vocab_size < 0: 1 + the largest id (0 when empty), else
  // at most kMaxVocabSize. Any order within a document; a repeated term
  // keeps its largest weight. Id: int32_t or int64_t. Bad input: ValueError
  // naming the argument and the first bad position.
  template <typename Id>
  static std::shared_ptr<TermMatchIndex> from_arrays(ConstView1<Id> term_ids, ConstView1<float> weights,
                                                     ConstView1<int64_t> offsets, int64_t vocab_size);

  // The per-posting scores of a BM25 index: w(d, t) is the float32 score
  // the index stores for (t, d) (BM25L/BM25+: minus the term's
  // nonoccurrence score, as the index stores it). The term id is the
  // index's term number; vocab_size its number of terms. An impact index:
  // ValueError.
  static std::shared_ptr<TermMatchIndex> from_bm25(const sparse::SparseIndex& index);

  // Atomic write; kind "term-match-index".
  void save(const std::string& path) const;
  // Maps `path`. Header, sizes and every offset are always checked (so no
  // access can leave the arrays); with verify also the checksums, that every
  // document's terms ascend strictly and lie below vocab_size, and that
  // every weight is finite. Anything wrong: FormatError naming the file.
  static std::shared_ptr<TermMatchIndex> load(const std::string& path, bool verify = true);

  int64_t num_docs() const { return num_docs_; }
  int64_t num_postings() const { return num_postings_; }
  uint64_t vocab_size() const { return vocab_size_; }
  const int64_t* offsets() const { return offsets_; }  // (num_docs + 1,)
  const uint32_t* terms() const { return terms_; }     // (num_postings,)
  const float* weights() const { return weights_; }    // (num_postings,)

 private:
  TermMatchIndex() = default;
  void adopt(std::vector<int64_t> offsets, std::vector<uint32_t> terms, std::vector<float> weights,
             uint64_t vocab_size);

  std::vector<int64_t> owned_offsets_;
  std::vector<uint32_t> owned_terms_;
  std::vector<float> owned_weights_;
  std::shared_ptr<format::MappedFile> file_;  // keeps mapped arrays alive
  const int64_t* offsets_ = nullptr;
  const uint32_t* terms_ = nullptr;
  const float* weights_ = nullptr;
  int64_t num_docs_ = 0;
  int64_t num_postings_ = 0;
  uint64_t vocab_size_ = 0;
};

// Queries as term-match scoring reads them: the sorted distinct term ids of
// query i are terms[offsets[i], offsets[i+1]).
struct QueryTerms {
  std::vector<int64_t> offsets{0};
  std::vector<uint32_t> terms;
  int64_t size() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

// How the caller gave its queries, for error messages only:
// one 1-D array "x[j]", a list of them "x[i][j]", a padded matrix "x[i, j]".
enum class QueryLayout { single, list, matrix };

// Appends query number `row` (its sorted distinct ids) to `out`. -1 pads
// (skipped), any other negative id is a ValueError naming its position in
// the caller's layout; ids >= vocab_size are dropped (they occur in no
// document, so they would add 0). Id: int32_t or int64_t.
template <typename Id>
void append_query(QueryTerms& out, ConstView1<Id> query, uint64_t vocab_size, QueryLayout layout, int64_t row);

// append_query for every query, row i = queries[i].
template <typename Id>
QueryTerms prepare_queries(const std::vector<ConstView1<Id>>& queries, uint64_t vocab_size, QueryLayout layout);

// out(i, j) = score(query i, candidates(i, j)); -1 slots get -inf. Other
// candidates must lie in [0, num_docs) (ValueError naming the first bad
// one, in row-major order). candidates: (queries.size(), C); Doc: int32_t or
// int64_t. Parallel over all pairs.
template <typename Doc>
void term_match(const TermMatchIndex& index, const QueryTerms& queries, ConstView2<Doc> candidates,
                View2<float> out);

}  // namespace ragkernels::rerank
