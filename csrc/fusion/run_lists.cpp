#include "fusion/run_lists.h"

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::fusion {

namespace {

inline int64_t id_at(const ArrayRun& a, int64_t q, int64_t c) {
  return a.wide_ids ? a.ids64(q, c) : static_cast<int64_t>(a.ids32(q, c));
}

inline double score_at(const ArrayRun& a, int64_t q, int64_t c) {
  return a.wide_scores ? a.scores64(q, c) : static_cast<double>(a.scores32(q, c));
}

inline int64_t depth(const ArrayRun& a) { return a.wide_ids ? a.ids64.cols : a.ids32.cols; }

// Open addressing from corpus id to per-query id; cleared per query.
struct IdTable {
  std::vector<int64_t> keys;
  std::vector<int32_t> values;
  uint64_t mask = 0;

  void reset(int64_t entries) {
    uint64_t cap = 16;
    while (cap < static_cast<uint64_t>(entries) * 2) cap <<= 1;
    keys.assign(cap, -1);
    values.resize(cap);
    mask = cap - 1;
  }
  // Slot of `id`: keys[slot] == id when present, -1 when free.
  size_t find(int64_t id) const {
    uint64_t h = static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull;
    size_t slot = static_cast<size_t>((h ^ (h >> 29)) & mask);
    while (keys[slot] != -1 && keys[slot] != id) slot = (slot + 1) & mask;
    return slot;
  }
};

}  // namespace

ArrayRunLists runs_from_arrays(const std::vector<ArrayRun>& runs, int64_t n_queries) {
  const auto R = static_cast<int64_t>(runs.size());
  ArrayRunLists out;
  RunLists& l = out.lists;
  l.n_queries = n_queries;
  l.n_runs = R;
  l.presorted.assign(static_cast<size_t>(R), 0);
  l.n_docs.assign(static_cast<size_t>(n_queries), 0);
  std::vector<int64_t> counts(static_cast<size_t>(n_queries * R), 0);
  parallel_for(0, n_queries, [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; ++q) {
      for (int64_t r = 0; r < R; ++r) {
        int64_t n = 0;
        for (int64_t c = 0; c < depth(runs[static_cast<size_t>(r)]); ++c) {
          const int64_t id = id_at(runs[static_cast<size_t>(r)], q, c);
          RK_CHECK_ARG(id >= -1, "fuse: runs[", r, "] ids must be >= 0, or -1 for padding; got ", id, " at (", q,
                       ", ", c, ")");
          n += id != -1;
        }
        counts[static_cast<size_t>(q * R + r)] = n;
      }
    }
  });
  l.offsets.assign(static_cast<size_t>(n_queries * R) + 1, 0);
  out.raw_offsets.assign(static_cast<size_t>(n_queries) + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) l.offsets[i + 1] = l.offsets[i] + counts[i];
  for (int64_t q = 0; q < n_queries; ++q)
    out.raw_offsets[static_cast<size_t>(q) + 1] = l.offsets[static_cast<size_t>((q + 1) * R)];
  l.docs.resize(static_cast<size_t>(l.offsets.back()));
  l.scores.resize(static_cast<size_t>(l.offsets.back()));
  out.raw_ids.resize(static_cast<size_t>(l.offsets.back()));
  parallel_for(0, n_queries, [&](int64_t lo, int64_t hi) {
    IdTable table;
    std::vector<int32_t> last_run;  // per-query id -> last run that listed it
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t base = out.raw_offsets[static_cast<size_t>(q)];
      table.reset(out.raw_offsets[static_cast<size_t>(q) + 1] - base);
      last_run.clear();
      int32_t n_local = 0;
      for (int64_t r = 0; r < R; ++r) {
        const ArrayRun& a = runs[static_cast<size_t>(r)];
        int64_t at = l.offsets[static_cast<size_t>(q * R + r)];
        for (int64_t c = 0; c < depth(a); ++c) {
          const int64_t id = id_at(a, q, c);
          if (id == -1) continue;
          const double s = score_at(a, q, c);
          RK_CHECK_ARG(std::isfinite(s), "fuse: runs[", r, "] scores[", q, ", ", c, "] is ", non_finite_name(s),
                       " (doc ", id, ", query row ", q, "); scores must be finite");
          const size_t slot = table.find(id);
          if (table.keys[slot] == -1) {
            table.keys[slot] = id;
            table.values[slot] = n_local;
            out.raw_ids[static_cast<size_t>(base + n_local)] = id;
            last_run.push_back(-1);
            ++n_local;
          }
          const int32_t local = table.values[slot];
          RK_CHECK_ARG(last_run[static_cast<size_t>(local)] != r, "fuse: runs[", r, "] lists doc ", id,
                       " twice in row ", q);
          last_run[static_cast<size_t>(local)] = static_cast<int32_t>(r);
          l.docs[static_cast<size_t>(at)] = local;
          l.scores[static_cast<size_t>(at)] = s;
          ++at;
        }
      }
      l.n_docs[static_cast<size_t>(q)] = n_local;
    }
  });
  return out;
}

}  // namespace ragkernels::fusion
