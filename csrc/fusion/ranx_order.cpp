// Replays numba misc/quicksort.py (run_quicksort1, partition, insertion_sort)
// with GET(A, i) = -values[i] and LT = lt_floats. The index array R of numba
// is kept as (value, index) pairs so that comparisons read memory in order;
// every swap of R is the same swap of the pairs, so the result is identical.
#include "fusion/ranx_order.h"

#include <cmath>
#include <cstring>
#include <utility>

namespace ragkernels::fusion {

namespace {

constexpr int32_t kSmallQuicksort = 15;  // numba SMALL_QUICKSORT

struct Item {
  double v;
  int32_t i;
};

// numba lt_floats(-a, -b): -a < -b, or -b is NaN and -a is not. Without
// NaN among the values (kNan false) the second clause is always false.
template <bool kNan>
inline bool lt(double a, double b) {
  if constexpr (kNan) return a > b || (std::isnan(b) && !std::isnan(a));
  return a > b;
}

template <bool kNan>
void insertion_sort(Item* r, int32_t low, int32_t high) {
  if (high <= low) return;
  for (int32_t i = low + 1; i <= high; ++i) {
    const Item k = r[i];
    int32_t j = i;
    while (j > low && lt<kNan>(k.v, r[j - 1].v)) {
      r[j] = r[j - 1];
      --j;
    }
    r[j] = k;
  }
}

template <bool kNan>
int32_t partition(Item* r, int32_t low, int32_t high) {
  const int32_t mid = (low + high) >> 1;
  if (lt<kNan>(r[mid].v, r[low].v)) std::swap(r[low], r[mid]);
  if (lt<kNan>(r[high].v, r[mid].v)) std::swap(r[high], r[mid]);
  if (lt<kNan>(r[mid].v, r[low].v)) std::swap(r[low], r[mid]);
  const double pivot = r[mid].v;
  std::swap(r[high], r[mid]);
  int32_t i = low;
  int32_t j = high - 1;
  while (true) {
    while (i < high && lt<kNan>(r[i].v, pivot)) ++i;
    while (j >= low && lt<kNan>(pivot, r[j].v)) --j;
    if (i >= j) break;
    std::swap(r[i], r[j]);
    ++i;
    --j;
  }
  std::swap(r[i], r[high]);
  return i;
}

// Strictly decreasing, no NaN: every sort returns the identity, ranx's too.
bool strictly_decreasing(const double* v, int32_t n) {
  for (int32_t i = 0; i + 1 < n; ++i)
    if (!(v[i] > v[i + 1])) return false;
  return true;
}

template <bool kNan>
void quicksort(Item* r, int32_t n, std::vector<int32_t>& stack) {
  stack.clear();
  stack.push_back(0);
  stack.push_back(n - 1);
  while (!stack.empty()) {
    int32_t high = stack.back();
    stack.pop_back();
    int32_t low = stack.back();
    stack.pop_back();
    while (high - low >= kSmallQuicksort) {
      const int32_t i = partition<kNan>(r, low, high);
      if (high - i > i - low) {  // right is larger: push it, go on with the left
        if (high > i) {
          stack.push_back(i + 1);
          stack.push_back(high);
        }
        high = i - 1;
      } else {
        if (i > low) {
          stack.push_back(low);
          stack.push_back(i - 1);
        }
        low = i + 1;
      }
    }
    insertion_sort<kNan>(r, low, high);
  }
}

// Distinct values (no NaN) have one sorted order, whatever the algorithm:
// an LSD radix sort on order-preserving keys finds it in O(n). Returns false,
// leaving `r` unspecified, when two values compare equal (ties, +-0): then
// only numba's own algorithm gives ranx's order.
bool radix_sort_distinct(Item* r, int32_t n) {
  thread_local std::vector<uint64_t> keys, keys2;
  thread_local std::vector<Item> tmp;
  keys.resize(static_cast<size_t>(n));
  keys2.resize(static_cast<size_t>(n));
  tmp.resize(static_cast<size_t>(n));
  uint32_t count[8][256] = {};
  for (int32_t i = 0; i < n; ++i) {
    uint64_t u;
    std::memcpy(&u, &r[i].v, sizeof u);
    u = (u >> 63) ? ~u : (u | (uint64_t{1} << 63));  // ascending as the doubles
    u = ~u;                                           // best (largest) first
    keys[static_cast<size_t>(i)] = u;
    for (int b = 0; b < 8; ++b) ++count[b][(u >> (8 * b)) & 0xFF];
  }
  uint64_t* k = keys.data();
  uint64_t* k2 = keys2.data();
  Item* a = r;
  Item* a2 = tmp.data();
  for (int b = 0; b < 8; ++b) {
    if (count[b][(k[0] >> (8 * b)) & 0xFF] == static_cast<uint32_t>(n)) continue;  // one digit value: no-op
    uint32_t at[256];
    uint32_t sum = 0;
    for (int d = 0; d < 256; ++d) {
      at[d] = sum;
      sum += count[b][d];
    }
    for (int32_t i = 0; i < n; ++i) {
      const uint32_t d = static_cast<uint32_t>((k[i] >> (8 * b)) & 0xFF);
      k2[at[d]] = k[i];
      a2[at[d]++] = a[i];
    }
    std::swap(k, k2);
    std::swap(a, a2);
  }
  for (int32_t i = 0; i + 1 < n; ++i)
    if (a[i].v == a[i + 1].v) return false;
  if (a != r) std::memcpy(r, a, sizeof(Item) * static_cast<size_t>(n));
  return true;
}

}  // namespace

void ranx_argsort(const double* values, int32_t n, int32_t* perm, std::vector<int32_t>& stack, bool likely_ties) {
  if (n < 2 || strictly_decreasing(values, n)) {
    for (int32_t i = 0; i < n; ++i) perm[i] = i;
    return;
  }
  thread_local std::vector<Item> items;
  items.resize(static_cast<size_t>(n));
  Item* r = items.data();
  bool nan = false;
  for (int32_t i = 0; i < n; ++i) {
    r[i] = Item{values[i], i};
    nan |= std::isnan(values[i]);
  }
  if (nan) {
    quicksort<true>(r, n, stack);
  } else if (likely_ties || n < 64 || !radix_sort_distinct(r, n)) {
    for (int32_t i = 0; i < n; ++i) r[i] = Item{values[i], i};  // the radix pass may have moved them
    quicksort<false>(r, n, stack);
  }
  for (int32_t i = 0; i < n; ++i) perm[i] = r[i].i;
}

}  // namespace ragkernels::fusion
