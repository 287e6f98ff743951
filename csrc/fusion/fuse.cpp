#include "fusion/fuse.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "fusion/ranx_order.h"

namespace ragkernels::fusion {

namespace {

struct MethodName {
  const char* name;
  Method method;
};

constexpr MethodName kMethods[] = {
    {"rrf", Method::kRrf},       {"wrrf", Method::kWrrf},         {"sum", Method::kSum},
    {"mnz", Method::kMnz},       {"max", Method::kMax},           {"min", Method::kMin},
    {"med", Method::kMed},       {"anz", Method::kAnz},           {"gmnz", Method::kGmnz},
    {"wsum", Method::kWsum},     {"wmnz", Method::kWmnz},         {"mixed", Method::kMixed},
    {"isr", Method::kIsr},       {"log_isr", Method::kLogIsr},    {"logn_isr", Method::kLognIsr},
    {"rbc", Method::kRbc},       {"bordafuse", Method::kBordafuse}, {"w_bordafuse", Method::kWBordafuse},
};

// numba's float ** int (numba/cpython/numbers.py int_power_impl), which is not
// pow(): repeated squaring, so rbc's phi^i matches ranx to the last bit.
double int_power(double a, int64_t exp) {
  if (exp > 0x10000) return std::pow(a, static_cast<double>(exp));
  double r = 1.0;
  while (exp != 0) {
    if (exp & 1) r *= a;
    exp >>= 1;
    a *= a;
  }
  return r;
}

// One query's ranked lists, reused across the queries of a chunk.
struct Scratch {
  std::vector<int32_t> perm, stack, docs, docs2, order;
  std::vector<double> vals, vals2, table, fused, med;
  std::vector<int64_t> off;  // n_runs + 1 into docs / vals
  std::vector<uint8_t> present, seen;
};

// Re-ranks run r's list [b, e) of s.docs / s.vals in ranx order.
void rerank(Scratch& s, int64_t b, int64_t e) {
  const auto n = static_cast<int32_t>(e - b);
  s.perm.resize(static_cast<size_t>(n));
  ranx_argsort(s.vals.data() + b, n, s.perm.data(), s.stack);
  s.docs2.assign(s.docs.begin() + b, s.docs.begin() + e);
  s.vals2.assign(s.vals.begin() + b, s.vals.begin() + e);
  for (int32_t i = 0; i < n; ++i) {
    s.docs[static_cast<size_t>(b + i)] = s.docs2[static_cast<size_t>(s.perm[static_cast<size_t>(i)])];
    s.vals[static_cast<size_t>(b + i)] = s.vals2[static_cast<size_t>(s.perm[static_cast<size_t>(i)])];
  }
}

// Candidates of the query (every doc of every run, first-seen order) -> s.order.
void first_seen(Scratch& s, int64_t n_docs) {
  s.seen.assign(static_cast<size_t>(n_docs), 0);
  s.order.clear();
  for (int32_t d : s.docs) {
    if (!s.seen[static_cast<size_t>(d)]) {
      s.seen[static_cast<size_t>(d)] = 1;
      s.order.push_back(d);
    }
  }
}

// Every run gets every candidate (ranx borda_norm / _borda_score): listed docs
// `listed(i)`, the others `unlisted`, in candidate order (bordafuse: listed
// first). ranx takes candidates from a Python set; we take first-seen order.
template <typename Listed>
void spread_over_candidates(Scratch& s, int64_t n_runs, int64_t n_docs, bool listed_first, Listed listed,
                            double (*unlisted)(double n_listed, double n_cand)) {
  first_seen(s, n_docs);
  const auto n_c = static_cast<int64_t>(s.order.size());
  s.docs2.clear();
  s.vals2.clear();
  std::vector<int64_t> off2{0};
  std::vector<int32_t> rank(static_cast<size_t>(n_docs));
  for (int64_t r = 0; r < n_runs; ++r) {
    const int64_t b = s.off[static_cast<size_t>(r)], e = s.off[static_cast<size_t>(r) + 1];
    std::fill(rank.begin(), rank.end(), -1);
    for (int64_t i = b; i < e; ++i) rank[static_cast<size_t>(s.docs[static_cast<size_t>(i)])] = static_cast<int32_t>(i - b);
    const double other = unlisted(static_cast<double>(e - b), static_cast<double>(n_c));
    if (listed_first) {
      for (int64_t i = b; i < e; ++i) {
        s.docs2.push_back(s.docs[static_cast<size_t>(i)]);
        s.vals2.push_back(listed(i - b, n_c));
      }
    }
    for (int32_t d : s.order) {
      const int32_t i = rank[static_cast<size_t>(d)];
      if (i >= 0 && listed_first) continue;
      s.docs2.push_back(d);
      s.vals2.push_back(i >= 0 ? listed(i, n_c) : other);
    }
    off2.push_back(static_cast<int64_t>(s.docs2.size()));
  }
  std::swap(s.docs, s.docs2);
  std::swap(s.vals, s.vals2);
  s.off = off2;
}

// Steps 1-2 of fuse.h: ranked, normalized, rank-transformed lists per run.
void prepare_runs(const RunLists& runs, const FuseOptions& o, int64_t q, Scratch& s) {
  const int64_t R = runs.n_runs, n_docs = runs.n_docs[static_cast<size_t>(q)];
  s.docs.clear();
  s.vals.clear();
  s.off.assign(1, 0);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t b = runs.offsets[static_cast<size_t>(q * R + r)], e = runs.offsets[static_cast<size_t>(q * R + r + 1)];
    for (int64_t i = b; i < e; ++i) {
      const double v = runs.scores[static_cast<size_t>(i)];
      RK_CHECK_ARG(std::isfinite(v), "fuse: runs[", r, "] has a score of ", non_finite_name(v), " in query ", q,
                   "; scores must be finite");
    }
    const int64_t at = static_cast<int64_t>(s.docs.size());
    s.docs.insert(s.docs.end(), runs.docs.begin() + b, runs.docs.begin() + e);
    s.vals.insert(s.vals.end(), runs.scores.begin() + b, runs.scores.begin() + e);
    if (!runs.presorted[static_cast<size_t>(r)]) rerank(s, at, at + (e - b));
    s.off.push_back(static_cast<int64_t>(s.docs.size()));
  }
  if (o.norm == Norm::kBorda) {
    spread_over_candidates(
        s, R, n_docs, false, [](int64_t i, int64_t n_c) { return 1.0 - static_cast<double>(i) / static_cast<double>(n_c); },
        [](double n_r, double n_c) { return 0.5 - (n_r - 1.0) / (2.0 * n_c); });
  } else {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t b = s.off[static_cast<size_t>(r)], e = s.off[static_cast<size_t>(r) + 1];
      normalize(o.norm, s.vals.data() + b, e - b);
      if (o.norm == Norm::kMinMaxInverted) rerank(s, b, e);  // ranx sorts the inverted run again
    }
  }
  const Method m = o.method;
  if (m == Method::kBordafuse || m == Method::kWBordafuse) {
    spread_over_candidates(
        s, R, n_docs, true, [](int64_t i, int64_t n_c) { return static_cast<double>(n_c - i); },
        [](double n_r, double n_c) { return (n_c - n_r + 1.0) / 2.0; });
    return;
  }
  for (int64_t r = 0; r < R; ++r) {
    const int64_t b = s.off[static_cast<size_t>(r)], e = s.off[static_cast<size_t>(r) + 1];
    for (int64_t i = 0; i < e - b; ++i) {
      double& v = s.vals[static_cast<size_t>(b + i)];
      if (m == Method::kRrf || m == Method::kWrrf) v = 1.0 / (o.k + static_cast<double>(i) + 1.0);
      else if (m == Method::kIsr || m == Method::kLogIsr || m == Method::kLognIsr)
        v = 1.0 / static_cast<double>((i + 1) * (i + 1));
      else if (m == Method::kRbc) v = (1.0 - o.phi) * int_power(o.phi, i);
    }
  }
}

// Step 3: the fused score of doc d from its column of the run table.
double combine(const FuseOptions& o, const double* weights, Scratch& s, int64_t R, int64_t n_docs, int32_t d) {
  const Method m = o.method;
  double sum = 0.0, wsum = 0.0;
  int64_t count = 0;
  double best = 0.0, worst = 0.0;
  s.med.clear();
  for (int64_t r = 0; r < R; ++r) {
    const size_t at = static_cast<size_t>(r * n_docs + d);
    const bool has = s.present[at] != 0;
    const double v = has ? s.table[at] : 0.0;
    const double w = weights == nullptr ? 1.0 : weights[r];
    switch (m) {
      case Method::kSum: case Method::kRrf: case Method::kRbc: case Method::kBordafuse:
        sum += v;
        break;
      case Method::kWsum: case Method::kWrrf: case Method::kWBordafuse:
        sum += w * v;
        break;
      case Method::kMax: {  // Python max() over [score or -1e9 per run]
        const double x = has ? v : -1e9;
        if (r == 0 || x > best) best = x;
        break;
      }
      case Method::kMin: {
        const double x = has ? v : 1e9;
        if (r == 0 || x < worst) worst = x;
        break;
      }
      default:
        if (has) {
          sum += m == Method::kMixed ? v * w : v;
          wsum += w;
          ++count;
          if (m == Method::kMed) s.med.push_back(v);
        }
    }
  }
  const auto n = static_cast<double>(count);
  switch (m) {
    case Method::kMax: return best;
    case Method::kMin: return worst;
    case Method::kMnz: case Method::kIsr: return sum * n;
    case Method::kAnz: return sum / n;
    case Method::kGmnz: return sum * std::pow(n, o.gamma);
    case Method::kWmnz: return sum * wsum;
    case Method::kMixed: return sum * std::sqrt(n);
    case Method::kLogIsr: return sum * std::log(n);
    case Method::kLognIsr: return sum * std::log(n + o.sigma);
    case Method::kMed: {
      std::sort(s.med.begin(), s.med.end());
      const size_t h = s.med.size() / 2;
      return s.med.size() % 2 ? s.med[h] : (s.med[h - 1] + s.med[h]) / 2;
    }
    default: return sum;
  }
}

void fuse_query(const RunLists& runs, const FuseOptions& o, int64_t q, Scratch& s, int32_t* out_docs,
                double* out_scores, int64_t n_out) {
  const int64_t R = runs.n_runs, n_docs = runs.n_docs[static_cast<size_t>(q)];
  prepare_runs(runs, o, q, s);
  s.table.assign(static_cast<size_t>(R * n_docs), 0.0);
  s.present.assign(static_cast<size_t>(R * n_docs), 0);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t i = s.off[static_cast<size_t>(r)]; i < s.off[static_cast<size_t>(r) + 1]; ++i) {
      const size_t at = static_cast<size_t>(r * n_docs + s.docs[static_cast<size_t>(i)]);
      s.table[at] = s.vals[static_cast<size_t>(i)];
      s.present[at] = 1;
    }
  }
  first_seen(s, n_docs);
  RK_DCHECK(static_cast<int64_t>(s.order.size()) == n_docs);
  const double* weights = nullptr;  // this query's row of weights
  if (!o.weights.empty())
    weights = o.weights.data() + (static_cast<int64_t>(o.weights.size()) == R ? 0 : q * R);
  s.fused.resize(s.order.size());
  for (size_t i = 0; i < s.order.size(); ++i) s.fused[i] = combine(o, weights, s, R, n_docs, s.order[i]);
  s.perm.resize(s.order.size());
  const Method m = o.method;
  const bool rank_based = m == Method::kRrf || m == Method::kWrrf || m == Method::kIsr || m == Method::kLogIsr ||
                          m == Method::kLognIsr || m == Method::kRbc || m == Method::kBordafuse ||
                          m == Method::kWBordafuse;
  ranx_argsort(s.fused.data(), static_cast<int32_t>(s.fused.size()), s.perm.data(), s.stack, rank_based);
  for (int64_t i = 0; i < n_out; ++i) {
    const auto p = static_cast<size_t>(s.perm[static_cast<size_t>(i)]);
    out_docs[i] = s.order[p];
    out_scores[i] = s.fused[p];
  }
}

void check_options(const RunLists& runs, const FuseOptions& o) {
  RK_CHECK_ARG(std::isfinite(o.k) && o.k >= 0, "fuse: k must be a finite number >= 0, got ", o.k);
  RK_CHECK_ARG(o.sigma >= 0 && o.sigma <= 1, "fuse: sigma must be in [0, 1], got ", o.sigma);
  RK_CHECK_ARG(o.phi >= 0 && o.phi <= 1, "fuse: phi must be in [0, 1], got ", o.phi);
  RK_CHECK_ARG(std::isfinite(o.gamma), "fuse: gamma must be finite, got ", o.gamma);
  if (needs_weights(o.method)) {
    const auto n = static_cast<int64_t>(o.weights.size());
    RK_CHECK_ARG(n == runs.n_runs || (n == runs.n_queries * runs.n_runs && n > 0), "fuse: method '",
                 method_name(o.method), "' needs weights, one per run (", runs.n_runs,
                 ") or one per query and run (", runs.n_queries, " x ", runs.n_runs, "), got ", n, " values");
    for (double w : o.weights) RK_CHECK_ARG(std::isfinite(w), "fuse: weights must be finite, got ", w);
  } else {
    RK_CHECK_ARG(o.weights.empty(), "fuse: method '", method_name(o.method),
                 "' takes no weights (weighted methods: wsum, wmnz, mixed, wrrf, w_bordafuse)");
  }
  RK_DCHECK(static_cast<int64_t>(runs.offsets.size()) == runs.n_queries * runs.n_runs + 1);
  RK_DCHECK(static_cast<int64_t>(runs.presorted.size()) == runs.n_runs);
}

}  // namespace

Method parse_method(const std::string& name) {
  for (const auto& m : kMethods)
    if (name == m.name) return m.method;
  std::string all;
  for (const auto& m : kMethods) all += std::string(all.empty() ? "'" : ", '") + m.name + "'";
  throw ValueError(detail::message("fuse: method must be one of ", all, ", got '", name, "'"));
}

const char* method_name(Method method) {
  for (const auto& m : kMethods)
    if (m.method == method) return m.name;
  return "?";
}

bool needs_weights(Method m) {
  return m == Method::kWsum || m == Method::kWmnz || m == Method::kMixed || m == Method::kWrrf ||
         m == Method::kWBordafuse;
}

Fused fuse(const RunLists& runs, const FuseOptions& options) {
  check_options(runs, options);
  Fused out;
  out.offsets.assign(static_cast<size_t>(runs.n_queries) + 1, 0);
  for (int64_t q = 0; q < runs.n_queries; ++q) {
    int64_t n = runs.n_docs[static_cast<size_t>(q)];
    if (options.top_k >= 0) n = std::min(n, options.top_k);
    out.offsets[static_cast<size_t>(q) + 1] = out.offsets[static_cast<size_t>(q)] + n;
  }
  out.docs.resize(static_cast<size_t>(out.offsets.back()));
  out.scores.resize(static_cast<size_t>(out.offsets.back()));
  parallel_for(0, runs.n_queries, [&](int64_t lo, int64_t hi) {
    Scratch scratch;
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t at = out.offsets[static_cast<size_t>(q)];
      fuse_query(runs, options, q, scratch, out.docs.data() + at, out.scores.data() + at,
                 out.offsets[static_cast<size_t>(q) + 1] - at);
    }
  });
  return out;
}

}  // namespace ragkernels::fusion
