// Per-query score normalizations, as ranx.normalization computes them
// (float64, same formulas, same 1e-9 floors, same summation order).
//
// Each takes one query's scores of one run in ranx order (best first) and
// rewrites them in place; n == 0 is a no-op.
//   min-max            (s - min) / max(max - min, 1e-9)
//   min-max-inverted   (max - s) / max(max - min, 1e-9), then re-ranked
//   max                s / max(max, 1e-9)        (all-negative runs: / 1e-9)
//   sum                (s - min) / max(sum - n * min, 1e-9)
//   zmuv               (s - mean) / max(std, 1e-9), population std
//   rank               1 - i / n for the doc at 0-based position i
//   borda              needs the candidate set of all runs: see fuse.cpp
#pragma once

#include <cstdint>
#include <string>

namespace ragkernels::fusion {

enum class Norm { kNone, kMinMax, kMinMaxInverted, kMax, kSum, kZmuv, kRank, kBorda };

// "min-max", "min_max", "min-max-inverted", "max", "sum", "zmuv", "rank",
// "borda" (ranx's spellings); throws ValueError naming `norm` otherwise.
Norm parse_norm(const std::string& name);

// Applies every norm but kBorda (a precondition) to scores[0..n).
void normalize(Norm norm, double* scores, int64_t n);

}  // namespace ragkernels::fusion
