// Term-at-a-time evaluation into a dense accumulator (as bm25s and Anserini's
// impact search do): every posting of every query term is added, in query
// order, to its document's slot; then the top k of the touched documents are
// selected. No pruning, but a posting costs an add instead of a cursor step,
// which wins wherever lists are short or queries have few terms.
//
// Exact like the others: slots start at -0.0, and -0.0 + c == c for every
// c >= 0, so a slot receives the canonical float32 sum of its contributions
// (all >= 0). A slot whose sign bit is still set was never touched: no epoch
// array and no branch is needed to tell matching documents from the rest.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "sparse/query.h"

namespace ragkernels::sparse {

// Per-thread scratch sized to the corpus, all -0.0 between queries.
struct Accumulator {
  std::vector<float> score;
  std::vector<uint32_t> touched;
};

// Pushes every touched slot that can enter, in doc order. Blocks of 16 slots
// whose maximum cannot beat the k-th score are skipped with one comparison
// (the max loop vectorizes).
inline void select_from_all_slots(const float* slots, uint64_t num_docs, float constant, TopKQueue& top) {
  constexpr uint64_t kBlock = 16;
  float threshold = top.threshold();
  auto consider = [&](uint64_t begin, uint64_t end) {
    for (uint64_t doc = begin; doc < end; ++doc) {
      const float s = slots[doc];
      if (!std::signbit(s) && s + constant > threshold) {
        top.push(s + constant, static_cast<uint32_t>(doc));
        threshold = top.threshold();
      }
    }
  };
  uint64_t doc = 0;
  for (; doc + kBlock <= num_docs; doc += kBlock) {
    float best = slots[doc];
    for (uint64_t j = 1; j < kBlock; ++j) best = std::max(best, slots[doc + j]);
    if (best + constant > threshold) consider(doc, doc + kBlock);
  }
  consider(doc, num_docs);
}

inline void term_at_a_time_query(QueryContext& q, Accumulator& acc, uint64_t num_docs, TopKQueue& top) {
  if (acc.score.size() != num_docs) acc.score.assign(num_docs, -0.0f);
  float* slots = acc.score.data();
  uint64_t postings = 0;
  for (const TermCursor& t : q.terms) postings += t.postings.size();
  // Few documents for the postings: scan every slot afterwards (in doc order;
  // the blocked scan costs far less per slot than a touched-list entry, hence
  // the factor, tuned on the benchmark corpora). Otherwise remember the
  // touched slots as they are first reached.
  const bool scan_all = num_docs <= 4 * postings;
  acc.touched.clear();
  for (TermCursor& t : q.terms) {
    const float weight = t.weight;
    if (scan_all) {
      t.postings.for_each_below(kEndDoc, [&](uint32_t doc, float score) { slots[doc] += weight * score; });
    } else {
      t.postings.for_each_below(kEndDoc, [&](uint32_t doc, float score) {
        if (std::signbit(slots[doc])) acc.touched.push_back(doc);
        slots[doc] += weight * score;  // = t.contribution()
      });
    }
  }
  if (scan_all) {
    select_from_all_slots(slots, num_docs, q.constant, top);
    std::fill(slots, slots + num_docs, -0.0f);
  } else {
    for (uint32_t doc : acc.touched) {
      top.push_unordered(slots[doc] + q.constant, doc);
      slots[doc] = -0.0f;
    }
  }
}

}  // namespace ragkernels::sparse
