// IEEE binary16, the storage type of float16 vectors.
#pragma once

namespace ragkernels {

// _Float16 is the standard name (x86-64 since GCC 12, every target since
// GCC 13). GCC 12 on aarch64 has only ARM's __fp16: the same IEEE format (the
// only one on aarch64), converted with the same round-to-nearest-even, and
// arithmetic on it is done in float, as our kernels do anyway.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
using float16 = __fp16;
#else
using float16 = _Float16;
#endif

}  // namespace ragkernels
