#include "select/mmr.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>

#include "core/error.h"
#include "core/parallel.h"

namespace ragkernels::select {

DenseSimilarity::DenseSimilarity(ConstView2<float> rows, const double* norms)
    : rows_(rows), norms_(static_cast<size_t>(rows.rows)) {
  if (norms != nullptr) {
    std::copy(norms, norms + rows.rows, norms_.begin());
  } else {
    row_norms(rows, norms_.data());
  }
}

double DenseSimilarity::operator()(int64_t i, int64_t j) const {
  if (norms_[i] == 0 || norms_[j] == 0) return 0.0;
  const double c = dot(&rows_(i, 0), &rows_(j, 0), rows_.cols) / (norms_[i] * norms_[j]);
  return std::min(1.0, std::max(-1.0, c));
}

TermSimilarity::TermSimilarity(const Ragged& terms, int64_t first, int64_t n) {
  offsets_.push_back(0);
  std::vector<int64_t> sorted;
  for (int64_t i = 0; i < n; ++i) {
    sorted.clear();
    for (int64_t p = terms.begin(first + i); p < terms.end(first + i); ++p) {
      if (terms.values[p] >= 0) sorted.push_back(terms.values[p]);
    }
    std::sort(sorted.begin(), sorted.end());
    double sq = 0;
    for (size_t p = 0; p < sorted.size();) {
      size_t q = p;
      while (q < sorted.size() && sorted[q] == sorted[p]) ++q;
      ids_.push_back(sorted[p]);
      tf_.push_back(static_cast<double>(q - p));
      sq += tf_.back() * tf_.back();
      p = q;
    }
    norms_.push_back(std::sqrt(sq));
    offsets_.push_back(static_cast<int64_t>(ids_.size()));
  }
}

double TermSimilarity::operator()(int64_t i, int64_t j) const {
  if (norms_[i] == 0 || norms_[j] == 0) return 0.0;
  double acc = 0;
  int64_t a = offsets_[i], b = offsets_[j];
  while (a < offsets_[i + 1] && b < offsets_[j + 1]) {
    if (ids_[a] < ids_[b]) {
      ++a;
    } else if (ids_[b] < ids_[a]) {
      ++b;
    } else {
      acc += tf_[a++] * tf_[b++];
    }
  }
  return std::min(1.0, acc / (norms_[i] * norms_[j]));
}

namespace {

struct Entry {
  double bound;
  int64_t index;
};

// Max-heap order: higher bound first, then lower index.
struct Lower {
  bool operator()(const Entry& a, const Entry& b) const {
    return a.bound < b.bound || (a.bound == b.bound && a.index > b.index);
  }
};

}  // namespace

void rank_by_relevance(const double* relevance, int64_t n, int64_t k, bool stop_at_nonpositive, MmrResult& out) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t m = std::min(k, n);
  std::partial_sort(idx.begin(), idx.begin() + m, idx.end(), [&](int64_t a, int64_t b) {
    return relevance[a] > relevance[b] || (relevance[a] == relevance[b] && a < b);
  });
  out.order.clear();
  out.gains.clear();
  for (int64_t t = 0; t < m; ++t) {
    if (stop_at_nonpositive && !(relevance[idx[t]] > 0)) break;
    out.order.push_back(idx[t]);
    out.gains.push_back(relevance[idx[t]]);
  }
}

template <typename Sim>
void mmr(const double* relevance, int64_t n, const Sim& sim, double lambda, int64_t k, bool stop_at_nonpositive,
         MmrResult& out) {
  if (lambda == 1.0) return rank_by_relevance(relevance, n, k, stop_at_nonpositive, out);
  out.order.clear();
  out.gains.clear();
  const int64_t m = std::min(k, n);
  if (m <= 0) return;
  // First pick: the max over no pick is 0.
  int64_t first = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (lambda * relevance[i] > lambda * relevance[first]) first = i;
  }
  const double first_gain = lambda * relevance[first] - (1 - lambda) * 0.0;
  if (stop_at_nonpositive && !(first_gain > 0)) return;
  out.order.push_back(first);
  out.gains.push_back(first_gain);
  std::vector<double> max_sim(static_cast<size_t>(n), 0.0);
  std::vector<int64_t> seen(static_cast<size_t>(n), 0);  // picks folded into max_sim
  std::priority_queue<Entry, std::vector<Entry>, Lower> heap;
  for (int64_t i = 0; i < n; ++i) {
    if (i != first) heap.push({lambda * relevance[i] - (1 - lambda) * Sim::kMin, i});
  }
  while (static_cast<int64_t>(out.order.size()) < m && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    const int64_t i = top.index;
    const auto picked = static_cast<int64_t>(out.order.size());
    if (seen[i] < picked) {
      for (int64_t p = seen[i]; p < picked; ++p) {
        const double s = sim(i, out.order[p]);
        max_sim[i] = p == 0 ? s : std::max(max_sim[i], s);
      }
      seen[i] = picked;
      heap.push({lambda * relevance[i] - (1 - lambda) * max_sim[i], i});
      continue;
    }
    if (stop_at_nonpositive && !(top.bound > 0)) break;
    out.order.push_back(i);
    out.gains.push_back(top.bound);
  }
}

template void mmr<DenseSimilarity>(const double*, int64_t, const DenseSimilarity&, double, int64_t, bool,
                                   MmrResult&);
template void mmr<TermSimilarity>(const double*, int64_t, const TermSimilarity&, double, int64_t, bool,
                                  MmrResult&);

void mmr_batch(ConstView1<double> relevance, ConstView2<float> embeddings, const Ragged* terms,
               ConstView1<int64_t> groups, double lambda, int64_t k, std::vector<MmrResult>& out) {
  RK_DCHECK(relevance.contiguous());
  out.assign(static_cast<size_t>(groups.size - 1), MmrResult{});
  parallel_for(0, groups.size - 1, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t s0 = groups[g], n = groups[g + 1] - s0;
      const double* rel = relevance.data + s0;
      if (n == 0) continue;
      if (embeddings.rows > 0) {
        const ConstView2<float> rows{&embeddings(s0, 0), n, embeddings.cols, embeddings.row_stride,
                                     embeddings.col_stride};
        mmr(rel, n, DenseSimilarity(rows), lambda, k, false, out[g]);
      } else {
        mmr(rel, n, TermSimilarity(*terms, s0, n), lambda, k, false, out[g]);
      }
    }
  });
}

}  // namespace ragkernels::select
