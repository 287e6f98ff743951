// Fused decode attention over packed keys and values (decode_attention.h).
//
// A packed row is unpacked in "plane order" rather than channel order: for
// 1-, 2- and 4-bit codes, slot k of every byte first (k * width bits in), so
// the unpack is one shift-and-mask per slot over contiguous bytes, which the
// compiler vectorizes, and nothing is shuffled back. The query (keys) and the
// output accumulators (values) live in that order instead; the output is put
// back in channel order once, when the chunks merge. 3- and 8-bit rows are
// unpacked in channel order.
#include "kv/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/isa.h"
#include "core/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace ragkernels::kv {

namespace {

constexpr int64_t kChunkTokens = 512;
constexpr int64_t kMaxGroups = 1024;  // value groups per row the fused kernel takes (head_dim / group_size)
constexpr int kLanes = 16;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

// acc += weight * x
RK_TARGET_CLONES void axpy(float* acc, const float* x, float weight, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += weight * x[i];
}

// Unpacks one row into `out`: 1-, 2- and 4-bit rows in plane order (slot k
// of each byte, then slot k + 1, ...), 3- and 8-bit rows in channel order.
template <int kBits>
__attribute__((always_inline)) inline void unpack_slots(const uint8_t* row, int64_t bytes, int64_t dim, float* out) {
  if constexpr (kBits == 1 || kBits == 2 || kBits == 4) {
    constexpr int kPerByte = 8 / kBits, kMask = (1 << kBits) - 1;
    for (int k = 0; k < kPerByte; ++k) {
      for (int64_t i = 0; i < bytes; ++i) out[k * bytes + i] = static_cast<float>((row[i] >> (k * kBits)) & kMask);
    }
  } else if constexpr (kBits == 8) {
    for (int64_t i = 0; i < dim; ++i) out[i] = static_cast<float>(row[i]);
  } else {
    unpack_row(row, kBits, dim, out);
  }
}

// Eight partial sums reduced as a tree: no chain of dependent additions.
__attribute__((always_inline)) inline float dot8(const float* a, const float* b, int64_t n) {
  float lanes[8] = {};
  for (int64_t i = 0; i < n; i += 8) {
    for (int k = 0; k < 8; ++k) lanes[k] += a[i + k] * b[i + k];
  }
  for (int k = 0; k < 4; ++k) lanes[k] += lanes[k + 4];
  return (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
}

// Scores of `count` consecutive tokens of one key block: for each query r,
// folded[r] . codes + bias[r] (slots: a multiple of 8, padding zero in both).
struct KeyRun {
  const uint8_t* codes;
  int64_t row_bytes, count, dim, slots, reps;
  const float* folded;  // [reps][slots]
  const float* bias;    // [reps]
  float* scores;        // scores[r * stride + t]
  int64_t stride;
  float* buffer;        // [slots], padding already zero
};

template <int kBits>
__attribute__((always_inline)) inline void score_keys(const KeyRun& run) {
  for (int64_t t = 0; t < run.count; ++t) {
    unpack_slots<kBits>(run.codes + t * run.row_bytes, run.row_bytes, run.dim, run.buffer);
    for (int64_t r = 0; r < run.reps; ++r) {
      run.scores[r * run.stride + t] = dot8(run.folded + r * run.slots, run.buffer, run.slots) + run.bias[r];
    }
  }
}

// Weighted sum of `count` consecutive tokens' value codes: for each query r,
// acc[r] += p[r][t] * (codes * the token's group scales), in slots; the
// group minimums go to minimums[r][group] (p * m).
struct ValueRun {
  const uint8_t* codes;
  int64_t row_bytes, count, dim, slots, reps, groups;
  const uint16_t* scale;    // [count][groups] float16 bits
  const uint16_t* minimum;  // [count][groups]
  const int64_t* segments;  // [n_segments][3]: slot begin, end, group (runs of one group)
  int64_t n_segments;
  const float* weights;     // weights[r * stride + t]
  int64_t stride;
  float* acc;               // [reps][slots]
  float* minimums;          // [reps][groups]
  float* buffer;            // [2][slots]
};

template <int kBits>
__attribute__((always_inline)) inline void weigh_values(const ValueRun& run) {
  float* codes = run.buffer;
  float* slot_scale = run.buffer + run.slots;
  float group_minimum[kMaxGroups];
  for (int64_t t = 0; t < run.count; ++t) {
    bool any = false;
    for (int64_t r = 0; r < run.reps; ++r) any |= run.weights[r * run.stride + t] != 0.0f;
    if (!any) continue;  // masked (padding) or underflown: not read, so a NaN there is ignored
    const uint16_t* scale = run.scale + t * run.groups;
    const uint16_t* minimum = run.minimum + t * run.groups;
    for (int64_t k = 0; k < run.groups; ++k) group_minimum[k] = half_to_float(minimum[k]);
    unpack_slots<kBits>(run.codes + t * run.row_bytes, run.row_bytes, run.dim, codes);
    for (int64_t s = 0; s < run.n_segments; ++s) {
      const int64_t* seg = run.segments + 3 * s;
      const float g = half_to_float(scale[seg[2]]);
      for (int64_t j = seg[0]; j < seg[1]; ++j) slot_scale[j] = g;
    }
    for (int64_t j = 0; j < run.slots; ++j) codes[j] *= slot_scale[j];
    for (int64_t r = 0; r < run.reps; ++r) {
      const float p = run.weights[r * run.stride + t];
      if (p == 0.0f) continue;
      float* acc = run.acc + r * run.slots;
      for (int64_t j = 0; j < run.slots; ++j) acc[j] += p * codes[j];
      float* m = run.minimums + r * run.groups;
      for (int64_t k = 0; k < run.groups; ++k) m[k] += p * group_minimum[k];
    }
  }
}

// One copy per width and instruction set (target_clones does not apply to templates).
#define RK_KV_WIDTH_KERNELS(bits)                                                      \
  RK_TARGET_CLONES void score_keys_##bits(const KeyRun& run) { score_keys<bits>(run); } \
  RK_TARGET_CLONES void weigh_values_##bits(const ValueRun& run) { weigh_values<bits>(run); }
RK_KV_WIDTH_KERNELS(2)
RK_KV_WIDTH_KERNELS(3)
RK_KV_WIDTH_KERNELS(4)
RK_KV_WIDTH_KERNELS(8)
#undef RK_KV_WIDTH_KERNELS

void score_key_run(int bits, const KeyRun& run) {
  switch (bits) {
    case 2: return score_keys_2(run);
    case 3: return score_keys_3(run);
    case 4: return score_keys_4(run);
    default: return score_keys_8(run);
  }
}

void weigh_value_run(int bits, const ValueRun& run) {
  switch (bits) {
    case 2: return weigh_values_2(run);
    case 3: return weigh_values_3(run);
    case 4: return weigh_values_4(run);
    default: return weigh_values_8(run);
  }
}

// ---- the fast path: per instruction set, for 2-, 4- and 8-bit codes ----------------------------

// A slot layout whose value groups are contiguous runs of slots: group g
// (channels [c0, c1), both multiples of the codes per byte) takes its bytes'
// slot 0 codes, then their slot 1 codes, ...; keys form one group.
struct FastLayout {
  struct Group {
    int64_t byte_begin, byte_end, slot_begin, slot_end;
  };
  int bits = 0;
  int64_t slots = 0;
  std::vector<Group> groups;
  std::vector<int32_t> channel;  // [slots]: the channel in each slot
};

struct FastKernels {
  int lanes;
  void (*unpack_rows)(const uint8_t*, int64_t, int64_t, const FastLayout&, float*);
  void (*score_rows)(const float*, int64_t, int64_t, const float*, float, float*);
  void (*weigh_rows)(const float*, int64_t, const FastLayout&, const float*, const float*, const float*, float*, float*);
  float (*exp_shift_sum)(float*, int64_t, float);
  float (*max_of)(const float*, int64_t, bool*);
  void (*halves_to_floats)(const uint16_t*, int64_t, float*);
};

}  // namespace

// vectors are returned only to force-inlined callers: GCC's ABI note does not apply
#pragma GCC diagnostic ignored "-Wpsabi"

#ifdef RK_ISA_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma,f16c")
#define RK_ISA RK_ISA_AVX512
namespace avx512 {
namespace {
#include "kv/decode_kernel.inc"
}  // namespace
}  // namespace avx512
#undef RK_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define RK_ISA RK_ISA_AVX2
namespace avx2 {
namespace {
#include "kv/decode_kernel.inc"
}  // namespace
}  // namespace avx2
#undef RK_ISA
#pragma GCC pop_options
#endif
#define RK_ISA RK_ISA_BASELINE
namespace baseline {
namespace {
#include "kv/decode_kernel.inc"
}  // namespace
}  // namespace baseline
#undef RK_ISA

namespace {

const FastKernels& fast_kernels() {
  switch (best_isa()) {
#ifdef RK_ISA_X86
    case Isa::kAvx512:
      return avx512::kKernels;
    case Isa::kAvx2:
      return avx2::kKernels;
#endif
    default:
      return baseline::kKernels;
  }
}

// The fast layout of rows of `dim` codes cut into groups of `group` channels,
// or an empty optional-like (bits 0) when the fast kernels cannot take it:
// 1- and 3-bit codes, or a group whose channels are not a whole number of
// bytes and of vector lanes.
FastLayout fast_layout(int bits, int64_t dim, int64_t group, int lanes) {
  FastLayout layout;
  if (bits != 2 && bits != 4 && bits != 8) return layout;
  const int64_t per_byte = 8 / bits;
  for (int64_t c0 = 0; c0 < dim; c0 += group) {
    const int64_t c1 = std::min(dim, c0 + group);
    if ((c1 - c0) % per_byte != 0 || (c1 - c0) % lanes != 0) return FastLayout{};
    FastLayout::Group g{c0 / per_byte, c1 / per_byte, layout.slots, layout.slots + (c1 - c0)};
    for (int64_t k = 0; k < per_byte; ++k) {
      for (int64_t i = g.byte_begin; i < g.byte_end; ++i) layout.channel.push_back(static_cast<int32_t>(i * per_byte + k));
    }
    layout.slots = g.slot_end;
    layout.groups.push_back(g);
  }
  layout.bits = bits;
  return layout;
}

// The fast path of one call: its kernels and layouts (bits 0: not taken).
struct FastPlan {
  const FastKernels* kernels = nullptr;
  FastLayout keys, values;
  bool usable() const { return keys.bits != 0 && values.bits != 0; }
};

// Where each channel's code lands once a row is unpacked.
struct CodeLayout {
  int bits = 0;
  int64_t slots = 0;             // unpacked floats per row (channels, padded to whole bytes)
  int64_t bytes = 0;             // packed bytes per row
  std::vector<int32_t> channel;  // [slots]: the channel in each slot, -1 for padding

  CodeLayout(int bits_, int64_t dim) : bits(bits_), bytes(packed_bytes(dim, bits_)) {
    const bool planes = bits == 1 || bits == 2 || bits == 4;
    const int64_t used = planes ? (8 / bits) * bytes : dim;
    slots = (used + 7) / 8 * 8;  // the kernels run 8 lanes at a time; padding slots stay zero
    channel.assign(slots, -1);
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t slot = planes ? (d % (8 / bits)) * bytes + d / (8 / bits) : d;
      channel[slot] = static_cast<int32_t>(d);
    }
  }
};

// One chunk's softmax state per query: running max, sum of exponentials, and
// the unnormalized output: in the value layout's slots for the quantized
// tokens' codes, per value group for their minimums, per channel for the
// residual tokens.
struct Partial {
  std::vector<float> max, sum;   // [reps]
  std::vector<float> slots;      // [reps][value slots]
  std::vector<float> minimums;   // [reps][value groups]
  std::vector<float> residual;   // [reps][dim]
};

class ChunkScorer {
 public:
  ChunkScorer(const DecodeAttention& a, int64_t stream, const CodeLayout& key_layout, const CodeLayout& value_layout,
              const std::vector<int64_t>& segments, const FastPlan& fast)
      : a_(a), stream_(stream), key_layout_(key_layout), value_layout_(value_layout), segments_(segments),
        kernels_(*fast.kernels), fast_(fast.usable() ? &fast : nullptr) {
    key_slots_ = fast_ ? fast.keys.slots : key_layout.slots;
    key_channel_ = fast_ ? &fast.keys.channel : &key_layout.channel;
    const int64_t dim = a.keys.dim;
    reps_ = a.q_heads / a.kv_heads;
    batch_row_ = stream / a.kv_heads;
    query_.resize(reps_ * dim);
    const int64_t first_query = batch_row_ * a.q_heads + (stream % a.kv_heads) * reps_;
    for (int64_t r = 0; r < reps_; ++r) load_row(a.query, first_query + r, 0, query_.data() + r * dim);
    for (float& q : query_) q *= a.scaling;
    query_slots_.assign(reps_ * key_slots_, 0.0f);
    for (int64_t r = 0; r < reps_; ++r) {
      for (int64_t j = 0; j < key_slots_; ++j) {
        const int32_t d = (*key_channel_)[j];
        if (d >= 0) query_slots_[r * key_slots_ + j] = query_[r * dim + d];
      }
    }
    folded_.resize(reps_ * key_slots_);
    bias_.resize(reps_);
    row_.assign(std::max({dim, key_layout.slots, 2 * value_layout.slots}), 0.0f);
    block_scale_.resize(dim);
    block_minimum_.resize(dim);
    slot_scale_.resize(key_slots_);
  }

  void run(int64_t begin, int64_t end, Partial& out) {
    const int64_t count = end - begin;
    scores_.assign(reps_ * count, 0.0f);
    score_tokens(begin, end);
    out.max.assign(reps_, kNegInf);
    out.sum.assign(reps_, 0.0f);
    for (int64_t r = 0; r < reps_; ++r) {
      float* s = scores_.data() + r * count;
      bool nan = false;
      const float m = kernels_.max_of(s, count, &nan);
      out.max[r] = m;
      if (nan) {  // a NaN score makes the whole softmax NaN, as in exact arithmetic
        out.sum[r] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      if (m == kNegInf) {  // masked chunk: no weight
        std::fill(s, s + count, 0.0f);
        continue;
      }
      out.sum[r] = kernels_.exp_shift_sum(s, count, m);
    }
    weigh_values(begin, end, out);
  }

 private:
  void score_tokens(int64_t begin, int64_t end) {
    const int64_t dim = a_.keys.dim, count = end - begin, quantized = a_.keys.tokens;
    const int64_t slots = key_layout_.slots;
    const int32_t* offsets = a_.keys.offsets ? a_.keys.offsets + stream_ * (a_.keys.blocks + 1) : nullptr;
    const int64_t stop = std::min(end, quantized);
    for (int64_t t = begin; t < stop;) {
      const int64_t block =
          std::upper_bound(offsets, offsets + a_.keys.blocks + 1, static_cast<int32_t>(t)) - offsets - 1;
      const int64_t run_end = std::min<int64_t>(stop, offsets[block + 1]);
      fold_block(block);
      if (fast_) {
        const int64_t n = run_end - t;
        unpacked_.resize(static_cast<size_t>(n * fast_->keys.slots));
        kernels_.unpack_rows(a_.keys.codes + (stream_ * quantized + t) * key_layout_.bytes, key_layout_.bytes, n,
                             fast_->keys, unpacked_.data());
        for (int64_t r = 0; r < reps_; ++r) {
          kernels_.score_rows(unpacked_.data(), n, fast_->keys.slots, folded_.data() + r * key_slots_, bias_[r],
                              scores_.data() + r * count + (t - begin));
        }
        t = run_end;
        continue;
      }
      std::fill(row_.begin(), row_.end(), 0.0f);
      const KeyRun run{a_.keys.codes + (stream_ * quantized + t) * key_layout_.bytes, key_layout_.bytes, run_end - t,
                       dim, slots, reps_, folded_.data(), bias_.data(), scores_.data() + (t - begin), count,
                       row_.data()};
      score_key_run(a_.keys.bits, run);
      t = run_end;
    }
    for (int64_t t = std::max(begin, quantized); t < end; ++t) {
      load_row(a_.residual_keys, stream_, t - quantized, row_.data());
      for (int64_t r = 0; r < reps_; ++r) {
        scores_[r * count + (t - begin)] = dot(query_.data() + r * dim, row_.data(), dim);
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

  // The block's scale folded into the (scaled) query, in the key layout's
  // slots, its minimum into a bias: q.(c*s + m) = (q*s).c + q.m
  void fold_block(int64_t block) {
    const int64_t dim = a_.keys.dim, slots = key_slots_, at = (stream_ * a_.keys.blocks + block) * dim;
    kernels_.halves_to_floats(reinterpret_cast<const uint16_t*>(a_.keys.scale + at), dim, block_scale_.data());
    kernels_.halves_to_floats(reinterpret_cast<const uint16_t*>(a_.keys.minimum + at), dim, block_minimum_.data());
    for (int64_t j = 0; j < slots; ++j) {
      const int32_t d = (*key_channel_)[j];
      slot_scale_[j] = d < 0 ? 0.0f : block_scale_[d];
    }
    for (int64_t r = 0; r < reps_; ++r) {
      const float* q = query_slots_.data() + r * slots;
      float* folded = folded_.data() + r * slots;
      for (int64_t j = 0; j < slots; ++j) folded[j] = q[j] * slot_scale_[j];
      bias_[r] = dot(query_.data() + r * dim, block_minimum_.data(), dim);
    }
  }

  void weigh_values(int64_t begin, int64_t end, Partial& out) {
    const int64_t dim = a_.keys.dim, count = end - begin, quantized = a_.keys.tokens;
    const int64_t groups = a_.values.groups(), slots = fast_ ? fast_->values.slots : value_layout_.slots;
    out.slots.assign(reps_ * slots, 0.0f);
    out.minimums.assign(reps_ * groups, 0.0f);
    out.residual.assign(reps_ * dim, 0.0f);
    if (begin < quantized && fast_) {
      weigh_values_fast(begin, std::min(end, quantized), count, out);
    } else if (begin < quantized) {
      const int64_t first = stream_ * quantized + begin;
      std::fill(row_.begin(), row_.end(), 0.0f);
      const ValueRun run{a_.values.codes + first * value_layout_.bytes, value_layout_.bytes,
                         std::min(end, quantized) - begin, dim, slots, reps_, groups,
                         reinterpret_cast<const uint16_t*>(a_.values.scale + first * groups),
                         reinterpret_cast<const uint16_t*>(a_.values.minimum + first * groups), segments_.data(),
                         static_cast<int64_t>(segments_.size() / 3), scores_.data(), count, out.slots.data(),
                         out.minimums.data(), row_.data()};
      weigh_value_run(a_.values.bits, run);
    }
    for (int64_t t = std::max(begin, quantized); t < end; ++t) {
      load_row(a_.residual_values, stream_, t - quantized, row_.data());
      for (int64_t r = 0; r < reps_; ++r) {
        const float p = scores_[r * count + (t - begin)];
        if (p == 0.0f) continue;
        axpy(out.residual.data() + r * dim, row_.data(), p, dim);
      }
    }
  }

  // Values of tokens [begin, stop) through the fast kernels, unpacked a run
  // of kValueRun tokens at a time (the run stays in L1 while each query
  // weighs it).
  void weigh_values_fast(int64_t begin, int64_t stop, int64_t count, Partial& out) {
    constexpr int64_t kValueRun = 64;
    const int64_t n = stop - begin, groups = a_.values.groups(), slots = fast_->values.slots;
    const int64_t first = stream_ * a_.keys.tokens + begin;
    const FastKernels& k = kernels_;
    group_scale_.resize(static_cast<size_t>(2 * n * groups));
    float* scale = group_scale_.data();
    float* minimum = scale + n * groups;
    k.halves_to_floats(reinterpret_cast<const uint16_t*>(a_.values.scale + first * groups), n * groups, scale);
    k.halves_to_floats(reinterpret_cast<const uint16_t*>(a_.values.minimum + first * groups), n * groups, minimum);
    unpacked_.resize(static_cast<size_t>(std::min(n, kValueRun) * slots));
    for (int64_t t = 0; t < n; t += kValueRun) {
      const int64_t run = std::min(kValueRun, n - t);
      k.unpack_rows(a_.values.codes + (first + t) * value_layout_.bytes, value_layout_.bytes, run, fast_->values,
                    unpacked_.data());
      for (int64_t r = 0; r < reps_; ++r) {
        k.weigh_rows(unpacked_.data(), run, fast_->values, scores_.data() + r * count + t, scale + t * groups,
                     minimum + t * groups, out.slots.data() + r * slots, out.minimums.data() + r * groups);
      }
    }
  }

  const DecodeAttention& a_;
  int64_t stream_, reps_, batch_row_;
  const CodeLayout& key_layout_;
  const CodeLayout& value_layout_;
  const std::vector<int64_t>& segments_;
  const FastKernels& kernels_;  // this machine's instruction set's (the fast path's, when it is usable)
  const FastPlan* fast_;
  int64_t key_slots_ = 0;
  const std::vector<int32_t>* key_channel_ = nullptr;
  std::vector<float> query_, query_slots_, folded_, bias_, row_, scores_, block_scale_, block_minimum_, slot_scale_;
  std::vector<float> unpacked_, group_scale_;
};

// Merges a stream's chunk partials into its queries' outputs (channel order).
void merge(const DecodeAttention& a, int64_t stream, const Partial* parts, int64_t chunks,
           const std::vector<int32_t>& channel) {
  const int64_t dim = a.keys.dim, reps = a.q_heads / a.kv_heads;
  const int64_t groups = a.values.groups(), slots = static_cast<int64_t>(channel.size());
  const int64_t first_query = (stream / a.kv_heads) * a.q_heads + (stream % a.kv_heads) * reps;
  std::vector<float> slot_sum(slots), minimum_sum(groups);
  for (int64_t r = 0; r < reps; ++r) {
    float* out = a.out + (first_query + r) * dim;
    std::fill(out, out + dim, 0.0f);
    float m = kNegInf;
    bool nan = false;
    for (int64_t c = 0; c < chunks; ++c) {
      m = std::max(m, parts[c].max[r]);
      nan |= std::isnan(parts[c].sum[r]);
    }
    if (nan) {
      std::fill(out, out + dim, std::numeric_limits<float>::quiet_NaN());
      continue;
    }
    if (m == kNegInf) continue;  // fully masked: zeros, as torch SDPA
    std::fill(slot_sum.begin(), slot_sum.end(), 0.0f);
    std::fill(minimum_sum.begin(), minimum_sum.end(), 0.0f);
    float total = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      if (parts[c].max[r] == kNegInf) continue;
      const float w = std::exp(parts[c].max[r] - m);
      total += w * parts[c].sum[r];
      axpy(slot_sum.data(), parts[c].slots.data() + r * slots, w, slots);
      axpy(minimum_sum.data(), parts[c].minimums.data() + r * groups, w, groups);
      axpy(out, parts[c].residual.data() + r * dim, w, dim);
    }
    for (int64_t j = 0; j < slots; ++j) {
      if (channel[j] >= 0) out[channel[j]] += slot_sum[j];
    }
    const float inv = 1.0f / total;
    for (int64_t d = 0; d < dim; ++d) out[d] = (out[d] + minimum_sum[d / a.values.group]) * inv;
  }
}

}  // namespace

void decode_attention(const DecodeAttention& a) {
  RK_CHECK_ARG(a.values.groups() <= kMaxGroups, "decode_attention: at most ", kMaxGroups,
               " value groups per head (head_dim / group_size), got ", a.values.groups());
  const int64_t streams = a.batch * a.kv_heads;
  const int64_t length = a.keys.tokens + a.residual_keys.tokens;
  const int64_t chunks = std::max<int64_t>(1, (length + kChunkTokens - 1) / kChunkTokens);
  const CodeLayout key_layout(a.keys.bits, a.keys.dim), value_layout(a.values.bits, a.values.dim);
  // Runs of value slots sharing a group (a padding slot joins its neighbour's run: its code is 0).
  std::vector<int64_t> segments;
  for (int64_t j = 0; j < value_layout.slots; ++j) {
    const int32_t d = value_layout.channel[j];
    const int64_t group = d < 0 ? (segments.empty() ? 0 : segments.back()) : d / a.values.group;
    if (segments.empty() || segments.back() != group) segments.insert(segments.end(), {j, j + 1, group});
    segments[segments.size() - 2] = j + 1;
  }
  FastPlan fast;
  fast.kernels = &fast_kernels();
  fast.keys = fast_layout(a.keys.bits, a.keys.dim, a.keys.dim, fast.kernels->lanes);
  fast.values = fast_layout(a.values.bits, a.values.dim, a.values.group, fast.kernels->lanes);
  const std::vector<int32_t>& channel = fast.usable() ? fast.values.channel : value_layout.channel;
  std::vector<Partial> parts(static_cast<size_t>(streams * chunks));
  parallel_for(0, streams * chunks, [&](int64_t first, int64_t last) {
    for (int64_t item = first; item < last; ++item) {
      const int64_t stream = item / chunks, chunk = item % chunks;
      ChunkScorer scorer(a, stream, key_layout, value_layout, segments, fast);
      scorer.run(chunk * kChunkTokens, std::min(length, (chunk + 1) * kChunkTokens), parts[item]);
    }
  });
  parallel_for(0, streams, [&](int64_t first, int64_t last) {
    for (int64_t s = first; s < last; ++s) merge(a, s, parts.data() + s * chunks, chunks, channel);
  });
}

}  // namespace ragkernels::kv
