#include "metrics/evaluate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "metrics/measure_impl.h"

namespace ragkernels {
namespace metrics {
namespace {

using detail::AccKind;
using detail::MeasureSpec;
using detail::QueryData;

constexpr double kMinGeoMean = 0.00001;
constexpr int64_t kNonpool = -1;   // RELVALUE_NONPOOL
constexpr int64_t kUnjudged = -2;  // RELVALUE_UNJUDGED

// trec_eval.c: the ranking a -c query without results is evaluated with.
constexpr std::string_view kBogusDocno = "ceci_nest_pas_un_docno";
constexpr double kBogusScore = 1.0;

// Per-thread buffers reused across queries.
struct Scratch {
  std::vector<int64_t> rel;
  std::vector<double> score;
  std::vector<int64_t> judged;
  std::vector<std::pair<int64_t, int64_t>> levels;
};

int64_t max_rel(const Qrels& qrels, int64_t qi) {
  int64_t m = std::numeric_limits<int64_t>::min();
  for (int64_t i = qrels.offsets[qi]; i < qrels.offsets[qi + 1]; ++i) m = std::max(m, qrels.rels[i]);
  return m;
}

// form_res_rels.c: relevance per rank plus the counts every measure reads.
// The level histogram comes from qrels query `level_qi` (see evaluate()).
QueryData form_res_rels(const Qrels& qrels, int64_t qi, int64_t level_qi,
                        const std::string_view* docnos, const double* scores, int64_t n,
                        const EvalOptions& opt, Scratch& s) {
  QueryData q;
  q.relevance_level = opt.relevance_level;
  q.num_docs_in_coll = opt.num_docs_in_coll;
  n = std::min(n, opt.max_docs);
  s.rel.resize(n);
  s.score.assign(scores, scores + n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = qrels.find_doc(qi, docnos[i]);
    s.rel[i] = at < 0 ? kNonpool : qrels.rels[at] < 0 ? kUnjudged : qrels.rels[at];
  }
  if (opt.judged_only) {
    // Unjudged docs leave the ranking; the others keep their relative order.
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (s.rel[i] < 0) continue;
      s.rel[k] = s.rel[i];
      s.score[k] = s.score[i];
      q.num_rel_ret += s.rel[k] >= opt.relevance_level;
      ++k;
    }
    n = k;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (s.rel[i] == kNonpool)
        ++q.num_nonpool;
      else if (s.rel[i] == kUnjudged)
        ++q.num_unjudged_in_pool;
      else
        q.num_rel_ret += s.rel[i] >= opt.relevance_level;
    }
  }
  q.rel = s.rel.data();
  q.score = s.score.data();
  q.num_ret = n;
  // Histogram of judged levels >= 0.
  s.judged.clear();
  if (level_qi >= 0)
    for (int64_t i = qrels.offsets[level_qi]; i < qrels.offsets[level_qi + 1]; ++i)
      if (qrels.rels[i] >= 0) s.judged.push_back(qrels.rels[i]);
  std::sort(s.judged.begin(), s.judged.end());
  s.levels.clear();
  for (int64_t v : s.judged) {
    if (s.levels.empty() || s.levels.back().first != v) s.levels.emplace_back(v, 0);
    ++s.levels.back().second;
    if (v >= opt.relevance_level && level_qi == qi) ++q.num_rel;
  }
  q.levels = s.levels.data();
  q.num_levels = static_cast<int64_t>(s.levels.size());
  q.num_rel_levels = s.levels.empty() ? 0 : s.levels.back().first + 1;
  return q;
}

// trec_eval.c's "clean up leftovers" after the stand-in ranking, by output name.
void reset_bogus(const MeasureSet& ms, double* row, std::string* relstring) {
  for (const MeasureSpec& spec : ms.specs()) {
    if (spec.name == "relstring") {
      if (spec.names[0] == "relstring") relstring->clear();
      continue;
    }
    if (spec.name == "runid") continue;
    for (size_t k = 0; k < spec.names.size(); ++k) {
      const std::string& n = spec.names[k];
      if (n == "num_ret" || n == "utility" || n.compare(0, 3, "unj") == 0 || n == "rbp_resid")
        row[spec.column + k] = 0.0;
    }
  }
}

// meas_avg.c and the custom calc_avg's of num_q and num_rel.
void summarize(const Qrels& qrels, const MeasureSet& ms, const EvalOptions& opt, Evaluation& ev) {
  const int64_t nq = static_cast<int64_t>(ev.query_ids.size());
  const int64_t nm = static_cast<int64_t>(ev.measure_names.size());
  const int64_t num_q = opt.all_queries ? qrels.num_queries() : nq;
  ev.summary.assign(nm, 0.0);
  const auto& table = detail::measure_table();
  for (const MeasureSpec& spec : ms.specs()) {
    const AccKind acc = table[spec.def].acc;
    if (acc == AccKind::kNone) continue;
    for (size_t k = 0; k < spec.names.size(); ++k) {
      const int64_t c = spec.column + static_cast<int64_t>(k);
      double v = 0.0;
      for (int64_t t = 0; t < nq; ++t) v += ev.per_query[t * nm + c];
      switch (acc) {
        case AccKind::kMean:
          if (num_q) v /= num_q;
          break;
        case AccKind::kSum:
        case AccKind::kNone:
          break;
        case AccKind::kNumQ:
          v = static_cast<double>(num_q);
          break;
        case AccKind::kNumRel:
          if (opt.all_queries) {
            int64_t count = 0;
            for (int64_t r : qrels.rels) count += r > 0;
            v = static_cast<double>(count);
          }
          break;
        case AccKind::kGeoMean:
          if (num_q > 0) {
            // A missing query counts as the floor value (0 would mean perfection).
            if (opt.all_queries) v += (num_q - nq) * std::log(kMinGeoMean);
            v = std::exp(v / num_q);
          }
          break;
      }
      ev.summary[c] = v;
    }
  }
}

}  // namespace

Evaluation evaluate(const Qrels& qrels, const Run& run, const MeasureSet& ms,
                    const EvalOptions& opt) {
  RK_CHECK_ARG(opt.max_docs >= 0, "evaluate: max_docs must be >= 0, got ", opt.max_docs);
  // Both query lists are strcmp-sorted: merge them.
  std::vector<std::pair<int64_t, int64_t>> todo;  // (qrels query, run query or -1)
  for (int64_t qi = 0, ri = 0; qi < qrels.num_queries(); ++qi) {
    while (ri < run.num_queries() && run.qids[ri] < qrels.qids[qi]) ++ri;
    const bool found = ri < run.num_queries() && run.qids[ri] == qrels.qids[qi];
    if (found || opt.all_queries) todo.emplace_back(qi, found ? ri : -1);
  }
  // A query whose judgments are all negative leaves trec_eval's static
  // rel_levels/num_rel_levels as the previous query with a judgment >= 0 set
  // them (form_res_rels.c); ideal DCG and the gain tables then use those.
  // Replay that: level_src[t] is the query whose histogram query t sees.
  std::vector<int64_t> level_src(todo.size(), -1);
  for (size_t t = 0; t < todo.size(); ++t) {
    if (max_rel(qrels, todo[t].first) >= 0)
      level_src[t] = todo[t].first;
    else if (t > 0)
      level_src[t] = level_src[t - 1];
  }
  Evaluation ev;
  const int64_t nq = static_cast<int64_t>(todo.size());
  const int64_t nm = static_cast<int64_t>(ms.names().size());
  ev.measure_names = ms.names();
  ev.is_integer = ms.is_integer();
  ev.per_query_printed = ms.per_query_printed();
  ev.has_runid = ms.has_runid();
  ev.relstring_name = ms.relstring_name();
  ev.relstring_column = ms.relstring_column();
  ev.runid = run.runid;
  ev.query_ids.resize(nq);
  ev.per_query.assign(nq * nm, 0.0);
  if (ms.has_relstring()) ev.relstrings.resize(nq);
  const auto& table = detail::measure_table();
  const int64_t relstring_len = ms.relstring_length();

  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    Scratch scratch;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t qi = todo[t].first, ri = todo[t].second;
      ev.query_ids[t] = std::string(qrels.qids[qi]);
      const std::string_view* docnos = &kBogusDocno;
      const double* scores = &kBogusScore;
      int64_t n = 1;
      if (ri >= 0) {
        docnos = run.docnos.data() + run.offsets[ri];
        scores = run.scores.data() + run.offsets[ri];
        n = run.offsets[ri + 1] - run.offsets[ri];
      }
      const QueryData q = form_res_rels(qrels, qi, level_src[t], docnos, scores, n, opt, scratch);
      double* row = ev.per_query.data() + t * nm;
      for (const MeasureSpec& spec : ms.specs())
        if (table[spec.def].calc) table[spec.def].calc(q, spec, row + spec.column);
      if (ms.has_relstring()) ev.relstrings[t] = detail::relstring(q, relstring_len);
      if (ri < 0) reset_bogus(ms, row, ms.has_relstring() ? &ev.relstrings[t] : nullptr);
    }
  }, 8);
  summarize(qrels, ms, opt, ev);
  return ev;
}

}  // namespace metrics
}  // namespace ragkernels
