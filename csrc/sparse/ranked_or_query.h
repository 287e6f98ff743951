// Exhaustive document-at-a-time evaluation: every posting of every query term
// is scored. The oracle the pruned algorithms are tested against.
#pragma once

#include "sparse/query.h"

namespace ragkernels::sparse {

inline void ranked_or_query(QueryContext& q, TopKQueue& top) {
  uint32_t doc = kEndDoc;
  for (const TermCursor& t : q.terms) doc = std::min(doc, t.postings.doc());
  while (doc != kEndDoc) {
    float sum = 0;  // terms are in query order: this is the canonical sum
    uint32_t next = kEndDoc;
    for (TermCursor& t : q.terms) {
      if (t.postings.doc() == doc) {
        sum += t.contribution();
        t.postings.next();
      }
      next = std::min(next, t.postings.doc());
    }
    const float final_score = sum + q.constant;
    if (top.would_enter(final_score)) top.push(final_score, doc);
    doc = next;
  }
}

}  // namespace ragkernels::sparse
