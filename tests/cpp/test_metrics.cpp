// GoogleTest for csrc/metrics: hand-computed cases first, then trec_eval's
// own fixtures (shared/data/trec_eval-parity), which must match byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "metrics/big_vector.h"
#include "metrics/evaluate.h"
#include "metrics/measures.h"
#include "metrics/run_qrels.h"
#include "metrics/trec_format.h"
#include "metrics/trec_io.h"

namespace rk = ragkernels;
namespace m = ragkernels::metrics;

namespace {

// q1: d1:2 d2:0 d3:1 d4:-1 d5:1 (d5 never retrieved)
// q2: only a nonrelevant judgment; q3: judged but absent from the run.
const char* kQrels =
    "q1 0 d1 2\n"
    "q1 0 d2 0\n"
    "q1 0 d3 1\n"
    "q1 0 d4 -1\n"
    "q1 0 d5 1\n"
    "q2 0 d1 0\n"
    "q3 0 d7 1\n";

// q1 ranks d9 (unjudged), then d3 before d1 (tie at 4: docno descending),
// d2, d4. q4 has no judgments and is ignored.
const char* kRun =
    "q1 Q0 d1 1 4 tagA\n"
    "q1 Q0 d9 2 5 tagA\n"
    "q1 Q0 d3 3 4 tagA\n"
    "q1 Q0 d2 4 3 tagA\n"
    "q1 Q0 d4 5 2 tagA\n"
    "q2 Q0 d1 1 1 tagA\n"
    "q4 Q0 d1 1 1 tagB\n";

m::Evaluation eval_text(const std::vector<std::string>& meas, m::EvalOptions opt = {}) {
  return m::evaluate(m::read_qrels_text(kQrels, "qrels"), m::read_run_text(kRun, "run"),
                     m::MeasureSet::parse(meas), opt);
}

double value(const m::Evaluation& ev, const std::string& qid, const std::string& name) {
  size_t c = 0;
  while (c < ev.measure_names.size() && ev.measure_names[c] != name) ++c;
  EXPECT_LT(c, ev.measure_names.size()) << name;
  if (qid == "all") return ev.summary[c];
  for (size_t t = 0; t < ev.query_ids.size(); ++t)
    if (ev.query_ids[t] == qid) return ev.per_query[t * ev.measure_names.size() + c];
  ADD_FAILURE() << "no query " << qid;
  return NAN;
}

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const rk::Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string data_dir() {
  if (const char* env = std::getenv("RAGKERNELS_DATA")) return env;
  std::string here = __FILE__;  // <repo>/tests/cpp/test_metrics.cpp
  return here.substr(0, here.rfind('/')) + "/../../../shared/data";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// Small and large (mmap-backed) BigVectors keep std::vector's semantics
// wherever a value is given: assign, push_back, growth, copy.
TEST(MetricsBigVector, ValuesSurviveGrowthAndCopy) {
  for (size_t n : {size_t(10), size_t(3) << 20}) {
    m::detail::BigVector<int64_t> v;
    v.assign(n, 7);
    v.push_back(8);  // reallocates past the 4 MiB threshold for the large case
    v.resize(2 * n + 1);
    for (size_t i = n + 1; i < v.size(); ++i) v[i] = static_cast<int64_t>(i);
    const m::detail::BigVector<int64_t> copy = v;
    ASSERT_EQ(copy.size(), 2 * n + 1);
    EXPECT_EQ(copy[0], 7);
    EXPECT_EQ(copy[n - 1], 7);
    EXPECT_EQ(copy[n], 8);
    EXPECT_EQ(copy[2 * n], static_cast<int64_t>(2 * n));
    EXPECT_EQ(copy, v);
  }
}

TEST(MetricsOrder, TiesBreakByDocnoDescending) {
  m::Run run = m::read_run_text(kRun, "run");
  ASSERT_EQ(run.num_queries(), 3);
  EXPECT_EQ(run.qids[0], "q1");
  std::vector<std::string> docs(run.docnos.begin(), run.docnos.begin() + 5);
  EXPECT_EQ(docs, (std::vector<std::string>{"d9", "d3", "d1", "d2", "d4"}));
  EXPECT_EQ(run.runid, "tagB");  // trec_eval keeps the tag of the last line
}

TEST(MetricsOrder, IntegerIdsCompareAsDecimalStrings) {
  m::RunBuilder b;
  b.add(int64_t(7), int64_t(9), 1.0);
  b.add(int64_t(7), int64_t(10), 1.0);  // "9" > "10" as strings: 9 ranks first
  b.add(int64_t(10), int64_t(1), 0.5);
  m::Run run = b.finish("r");
  EXPECT_EQ(run.qids[0], "10");  // "10" < "7"
  EXPECT_EQ(run.docnos[1], "9");
  EXPECT_EQ(run.docnos[2], "10");
  EXPECT_EQ(run.runid, "r");
}

TEST(MetricsOrder, NanScoresRankLast) {
  m::RunBuilder b;
  b.add("q", "a", std::nan(""));
  b.add("q", "b", -1e300);
  b.add("q", "c", 2.0);
  m::Run run = b.finish();
  EXPECT_EQ(run.docnos[0], "c");
  EXPECT_EQ(run.docnos[1], "b");
  EXPECT_EQ(run.docnos[2], "a");
}

TEST(MetricsHand, OneQueryByHand) {
  auto ev = eval_text({"all_trec", "judged.2"});
  // q1 relevance by rank: -1 (d9 unjudged), 1, 2, 0, -2 (judged -1); R = 3.
  EXPECT_EQ(ev.query_ids, (std::vector<std::string>{"q1", "q2"}));
  EXPECT_EQ(value(ev, "q1", "num_ret"), 5);
  EXPECT_EQ(value(ev, "q1", "num_rel"), 3);
  EXPECT_EQ(value(ev, "q1", "num_rel_ret"), 2);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "map"), (1.0 / 2 + 2.0 / 3) / 3);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "P_5"), 2.0 / 5);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "P_10"), 2.0 / 10);  // missing docs count as nonrelevant
  EXPECT_DOUBLE_EQ(value(ev, "q1", "recip_rank"), 0.5);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "Rprec"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "recall_5"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "bpref"), 2.0 / 3);  // both retrieved rels above the one nonrel
  const double dcg = 1 / std::log2(3.0) + 2 / std::log2(4.0);
  const double idcg = 2 / std::log2(2.0) + 1 / std::log2(3.0) + 1 / std::log2(4.0);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "ndcg_cut_5"), dcg / idcg);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "unj_5"), 2.0 / 5);  // d9 and the -1 judgment
  EXPECT_EQ(value(ev, "q1", "num_nonrel_judged_ret"), 1);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "success_1"), 0.0);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "judged_2"), 0.5);
  EXPECT_EQ(ev.relstrings[0], "-120.");
  // q2: judged, nothing relevant; still evaluated and averaged over.
  EXPECT_EQ(value(ev, "q2", "num_rel"), 0);
  EXPECT_EQ(value(ev, "q2", "map"), 0);
  EXPECT_EQ(value(ev, "all", "num_q"), 2);
  EXPECT_DOUBLE_EQ(value(ev, "all", "map"), value(ev, "q1", "map") / 2);
  EXPECT_EQ(value(ev, "all", "num_ret"), 6);  // a sum, not a mean
  EXPECT_DOUBLE_EQ(value(ev, "all", "gm_map"),
                   std::exp((std::log(value(ev, "q1", "map")) + std::log(1e-5)) / 2));
  EXPECT_DOUBLE_EQ(value(ev, "q1", "gm_map"), std::log(value(ev, "q1", "map")));
}

TEST(MetricsHand, RelevanceLevel) {
  m::EvalOptions opt;
  opt.relevance_level = 2;  // only d1 is relevant now
  auto ev = eval_text({"map", "num_rel", "ndcg_cut.5"}, opt);
  EXPECT_EQ(value(ev, "q1", "num_rel"), 1);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "map"), 1.0 / 3);
  // ndcg_cut ignores -l: gains are the judged values (trec_eval).
  auto base = eval_text({"ndcg_cut.5"});
  EXPECT_EQ(value(ev, "q1", "ndcg_cut_5"), value(base, "q1", "ndcg_cut_5"));
}

TEST(MetricsHand, JudgedOnlyDropsUnjudgedDocs) {
  m::EvalOptions opt;
  opt.judged_only = true;
  auto ev = eval_text({"map", "num_ret", "P.5", "relstring"}, opt);
  EXPECT_EQ(value(ev, "q1", "num_ret"), 3);  // d3, d1, d2
  EXPECT_DOUBLE_EQ(value(ev, "q1", "map"), (1.0 + 1.0) / 3);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "P_5"), 2.0 / 5);
  EXPECT_EQ(ev.relstrings[0], "120");
}

TEST(MetricsHand, MaxDocsTruncatesAfterRanking) {
  m::EvalOptions opt;
  opt.max_docs = 2;
  auto ev = eval_text({"map", "num_ret"}, opt);
  EXPECT_EQ(value(ev, "q1", "num_ret"), 2);
  EXPECT_DOUBLE_EQ(value(ev, "q1", "map"), 0.5 / 3);
  opt.max_docs = -1;
  EXPECT_THROW(eval_text({"map"}, opt), rk::ValueError);
}

TEST(MetricsHand, AllQueriesEvaluatesMissingOnes) {
  m::EvalOptions opt;
  opt.all_queries = true;
  auto ev = eval_text({"num_q", "num_ret", "num_rel", "map", "gm_map", "P.5", "relstring"}, opt);
  EXPECT_EQ(ev.query_ids, (std::vector<std::string>{"q1", "q2", "q3"}));
  EXPECT_EQ(value(ev, "q3", "num_ret"), 0);  // reset after the stand-in ranking
  EXPECT_EQ(value(ev, "q3", "map"), 0);
  EXPECT_EQ(ev.relstrings[2], "");
  EXPECT_EQ(value(ev, "all", "num_q"), 3);
  EXPECT_EQ(value(ev, "all", "num_rel"), 4);  // every judgment > 0 in the qrels
  EXPECT_DOUBLE_EQ(value(ev, "all", "map"), value(ev, "q1", "map") / 3);
  auto plain = eval_text({"num_q"});
  EXPECT_EQ(value(plain, "all", "num_q"), 2);
}

TEST(MetricsHand, OnlyNegativeJudgments) {
  const char* qrels = "a 0 x 1\nb 0 y -1\n";
  const char* run = "a Q0 x 1 1 t\nb Q0 y 1 1 t\nb Q0 z 2 0 t\n";
  auto ev = m::evaluate(m::read_qrels_text(qrels, "q"), m::read_run_text(run, "r"),
                        m::MeasureSet::parse({"num_rel", "map", "bpref", "relstring", "infAP"}), {});
  ASSERT_EQ(ev.query_ids.size(), 2u);  // b is evaluated, with num_rel 0
  EXPECT_EQ(value(ev, "b", "num_rel"), 0);
  EXPECT_EQ(value(ev, "b", "map"), 0);
  EXPECT_EQ(ev.relstrings[1], ".-");
}

TEST(MetricsHand, JudgedMatchesIrMeasuresTieOrder) {
  m::RunBuilder rb;
  for (auto [d, s] : std::vector<std::pair<const char*, double>>{
           {"d1", 3}, {"d2", 2}, {"d3", 2}, {"d4", 2}, {"d5", 1}})
    rb.add("q", d, s);
  m::QrelsBuilder qb;
  qb.add("q", "d2", 0);
  auto ev = m::evaluate(qb.finish(), rb.finish(), m::MeasureSet::parse({"judged.2,3,10"}), {});
  // ir_measures ranks ties by docno ascending: d1 d2 d3 d4 d5.
  EXPECT_DOUBLE_EQ(value(ev, "q", "judged_2"), 0.5);
  EXPECT_DOUBLE_EQ(value(ev, "q", "judged_3"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(value(ev, "q", "judged_10"), 0.2);
}

TEST(MetricsFormat, TrecEvalLayout) {
  auto ev = eval_text({"runid", "num_q", "map", "relstring.3"});
  EXPECT_EQ(m::format_trec_eval(ev, true),
            "map                   \tq1\t0.3889\n"
            "relstring_3           \tq1\t'-12'\n"
            "map                   \tq2\t0.0000\n"
            "relstring_3           \tq2\t'0'\n"
            "runid                 \tall\ttagB\n"
            "num_q                 \tall\t2\n"
            "map                   \tall\t0.1944\n");
}

TEST(MetricsMeasureSet, NamesOrderAndSpellings) {
  auto ms = m::MeasureSet::parse({"P_5", "ndcg_cut.10", "map", "P.10", "iprec_at_recall_0.10",
                                  "success_1", "recall_100", "utility.2,-1,0,0"});
  EXPECT_EQ(ms.names(),
            (std::vector<std::string>{"map", "iprec_at_recall_0.10", "P_5", "P_10", "recall_100",
                                      "utility_2,-1,0,0", "ndcg_cut_10", "success_1"}));
  auto official = m::MeasureSet::parse({});
  EXPECT_TRUE(official.has_runid());
  EXPECT_EQ(official.names().front(), "num_q");
  EXPECT_EQ(official.names().size(), 9u + 11u + 9u);  // + runid = out.test's 30 lines
  EXPECT_EQ(m::MeasureSet::parse({"ndcg.1=3,2=9,4=4.5"}).names()[0], "ndcg_1=3,2=9,4=4.5");
  EXPECT_EQ(m::MeasureSet::parse({"ndcg_cut.10,20,23.4"}).names().back(), "ndcg_cut_23");
}

TEST(MetricsMeasureSet, RefusesBadRequests) {
  EXPECT_NE(error_of([] { m::MeasureSet::parse({"foo"}); }).find("'foo'"), std::string::npos);
  EXPECT_THROW(m::MeasureSet::parse({"P.0"}), rk::ValueError);
  EXPECT_THROW(m::MeasureSet::parse({"map.5"}), rk::ValueError);
  EXPECT_THROW(m::MeasureSet::parse({"P."}), rk::ValueError);
  EXPECT_THROW(m::MeasureSet::parse({"ndcg.1=3,2"}), rk::ValueError);
  EXPECT_THROW(m::MeasureSet::parse({"utility.1,2"}), rk::ValueError);
  EXPECT_THROW(m::MeasureSet::parse({"judged"}), rk::ValueError);
  EXPECT_THROW(m::MeasureSet::parse({"set_F.1", "set_F.2"}), rk::ValueError);
}

TEST(MetricsIO, MalformedLinesNameFileAndLine) {
  std::string e = error_of([] { m::read_run_text("q Q0 d 1 1 t\n\n# note\nq Q0 e 2\n", "run.txt"); });
  EXPECT_EQ(e,
            "run.txt:4: expected 6 whitespace-separated fields (qid Q0 docno rank score tag), "
            "found 4, got 'q Q0 e 2'");
  e = error_of([] { m::read_run_text("q Q0 d 1 abc t\n", "r"); });
  EXPECT_EQ(e, "r:1: score 'abc' is not a number, got 'q Q0 d 1 abc t'");
  e = error_of([] { m::read_qrels_text("q 0 d 1\nq 0 e 1 extra\n", "qr"); });
  EXPECT_EQ(e, "qr:2: expected 4 whitespace-separated fields (qid iter docno rel), found more, got 'q 0 e 1 extra'");
  e = error_of([] { m::read_qrels_text("q 0 d 1.5\n", "qr"); });
  EXPECT_EQ(e, "qr:1: relevance '1.5' is not an integer, got 'q 0 d 1.5'");
  EXPECT_THROW(m::read_qrels_text("query-id\tcorpus-id\tscore\nq\td\n", "b"), rk::FormatError);
  e = error_of([] { m::read_run("/nonexistent/run.txt"); });
  EXPECT_NE(e.find("'/nonexistent/run.txt'"), std::string::npos);
  EXPECT_THROW(m::read_qrels("/nonexistent/qrels"), rk::IOError);
}

TEST(MetricsIO, NanScoresAndHeaderlessBeirQrelsAreRefused) {  // issue 14
  std::string e = error_of([] { m::read_run_text("q Q0 d 1 1 t\nq Q0 e 2 nan t\n", "r"); });
  EXPECT_EQ(e, "r:2: score 'nan' is NaN, got 'q Q0 e 2 nan t'");
  e = error_of([] { m::read_qrels_text("q1\td1\t1\n", "test.tsv"); });
  EXPECT_NE(e.find("test.tsv:1: expected 4 whitespace-separated fields (qid iter docno rel), found 3; a BEIR "
                   "qrels TSV must start with the header line 'query-id<TAB>corpus-id<TAB>score'"),
            std::string::npos)
      << e;
}

TEST(MetricsIO, ErrorLineNumbersAcrossChunks) {
  std::string text;
  for (int i = 0; i < 120000; ++i) text += "q" + std::to_string(i % 7) + " Q0 doc" + std::to_string(i) + " 1 0.5 t\n";
  text += "broken line\n";
  for (int i = 0; i < 10; ++i) text += "q Q0 x" + std::to_string(i) + " 1 1 t\n";
  ASSERT_GT(text.size(), size_t(2) << 20);  // several parse chunks
  std::string e = error_of([&] { m::read_run_text(text, "big"); });
  EXPECT_EQ(e.substr(0, 11), "big:120001:");
}

TEST(MetricsIO, DuplicatesAreRefused) {
  std::string e = error_of([] { m::read_run_text("q Q0 d 1 1 t\nq Q0 e 2 1 t\nq Q0 d 3 0.5 t\n", "r"); });
  EXPECT_NE(e.find("r:3: duplicate document 'd' for query 'q' (first at line 1"), std::string::npos) << e;
  EXPECT_THROW(m::read_qrels_text("q 0 d 1\nq 0 d 0\n", "qr"), rk::FormatError);
  m::RunBuilder rb;
  rb.add("q1", "d", 1.0);
  rb.add("q1", "d", 2.0);
  e = error_of([&] { rb.finish(); });
  EXPECT_NE(e.find("'d'"), std::string::npos);
  EXPECT_NE(e.find("'q1'"), std::string::npos);
  m::QrelsBuilder qb;
  qb.add(int64_t(1), int64_t(5), 1);
  qb.add(int64_t(1), int64_t(5), 0);
  EXPECT_THROW(qb.finish(), rk::ValueError);
}

TEST(MetricsIO, BeirTsvEqualsTrecQrels) {
  auto beir = m::read_qrels_text("query-id\tcorpus-id\tscore\r\nq1\td 1\t2\r\nq1\td2\t-1\r\n", "b");
  ASSERT_EQ(beir.size(), 2);
  EXPECT_EQ(beir.docnos[0], "d 1");  // ids may contain spaces in TSV
  EXPECT_EQ(beir.rels[0], 2);
  EXPECT_EQ(beir.rels[1], -1);
  EXPECT_EQ(beir.find_doc(0, "d2"), 1);
  EXPECT_EQ(beir.find_doc(0, "d3"), -1);
}

TEST(MetricsIO, ReaderEqualsBuilder) {
  std::mt19937_64 rng(7);
  std::string text;
  m::RunBuilder rb;
  for (int i = 0; i < 50000; ++i) {
    const int q = static_cast<int>(rng() % 37), d = i;
    const double s = static_cast<double>(rng() % 50) / 4;  // many ties
    char line[96];
    std::snprintf(line, sizeof(line), "%d Q0 D%d %d %.2f x\n", q, d, i, s);
    text += line;
    rb.add(std::to_string(q), "D" + std::to_string(d), s);
  }
  m::Run a = m::read_run_text(text, "t"), b = rb.finish();
  ASSERT_EQ(a.qids, b.qids);
  ASSERT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.docnos, b.docnos);
  EXPECT_EQ(a.scores, b.scores);
}

TEST(MetricsEvaluate, SameBitsForAnyThreadCount) {
  std::mt19937_64 rng(11);
  m::RunBuilder rb;
  m::QrelsBuilder qb;
  for (int q = 0; q < 300; ++q) {
    for (int d = 0; d < 60; ++d) {
      if (rng() % 3) rb.add(int64_t(q), int64_t(d), static_cast<double>(rng() % 20));
      if (rng() % 4 == 0) qb.add(int64_t(q), int64_t(d), static_cast<int64_t>(rng() % 5) - 1);
    }
  }
  m::Run run = rb.finish();
  m::Qrels qrels = qb.finish();
  auto ms = m::MeasureSet::parse({"all_trec", "judged.5", "ndcg.1=0.5,2=1.7"});
  const int saved = rk::num_threads();
  std::vector<std::string> outs;
  std::vector<std::vector<double>> rows;
  for (int t : {1, 2, 5}) {
    rk::set_num_threads(t);
    m::EvalOptions opt;
    opt.all_queries = true;
    auto ev = m::evaluate(qrels, run, ms, opt);
    rows.push_back(ev.per_query);
    outs.push_back(m::format_trec_eval(ev, true));
  }
  rk::set_num_threads(saved);
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), rows[0].size());
    EXPECT_EQ(0, std::memcmp(rows[i].data(), rows[0].data(), rows[0].size() * sizeof(double)));
    EXPECT_EQ(outs[i], outs[0]);
  }
}

// trec_eval's own test suite (Makefile quicktest), byte for byte.
TEST(MetricsParity, TrecEvalQuicktest) {
  const std::string dir = data_dir() + "/trec_eval-parity/";
  if (!std::ifstream(dir + "out.test").good()) GTEST_SKIP() << "no trec_eval fixtures in " << dir;
  struct Case {
    const char* expected;
    std::vector<std::string> measures;
    m::EvalOptions opt;
    bool per_query;
    const char* qrels;
    const char* run;
  };
  m::EvalOptions c, cm, l2;
  c.all_queries = cm.all_queries = true;
  cm.max_docs = 100;
  l2.relevance_level = 2;
  const std::vector<Case> cases = {
      {"out.test", {}, {}, false, "qrels.test", "results.test"},
      {"out.test.a", {"all_trec"}, {}, false, "qrels.test", "results.test"},
      {"out.test.aq", {"all_trec"}, {}, true, "qrels.test", "results.test"},
      {"out.test.aqc", {"all_trec"}, c, true, "qrels.test", "results.trunc"},
      {"out.test.aqcM", {"all_trec"}, cm, true, "qrels.test", "results.trunc"},
      {"out.test.aql", {"all_trec", "relstring.20"}, l2, true, "qrels.rel_level", "results.test"},
      {"out.test.meas_params",
       {"iprec_at_recall..10,.20,.25,.75,.50", "P.5,7,3", "recall.20,2000", "Rprec_mult.5.0,0.2,0.35",
        "utility.2,-1,0,0", "11pt_avg..25,.5,.75", "ndcg.1=3,2=9,4=4.5", "ndcg_cut.10,20,23.4",
        "success.2,5,20"},
       {}, true, "qrels.test", "results.test"},
  };
  for (const Case& k : cases) {
    auto ev = m::evaluate(m::read_qrels(dir + k.qrels), m::read_run(dir + k.run),
                          m::MeasureSet::parse(k.measures), k.opt);
    EXPECT_EQ(m::format_trec_eval(ev, k.per_query), slurp(dir + k.expected)) << k.expected;
  }
}
