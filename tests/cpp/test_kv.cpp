// The KV core's building blocks (csrc/kv, csrc/core/float16.h) without
// Python: float16 conversions against the compiler's, code packing, the rANS
// coder's round trip and its refusals, and quantization's error bound (the
// Python tests compare every op with tests/reference/kv.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/float16.h"
#include "kv/decode_attention.h"
#include "kv/bitstream.h"
#include "kv/quantize.h"
#include "kv/rans.h"

namespace {

using ragkernels::float16;
namespace kv = ragkernels::kv;

TEST(KvFloat16, EveryHalfConvertsAsTheCompilerDoes) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    float16 x;
    std::memcpy(&x, &h, sizeof x);
    const float expected = static_cast<float>(x), got = ragkernels::half_to_float(h);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << bits;
    } else {
      EXPECT_EQ(expected, got) << bits;
    }
  }
}

TEST(KvFloat16, FloatsRoundToNearestEvenAsTheCompilerDoes) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t bits = rng();
    if (i % 4 == 0) bits &= 0x47ffffffu;  // many values in the float16 range
    float f;
    std::memcpy(&f, &bits, sizeof f);
    if (std::isnan(f)) continue;
    const float16 expected = static_cast<float16>(f);
    uint16_t e;
    std::memcpy(&e, &expected, sizeof e);
    ASSERT_EQ(e, ragkernels::float_to_half(f)) << f;
  }
}

TEST(KvPacking, CodesRoundTripAtEveryWidth) {
  std::mt19937 rng(1);
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t count : {1, 3, 7, 8, 13, 64, 100}) {
      std::vector<uint8_t> codes(count), back(count), row(kv::packed_bytes(count, bits), 0xff);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1u << bits));
      kv::pack_codes(codes.data(), bits, count, row.data());
      kv::unpack_codes(row.data(), bits, count, back.data());
      EXPECT_EQ(codes, back) << bits << " bits, " << count << " codes";
    }
  }
}

std::vector<uint8_t> round_trip(const std::vector<uint8_t>& symbols, int64_t rows, int64_t cols, int bits, int order,
                                int states) {
  std::vector<uint8_t> coded, back(symbols.size());
  kv::rans::encode(symbols.data(), rows, cols, bits, order, states, coded);
  kv::rans::decode(coded.data(), coded.size(), rows, cols, bits, order, states, back.data());
  return back;
}

TEST(KvRans, RoundTripsSkewedUniformAndConstantSymbols) {
  std::mt19937 rng(3);
  for (int bits : {1, 2, 3, 4, 8}) {
    for (int order : {0, 1}) {
      for (int states : {1, 4}) {
        // 888 symbols (a whole number of interleaved steps) and 35 (not)
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 24}, {7, 5}}) {
          std::vector<uint8_t> uniform(rows * cols), skewed(rows * cols), constant(rows * cols, (1 << bits) - 1);
          for (auto& s : uniform) s = static_cast<uint8_t>(rng() % (1u << bits));
          for (auto& s : skewed) s = static_cast<uint8_t>(rng() % 10 == 0 ? rng() % (1u << bits) : 1 % (1 << bits));
          EXPECT_EQ(round_trip(uniform, rows, cols, bits, order, states), uniform);
          EXPECT_EQ(round_trip(skewed, rows, cols, bits, order, states), skewed);
          EXPECT_EQ(round_trip(constant, rows, cols, bits, order, states), constant);
        }
      }
    }
  }
  EXPECT_TRUE(round_trip({}, 0, 5, 2, 1, 1).empty());
  EXPECT_TRUE(round_trip({}, 0, 5, 2, 1, 4).empty());
  EXPECT_EQ(round_trip({3}, 1, 1, 2, 0, 4), std::vector<uint8_t>{3});
}

TEST(KvRans, CertainSymbolsStillCostBitsAndTruncationIsRefused) {
  for (int states : {1, 4}) {
    std::vector<uint8_t> zeros(100000, 0), coded;
    kv::rans::encode(zeros.data(), 1, 100000, 8, 0, states, coded);
    // 2 * 256 bytes of table, then at least 100000 / kMaxSymbolsPerByte bytes of payload
    EXPECT_GE(coded.size(), 512 + 100000 / kv::rans::kMaxSymbolsPerByte);
    std::vector<uint8_t> out(100000);
    EXPECT_THROW(kv::rans::decode(coded.data(), coded.size() - 1, 1, 100000, 8, 0, states, out.data()),
                 ragkernels::FormatError);
    EXPECT_THROW(kv::rans::decode(coded.data(), 10, 1, 100000, 8, 0, states, out.data()), ragkernels::FormatError);
    std::vector<uint8_t> bad = coded;
    bad[0] = 0xff;  // a frequency table entry past 4095
    bad[1] = 0xff;
    EXPECT_THROW(kv::rans::decode(bad.data(), bad.size(), 1, 100000, 8, 0, states, out.data()),
                 ragkernels::FormatError);
  }
}

// A stream written with one rANS state (format version 1) and with four
// (version 2) decodes to the same arrays; the reader takes both.
TEST(KvBitstream, ReadsVersionOneAndTwo) {
  namespace bs = kv::bitstream;
  std::mt19937 rng(11);
  bs::LayerHead head;
  head.key_bits = head.value_bits = 2;
  head.quantized = 64;
  head.residual = 3;
  head.blocks = 2;
  for (uint32_t version : {1u, 2u}) {
    bs::StreamInfo info{1, 1, 2, 16, 16, 32, 8, kv::Dtype::kFloat32, 67, version};
    const auto bytes = bs::section_bytes(info, head);
    std::array<std::vector<uint8_t>, bs::kSections> arrays;
    std::array<const void*, bs::kSections> in{};
    for (int s = 0; s < bs::kSections; ++s) {
      arrays[s].resize(bytes[s]);
      for (auto& b : arrays[s]) b = static_cast<uint8_t>(rng() % 7);
      in[s] = arrays[s].data();
    }
    std::vector<int32_t> offsets{0, 32, 64, 0, 32, 64};
    std::memcpy(arrays[bs::kKeyOffsets].data(), offsets.data(), bytes[bs::kKeyOffsets]);
    std::vector<uint8_t> stream;
    bs::write_header(info, stream);
    const size_t chunk = stream.size();
    bs::write_layer(info, head, in, stream);
    const bs::StreamInfo read = bs::read_header(stream.data(), stream.size());
    EXPECT_EQ(read.version, version);
    const bs::LayerHead h = bs::read_layer_head(stream.data() + chunk, stream.size() - chunk, read, 0);
    std::array<std::vector<uint8_t>, bs::kSections> back;
    std::array<void*, bs::kSections> out{};
    for (int s = 0; s < bs::kSections; ++s) {
      back[s].resize(bytes[s]);
      out[s] = back[s].data();
    }
    bs::read_layer(stream.data() + chunk, stream.size() - chunk, read, h, out);
    EXPECT_EQ(arrays, back) << "version " << version;
  }
}

TEST(KvQuantize, KeysComeBackWithinHalfAStep) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t tokens = 70, dim = 24, group = 16;
  std::vector<float> x(tokens * dim), back(tokens * dim);
  for (auto& v : x) v = normal(rng);
  kv::Tokens in;
  in.data = x.data();
  in.streams = 1;
  in.tokens = tokens;
  in.dim = dim;
  in.token_stride = dim;
  for (int bits : {2, 3, 4, 8}) {
    const int64_t blocks = (tokens + group - 1) / group;
    std::vector<uint8_t> codes(tokens * kv::packed_bytes(dim, bits));
    std::vector<float16> scale(blocks * dim), minimum(blocks * dim);
    kv::quantize_keys(in, bits, group, codes.data(), scale.data(), minimum.data());
    std::vector<int32_t> offsets;
    for (int64_t j = 0; j <= blocks; ++j) offsets.push_back(static_cast<int32_t>(std::min(j * group, tokens)));
    kv::PackedKeys packed{codes.data(), scale.data(), minimum.data(), offsets.data(), 1, tokens, dim, blocks, bits};
    kv::MutableTokens out;
    out.data = back.data();
    out.streams = 1;
    out.tokens = tokens;
    out.dim = dim;
    out.token_stride = dim;
    kv::dequantize_keys(packed, out);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t d = 0; d < dim; ++d) {
        const float step = static_cast<float>(scale[(t / group) * dim + d]);
        EXPECT_LE(std::fabs(back[t * dim + d] - x[t * dim + d]), step / 2 + 1e-5f) << bits << " bits";
      }
    }
  }
  EXPECT_THROW(kv::quantize_keys(in, 5, group, nullptr, nullptr, nullptr), ragkernels::ValueError);
}

// The fused decode attention (its fast path at 2, 4 and 8 bits, the portable
// one at 3) against attention over the dequantized cache in double: on
// aarch64 this is the NEON copy's test.
TEST(KvDecodeAttention, MatchesAttentionOverTheDequantizedCache) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t kv_heads = 2, q_heads = 6, dim = 64, tokens = 700, residual = 5, group = 32;
  for (int bits : {2, 3, 4, 8}) {
    std::vector<float> k(kv_heads * tokens * dim), v(k.size()), rk(kv_heads * residual * dim), rv(rk.size());
    std::vector<float> q(q_heads * dim), out(q_heads * dim);
    for (auto* a : {&k, &v, &rk, &rv, &q}) {
      for (auto& x : *a) x = normal(rng);
    }
    auto view = [&](const float* data, int64_t heads, int64_t n) {
      kv::Tokens t;
      t.data = data;
      t.streams = heads;
      t.heads = heads;
      t.tokens = n;
      t.dim = dim;
      t.head_stride = n * dim;
      t.batch_stride = heads * n * dim;
      t.token_stride = dim;
      return t;
    };
    const int64_t blocks = (tokens + group - 1) / group, groups = dim / group, rb = kv::packed_bytes(dim, bits);
    std::vector<uint8_t> kc(kv_heads * tokens * rb), vc(kc.size());
    std::vector<float16> ks(kv_heads * blocks * dim), km(ks.size()), vs(kv_heads * tokens * groups), vm(vs.size());
    kv::quantize_keys(view(k.data(), kv_heads, tokens), bits, group, kc.data(), ks.data(), km.data());
    kv::quantize_values(view(v.data(), kv_heads, tokens), bits, group, vc.data(), vs.data(), vm.data());
    std::vector<int32_t> offsets;
    for (int64_t h = 0; h < kv_heads; ++h) {
      for (int64_t j = 0; j <= blocks; ++j) offsets.push_back(static_cast<int32_t>(std::min(j * group, tokens)));
    }
    kv::DecodeAttention a;
    a.query = view(q.data(), q_heads, 1);
    a.batch = 1;
    a.kv_heads = kv_heads;
    a.q_heads = q_heads;
    a.keys = {kc.data(), ks.data(), km.data(), offsets.data(), kv_heads, tokens, dim, blocks, bits};
    a.values = {vc.data(), vs.data(), vm.data(), kv_heads, tokens, dim, bits, static_cast<int>(group)};
    a.residual_keys = view(rk.data(), kv_heads, residual);
    a.residual_values = view(rv.data(), kv_heads, residual);
    a.scaling = 0.125f;
    a.out = out.data();
    kv::decode_attention(a);
    // the reference: dequantize, then attention in double
    std::vector<float> kd(k.size()), vd(v.size());
    auto sink = [&](float* data, int64_t n) {
      kv::MutableTokens t;
      t.data = data;
      t.streams = kv_heads;
      t.heads = kv_heads;
      t.tokens = n;
      t.dim = dim;
      t.head_stride = n * dim;
      t.batch_stride = kv_heads * n * dim;
      t.token_stride = dim;
      return t;
    };
    kv::dequantize_keys(a.keys, sink(kd.data(), tokens));
    kv::dequantize_values(a.values, sink(vd.data(), tokens));
    for (int64_t h = 0; h < q_heads; ++h) {
      const int64_t g = h / (q_heads / kv_heads);
      std::vector<double> scores;
      for (int64_t t = 0; t < tokens + residual; ++t) {
        const float* key = t < tokens ? &kd[(g * tokens + t) * dim] : &rk[(g * residual + t - tokens) * dim];
        double s = 0;
        for (int64_t d = 0; d < dim; ++d) s += double(q[h * dim + d]) * key[d];
        scores.push_back(s * 0.125);
      }
      const double m = *std::max_element(scores.begin(), scores.end());
      double total = 0;
      for (double& s : scores) total += (s = std::exp(s - m));
      for (int64_t d = 0; d < dim; ++d) {
        double o = 0;
        for (int64_t t = 0; t < tokens + residual; ++t) {
          const float* val = t < tokens ? &vd[(g * tokens + t) * dim] : &rv[(g * residual + t - tokens) * dim];
          o += scores[t] / total * val[d];
        }
        EXPECT_NEAR(out[h * dim + d], o, 2e-5 + 2e-5 * std::fabs(o)) << bits << " bits, head " << h << ", " << d;
      }
    }
  }
}

}  // namespace
