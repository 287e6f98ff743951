#include "fusion/normalize.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ragkernels::fusion {

namespace {

constexpr double kFloor = 1e-9;  // ranx's denominator floor

// Python's max(a, b): a unless b is greater (matters only for NaN).
inline double py_max(double a, double b) { return b > a ? b : a; }

double min_of(const double* s, int64_t n) {
  double m = s[0];
  for (int64_t i = 1; i < n; ++i)
    if (s[i] < m) m = s[i];
  return m;
}

double max_of(const double* s, int64_t n) {
  double m = s[0];
  for (int64_t i = 1; i < n; ++i)
    if (s[i] > m) m = s[i];
  return m;
}

// Left to right from 0, as numba's builtin sum and np.mean accumulate.
double sum_of(const double* s, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += s[i];
  return acc;
}

}  // namespace

Norm parse_norm(const std::string& name) {
  if (name == "min-max" || name == "min_max") return Norm::kMinMax;
  if (name == "min-max-inverted" || name == "min_max_inverted") return Norm::kMinMaxInverted;
  if (name == "max") return Norm::kMax;
  if (name == "sum") return Norm::kSum;
  if (name == "zmuv") return Norm::kZmuv;
  if (name == "rank") return Norm::kRank;
  if (name == "borda") return Norm::kBorda;
  throw ValueError(detail::message("fuse: norm must be one of 'min-max', 'min-max-inverted', 'max', 'sum', ",
                                   "'zmuv', 'rank', 'borda' or None, got '", name, "'"));
}

void normalize(Norm norm, double* s, int64_t n) {
  RK_DCHECK(norm != Norm::kBorda);
  if (n == 0 || norm == Norm::kNone) return;
  switch (norm) {
    case Norm::kMinMax:
    case Norm::kMinMaxInverted: {
      const double lo = min_of(s, n), hi = max_of(s, n);
      const double den = py_max(hi - lo, kFloor);
      if (norm == Norm::kMinMax) {
        for (int64_t i = 0; i < n; ++i) s[i] = (s[i] - lo) / den;
      } else {
        for (int64_t i = 0; i < n; ++i) s[i] = (hi - s[i]) / den;
      }
      break;
    }
    case Norm::kMax: {
      const double den = py_max(max_of(s, n), kFloor);
      for (int64_t i = 0; i < n; ++i) s[i] = s[i] / den;
      break;
    }
    case Norm::kSum: {
      const double lo = min_of(s, n);
      const double den = py_max(sum_of(s, n) - lo * static_cast<double>(n), kFloor);
      for (int64_t i = 0; i < n; ++i) s[i] = (s[i] - lo) / den;
      break;
    }
    case Norm::kZmuv: {
      const double mean = sum_of(s, n) / static_cast<double>(n);
      double ssd = 0.0;
      for (int64_t i = 0; i < n; ++i) ssd += (s[i] - mean) * (s[i] - mean);
      // numba: var() ** 0.5; pow(x, 0.5) and sqrt are both correctly rounded.
      const double den = py_max(std::sqrt(ssd / static_cast<double>(n)), kFloor);
      for (int64_t i = 0; i < n; ++i) s[i] = (s[i] - mean) / den;
      break;
    }
    case Norm::kRank:
      for (int64_t i = 0; i < n; ++i) s[i] = 1.0 - static_cast<double>(i) / static_cast<double>(n);
      break;
    default:
      break;
  }
}

}  // namespace ragkernels::fusion
