// The trie's additive logits mask on the GPU: the CUDA mirror of
// Trie::mask_logits (csrc/spec/trie.h), which is its oracle.
//
// Every logit of a token that may not follow the row's state (columns at or
// past the vocabulary too) becomes -inf, written as bits, so allowed logits
// keep theirs exactly; eos >= 0 is allowed too after a whole sequence and is
// the only token of a dead row (-1); eos = -1 leaves a row that allows
// nothing as it is. Raw device pointers and a stream; no framework types.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ragkernels::cuda::spec {

// The arrays of the trie that the mask reads, in device memory.
struct DeviceTrie {
  const int64_t* row_ptr = nullptr;   // num_nodes + 1
  const int32_t* tokens = nullptr;    // edges, increasing within a node
  const uint8_t* terminal = nullptr;  // num_nodes
  int64_t num_nodes = 0;
};

enum class LogitsType : int { kFloat32 = 0, kFloat16 = 1, kBfloat16 = 2 };

// logits: rows x width elements of `type`, row r at element r * row_stride,
// columns contiguous. states: `rows` device int32 in [-1, num_nodes) (the
// caller checks). Queued on `stream`; returns the launch status.
cudaError_t trie_mask_logits(const DeviceTrie& trie, const int32_t* states, int32_t eos, void* logits,
                             LogitsType type, int64_t rows, int64_t width, int64_t row_stride, cudaStream_t stream);

}  // namespace ragkernels::cuda::spec
