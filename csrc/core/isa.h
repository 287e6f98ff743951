// Which instruction-set copy of a kernel runs here.
//
// Hot kernels (csrc/dense/scan_kernel.inc, csrc/rerank/maxsim_kernel.inc) are
// compiled once per instruction set, each copy in its own namespace under
// `#pragma GCC target` (GCC defines no __AVX512F__ & co. there, so RK_ISA
// names the copy being compiled), and the best copy the processor supports is
// picked at run time by best_isa(): one binary for any x86-64 (or aarch64,
// where the baseline copy is NEON), one rule for every area.
#pragma once

#include <cstdlib>
#include <string_view>

#define RK_ISA_BASELINE 0
#define RK_ISA_AVX2 1
#define RK_ISA_AVX512 2
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RK_ISA_X86 1
#endif

// Small loops that only need the compiler's own vectorization get an AVX2
// clone chosen at load time (GCC target_clones, an ifunc). Elsewhere (aarch64,
// clang) the attribute does not exist, and under TSan GCC instruments the
// ifunc resolver, which the loader runs before the TSan runtime is up (a
// segfault at load): there each function is compiled once.
#if defined(RK_ISA_X86) && !defined(__SANITIZE_THREAD__)
#define RK_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RK_TARGET_CLONES
#endif

namespace ragkernels {

enum class Isa { kBaseline = RK_ISA_BASELINE, kAvx2 = RK_ISA_AVX2, kAvx512 = RK_ISA_AVX512 };

// The best copy this processor runs, capped by the environment variable
// RAGKERNELS_ISA ("baseline", "avx2" or "avx512"; read at every call), so
// that the tests run every copy a machine supports and a user can rule a
// wider one out. An unknown name caps nothing.
inline Isa best_isa() {
  Isa best = Isa::kBaseline;
#ifdef RK_ISA_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    best = Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    best = Isa::kAvx2;
  }
#endif
  const char* cap = std::getenv("RAGKERNELS_ISA");
  if (cap == nullptr) return best;
  const std::string_view name(cap);
  const Isa limit = name == "baseline" ? Isa::kBaseline : name == "avx2" ? Isa::kAvx2 : Isa::kAvx512;
  return static_cast<int>(best) < static_cast<int>(limit) ? best : limit;
}

}  // namespace ragkernels
