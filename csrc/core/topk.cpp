#include "core/topk.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/isa.h"
#include "core/parallel.h"

namespace ragkernels {
namespace {

// Maps a float to an unsigned integer of the same width and order: a > b <=>
// key(a) > key(b); -0.0 and +0.0 share a key and every NaN gets key 0, below
// the key of -inf. Integer operations only, without branches, so that the
// compiler vectorises the loops that call it.
template <typename U>
inline U monotone_key_bits(U bits) {
  constexpr U sign = U(1) << (8 * sizeof(U) - 1);
  constexpr U inf = sizeof(U) == 4 ? U(0x7F800000u) : U(0x7FF0000000000000ull);
  const U magnitude = bits & ~sign;
  bits = magnitude == 0 ? 0 : bits;                                      // -0.0 -> +0.0
  const U key = bits ^ ((U(0) - (bits >> (8 * sizeof(U) - 1))) | sign);  // negative: ~bits
  return magnitude > inf ? 0 : key;                                      // NaN -> 0
}

template <typename T, typename U>
inline U monotone_key(T x) {
  static_assert(sizeof(T) == sizeof(U), "key must be as wide as the score");
  U bits;
  std::memcpy(&bits, &x, sizeof bits);
  return monotone_key_bits(bits);
}

// A candidate packed into one unsigned integer: the score key above the
// complemented column index, so "larger word" means "higher score, then lower
// index" and one integer comparison orders candidates.
template <typename T>
struct Packing;
template <>
struct Packing<float> {
  using Key = uint32_t;
  using Word = uint64_t;
};
template <>
struct Packing<double> {
  using Key = uint64_t;
  using Word = unsigned __int128;
};

template <typename T>
inline typename Packing<T>::Word pack(typename Packing<T>::Key key, int64_t index) {
  using Word = typename Packing<T>::Word;
  return (Word(key) << 32) | Word(0xFFFFFFFFu - static_cast<uint32_t>(index));
}

inline int64_t unpack_index(uint64_t w) { return 0xFFFFFFFFu - static_cast<uint32_t>(w); }
inline int64_t unpack_index(unsigned __int128 w) { return 0xFFFFFFFFu - static_cast<uint32_t>(w); }

// Whether any of n contiguous scores is greater than t (NaN never is). In a
// long row most blocks hold no candidate, so the scan asks this of a whole
// block first. It is the loop worth vector instructions: GCC clones it for
// AVX2 and picks the clone at load time, so one binary runs on any x86-64
// (no -march=native); RK_TARGET_CLONES is in core/isa.h.

template <typename T>
inline bool any_greater_impl(const T* p, int64_t n, T t) {
  int any = 0;
  for (int64_t i = 0; i < n; ++i) any |= p[i] > t;
  return any != 0;
}
RK_TARGET_CLONES bool any_greater(const float* p, int64_t n, float t) { return any_greater_impl(p, n, t); }
RK_TARGET_CLONES bool any_greater(const double* p, int64_t n, double t) { return any_greater_impl(p, n, t); }

constexpr int64_t kBlock = 32;

// Selection with a rising threshold: every element better than the current
// bar is appended to a buffer; when it fills, nth_element keeps the best k and
// the bar rises to the k-th of them. On random data only about k * ln(n / k)
// elements are ever appended, so the cost is one load, one key and one
// comparison per element, plus O(k log k) at the end. The append is written
// without a branch (store, then advance by the comparison), since whether an
// element clears the bar is unpredictable early in a row.
template <typename T>
class RowSelector {
 public:
  using Key = typename Packing<T>::Key;
  using Word = typename Packing<T>::Word;

  void select(ConstView1<T> row, int64_t k, View1<int64_t> ids, View1<T> out) {
    const int64_t n = row.size;
    take_ = std::min(k, n);
    capacity_ = 2 * take_ + 32;
    buf_.resize(capacity_ + 1);  // +1: the slot a rejected element is stored to
    size_ = 0;
    threshold_ = 0;  // every packed word is above 0: the index part is >= 1
    skip_blocks_ = false;
    if (take_ * 16 >= n && n >= 512 && select_by_sample(row)) {
      finish(row, k, ids, out);
      return;
    }
    for (int64_t start = 0; start < n; start += kBlock) {
      const int64_t end = std::min(n, start + kBlock);
      // A later index never beats an equal score, so a block with no score
      // above the bar's holds no candidate.
      if (skip_blocks_ && row.stride == 1 && !any_greater(row.data + start, end - start, threshold_score_))
        continue;
      for (int64_t i = start; i < end; ++i) {
        const Word w = pack<T>(monotone_key<T, Key>(row[i]), i);
        buf_[size_] = w;
        size_ += w > threshold_;
        if (size_ == capacity_) raise_bar(row);
      }
    }
    finish(row, k, ids, out);
  }

 private:
  // The best take_ of the size_ candidates in buf_, sorted, to the outputs.
  void finish(ConstView1<T> row, int64_t k, View1<int64_t> ids, View1<T> out) {
    const auto best_first = std::greater<Word>();
    if (size_ > take_) std::nth_element(buf_.begin(), buf_.begin() + take_, buf_.begin() + size_, best_first);
    std::sort(buf_.begin(), buf_.begin() + take_, best_first);
    for (int64_t j = 0; j < take_; ++j) {
      ids[j] = unpack_index(buf_[j]);
      out[j] = row[ids[j]];
    }
    for (int64_t j = take_; j < k; ++j) {
      ids[j] = -1;
      out[j] = -std::numeric_limits<T>::infinity();
    }
  }

  // When a large share of the row wins, a rising bar has little to skip.
  // Instead, estimate the bar from an evenly spaced sample (a rank a little
  // below the expected k-th), and keep everything above it in one pass
  // without branches. Returns false, having changed nothing that matters,
  // when the estimate was too high to leave take_ candidates.
  bool select_by_sample(ConstView1<T> row) {
    const int64_t n = row.size, samples = 128;
    sample_.resize(samples);
    for (int64_t j = 0; j < samples; ++j) {
      const int64_t i = j * n / samples;
      sample_[j] = pack<T>(monotone_key<T, Key>(row[i]), i);
    }
    // Expect take_ * samples / n sampled winners; aim 25% + 4 lower.
    const int64_t rank = std::min(samples - 1, take_ * samples / n + take_ * samples / (4 * n) + 4);
    std::nth_element(sample_.begin(), sample_.begin() + rank, sample_.end(), std::greater<Word>());
    const Word bar = sample_[rank];
    buf_.resize(n + 1);  // also enough for the rising-bar pass if this fails
    int64_t size = 0;
    for (int64_t i = 0; i < n; ++i) {
      const Word w = pack<T>(monotone_key<T, Key>(row[i]), i);
      buf_[size] = w;
      size += w >= bar;
    }
    if (size < take_) return false;
    size_ = size;
    return true;
  }

  // Keep the best take_ candidates; the worst of them is the new bar.
  void raise_bar(ConstView1<T> row) {
    std::nth_element(buf_.begin(), buf_.begin() + (take_ - 1), buf_.begin() + size_, std::greater<Word>());
    size_ = take_;
    threshold_ = buf_[take_ - 1];
    threshold_score_ = row[unpack_index(threshold_)];
    // A NaN bar admits every number: no block may be skipped then.
    skip_blocks_ = threshold_score_ == threshold_score_;
  }

  std::vector<Word> buf_;
  std::vector<Word> sample_;
  int64_t take_ = 0;
  int64_t capacity_ = 0;
  int64_t size_ = 0;
  Word threshold_ = 0;
  T threshold_score_ = 0;
  bool skip_blocks_ = false;
};

}  // namespace

template <typename T>
void topk(ConstView2<T> scores, int64_t k, View2<int64_t> out_ids, View2<T> out_scores) {
  RK_CHECK_ARG(k >= 1, "topk: k must be >= 1, got ", k);
  RK_CHECK_ARG(scores.cols < (int64_t(1) << 32), "topk: rows longer than 2^32 - 1 are not supported, got ",
               scores.cols);
  RK_DCHECK(out_ids.rows == scores.rows && out_ids.cols == k);
  RK_DCHECK(out_scores.rows == scores.rows && out_scores.cols == k);
  // Rows of a few hundred elements are too cheap to hand a thread each.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(scores.cols, 1));
  parallel_for(0, scores.rows, [&](int64_t lo, int64_t hi) {
    RowSelector<T> selector;
    for (int64_t r = lo; r < hi; ++r) selector.select(scores.row(r), k, out_ids.row(r), out_scores.row(r));
  }, grain);
}

template void topk<float>(ConstView2<float>, int64_t, View2<int64_t>, View2<float>);
template void topk<double>(ConstView2<double>, int64_t, View2<int64_t>, View2<double>);

}  // namespace ragkernels
