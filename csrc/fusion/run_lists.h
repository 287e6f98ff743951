// Builds fuse.h's RunLists from compact arrays: per run, ids (n_queries x
// depth_r, int32 or int64 corpus ids, -1 pads anywhere in a row) and scores of
// the same shape (float32 or float64), rows aligned by query across runs. Each
// row's ids are mapped to per-query ids in first-seen order (run 0 first), and
// `raw_ids` keeps the way back. A row is in insertion order (fuse ranks it as
// ranx would). Queries run in parallel.
#pragma once

#include <cstdint>
#include <vector>

#include "core/array_view.h"
#include "fusion/fuse.h"

namespace ragkernels::fusion {

struct ArrayRun {
  // Exactly one of ids64 / ids32 and one of scores64 / scores32 is set; all
  // views share one shape (rows = n_queries).
  ConstView2<int64_t> ids64;
  ConstView2<int32_t> ids32;
  ConstView2<double> scores64;
  ConstView2<float> scores32;
  bool wide_ids = true;
  bool wide_scores = true;
};

struct ArrayRunLists {
  RunLists lists;
  std::vector<int64_t> raw_offsets;  // n_queries + 1 into raw_ids
  std::vector<int64_t> raw_ids;      // per query: corpus id of each per-query id
};

// Throws ValueError naming runs[r] on an id < -1, a repeated id in a row or a
// score of a real (non -1) id that is NaN or +-inf.
ArrayRunLists runs_from_arrays(const std::vector<ArrayRun>& runs, int64_t n_queries);

}  // namespace ragkernels::fusion
