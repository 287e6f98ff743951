#include "prf/rocchio.h"

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::prf {

void check_rocchio_params(const RocchioParams& p) {
  RK_CHECK_ARG(p.fb_docs >= 1, "rocchio: fb_docs must be >= 1, got ", p.fb_docs);
  RK_CHECK_ARG(p.fb_terms >= 1, "rocchio: fb_terms must be >= 1, got ", p.fb_terms);
  RK_CHECK_ARG(std::isfinite(p.alpha) && p.alpha >= 0, "rocchio: alpha must be finite and >= 0, got ", p.alpha);
  RK_CHECK_ARG(std::isfinite(p.beta) && p.beta >= 0, "rocchio: beta must be finite and >= 0, got ", p.beta);
  RK_CHECK_ARG(p.max_df_ratio >= 0 && p.max_df_ratio <= 1, "rocchio: max_df_ratio must be in [0, 1], got ",
               p.max_df_ratio);
}

namespace {

// Steps 1-2: computeMeanOfDocumentVectors of one query's feedback docs.
FeatureVector mean_doc_vector(const ForwardIndex& forward, const std::vector<uint8_t>& keep,
                              View1<const int64_t> docs, const RocchioParams& p) {
  std::vector<FeatureVector> vectors;
  const int64_t depth = std::min<int64_t>(docs.size, p.fb_docs);
  for (int64_t j = 0; j < depth; ++j) {
    if (docs[j] < 0) continue;
    const uint64_t doc = static_cast<uint64_t>(docs[j]);
    FeatureVector v;
    for (uint64_t i = 0; i < forward.size(doc); ++i) {
      const uint32_t term = forward.terms(doc)[i];
      if (keep[term]) v.push_back({term, static_cast<float>(forward.tfs(doc)[i])});
    }
    vectors.push_back(std::move(v));
  }
  const std::vector<uint32_t> vocab = union_terms(vectors);
  std::vector<float> sums(vocab.size(), 0.0f);
  for (const FeatureVector& v : vectors) {
    const float norm = static_cast<float>(l2_norm(v));
    if (!(norm > 0.001f)) continue;  // a doc the filters left empty
    for (const WeightedTerm& t : v) sums[slot_of(vocab, t.term)] += t.weight / norm;
  }
  // Java: termWeight / docvectors.size(), a float divided by an int (as float);
  // the count includes the empty docs skipped above.
  const float n = static_cast<float>(vectors.size());
  FeatureVector mean(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) mean[i] = {vocab[i], sums[i] / n};
  prune_to_size(mean, static_cast<size_t>(p.fb_terms));
  scale(mean, l2_norm(mean));
  return mean;
}

// Steps 3-4: computeWeightedVector(query, mean, {}, alpha, beta, 0).
FeatureVector combine(const QueryCounts& query, const FeatureVector& mean, float alpha, float beta) {
  FeatureVector q = query.known;
  scale(q, query.l2);
  std::vector<FeatureVector> both{q, mean};
  const std::vector<uint32_t> vocab = union_terms(both);
  std::vector<float> a(vocab.size(), 0.0f), b(vocab.size(), 0.0f);
  for (const WeightedTerm& t : q) a[slot_of(vocab, t.term)] = t.weight;
  for (const WeightedTerm& t : mean) b[slot_of(vocab, t.term)] = t.weight;
  FeatureVector out;
  for (size_t i = 0; i < vocab.size(); ++i) {
    const float wa = alpha * a[i];  // Java: all float32
    const float wb = beta * b[i];
    const float weight = wa + wb;
    if (weight > 0) out.push_back({vocab[i], weight});
  }
  sort_by_weight(out);
  return out;
}

}  // namespace

std::vector<FeatureVector> rocchio(const ForwardIndex& forward, const std::vector<std::vector<int64_t>>& queries,
                                   ConstView2<int64_t> docs, const RocchioParams& params) {
  check_rocchio_params(params);
  RK_CHECK_ARG(static_cast<size_t>(docs.rows) == queries.size(), "rocchio: docs must have one row per query (",
               queries.size(), "), got ", docs.rows);
  for (int64_t q = 0; q < docs.rows; ++q) {
    for (int64_t j = 0; j < docs.cols; ++j) {
      RK_CHECK_ARG(docs(q, j) >= -1 && docs(q, j) < static_cast<int64_t>(forward.num_docs()), "rocchio: docs[", q,
                   ", ", j, "] = ", docs(q, j), " is not a document of the index (0..", forward.num_docs(),
                   ") nor -1");
    }
  }
  const auto filter = forward.filter(/*check_chars=*/true, /*ascii_only=*/false, static_cast<float>(params.max_df_ratio));
  const std::vector<uint8_t>& keep = *filter;
  const float alpha = static_cast<float>(params.alpha);
  const float beta = static_cast<float>(params.beta);
  std::vector<FeatureVector> out(queries.size());
  parallel_for(0, static_cast<int64_t>(queries.size()), [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; ++q) {
      out[q] = combine(count_terms(queries[q]), mean_doc_vector(forward, keep, docs.row(q), params), alpha, beta);
    }
  });
  return out;
}

}  // namespace ragkernels::prf
