// Exhaustive document-at-a-time evaluation: every posting of every query term
// is scored. The oracle the pruned algorithms are tested against.
#pragma once

#include "sparse/query.h"

namespace ragkernels::sparse {

template <typename Scorer>
void ranked_or_query(QueryContext& q, const Scorer& score, TopKQueue& top) {
  while (true) {
    uint32_t doc = kEndDoc;
    for (const TermCursor& t : q.terms) doc = std::min(doc, t.postings.doc());
    if (doc == kEndDoc) return;
    float sum = 0;  // terms are in query order: this is the canonical sum
    for (TermCursor& t : q.terms) {
      if (t.postings.doc() == doc) {
        sum += score(t);
        t.postings.next();
      }
    }
    const float final_score = sum + q.constant;
    if (top.would_enter(final_score)) top.push(final_score, doc);
  }
}

}  // namespace ragkernels::sparse
