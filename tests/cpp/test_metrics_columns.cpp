// GoogleTest for the bulk column path (metrics/from_columns.h) and the
// decimal-order helpers it rests on: it must build exactly what the row-by-row
// builders build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "metrics/decimal.h"
#include "metrics/from_columns.h"
#include "metrics/run_qrels.h"

namespace rk = ragkernels;
namespace m = ragkernels::metrics;

TEST(MetricsColumns, DecimalOrderIsStrcmp) {
  std::vector<int64_t> v = {0, 1, -1, 9, 10, -10, 99, 100, 101, 19, 2, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  std::mt19937_64 rng(3);
  for (int i = 0; i < 400; ++i) v.push_back(static_cast<int64_t>(rng()) >> (rng() % 64));
  for (int64_t a : v) {
    const std::string sa = std::to_string(a);
    char buf[24];
    ASSERT_EQ(std::string(buf, m::detail::write_decimal(a, buf)), sa);
    for (int64_t b : v) {
      const int want = sa.compare(std::to_string(b));
      ASSERT_EQ(m::detail::compare_decimal(a, b), (want > 0) - (want < 0)) << a << " " << b;
    }
  }
}

// Bulk columns == one add() per row, including ties between ids of different
// lengths and signs, -0.0, NaN, queries split into several segments, and
// queries long enough for the radix sort; for any thread count.
TEST(MetricsColumns, EqualBuilderRowByRow) {
  std::mt19937_64 rng(11);
  std::vector<int64_t> q, d, rel;
  std::vector<int32_t> d32;
  std::vector<double> s;
  const double special[] = {-0.0, 0.0, std::nan(""), -1.5};
  for (int i = 0; i < 20000; ++i) {
    q.push_back(static_cast<int64_t>(rng() % 23) - 5);
    d.push_back(i % 3 == 0 ? -i : i * 7);
    d32.push_back(static_cast<int32_t>(d.back()));
    s.push_back(rng() % 10 == 0 ? special[rng() % 4] : static_cast<double>(rng() % 40));
    rel.push_back(static_cast<int64_t>(rng() % 5) - 1);
  }
  m::RunBuilder rb;
  m::QrelsBuilder qb;
  for (size_t i = 0; i < q.size(); ++i) rb.add(q[i], d[i], s[i]), qb.add(q[i], d[i], rel[i]);
  const m::Run want = rb.finish();
  const m::Qrels want_q = qb.finish();
  for (size_t i = 1; i < want.docnos.size(); ++i) {  // plain rank order, NaN last
    if (std::isnan(want.scores[i]) || std::isnan(want.scores[i - 1]) || want.scores[i] == want.scores[i - 1]) continue;
    if (std::find(want.offsets.begin(), want.offsets.end(), int64_t(i)) == want.offsets.end()) {
      ASSERT_GT(want.scores[i - 1], want.scores[i]);
    }
  }
  const int64_t n = static_cast<int64_t>(q.size());
  m::IdColumn qc, dc, dc32, rc;
  qc.i64 = {q.data(), n, 1}, dc.i64 = {d.data(), n, 1}, dc32.i32 = {d32.data(), n, 1}, rc.i64 = {rel.data(), n, 1};
  const int saved = rk::num_threads();
  for (int threads : {1, 3}) {
    rk::set_num_threads(threads);
    for (const m::IdColumn* docs : {&dc, &dc32}) {
      const m::Run got = m::run_from_columns(qc, *docs, rk::View1<const double>{s.data(), n, 1});
      ASSERT_EQ(got.qids, want.qids);
      ASSERT_EQ(got.offsets, want.offsets);
      ASSERT_EQ(got.docnos, want.docnos);
      for (size_t i = 0; i < s.size(); ++i) ASSERT_EQ(std::memcmp(&got.scores[i], &want.scores[i], 8), 0) << i;
      const m::Qrels got_q = m::qrels_from_columns(qc, *docs, rc);
      ASSERT_EQ(got_q.qids, want_q.qids);
      ASSERT_EQ(got_q.docnos, want_q.docnos);
      ASSERT_EQ(got_q.rels, want_q.rels);
      ASSERT_EQ(got_q.table, want_q.table);
    }
  }
  rk::set_num_threads(saved);
}

TEST(MetricsColumns, DuplicatesAsBuilder) {
  std::vector<int64_t> q = {4, 4, 3, 3, 3, 4}, d = {-7, 8, 5, 12, 5, -7}, r = {1, 0, 1, 1, 0, 1};
  std::vector<double> s = {1, 2, 3, 1, 2, 3};
  m::IdColumn qc, dc, rc;
  qc.i64 = {q.data(), 6, 1}, dc.i64 = {d.data(), 6, 1}, rc.i64 = {r.data(), 6, 1};
  m::RunBuilder rb;
  m::QrelsBuilder qb;
  for (int i = 0; i < 6; ++i) rb.add(q[i], d[i], s[i]), qb.add(q[i], d[i], r[i]);
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const rk::ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string run_msg = message([&] { rb.finish(); });
  EXPECT_NE(run_msg.find("document '5' retrieved twice for query '3'"), std::string::npos) << run_msg;
  EXPECT_EQ(message([&] { m::run_from_columns(qc, dc, rk::View1<const double>{s.data(), 6, 1}); }), run_msg);
  const std::string qrels_msg = message([&] { qb.finish(); });
  EXPECT_NE(qrels_msg.find("query '3' and document '5'"), std::string::npos) << qrels_msg;
  EXPECT_EQ(message([&] { m::qrels_from_columns(qc, dc, rc); }), qrels_msg);
}
