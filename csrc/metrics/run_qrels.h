// Relevance judgments (Qrels) and retrieval results (Run), grouped by query,
// laid out the way trec_eval 10.0 orders them.
//
// Ordering contract (what makes our numbers equal trec_eval's):
// - Queries are sorted by qid with strcmp (byte-wise, unsigned), which is the
//   order trec_eval evaluates and prints them in.
// - Qrels: each query's judgments are sorted by docno, strcmp ascending.
// - Run: each query's documents are in trec_eval rank order: score
//   descending, ties broken by docno strcmp DESCENDING (form_res_rels.c,
//   comp_sim_docno). The rank column of a run file is ignored, as in
//   trec_eval. NaN scores (trec_eval leaves their order to qsort) rank after
//   every number, among themselves by docno descending.
//
// Storage: docno/qid strings are std::string_view into `storage`, which is
// either the file buffer the reader parsed (mmap or heap) or the builder's
// arena; copies of a Qrels/Run share it. Arrays are flat, row i of a query
// spans [offsets[q], offsets[q+1]). The per-line arrays are BigVectors
// (big_vector.h): resize() leaves them uninitialised for the parallel fill.
//
// Duplicates: trec_eval refuses a query with a duplicate docno in its
// judgments or its results ("duplicate docs"). We refuse at construction:
// the builders throw ValueError, the readers FormatError, naming qid and docno.
// (trec_eval only notices when it evaluates that query, and for results only
// within the first -M docs; we are stricter.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/arena.h"
#include "metrics/big_vector.h"

namespace ragkernels {
namespace metrics {

struct Qrels {
  std::shared_ptr<const void> storage;   // keeps the string bytes alive
  std::vector<std::string_view> qids;    // strcmp ascending, unique
  std::vector<int64_t> offsets;          // qids.size() + 1
  detail::BigVector<std::string_view> docnos;  // per query strcmp ascending, unique
  detail::BigVector<int64_t> rels;            // judgment per docno (may be < 0)
  // Open-addressing lookup, per query: slot -> (hash tag << 32) | (local index + 1).
  std::vector<int64_t> table_offsets;    // qids.size() + 1; sizes are powers of 2
  detail::BigVector<uint64_t> table;

  int64_t num_queries() const { return static_cast<int64_t>(qids.size()); }
  int64_t size() const { return static_cast<int64_t>(docnos.size()); }
  // Index of `qid` in qids, or -1. O(log n).
  int64_t find_query(std::string_view qid) const;
  // Global index (into docnos/rels) of `docno` within query q, or -1. O(1).
  int64_t find_doc(int64_t q, std::string_view docno) const;
};

struct Run {
  std::shared_ptr<const void> storage;
  std::vector<std::string_view> qids;    // strcmp ascending, unique
  std::vector<int64_t> offsets;          // qids.size() + 1
  detail::BigVector<std::string_view> docnos;  // per query in trec_eval rank order
  detail::BigVector<double> scores;           // aligned with docnos
  // trec_eval prints the tag of the LAST content line of the run file (it
  // keeps overwriting it while reading, get_trec_results.c); "" when built
  // from memory unless given to RunBuilder::finish.
  std::string runid;

  int64_t num_queries() const { return static_cast<int64_t>(qids.size()); }
  int64_t size() const { return static_cast<int64_t>(docnos.size()); }
  int64_t find_query(std::string_view qid) const;
};

inline int64_t Qrels::find_doc(int64_t q, std::string_view docno) const {
  const uint64_t* t = table.data() + table_offsets[q];
  const uint64_t mask = static_cast<uint64_t>(table_offsets[q + 1] - table_offsets[q] - 1);
  const uint64_t h = detail::hash_bytes(docno);
  for (uint64_t slot = h & mask;; slot = (slot + 1) & mask) {
    const uint64_t e = t[slot];
    if (e == 0) return -1;
    if ((e >> 32) == (h >> 32)) {
      const int64_t i = offsets[q] + static_cast<int64_t>(e & 0xffffffffULL) - 1;
      if (detail::same_text(docnos[i], docno)) return i;
    }
  }
}

// Collects judgments in any order; finish() groups, sorts and indexes them.
class QrelsBuilder {
 public:
  QrelsBuilder();
  ~QrelsBuilder();
  QrelsBuilder(QrelsBuilder&&) noexcept;
  QrelsBuilder& operator=(QrelsBuilder&&) noexcept;
  void add(std::string_view qid, std::string_view docno, int64_t rel);
  // Ids are written as decimal strings, so ties and lookups behave exactly as
  // trec_eval on str(id).
  void add(int64_t qid, int64_t docno, int64_t rel);
  void reserve(int64_t n);
  // Throws ValueError on a duplicate (qid, docno), naming both. The builder
  // is empty afterwards.
  Qrels finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Collects retrieved documents in any order; finish() groups them by query
// and sorts each query into trec_eval rank order.
class RunBuilder {
 public:
  RunBuilder();
  ~RunBuilder();
  RunBuilder(RunBuilder&&) noexcept;
  RunBuilder& operator=(RunBuilder&&) noexcept;
  void add(std::string_view qid, std::string_view docno, double score);
  void add(int64_t qid, int64_t docno, double score);
  void reserve(int64_t n);
  // Throws ValueError on a docno retrieved twice for one query (trec_eval:
  // "duplicate docs"), naming qid and docno. The builder is empty afterwards.
  Run finish(std::string runid = "");

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace metrics
}  // namespace ragkernels
