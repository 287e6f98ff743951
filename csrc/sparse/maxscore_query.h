// MaxScore (Turtle and Flood, "Query evaluation: strategies and
// optimizations", IP&M 1995), document-at-a-time as in PISA.
//
// Terms sorted by their maximum score; once the k-th score exceeds the sum of
// the smallest maxima, those terms are non-essential: only documents of the
// essential terms are candidates, and a candidate stops being scored as soon
// as its partial score plus the remaining maxima cannot beat the k-th score.
#pragma once

#include <algorithm>
#include <vector>

#include "sparse/query.h"

namespace ragkernels::sparse {

inline void maxscore_query(QueryContext& q, TopKQueue& top) {
  std::vector<TermCursor*> terms;
  for (TermCursor& t : q.terms) terms.push_back(&t);
  std::sort(terms.begin(), terms.end(), [](const TermCursor* a, const TermCursor* b) {
    return a->max_score < b->max_score || (a->max_score == b->max_score && a->position < b->position);
  });
  const size_t m = terms.size();
  std::vector<double> prefix(m);  // prefix[i]: sum of the maxima of terms[0..i]
  double acc = 0;
  for (size_t i = 0; i < m; ++i) prefix[i] = acc += terms[i]->max_score;

  size_t first_essential = 0;
  auto next_candidate = [&] {
    uint32_t doc = kEndDoc;
    for (size_t i = first_essential; i < m; ++i) doc = std::min(doc, terms[i]->postings.doc());
    return doc;
  };
  uint32_t doc = next_candidate();
  while (doc != kEndDoc) {
    double partial = 0;
    uint32_t next = kEndDoc;
    for (size_t i = first_essential; i < m; ++i) {
      TermCursor& t = *terms[i];
      if (t.postings.doc() == doc) {
        const float c = t.contribution();
        q.contributions[t.position] = c;
        partial += c;
        t.postings.next();
      }
      next = std::min(next, t.postings.doc());
    }
    bool complete = true;
    for (size_t i = first_essential; i-- > 0;) {
      if (q.safe_bound(partial + prefix[i]) <= top.threshold()) {
        complete = false;
        break;
      }
      TermCursor& t = *terms[i];
      t.postings.next_geq(doc);
      if (t.postings.doc() == doc) {
        const float c = t.contribution();
        q.contributions[t.position] = c;
        partial += c;
      }
    }
    const float final_score = q.finish_candidate();
    if (complete && top.would_enter(final_score)) {
      top.push(final_score, doc);
      const size_t before = first_essential;
      while (first_essential < m && q.safe_bound(prefix[first_essential]) <= top.threshold()) ++first_essential;
      if (first_essential != before) next = next_candidate();  // lists left the essential set
    }
    doc = next;
  }
}

}  // namespace ragkernels::sparse
