// Late-interaction (ColBERT-style) MaxSim scoring, fused.
//
// score(q, d) = sum over the query's tokens i of max over the document's
// tokens j of dot(q_i, d_j). Query and document tokens are ragged: one
// (rows x dim) matrix each plus offsets, no padding. The Lq x Ld similarity
// matrix is never stored: a register tile of dot products is folded into a
// running maximum per query token as soon as it is computed.
//
// Semantics, shared with the CUDA kernel and tests/reference/rerank.py:
// - a candidate slot of -1 (an empty slot of a shorter first-stage list)
//   scores -inf, and so does a document with no tokens;
// - a query with no tokens scores 0 against any non-empty document;
// - a NaN dot product makes its query token's maximum, and so the score,
//   NaN (numpy's max rule);
// - int8 document tokens stand for scales[j] * tokens[j] (one scale per
//   token); float16 and int8 are widened to float32 exactly;
// - arithmetic is float32, each dot one fused multiply-add chain in
//   dimension order, maxima summed in token order: a score depends only on
//   its query and document, never on the batch, the candidates or threads.
#pragma once

#include <cstdint>

#include "core/array_view.h"

namespace ragkernels::rerank {

enum class TokenType { kFloat32, kFloat16, kInt8 };

// Ragged token matrices: item i owns rows [offsets[i], offsets[i + 1]).
struct QueryTokens {
  const float* data = nullptr;  // rows x dim, rows `row_stride` floats apart
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t row_stride = 0;
  const int64_t* offsets = nullptr;  // num_queries + 1
  int64_t num_queries = 0;
};

struct DocTokens {
  const void* data = nullptr;  // rows x dim of `type`, rows `row_stride` elements apart
  TokenType type = TokenType::kFloat32;
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t row_stride = 0;
  const float* scales = nullptr;  // int8: one per row; else null
  const int64_t* offsets = nullptr;  // num_docs + 1
  int64_t num_docs = 0;
};

// Throws ValueError (naming op and arg) unless offsets[0] == 0,
// offsets[count] == rows and the offsets never decrease.
void check_offsets(const int64_t* offsets, int64_t count, int64_t rows, const char* op, const char* arg);

// Throws ValueError unless every candidate is -1 or in [0, num_docs).
void check_candidates(ConstView2<int64_t> candidates, int64_t num_docs, const char* op, const char* arg);

// scores[q][c] = MaxSim(query q, document candidates[q][c]). Validates
// offsets and candidates first; parallel over (query, candidate) pairs.
void maxsim(const QueryTokens& queries, const DocTokens& docs, ConstView2<int64_t> candidates,
            View2<float> scores);

}  // namespace ragkernels::rerank
