#include "select/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"

namespace ragkernels::select {

namespace {

// The distinct query terms, sorted, behind a 4096-bit filter on the low id
// bits: most sentence terms are not query terms and stop at the filter.
struct QueryTermSet {
  std::vector<int64_t> terms;
  uint64_t filter[64] = {};

  void add(int64_t t) { filter[(t >> 6) & 63] |= uint64_t(1) << (t & 63); }
  bool maybe(int64_t t) const { return filter[(t >> 6) & 63] >> (t & 63) & 1; }
  // Index of `term` in terms, or -1.
  int64_t slot_of(int64_t term) const {
    if (term < 0 || !maybe(term)) return -1;
    const auto it = std::lower_bound(terms.begin(), terms.end(), term);
    return it != terms.end() && *it == term ? it - terms.begin() : -1;
  }
};

}  // namespace

void sentence_bm25_one(const Ragged& queries, int64_t g, const Ragged& sentences, int64_t first, int64_t n,
                       double k1, double b, const Bm25Stats* stats, double* out) {
  QueryTermSet q;
  for (int64_t p = queries.begin(g); p < queries.end(g); ++p) {
    if (queries.values[p] >= 0) q.terms.push_back(queries.values[p]);
  }
  std::sort(q.terms.begin(), q.terms.end());
  q.terms.erase(std::unique(q.terms.begin(), q.terms.end()), q.terms.end());
  for (const int64_t t : q.terms) q.add(t);
  const auto nt = static_cast<int64_t>(q.terms.size());
  // tf(i, j): occurrences of query term j in sentence first + i, one pass.
  std::vector<int32_t> tf(static_cast<size_t>(n * nt), 0);
  std::vector<double> dl(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = first + i;
    dl[i] = static_cast<double>(sentences.end(s) - sentences.begin(s));
    if (nt == 0) continue;
    for (int64_t p = sentences.begin(s); p < sentences.end(s); ++p) {
      const int64_t slot = q.slot_of(sentences.values[p]);
      if (slot >= 0) ++tf[i * nt + slot];
    }
  }
  std::vector<double> df(static_cast<size_t>(nt), 0.0);
  double total_len = 0;
  for (int64_t i = 0; i < n; ++i) total_len += dl[i];
  double num_docs = static_cast<double>(n);
  double avgdl = n > 0 ? total_len / num_docs : 0.0;
  if (stats != nullptr) {
    for (int64_t j = 0; j < nt; ++j) {
      df[j] = q.terms[j] < stats->df.size ? static_cast<double>(stats->df[q.terms[j]]) : 0;
    }
    num_docs = stats->num_docs;
    if (stats->avgdl > 0) avgdl = stats->avgdl;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < nt; ++j) df[j] += tf[i * nt + j] > 0 ? 1.0 : 0.0;
    }
  }
  std::vector<double> idf(static_cast<size_t>(nt));
  for (int64_t j = 0; j < nt; ++j) idf[j] = std::log(1.0 + (num_docs - df[j] + 0.5) / (df[j] + 0.5));
  // Query occurrences as slots, in query order (a repeat adds again).
  std::vector<int64_t> occurrences;
  for (int64_t p = queries.begin(g); p < queries.end(g); ++p) {
    if (queries.values[p] >= 0) occurrences.push_back(q.slot_of(queries.values[p]));
  }
  for (int64_t i = 0; i < n; ++i) {
    double score = 0;
    for (const int64_t j : occurrences) {
      if (tf[i * nt + j] == 0) continue;
      const auto t = static_cast<double>(tf[i * nt + j]);
      score += idf[j] * t / (t + k1 * (1 - b + b * dl[i] / avgdl));
    }
    out[i] = score;
  }
}

namespace {

double cosine(const float* x, double x_norm, const float* y, double y_norm, int64_t dim) {
  if (x_norm == 0 || y_norm == 0) return 0.0;
  const double c = dot(x, y, dim) / (x_norm * y_norm);
  return std::min(1.0, std::max(-1.0, c));
}

}  // namespace

void sentence_bm25(const Ragged& query_terms, const Ragged& sentence_terms, ConstView1<int64_t> groups, double k1,
                   double b, const Bm25Stats* stats, View1<double> out) {
  parallel_for(0, groups.size - 1, [&](int64_t lo, int64_t hi) {
    std::vector<double> scores;
    for (int64_t g = lo; g < hi; ++g) {
      scores.resize(static_cast<size_t>(groups[g + 1] - groups[g]));
      sentence_bm25_one(query_terms, g, sentence_terms, groups[g], groups[g + 1] - groups[g], k1, b, stats,
                        scores.data());
      for (int64_t s = groups[g]; s < groups[g + 1]; ++s) out[s] = scores[s - groups[g]];
    }
  });
}

// An AVX2 clone where the processor has it (no FMA: each lane multiplies
// and adds separately, so every clone returns the same bits).
RK_TARGET_CLONES double dot(const float* x, const float* y, int64_t dim) {
  // 16 independent lanes: the compiler vectorizes them and the additions
  // do not wait on one another; the order is fixed, so is the result.
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(x[i + l]) * static_cast<double>(y[i + l]);
  }
  for (int l = 0; i < dim; ++i, ++l) acc[l] += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  }
  return acc[0];
}

void sentence_cosine_one(const float* query, ConstView2<float> sentences, const double* norms, double* out) {
  const double q_norm = std::sqrt(dot(query, query, sentences.cols));
  for (int64_t s = 0; s < sentences.rows; ++s) {
    const float* x = &sentences(s, 0);
    const double x_norm = norms != nullptr ? norms[s] : std::sqrt(dot(x, x, sentences.cols));
    out[s] = cosine(query, q_norm, x, x_norm, sentences.cols);
  }
}

void passage_cosine_one(const float* query, ConstView2<float> sentences, ConstView1<int64_t> passages,
                        double* out) {
  const int64_t n = sentences.rows, dim = sentences.cols;
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = passages[i];
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  // sums(p, j): float64 sum of component j over passage ids[p]'s rows.
  std::vector<double> sums(ids.size() * static_cast<size_t>(dim), 0.0);
  std::vector<size_t> slot(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    slot[i] = static_cast<size_t>(std::lower_bound(ids.begin(), ids.end(), passages[i]) - ids.begin());
    double* sum = sums.data() + slot[i] * dim;
    const float* x = &sentences(i, 0);
    for (int64_t j = 0; j < dim; ++j) sum[j] += static_cast<double>(x[j]);
  }
  double q_norm = 0;
  for (int64_t j = 0; j < dim; ++j) q_norm += static_cast<double>(query[j]) * static_cast<double>(query[j]);
  q_norm = std::sqrt(q_norm);
  std::vector<double> value(ids.size());
  for (size_t p = 0; p < ids.size(); ++p) {
    const double* sum = sums.data() + p * dim;
    double d = 0, s_norm = 0;
    for (int64_t j = 0; j < dim; ++j) {
      d += static_cast<double>(query[j]) * sum[j];
      s_norm += sum[j] * sum[j];
    }
    s_norm = std::sqrt(s_norm);
    value[p] = q_norm == 0 || s_norm == 0 ? 0.0 : std::min(1.0, std::max(-1.0, d / (q_norm * s_norm)));
  }
  for (int64_t i = 0; i < n; ++i) out[i] = value[slot[i]];
}

void row_norms(ConstView2<float> rows, double* out) {
  for (int64_t i = 0; i < rows.rows; ++i) out[i] = std::sqrt(dot(&rows(i, 0), &rows(i, 0), rows.cols));
}

int64_t first_non_finite(const float* data, int64_t n) {
  uint32_t any = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, data + i, sizeof(bits));
    any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  if (any == 0) return -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) return i;
  }
  return -1;
}

void sentence_cosine(ConstView2<float> queries, ConstView2<float> sentences, ConstView1<int64_t> groups,
                     View1<double> out) {
  const int64_t dim = sentences.cols;
  parallel_for(0, groups.size - 1, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t n = groups[g + 1] - groups[g];
      if (n == 0) continue;
      std::vector<double> scores(static_cast<size_t>(n));
      const ConstView2<float> rows{&sentences(groups[g], 0), n, dim, sentences.row_stride, 1};
      sentence_cosine_one(&queries(g, 0), rows, nullptr, scores.data());
      for (int64_t i = 0; i < n; ++i) out[groups[g] + i] = scores[i];
    }
  });
}

void position_prior(ConstView1<int64_t> positions, View1<double> out) {
  for (int64_t i = 0; i < positions.size; ++i) out[i] = 1.0 / (1.0 + static_cast<double>(positions[i]));
}

void combine_one(const double* const* columns, const double* weights, int64_t num_columns, int64_t n, Norm norm,
                 double* out) {
  std::fill(out, out + n, 0.0);
  double total_weight = 0;
  for (int64_t k = 0; k < num_columns; ++k) {
    if (columns[k] == nullptr || !(weights[k] > 0)) continue;
    total_weight += weights[k];
    const double* col = columns[k];
    double lo = col[0], hi = col[0];
    for (int64_t i = 1; i < n; ++i) {
      lo = std::min(lo, col[i]);
      hi = std::max(hi, col[i]);
    }
    if (norm == Norm::kMax) {
      if (!(hi > 0)) continue;  // nothing scored above 0: no information
      for (int64_t i = 0; i < n; ++i) out[i] += weights[k] * (col[i] / hi);
      continue;
    }
    if (hi == lo) continue;  // a constant column carries no information: 0
    for (int64_t i = 0; i < n; ++i) out[i] += weights[k] * ((col[i] - lo) / (hi - lo));
  }
  if (total_weight > 0) {
    for (int64_t i = 0; i < n; ++i) out[i] /= total_weight;
  }
}

void combine_scores(ConstView2<double> scores, ConstView1<double> weights, ConstView1<int64_t> groups, Norm norm,
                    View1<double> out) {
  const int64_t num_columns = scores.rows;
  parallel_for(0, groups.size - 1, [&](int64_t lo, int64_t hi) {
    std::vector<std::vector<double>> cols(static_cast<size_t>(num_columns));
    std::vector<const double*> ptrs(static_cast<size_t>(num_columns));
    std::vector<double> w(static_cast<size_t>(num_columns)), result;
    for (int64_t k = 0; k < num_columns; ++k) w[k] = weights[k];
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t s0 = groups[g], n = groups[g + 1] - s0;
      if (n == 0) continue;
      for (int64_t k = 0; k < num_columns; ++k) {
        cols[k].resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) cols[k][i] = scores(k, s0 + i);
        ptrs[k] = cols[k].data();
      }
      result.resize(static_cast<size_t>(n));
      combine_one(ptrs.data(), w.data(), num_columns, n, norm, result.data());
      for (int64_t i = 0; i < n; ++i) out[s0 + i] = result[i];
    }
  });
}

}  // namespace ragkernels::select
