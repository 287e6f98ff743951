// The bounded top-k queue every query algorithm fills (as PISA's topk_queue).
//
// Order: higher score first, then lower doc id. Query algorithms visit docs in
// increasing id order, so a new doc whose score equals the current k-th score
// loses the tie: it enters only when its score is strictly greater than
// threshold(). That makes every algorithm return the same list.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace ragkernels::sparse {

struct ScoredDoc {
  float score;
  uint32_t doc;
};

// A function object, not a function, so that the heap operations inline it.
struct RanksBefore {
  bool operator()(const ScoredDoc& a, const ScoredDoc& b) const {
    return a.score > b.score || (a.score == b.score && a.doc < b.doc);
  }
};
inline constexpr RanksBefore ranks_before{};

class TopKQueue {
 public:
  void reset(size_t k) {
    k_ = k;
    heap_.clear();
  }
  bool full() const { return heap_.size() == k_; }
  // The score a doc must exceed to enter; -inf until the queue is full.
  float threshold() const { return full() ? heap_.front().score : -std::numeric_limits<float>::infinity(); }
  bool would_enter(float score) const { return !full() || score > heap_.front().score; }

  // Precondition: would_enter(score) and doc larger than every doc pushed so far.
  void push(float score, uint32_t doc) {
    if (full()) {
      replace_worst({score, doc});
    } else {
      heap_.push_back({score, doc});
      std::push_heap(heap_.begin(), heap_.end(), ranks_before);  // front: the worst kept doc
    }
  }

  // For docs visited in any order: compares (score, doc) in full.
  void push_unordered(float score, uint32_t doc) {
    if (!full()) {
      heap_.push_back({score, doc});
      std::push_heap(heap_.begin(), heap_.end(), ranks_before);
    } else if (ranks_before({score, doc}, heap_.front())) {
      replace_worst({score, doc});
    }
  }

  // The kept docs, best first. Leaves the queue empty.
  std::vector<ScoredDoc>& sorted() {
    std::sort_heap(heap_.begin(), heap_.end(), ranks_before);
    return heap_;
  }

 private:
  // The front (worst) leaves and `item` sifts down from the root: one pass,
  // where pop_heap + push_heap make two (faiss's heap_replace_top).
  void replace_worst(ScoredDoc item) {
    const size_t n = heap_.size();
    size_t i = 0;
    for (size_t child = 1; child < n; child = 2 * i + 1) {
      if (child + 1 < n && ranks_before(heap_[child], heap_[child + 1])) ++child;  // the worse child
      if (!ranks_before(item, heap_[child])) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = item;
  }

  size_t k_ = 0;
  std::vector<ScoredDoc> heap_;
};

}  // namespace ragkernels::sparse
