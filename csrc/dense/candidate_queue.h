// The k best rows of one query, kept as the flat scan meets them.
//
// A rising bar over a buffer, as faiss's reservoir and core/topk's row
// selector do: a row enters while it beats the bar, by an O(1) append; when the
// buffer holds 2k rows, nth_element keeps the best k and the bar rises to the
// k-th. A heap would pay a sift per entering row; with small corpora and k in
// the hundreds, rows keep entering long enough for that to dominate a batch.
//
// Order: higher score first, then lower row. Rows are offered in increasing
// order, so a row whose score equals the bar loses to the k rows kept: once
// the bar is set, only a strictly greater score enters.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "sparse/topk_queue.h"

namespace ragkernels::dense {

using sparse::ScoredDoc;

class CandidateQueue {
 public:
  void reset(size_t k) {
    k_ = k;
    rows_.clear();
    rows_.reserve(2 * k);
    bar_ = -std::numeric_limits<float>::infinity();
    bar_set_ = false;
  }

  // The score a row must beat to enter (-inf until k rows were kept).
  float threshold() const { return bar_; }
  bool would_enter(float score) const { return !bar_set_ || score > bar_; }

  // Precondition: would_enter(score); rows offered in increasing order.
  void push(float score, uint32_t row) {
    rows_.push_back({score, row});
    if (rows_.size() == 2 * k_) keep_best();
  }

  // The kept rows, best first (at most k). Leaves the queue to be reset.
  std::vector<ScoredDoc>& sorted() {
    keep_best();
    std::sort(rows_.begin(), rows_.end(), sparse::ranks_before);
    return rows_;
  }

 private:
  void keep_best() {
    if (k_ == 0) rows_.clear();
    if (k_ == 0 || rows_.size() < k_) return;
    std::nth_element(rows_.begin(), rows_.begin() + (k_ - 1), rows_.end(), sparse::ranks_before);
    rows_.resize(k_);
    bar_ = rows_[k_ - 1].score;  // the k-th best: nth_element put it there
    bar_set_ = true;
  }

  size_t k_ = 0;
  std::vector<ScoredDoc> rows_;
  float bar_ = -std::numeric_limits<float>::infinity();
  bool bar_set_ = false;
};

}  // namespace ragkernels::dense
