// BM25 variants, computed exactly as bm25s computes them (method names,
// formulas and floating-point steps of bm25s 0.3 under NumPy 2), following
// Kamphuis et al., "Which BM25 do you mean?" (ECIR 2020).
//
// bm25s stores one float32 score per posting: idf_f32 * tfc(tf, doc length),
// evaluated in float64 and rounded once (NumPy 2 promotes the float32 tf
// array against float64 scalars). BM25L and BM25+ give every document a score
// even without the term; bm25s stores score - nonoccurrence per posting and
// adds the query's summed nonoccurrence to every document at search time. We
// do the same, but rank only documents that contain at least one query term
// (see docs/architecture.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ragkernels::sparse {

enum class Bm25Method : uint32_t { robertson = 0, lucene = 1, atire = 2, bm25l = 3, bm25plus = 4 };

Bm25Method parse_bm25_method(std::string_view name);  // bm25s's names; "bm25+" for bm25plus
const char* bm25_method_name(Bm25Method method);

struct Bm25Params {
  Bm25Method method = Bm25Method::lucene;
  double k1 = 1.5;
  double b = 0.75;
  double delta = 0.5;  // BM25L and BM25+ only
};

// Throws ValueError for k1 < 0, b outside [0, 1], delta < 0 or any NaN.
void check_bm25_params(const Bm25Params& params);

// The idf of a term in df of n_docs documents, in float64 (bm25s keeps its
// float32 rounding in the index and this value for the nonoccurrence score).
double bm25_idf(Bm25Method method, uint64_t df, uint64_t n_docs);

// Per-document part of the tf component, computed once per document:
// k1 * ((1 - b) + b * dl / avgdl), or for BM25L (1 - b) + b * dl / avgdl.
double bm25_doc_norm(const Bm25Params& params, uint32_t doc_length, double avg_doc_length);

// The score bm25l/bm25+ give a term absent from a document (0 otherwise):
// the tf component at tf = 0 and dl = avgdl, where the length term drops out.
float bm25_nonoccurrence(const Bm25Params& params, double idf);

// The float32 score bm25s stores for one posting.
class Bm25Formula {
 public:
  explicit Bm25Formula(const Bm25Params& params);
  float operator()(float idf, float nonoccurrence, uint32_t tf, double doc_norm) const;

 private:
  Bm25Params params_;
  float k1_plus_1_f32_;  // NumPy 2 multiplies the float32 tf array by k1 + 1 in float32
};

// Inline: it runs once per scored posting.
inline float Bm25Formula::operator()(float idf, float nonoccurrence, uint32_t tf, double doc_norm) const {
  const double t = static_cast<double>(tf);
  const double idf64 = idf;
  switch (params_.method) {
    case Bm25Method::robertson:
    case Bm25Method::lucene:
      return static_cast<float>(idf64 * (t / (doc_norm + t)));
    case Bm25Method::atire: {
      const float numerator = static_cast<float>(tf) * k1_plus_1_f32_;
      return static_cast<float>(idf64 * (numerator / (t + doc_norm)));
    }
    case Bm25Method::bm25l: {
      const double c = t / doc_norm;
      const double tfc = ((params_.k1 + 1) * (c + params_.delta)) / ((params_.k1 + c) + params_.delta);
      return static_cast<float>(idf64 * tfc - static_cast<double>(nonoccurrence));
    }
    case Bm25Method::bm25plus: {
      const float numerator = k1_plus_1_f32_ * static_cast<float>(tf);
      const double tfc = numerator / (doc_norm + t) + params_.delta;
      return static_cast<float>(idf64 * tfc - static_cast<double>(nonoccurrence));
    }
  }
  return 0.0f;
}

}  // namespace ragkernels::sparse
