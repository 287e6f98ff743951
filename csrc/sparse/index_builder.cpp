// IndexBuilder: documents -> doc-major (term, value) lists -> blocked postings.
#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "sparse/sparse_index.h"
#include "sparse/string_interner.h"

namespace ragkernels::sparse {

struct IndexBuilder::Impl {
  StringInterner terms;    // term strings (strings vocabulary)
  StringInterner surface;  // surface words seen so far (before stemming) ...
  std::vector<uint32_t> surface_term;  // ... and the term each one normalizes to
};

IndexBuilder::IndexBuilder(Scoring scoring, std::optional<text::AnalyzerConfig> analyzer, Vocabulary vocabulary)
    : scoring_(scoring), vocabulary_(vocabulary), analyzer_config_(std::move(analyzer)),
      impl_(std::make_shared<Impl>()) {
  if (analyzer_config_) analyzer_.emplace(*analyzer_config_);
}

IndexBuilder IndexBuilder::bm25(std::optional<text::AnalyzerConfig> analyzer, Vocabulary vocabulary) {
  RK_CHECK_ARG(!analyzer || vocabulary == Vocabulary::strings, "an analyzer needs a strings vocabulary");
  return IndexBuilder(Scoring::bm25, std::move(analyzer), vocabulary);
}

IndexBuilder IndexBuilder::impact(Vocabulary vocabulary) {
  return IndexBuilder(Scoring::impact, std::nullopt, vocabulary);
}

namespace {

using TermValues = std::vector<std::pair<uint32_t, float>>;

// Sorts a document's (term, value) pairs by term and merges repeats: values
// add up for BM25 (each occurrence is one tf); a repeat is an error for impacts.
void merge_terms(TermValues& terms, Scoring scoring, uint64_t doc) {
  std::sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (out > 0 && terms[out - 1].first == terms[i].first) {
      RK_CHECK_ARG(scoring == Scoring::bm25, "document ", doc, " has the same term twice; each term of a weighted",
                   " document must appear once");
      terms[out - 1].second += terms[i].second;
    } else {
      terms[out++] = terms[i];
    }
  }
  terms.resize(out);
}

// Documents of one batch, processed by pieces in parallel; pieces merge in
// order, so ids come out in first-seen order whatever the piece boundaries.
struct Piece {
  StringInterner words;                 // texts: local surface words
  std::vector<uint32_t> word_ids;       // local id per token
  std::vector<uint64_t> doc_ends;       // into word_ids
  std::vector<uint32_t> word_term;      // local word -> global term
};

size_t piece_count(size_t n) { return std::min<size_t>(n, static_cast<size_t>(num_threads()) * 4); }

}  // namespace

void IndexBuilder::append_doc(const TermValues& terms, uint32_t length) {
  for (const auto& [term, value] : terms) {
    doc_terms_.push_back(term);
    doc_values_.push_back(value);
  }
  doc_offsets_.push_back(doc_terms_.size());
  doc_lengths_.push_back(length);
}

void IndexBuilder::add_texts(const std::vector<std::string_view>& texts) {
  RK_CHECK_ARG(analyzer_, "this index was not built from texts (no analyzer): add tokens instead");
  add_words(texts.size(), [&](size_t i, text::TokenList& words) { analyzer_->split(texts[i], words); });
}

void IndexBuilder::add_words(size_t n, const std::function<void(size_t, text::TokenList&)>& words_of) {
  RK_DCHECK(analyzer_);
  const size_t pieces = piece_count(n);
  if (n == 0) return;
  std::vector<Piece> piece(pieces);
  auto piece_begin = [&](size_t p) { return n * p / pieces; };
  parallel_for(0, static_cast<int64_t>(pieces), [&](int64_t lo, int64_t hi) {
    text::TokenList words;
    for (int64_t p = lo; p < hi; ++p) {
      Piece& out = piece[p];
      for (size_t i = piece_begin(p); i < piece_begin(p + 1); ++i) {
        words.clear();
        words_of(i, words);
        for (size_t w = 0; w < words.size(); ++w) out.word_ids.push_back(out.words.intern(words[w]));
        out.doc_ends.push_back(out.word_ids.size());
      }
    }
  });
  // New surface words, in first-seen order; each is normalized (stemmed) once.
  Impl& vocab = *impl_;
  const size_t known = vocab.surface.size();
  for (Piece& p : piece) {
    for (size_t w = 0; w < p.words.size(); ++w) vocab.surface.intern(p.words[w]);
  }
  const size_t fresh = vocab.surface.size() - known;
  std::vector<std::string> normalized(fresh);
  parallel_for(0, static_cast<int64_t>(fresh), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      normalized[i] = analyzer_->normalize(vocab.surface[known + i]);
    }
  }, 256);
  for (const std::string& term : normalized) vocab.surface_term.push_back(vocab.terms.intern(term));
  // Per document: (term, tf) pairs, merged in parallel.
  std::vector<std::vector<TermValues>> doc_terms(pieces);
  std::vector<std::vector<uint32_t>> doc_lengths(pieces);
  const uint64_t first_doc = num_docs();
  parallel_for(0, static_cast<int64_t>(pieces), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      Piece& in = piece[p];
      in.word_term.resize(in.words.size());
      for (size_t w = 0; w < in.words.size(); ++w) in.word_term[w] = vocab.surface_term[vocab.surface.find(in.words[w])];
      uint64_t begin = 0;
      for (uint64_t end : in.doc_ends) {
        TermValues terms;
        for (uint64_t t = begin; t < end; ++t) terms.emplace_back(in.word_term[in.word_ids[t]], 1.0f);
        merge_terms(terms, scoring_, first_doc + piece_begin(p) + doc_terms[p].size());
        doc_terms[p].push_back(std::move(terms));
        doc_lengths[p].push_back(static_cast<uint32_t>(end - begin));
        begin = end;
      }
    }
  });
  for (size_t p = 0; p < pieces; ++p) {
    for (size_t d = 0; d < doc_terms[p].size(); ++d) append_doc(doc_terms[p][d], doc_lengths[p][d]);
  }
}

void IndexBuilder::add_tokens(const std::vector<std::string_view>& tokens, const std::vector<uint64_t>& offsets,
                              const float* weights) {
  RK_CHECK_ARG(vocabulary_ == Vocabulary::strings, "this index has an integer vocabulary: add token ids");
  RK_CHECK_ARG(!analyzer_, "this index analyzes texts: add texts, not tokens");
  RK_CHECK_ARG(!offsets.empty() && offsets.front() == 0 && offsets.back() == tokens.size(),
               "token offsets must start at 0 and end at the number of tokens");
  RK_CHECK_ARG((weights != nullptr) == (scoring_ == Scoring::impact),
               scoring_ == Scoring::impact ? "an impact index needs a weight per token" : "BM25 takes no weights");
  for (size_t d = 0; d + 1 < offsets.size(); ++d) {
    RK_CHECK_ARG(offsets[d] <= offsets[d + 1], "token offsets must not decrease");
  }
  // One hash per token, sequentially: measured faster than the two-level
  // parallel interning of add_words, which pays off only with a stemmer.
  TermValues terms;
  for (size_t d = 0; d + 1 < offsets.size(); ++d) {
    terms.clear();
    for (uint64_t t = offsets[d]; t < offsets[d + 1]; ++t) {
      const float value = weights ? weights[t] : 1.0f;
      if (value == 0) continue;
      terms.emplace_back(impl_->terms.intern(tokens[t]), value);
    }
    merge_terms(terms, scoring_, num_docs());
    append_doc(terms, static_cast<uint32_t>(offsets[d + 1] - offsets[d]));
  }
}

void IndexBuilder::add_ids(const int64_t* ids, const uint64_t* offsets, size_t num_docs, const float* weights) {
  RK_CHECK_ARG(vocabulary_ == Vocabulary::ids, "this index has a string vocabulary: add tokens");
  RK_CHECK_ARG((weights != nullptr) == (scoring_ == Scoring::impact),
               scoring_ == Scoring::impact ? "an impact index needs a weight per token" : "BM25 takes no weights");
  TermValues terms;
  for (size_t d = 0; d < num_docs; ++d) {
    terms.clear();
    for (uint64_t t = offsets[d]; t < offsets[d + 1]; ++t) {
      RK_CHECK_ARG(ids[t] >= 0 && ids[t] < (int64_t{1} << 32) - 1, "token ids must be in [0, 2^32 - 1), got ", ids[t]);
      const float value = weights ? weights[t] : 1.0f;
      if (value == 0) continue;
      terms.emplace_back(static_cast<uint32_t>(ids[t]), value);
    }
    merge_terms(terms, scoring_, doc_offsets_.size() - 1);
    append_doc(terms, static_cast<uint32_t>(offsets[d + 1] - offsets[d]));
  }
}

namespace {

struct TermMajor {
  std::vector<uint64_t> term_begin;  // [num_terms + 1]
  std::vector<uint32_t> docs;
  std::vector<uint32_t> values;
};

// Doc-major (doc, term, value) -> term-major postings, docs ascending.
TermMajor invert(const std::vector<uint64_t>& doc_offsets, const std::vector<uint32_t>& doc_terms,
                 const std::vector<uint32_t>& values, uint64_t num_terms) {
  TermMajor out;
  out.term_begin.assign(num_terms + 1, 0);
  for (uint32_t t : doc_terms) ++out.term_begin[t + 1];
  for (uint64_t t = 0; t < num_terms; ++t) out.term_begin[t + 1] += out.term_begin[t];
  std::vector<uint64_t> cursor(out.term_begin.begin(), out.term_begin.end() - 1);
  out.docs.resize(doc_terms.size());
  out.values.resize(doc_terms.size());
  for (uint64_t d = 0; d + 1 < doc_offsets.size(); ++d) {
    for (uint64_t p = doc_offsets[d]; p < doc_offsets[d + 1]; ++p) {
      const uint64_t slot = cursor[doc_terms[p]]++;
      out.docs[slot] = static_cast<uint32_t>(d);
      out.values[slot] = values[p];
    }
  }
  return out;
}

// Cuts every term's postings into blocks, packs them and records the block
// maxima of base_score(term, doc, value). Parallel over terms.
template <typename BaseScore>
void write_blocks(const TermMajor& postings, const BaseScore& base_score, IndexData& d) {
  const uint64_t num_terms = postings.term_begin.size() - 1;
  std::vector<uint64_t> first_block(num_terms + 1, 0);
  for (uint64_t t = 0; t < num_terms; ++t) {
    const uint64_t df = postings.term_begin[t + 1] - postings.term_begin[t];
    first_block[t + 1] = first_block[t] + (df + kBlockSize - 1) / kBlockSize;
  }
  const uint64_t num_blocks = first_block[num_terms];
  std::vector<uint32_t> last_doc(num_blocks), df(num_terms);
  std::vector<float> block_max(num_blocks), term_max(num_terms);
  std::vector<uint64_t> offset(num_blocks);
  const int64_t chunks = std::min<int64_t>(static_cast<int64_t>(num_terms), num_threads() * 8);
  std::vector<std::vector<uint8_t>> bytes(chunks);
  auto chunk_begin = [&](int64_t c) { return static_cast<uint64_t>(num_terms * c / chunks); };
  parallel_for(0, chunks, [&](int64_t lo, int64_t hi) {
    uint32_t gaps[kBlockSize], values[kBlockSize];
    for (int64_t c = lo; c < hi; ++c) {
      std::vector<uint8_t>& out = bytes[c];
      for (uint64_t t = chunk_begin(c); t < chunk_begin(c + 1); ++t) {
        const uint64_t begin = postings.term_begin[t], end = postings.term_begin[t + 1];
        df[t] = static_cast<uint32_t>(end - begin);
        float term_best = 0;
        for (uint64_t b = first_block[t]; b < first_block[t + 1]; ++b) {
          const uint64_t lo_p = begin + (b - first_block[t]) * kBlockSize;
          const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockSize, end - lo_p));
          float best = 0;
          for (size_t i = 0; i < n; ++i) {
            const uint32_t doc = postings.docs[lo_p + i];
            const uint32_t previous = i > 0 ? postings.docs[lo_p + i - 1] : (b == first_block[t] ? 0 : last_doc[b - 1] + 1);
            gaps[i] = i > 0 ? doc - previous - 1 : doc - previous;
            values[i] = postings.values[lo_p + i] - 1;
            best = std::max(best, base_score(t, doc, postings.values[lo_p + i]));
          }
          last_doc[b] = postings.docs[lo_p + n - 1];
          block_max[b] = best;
          term_best = std::max(term_best, best);
          const uint32_t gap_width = bit_width(gaps, n), value_width = bit_width(values, n);
          offset[b] = out.size();  // chunk-relative for now
          const size_t at = out.size();
          out.resize(at + 2 + packed_bytes(n, gap_width) + packed_bytes(n, value_width));
          out[at] = static_cast<uint8_t>(gap_width);
          out[at + 1] = static_cast<uint8_t>(value_width);
          pack(gaps, n, gap_width, out.data() + at + 2);
          pack(values, n, value_width, out.data() + at + 2 + packed_bytes(n, gap_width));
        }
        term_max[t] = term_best;
      }
    }
  });
  std::vector<uint8_t> data;
  for (int64_t c = 0; c < chunks; ++c) {
    const uint64_t base = data.size();
    for (uint64_t b = first_block[chunk_begin(c)]; b < first_block[chunk_begin(c + 1)]; ++b) offset[b] += base;
    data.insert(data.end(), bytes[c].begin(), bytes[c].end());
    std::vector<uint8_t>().swap(bytes[c]);
  }
  data.resize(data.size() + kReadPadding, 0);
  d.term_first_block.adopt(std::move(first_block));
  d.term_df.adopt(std::move(df));
  d.term_max.adopt(std::move(term_max));
  d.block_last_doc.adopt(std::move(last_doc));
  d.block_max.adopt(std::move(block_max));
  d.block_offset.adopt(std::move(offset));
  d.postings.adopt(std::move(data));
}

void set_doc_ids(IndexData& d, std::vector<std::string> doc_ids) {
  if (doc_ids.empty()) return;
  RK_CHECK_ARG(doc_ids.size() == d.num_docs, "got ", doc_ids.size(), " doc ids for ", d.num_docs, " documents");
  std::vector<uint64_t> ends;
  std::vector<char> chars;
  for (const std::string& id : doc_ids) {
    chars.insert(chars.end(), id.begin(), id.end());
    ends.push_back(chars.size());
  }
  d.doc_id_ends.adopt(std::move(ends));
  d.doc_id_chars.adopt(std::move(chars));
}

void set_string_vocabulary(IndexData& d, const std::string& chars, const std::vector<uint64_t>& ends) {
  d.vocab_ends.adopt(ends);
  d.vocab_chars.adopt(std::vector<char>(chars.begin(), chars.end()));
}

}  // namespace

std::shared_ptr<SparseIndex> IndexBuilder::finish_bm25(const Bm25Params& params, std::vector<std::string> doc_ids) {
  RK_CHECK_ARG(scoring_ == Scoring::bm25, "finish_bm25 on an impact builder");
  check_bm25_params(params);
  IndexData d;
  d.scoring = Scoring::bm25;
  d.vocabulary = vocabulary_;
  d.num_docs = num_docs();
  d.bm25 = params;
  d.analyzer = analyzer_config_;
  uint64_t total_length = 0;
  for (uint32_t length : doc_lengths_) total_length += length;
  // NumPy's mean of the int lengths: an exact float64 sum divided by n.
  d.avg_doc_length = d.num_docs ? static_cast<double>(total_length) / static_cast<double>(d.num_docs) : 0.0;

  uint64_t num_terms = impl_->terms.size();
  if (vocabulary_ == Vocabulary::ids) {
    for (uint32_t t : doc_terms_) num_terms = std::max<uint64_t>(num_terms, uint64_t{t} + 1);
  }
  std::vector<uint32_t> tf(doc_values_.begin(), doc_values_.end());
  const TermMajor postings = invert(doc_offsets_, doc_terms_, tf, num_terms);

  std::vector<float> idf(num_terms), nonoccurrence(num_terms);
  for (uint64_t t = 0; t < num_terms; ++t) {
    const uint64_t df = postings.term_begin[t + 1] - postings.term_begin[t];
    if (df == 0) continue;
    const double idf64 = bm25_idf(params.method, df, d.num_docs);
    idf[t] = static_cast<float>(idf64);
    nonoccurrence[t] = bm25_nonoccurrence(params, idf64);
  }
  std::vector<double> doc_norm(d.num_docs);
  for (uint64_t doc = 0; doc < d.num_docs; ++doc) doc_norm[doc] = bm25_doc_norm(params, doc_lengths_[doc], d.avg_doc_length);
  const Bm25Formula formula(params);
  write_blocks(postings, [&](uint64_t t, uint32_t doc, uint32_t value) {
    return formula(idf[t], nonoccurrence[t], value, doc_norm[doc]);
  }, d);
  d.term_idf.adopt(std::move(idf));
  d.term_nonoccurrence.adopt(std::move(nonoccurrence));
  d.doc_lengths.adopt(doc_lengths_);
  if (vocabulary_ == Vocabulary::strings) set_string_vocabulary(d, impl_->terms.chars(), impl_->terms.ends());
  set_doc_ids(d, std::move(doc_ids));
  return std::make_shared<SparseIndex>(std::move(d));
}

std::shared_ptr<SparseIndex> IndexBuilder::finish_impact(uint32_t bits, std::vector<std::string> doc_ids,
                                                         uint64_t num_terms,
                                                         const std::vector<std::string>& vocabulary_strings) {
  RK_CHECK_ARG(scoring_ == Scoring::impact, "finish_impact on a BM25 builder");
  RK_CHECK_ARG(bits <= 16, "bits must be in 1..16 (or 0 for integer impacts), got ", bits);
  IndexData d;
  d.scoring = Scoring::impact;
  d.vocabulary = vocabulary_;
  d.num_docs = num_docs();
  d.impact_bits = bits;
  float max_weight = 0;
  for (float w : doc_values_) {
    RK_CHECK_ARG(std::isfinite(w) && w >= 0, "document weights must be finite and >= 0, got ", w);
    max_weight = std::max(max_weight, w);
  }
  std::vector<uint32_t> impacts(doc_values_.size());
  if (bits == 0) {
    for (size_t i = 0; i < impacts.size(); ++i) {
      const float w = doc_values_[i];
      RK_CHECK_ARG(w == std::floor(w) && w >= 1 && w <= 4294967294.0f,
                   "with bits=0 the weights must be integer impacts >= 1, got ", w);
      impacts[i] = static_cast<uint32_t>(w);
    }
  } else {
    d.impact_scale = max_weight > 0 ? ((1u << bits) - 1) / static_cast<double>(max_weight) : 1.0;
    for (size_t i = 0; i < impacts.size(); ++i) {
      const double q = std::nearbyint(doc_values_[i] * d.impact_scale);
      impacts[i] = static_cast<uint32_t>(std::max(1.0, q));  // a weight > 0 never vanishes
    }
  }
  if (vocabulary_ == Vocabulary::ids) {
    for (uint32_t t : doc_terms_) num_terms = std::max<uint64_t>(num_terms, uint64_t{t} + 1);
    if (!vocabulary_strings.empty()) {
      RK_CHECK_ARG(vocabulary_strings.size() == num_terms, "vocabulary has ", vocabulary_strings.size(),
                   " entries but the ids need ", num_terms);
      StringInterner check;
      std::string chars;
      std::vector<uint64_t> ends;
      for (const std::string& s : vocabulary_strings) {
        RK_CHECK_ARG(check.intern(s) == ends.size(), "vocabulary has the token '", s, "' twice");
        chars += s;
        ends.push_back(chars.size());
      }
      set_string_vocabulary(d, chars, ends);
    }
  } else {
    num_terms = impl_->terms.size();
    set_string_vocabulary(d, impl_->terms.chars(), impl_->terms.ends());
  }
  const TermMajor postings = invert(doc_offsets_, doc_terms_, impacts, num_terms);
  write_blocks(postings, [](uint64_t, uint32_t, uint32_t value) { return static_cast<float>(value); }, d);
  set_doc_ids(d, std::move(doc_ids));
  return std::make_shared<SparseIndex>(std::move(d));
}

}  // namespace ragkernels::sparse
