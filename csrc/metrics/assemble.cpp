#include "metrics/assemble.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "metrics/rank_sort.h"

namespace ragkernels {
namespace metrics {
namespace detail {
namespace {

template <typename T>
struct Entry {
  T value;
  std::string_view docno;
};

// A row of one query's slice and its score_key.
struct KeyedRow {
  uint64_t key;
  uint32_t row;
};

// trec_eval's comp_sim_docno (form_res_rels.c), with NaN made orderable:
// after every number, among themselves by docno descending.
inline bool rank_before(double as, std::string_view ad, double bs, std::string_view bd) {
  const bool an = std::isnan(as), bn = std::isnan(bs);
  if (an != bn) return bn;
  if (!an) {
    if (as > bs) return true;
    if (as < bs) return false;
  }
  return compare_text(ad, bd) > 0;
}

// Lowest query index with a duplicate wins, whatever the thread count.
void report_first(const std::vector<std::string_view>& qids,
                  const std::vector<std::string_view>& dup_docno,
                  const std::vector<uint8_t>& has_dup, Duplicate* dup) {
  for (size_t q = 0; q < qids.size(); ++q) {
    if (has_dup[q]) {
      dup->found = true;
      dup->qid = std::string(qids[q]);
      dup->docno = std::string(dup_docno[q]);
      return;
    }
  }
}

// Finds a docno present twice in docnos[0, n) through an open-addressing
// table of hashes (O(n)); returns its index or -1.
int64_t find_repeat(const std::string_view* docnos, int64_t n, std::vector<uint64_t>& hashes,
                    std::vector<uint32_t>& table) {
  size_t cap = 16;  // at most a quarter full: most probes end at once, few mispredict
  while (cap < 4 * static_cast<size_t>(n)) cap *= 2;
  table.assign(cap, 0);
  hashes.resize(n);
  const size_t mask = cap - 1;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = hash_bytes(docnos[i]);
    hashes[i] = h;
    size_t slot = h & mask;
    for (; table[slot] != 0; slot = (slot + 1) & mask) {
      const uint32_t j = table[slot] - 1;
      if (hashes[j] == h && same_text(docnos[j], docnos[i])) return i;
    }
    table[slot] = static_cast<uint32_t>(i + 1);
  }
  return -1;
}

}  // namespace

void build_table(Qrels& qr) {
  const int64_t nq = qr.num_queries();
  qr.table_offsets.assign(nq + 1, 0);
  for (int64_t q = 0; q < nq; ++q) {
    int64_t cap = 2;
    while (cap < 2 * (qr.offsets[q + 1] - qr.offsets[q])) cap *= 2;
    qr.table_offsets[q + 1] = qr.table_offsets[q] + cap;
  }
  qr.table.assign(qr.table_offsets[nq], 0);
  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; ++q) {
      uint64_t* t = qr.table.data() + qr.table_offsets[q];
      const uint64_t mask = static_cast<uint64_t>(qr.table_offsets[q + 1] - qr.table_offsets[q] - 1);
      for (int64_t i = qr.offsets[q]; i < qr.offsets[q + 1]; ++i) {
        const uint64_t h = hash_bytes(qr.docnos[i]);
        uint64_t slot = h & mask;
        while (t[slot] != 0) slot = (slot + 1) & mask;
        t[slot] = ((h >> 32) << 32) | static_cast<uint64_t>(i - qr.offsets[q] + 1);
      }
    }
  }, 64);
}

namespace {

template <typename T>
void scatter(Lines<T>& lines, const Plan& plan, BigVector<std::string_view>& docnos,
             BigVector<T>& values) {
  const int64_t n = static_cast<int64_t>(lines.docnos.size());
  docnos.resize(n);
  values.resize(n);
  int64_t src = 0;
  for (size_t s = 0; s < lines.segments.size(); ++s) {
    const int64_t count = lines.segments[s].count;
    std::copy_n(lines.docnos.begin() + src, count, docnos.begin() + plan.dest[s]);
    std::copy_n(lines.values.begin() + src, count, values.begin() + plan.dest[s]);
    src += count;
  }
  lines = Lines<T>();
}

}  // namespace

Plan plan_segments(const std::vector<SegmentInfo>& segments) {
  std::unordered_map<std::string_view, int64_t, StringViewHash> ids;
  std::vector<std::string_view> uniq;
  std::vector<int64_t> seg_query(segments.size()), lines;
  for (size_t s = 0; s < segments.size(); ++s) {
    auto it = ids.try_emplace(segments[s].qid, static_cast<int64_t>(uniq.size())).first;
    if (it->second == static_cast<int64_t>(uniq.size())) {
      uniq.push_back(segments[s].qid);
      lines.push_back(0);
    }
    seg_query[s] = it->second;
    lines[it->second] += segments[s].count;
  }
  const int64_t nq = static_cast<int64_t>(uniq.size());
  std::vector<int64_t> order(nq), rank(nq);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return uniq[a] < uniq[b]; });
  Plan plan;
  plan.qids.resize(nq);
  plan.offsets.assign(nq + 1, 0);
  for (int64_t r = 0; r < nq; ++r) {
    rank[order[r]] = r;
    plan.qids[r] = uniq[order[r]];
    plan.offsets[r + 1] = plan.offsets[r] + lines[order[r]];
  }
  std::vector<int64_t> cursor(plan.offsets.begin(), plan.offsets.end() - 1);
  plan.dest.resize(segments.size());
  for (size_t s = 0; s < segments.size(); ++s) {
    plan.dest[s] = cursor[rank[seg_query[s]]];
    cursor[rank[seg_query[s]]] += segments[s].count;
  }
  return plan;
}

void finish_run(Run& run, Duplicate* dup) {
  const int64_t nq = run.num_queries();
  std::vector<uint8_t> has_dup(nq, 0);
  std::vector<std::string_view> dup_docno(nq);
  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    std::vector<Entry<double>> entries;
    std::vector<KeyedRow> keyed, scratch;
    std::vector<uint64_t> hashes;
    std::vector<uint32_t> table;
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t b = run.offsets[q], n = run.offsets[q + 1] - b;
      std::string_view* d = run.docnos.data() + b;
      double* s = run.scores.data() + b;
      bool sorted = true;  // runs usually come sorted by score already
      for (int64_t i = 1; i < n && sorted; ++i) sorted = !rank_before(s[i], d[i], s[i - 1], d[i - 1]);
      if (!sorted) {
        // Integer keys order by score; the docno text is read only on ties.
        keyed.resize(n);
        for (int64_t i = 0; i < n; ++i) keyed[i] = {score_key(s[i]), static_cast<uint32_t>(i)};
        sort_by_key_desc(keyed.data(), keyed.size(), scratch, [](const KeyedRow& x) { return x.key; },
                         [d](const KeyedRow& x, const KeyedRow& y) { return compare_text(d[x.row], d[y.row]) > 0; });
        entries.resize(n);
        for (int64_t i = 0; i < n; ++i) entries[i] = {s[i], d[i]};
        for (int64_t i = 0; i < n; ++i) s[i] = entries[keyed[i].row].value, d[i] = entries[keyed[i].row].docno;
      }
      // A docno retrieved twice may carry two scores, so it need not be adjacent.
      const int64_t at = find_repeat(d, n, hashes, table);
      if (at >= 0) has_dup[q] = 1, dup_docno[q] = d[at];
    }
  }, 16);
  report_first(run.qids, dup_docno, has_dup, dup);
}

void finish_qrels(Qrels& qr, Duplicate* dup) {
  const int64_t nq = qr.num_queries();
  std::vector<uint8_t> has_dup(nq, 0);
  std::vector<std::string_view> dup_docno(nq);
  parallel_for(0, nq, [&](int64_t lo, int64_t hi) {
    std::vector<Entry<int64_t>> entries;
    std::vector<KeyedRow> keyed, scratch;
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t b = qr.offsets[q], n = qr.offsets[q + 1] - b;
      RK_CHECK_ARG(n < (int64_t(1) << 31), "qrels: query '", qr.qids[q], "' has ", n,
                   " judgments, at most 2**31 - 1 are supported");
      // Ascending docno: descending on the complemented 8-byte prefix, the
      // text compared only on equal prefixes. Equal docnos are a duplicate,
      // refused below, so their order is moot.
      const std::string_view* d = qr.docnos.data() + b;
      keyed.resize(n);
      for (int64_t i = 0; i < n; ++i) keyed[i] = {~text_prefix(d[i]), static_cast<uint32_t>(i)};
      sort_by_key_desc(keyed.data(), keyed.size(), scratch, [](const KeyedRow& x) { return x.key; },
                       [d](const KeyedRow& x, const KeyedRow& y) { return compare_text(d[x.row], d[y.row]) < 0; });
      entries.resize(n);
      for (int64_t i = 0; i < n; ++i) entries[i] = {qr.rels[b + keyed[i].row], d[keyed[i].row]};
      for (int64_t i = 0; i < n; ++i) {
        qr.rels[b + i] = entries[i].value;
        qr.docnos[b + i] = entries[i].docno;
        if (i > 0 && !has_dup[q] && entries[i].docno == entries[i - 1].docno)
          has_dup[q] = 1, dup_docno[q] = entries[i].docno;
      }
    }
  }, 16);
  report_first(qr.qids, dup_docno, has_dup, dup);
  if (!dup->found) build_table(qr);
}

Run assemble_run(Lines<double>&& lines, std::shared_ptr<const void> storage, std::string runid,
                 Duplicate* dup) {
  Plan plan = plan_segments(lines.segments);
  Run run;
  scatter(lines, plan, run.docnos, run.scores);
  run.qids = std::move(plan.qids);
  run.offsets = std::move(plan.offsets);
  run.storage = std::move(storage);
  run.runid = std::move(runid);
  finish_run(run, dup);
  if (dup->found) return Run{};
  return run;
}

Qrels assemble_qrels(Lines<int64_t>&& lines, std::shared_ptr<const void> storage, Duplicate* dup) {
  Plan plan = plan_segments(lines.segments);
  Qrels qr;
  scatter(lines, plan, qr.docnos, qr.rels);
  qr.qids = std::move(plan.qids);
  qr.offsets = std::move(plan.offsets);
  qr.storage = std::move(storage);
  finish_qrels(qr, dup);
  if (dup->found) return Qrels{};
  return qr;
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
