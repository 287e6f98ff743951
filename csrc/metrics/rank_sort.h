// Sorting one query's rows into rank order by an integer score key (see
// assemble.h score_key), higher first, equal keys by a tie-break.
//
// Why not std::sort alone: on shuffled rows its comparisons mispredict about
// half the time, which made sorting the larger half of building a Run from
// arrays. An LSD radix sort on the 64-bit key has no data-dependent branches
// and skips the bytes every key shares (for scores in [0, 1) the exponent
// byte). The order is total (key, then the tie-break), so any correct sort
// gives the same result.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ragkernels {
namespace metrics {
namespace detail {

// key(row) -> uint64_t; tie_before(a, b): a ranks first among equal keys.
template <typename T, typename KeyFn, typename TieFn>
void sort_by_key_desc(T* rows, size_t n, std::vector<T>& scratch, KeyFn key, TieFn tie_before) {
  auto before = [&](const T& a, const T& b) {
    const uint64_t ka = key(a), kb = key(b);
    return ka != kb ? ka > kb : tie_before(a, b);
  };
  if (n < 128) {  // the histograms would cost more than the comparisons
    std::sort(rows, rows + n, before);
    return;
  }
  uint32_t hist[8][256];
  std::memset(hist, 0, sizeof(hist));
  for (size_t i = 0; i < n; ++i) {
    const uint64_t k = ~key(rows[i]);  // ascending ~key = descending key
    for (int b = 0; b < 8; ++b) ++hist[b][(k >> (8 * b)) & 0xff];
  }
  scratch.resize(n);
  T* src = rows;
  T* dst = scratch.data();
  const uint64_t first = ~key(rows[0]);
  for (int b = 0; b < 8; ++b) {
    if (hist[b][(first >> (8 * b)) & 0xff] == n) continue;  // all keys share this byte
    uint32_t pos[256], sum = 0;
    for (int v = 0; v < 256; ++v) pos[v] = sum, sum += hist[b][v];
    for (size_t i = 0; i < n; ++i) dst[pos[(~key(src[i]) >> (8 * b)) & 0xff]++] = src[i];
    std::swap(src, dst);
  }
  if (src != rows) std::copy(src, src + n, rows);
  for (size_t i = 0; i < n;) {  // equal keys: order by the tie-break
    size_t j = i + 1;
    while (j < n && key(rows[j]) == key(rows[i])) ++j;
    if (j - i > 1) std::sort(rows + i, rows + j, tie_before);
    i = j;
  }
}

}  // namespace detail
}  // namespace metrics
}  // namespace ragkernels
