#include "metrics/from_columns.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "metrics/assemble.h"
#include "metrics/decimal.h"
#include "metrics/rank_sort.h"

namespace ragkernels {
namespace metrics {
namespace {

using detail::compare_decimal;
using detail::decimal_length;
using detail::write_decimal;

template <typename Fn>
void visit(const IdColumn& c, Fn&& fn) {
  if (c.i64.data != nullptr)
    fn(c.i64);
  else
    fn(c.i32);
}

// A maximal run of consecutive rows with one qid.
struct Segment {
  int64_t qid;
  int64_t begin;
  int64_t count;
};

// Segments in row order; scanned in parallel over fixed chunks, then the
// segments that straddle a chunk border are joined.
std::vector<Segment> find_segments(const IdColumn& qids) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t n = qids.size(), nchunks = (n + kChunk - 1) / kChunk;
  std::vector<std::vector<Segment>> per_chunk(nchunks);
  visit(qids, [&](auto q) {
    parallel_for(0, nchunks, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        std::vector<Segment>& segs = per_chunk[c];
        const int64_t end = std::min(n, (c + 1) * kChunk);
        for (int64_t i = c * kChunk; i < end; ++i) {
          const int64_t v = q[i];
          if (segs.empty() || segs.back().qid != v) segs.push_back({v, i, 0});
          ++segs.back().count;
        }
      }
    });
  });
  std::vector<Segment> all;
  for (const auto& segs : per_chunk) {
    for (const Segment& s : segs) {
      if (!all.empty() && all.back().qid == s.qid)
        all.back().count += s.count;
      else
        all.push_back(s);
    }
  }
  return all;
}

// Rows grouped by query, queries in str(qid) strcmp order.
struct Groups {
  std::vector<int64_t> qids;
  std::vector<int64_t> offsets;      // rows of query r: [offsets[r], offsets[r + 1])
  std::vector<int64_t> seg_offsets;  // segments of query r, in row order
  std::vector<Segment> segs;
};

Groups group_rows(const IdColumn& qids) {
  const std::vector<Segment> segs = find_segments(qids);
  std::unordered_map<int64_t, int64_t> ids;
  std::vector<int64_t> uniq, seg_query(segs.size());
  for (size_t s = 0; s < segs.size(); ++s) {
    auto it = ids.try_emplace(segs[s].qid, static_cast<int64_t>(uniq.size())).first;
    if (it->second == static_cast<int64_t>(uniq.size())) uniq.push_back(segs[s].qid);
    seg_query[s] = it->second;
  }
  const int64_t nq = static_cast<int64_t>(uniq.size());
  std::vector<int64_t> order(nq), rank(nq);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return compare_decimal(uniq[a], uniq[b]) < 0; });
  Groups g;
  g.qids.resize(nq);
  for (int64_t r = 0; r < nq; ++r) rank[order[r]] = r, g.qids[r] = uniq[order[r]];
  g.offsets.assign(nq + 1, 0);
  g.seg_offsets.assign(nq + 1, 0);
  for (size_t s = 0; s < segs.size(); ++s) {
    g.offsets[rank[seg_query[s]] + 1] += segs[s].count;
    g.seg_offsets[rank[seg_query[s]] + 1] += 1;
  }
  std::partial_sum(g.offsets.begin(), g.offsets.end(), g.offsets.begin());
  std::partial_sum(g.seg_offsets.begin(), g.seg_offsets.end(), g.seg_offsets.begin());
  std::vector<int64_t> cursor(g.seg_offsets.begin(), g.seg_offsets.end() - 1);
  g.segs.resize(segs.size());
  for (size_t s = 0; s < segs.size(); ++s) g.segs[cursor[rank[seg_query[s]]]++] = segs[s];
  return g;
}

// The decimal text of every id: qids in one block, docnos in one arena per
// parallel_for chunk (indexed by its first query), so threads never share
// an allocator and each query's text lies contiguous, in rank order.
struct Text {
  std::unique_ptr<char[]> qids;
  std::vector<std::unique_ptr<detail::Arena>> docnos;
};

// qid views into text->qids.
std::vector<std::string_view> write_qids(const std::vector<int64_t>& ids, Text* text) {
  int64_t bytes = 0;
  for (int64_t v : ids) bytes += decimal_length(v);
  text->qids.reset(new char[std::max<int64_t>(bytes, 1)]);
  std::vector<std::string_view> out(ids.size());
  char* p = text->qids.get();
  for (size_t i = 0; i < ids.size(); ++i) {
    const int len = write_decimal(ids[i], p);
    out[i] = std::string_view(p, static_cast<size_t>(len));
    p += len;
  }
  text->docnos.resize(ids.size());
  return out;
}

// The arena of the parallel_for chunk starting at query `lo`.
detail::Arena& chunk_arena(Text* text, int64_t lo) {
  text->docnos[lo].reset(new detail::Arena);
  return *text->docnos[lo];
}

inline std::string_view docno_text(detail::Arena& arena, int64_t v) {
  char* p = arena.take(static_cast<size_t>(decimal_length(v)));
  return std::string_view(p, static_cast<size_t>(write_decimal(v, p)));
}

// Index of the first row of [0, n) whose docno appeared before, or -1
// (find_repeat of assemble.cpp on integers: equal ids, equal text).
template <typename Entry>
int64_t find_repeat(const Entry* e, int64_t n, std::vector<uint32_t>& table) {
  int bits = 4;
  while ((int64_t(1) << bits) < 2 * n) ++bits;
  table.assign(size_t(1) << bits, 0);
  const uint64_t mask = (uint64_t(1) << bits) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = (static_cast<uint64_t>(e[i].doc) * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
    uint64_t slot = h;
    for (; table[slot] != 0; slot = (slot + 1) & mask)
      if (e[table[slot] - 1].doc == e[i].doc) return i;
    table[slot] = static_cast<uint32_t>(i + 1);
  }
  return -1;
}

// Lowest query with a duplicate, as detail::Duplicate.
detail::Duplicate first_duplicate(const std::vector<std::string_view>& qids,
                                  const std::vector<uint8_t>& has_dup,
                                  const std::vector<int64_t>& dup_doc) {
  detail::Duplicate dup;
  for (size_t r = 0; r < qids.size(); ++r) {
    if (has_dup[r]) {
      char buf[24];
      dup.found = true;
      dup.qid = std::string(qids[r]);
      dup.docno = std::string(buf, static_cast<size_t>(write_decimal(dup_doc[r], buf)));
      break;
    }
  }
  return dup;
}

// ---------------------------------------------------------------- run

struct RankEntry {
  uint64_t key;  // detail::score_key
  int64_t doc;
  double score;
};

// run_qrels.h's rank order: score descending, ties by str(docno) descending.
inline bool ranks_before(const RankEntry& a, const RankEntry& b) {
  if (a.key != b.key) return a.key > b.key;
  return compare_decimal(a.doc, b.doc) > 0;
}

template <typename S>
Run build_run(const IdColumn& qcol, const IdColumn& dcol, View1<const S> scol) {
  RK_CHECK_ARG(qcol.size() == dcol.size() && qcol.size() == scol.size,
               "run_from_columns: columns of different lengths");
  const Groups g = group_rows(qcol);
  const int64_t nq = static_cast<int64_t>(g.qids.size()), n = qcol.size();
  auto text = std::make_shared<Text>();
  Run run;
  run.qids = write_qids(g.qids, text.get());
  run.offsets = g.offsets;
  run.scores.resize(n);
  run.docnos.resize(n);
  std::vector<int64_t> dup_doc(nq);
  std::vector<uint8_t> has_dup(nq, 0);
  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    detail::Arena& arena = chunk_arena(text.get(), lo);
    std::vector<RankEntry> e, scratch;
    std::vector<uint32_t> table;
    for (int64_t r = lo; r < hi; ++r) {
      e.clear();
      for (int64_t s = g.seg_offsets[r]; s < g.seg_offsets[r + 1]; ++s) {
        for (int64_t i = g.segs[s].begin, end = i + g.segs[s].count; i < end; ++i) {
          const double v = static_cast<double>(scol[i]);
          e.push_back({detail::score_key(v), dcol[i], v});
        }
      }
      if (!std::is_sorted(e.begin(), e.end(), ranks_before)) {
        detail::sort_by_key_desc(
            e.data(), e.size(), scratch, [](const RankEntry& x) { return x.key; },
            [](const RankEntry& x, const RankEntry& y) { return compare_decimal(x.doc, y.doc) > 0; });
      }
      const int64_t at = find_repeat(e.data(), static_cast<int64_t>(e.size()), table);
      if (at >= 0) has_dup[r] = 1, dup_doc[r] = e[at].doc;
      for (size_t i = 0; i < e.size(); ++i) {
        run.scores[g.offsets[r] + i] = e[i].score;
        run.docnos[g.offsets[r] + i] = docno_text(arena, e[i].doc);
      }
    }
  }, 16);
  const detail::Duplicate dup = first_duplicate(run.qids, has_dup, dup_doc);
  RK_CHECK_ARG(!dup.found, "RunBuilder.finish: document '", dup.docno, "' retrieved twice for query '", dup.qid,
               "' (trec_eval refuses duplicate docs)");
  run.storage = std::move(text);
  return run;
}

}  // namespace

Run run_from_columns(const IdColumn& qids, const IdColumn& docnos, View1<const double> scores) {
  return build_run(qids, docnos, scores);
}

Run run_from_columns(const IdColumn& qids, const IdColumn& docnos, View1<const float> scores) {
  return build_run(qids, docnos, scores);
}

// ---------------------------------------------------------------- qrels

Qrels qrels_from_columns(const IdColumn& qcol, const IdColumn& dcol, const IdColumn& rcol) {
  RK_CHECK_ARG(qcol.size() == dcol.size() && qcol.size() == rcol.size(),
               "qrels_from_columns: columns of different lengths");
  struct Judgment {
    int64_t doc;
    int64_t rel;
  };
  const auto by_docno = [](const Judgment& a, const Judgment& b) { return compare_decimal(a.doc, b.doc) < 0; };
  const Groups g = group_rows(qcol);
  const int64_t nq = static_cast<int64_t>(g.qids.size()), n = qcol.size();
  auto text = std::make_shared<Text>();
  Qrels qr;
  qr.qids = write_qids(g.qids, text.get());
  qr.offsets = g.offsets;
  qr.rels.resize(n);
  qr.docnos.resize(n);
  std::vector<int64_t> dup_doc(nq);
  std::vector<uint8_t> has_dup(nq, 0);
  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    detail::Arena& arena = chunk_arena(text.get(), lo);
    std::vector<Judgment> e;
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = g.offsets[r], count = g.offsets[r + 1] - b;
      RK_CHECK_ARG(count < (int64_t(1) << 31), "qrels: query '", qr.qids[r], "' has ", count,
                   " judgments, at most 2**31 - 1 are supported");
      e.clear();
      for (int64_t s = g.seg_offsets[r]; s < g.seg_offsets[r + 1]; ++s)
        for (int64_t i = g.segs[s].begin, end = i + g.segs[s].count; i < end; ++i) e.push_back({dcol[i], rcol[i]});
      // Equal docnos are refused below, so an unstable sort gives the same result.
      if (!std::is_sorted(e.begin(), e.end(), by_docno)) std::sort(e.begin(), e.end(), by_docno);
      for (int64_t i = 0; i < count; ++i) {
        qr.rels[b + i] = e[i].rel;
        qr.docnos[b + i] = docno_text(arena, e[i].doc);
        if (i > 0 && !has_dup[r] && e[i].doc == e[i - 1].doc) has_dup[r] = 1, dup_doc[r] = e[i].doc;
      }
    }
  }, 16);
  const detail::Duplicate dup = first_duplicate(qr.qids, has_dup, dup_doc);
  RK_CHECK_ARG(!dup.found, "QrelsBuilder.finish: duplicate judgment for query '", dup.qid, "' and document '",
               dup.docno, "'");
  qr.storage = std::move(text);
  detail::build_table(qr);
  return qr;
}

}  // namespace metrics
}  // namespace ragkernels
