#include "rerank/term_match.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "sparse/bm25.h"
#include "sparse/posting_cursor.h"
#include "sparse/sparse_index.h"

namespace ragkernels::rerank {

namespace {

constexpr const char* kFromArrays = "TermMatchIndex.from_arrays";

void check_offsets(ConstView1<int64_t> offsets, int64_t num_items) {
  RK_CHECK_ARG(offsets.size >= 1, kFromArrays, ": offsets must hold num_docs + 1 >= 1 entries, got 0");
  RK_CHECK_ARG(offsets[0] == 0, kFromArrays, ": offsets[0] must be 0, got ", offsets[0]);
  for (int64_t i = 1; i < offsets.size; ++i) {
    RK_CHECK_ARG(offsets[i] >= offsets[i - 1], kFromArrays, ": offsets must be non-decreasing, got offsets[", i,
                 "] = ", offsets[i], " < offsets[", i - 1, "] = ", offsets[i - 1]);
  }
  RK_CHECK_ARG(offsets[offsets.size - 1] == num_items, kFromArrays, ": offsets[-1] = ", offsets[offsets.size - 1],
               " must equal len(term_ids) = ", num_items);
}

// Sorts one document's (term, weight) pairs in place by term and keeps the
// largest weight of a repeated term; returns the number of pairs kept.
int64_t sort_unique(uint32_t* terms, float* weights, int64_t n, std::vector<std::pair<uint32_t, float>>& scratch) {
  bool sorted = true;
  for (int64_t i = 1; i < n && sorted; ++i) sorted = terms[i - 1] < terms[i];
  if (sorted) return n;  // the common case: a model's output is already in order
  scratch.clear();
  for (int64_t i = 0; i < n; ++i) scratch.emplace_back(terms[i], weights[i]);
  std::sort(scratch.begin(), scratch.end(), [](const auto& a, const auto& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  });
  int64_t kept = 0;
  for (size_t i = 0; i < scratch.size(); ++i) {
    if (i > 0 && scratch[i].first == scratch[i - 1].first) continue;  // a smaller weight of the same term
    terms[kept] = scratch[i].first;
    weights[kept] = scratch[i].second;
    ++kept;
  }
  return kept;
}

// Sorts and deduplicates every document, then closes the gaps left by
// duplicates. Returns the new offsets.
std::vector<int64_t> normalize_docs(ConstView1<int64_t> offsets, std::vector<uint32_t>& terms,
                                    std::vector<float>& weights) {
  const int64_t num_docs = offsets.size - 1;
  std::vector<int64_t> kept(num_docs);
  parallel_for(0, num_docs, [&](int64_t lo, int64_t hi) {
    std::vector<std::pair<uint32_t, float>> scratch;
    for (int64_t d = lo; d < hi; ++d) {
      kept[d] = sort_unique(terms.data() + offsets[d], weights.data() + offsets[d], offsets[d + 1] - offsets[d],
                            scratch);
    }
  }, 1024);
  std::vector<int64_t> out(num_docs + 1, 0);
  for (int64_t d = 0; d < num_docs; ++d) {
    const int64_t from = offsets[d], to = out[d];
    if (from != to) {  // a previous document lost duplicates: move this one down
      std::copy(terms.begin() + from, terms.begin() + from + kept[d], terms.begin() + to);
      std::copy(weights.begin() + from, weights.begin() + from + kept[d], weights.begin() + to);
    }
    out[d + 1] = to + kept[d];
  }
  terms.resize(out[num_docs]);
  weights.resize(out[num_docs]);
  return out;
}

}  // namespace

template <typename Id>
std::shared_ptr<TermMatchIndex> TermMatchIndex::from_arrays(ConstView1<Id> term_ids, ConstView1<float> weights,
                                                            ConstView1<int64_t> offsets, int64_t vocab_size) {
  RK_CHECK_ARG(weights.size == term_ids.size, kFromArrays, ": weights has ", weights.size,
               " entries but term_ids has ", term_ids.size);
  check_offsets(offsets, term_ids.size);
  RK_CHECK_ARG(vocab_size < 0 || static_cast<uint64_t>(vocab_size) <= kMaxVocabSize, kFromArrays,
               ": vocab_size must be at most 2^32, got ", vocab_size);
  const int64_t n = term_ids.size;
  std::vector<uint32_t> terms(n);
  std::vector<float> w(n);
  uint64_t limit = vocab_size < 0 ? kMaxVocabSize : static_cast<uint64_t>(vocab_size), largest = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = static_cast<int64_t>(term_ids[i]);
    RK_CHECK_ARG(id >= 0, kFromArrays, ": term_ids[", i, "] = ", id, " is negative");
    RK_CHECK_ARG(static_cast<uint64_t>(id) < limit, kFromArrays, ": term_ids[", i, "] = ", id,
                 vocab_size < 0 ? " exceeds the largest term id supported, 2^32 - 1" : " >= vocab_size = ",
                 vocab_size < 0 ? "" : std::to_string(vocab_size));
    RK_CHECK_ARG(std::isfinite(weights[i]), kFromArrays, ": weights[", i, "] = ", weights[i], " is not finite");
    terms[i] = static_cast<uint32_t>(id);
    w[i] = weights[i];
    largest = std::max<uint64_t>(largest, static_cast<uint64_t>(id) + 1);
  }
  std::vector<int64_t> new_offsets = normalize_docs(offsets, terms, w);
  std::shared_ptr<TermMatchIndex> index(new TermMatchIndex());
  index->adopt(std::move(new_offsets), std::move(terms), std::move(w),
               vocab_size < 0 ? largest : static_cast<uint64_t>(vocab_size));
  return index;
}

template std::shared_ptr<TermMatchIndex> TermMatchIndex::from_arrays<int32_t>(ConstView1<int32_t>, ConstView1<float>,
                                                                             ConstView1<int64_t>, int64_t);
template std::shared_ptr<TermMatchIndex> TermMatchIndex::from_arrays<int64_t>(ConstView1<int64_t>, ConstView1<float>,
                                                                             ConstView1<int64_t>, int64_t);

std::shared_ptr<TermMatchIndex> TermMatchIndex::from_bm25(const sparse::SparseIndex& index) {
  RK_CHECK_ARG(index.scoring() == sparse::Scoring::bm25,
               "TermMatchIndex.from_bm25: needs a BM25Index (term frequencies in its postings), got an impact index");
  const sparse::IndexData& d = index.data();
  const sparse::PostingArrays arrays = sparse::posting_arrays(d);  // doc ids and tfs; scores are computed here
  const uint64_t num_terms = d.num_terms();
  const auto num_docs = static_cast<int64_t>(d.num_docs);
  // The per-posting float32 score exactly as SparseIndex computes it (same
  // formula object, same document norm), transposed term-major -> doc-major:
  // visiting terms in id order leaves every document's terms ascending.
  std::vector<double> doc_norm(num_docs);
  for (int64_t doc = 0; doc < num_docs; ++doc) {
    doc_norm[doc] = sparse::bm25_doc_norm(d.bm25, d.doc_lengths[doc], d.avg_doc_length);
  }
  const sparse::Bm25Formula formula(d.bm25);
  std::vector<int64_t> offsets(num_docs + 1, 0);
  sparse::PostingCursor cursor;
  for (uint64_t t = 0; t < num_terms; ++t) {
    for (cursor.open(arrays, static_cast<uint32_t>(t)); cursor.doc() != sparse::kEndDoc; cursor.next()) {
      ++offsets[cursor.doc() + 1];
    }
  }
  for (int64_t doc = 0; doc < num_docs; ++doc) offsets[doc + 1] += offsets[doc];
  std::vector<uint32_t> terms(offsets.back());
  std::vector<float> weights(offsets.back());
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (uint64_t t = 0; t < num_terms; ++t) {
    for (cursor.open(arrays, static_cast<uint32_t>(t)); cursor.doc() != sparse::kEndDoc; cursor.next()) {
      const uint32_t doc = cursor.doc();
      const int64_t slot = fill[doc]++;
      terms[slot] = static_cast<uint32_t>(t);
      weights[slot] = formula(d.term_idf[t], d.term_nonoccurrence[t], cursor.value(), doc_norm[doc]);
    }
  }
  std::shared_ptr<TermMatchIndex> out(new TermMatchIndex());
  out->adopt(std::move(offsets), std::move(terms), std::move(weights), num_terms);
  return out;
}

void TermMatchIndex::adopt(std::vector<int64_t> offsets, std::vector<uint32_t> terms, std::vector<float> weights,
                           uint64_t vocab_size) {
  owned_offsets_ = std::move(offsets);
  owned_terms_ = std::move(terms);
  owned_weights_ = std::move(weights);
  offsets_ = owned_offsets_.data();
  terms_ = owned_terms_.data();
  weights_ = owned_weights_.data();
  num_docs_ = static_cast<int64_t>(owned_offsets_.size()) - 1;
  num_postings_ = static_cast<int64_t>(owned_terms_.size());
  vocab_size_ = vocab_size;
}

namespace {

std::string query_position(QueryLayout layout, int64_t row, int64_t j) {
  switch (layout) {
    case QueryLayout::single:
      return "[" + std::to_string(j) + "]";
    case QueryLayout::list:
      return "[" + std::to_string(row) + "][" + std::to_string(j) + "]";
    case QueryLayout::matrix:
      break;
  }
  return "[" + std::to_string(row) + ", " + std::to_string(j) + "]";
}

}  // namespace

template <typename Id>
void append_query(QueryTerms& out, ConstView1<Id> query, uint64_t vocab_size, QueryLayout layout, int64_t row) {
  const size_t first = out.terms.size();
  for (int64_t j = 0; j < query.size; ++j) {
    const auto id = static_cast<int64_t>(query[j]);
    if (id == -1) continue;  // padding
    RK_CHECK_ARG(id >= 0, "term_match: query_term_ids", query_position(layout, row, j), " = ", id,
                 " is negative (only -1, padding, is allowed)");
    // An id beyond the vocabulary is in no document: it would add 0.
    if (static_cast<uint64_t>(id) < vocab_size) out.terms.push_back(static_cast<uint32_t>(id));
  }
  std::sort(out.terms.begin() + first, out.terms.end());
  out.terms.erase(std::unique(out.terms.begin() + first, out.terms.end()), out.terms.end());
  out.offsets.push_back(static_cast<int64_t>(out.terms.size()));
}

template <typename Id>
QueryTerms prepare_queries(const std::vector<ConstView1<Id>>& queries, uint64_t vocab_size, QueryLayout layout) {
  QueryTerms out;
  out.offsets.reserve(queries.size() + 1);
  for (size_t i = 0; i < queries.size(); ++i) {
    append_query(out, queries[i], vocab_size, layout, static_cast<int64_t>(i));
  }
  return out;
}

template void append_query<int32_t>(QueryTerms&, ConstView1<int32_t>, uint64_t, QueryLayout, int64_t);
template void append_query<int64_t>(QueryTerms&, ConstView1<int64_t>, uint64_t, QueryLayout, int64_t);
template QueryTerms prepare_queries<int32_t>(const std::vector<ConstView1<int32_t>>&, uint64_t, QueryLayout);
template QueryTerms prepare_queries<int64_t>(const std::vector<ConstView1<int64_t>>&, uint64_t, QueryLayout);

namespace {

template <typename Doc>
void check_candidates(ConstView2<Doc> candidates, int64_t num_docs) {
  for (int64_t i = 0; i < candidates.rows; ++i) {
    for (int64_t j = 0; j < candidates.cols; ++j) {
      const auto doc = static_cast<int64_t>(candidates(i, j));
      RK_CHECK_ARG(doc == -1 || (doc >= 0 && doc < num_docs), "term_match: candidates[", i, ", ", j, "] = ", doc,
                   " is out of range [0, ", num_docs, ") (-1 marks an empty slot)");
    }
  }
}

// A query's sorted distinct terms and a 8192-bit filter of them (1 KiB,
// stays in L1): a document term whose bit is clear is not a query term.
class QueryFilter {
 public:
  void set(const uint32_t* terms, int64_t n) {
    for (int64_t i = 0; i < n_; ++i) bits_[slot(terms_[i]) >> 6] = 0;  // clear the previous query's bits
    terms_ = terms;
    n_ = n;
    for (int64_t i = 0; i < n; ++i) bits_[slot(terms[i]) >> 6] |= uint64_t(1) << (slot(terms[i]) & 63);
  }
  const uint32_t* terms() const { return terms_; }
  int64_t size() const { return n_; }
  bool may_hold(uint32_t t) const { return (bits_[slot(t) >> 6] >> (slot(t) & 63)) & 1; }

 private:
  // Fibonacci hashing: the top 13 bits of t * 2^32 / phi spread nearby ids.
  static uint32_t slot(uint32_t t) { return (t * 0x9E3779B1u) >> 19; }
  uint64_t bits_[128] = {};
  const uint32_t* terms_ = nullptr;
  int64_t n_ = 0;
};

// Binary search is cheaper than the scan when |q| * log2 |d| * 4 < |d|
// (the constant: ~6 ns per search step against ~1.5 ns per scanned term).
bool prefer_search(int64_t query_size, int64_t doc_size) {
  int64_t log2 = 1;
  while ((int64_t(1) << log2) < doc_size) ++log2;
  return query_size * log2 * 4 < doc_size;
}

float score_pair(const TermMatchIndex& index, const QueryFilter& query, int64_t doc) {
  const int64_t first = index.offsets()[doc], size = index.offsets()[doc + 1] - first;
  const uint32_t* terms = index.terms() + first;
  const float* weights = index.weights() + first;
  const uint32_t* q = query.terms();
  const int64_t nq = query.size();
  double sum = 0;  // matched weights in ascending term id, rounded once at the end
  if (nq == 0) return 0.0f;
  if (prefer_search(nq, size)) {
    const uint32_t* at = terms;
    const uint32_t* end = terms + size;
    for (int64_t i = 0; i < nq && at != end; ++i) {
      at = std::lower_bound(at, end, q[i]);  // both lists ascend: search after the last match
      if (at != end && *at == q[i]) sum += weights[at++ - terms];
    }
  } else {
    for (int64_t i = 0; i < size; ++i) {
      if (query.may_hold(terms[i]) && std::binary_search(q, q + nq, terms[i])) sum += weights[i];
    }
  }
  return static_cast<float>(sum);
}

}  // namespace

template <typename Doc>
void term_match(const TermMatchIndex& index, const QueryTerms& queries, ConstView2<Doc> candidates,
                View2<float> out) {
  RK_CHECK_ARG(candidates.rows == queries.size(), "term_match: candidates must have one row per query (",
               queries.size(), "), got ", candidates.rows);
  RK_DCHECK(out.rows == candidates.rows && out.cols == candidates.cols);
  check_candidates(candidates, index.num_docs());
  const int64_t cols = candidates.cols;
  if (cols == 0) return;
  // One work item per (query, candidate) pair, so that a single query with
  // many candidates runs in parallel too; a thread gets at least ~2k pairs
  // (~100 us), below which starting it costs more than it saves.
  parallel_for(0, candidates.rows * cols, [&](int64_t lo, int64_t hi) {
    QueryFilter filter;
    int64_t current = -1;
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t i = p / cols, j = p % cols;
      if (i != current) {
        filter.set(queries.terms.data() + queries.offsets[i], queries.offsets[i + 1] - queries.offsets[i]);
        current = i;
      }
      const auto doc = static_cast<int64_t>(candidates(i, j));
      out(i, j) = doc < 0 ? -std::numeric_limits<float>::infinity() : score_pair(index, filter, doc);
    }
  }, 2048);
}

template void term_match<int32_t>(const TermMatchIndex&, const QueryTerms&, ConstView2<int32_t>, View2<float>);
template void term_match<int64_t>(const TermMatchIndex&, const QueryTerms&, ConstView2<int64_t>, View2<float>);

}  // namespace ragkernels::rerank
