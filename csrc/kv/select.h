// Which cached positions an eviction policy keeps (StreamingLLM, H2O, SnapKV).
//
// Each stream (batch row x KV head) of `length` positions keeps at most
// `budget`: its first `sinks` positions (attention sinks), its last `recent`
// (the local window, or SnapKV's observation window), and the
// budget - sinks - recent best of the positions between them by score, after
// an optional 1-D pooling of those positions' scores ('same' size, as torch's
// max_pool1d / avg_pool1d with padding kernel // 2, stride 1, and
// count_include_pad for the average, over the scored positions only, as
// SnapKV pools the scores of the positions before its window). Ties go to
// the earlier position; NaN scores rank last. Kept positions come out
// increasing.
#pragma once

#include <cstdint>

#include "kv/tokens.h"

namespace ragkernels::kv {

enum class Pool : int { kNone = 0, kMax = 1, kAvg = 2 };

struct Selection {
  const float* scores = nullptr;  // [streams][length], or nullptr when nothing is chosen by score
  int64_t streams = 0;
  int64_t length = 0;
  int64_t sinks = 0;
  int64_t recent = 0;
  int64_t budget = 0;  // >= sinks + recent
  Pool pool = Pool::kNone;
  int64_t kernel = 1;  // odd
};

// Writes min(budget, length) positions per stream to out [streams][min(budget, length)].
void select_positions(const Selection& s, int32_t* out);

// Per-segment summaries of keys for query-aware selection: segment j of every
// stream spans tokens [starts[j], starts[j + 1]) (non-empty, increasing,
// within the stream). Quest's page bounds are the channel-wise minimum and
// maximum (minmax = true: out_a = min, out_b = max); SentenceKV's sentence
// key is the channel-wise mean (out_a; out_b unused). A NaN key makes its
// segment's summary NaN. Outputs: float32 [streams][segments][dim].
void segment_summaries(const Tokens& keys, const int64_t* starts, int64_t segments, bool minmax, float* out_a,
                       float* out_b);

}  // namespace ragkernels::kv
