// Fusion of several runs, per query, with ranx.fuse's exact numbers and order.
//
// Input (RunLists): for each query q and run r, a segment of (doc, score)
// pairs; docs are small per-query ids in [0, n_docs[q]) (the caller maps its
// doc strings or corpus ids to them), each at most once per segment; scores are
// float64 and finite (issue 14: an inf became NaN through min-max and the
// sums, silently; the callers refuse NaN and +-inf). A segment is in the run's insertion order; unless the
// run is `presorted` it is first ranked as ranx.Run ranks a dict (ranx_order.h,
// ties included).
//
// Per query, as ranx does (ranx/meta/fuse.py, ranx/fusion/*.py):
//  1. each run is normalized (normalize.h); min-max-inverted re-ranks it;
//     borda (ranx/normalization/borda_norm.py) gives every candidate of the
//     query a score in every run;
//  2. rank-based methods replace scores by a function of the 0-based rank i:
//     rrf 1/(k+i+1), isr 1/(i+1)^2, rbc (1-phi) phi^i, bordafuse |C|-i;
//  3. docs are combined in first-seen order (run 0 best first, then new docs
//     of run 1, ...) by the method's formula over the runs that hold them;
//     missing docs count as 0 (sum, wsum, rrf), are skipped (mnz, anz, med,
//     gmnz, wmnz, mixed, isr family) or count as -1e9 / 1e9 (max / min);
//  4. the fused list is ranked like a ranx.Run (ranx_order.h) and cut at top_k.
// Every sum runs left to right from 0 over runs in order, as numba does, so
// scores are bit-identical to ranx's.
//
// Queries run in parallel (parallel_for); results do not depend on threads.
// Complexity per query: O(D log D) for D (doc, run) pairs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusion/normalize.h"

namespace ragkernels::fusion {

enum class Method {
  kRrf, kWrrf, kSum, kMnz, kMax, kMin, kMed, kAnz, kGmnz, kWsum, kWmnz, kMixed,
  kIsr, kLogIsr, kLognIsr, kRbc, kBordafuse, kWBordafuse,
};

// ranx's names ("rrf", "sum", "mnz", "max", "min", "med", "anz", "gmnz",
// "wsum", "wmnz", "mixed", "isr", "log_isr", "logn_isr", "rbc", "bordafuse",
// "w_bordafuse") plus "wrrf" (weighted RRF); ValueError naming `method` else.
Method parse_method(const std::string& name);
const char* method_name(Method m);
// Methods that need one weight per run.
bool needs_weights(Method m);

struct FuseOptions {
  Method method = Method::kRrf;
  Norm norm = Norm::kMinMax;
  double k = 60.0;        // rrf, wrrf: >= 0
  double gamma = 1.0;     // gmnz
  double sigma = 0.01;    // logn_isr, in [0, 1]
  double phi = 0.5;       // rbc, in [0, 1]
  // wsum, wmnz, mixed, wrrf, w_bordafuse: one per run, or per query and run
  // (n_queries * n_runs, query-major: adaptive per-query weights).
  std::vector<double> weights;
  int64_t top_k = -1;     // < 0: keep every fused doc
};

struct RunLists {
  int64_t n_queries = 0;
  int64_t n_runs = 0;
  std::vector<int64_t> offsets;   // n_queries * n_runs + 1; segment (q, r) at q * n_runs + r
  std::vector<int32_t> docs;      // per-query doc ids
  std::vector<double> scores;
  std::vector<int64_t> n_docs;    // n_queries: distinct docs of the query
  std::vector<uint8_t> presorted; // n_runs: 1 = segments already in ranx order
};

// "NaN", "inf" or "-inf": how a refused score is named in messages.
inline const char* non_finite_name(double s) { return s != s ? "NaN" : s > 0 ? "inf" : "-inf"; }

struct Fused {
  std::vector<int64_t> offsets;  // n_queries + 1
  std::vector<int32_t> docs;     // per-query doc ids, best first
  std::vector<double> scores;
};

// Throws ValueError on bad options (weights count, k, sigma, phi, scores not finite).
Fused fuse(const RunLists& runs, const FuseOptions& options);

}  // namespace ragkernels::fusion
