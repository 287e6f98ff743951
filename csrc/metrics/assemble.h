// Internal: turns parsed or collected lines into grouped, trec_eval-ordered
// Qrels/Run (see run_qrels.h for the ordering contract). Shared by the
// builders (run_qrels.cpp) and the parallel file readers (trec_io.cpp).
//
// Lines arrive as "segments": maximal runs of consecutive lines with the
// same qid, in input order. plan_segments() orders the queries and gives
// every segment its destination slice, so lines are written once, straight
// into the final arrays; finish_*() then sorts each query's slice in place.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/arena.h"
#include "metrics/run_qrels.h"

namespace ragkernels {
namespace metrics {
namespace detail {

struct SegmentInfo {
  std::string_view qid;
  int64_t count;
};

struct Plan {
  std::vector<std::string_view> qids;  // strcmp ascending, unique
  std::vector<int64_t> offsets;        // qids.size() + 1
  std::vector<int64_t> dest;           // per segment: its first slot
};

Plan plan_segments(const std::vector<SegmentInfo>& segments);

// The first duplicate (qid, docno) in query order, if any.
struct Duplicate {
  bool found = false;
  std::string qid;
  std::string docno;
};

// Expect qids/offsets/docnos/values filled per the plan (any order within a
// query). Sort each query (rank order; docno order) and report the first
// duplicate in query order, whatever the thread count. finish_qrels also
// builds the lookup table.
void finish_run(Run& run, Duplicate* dup);
void finish_qrels(Qrels& qrels, Duplicate* dup);

// Qrels' per-query lookup table, over docnos already in their final order.
void build_table(Qrels& qrels);

// An integer that orders scores as the rank order does, higher first: the
// IEEE bits made monotonic, with -0.0 folded onto 0.0 (they tie, as the
// comparison in trec_eval makes them) and every NaN at 0, below -inf (the
// bits of -inf map to 0x000F...F). Sorting by key then compares docnos only
// on equal keys.
inline uint64_t score_key(double s) {
  if (std::isnan(s)) return 0;
  if (s == 0) s = 0.0;
  uint64_t b;
  std::memcpy(&b, &s, sizeof(b));
  return (b >> 63) != 0 ? ~b : b | (uint64_t(1) << 63);
}

// Builders' line store, in input order.
template <typename T>
struct Lines {
  std::vector<std::string_view> docnos;
  std::vector<T> values;
  std::vector<SegmentInfo> segments;

  void push(std::string_view qid, std::string_view docno, T value) {
    if (segments.empty() || !same_text(segments.back().qid, qid)) segments.push_back({qid, 0});
    ++segments.back().count;
    docnos.push_back(docno);
    values.push_back(value);
  }
};

// Scatter + finish; on a duplicate fill `dup` and return an empty object.
Run assemble_run(Lines<double>&& lines, std::shared_ptr<const void> storage, std::string runid,
                 Duplicate* dup);
Qrels assemble_qrels(Lines<int64_t>&& lines, std::shared_ptr<const void> storage, Duplicate* dup);

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
