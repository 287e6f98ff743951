// Bindings of csrc/select: validation and conversion only. Every op takes a
// batch of queries whose candidate sentences are concatenated (`groups`,
// (Q + 1,) offsets); ragged term lists come as (values, offsets) int64
// pairs. The GIL is released while the core runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/checks.h"
#include "select/mmr.h"
#include "select/scoring.h"
#include "select/select_clues.h"
#include "select/truncate.h"

namespace ragkernels::bindings {

namespace {

namespace sel = ragkernels::select;

// A 1-D array of T viewed in place (TypeError for another dtype).
template <typename T>
ConstView1<T> vec(const py::handle& obj, std::vector<py::array>& keep, const char* op, const char* arg,
                  const char* dtype) {
  py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<T>(a), op, ": ", arg, " must be ", dtype, ", got ", describe(a));
  const auto v = view1<T>(a, op, arg);
  keep.push_back(std::move(a));
  return v;
}

ConstView1<int64_t> ints(const py::handle& obj, std::vector<py::array>& keep, const char* op, const char* arg) {
  return vec<int64_t>(obj, keep, op, arg, "int64");
}

ConstView1<double> floats(const py::handle& obj, std::vector<py::array>& keep, const char* op, const char* arg) {
  const auto v = vec<double>(obj, keep, op, arg, "float64");
  for (int64_t i = 0; i < v.size; ++i) {
    RK_CHECK_ARG(std::isfinite(v[i]), op, ": ", arg, "[", i, "] = ", v[i], " is not finite");
  }
  return v;
}

void check_size(int64_t size, int64_t expected, const char* op, const char* arg, const char* what) {
  RK_CHECK_ARG(size == expected, op, ": ", arg, " must have ", expected, " entries (", what, "), got ", size);
}

void check_non_negative(ConstView1<int64_t> v, const char* op, const char* arg) {
  for (int64_t i = 0; i < v.size; ++i) {
    RK_CHECK_ARG(v[i] >= 0, op, ": ", arg, "[", i, "] = ", v[i], " is negative");
  }
}

// offsets[0] == 0, non-decreasing, last == n.
void check_offsets(ConstView1<int64_t> o, int64_t n, const char* op, const char* arg) {
  RK_CHECK_ARG(o.size >= 1, op, ": ", arg, " must hold at least one entry (0)");
  RK_CHECK_ARG(o[0] == 0, op, ": ", arg, "[0] must be 0, got ", o[0]);
  for (int64_t i = 1; i < o.size; ++i) {
    RK_CHECK_ARG(o[i] >= o[i - 1], op, ": ", arg, "[", i, "] = ", o[i], " is less than ", arg, "[", i - 1,
                 "] = ", o[i - 1], "; offsets must be non-decreasing");
  }
  RK_CHECK_ARG(o[o.size - 1] == n, op, ": ", arg, "[-1] must equal ", n, " (the number of entries), got ",
               o[o.size - 1]);
}

sel::Ragged ragged(const py::handle& values, const py::handle& offsets, std::vector<py::array>& keep,
                   const char* op, const char* values_arg, const char* offsets_arg) {
  sel::Ragged r{ints(values, keep, op, values_arg), ints(offsets, keep, op, offsets_arg)};
  check_offsets(r.offsets, r.values.size, op, offsets_arg);
  return r;
}

ConstView1<int64_t> groups_of(const py::handle& obj, int64_t num_sentences, std::vector<py::array>& keep,
                              const char* op) {
  const auto g = ints(obj, keep, op, "groups");
  check_offsets(g, num_sentences, op, "groups");
  return g;
}

// A C-contiguous float32 matrix of `rows` rows (and `dim` columns if >= 0).
ConstView2<float> embeddings(const py::handle& obj, int64_t rows, int64_t dim, std::vector<py::array>& keep,
                             const char* op, const char* arg) {
  py::array a = as_ndarray(obj, op, arg);
  RK_CHECK_TYPE(has_dtype<float>(a), op, ": ", arg, " must be float32, got ", describe(a),
                "; convert with .astype(numpy.float32)");
  RK_CHECK_ARG(a.ndim() == 2 && (a.flags() & py::array::c_style), op, ": ", arg,
               " must be a C-contiguous 2-D array, got ", describe(a));
  RK_CHECK_ARG(a.shape(0) == rows, op, ": ", arg, " must have ", rows, " rows (one per ",
               std::string(arg).find("query") != std::string::npos ? "query" : "sentence", "), got ", describe(a));
  RK_CHECK_ARG(dim < 0 || a.shape(1) == dim, op, ": ", arg, " must have dimension ", dim, ", got ", describe(a));
  const auto v = make_view2(static_cast<const float*>(a.data()), a.shape(0), a.shape(1));
  const int64_t bad = sel::first_non_finite(v.data, v.rows * v.cols);
  RK_CHECK_ARG(bad < 0, op, ": ", arg, "[", bad / std::max<int64_t>(v.cols, 1), ", ",
               bad % std::max<int64_t>(v.cols, 1), "] is not finite");
  keep.push_back(std::move(a));
  return v;
}

template <typename T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

void check_bm25_params(double k1, double b, const char* op) {
  RK_CHECK_ARG(std::isfinite(k1) && k1 >= 0, op, ": k1 must be finite and >= 0, got ", k1);
  RK_CHECK_ARG(b >= 0 && b <= 1, op, ": b must be in [0, 1], got ", b);
}

// Supplied statistics, or none (df is None).
bool bm25_stats(const py::object& df, const py::object& num_docs, const py::object& avgdl, sel::Bm25Stats& stats,
                std::vector<py::array>& keep, const char* op) {
  if (df.is_none()) {
    RK_CHECK_ARG(num_docs.is_none() && avgdl.is_none(), op,
                 ": num_docs and avgdl come with df (corpus statistics); pass df and num_docs (and avgdl)");
    return false;
  }
  RK_CHECK_ARG(!num_docs.is_none(), op, ": df needs num_docs too");
  stats.df = ints(df, keep, op, "df");
  stats.num_docs = num_docs.cast<double>();
  RK_CHECK_ARG(stats.num_docs >= 1, op, ": num_docs must be >= 1, got ", stats.num_docs);
  if (!avgdl.is_none()) {  // None: each query's sentences' mean length
    stats.avgdl = avgdl.cast<double>();
    RK_CHECK_ARG(std::isfinite(stats.avgdl) && stats.avgdl > 0, op, ": avgdl must be finite and > 0, got ",
                 stats.avgdl);
  }
  for (int64_t i = 0; i < stats.df.size; ++i) {
    RK_CHECK_ARG(stats.df[i] >= 0 && static_cast<double>(stats.df[i]) <= stats.num_docs, op, ": df[", i, "] = ",
                 stats.df[i], " is outside [0, num_docs = ", stats.num_docs, "]");
  }
  return true;
}

sel::Norm parse_norm(const std::string& name, const char* op) {
  if (name == "min-max") return sel::Norm::kMinMax;
  if (name == "max") return sel::Norm::kMax;
  throw ValueError(detail::message(op, ": normalization must be \"min-max\" or \"max\", got \"", name, "\""));
}

void check_lambda(double lambda, const char* op) {
  RK_CHECK_ARG(lambda >= 0 && lambda <= 1, op, ": mmr_lambda must be in [0, 1], got ", lambda);
}

sel::TruncateConfig truncate_config(const py::object& budget, const py::object& sufficiency, const std::string& order,
                                    int64_t max_dp_cells, const char* op) {
  sel::TruncateConfig c;
  if (!budget.is_none()) {
    c.budget = budget.cast<int64_t>();
    RK_CHECK_ARG(c.budget >= 1, op, ": budget must be >= 1 (tokens), got ", c.budget);
  }
  if (!sufficiency.is_none()) {
    c.sufficiency = sufficiency.cast<double>();
    RK_CHECK_ARG(c.sufficiency > 0 && c.sufficiency <= 1, op, ": sufficiency must be in (0, 1], got ",
                 c.sufficiency);
  }
  RK_CHECK_ARG(order == "rank" || order == "document", op, ": order must be \"rank\" or \"document\", got \"",
               order, "\"");
  c.document_order = order == "document";
  RK_CHECK_ARG(max_dp_cells >= 0, op, ": max_dp_cells must be >= 0, got ", max_dp_cells);
  c.max_dp_cells = max_dp_cells;
  return c;
}

py::array_t<double> select_bm25(py::handle q_values, py::handle q_offsets, py::handle s_values, py::handle s_offsets,
                                py::handle groups_obj, double k1, double b, const py::object& df,
                                const py::object& num_docs, const py::object& avgdl) {
  const char* op = "bm25";
  std::vector<py::array> keep;
  const auto q = ragged(q_values, q_offsets, keep, op, "query_terms", "query_offsets");
  const auto s = ragged(s_values, s_offsets, keep, op, "sentence_terms", "sentence_offsets");
  const auto groups = groups_of(groups_obj, s.size(), keep, op);
  check_size(q.size(), groups.size - 1, op, "query_offsets - 1", "one list per query");
  check_bm25_params(k1, b, op);
  sel::Bm25Stats stats;
  const bool supplied = bm25_stats(df, num_docs, avgdl, stats, keep, op);
  py::array_t<double> out(s.size());
  View1<double> ov{out.mutable_data(), s.size(), 1};
  {
    py::gil_scoped_release nogil;
    sel::sentence_bm25(q, s, groups, k1, b, supplied ? &stats : nullptr, ov);
  }
  return out;
}

py::array_t<double> select_cosine(py::handle queries_obj, py::handle sentences_obj, py::handle groups_obj) {
  const char* op = "cosine";
  std::vector<py::array> keep;
  const py::array sa = as_ndarray(sentences_obj, op, "sentence_embeddings");
  const int64_t rows = sa.ndim() == 2 ? sa.shape(0) : -1;
  const auto s = embeddings(sa, rows, -1, keep, op, "sentence_embeddings");
  const auto groups = groups_of(groups_obj, s.rows, keep, op);
  const auto q = embeddings(queries_obj, groups.size - 1, s.cols, keep, op, "query_embeddings");
  py::array_t<double> out(s.rows);
  View1<double> ov{out.mutable_data(), s.rows, 1};
  {
    py::gil_scoped_release nogil;
    sel::sentence_cosine(q, s, groups, ov);
  }
  return out;
}

py::array_t<double> select_combine(py::handle scores_obj, py::handle weights_obj, py::handle groups_obj,
                                   const std::string& normalization) {
  const char* op = "combine_scores";
  const sel::Norm norm = parse_norm(normalization, op);
  std::vector<py::array> keep;
  py::array sa = as_ndarray(scores_obj, op, "scores");
  RK_CHECK_TYPE(has_dtype<double>(sa), op, ": scores must be float64, got ", describe(sa));
  const auto scores = view2<double>(sa, op, "scores");
  const auto weights = floats(weights_obj, keep, op, "weights");
  check_size(weights.size, scores.rows, op, "weights", "one per score column");
  double total = 0;
  for (int64_t k = 0; k < weights.size; ++k) {
    RK_CHECK_ARG(weights[k] >= 0, op, ": weights[", k, "] = ", weights[k], " is negative");
    total += weights[k];
  }
  RK_CHECK_ARG(total > 0, op, ": weights must not all be 0");
  const auto groups = groups_of(groups_obj, scores.cols, keep, op);
  for (int64_t k = 0; k < scores.rows; ++k) {
    for (int64_t i = 0; weights[k] > 0 && i < scores.cols; ++i) {
      RK_CHECK_ARG(std::isfinite(scores(k, i)), op, ": scores[", k, ", ", i, "] = ", scores(k, i),
                   " is not finite");
    }
  }
  py::array_t<double> out(scores.cols);
  View1<double> ov{out.mutable_data(), scores.cols, 1};
  {
    py::gil_scoped_release nogil;
    sel::combine_scores(scores, weights, groups, norm, ov);
  }
  return out;
}

py::tuple select_mmr(py::handle relevance_obj, const py::object& emb_obj, const py::object& t_values,
                     const py::object& t_offsets, py::handle groups_obj, double lambda, int64_t k) {
  const char* op = "mmr";
  std::vector<py::array> keep;
  const auto rel = floats(relevance_obj, keep, op, "relevance");
  RK_CHECK_ARG(rel.contiguous(), op, ": relevance must be contiguous");
  const auto groups = groups_of(groups_obj, rel.size, keep, op);
  check_lambda(lambda, op);
  RK_CHECK_ARG(k >= 1, op, ": k must be >= 1, got ", k);
  RK_CHECK_ARG(emb_obj.is_none() != t_values.is_none(), op,
               ": pass exactly one of embeddings and sentence_terms (the similarity)");
  ConstView2<float> emb{};
  sel::Ragged terms{};
  if (!emb_obj.is_none()) {
    emb = embeddings(emb_obj, rel.size, -1, keep, op, "embeddings");
  } else {
    terms = ragged(t_values, t_offsets, keep, op, "sentence_terms", "sentence_offsets");
    check_size(terms.size(), rel.size, op, "sentence_offsets - 1", "one list per sentence");
  }
  std::vector<sel::MmrResult> res;
  {
    py::gil_scoped_release nogil;
    sel::mmr_batch(rel, emb, &terms, groups, lambda, k, res);
  }
  std::vector<int64_t> order, offsets{0};
  std::vector<double> gains;
  for (const auto& r : res) {
    order.insert(order.end(), r.order.begin(), r.order.end());
    gains.insert(gains.end(), r.gains.begin(), r.gains.end());
    offsets.push_back(static_cast<int64_t>(order.size()));
  }
  return py::make_tuple(to_array(order), to_array(gains), to_array(offsets));
}

py::tuple select_truncate(py::handle ranked_obj, py::handle values_obj, py::handle rank_offsets_obj,
                          py::handle tokens_obj, py::handle groups_obj, const py::object& budget,
                          const py::object& sufficiency, const std::string& order, int64_t max_dp_cells) {
  const char* op = "truncate";
  std::vector<py::array> keep;
  const auto tokens = ints(tokens_obj, keep, op, "token_counts");
  check_non_negative(tokens, op, "token_counts");
  const auto groups = groups_of(groups_obj, tokens.size, keep, op);
  const auto ranked = ints(ranked_obj, keep, op, "ranked");
  const auto values = floats(values_obj, keep, op, "values");
  check_size(values.size, ranked.size, op, "values", "one per ranked entry");
  const auto ro = ints(rank_offsets_obj, keep, op, "rank_offsets");
  check_offsets(ro, ranked.size, op, "rank_offsets");
  check_size(ro.size, groups.size, op, "rank_offsets", "one more than the queries");
  for (int64_t g = 0; g + 1 < groups.size; ++g) {
    const int64_t n = groups[g + 1] - groups[g];
    std::vector<bool> seen(static_cast<size_t>(n));
    for (int64_t t = ro[g]; t < ro[g + 1]; ++t) {
      RK_CHECK_ARG(ranked[t] >= 0 && ranked[t] < n, op, ": ranked[", t, "] = ", ranked[t], " is out of range [0, ",
                   n, ") for query ", g);
      RK_CHECK_ARG(!seen[ranked[t]], op, ": ranked[", t, "] = ", ranked[t], " repeats a candidate of query ", g);
      seen[ranked[t]] = true;
      RK_CHECK_ARG(values[t] >= 0, op, ": values[", t, "] = ", values[t], " is negative");
    }
  }
  const sel::TruncateConfig config = truncate_config(budget, sufficiency, order, max_dp_cells, op);
  const std::vector<int64_t> r(ranked.data, ranked.data + ranked.size);
  const std::vector<double> v(values.data, values.data + values.size);
  const std::vector<int64_t> offs(ro.data, ro.data + ro.size);
  std::vector<std::vector<int64_t>> res;
  {
    py::gil_scoped_release nogil;
    sel::truncate_batch(r, v, offs, tokens, groups, config, res);
  }
  std::vector<int64_t> selected, offsets{0};
  for (const auto& c : res) {
    selected.insert(selected.end(), c.begin(), c.end());
    offsets.push_back(static_cast<int64_t>(selected.size()));
  }
  return py::make_tuple(to_array(selected), to_array(offsets));
}


// Arguments a positive weight (or the ranking, or the budget) needs.
void require(bool present, const char* op, const char* arg, const char* why) {
  RK_CHECK_ARG(present, op, ": ", arg, " is required ", why);
}

py::tuple select_clues(py::handle groups_obj, const py::object& q_values, const py::object& q_offsets,
                       const py::object& s_values, const py::object& s_offsets, const py::object& q_emb,
                       const py::object& s_emb, const py::object& positions, const py::object& passage_ranks,
                       const py::object& external, const py::object& tokens_obj, py::handle weights_obj,
                       const std::string& normalization, double k1, double b, const py::object& df, const py::object& num_docs, const py::object& avgdl,
                       double lambda, const py::object& max_picks, double temperature,
                       const std::string& similarity, const py::object& budget,
                       const py::object& sufficiency, const std::string& order, int64_t max_dp_cells) {
  const char* op = "select_clues";
  std::vector<py::array> keep;
  sel::ClueInputs in;
  sel::ClueConfig config;
  const auto g0 = ints(groups_obj, keep, op, "groups");
  RK_CHECK_ARG(g0.size >= 1, op, ": groups must hold at least one entry (0)");
  const int64_t ns = g0[g0.size - 1], nq = g0.size - 1;
  in.groups = groups_of(groups_obj, ns, keep, op);
  const auto weights = floats(weights_obj, keep, op, "weights");
  check_size(weights.size, sel::kNumScorers, op, "weights",
             "lexical, dense, position, passage, external, passage_dense");
  double total = 0;
  for (int k = 0; k < sel::kNumScorers; ++k) {
    RK_CHECK_ARG(weights[k] >= 0, op, ": weights[", k, "] = ", weights[k], " is negative");
    config.weights[k] = weights[k];
    total += weights[k];
  }
  RK_CHECK_ARG(total > 0, op, ": weights must not all be 0");
  config.norm = parse_norm(normalization, op);
  check_lambda(lambda, op);
  RK_CHECK_ARG(similarity == "dense" || similarity == "terms", op,
               ": similarity must be \"dense\" or \"terms\", got \"", similarity, "\"");
  config.similarity = similarity == "dense" ? sel::Similarity::kDense : sel::Similarity::kTerms;
  config.lambda = lambda;
  if (!max_picks.is_none()) {
    config.max_picks = max_picks.cast<int64_t>();
    RK_CHECK_ARG(config.max_picks >= 1, op, ": max_picks must be >= 1, got ", config.max_picks);
  }
  RK_CHECK_ARG(temperature >= 0 && std::isfinite(temperature), op,
               ": temperature must be a finite number > 0 (or None), got ", temperature);
  config.temperature = temperature;
  const bool mmr = lambda < 1;
  if (!s_values.is_none()) {
    in.sentence_terms = ragged(s_values, s_offsets, keep, op, "sentence_terms", "sentence_offsets");
    check_size(in.sentence_terms.size(), ns, op, "sentence_offsets - 1", "one list per sentence");
  }
  if (!q_values.is_none()) {
    in.query_terms = ragged(q_values, q_offsets, keep, op, "query_terms", "query_offsets");
    check_size(in.query_terms.size(), nq, op, "query_offsets - 1", "one list per query");
  }
  if (weights[0] > 0) {
    require(!q_values.is_none() && !s_values.is_none(), op, "query_terms and sentence_terms",
            "with a lexical weight > 0");
    check_bm25_params(k1, b, op);
    config.k1 = k1;
    config.b = b;
  }
  sel::Bm25Stats stats;
  if (bm25_stats(df, num_docs, avgdl, stats, keep, op)) config.stats = &stats;
  if (!s_emb.is_none()) {
    in.sentence_embeddings = embeddings(s_emb, ns, -1, keep, op, "sentence_embeddings");
  }
  if (!q_emb.is_none()) {
    require(!s_emb.is_none(), op, "sentence_embeddings", "with query_embeddings");
    in.query_embeddings = embeddings(q_emb, nq, in.sentence_embeddings.cols, keep, op, "query_embeddings");
  }
  if (weights[1] > 0 || weights[5] > 0) {
    require(!q_emb.is_none(), op, "query_embeddings and sentence_embeddings",
            "with a dense or passage_dense weight > 0");
  }
  if (mmr && config.similarity == sel::Similarity::kDense) {
    require(!s_emb.is_none(), op, "sentence_embeddings", "for MMR (mmr_lambda < 1) with similarity=\"dense\"");
  }
  if (mmr && config.similarity == sel::Similarity::kTerms) {
    require(!s_values.is_none(), op, "sentence_terms", "for MMR (mmr_lambda < 1) with similarity=\"terms\"");
  }
  auto per_sentence = [&](const py::object& obj, const char* arg, bool needed, const char* why) {
    require(!needed || !obj.is_none(), op, arg, why);
    if (obj.is_none()) return ConstView1<int64_t>{};
    const auto v = ints(obj, keep, op, arg);
    check_size(v.size, ns, op, arg, "one per sentence");
    check_non_negative(v, op, arg);
    return v;
  };
  in.positions = per_sentence(positions, "positions", weights[2] > 0, "with a position weight > 0");
  in.passage_ranks = per_sentence(passage_ranks, "passage_ranks", weights[3] > 0 || weights[5] > 0,
                                  "with a passage or passage_dense weight > 0");
  config.truncate = truncate_config(budget, sufficiency, order, max_dp_cells, op);
  in.token_counts = per_sentence(tokens_obj, "token_counts", config.truncate.budget >= 1, "with a budget");
  require(weights[4] == 0 || !external.is_none(), op, "external", "with an external weight > 0");
  if (!external.is_none()) {
    in.external = floats(external, keep, op, "external");
    check_size(in.external.size, ns, op, "external", "one per sentence");
  }
  sel::ClueOutput out;
  {
    py::gil_scoped_release nogil;
    sel::select_clues(in, config, out);
  }
  return py::make_tuple(to_array(out.relevance), to_array(out.selected), to_array(out.offsets));
}

py::array_t<double> select_position_prior(py::handle positions_obj) {
  const char* op = "position_prior";
  std::vector<py::array> keep;
  const auto positions = ints(positions_obj, keep, op, "positions");
  check_non_negative(positions, op, "positions");
  py::array_t<double> out(positions.size);
  sel::position_prior(positions, {out.mutable_data(), positions.size, 1});
  return out;
}

}  // namespace

void bind_select(py::module_& m) {
  m.def("select_bm25", &select_bm25, py::arg("query_terms"), py::arg("query_offsets"), py::arg("sentence_terms"),
        py::arg("sentence_offsets"), py::arg("groups"), py::arg("k1"), py::arg("b"), py::arg("df"),
        py::arg("num_docs"), py::arg("avgdl"));
  m.def("select_cosine", &select_cosine, py::arg("query_embeddings"), py::arg("sentence_embeddings"),
        py::arg("groups"));
  m.def("select_position_prior", &select_position_prior, py::arg("positions"));
  m.def("select_combine", &select_combine, py::arg("scores"), py::arg("weights"), py::arg("groups"),
        py::arg("normalization"));
  m.def("select_mmr", &select_mmr, py::arg("relevance"), py::arg("embeddings"), py::arg("sentence_terms"),
        py::arg("sentence_offsets"), py::arg("groups"), py::arg("mmr_lambda"), py::arg("k"));
  m.def("select_truncate", &select_truncate, py::arg("ranked"), py::arg("values"), py::arg("rank_offsets"),
        py::arg("token_counts"), py::arg("groups"), py::arg("budget"), py::arg("sufficiency"), py::arg("order"),
        py::arg("max_dp_cells"));
  m.def("select_clues", &select_clues, py::arg("groups"), py::arg("query_terms"), py::arg("query_offsets"),
        py::arg("sentence_terms"), py::arg("sentence_offsets"), py::arg("query_embeddings"),
        py::arg("sentence_embeddings"), py::arg("positions"), py::arg("passage_ranks"), py::arg("external"),
        py::arg("token_counts"), py::arg("weights"), py::arg("normalization"), py::arg("k1"), py::arg("b"), py::arg("df"), py::arg("num_docs"),
        py::arg("avgdl"), py::arg("mmr_lambda"), py::arg("max_picks"), py::arg("temperature"), py::arg("similarity"), py::arg("budget"), py::arg("sufficiency"),
        py::arg("order"), py::arg("max_dp_cells"));
}

}  // namespace ragkernels::bindings
