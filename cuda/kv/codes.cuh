// Device helpers shared by the KV kernels (include from .cu files only):
// token loads widened to float32 and packed code lookups, with the layouts
// of csrc/kv/tokens.h and csrc/kv/quantize.h.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kv/quantize.cuh"

namespace ragkernels::cuda::kv {

// float16 bits to float32: exact (a subnormal half is a normal float).
__device__ __forceinline__ float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// Element `at` of a token view, widened to float32 exactly.
__device__ __forceinline__ float load_element(const DeviceTokens& t, int64_t at) {
  switch (t.dtype) {
    case Dtype::kFloat32:
      return static_cast<const float*>(t.data)[at];
    case Dtype::kFloat16:
      return half_bits_to_float(static_cast<const uint16_t*>(t.data)[at]);
    default:  // bfloat16: the high half of a float32
      return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(t.data)[at]) << 16);
  }
}

// Code of channel `d` in a packed row: code i sits at bits
// [(i % per_byte) * width, ...) of byte i / per_byte; a 3-bit row is a 2-bit
// plane (`plane2` = ceil(dim / 4) bytes) followed by a 1-bit plane.
__device__ __forceinline__ int code_at(const uint8_t* row, int64_t d, int bits, int64_t plane2) {
  switch (bits) {
    case 2:
      return (row[d >> 2] >> (static_cast<int>(d & 3) * 2)) & 3;
    case 4:
      return (row[d >> 1] >> (static_cast<int>(d & 1) * 4)) & 15;
    case 8:
      return row[d];
    default: {  // 3
      const int low = (row[d >> 2] >> (static_cast<int>(d & 3) * 2)) & 3;
      const int high = (row[plane2 + (d >> 3)] >> static_cast<int>(d & 7)) & 1;
      return low | (high << 2);
    }
  }
}

}  // namespace ragkernels::cuda::kv
