// Term-at-a-time evaluation into a dense accumulator (as bm25s and Anserini's
// impact search do): every posting of every query term is added, in query
// order, to its document's slot; then the top k of the touched documents are
// selected. No pruning, but a posting costs an add instead of a cursor step,
// which wins wherever lists are short or queries have few terms.
//
// Exact like the others: a document's slot receives its terms' contributions
// in query order, starting from 0, which is the canonical float32 sum.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "sparse/query.h"

namespace ragkernels::sparse {

// Per-thread scratch sized to the corpus; `epoch` marks the query that last
// touched a slot, so nothing is cleared between queries.
struct Accumulator {
  std::vector<float> score;
  std::vector<uint32_t> epoch;
  std::vector<uint32_t> touched;
  uint32_t current = 0;

  void start(uint64_t num_docs) {
    if (score.size() != num_docs) {
      score.assign(num_docs, 0.0f);
      epoch.assign(num_docs, 0);
      current = 0;
    }
    if (++current == 0) {  // wrapped after 2^32 queries: forget every mark
      std::fill(epoch.begin(), epoch.end(), 0);
      current = 1;
    }
    touched.clear();
  }
};

inline void term_at_a_time_query(QueryContext& q, Accumulator& acc, uint64_t num_docs, TopKQueue& top) {
  acc.start(num_docs);
  for (TermCursor& t : q.terms) {
    const float weight = t.weight;
    t.postings.for_each([&](uint32_t doc, float score) {
      if (acc.epoch[doc] != acc.current) {
        acc.epoch[doc] = acc.current;
        acc.score[doc] = 0.0f;
        acc.touched.push_back(doc);
      }
      acc.score[doc] += weight * score;  // = t.contribution()
    });
  }
  for (uint32_t doc : acc.touched) top.push_unordered(acc.score[doc] + q.constant, doc);
}

}  // namespace ragkernels::sparse
