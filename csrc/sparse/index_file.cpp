// SparseIndex::save / load: the index as a "sparse-index" file of sections
// (docs/formats.md). Loading maps the file and checks that every array has the
// size the metadata implies and that every offset stays inside its array, so
// a file that passed its checksums can never make a query read out of bounds.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>
#include <unordered_set>

#include "core/error.h"
#include "core/utf8.h"
#include "sparse/sparse_index.h"

namespace ragkernels::sparse {

namespace {

constexpr const char* kKind = "sparse-index";
constexpr uint64_t kMetaFields = 8;
constexpr uint64_t kParamFields = 5;

template <typename T>
format::SectionIn section(const std::string& name, const IndexArray<T>& a) {
  return {name, format::dtype_of<T>::value, a.data, a.size * sizeof(T)};
}
format::SectionIn char_section(const std::string& name, const IndexArray<char>& a) {
  return {name, format::DType::bytes, a.data, a.size};
}

uint64_t analyzer_flags(const std::optional<text::AnalyzerConfig>& a) {
  if (!a) return 0;
  return 1 | (a->lowercase ? 2 : 0) | (a->keep_numbers ? 4 : 0) | (a->stem ? 8 : 0);
}

}  // namespace

void SparseIndex::save(const std::string& path) const {
  const uint64_t meta[kMetaFields] = {static_cast<uint64_t>(d_.scoring), static_cast<uint64_t>(d_.vocabulary),
                                      d_.num_docs, d_.num_terms(), d_.block_last_doc.size,
                                      static_cast<uint64_t>(d_.bm25.method), d_.impact_bits,
                                      analyzer_flags(d_.analyzer)};
  const double params[kParamFields] = {d_.bm25.k1, d_.bm25.b, d_.bm25.delta, d_.avg_doc_length, d_.impact_scale};
  std::vector<uint64_t> stop_ends;
  std::string stop_chars;
  if (d_.analyzer) {
    for (const std::string& w : d_.analyzer->stopwords) {
      stop_chars += w;
      stop_ends.push_back(stop_chars.size());
    }
  }
  std::vector<format::SectionIn> s = {
      {"meta", format::DType::u64, meta, sizeof meta},
      {"params", format::DType::f64, params, sizeof params},
      section("term_first_block", d_.term_first_block),
      section("term_df", d_.term_df),
      section("term_max", d_.term_max),
      section("term_idf", d_.term_idf),
      section("term_nonoccurrence", d_.term_nonoccurrence),
      section("block_last_doc", d_.block_last_doc),
      section("block_max", d_.block_max),
      section("block_offset", d_.block_offset),
      section("postings", d_.postings),
      section("doc_lengths", d_.doc_lengths),
      section("vocab_ends", d_.vocab_ends),
      char_section("vocab_chars", d_.vocab_chars),
      section("doc_id_ends", d_.doc_id_ends),
      char_section("doc_id_chars", d_.doc_id_chars),
      {"stopword_ends", format::DType::u64, stop_ends.data(), stop_ends.size() * sizeof(uint64_t)},
      {"stopword_chars", format::DType::bytes, stop_chars.data(), stop_chars.size()},
  };
  format::write_file(path, kKind, s);
}

namespace {

template <typename T>
void map_array(const format::MappedFile& file, const std::string& name, IndexArray<T>& out) {
  const ConstView1<T> v = file.array<T>(name);
  out.data = v.data;
  out.size = static_cast<uint64_t>(v.size);
}

void map_chars(const format::MappedFile& file, const std::string& name, IndexArray<char>& out) {
  const format::SectionOut& s = file.section(name);
  RK_CHECK_FORMAT(s.dtype == format::DType::bytes, file.path(), ": section '", name, "' must hold bytes");
  out.data = static_cast<const char*>(s.data);
  out.size = s.bytes;
}

// Ends of concatenated strings: non-decreasing, within the chars, and every
// string valid UTF-8 (each becomes a Python str).
void check_ends(const std::string& path, const char* what, const IndexArray<uint64_t>& ends,
                const IndexArray<char>& chars) {
  uint64_t previous = 0;
  for (uint64_t i = 0; i < ends.size; ++i) {
    RK_CHECK_FORMAT(ends[i] >= previous && ends[i] <= chars.size, path, ": ", what,
                    " offsets are out of order or range");
    RK_CHECK_FORMAT(is_valid_utf8(std::string_view(chars.data + previous, ends[i] - previous)), path, ": ", what,
                    " ", i, " is not valid UTF-8 (file corrupt)");
    previous = ends[i];
  }
}

// Doc ids are unique, as build requires (to_run would merge two documents).
void check_unique_ids(const std::string& path, const IndexData& d) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(d.doc_id_ends.size);
  for (uint64_t i = 0; i < d.doc_id_ends.size; ++i) {
    RK_CHECK_FORMAT(seen.insert(string_at(d.doc_id_ends, d.doc_id_chars, i)).second, path, ": doc id of document ", i,
                    " repeats an earlier one (ids must be unique)");
  }
}

// Search sizes its accumulators by num_docs. A BM25 index or one with doc
// ids stores an entry per document, so the file bounds it; an impact index
// without ids does not, so its documents without postings are bounded
// instead (2^20 beyond one per posting): a 2 KB file must not claim 2^31
// documents and make every search allocate gigabytes.
constexpr uint64_t kMaxDocsWithoutPostings = uint64_t(1) << 20;

void check_num_docs(const std::string& path, const IndexData& d, uint64_t num_postings) {
  if (d.scoring == Scoring::bm25 || d.doc_id_ends.size == d.num_docs) return;
  RK_CHECK_FORMAT(d.num_docs <= num_postings + kMaxDocsWithoutPostings, path, ": ", d.num_docs,
                  " documents but only ", num_postings, " postings and no doc ids (file corrupt)");
}

// The scoring parameters and every value derived from the postings at build
// time (average length, idf, nonoccurrence scores) equal what the builder
// computes from them, bit for bit: a file cannot carry a NaN k1 or an idf
// that disagrees with its document frequencies.
void check_scoring(const std::string& path, const IndexData& d) {
  if (d.scoring == Scoring::impact) {
    RK_CHECK_FORMAT(std::isfinite(d.impact_scale) && d.impact_scale > 0 && (d.impact_bits > 0 || d.impact_scale == 1) &&
                        d.avg_doc_length == 0,
                    path, ": bad impact parameters (scale ", d.impact_scale, ")");
    return;
  }
  try {
    check_bm25_params(d.bm25);
  } catch (const ValueError& e) {
    throw FormatError(detail::message(path, ": bad BM25 parameters: ", e.what()));
  }
  uint64_t total_length = 0;
  for (uint64_t doc = 0; doc < d.num_docs; ++doc) total_length += d.doc_lengths[doc];
  const double avg = d.num_docs ? static_cast<double>(total_length) / static_cast<double>(d.num_docs) : 0.0;
  RK_CHECK_FORMAT(d.avg_doc_length == avg, path, ": average document length ", d.avg_doc_length,
                  " does not match the document lengths (", avg, ")");
  for (uint64_t t = 0; t < d.num_terms(); ++t) {
    const double idf = d.term_df[t] ? bm25_idf(d.bm25.method, d.term_df[t], d.num_docs) : 0.0;
    const float nonoccurrence = d.term_df[t] ? bm25_nonoccurrence(d.bm25, idf) : 0.0f;
    RK_CHECK_FORMAT(d.term_idf[t] == static_cast<float>(idf) && d.term_nonoccurrence[t] == nonoccurrence, path,
                    ": idf of term ", t, " does not match its document frequency");
  }
}

}  // namespace

std::shared_ptr<SparseIndex> SparseIndex::load(const std::string& path, bool verify) {
  std::shared_ptr<format::MappedFile> file = format::MappedFile::open(path, kKind, verify);
  const format::MappedFile& f = *file;
  const auto meta = f.array<uint64_t>("meta");
  const auto params = f.array<double>("params");
  RK_CHECK_FORMAT(meta.size == kMetaFields && params.size == kParamFields, path, ": bad metadata size");
  IndexData d;
  RK_CHECK_FORMAT(meta[0] <= 1 && meta[1] <= 1 && meta[5] <= 4 && meta[6] <= 16, path, ": bad metadata values");
  d.scoring = static_cast<Scoring>(meta[0]);
  d.vocabulary = static_cast<Vocabulary>(meta[1]);
  d.num_docs = meta[2];
  d.bm25 = {static_cast<Bm25Method>(meta[5]), params[0], params[1], params[2]};
  d.impact_bits = static_cast<uint32_t>(meta[6]);
  d.avg_doc_length = params[3];
  d.impact_scale = params[4];
  map_array(f, "term_first_block", d.term_first_block);
  map_array(f, "term_df", d.term_df);
  map_array(f, "term_max", d.term_max);
  map_array(f, "term_idf", d.term_idf);
  map_array(f, "term_nonoccurrence", d.term_nonoccurrence);
  map_array(f, "block_last_doc", d.block_last_doc);
  map_array(f, "block_max", d.block_max);
  map_array(f, "block_offset", d.block_offset);
  map_array(f, "postings", d.postings);
  map_array(f, "doc_lengths", d.doc_lengths);
  map_array(f, "vocab_ends", d.vocab_ends);
  map_chars(f, "vocab_chars", d.vocab_chars);
  map_array(f, "doc_id_ends", d.doc_id_ends);
  map_chars(f, "doc_id_chars", d.doc_id_chars);
  IndexArray<uint64_t> stop_ends;
  IndexArray<char> stop_chars;
  map_array(f, "stopword_ends", stop_ends);
  map_chars(f, "stopword_chars", stop_chars);

  const uint64_t terms = meta[3], blocks = meta[4];
  const bool bm25 = d.scoring == Scoring::bm25;
  RK_CHECK_FORMAT(d.num_docs < kEndDoc, path, ": too many documents");
  RK_CHECK_FORMAT(d.term_first_block.size == terms + 1 && d.term_df.size == terms && d.term_max.size == terms &&
                      d.block_last_doc.size == blocks && d.block_max.size == blocks && d.block_offset.size == blocks &&
                      d.postings.size >= kReadPadding,
                  path, ": posting arrays do not match the metadata");
  RK_CHECK_FORMAT(!bm25 || (d.term_idf.size == terms && d.term_nonoccurrence.size == terms &&
                            d.doc_lengths.size == d.num_docs),
                  path, ": BM25 arrays do not match the metadata");
  RK_CHECK_FORMAT(d.vocab_ends.size == terms || (d.vocabulary == Vocabulary::ids && d.vocab_ends.size == 0),
                  path, ": vocabulary arrays do not match the metadata");
  RK_CHECK_FORMAT(d.doc_id_ends.size == 0 || d.doc_id_ends.size == d.num_docs, path, ": doc ids do not match");
  check_ends(path, "vocabulary term", d.vocab_ends, d.vocab_chars);
  check_ends(path, "doc id", d.doc_id_ends, d.doc_id_chars);
  check_ends(path, "stopword", stop_ends, stop_chars);
  // Blocks: each term's blocks in range and as many as its df implies; each
  // block's docs increasing and below num_docs, its bytes inside the postings.
  RK_CHECK_FORMAT(d.term_first_block[0] == 0 && d.term_first_block[terms] == blocks, path, ": bad block table");
  const uint64_t payload = d.postings.size - kReadPadding;
  uint32_t gaps[kBlockSize];
  for (uint64_t t = 0; t < terms; ++t) {
    const uint64_t first = d.term_first_block[t], end = d.term_first_block[t + 1];
    const uint64_t df = d.term_df[t];
    RK_CHECK_FORMAT(first <= end && end <= blocks && end - first == (df + kBlockSize - 1) / kBlockSize, path,
                    ": block table of term ", t, " is inconsistent");
    for (uint64_t b = first; b < end; ++b) {
      const uint64_t n = std::min<uint64_t>(kBlockSize, df - (b - first) * kBlockSize);
      RK_CHECK_FORMAT(d.block_last_doc[b] < d.num_docs && (b == first || d.block_last_doc[b] > d.block_last_doc[b - 1]),
                      path, ": block ", b, " has out-of-order docs");
      // Compared by subtraction so that a huge offset cannot wrap around.
      RK_CHECK_FORMAT(d.block_offset[b] <= payload && payload - d.block_offset[b] >= 2, path, ": block ", b,
                      " lies outside the postings");
      const uint8_t* bytes = d.postings.data + d.block_offset[b];
      RK_CHECK_FORMAT(bytes[0] <= 32 && bytes[1] <= 32, path, ": block ", b, " has a bad bit width");
      RK_CHECK_FORMAT(payload - d.block_offset[b] >= 2 + packed_bytes(n, bytes[0]) + packed_bytes(n, bytes[1]), path,
                      ": block ", b, " lies outside the postings");
      // The gaps must lead exactly to the block's last doc (cursors rely on it).
      unpack(bytes + 2, n, bytes[0], gaps);
      uint64_t doc = b == first ? gaps[0] : uint64_t{d.block_last_doc[b - 1]} + 1 + gaps[0];
      for (uint64_t i = 1; i < n; ++i) doc += uint64_t{gaps[i]} + 1;
      RK_CHECK_FORMAT(doc == d.block_last_doc[b], path, ": block ", b, " does not decode to its last doc");
    }
  }
  if (meta[7] & 1) {
    text::AnalyzerConfig a;
    a.lowercase = meta[7] & 2;
    a.keep_numbers = meta[7] & 4;
    a.stem = meta[7] & 8;
    a.stopwords.clear();
    for (uint64_t i = 0; i < stop_ends.size; ++i) a.stopwords.emplace_back(string_at(stop_ends, stop_chars, i));
    d.analyzer = std::move(a);
  }
  check_unique_ids(path, d);
  uint64_t num_postings = 0;
  for (uint64_t t = 0; t < terms; ++t) num_postings += d.term_df[t];
  check_num_docs(path, d, num_postings);
  check_scoring(path, d);
  auto index = std::make_shared<SparseIndex>(std::move(d));
  index->check_maxima(path);
  index->file_ = std::move(file);
  return index;
}

void SparseIndex::check_maxima(const std::string& path) const {
  for (uint64_t t = 0; t < d_.num_terms(); ++t) {
    const float* scores = posting_scores_.data() + term_first_posting_[t];
    const uint64_t df = d_.term_df[t];
    float term_best = 0;  // as IndexBuilder's write_blocks computes them
    for (uint64_t b = d_.term_first_block[t], i = 0; b < d_.term_first_block[t + 1]; ++b) {
      float best = 0;
      for (const uint64_t end = std::min<uint64_t>(df, i + kBlockSize); i < end; ++i) best = std::max(best, scores[i]);
      RK_CHECK_FORMAT(d_.block_max[b] == best, path, ": block ", b, " of term ", t, " has maximum ", d_.block_max[b],
                      " but its postings score up to ", best, " (file corrupt)");
      term_best = std::max(term_best, best);
    }
    RK_CHECK_FORMAT(d_.term_max[t] == term_best, path, ": term ", t, " has maximum ", d_.term_max[t],
                    " but its postings score up to ", term_best, " (file corrupt)");
  }
}

}  // namespace ragkernels::sparse
