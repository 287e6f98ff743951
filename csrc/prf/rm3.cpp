#include "prf/rm3.h"

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::prf {

void check_rm3_params(const Rm3Params& p) {
  RK_CHECK_ARG(p.fb_docs >= 1, "rm3: fb_docs must be >= 1, got ", p.fb_docs);
  RK_CHECK_ARG(p.fb_terms >= 1, "rm3: fb_terms must be >= 1, got ", p.fb_terms);
  RK_CHECK_ARG(p.original_weight >= 0 && p.original_weight <= 1, "rm3: original_weight must be in [0, 1], got ",
               p.original_weight);
  RK_CHECK_ARG(p.max_df_ratio >= 0 && p.max_df_ratio <= 1, "rm3: max_df_ratio must be in [0, 1], got ",
               p.max_df_ratio);
}

void check_feedback_run(const char* op, ConstView2<int64_t> docs, ConstView2<float> scores, uint64_t num_docs,
                        size_t num_queries) {
  RK_CHECK_ARG(static_cast<size_t>(docs.rows) == num_queries, op, ": docs must have one row per query (",
               num_queries, "), got ", docs.rows);
  RK_CHECK_ARG(scores.rows == docs.rows && scores.cols == docs.cols, op, ": scores must have the shape of docs (",
               docs.rows, ", ", docs.cols, "), got (", scores.rows, ", ", scores.cols, ")");
  for (int64_t q = 0; q < docs.rows; ++q) {
    for (int64_t j = 0; j < docs.cols; ++j) {
      const int64_t d = docs(q, j);
      RK_CHECK_ARG(d >= -1 && d < static_cast<int64_t>(num_docs), op, ": docs[", q, ", ", j, "] = ", d,
                   " is not a document of the index (0..", num_docs, ") nor -1");
      RK_CHECK_ARG(d < 0 || std::isfinite(scores(q, j)), op, ": scores[", q, ", ", j, "] must be finite, got ",
                   scores(q, j));
    }
  }
}

namespace {

// Steps 1-2: the relevance model of one query's feedback docs.
FeatureVector relevance_model(const ForwardIndex& forward, const std::vector<uint8_t>& keep, View1<const int64_t> docs,
                              View1<const float> scores, const Rm3Params& p) {
  const size_t fb_terms = static_cast<size_t>(p.fb_terms);
  std::vector<FeatureVector> vectors;
  std::vector<float> doc_scores;
  const int64_t depth = std::min<int64_t>(docs.size, p.fb_docs);
  for (int64_t j = 0; j < depth; ++j) {
    if (docs[j] < 0) continue;
    const uint64_t doc = static_cast<uint64_t>(docs[j]);
    FeatureVector v;
    const uint32_t* terms = forward.terms(doc);
    const uint32_t* tfs = forward.tfs(doc);
    for (uint64_t i = 0; i < forward.size(doc); ++i) {
      if (keep[terms[i]]) v.push_back({terms[i], static_cast<float>(tfs[i])});
    }
    prune_to_size(v, fb_terms);
    vectors.push_back(std::move(v));
    doc_scores.push_back(scores[j]);
  }
  const std::vector<uint32_t> vocab = union_terms(vectors);
  std::vector<float> weights(vocab.size(), 0.0f);
  for (size_t i = 0; i < vectors.size(); ++i) {
    const float norm = static_cast<float>(l1_norm(vectors[i]));
    // Anserini skips feedback docs left empty by the filters (their norm is 0).
    if (!(norm > 0.001f)) continue;
    for (const WeightedTerm& t : vectors[i]) {
      // Java: fbWeight += (weight / norm) * score, all float; terms absent
      // from doc i add (0 / norm) * score = 0 there, which changes nothing.
      const float ratio = t.weight / norm;
      const float contribution = ratio * doc_scores[i];
      weights[slot_of(vocab, t.term)] += contribution;
    }
  }
  FeatureVector model(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) model[i] = {vocab[i], weights[i]};
  prune_to_size(model, fb_terms);
  scale(model, l1_norm(model));
  return model;
}

// Steps 3-4: FeatureVector.interpolate(query, model, w).
FeatureVector interpolate(const QueryCounts& query, const FeatureVector& model, float w) {
  FeatureVector q = query.known;
  scale(q, query.l1);
  std::vector<FeatureVector> both{q, model};
  const std::vector<uint32_t> vocab = union_terms(both);
  std::vector<float> x(vocab.size(), 0.0f), y(vocab.size(), 0.0f);
  for (const WeightedTerm& t : q) x[slot_of(vocab, t.term)] = t.weight;
  for (const WeightedTerm& t : model) y[slot_of(vocab, t.term)] = t.weight;
  FeatureVector out;
  for (size_t i = 0; i < vocab.size(); ++i) {
    // Java: (float) (xWeight * x + (1.0 - xWeight) * y): the first product
    // in float32, the rest in float64.
    const float wx = w * x[i];
    const float weight = static_cast<float>(static_cast<double>(wx) + (1.0 - static_cast<double>(w)) * y[i]);
    if (weight > 0) out.push_back({vocab[i], weight});
  }
  sort_by_weight(out);
  return out;
}

}  // namespace

std::vector<FeatureVector> rm3(const ForwardIndex& forward, const std::vector<std::vector<int64_t>>& queries,
                               ConstView2<int64_t> docs, ConstView2<float> scores, const Rm3Params& params) {
  check_rm3_params(params);
  check_feedback_run("rm3", docs, scores, forward.num_docs(), queries.size());
  const float w = static_cast<float>(params.original_weight);  // Anserini's originalQueryWeight is a float
  const auto filter = forward.filter(params.filter_terms, /*ascii_only=*/true, static_cast<float>(params.max_df_ratio));
  const std::vector<uint8_t>& keep = *filter;
  std::vector<FeatureVector> out(queries.size());
  parallel_for(0, static_cast<int64_t>(queries.size()), [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; ++q) {
      const FeatureVector model = relevance_model(forward, keep, docs.row(q), scores.row(q), params);
      out[q] = interpolate(count_terms(queries[q]), model, w);
    }
  });
  return out;
}

}  // namespace ragkernels::prf
