// The inverted index: BM25 over term frequencies, or learned-sparse impacts.
//
// One class serves both: postings hold a value per (term, doc) (a term
// frequency, or an integer impact), and the scorer decides what it means.
// An index is built by IndexBuilder, or loaded from its file (mmapped, see
// docs/formats.md, kind "sparse-index"); either way it is immutable and every
// const method is thread-safe.
//
// Vocabulary: strings (tokens of the analyzer, of pre-tokenized input or of a
// given list), or integer ids (token ids of a Hugging Face tokenizer: the id
// is the term). Documents are numbered 0..num_docs-1 in insertion order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/file_format.h"
#include "sparse/bm25.h"
#include "sparse/posting_cursor.h"
#include "sparse/query.h"
#include "sparse/term_at_a_time_query.h"
#include "text/analyzer.h"

namespace ragkernels::sparse {

enum class Scoring : uint32_t { bm25 = 0, impact = 1 };
enum class Vocabulary : uint32_t { strings = 0, ids = 1 };
enum class QueryAlgorithm { exhaustive, maxscore, block_max_wand, term_at_a_time };

// "exhaustive", "maxscore", "bmw" (or "block_max_wand"), "taat" (or "term_at_a_time").
QueryAlgorithm parse_query_algorithm(std::string_view name);

// A read-only array owned by the index or living in its mapped file.
template <typename T>
struct IndexArray {
  std::vector<T> owned;
  const T* data = nullptr;
  uint64_t size = 0;
  void adopt(std::vector<T> values) {
    owned = std::move(values);
    data = owned.data();
    size = owned.size();
  }
  const T& operator[](uint64_t i) const { return data[i]; }
};

// Everything an index is made of; IndexBuilder fills it, load() maps it.
struct IndexData {
  Scoring scoring = Scoring::bm25;
  Vocabulary vocabulary = Vocabulary::strings;
  uint64_t num_docs = 0;
  Bm25Params bm25;
  double avg_doc_length = 0;
  uint32_t impact_bits = 0;       // impacts: quantization bits (0: given as integers)
  double impact_scale = 1;        // impacts: quantized = weight * scale
  std::optional<text::AnalyzerConfig> analyzer;  // texts were analyzed with it

  IndexArray<uint64_t> term_first_block;  // [num_terms + 1]
  IndexArray<uint32_t> term_df;
  IndexArray<float> term_max;
  IndexArray<float> term_idf;             // BM25
  IndexArray<float> term_nonoccurrence;   // BM25L/BM25+
  IndexArray<uint32_t> block_last_doc;
  IndexArray<float> block_max;
  IndexArray<uint64_t> block_offset;
  IndexArray<uint8_t> postings;
  IndexArray<uint32_t> doc_lengths;       // BM25: tokens per doc
  IndexArray<uint64_t> vocab_ends;        // strings: term i = vocab_chars[ends[i-1], ends[i])
  IndexArray<char> vocab_chars;
  IndexArray<uint64_t> doc_id_ends;       // optional external doc ids, same layout
  IndexArray<char> doc_id_chars;
  uint64_t num_terms() const { return term_df.size; }
};

// String i of strings stored as concatenated chars + end offsets.
inline std::string_view string_at(const IndexArray<uint64_t>& ends, const IndexArray<char>& chars, uint64_t i) {
  const uint64_t begin = i == 0 ? 0 : ends[i - 1];
  return std::string_view(chars.data + begin, ends[i] - begin);
}

// The posting lists of `d` as cursors read them; term_first_posting and
// posting_scores stay null (SparseIndex computes them; a reader of doc ids
// and values alone, such as PRF's transposition, needs neither).
PostingArrays posting_arrays(const IndexData& d);

// A query: its terms in query order (weights >= 0), ready to run.
using Query = std::vector<QueryTerm>;

class SparseIndex {
 public:
  explicit SparseIndex(IndexData data);

  Scoring scoring() const { return d_.scoring; }
  Vocabulary vocabulary() const { return d_.vocabulary; }
  uint64_t num_docs() const { return d_.num_docs; }
  uint64_t num_terms() const { return d_.num_terms(); }
  uint64_t num_postings() const;
  const IndexData& data() const { return d_; }
  const text::Analyzer* analyzer() const { return analyzer_ ? &*analyzer_ : nullptr; }

  // Vocabulary (strings): the id of a token, or -1.
  int64_t term_id(std::string_view token) const;
  std::string_view term(uint32_t id) const;
  bool has_doc_ids() const { return d_.doc_id_ends.size > 0; }
  std::string_view doc_id(uint64_t doc) const;

  // Queries. Unknown terms are dropped; a repeated term counts once per
  // occurrence (its weight adds up), at the place of its first occurrence.
  Query query_from_tokens(const std::vector<std::string_view>& tokens) const;
  Query query_from_text(std::string_view text, text::TokenList& scratch) const;  // needs analyzer()
  Query query_from_ids(const int64_t* ids, size_t n, const float* weights) const;  // weights may be null

  // Runs n queries (make_query(i) builds query i) in parallel; row i of the
  // outputs (k entries, best first) gets its docs and scores, padded with
  // doc -1 and score -inf when fewer than k docs contain a query term.
  void search(size_t n, const std::function<Query(size_t)>& make_query, size_t k, QueryAlgorithm algorithm,
              int64_t* out_docs, float* out_scores) const;

  void save(const std::string& path) const;
  static std::shared_ptr<SparseIndex> load(const std::string& path, bool verify = true);

 private:
  void run_query(const Query& query, size_t k, QueryAlgorithm algorithm, QueryContext& context,
                 Accumulator& accumulator, TopKQueue& top) const;


  IndexData d_;
  std::shared_ptr<format::MappedFile> file_;  // keeps mapped arrays alive
  void compute_posting_scores();
  // After load: the stored block and term maxima equal those of the posting
  // scores just computed, so no file can make the pruning algorithms
  // disagree with term-at-a-time (index_file.cpp).
  void check_maxima(const std::string& path) const;

  PostingArrays arrays_;
  std::vector<uint64_t> term_first_posting_;
  // Open-addressing table over the term strings: slot -> term id + 1 (0: empty).
  void index_vocabulary();
  std::vector<uint32_t> vocab_slots_;
  // The base score of every posting (BM25 of its tf and doc length, or its
  // impact), computed once here: queries then read a float per posting
  // instead of decoding tfs and fetching doc lengths.
  std::vector<float> posting_scores_;
  std::optional<text::Analyzer> analyzer_;

};

// Accumulates documents, then builds the index. Documents are added in
// batches (so a caller can show progress); each batch is processed in
// parallel, and the index does not depend on the batch sizes or thread count.
class IndexBuilder {
 public:
  // BM25 over texts analyzed with `analyzer`, or over pre-tokenized input
  // (tokens or token ids) when analyzer is empty.
  static IndexBuilder bm25(std::optional<text::AnalyzerConfig> analyzer, Vocabulary vocabulary);
  // Impacts from weighted terms: strings, or ids (with an optional id -> string list).
  static IndexBuilder impact(Vocabulary vocabulary);

  void add_texts(const std::vector<std::string_view>& texts);
  // Token strings: doc i is tokens[offsets[i], offsets[i+1]). With weights
  // (impact builds only): the weight of each token, a term at most once per doc.
  void add_tokens(const std::vector<std::string_view>& tokens, const std::vector<uint64_t>& offsets,
                  const float* weights = nullptr);
  // Token ids (>= 0): doc i is ids[offsets[i], offsets[i+1]).
  void add_ids(const int64_t* ids, const uint64_t* offsets, size_t num_docs, const float* weights = nullptr);

  uint64_t num_docs() const { return doc_offsets_.size() - 1; }

  std::shared_ptr<SparseIndex> finish_bm25(const Bm25Params& params, std::vector<std::string> doc_ids);
  // bits in 1..16: weights w > 0 become max(1, round(w * (2^bits - 1) / max w));
  // bits == 0: weights must be integers in [1, 2^32 - 2] and are kept.
  // num_terms: at least 1 + the largest id (ids vocabulary); vocabulary_strings:
  // optional names of the ids.
  std::shared_ptr<SparseIndex> finish_impact(uint32_t bits, std::vector<std::string> doc_ids, uint64_t num_terms,
                                             const std::vector<std::string>& vocabulary_strings);

 private:
  IndexBuilder(Scoring scoring, std::optional<text::AnalyzerConfig> analyzer, Vocabulary vocabulary);
  // Documents as surface words (words_of(i, out) appends doc i's words),
  // processed in parallel pieces; each new word is normalized (stemmed) once.
  void add_words(size_t n, const std::function<void(size_t, text::TokenList&)>& words_of);
  void append_doc(const std::vector<std::pair<uint32_t, float>>& terms, uint32_t length);  // merged terms
  struct Impl;

  Scoring scoring_;
  Vocabulary vocabulary_;
  std::optional<text::AnalyzerConfig> analyzer_config_;
  std::optional<text::Analyzer> analyzer_;
  std::shared_ptr<Impl> impl_;  // vocabulary state (hash maps)
  std::vector<uint64_t> doc_offsets_{0};
  std::vector<uint32_t> doc_terms_;
  std::vector<float> doc_values_;   // tf, or weight
  std::vector<uint32_t> doc_lengths_;
};

}  // namespace ragkernels::sparse
