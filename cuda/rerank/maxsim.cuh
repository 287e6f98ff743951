// Late-interaction MaxSim on the GPU: the CUDA mirror of csrc/rerank/maxsim.h.
//
//   score(q, d) = sum over the query's tokens i of max over the document's
//                 tokens j of dot(q_i, d_j)
//
// Same semantics as the CPU op (its oracle): a candidate of -1 scores -inf,
// and so does a document with no tokens; a query with no tokens scores 0
// against any non-empty document; a NaN dot makes its token's maximum, and so
// the score, NaN (numpy's max rule); int8 document tokens stand for
// scales[j] * tokens[j]; float16 / int8 are widened to float32 exactly;
// float32 arithmetic, each dot one fma chain in dimension order and the
// maxima summed in token order, as the CPU op does: scores agree with it to
// float32 rounding, and a score depends only on its query and document (never
// on the batch, the candidates or the launch shape).
//
// Raw device pointers (row-major, contiguous), a small device array of error
// slots and a stream; no framework types. Validation that needs the data
// (offsets, candidate ids) runs on the device and reports through the error
// slots, so a call needs no host copy of its inputs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ragkernels::cuda::rerank {

enum class TokenType : int { kFloat32 = 0, kFloat16 = 1, kInt8 = 2 };

// Ragged token matrices: item i owns rows [offsets[i], offsets[i + 1]).
struct DeviceQueryTokens {
  const float* data = nullptr;       // rows x dim float32, row-major, contiguous
  int64_t rows = 0;
  int64_t dim = 0;
  const int64_t* offsets = nullptr;  // num_queries + 1
  int64_t num_queries = 0;
};

struct DeviceDocTokens {
  const void* data = nullptr;        // rows x dim of `type`, row-major, contiguous
  TokenType type = TokenType::kFloat32;
  int64_t rows = 0;
  int64_t dim = 0;                   // == the queries' dim
  const float* scales = nullptr;     // (rows,) for int8, else nullptr
  const int64_t* offsets = nullptr;  // num_docs + 1
  int64_t num_docs = 0;
};

// The device error slots `maxsim` fills: the first bad index of each check,
// or kNoError. query_offsets / doc_offsets: the smallest i in [0, count] such
// that offsets[0] != 0 (i = 0), offsets[i] < offsets[i - 1], or i = count and
// offsets[count] != rows. candidates: the smallest row-major index
// q * num_candidates + c whose id is neither -1 nor in [0, num_docs).
enum ErrorSlot : int { kQueryOffsetsError = 0, kDocOffsetsError = 1, kCandidatesError = 2, kErrorSlots = 3 };
constexpr unsigned long long kNoError = ~0ull;

// scores[q * num_candidates + c] = MaxSim(query q, document candidates[q][c]).
// candidates: (num_queries, num_candidates) int64; scores: the same shape,
// float32. errors: kErrorSlots device words, reset by this call. The scoring
// kernel runs only when both offset arrays are valid (it reads that from the
// error slots on the device); a bad candidate's score is NaN. Returns the
// launch status; kernels are queued on `stream` and not synchronized: read
// `errors` after synchronizing, and discard the scores if any slot is set.
cudaError_t maxsim(const DeviceQueryTokens& queries, const DeviceDocTokens& docs, const int64_t* candidates,
                   int64_t num_candidates, float* scores, unsigned long long* errors, cudaStream_t stream);

}  // namespace ragkernels::cuda::rerank
