// Which instruction-set copy of a kernel runs here.
//
// Hot kernels (csrc/dense/scan_kernel.inc, csrc/rerank/maxsim_kernel.inc) are
// compiled once per instruction set, each copy in its own namespace under
// `#pragma GCC target` (GCC defines no __AVX512F__ & co. there, so RK_ISA
// names the copy being compiled), and the best copy the processor supports is
// picked at run time by best_isa(): one binary for any x86-64 (or aarch64,
// where the baseline copy is NEON), one rule for every area.
#pragma once

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

inline Isa best_isa() {
#ifdef RK_ISA_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

}  // namespace ragkernels
