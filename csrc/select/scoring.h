// Clue scoring (issue 7 §2): each candidate sentence of a query scored by
// lexical BM25, dense cosine and position priors, then combined.
//
// Conventions of csrc/select. A batch holds Q queries; the candidate
// sentences of every query are concatenated, query g owning sentences
// [groups[g], groups[g+1]) (groups: (Q + 1,), groups[0] == 0,
// non-decreasing). Ragged term lists follow the same rule: list i is
// values[offsets[i], offsets[i+1]). Everything is computed in float64;
// queries run in parallel through parallel_for and each writes only its own
// slots, so results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "core/array_view.h"

namespace ragkernels::select {

// list i is values[offsets[i], offsets[i+1]); offsets: (n + 1,).
struct Ragged {
  ConstView1<int64_t> values;
  ConstView1<int64_t> offsets;
  int64_t size() const { return offsets.size - 1; }
  int64_t begin(int64_t i) const { return offsets[i]; }
  int64_t end(int64_t i) const { return offsets[i + 1]; }
};

// Corpus statistics supplied by the caller (e.g. a BM25Index's).
struct Bm25Stats {
  ConstView1<int64_t> df;  // documents holding term t, by term id; ids >= df.size: 0
  double num_docs = 0;     // >= 1, >= every df
  double avgdl = 0;        // > 0, or 0: the mean length of the query's own sentences
};

// Lucene BM25 (Lucene >= 8, bm25s "lucene") of each sentence against its
// query:
//   score(s) = sum over query term occurrences t with tf(t, s) > 0 of
//              idf(t) * tf / (tf + k1 * (1 - b + b * dl(s) / avgdl))
//   idf(t)   = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
// summed in the query's term order (a repeated query term counts once per
// occurrence, as rk.sparse.BM25Index does). dl(s) counts every id of s; a
// negative id (out of vocabulary) counts in dl but matches nothing, and
// negative query ids are skipped. stats == nullptr: statistics of the
// query's own sentences (N = their count, df = sentences of the query
// holding t, avgdl = their mean length; all empty: every score 0).
// query_terms: Q lists; sentence_terms: S lists; out: (S,).
void sentence_bm25(const Ragged& query_terms, const Ragged& sentence_terms, ConstView1<int64_t> groups,
                   double k1, double b, const Bm25Stats* stats, View1<double> out);

// sentence_bm25 for query `query` and sentences [first, first + n) only;
// writes out[0, n). Single-threaded (the fused pipeline's building block).
void sentence_bm25_one(const Ragged& query_terms, int64_t query, const Ragged& sentence_terms, int64_t first,
                       int64_t n, double k1, double b, const Bm25Stats* stats, double* out);

// Dot product of two float32 rows accumulated in float64 over 16 lanes (a
// fixed order, so the result is the same on every call).
double dot(const float* x, const float* y, int64_t dim);

// Cosine of every sentence embedding with its query's embedding,
// dot / (|q| |s|) clamped to [-1, 1]; 0 when either norm is 0.
// queries: (Q, d); sentences: (S, d); out: (S,).
void sentence_cosine(ConstView2<float> queries, ConstView2<float> sentences, ConstView1<int64_t> groups,
                     View1<double> out);

// sentence_cosine for one query vector (d,) against rows (n, d); out[0, n).
// norms: the rows' norms (sqrt of dot(x, x)), or null to compute them.
void sentence_cosine_one(const float* query, ConstView2<float> sentences, const double* norms, double* out);

// Cosine of the query with each sentence's passage: the sum of the
// embeddings of the passage's sentences (those of the n rows with the same
// passage id), accumulated in float64 in row order, then
// dot / (|q| |sum|) clamped to [-1, 1], 0 when a norm is 0. Every sentence
// of a passage gets its passage's value. A passage is scored from its
// sentences' embeddings alone: no model pass over whole passages.
// passages: (n,) int64 ids; out[0, n).
void passage_cosine_one(const float* query, ConstView2<float> sentences, ConstView1<int64_t> passages,
                        double* out);

// sqrt(dot(x, x)) of every row; out: (rows,).
void row_norms(ConstView2<float> rows, double* out);

// Index of the first NaN or infinity of data[0, n), or -1 (a vectorized
// scan of the exponent bits first: validation runs on every call).
int64_t first_non_finite(const float* data, int64_t n);

// prior = 1 / (1 + position), position >= 0 (e.g. a sentence's position
// in its passage, or its passage's rank).
void position_prior(ConstView1<int64_t> positions, View1<double> out);

// Per-query normalization of a score column before combination.
//   kMinMax  (s - min) / (max - min); a constant column gives 0. In [0, 1];
//            the query's least relevant sentence gets 0.
//   kMax     s / max when max > 0, else 0: keeps a score's ratio to the
//            best, for scorers >= 0 (BM25, priors), where 0 means no match.
enum class Norm { kMinMax, kMax };

// Normalizes, within each query, every score column k with weights[k] > 0
// and returns their weighted mean sum_k w_k n_k(s) / sum_k w_k (in [0, 1]
// for kMinMax, and for kMax on scores >= 0). Columns with weight 0 are not
// read. scores: (K, S) finite; weights: (K,) finite, >= 0, not all 0;
// out: (S,).
void combine_scores(ConstView2<double> scores, ConstView1<double> weights, ConstView1<int64_t> groups, Norm norm,
                    View1<double> out);

// The same for one query's n sentences, columns given as pointers (null or
// weight 0: skipped). Used by the fused pipeline.
void combine_one(const double* const* columns, const double* weights, int64_t num_columns, int64_t n, Norm norm,
                 double* out);

}  // namespace ragkernels::select
