// Fused decode attention over packed keys and values (decode_attention.h).
#include "kv/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"

namespace ragkernels::kv {

namespace {

constexpr int64_t kChunkTokens = 512;
constexpr int kLanes = 16;

// Sixteen partial sums, so the compiler vectorizes without reassociating.
RK_TARGET_CLONES float dot(const float* a, const float* b, int64_t n) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) lanes[k] += a[i + k] * b[i + k];
  }
  float sum = 0.0f;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (int k = 0; k < kLanes; ++k) sum += lanes[k];
  return sum;
}

// acc += weight * x + shift
RK_TARGET_CLONES void accumulate(float* acc, const float* x, float weight, float shift, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += weight * x[i] + shift;
}

RK_TARGET_CLONES void fold_scale(const float* query, const float16* scale, float scaling, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = query[i] * static_cast<float>(scale[i]) * scaling;
}

// One chunk's softmax state per query: running max, sum of exponentials and
// the unnormalized output.
struct Partial {
  std::vector<float> max, sum, acc;  // [reps], [reps], [reps][dim]
};

class ChunkScorer {
 public:
  ChunkScorer(const DecodeAttention& a, int64_t stream) : a_(a), stream_(stream) {
    const int64_t dim = a.keys.dim;
    reps_ = a.q_heads / a.kv_heads;
    batch_row_ = stream / a.kv_heads;
    query_.resize(reps_ * dim);
    const int64_t first_query = batch_row_ * a.q_heads + (stream % a.kv_heads) * reps_;
    for (int64_t r = 0; r < reps_; ++r) load_row(a.query, first_query + r, 0, query_.data() + r * dim);
    folded_.resize(reps_ * dim);
    bias_.resize(reps_);
    row_.resize(dim);
  }

  void run(int64_t begin, int64_t end, Partial& out) {
    const int64_t count = end - begin, dim = a_.keys.dim;
    scores_.assign(reps_ * count, 0.0f);
    score_tokens(begin, end);
    out.max.assign(reps_, -std::numeric_limits<float>::infinity());
    out.sum.assign(reps_, 0.0f);
    out.acc.assign(reps_ * dim, 0.0f);
    for (int64_t r = 0; r < reps_; ++r) {
      float* s = scores_.data() + r * count;
      float m = -std::numeric_limits<float>::infinity();
      bool nan = false;
      for (int64_t i = 0; i < count; ++i) {
        m = s[i] > m ? s[i] : m;
        nan |= std::isnan(s[i]);
      }
      out.max[r] = m;
      if (nan) {  // a NaN score makes the whole softmax NaN, as in exact arithmetic
        out.sum[r] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      if (m == -std::numeric_limits<float>::infinity()) {  // masked chunk: no weight
        std::fill(s, s + count, 0.0f);
        continue;
      }
      float total = 0.0f;
      for (int64_t i = 0; i < count; ++i) total += (s[i] = std::exp(s[i] - m));
      out.sum[r] = total;
    }
    weigh_values(begin, end, out);
  }

 private:
  void score_tokens(int64_t begin, int64_t end) {
    const int64_t dim = a_.keys.dim, count = end - begin, quantized = a_.keys.tokens;
    const int32_t* offsets = a_.keys.offsets ? a_.keys.offsets + stream_ * (a_.keys.blocks + 1) : nullptr;
    int64_t block = -1;
    for (int64_t t = begin; t < std::min(end, quantized); ++t) {
      if (block < 0 || t >= offsets[block + 1]) {
        block = std::upper_bound(offsets, offsets + a_.keys.blocks + 1, static_cast<int32_t>(t)) - offsets - 1;
        fold_block(block);
      }
      unpack_row(a_.keys.codes + (stream_ * quantized + t) * a_.keys.row_bytes(), a_.keys.bits, dim, row_.data());
      for (int64_t r = 0; r < reps_; ++r) {
        scores_[r * count + (t - begin)] = dot(folded_.data() + r * dim, row_.data(), dim) + bias_[r];
      }
    }
    for (int64_t t = std::max(begin, quantized); t < end; ++t) {
      load_row(a_.residual_keys, stream_, t - quantized, row_.data());
      for (int64_t r = 0; r < reps_; ++r) {
        scores_[r * count + (t - begin)] = dot(query_.data() + r * dim, row_.data(), dim) * a_.scaling;
      }
    }
    if (a_.mask) {
      const int64_t length = quantized + a_.residual_keys.tokens;
      const float* mask = a_.mask + (a_.mask_per_head ? stream_ : batch_row_) * length;
      for (int64_t r = 0; r < reps_; ++r) {
        for (int64_t t = begin; t < end; ++t) scores_[r * count + (t - begin)] += mask[t];
      }
    }
  }

  // The block's scale folded into the query, its minimum into a bias:
  // q.(c*s + m) = (q*s).c + q.m
  void fold_block(int64_t block) {
    const int64_t dim = a_.keys.dim;
    const float16* scale = a_.keys.scale + (stream_ * a_.keys.blocks + block) * dim;
    const float16* minimum = a_.keys.minimum + (stream_ * a_.keys.blocks + block) * dim;
    for (int64_t d = 0; d < dim; ++d) row_[d] = static_cast<float>(minimum[d]);
    for (int64_t r = 0; r < reps_; ++r) {
      fold_scale(query_.data() + r * dim, scale, a_.scaling, folded_.data() + r * dim, dim);
      bias_[r] = dot(query_.data() + r * dim, row_.data(), dim) * a_.scaling;
    }
  }

  void weigh_values(int64_t begin, int64_t end, Partial& out) {
    const int64_t dim = a_.keys.dim, count = end - begin, quantized = a_.keys.tokens;
    const int64_t groups = a_.values.groups(), group = a_.values.group;
    for (int64_t t = begin; t < std::min(end, quantized); ++t) {
      const int64_t item = stream_ * quantized + t;
      unpack_row(a_.values.codes + item * a_.values.row_bytes(), a_.values.bits, dim, row_.data());
      const float16* scale = a_.values.scale + item * groups;
      const float16* minimum = a_.values.minimum + item * groups;
      for (int64_t r = 0; r < reps_; ++r) {
        const float p = scores_[r * count + (t - begin)];
        if (p == 0.0f) continue;  // masked (padding) or underflown: not read, so a NaN there is ignored
        float* acc = out.acc.data() + r * dim;
        for (int64_t k = 0; k < groups; ++k) {
          const int64_t g0 = k * group, width = std::min(group, dim - g0);
          accumulate(acc + g0, row_.data() + g0, p * static_cast<float>(scale[k]),
                     p * static_cast<float>(minimum[k]), width);
        }
      }
    }
    for (int64_t t = std::max(begin, quantized); t < end; ++t) {
      load_row(a_.residual_values, stream_, t - quantized, row_.data());
      for (int64_t r = 0; r < reps_; ++r) {
        const float p = scores_[r * count + (t - begin)];
        if (p == 0.0f) continue;
        accumulate(out.acc.data() + r * dim, row_.data(), p, 0.0f, dim);
      }
    }
  }

  const DecodeAttention& a_;
  int64_t stream_, reps_, batch_row_;
  std::vector<float> query_, folded_, bias_, row_, scores_;
};

// Merges a stream's chunk partials into its queries' outputs.
void merge(const DecodeAttention& a, int64_t stream, const Partial* parts, int64_t chunks) {
  const int64_t dim = a.keys.dim, reps = a.q_heads / a.kv_heads;
  const int64_t first_query = (stream / a.kv_heads) * a.q_heads + (stream % a.kv_heads) * reps;
  for (int64_t r = 0; r < reps; ++r) {
    float* out = a.out + (first_query + r) * dim;
    std::fill(out, out + dim, 0.0f);
    float m = -std::numeric_limits<float>::infinity();
    bool nan = false;
    for (int64_t c = 0; c < chunks; ++c) {
      m = std::max(m, parts[c].max[r]);
      nan |= std::isnan(parts[c].sum[r]);
    }
    if (nan) {
      std::fill(out, out + dim, std::numeric_limits<float>::quiet_NaN());
      continue;
    }
    if (m == -std::numeric_limits<float>::infinity()) continue;  // fully masked: zeros, as torch SDPA
    float total = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      if (parts[c].max[r] == -std::numeric_limits<float>::infinity()) continue;
      const float w = std::exp(parts[c].max[r] - m);
      total += w * parts[c].sum[r];
      accumulate(out, parts[c].acc.data() + r * dim, w, 0.0f, dim);
    }
    const float inv = 1.0f / total;
    for (int64_t d = 0; d < dim; ++d) out[d] *= inv;
  }
}

}  // namespace

void decode_attention(const DecodeAttention& a) {
  const int64_t streams = a.batch * a.kv_heads;
  const int64_t length = a.keys.tokens + a.residual_keys.tokens;
  const int64_t chunks = std::max<int64_t>(1, (length + kChunkTokens - 1) / kChunkTokens);
  std::vector<Partial> parts(static_cast<size_t>(streams * chunks));
  parallel_for(0, streams * chunks, [&](int64_t first, int64_t last) {
    for (int64_t item = first; item < last; ++item) {
      const int64_t stream = item / chunks, chunk = item % chunks;
      ChunkScorer scorer(a, stream);
      scorer.run(chunk * kChunkTokens, std::min(length, (chunk + 1) * kChunkTokens), parts[item]);
    }
  });
  parallel_for(0, streams, [&](int64_t first, int64_t last) {
    for (int64_t s = first; s < last; ++s) merge(a, s, parts.data() + s * chunks, chunks);
  });
}

}  // namespace ragkernels::kv
