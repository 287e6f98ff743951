// MaxScore (Turtle and Flood, "Query evaluation: strategies and
// optimizations", IP&M 1995), evaluated in windows of documents as Lucene's
// MaxScoreBulkScorer does.
//
// Terms come sorted by their maximum score, largest first. Once the k-th score
// exceeds the sum of the smallest maxima, those terms are non-essential: a
// document can only enter the top k if an essential term contains it. Per
// window of kWindow documents, the essential terms are added term-at-a-time
// into a small accumulator (the fast path of term_at_a_time_query.h); each
// touched document whose partial score plus the non-essential maxima can beat
// the k-th score is then completed with the non-essential terms, largest
// first, stopping as soon as it cannot. Non-essential lists are only ever
// skipped through (next_geq), never scanned.
//
// Exact: essential terms are a prefix of the canonical order and the
// non-essential ones follow in that order, so every completed document gets
// the canonical float32 sum, the same as the exhaustive algorithms compute.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "sparse/query.h"

namespace ragkernels::sparse {

inline constexpr uint32_t kWindow = 8192;
inline constexpr uint32_t kSlotBlock = 16;  // slots per touched-block bit

inline void maxscore_query(QueryContext& q, TopKQueue& top) {
  const size_t m = q.terms.size();
  if (m == 0) return;
  // suffix[i]: sum of the maxima of terms[i..m), the most terms i.. can add.
  std::vector<double>& suffix = q.suffix;
  suffix.assign(m + 1, 0.0);
  for (size_t i = m; i-- > 0;) suffix[i] = suffix[i + 1] + q.terms[i].max_score;
  q.window.assign(kWindow, -0.0f);
  float* slots = q.window.data();

  size_t essential = m;  // terms[0, essential) are essential
  float threshold = top.threshold();
  uint32_t lo = kEndDoc;
  for (const TermCursor& t : q.terms) lo = std::min(lo, t.postings.doc());
  uint64_t touched[kWindow / kSlotBlock / 64];
  while (lo != kEndDoc && essential > 0) {
    const uint32_t hi = lo + std::min<uint32_t>(kWindow, kEndDoc - lo);
    // 1. Essential terms, in canonical order, into the window (-0.0 = untouched),
    //    marking the 16-slot blocks they touch.
    std::fill(std::begin(touched), std::end(touched), 0);
    for (size_t i = 0; i < essential; ++i) {
      TermCursor& t = q.terms[i];
      const float weight = t.weight;
      t.postings.for_each_below(hi, [&](uint32_t doc, float score) {
        const uint32_t slot = doc - lo;
        slots[slot] += weight * score;
        touched[slot / (kSlotBlock * 64)] |= uint64_t{1} << (slot / kSlotBlock % 64);
      });
    }
    // 2. Candidates, in doc order, from touched blocks only; a block that
    //    cannot beat the threshold even with every non-essential maximum is
    //    skipped whole. Slots go back to -0.0 as they are read.
    const double rest = suffix[essential];
    auto complete_block = [&](uint32_t block) {
      float best = slots[block];
      for (uint32_t j = 1; j < kSlotBlock; ++j) best = std::max(best, slots[block + j]);
      const bool hopeless = q.safe_bound(double{best} + rest) <= threshold;
      for (uint32_t j = block; j < block + kSlotBlock && !hopeless; ++j) {
        float score = slots[j];
        if (std::signbit(score)) continue;
        const uint32_t doc = lo + j;
        bool complete = true;
        for (size_t i = essential; i < m && complete; ++i) {
          complete = q.safe_bound(double{score} + suffix[i]) > threshold;
          TermCursor& t = q.terms[i];
          if (!complete) break;
          t.postings.next_geq(doc);
          if (t.postings.doc() == doc) score += t.contribution();
        }
        const float final_score = score + q.constant;
        if (complete && top.would_enter(final_score)) {
          top.push(final_score, doc);
          threshold = top.threshold();
        }
      }
      std::fill(slots + block, slots + block + kSlotBlock, -0.0f);
    };
    for (uint32_t word = 0; word < kWindow / kSlotBlock / 64; ++word) {
      for (uint64_t bits = touched[word]; bits != 0; bits &= bits - 1) {
        complete_block((word * 64 + static_cast<uint32_t>(__builtin_ctzll(bits))) * kSlotBlock);
      }
    }
    // 3. The smallest terms whose maxima together cannot beat the threshold
    //    leave the essential set.
    while (essential > 0 && q.safe_bound(suffix[essential - 1]) <= threshold) --essential;
    // Next window: from the first document an essential term still holds.
    lo = kEndDoc;
    for (size_t i = 0; i < essential; ++i) lo = std::min(lo, q.terms[i].postings.doc());
  }
}

}  // namespace ragkernels::sparse
