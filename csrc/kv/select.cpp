// Eviction policies' choice of kept positions (select.h).
#include "kv/select.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/array_view.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/topk.h"

namespace ragkernels::kv {

namespace {

// Pooled scores of the `length` positions of `row`: a window of `kernel`
// centred on each, padded outside the row (ignored by max, 0 in the average).
void pool_row(const float* row, int64_t length, Pool pool, int64_t kernel, float* out) {
  const int64_t half = kernel / 2;
  for (int64_t i = 0; i < length; ++i) {
    const int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(length, i + half + 1);
    if (pool == Pool::kMax) {
      float m = row[lo];
      for (int64_t j = lo + 1; j < hi; ++j) m = (row[j] > m || std::isnan(row[j])) ? row[j] : m;
      out[i] = m;
    } else {
      float sum = 0.0f;
      for (int64_t j = lo; j < hi; ++j) sum += row[j];
      out[i] = sum / static_cast<float>(kernel);
    }
  }
}

}  // namespace

void select_positions(const Selection& s, int32_t* out) {
  RK_CHECK_ARG(s.sinks >= 0 && s.recent >= 0, "eviction: sinks and the recent window must be >= 0");
  RK_CHECK_ARG(s.budget >= s.sinks + s.recent && s.budget >= 1, "eviction: budget (", s.budget,
               ") must be >= 1 and >= sinks + window (", s.sinks, " + ", s.recent, ")");
  RK_CHECK_ARG(s.kernel >= 1 && s.kernel % 2 == 1, "eviction: the pooling kernel must be odd, got ", s.kernel);
  const int64_t kept = std::min(s.budget, s.length);
  const int64_t begin = s.sinks, end = s.length - s.recent;  // the middle, chosen by score
  const int64_t heavy = kept - s.sinks - s.recent;
  RK_CHECK_ARG(s.length <= s.budget || heavy == 0 || s.scores, "eviction: scores are needed to choose ", heavy,
               " positions");
  parallel_for(0, s.streams, [&](int64_t first, int64_t last) {
    std::vector<float> pooled;
    std::vector<int64_t> ids;
    std::vector<float> top;
    for (int64_t stream = first; stream < last; ++stream) {
      int32_t* o = out + stream * kept;
      if (s.length <= s.budget) {
        for (int64_t i = 0; i < s.length; ++i) o[i] = static_cast<int32_t>(i);
        continue;
      }
      int64_t n = 0;
      for (int64_t i = 0; i < s.sinks; ++i) o[n++] = static_cast<int32_t>(i);
      if (heavy > 0) {
        const float* row = s.scores + stream * s.length;
        pooled.resize(static_cast<size_t>(end - begin));
        if (s.pool == Pool::kNone) {
          std::copy(row + begin, row + end, pooled.begin());
        } else {
          pool_row(row + begin, end - begin, s.pool, s.kernel, pooled.data());
        }
        ids.resize(static_cast<size_t>(heavy));
        top.resize(static_cast<size_t>(heavy));
        topk<float>(make_view2<const float>(pooled.data(), 1, end - begin), heavy, make_view2(ids.data(), 1, heavy),
                    make_view2(top.data(), 1, heavy));
        std::sort(ids.begin(), ids.end());
        for (int64_t id : ids) o[n++] = static_cast<int32_t>(begin + id);
      }
      for (int64_t i = end; i < s.length; ++i) o[n++] = static_cast<int32_t>(i);
    }
  });
}

void segment_summaries(const Tokens& keys, const int64_t* starts, int64_t segments, bool minmax, float* out_a,
                       float* out_b) {
  RK_CHECK_ARG(segments >= 0, "segment summaries: segments must be >= 0");
  for (int64_t j = 0; j < segments; ++j) {
    RK_CHECK_ARG(starts[j] >= 0 && starts[j] < starts[j + 1] && starts[j + 1] <= keys.tokens,
                 "segment summaries: segment ", j, " spans [", starts[j], ", ", starts[j + 1],
                 "), not a non-empty run of increasing tokens within the ", keys.tokens, " cached");
  }
  const int64_t dim = keys.dim;
  parallel_for(0, keys.streams * segments, [&](int64_t first, int64_t last) {
    std::vector<float> row(static_cast<size_t>(dim));
    for (int64_t item = first; item < last; ++item) {
      const int64_t stream = item / segments, j = item % segments;
      float* a = out_a + item * dim;
      float* b = minmax ? out_b + item * dim : nullptr;
      for (int64_t t = starts[j]; t < starts[j + 1]; ++t) {
        load_row(keys, stream, t, row.data());
        for (int64_t d = 0; d < dim; ++d) {
          const float x = row[d];
          if (t == starts[j]) {
            a[d] = x;
            if (b) b[d] = x;
          } else if (minmax) {
            a[d] = (x < a[d] || std::isnan(x)) && !std::isnan(a[d]) ? x : a[d];
            b[d] = (x > b[d] || std::isnan(x)) && !std::isnan(b[d]) ? x : b[d];
          } else {
            a[d] += x;
          }
        }
      }
      if (!minmax) {
        const float inv = 1.0f / static_cast<float>(starts[j + 1] - starts[j]);
        for (int64_t d = 0; d < dim; ++d) a[d] *= inv;
      }
    }
  });
}

}  // namespace ragkernels::kv
