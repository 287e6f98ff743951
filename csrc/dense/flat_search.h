// Exact dense search: a flat scan over row-major vectors with the top-k fused
// into the scan, so the query x corpus score matrix is never materialized.
//
// Every metric is a raw dot product turned into a score by per-row and
// per-query terms, so one kernel serves them all:
//
//   score(q, i) = (dot(q, row_i) * row_scale[i] + row_offset[i]) * query_scale(q) + query_offset(q)
//
//   inner product  row_scale = int8 scale (else 1)           query: 1, 0
//   cosine         row_scale = int8 scale / |stored row|      query: 1/|q|, 0 (0 for zero vectors)
//   L2             row_scale = 2 * int8 scale, offset -|row|^2 query: 1, -|q|^2
//
// so that for every metric a higher score is better (L2 reports the negative
// squared distance). Results: higher score first, ties -> lower row id; a NaN
// score (inf - inf under L2) ranks as -inf. The result does not depend on the
// thread count; it does not depend on the batch either, because each score is
// computed by the same instruction sequence whichever query group it is in.
#pragma once

#include <cstdint>

#include "core/array_view.h"

namespace ragkernels::dense {

enum class Metric : int { kInnerProduct = 0, kCosine = 1, kL2 = 2 };
enum class Storage : int { kFloat32 = 0, kFloat16 = 1, kInt8 = 2 };

// Non-owning: rows x dim contiguous elements of `storage` type, and the
// optional per-row terms (nullptr means scale 1, offset 0).
struct FlatVectors {
  Storage storage = Storage::kFloat32;
  Metric metric = Metric::kInnerProduct;
  int64_t rows = 0;
  int64_t dim = 0;
  const void* data = nullptr;
  const float* row_scale = nullptr;
  const float* row_offset = nullptr;
};

// Writes the k best rows for each query (queries: contiguous float32, finite,
// queries.cols == vectors.dim) to ids / scores (queries.rows x k), padded
// with -1 / -inf when k > rows. rows < 2^32. Parallel over the rows.
void search(const FlatVectors& vectors, ConstView2<float> queries, int64_t k, View2<int64_t> ids,
            View2<float> scores);

// Symmetric per-row int8 quantization: scale = max|x| / 127,
// q = round_half_even(x / scale) in float32; an all-zero row gets scale 0.
void quantize_int8(ConstView2<float> vectors, View2<int8_t> out, float* scales);

// Rounds float32 to IEEE binary16 (round half to even, as numpy's astype).
void convert_float16(ConstView2<float> vectors, View2<uint16_t> out);

// The per-row terms of `metric` for the stored rows (int8_scales: one per row
// for int8 storage, else nullptr). Writes row_scale / row_offset when the
// metric needs them (see the table above); returns which ones it wrote.
struct RowTermsWritten {
  bool scale = false;
  bool offset = false;
};
RowTermsWritten row_terms(const FlatVectors& stored, Metric metric, const float* int8_scales, float* row_scale,
                          float* row_offset);

// True when every element is finite (float32 or float16 storage).
bool all_finite(const void* data, Storage storage, int64_t count);

// The first row of a rows x dim contiguous matrix holding a NaN or an
// infinity, or -1 (always -1 for int8). Parallel over rows; the answer does
// not depend on the thread count.
int64_t first_non_finite_row(const void* data, Storage storage, int64_t rows, int64_t dim);

}  // namespace ragkernels::dense
