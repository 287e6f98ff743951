#include "sparse/sparse_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "sparse/block_max_wand_query.h"
#include "sparse/maxscore_query.h"
#include "sparse/ranked_or_query.h"

namespace ragkernels::sparse {

QueryAlgorithm parse_query_algorithm(std::string_view name) {
  if (name == "exhaustive") return QueryAlgorithm::exhaustive;
  if (name == "maxscore") return QueryAlgorithm::maxscore;
  if (name == "bmw" || name == "block_max_wand") return QueryAlgorithm::block_max_wand;
  if (name == "taat" || name == "term_at_a_time") return QueryAlgorithm::term_at_a_time;
  throw ValueError(
      detail::message("algorithm must be 'maxscore', 'bmw', 'taat' or 'exhaustive'; got '", name, "'"));
}

PostingArrays posting_arrays(const IndexData& d) {
  PostingArrays a;
  a.term_first_block = d.term_first_block.data;
  a.term_df = d.term_df.data;
  a.term_max = d.term_max.data;
  a.block_last_doc = d.block_last_doc.data;
  a.block_max = d.block_max.data;
  a.block_offset = d.block_offset.data;
  a.data = d.postings.data;
  a.num_terms = d.num_terms();
  a.num_blocks = d.block_last_doc.size;
  return a;
}

SparseIndex::SparseIndex(IndexData data) : d_(std::move(data)) {
  arrays_ = posting_arrays(d_);
  compute_posting_scores();
  index_vocabulary();
  if (d_.analyzer) analyzer_.emplace(*d_.analyzer);
}

void SparseIndex::compute_posting_scores() {
  const uint64_t terms = d_.num_terms();
  term_first_posting_.assign(terms + 1, 0);
  for (uint64_t t = 0; t < terms; ++t) term_first_posting_[t + 1] = term_first_posting_[t] + d_.term_df[t];
  posting_scores_.resize(term_first_posting_[terms]);
  std::vector<double> doc_norm;
  std::optional<Bm25Formula> formula;
  if (d_.scoring == Scoring::bm25) {
    doc_norm.resize(d_.num_docs);
    for (uint64_t doc = 0; doc < d_.num_docs; ++doc) {
      doc_norm[doc] = bm25_doc_norm(d_.bm25, d_.doc_lengths[doc], d_.avg_doc_length);
    }
    formula.emplace(d_.bm25);
  }
  parallel_for(0, static_cast<int64_t>(terms), [&](int64_t lo, int64_t hi) {
    PostingCursor cursor;
    for (int64_t t = lo; t < hi; ++t) {
      float* out = posting_scores_.data() + term_first_posting_[t];
      for (cursor.open(arrays_, static_cast<uint32_t>(t)); cursor.doc() != kEndDoc; cursor.next()) {
        const uint32_t value = cursor.value();
        *out++ = formula ? (*formula)(d_.term_idf[t], d_.term_nonoccurrence[t], value, doc_norm[cursor.doc()])
                         : static_cast<float>(value);
      }
    }
  }, 64);
  arrays_.term_first_posting = term_first_posting_.data();
  arrays_.posting_scores = posting_scores_.data();
}

uint64_t SparseIndex::num_postings() const { return term_first_posting_.back(); }

std::string_view SparseIndex::term(uint32_t id) const {
  RK_CHECK_ARG(id < d_.vocab_ends.size, "term id ", id, " is not in the string vocabulary (", d_.vocab_ends.size,
               " terms)");
  return string_at(d_.vocab_ends, d_.vocab_chars, id);
}

std::string_view SparseIndex::doc_id(uint64_t doc) const {
  RK_CHECK_ARG(doc < d_.doc_id_ends.size, "doc ", doc, " has no external id");
  return string_at(d_.doc_id_ends, d_.doc_id_chars, doc);
}

namespace {
uint64_t term_hash(std::string_view s) { return format::xxh64(s.data(), s.size(), 0x9E3779B97F4A7C15ull); }
}  // namespace

void SparseIndex::index_vocabulary() {
  const uint64_t n = d_.vocab_ends.size;
  if (n == 0) return;
  size_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;  // load factor <= 1/2
  vocab_slots_.assign(capacity, 0);
  for (uint64_t id = 0; id < n; ++id) {
    size_t slot = term_hash(string_at(d_.vocab_ends, d_.vocab_chars, id)) & (capacity - 1);
    while (vocab_slots_[slot] != 0) slot = (slot + 1) & (capacity - 1);
    vocab_slots_[slot] = static_cast<uint32_t>(id + 1);  // a repeated string keeps its first id
  }
}

int64_t SparseIndex::term_id(std::string_view token) const {
  if (vocab_slots_.empty()) return -1;
  const size_t mask = vocab_slots_.size() - 1;
  for (size_t slot = term_hash(token) & mask; vocab_slots_[slot] != 0; slot = (slot + 1) & mask) {
    const uint32_t id = vocab_slots_[slot] - 1;
    if (string_at(d_.vocab_ends, d_.vocab_chars, id) == token) return id;
  }
  return -1;
}

namespace {
// Adds `weight` to term's entry, appending it at its first occurrence.
void add_term(Query& query, uint32_t term, float weight) {
  for (QueryTerm& q : query) {
    if (q.term == term) {
      q.weight += weight;
      return;
    }
  }
  query.push_back({term, weight});
}
}  // namespace

Query SparseIndex::query_from_tokens(const std::vector<std::string_view>& tokens) const {
  Query query;
  for (std::string_view token : tokens) {
    const int64_t id = term_id(token);
    if (id >= 0) add_term(query, static_cast<uint32_t>(id), 1.0f);
  }
  return query;
}

Query SparseIndex::query_from_text(std::string_view text, text::TokenList& scratch) const {
  RK_CHECK_ARG(analyzer_, "this index was built from tokens, not texts: search it with tokens");
  scratch.clear();
  analyzer_->analyze(text, scratch);
  Query query;
  for (size_t i = 0; i < scratch.size(); ++i) {
    const int64_t id = term_id(scratch[i]);
    if (id >= 0) add_term(query, static_cast<uint32_t>(id), 1.0f);
  }
  return query;
}

Query SparseIndex::query_from_ids(const int64_t* ids, size_t n, const float* weights) const {
  Query query;
  for (size_t i = 0; i < n; ++i) {
    const float weight = weights ? weights[i] : 1.0f;
    RK_CHECK_ARG(std::isfinite(weight) && weight >= 0, "query weights must be finite and >= 0, got ", weight);
    if (ids[i] >= 0 && static_cast<uint64_t>(ids[i]) < d_.num_terms() && weight > 0) {
      add_term(query, static_cast<uint32_t>(ids[i]), weight);
    }
  }
  return query;
}

void SparseIndex::run_query(const Query& query, size_t k, QueryAlgorithm algorithm, QueryContext& q,
                            Accumulator& accumulator, TopKQueue& top) const {
  q.terms.clear();
  q.constant = 0;
  for (const QueryTerm& term : query) {
    RK_DCHECK(term.term < d_.num_terms());
    if (d_.scoring == Scoring::bm25) {
      // bm25s adds the query's nonoccurrence scores to every document (0 but for BM25L/BM25+),
      // once per occurrence of the term (a BM25 query weight is an occurrence count).
      const int occurrences = static_cast<int>(term.weight);
      for (int i = 0; i < occurrences; ++i) q.constant += d_.term_nonoccurrence[term.term];
    }
    if (d_.term_df[term.term] == 0 || term.weight == 0) continue;
    TermCursor& t = q.terms.emplace_back();
    t.postings.open(arrays_, term.term);
    t.term = term.term;
    t.weight = term.weight;
    t.max_score = term.weight * d_.term_max[term.term];
    t.position = static_cast<uint32_t>(q.terms.size() - 1);
  }
  // The summation order of every algorithm: largest maximum first (ties by
  // query position), the order in which MaxScore adds a document's terms.
  std::stable_sort(q.terms.begin(), q.terms.end(),
                   [](const TermCursor& a, const TermCursor& b) { return a.max_score > b.max_score; });
  for (size_t i = 0; i < q.terms.size(); ++i) q.terms[i].position = static_cast<uint32_t>(i);
  q.prepare_bounds();
  top.reset(k);
  switch (algorithm) {
    case QueryAlgorithm::exhaustive: ranked_or_query(q, top); break;
    case QueryAlgorithm::maxscore: maxscore_query(q, top); break;
    case QueryAlgorithm::block_max_wand: block_max_wand_query(q, top); break;
    case QueryAlgorithm::term_at_a_time: term_at_a_time_query(q, accumulator, d_.num_docs, top); break;
  }
}

void SparseIndex::search(size_t n, const std::function<Query(size_t)>& make_query, size_t k,
                         QueryAlgorithm algorithm, int64_t* out_docs, float* out_scores) const {
  RK_CHECK_ARG(k >= 1, "k must be >= 1, got ", k);
  parallel_for(0, static_cast<int64_t>(n), [&](int64_t lo, int64_t hi) {
    QueryContext context;
    Accumulator accumulator;
    TopKQueue top;
    for (int64_t i = lo; i < hi; ++i) {
      run_query(make_query(static_cast<size_t>(i)), k, algorithm, context, accumulator, top);
      const std::vector<ScoredDoc>& best = top.sorted();
      int64_t* docs = out_docs + i * k;
      float* scores = out_scores + i * k;
      for (size_t r = 0; r < k; ++r) {
        docs[r] = r < best.size() ? static_cast<int64_t>(best[r].doc) : int64_t{-1};
        scores[r] = r < best.size() ? best[r].score : -std::numeric_limits<float>::infinity();
      }
    }
  });
}

}  // namespace ragkernels::sparse
