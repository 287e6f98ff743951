// Block-Max WAND (Ding and Suel, "Faster top-k document retrieval using
// block-max indexes", SIGIR 2011), as in PISA's block_max_wand_query.
//
// WAND picks a pivot: the first document, in cursor order, whose terms' maxima
// can beat the k-th score. The block maxima of the pivot's blocks then give a
// tighter bound; when even that cannot beat the k-th score, every document up
// to the end of the shortest of those blocks is skipped.
#pragma once

#include <algorithm>
#include <vector>

#include "sparse/query.h"

namespace ragkernels::sparse {

inline void block_max_wand_query(QueryContext& q, TopKQueue& top) {
  std::vector<TermCursor*> terms;
  for (TermCursor& t : q.terms) terms.push_back(&t);
  const size_t m = terms.size();
  auto by_doc = [](const TermCursor* a, const TermCursor* b) { return a->postings.doc() < b->postings.doc(); };
  std::sort(terms.begin(), terms.end(), by_doc);

  while (true) {
    // Pivot: the first prefix (in doc order) whose maxima can beat the threshold.
    double upper = 0;
    size_t pivot = m;
    for (size_t i = 0; i < m && terms[i]->postings.doc() != kEndDoc; ++i) {
      upper += terms[i]->max_score;
      if (q.safe_bound(upper) > top.threshold()) {
        pivot = i;
        break;
      }
    }
    if (pivot == m) return;
    const uint32_t pivot_doc = terms[pivot]->postings.doc();
    while (pivot + 1 < m && terms[pivot + 1]->postings.doc() == pivot_doc) ++pivot;

    double block_upper = 0;
    for (size_t i = 0; i <= pivot; ++i) {
      block_upper += terms[i]->weight * terms[i]->postings.block_max_at(pivot_doc);
    }
    if (q.safe_bound(block_upper) > top.threshold()) {
      if (terms[0]->postings.doc() == pivot_doc) {
        for (size_t i = 0; i <= pivot; ++i) {
          TermCursor& t = *terms[i];
          q.contributions[t.position] = t.contribution();
          t.postings.next();
        }
        const float final_score = q.finish_candidate();
        if (top.would_enter(final_score)) top.push(final_score, pivot_doc);
      } else {
        for (size_t i = 0; i < pivot && terms[i]->postings.doc() < pivot_doc; ++i) {
          terms[i]->postings.next_geq(pivot_doc);
        }
      }
    } else {
      // No document before `next` can enter: past the end of the pivot terms'
      // current blocks, or the next term's document.
      uint64_t next = kEndDoc;
      size_t widest = 0;
      for (size_t i = 0; i <= pivot; ++i) {
        next = std::min<uint64_t>(next, uint64_t{terms[i]->postings.shallow_last_doc()} + 1);
        if (terms[i]->max_score > terms[widest]->max_score) widest = i;
      }
      if (pivot + 1 < m) next = std::min<uint64_t>(next, terms[pivot + 1]->postings.doc());
      terms[widest]->postings.next_geq(static_cast<uint32_t>(std::min<uint64_t>(next, kEndDoc)));
    }
    // Cursors moved: restore doc order (nearly sorted: insertion sort).
    for (size_t i = 1; i < m; ++i) {
      for (size_t j = i; j > 0 && by_doc(terms[j], terms[j - 1]); --j) std::swap(terms[j], terms[j - 1]);
    }
  }
}

}  // namespace ragkernels::sparse
