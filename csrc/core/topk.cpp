#include "core/topk.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels {
namespace {

// Maps a float to an unsigned integer with the same order: a > b  <=>
// key(a) > key(b); -0.0 and +0.0 share a key and every NaN gets key 0, below
// the key of -inf.
template <typename T, typename U>
inline U monotone_key(T x) {
  static_assert(sizeof(T) == sizeof(U), "key must be as wide as the score");
  if (x != x) return 0;
  if (x == 0) x = 0;  // -0.0 -> +0.0
  U bits;
  std::memcpy(&bits, &x, sizeof bits);
  const U sign = U(1) << (8 * sizeof(U) - 1);
  return (bits & sign) ? ~bits : (bits | sign);
}

// One candidate: its monotone score key, and the column index. "Better" is
// the larger key, then the smaller index.
template <typename U>
struct Candidate {
  U key;
  uint32_t index;
};

template <typename U>
inline bool better(const Candidate<U>& a, const Candidate<U>& b) {
  return a.key > b.key || (a.key == b.key && a.index < b.index);
}

template <typename T>
using KeyOf = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

// The largest key among n contiguous scores. Most blocks of a long row hold no
// winner, so the heap loop first asks this question of a whole block. It is
// the one loop worth vector instructions: GCC clones it for AVX2 and picks
// the clone at load time, so one binary runs on any x86-64 (no -march=native).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define RK_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RK_TARGET_CLONES
#endif

template <typename T>
inline KeyOf<T> block_max_key_impl(const T* p, int64_t n) {
  KeyOf<T> m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, monotone_key<T, KeyOf<T>>(p[i]));
  return m;
}
RK_TARGET_CLONES uint32_t block_max_key(const float* p, int64_t n) { return block_max_key_impl(p, n); }
RK_TARGET_CLONES uint64_t block_max_key(const double* p, int64_t n) { return block_max_key_impl(p, n); }

constexpr int64_t kBlock = 64;

template <typename T>
void topk_row(ConstView1<T> row, int64_t k, View1<int64_t> ids, View1<T> out,
              std::vector<Candidate<KeyOf<T>>>& buf) {
  using U = KeyOf<T>;
  const int64_t n = row.size;
  const int64_t take = std::min(k, n);
  auto cmp = [](const Candidate<U>& a, const Candidate<U>& b) { return better(a, b); };
  buf.clear();
  if (take > 0 && take * 8 < n) {
    // Few winners: keep a heap of the best `take` seen; its root is the worst
    // of them, and most elements lose to it with one comparison.
    for (int64_t i = 0; i < take; ++i)
      buf.push_back({monotone_key<T, U>(row[i]), static_cast<uint32_t>(i)});
    std::make_heap(buf.begin(), buf.end(), cmp);
    for (int64_t start = take; start < n; start += kBlock) {
      const int64_t end = std::min(n, start + kBlock);
      // A later index never beats an equal key, so "<=" skips the block.
      if (row.stride == 1 && block_max_key(row.data + start, end - start) <= buf.front().key) continue;
      for (int64_t i = start; i < end; ++i) {
        const Candidate<U> c{monotone_key<T, U>(row[i]), static_cast<uint32_t>(i)};
        if (better(c, buf.front())) {
          std::pop_heap(buf.begin(), buf.end(), cmp);
          buf.back() = c;
          std::push_heap(buf.begin(), buf.end(), cmp);
        }
      }
    }
    std::sort_heap(buf.begin(), buf.end(), cmp);
  } else if (take > 0) {
    buf.reserve(n);
    for (int64_t i = 0; i < n; ++i)
      buf.push_back({monotone_key<T, U>(row[i]), static_cast<uint32_t>(i)});
    if (take < n) std::nth_element(buf.begin(), buf.begin() + take, buf.end(), cmp);
    std::sort(buf.begin(), buf.begin() + take, cmp);
  }
  for (int64_t j = 0; j < take; ++j) {
    ids[j] = buf[j].index;
    out[j] = row[buf[j].index];
  }
  for (int64_t j = take; j < k; ++j) {
    ids[j] = -1;
    out[j] = -std::numeric_limits<T>::infinity();
  }
}

}  // namespace

template <typename T>
void topk(ConstView2<T> scores, int64_t k, View2<int64_t> out_ids, View2<T> out_scores) {
  RK_CHECK_ARG(k >= 1, "topk: k must be >= 1, got ", k);
  RK_CHECK_ARG(scores.cols < (int64_t(1) << 32), "topk: rows longer than 2^32 - 1 are not supported, got ",
               scores.cols);
  RK_DCHECK(out_ids.rows == scores.rows && out_ids.cols == k);
  RK_DCHECK(out_scores.rows == scores.rows && out_scores.cols == k);
  parallel_for(0, scores.rows, [&](int64_t lo, int64_t hi) {
    std::vector<Candidate<KeyOf<T>>> buf;
    for (int64_t r = lo; r < hi; ++r) topk_row(scores.row(r), k, out_ids.row(r), out_scores.row(r), buf);
  });
}

template void topk<float>(ConstView2<float>, int64_t, View2<int64_t>, View2<float>);
template void topk<double>(ConstView2<double>, int64_t, View2<int64_t>, View2<double>);

}  // namespace ragkernels
