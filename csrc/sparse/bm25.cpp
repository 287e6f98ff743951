#include "sparse/bm25.h"

#include <cmath>

#include "core/error.h"

namespace ragkernels::sparse {

Bm25Method parse_bm25_method(std::string_view name) {
  if (name == "robertson") return Bm25Method::robertson;
  if (name == "lucene") return Bm25Method::lucene;
  if (name == "atire") return Bm25Method::atire;
  if (name == "bm25l") return Bm25Method::bm25l;
  if (name == "bm25+" || name == "bm25plus") return Bm25Method::bm25plus;
  throw ValueError(detail::message("method must be one of 'robertson', 'lucene', 'atire', 'bm25l', 'bm25+'; got '",
                                   name, "'"));
}

const char* bm25_method_name(Bm25Method method) {
  switch (method) {
    case Bm25Method::robertson: return "robertson";
    case Bm25Method::lucene: return "lucene";
    case Bm25Method::atire: return "atire";
    case Bm25Method::bm25l: return "bm25l";
    case Bm25Method::bm25plus: return "bm25+";
  }
  return "unknown";
}

void check_bm25_params(const Bm25Params& p) {
  RK_CHECK_ARG(std::isfinite(p.k1) && p.k1 >= 0, "k1 must be a finite number >= 0, got ", p.k1);
  RK_CHECK_ARG(std::isfinite(p.b) && p.b >= 0 && p.b <= 1, "b must be in [0, 1], got ", p.b);
  RK_CHECK_ARG(std::isfinite(p.delta) && p.delta >= 0, "delta must be a finite number >= 0, got ", p.delta);
}

double bm25_idf(Bm25Method method, uint64_t df, uint64_t n_docs) {
  const double N = static_cast<double>(n_docs), d = static_cast<double>(df);
  switch (method) {
    case Bm25Method::robertson: {
      const double inner = (N - d + 0.5) / (d + 0.5);
      return std::log(inner < 1 ? 1.0 : inner);  // bm25s clamps negative idf to 0
    }
    case Bm25Method::lucene: return std::log(1 + (N - d + 0.5) / (d + 0.5));
    case Bm25Method::atire: return std::log(N / d);
    case Bm25Method::bm25l: return std::log((N + 1) / (d + 0.5));
    case Bm25Method::bm25plus: return std::log((N + 1) / d);
  }
  return 0;
}

double bm25_doc_norm(const Bm25Params& p, uint32_t doc_length, double avg_doc_length) {
  // Python evaluates b * dl / avgdl left to right: (b * dl) / avgdl.
  const double ratio = avg_doc_length > 0 ? p.b * static_cast<double>(doc_length) / avg_doc_length : 0.0;
  const double length_norm = (1 - p.b) + ratio;
  return p.method == Bm25Method::bm25l ? length_norm : p.k1 * length_norm;
}

float bm25_nonoccurrence(const Bm25Params& p, double idf) {
  switch (p.method) {
    case Bm25Method::bm25l: return static_cast<float>(idf * (((p.k1 + 1) * (0.0 + p.delta)) / ((p.k1 + 0.0) + p.delta)));
    case Bm25Method::bm25plus: return static_cast<float>(idf * p.delta);
    default: return 0.0f;
  }
}

Bm25Formula::Bm25Formula(const Bm25Params& params)
    : params_(params), k1_plus_1_f32_(static_cast<float>(params.k1 + 1)) {}

}  // namespace ragkernels::sparse
