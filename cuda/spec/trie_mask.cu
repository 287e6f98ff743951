// The trie's logits mask on the GPU; the contract is in trie_mask.cuh.
//
// Design. One warp per (row, segment of kSegment columns): a row of a 49,152
// token vocabulary is 12 warps, so a batch of 8 keeps ~100 warps busy where
// a warp per row would leave 8 (each walking 1,536 tiles alone). The warp
// finds the first child at or after its segment by binary search (the
// children of a node are sorted), then walks the segment 32 columns at a
// time, one column per lane: the children inside the tile (at most 32,
// consecutive in the sorted list) are gathered lane by lane into one 32-bit
// word by a warp OR-reduction, the warp's child cursor moves past them
// (ballot + popcount), and each lane writes -inf to its column unless its
// bit (or eos) keeps it. Every step is warp-uniform, loads of the children
// are coalesced, and each tile's stores are one contiguous 64- or 128-byte
// run. Allowed logits are never written.
#include "spec/trie_mask.cuh"

#include <climits>

namespace ragkernels::cuda::spec {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSegment = 4096;

template <typename Bits>
__global__ void mask_kernel(DeviceTrie trie, const int32_t* states, int32_t eos, Bits* logits, int64_t rows,
                            int64_t width, int64_t row_stride, int64_t segments, Bits neg_inf) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (warp >= rows * segments) return;  // the whole warp
  const int64_t r = warp / segments;
  const int64_t first = (warp % segments) * kSegment;
  const int64_t last = min(first + kSegment, width);
  const int32_t s = states[r];
  int64_t e = s >= 0 ? trie.row_ptr[s] : 0;
  int64_t end = s >= 0 ? trie.row_ptr[s + 1] : 0;
  const bool eos_allowed = eos >= 0 && (s < 0 || trie.terminal[s] != 0);
  if (e == end && !eos_allowed) return;  // nothing to force the row to: left alone
  int64_t lo = e, hi = end;  // e = the first child >= first
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (trie.tokens[mid] < first) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  e = lo;
  Bits* row = logits + r * row_stride;
  for (int64_t tile = first; tile < last; tile += 32) {
    const int64_t j = e + lane;
    const int64_t token = j < end ? trie.tokens[j] : INT64_MAX;
    const bool inside = token < tile + 32;
    const unsigned bits = __reduce_or_sync(0xffffffffu, inside ? 1u << (token - tile) : 0u);
    e += __popc(__ballot_sync(0xffffffffu, inside));
    const int64_t column = tile + lane;
    if (column < last && !((bits >> lane) & 1u) && !(eos_allowed && column == eos)) row[column] = neg_inf;
  }
}

template <typename Bits>
cudaError_t launch(const DeviceTrie& trie, const int32_t* states, int32_t eos, void* logits, int64_t rows,
                   int64_t width, int64_t row_stride, Bits neg_inf, cudaStream_t stream) {
  if (rows == 0 || width == 0) return cudaSuccess;
  const int64_t segments = (width + kSegment - 1) / kSegment;
  const int64_t blocks = (rows * segments * 32 + kThreads - 1) / kThreads;
  if (blocks > INT_MAX) return cudaErrorInvalidConfiguration;
  mask_kernel<Bits><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      trie, states, eos, static_cast<Bits*>(logits), rows, width, row_stride, segments, neg_inf);
  return cudaGetLastError();
}

}  // namespace

cudaError_t trie_mask_logits(const DeviceTrie& trie, const int32_t* states, int32_t eos, void* logits,
                             LogitsType type, int64_t rows, int64_t width, int64_t row_stride, cudaStream_t stream) {
  switch (type) {  // -inf of each type, as bits
    case LogitsType::kFloat32:
      return launch<uint32_t>(trie, states, eos, logits, rows, width, row_stride, 0xFF800000u, stream);
    case LogitsType::kFloat16:
      return launch<uint16_t>(trie, states, eos, logits, rows, width, row_stride, uint16_t{0xFC00}, stream);
    case LogitsType::kBfloat16:
      return launch<uint16_t>(trie, states, eos, logits, rows, width, row_stride, uint16_t{0xFF80}, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace ragkernels::cuda::spec
