// KIVI quantization on the GPU; the contract is in quantize.cuh.
//
// Design. Keys: one thread per (stream, block of tokens, octet of 8
// channels). It scans the block's tokens in order for its 8 channels' lo, hi
// and finiteness (in order, as the CPU does), derives the 8 scales and
// minimums, then scans the tokens again
// and writes whole bytes: an octet is exactly `bits` bytes of a 2-, 4- or
// 8-bit row, and 2 bytes of the 2-bit plane plus 1 byte of the 1-bit plane of
// a 3-bit row, so no byte is shared between threads and none needs an atomic.
// Neighbouring threads take neighbouring octets of the same tokens: a warp
// reads 256 consecutive channels of a token row at a time.
//
// Values: one warp per (stream, token) row. Lane g finds group g's lo, hi
// and finiteness (in the CPU's scan order: eight interleaved lanes, then the
// tail) and writes its scale and minimum; after a
// __syncwarp (which orders the warp's memory), lane b writes byte b of the
// packed row, reading each channel's group parameters back as float16 bits
// (exactly what the CPU op computes its codes from). The row is read from
// global memory twice; it is small and served by L1.
//
// Arithmetic: __fsub_rn / __fmul_rn / __fadd_rn / __fdiv_rn round each step
// on its own (nvcc would otherwise contract (x - m) * inv + 0.5 into an FMA,
// which quantize.cpp, compiled with -ffp-contract=off, does not), and float16
// conversions are the hardware's round-to-nearest-even ones, bit-identical
// to csrc/core/float16.h's on every non-NaN input. Denormals are kept (the
// module is not built with -ftz=true or --use_fast_math), as on the CPU.
#include "kv/quantize.cuh"

#include <cuda_fp16.h>

#include <algorithm>
#include <climits>

#include "kv/codes.cuh"

namespace ragkernels::cuda::kv {
namespace {

constexpr int kThreads = 256;
constexpr int kOctet = 8;                   // channels per key thread
constexpr int64_t kMaxBlocks = 1 << 20;     // grid-stride loops beyond
constexpr uint16_t kHalfNaN = 0x7e00;       // what quantize.cpp stores for a non-finite group

__device__ __forceinline__ uint16_t float_to_half_bits(float x) { return __half_as_ushort(__float2half_rn(x)); }

// The largest float16 <= x and the smallest float16 >= x (x not NaN), as
// quantize.cpp's round_down / round_up: round to nearest, then one step
// outward when that went the wrong way (+-0 steps to the smallest subnormal).
__device__ uint16_t round_down(float x) {
  const uint16_t b = float_to_half_bits(x);
  if (half_bits_to_float(b) <= x) return b;
  if ((b & 0x7fff) == 0) return 0x8001;
  return static_cast<uint16_t>((b & 0x8000) ? b + 1 : b - 1);
}

__device__ uint16_t round_up(float x) {
  const uint16_t b = float_to_half_bits(x);
  if (half_bits_to_float(b) >= x) return b;
  if ((b & 0x7fff) == 0) return 0x0001;
  return static_cast<uint16_t>((b & 0x8000) ? b - 1 : b + 1);
}

// A group's float16 scale and minimum and what codes are computed from:
// base = the minimum as float, inverse = 1 / scale (0 when scale <= 0 or NaN).
struct Params {
  uint16_t scale, minimum;
  float base, inverse;
  bool overflow;  // a finite group beyond float16: the CPU op's ValueError
};

__device__ Params group_params(float lo, float hi, bool finite, int levels) {
  Params p;
  if (!finite) {
    p.scale = p.minimum = kHalfNaN;
    p.base = half_bits_to_float(kHalfNaN);
    p.inverse = 0.0f;
    p.overflow = false;
    return p;
  }
  // + 0: a zero extreme is +0 whichever zero the scan met first (-0 + 0 is +0), as quantize.cpp does
  p.minimum = round_down(__fadd_rn(lo, 0.0f));
  p.base = half_bits_to_float(p.minimum);
  p.scale = round_up(__fdiv_rn(__fsub_rn(__fadd_rn(hi, 0.0f), p.base), static_cast<float>(levels)));
  const float s = half_bits_to_float(p.scale);
  p.overflow = !(isfinite(p.base) && isfinite(s));
  p.inverse = s > 0.0f ? __fdiv_rn(1.0f, s) : 0.0f;
  return p;
}

// floor((x - base) * inverse + 1/2) clamped to [0, levels]; the clamp comes
// first, so truncation is the floor; NaN gives 0 (quantize.cpp's code_of).
__device__ __forceinline__ int code_of(float x, float base, float inverse, int levels) {
  float v = __fadd_rn(__fmul_rn(__fsub_rn(x, base), inverse), 0.5f);
  if (!(v >= 0.0f)) v = 0.0f;
  if (v > static_cast<float>(levels)) v = static_cast<float>(levels);
  return static_cast<int>(v);
}

// lo / hi of a scan: a value replaces the running one only when strictly
// smaller / larger, so among equal values (0.0 and -0.0) the first stays.
__device__ __forceinline__ void observe(float v, float& lo, float& hi, bool& finite) {
  lo = v < lo ? v : lo;
  hi = v > hi ? v : hi;
  finite = finite && isfinite(v);
}

// lo, hi and finiteness of the value group x[at, at + n) scanned as
// quantize.cpp's group_range does: eight lanes (value i in lane i % 8) over
// the whole eights, the lanes combined in lane order, then the tail in order.
// Only the sign of a zero lo or hi depends on that order (0.0 and -0.0 tie):
// no output bit does (zero extremes become +0), but the overflow message
// quotes lo and hi, so it is the CPU's to the sign of a zero.
__device__ __forceinline__ void value_group_range(const DeviceTokens& x, int64_t at, int64_t n, float& lo, float& hi,
                                                  bool& finite) {
  float lanes_lo[8], lanes_hi[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    lanes_lo[k] = INFINITY;
    lanes_hi[k] = -INFINITY;
  }
  finite = true;
  const int64_t whole = n / 8 * 8;
  for (int64_t i = 0; i < whole; i += 8) {
#pragma unroll
    for (int k = 0; k < 8; ++k) observe(load_element(x, at + i + k), lanes_lo[k], lanes_hi[k], finite);
  }
  lo = INFINITY;
  hi = -INFINITY;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    lo = lanes_lo[k] < lo ? lanes_lo[k] : lo;
    hi = lanes_hi[k] > hi ? lanes_hi[k] : hi;
  }
  for (int64_t i = whole; i < n; ++i) observe(load_element(x, at + i), lo, hi, finite);
}

// Writes the bytes of one octet's codes in a plane of kWidth-bit codes
// (starting at byte `first` of the plane): (code >> shift) & mask each,
// channels past `n` (the head dimension's end) left out, as padding is zero.
template <int kWidth>
__device__ __forceinline__ void write_plane(uint8_t* plane, int64_t first, const int (&codes)[kOctet], int n,
                                            int shift) {
  constexpr int kPerByte = 8 / kWidth, kMask = (1 << kWidth) - 1;
#pragma unroll
  for (int b = 0; b < kWidth; ++b) {  // an octet is kWidth bytes of the plane
    if (b * kPerByte < n) {
      int byte = 0;
#pragma unroll
      for (int i = 0; i < kPerByte; ++i) {
        const int k = b * kPerByte + i;
        if (k < n) byte |= ((codes[k] >> shift) & kMask) << (i * kWidth);
      }
      plane[first + b] = static_cast<uint8_t>(byte);
    }
  }
}

__device__ __forceinline__ void write_octet(uint8_t* row, int64_t octet, int bits, int64_t plane2,
                                            const int (&codes)[kOctet], int n) {
  switch (bits) {
    case 2:
      write_plane<2>(row, octet * 2, codes, n, 0);
      break;
    case 4:
      write_plane<4>(row, octet * 4, codes, n, 0);
      break;
    case 8:
      write_plane<8>(row, octet * 8, codes, n, 0);
      break;
    default:  // 3: the low two bits, then the high bit, each its own plane
      write_plane<2>(row, octet * 2, codes, n, 0);
      write_plane<1>(row + plane2, octet, codes, n, 2);
      break;
  }
}

__global__ void __launch_bounds__(kThreads)
    quantize_keys_kernel(DeviceTokens x, int bits, int group, int64_t blocks, int64_t octets, uint8_t* codes,
                         uint16_t* scale, uint16_t* minimum, unsigned long long* error) {
  const int levels = (1 << bits) - 1;
  const int64_t row_bytes = packed_bytes(x.dim, bits), plane2 = (x.dim + 3) / 4;
  const int64_t total = x.streams * blocks * octets;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < total; item += step) {
    const int64_t octet = item % octets, stream_block = item / octets;
    const int64_t s = stream_block / blocks, j = stream_block % blocks;
    const int64_t begin = j * group, end = min(x.tokens, begin + group);
    const int64_t d0 = octet * kOctet;
    const int n = static_cast<int>(min(static_cast<int64_t>(kOctet), x.dim - d0));
    float lo[kOctet], hi[kOctet];
    bool finite[kOctet];
#pragma unroll
    for (int k = 0; k < kOctet; ++k) {
      lo[k] = INFINITY;
      hi[k] = -INFINITY;
      finite[k] = true;
    }
    for (int64_t t = begin; t < end; ++t) {
      const int64_t at = x.offset(s, t) + d0;
#pragma unroll
      for (int k = 0; k < kOctet; ++k) {
        if (k < n) observe(load_element(x, at + k), lo[k], hi[k], finite[k]);
      }
    }
    float base[kOctet], inverse[kOctet];
#pragma unroll
    for (int k = 0; k < kOctet; ++k) {
      base[k] = inverse[k] = 0.0f;
      if (k < n) {
        const Params p = group_params(lo[k], hi[k], finite[k], levels);
        const int64_t at = stream_block * x.dim + d0 + k;
        scale[at] = p.scale;
        minimum[at] = p.minimum;
        base[k] = p.base;
        inverse[k] = p.inverse;
        if (p.overflow) atomicMin(error, static_cast<unsigned long long>(at));
      }
    }
    for (int64_t t = begin; t < end; ++t) {
      const int64_t at = x.offset(s, t) + d0;
      int c[kOctet];
#pragma unroll
      for (int k = 0; k < kOctet; ++k) c[k] = k < n ? code_of(load_element(x, at + k), base[k], inverse[k], levels) : 0;
      write_octet(codes + (s * x.tokens + t) * row_bytes, octet, bits, plane2, c, n);
    }
  }
}

// Block offsets as ragkernels.kv builds them: min(j * group, tokens).
__global__ void key_offsets_kernel(int32_t* offsets, int64_t total, int64_t blocks, int group, int64_t tokens) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    offsets[i] = static_cast<int32_t>(min((i % (blocks + 1)) * group, tokens));
  }
}

__global__ void __launch_bounds__(kThreads)
    quantize_values_kernel(DeviceTokens x, int bits, int group, uint8_t* codes, uint16_t* scale, uint16_t* minimum,
                           unsigned long long* error) {
  const int levels = (1 << bits) - 1;
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t groups = (x.dim + group - 1) / group;
  const int64_t row_bytes = packed_bytes(x.dim, bits), plane2 = (x.dim + 3) / 4;
  const int64_t rows = x.streams * x.tokens;
  const int64_t step = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  // Every lane of a warp walks the same rows: the __syncwarp below is reached by all 32.
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows; row += step) {
    const int64_t at = x.offset(row / x.tokens, row % x.tokens);
    uint16_t* row_scale = scale + row * groups;
    uint16_t* row_minimum = minimum + row * groups;
    for (int64_t g = lane; g < groups; g += 32) {
      const int64_t g0 = g * group;
      float lo, hi;
      bool finite;
      value_group_range(x, at + g0, min(x.dim, g0 + group) - g0, lo, hi, finite);
      const Params p = group_params(lo, hi, finite, levels);
      row_scale[g] = p.scale;
      row_minimum[g] = p.minimum;
      if (p.overflow) atomicMin(error, static_cast<unsigned long long>(row * groups + g));
    }
    __syncwarp();  // the scales and minimums above are visible to the whole warp
    uint8_t* out = codes + row * row_bytes;
    for (int64_t b = lane; b < row_bytes; b += 32) {
      int width = bits, shift = 0;
      int64_t first = b;  // the byte's index in its plane
      if (bits == 3) {
        width = b < plane2 ? 2 : 1;
        shift = b < plane2 ? 0 : 2;
        first = b < plane2 ? b : b - plane2;
      }
      const int per_byte = 8 / width, mask = (1 << width) - 1;
      int byte = 0;
      for (int i = 0; i < per_byte; ++i) {
        const int64_t d = first * per_byte + i;
        if (d >= x.dim) break;
        const int64_t g = d / group;
        const float s = half_bits_to_float(row_scale[g]);
        const float inverse = s > 0.0f ? __fdiv_rn(1.0f, s) : 0.0f;
        const int c = code_of(load_element(x, at + d), half_bits_to_float(row_minimum[g]), inverse, levels);
        byte |= ((c >> shift) & mask) << (i * width);
      }
      out[b] = static_cast<uint8_t>(byte);
    }
  }
}

// One thread: lo and hi of the group `index` names, scanned as above.
__global__ void group_range_kernel(DeviceTokens x, bool keys, int group, unsigned long long index, float* range) {
  float lo = INFINITY, hi = -INFINITY;
  bool finite = true;
  const auto i = static_cast<int64_t>(index);
  if (keys) {
    const int64_t blocks = (x.tokens + group - 1) / group;
    const int64_t d = i % x.dim, stream_block = i / x.dim;
    const int64_t s = stream_block / blocks, begin = (stream_block % blocks) * group;
    const int64_t end = min(x.tokens, begin + group);
    for (int64_t t = begin; t < end; ++t) observe(load_element(x, x.offset(s, t) + d), lo, hi, finite);
  } else {
    const int64_t groups = (x.dim + group - 1) / group;
    const int64_t row = i / groups, g0 = (i % groups) * group;
    const int64_t at = x.offset(row / x.tokens, row % x.tokens);
    value_group_range(x, at + g0, min(x.dim, g0 + group) - g0, lo, hi, finite);
  }
  range[0] = lo;
  range[1] = hi;
}

unsigned grid_for(int64_t threads) {
  return static_cast<unsigned>(std::min<int64_t>((threads + kThreads - 1) / kThreads, kMaxBlocks));
}

}  // namespace

cudaError_t quantize_keys(const DeviceTokens& x, int bits, int group, uint8_t* codes, uint16_t* scale,
                          uint16_t* minimum, int32_t* offsets, unsigned long long* error, cudaStream_t stream) {
  const int64_t blocks = (x.tokens + group - 1) / group;
  const int64_t offset_count = x.streams * (blocks + 1);
  if (offset_count > 0) {
    key_offsets_kernel<<<grid_for(offset_count), kThreads, 0, stream>>>(offsets, offset_count, blocks, group, x.tokens);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  const int64_t octets = (x.dim + kOctet - 1) / kOctet;
  const int64_t items = x.streams * blocks * octets;
  if (items == 0) return cudaSuccess;
  quantize_keys_kernel<<<grid_for(items), kThreads, 0, stream>>>(x, bits, group, blocks, octets, codes, scale, minimum,
                                                                  error);
  return cudaGetLastError();
}

cudaError_t quantize_values(const DeviceTokens& x, int bits, int group, uint8_t* codes, uint16_t* scale,
                            uint16_t* minimum, unsigned long long* error, cudaStream_t stream) {
  const int64_t rows = x.streams * x.tokens;
  if (rows == 0 || x.dim == 0) return cudaSuccess;
  quantize_values_kernel<<<grid_for(rows * 32), kThreads, 0, stream>>>(x, bits, group, codes, scale, minimum, error);
  return cudaGetLastError();
}

cudaError_t group_range(const DeviceTokens& x, bool keys, int group, unsigned long long index, float* range,
                        cudaStream_t stream) {
  group_range_kernel<<<1, 1, 0, stream>>>(x, keys, group, index, range);
  return cudaGetLastError();
}

}  // namespace ragkernels::cuda::kv
