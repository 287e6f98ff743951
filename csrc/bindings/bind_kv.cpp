// Bindings of csrc/kv: quantize and dequantize key/value states, and the fused
// decode attention over packed codes (use ragkernels.kv). States arrive as
// 4-D [batch, heads, tokens, dim] numpy arrays viewing torch tensors in place:
// float32, float16, or bfloat16 passed as its int16 bits with bfloat16=True
// (numpy has no bfloat16). Packed arrays are C-contiguous, as ragkernels.kv
// makes them; every shape is checked against the others here, and the GIL is
// released while the kernels run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>

#include "bindings/checks.h"
#include "core/float16.h"
#include "kv/bitstream.h"
#include "kv/decode_attention.h"
#include "kv/quantize.h"
#include "kv/select.h"

namespace ragkernels::bindings {

namespace {

using kv::Dtype;

Dtype dtype_of(const py::array& a, bool bfloat16, const char* op, const char* arg) {
  if (bfloat16) {
    RK_CHECK_TYPE(has_dtype<int16_t>(a) || has_dtype<uint16_t>(a), op, ": ", arg,
                  " with bfloat16=True must hold the bfloat16 bits as int16, got ", describe(a));
    return Dtype::kBFloat16;
  }
  if (has_dtype<float>(a)) return Dtype::kFloat32;
  RK_CHECK_TYPE(a.dtype().is(py::dtype("float16")), op, ": ", arg, " must be float32, float16 or bfloat16, got ",
                describe(a));
  return Dtype::kFloat16;
}

// A 4-D [batch, heads, tokens, dim] view with contiguous channels.
template <typename View>
View tokens_view(const py::array& a, bool bfloat16, const char* op, const char* arg) {
  RK_CHECK_ARG(a.ndim() == 4, op, ": ", arg, " must be 4-D [batch, heads, tokens, dim], got ", describe(a));
  View v;
  v.dtype = dtype_of(a, bfloat16, op, arg);
  const int64_t item = a.itemsize();
  const bool empty = a.size() == 0;  // numpy gives empty arrays any strides
  RK_CHECK_ARG(empty || a.shape(3) <= 1 || a.strides(3) == item, op, ": ", arg,
               " must have contiguous channels (the last axis); pass a contiguous tensor");
  for (int axis = 0; axis < 3; ++axis) {
    RK_CHECK_ARG(empty || (a.strides(axis) >= 0 && a.strides(axis) % item == 0), op, ": ", arg,
                 " has unaligned or negative strides; pass a contiguous tensor");
  }
  v.streams = a.shape(0) * a.shape(1);
  v.heads = a.shape(1);
  v.tokens = a.shape(2);
  v.dim = a.shape(3);
  v.batch_stride = a.strides(0) / item;
  v.head_stride = a.strides(1) / item;
  v.token_stride = a.strides(2) / item;
  return v;
}

kv::Tokens read_view(const py::array& a, bool bfloat16, const char* op, const char* arg) {
  auto v = tokens_view<kv::Tokens>(a, bfloat16, op, arg);
  v.data = a.data();
  return v;
}

kv::MutableTokens write_view(py::array& a, bool bfloat16, const char* op, const char* arg) {
  RK_CHECK_ARG(a.writeable(), op, ": ", arg, " is read-only");
  auto v = tokens_view<kv::MutableTokens>(a, bfloat16, op, arg);
  v.data = a.mutable_data();
  return v;
}

void check_bits(int bits, const char* op) {
  RK_CHECK_ARG(kv::supported_bits(bits), op, ": bits must be 2, 3, 4 or 8, got ", bits);
}

void check_group(int group, const char* op) {
  RK_CHECK_ARG(group >= 1, op, ": group_size must be >= 1, got ", group);
}

// A C-contiguous array of T with exactly `shape`.
template <typename T>
const T* packed(const py::array& a, std::initializer_list<int64_t> shape, const char* op, const char* arg) {
  RK_CHECK_TYPE(has_dtype<T>(a), op, ": ", arg, " must be ", py::str(py::dtype::of<T>()).cast<std::string>(),
                ", got ", describe(a));
  RK_CHECK_ARG(a.flags() & py::array::c_style, op, ": ", arg, " must be C-contiguous");
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  int axis = 0;
  std::string expected = "(";
  for (int64_t n : shape) {
    if (same) same = a.shape(axis) == n;
    expected += (axis++ ? ", " : "") + std::to_string(n);
  }
  RK_CHECK_ARG(same, op, ": ", arg, " must have shape ", expected, "), got ", describe(a));
  return static_cast<const T*>(a.data());
}

const float16* half(const py::array& a, std::initializer_list<int64_t> shape, const char* op, const char* arg) {
  RK_CHECK_TYPE(a.dtype().is(py::dtype("float16")), op, ": ", arg, " must be float16, got ", describe(a));
  return reinterpret_cast<const float16*>(packed<uint16_t>(py::array(a).view("uint16"), shape, op, arg));
}

// The packed keys of `batch` x `heads` streams of `tokens` tokens.
kv::PackedKeys packed_keys(const py::array& codes, const py::array& scale, const py::array& minimum,
                           const py::array& offsets, int bits, const char* op) {
  check_bits(bits, op);
  RK_CHECK_ARG(codes.ndim() == 4, op, ": key codes must be 4-D [batch, heads, tokens, bytes], got ",
               describe(codes));
  RK_CHECK_ARG(offsets.ndim() == 3, op, ": key offsets must be 3-D [batch, heads, blocks + 1], got ",
               describe(offsets));
  kv::PackedKeys k;
  const int64_t batch = codes.shape(0), heads = codes.shape(1);
  k.streams = batch * heads;
  k.tokens = codes.shape(2);
  k.blocks = offsets.shape(2) - 1;
  k.bits = bits;
  RK_CHECK_ARG(k.blocks >= 0, op, ": key offsets need at least one entry per stream");
  RK_CHECK_ARG(scale.ndim() == 4, op, ": key scale must be 4-D [batch, heads, blocks, dim], got ", describe(scale));
  k.dim = scale.shape(3);
  k.codes = packed<uint8_t>(codes, {batch, heads, k.tokens, kv::packed_bytes(k.dim, bits)}, op, "key codes");
  k.scale = half(scale, {batch, heads, k.blocks, k.dim}, op, "key scale");
  k.minimum = half(minimum, {batch, heads, k.blocks, k.dim}, op, "key minimum");
  k.offsets = packed<int32_t>(offsets, {batch, heads, k.blocks + 1}, op, "key offsets");
  kv::check_key_offsets(k);
  return k;
}

kv::PackedValues packed_values(const py::array& codes, const py::array& scale, const py::array& minimum, int bits,
                               int group, int64_t dim, const char* op) {
  check_bits(bits, op);
  check_group(group, op);
  RK_CHECK_ARG(codes.ndim() == 4, op, ": value codes must be 4-D [batch, heads, tokens, bytes], got ",
               describe(codes));
  kv::PackedValues v;
  const int64_t batch = codes.shape(0), heads = codes.shape(1);
  v.streams = batch * heads;
  v.tokens = codes.shape(2);
  v.dim = dim;
  v.bits = bits;
  v.group = group;
  v.codes = packed<uint8_t>(codes, {batch, heads, v.tokens, v.row_bytes()}, op, "value codes");
  v.scale = half(scale, {batch, heads, v.tokens, v.groups()}, op, "value scale");
  v.minimum = half(minimum, {batch, heads, v.tokens, v.groups()}, op, "value minimum");
  return v;
}

py::array half_array(std::initializer_list<int64_t> shape) { return py::array(py::dtype("float16"), shape); }

py::tuple quantize_keys(const py::array& x, int bits, int group, bool bfloat16) {
  constexpr const char* kOp = "quantize_keys";
  check_bits(bits, kOp);
  check_group(group, kOp);
  const kv::Tokens keys = read_view(x, bfloat16, kOp, "keys");
  const int64_t batch = x.shape(0), heads = x.shape(1);
  const int64_t blocks = (keys.tokens + group - 1) / group;
  py::array_t<uint8_t> codes({batch, heads, keys.tokens, kv::packed_bytes(keys.dim, bits)});
  py::array scale = half_array({batch, heads, blocks, keys.dim});
  py::array minimum = half_array({batch, heads, blocks, keys.dim});
  {
    py::gil_scoped_release release;
    kv::quantize_keys(keys, bits, group, codes.mutable_data(), static_cast<float16*>(scale.mutable_data()),
                      static_cast<float16*>(minimum.mutable_data()));
  }
  return py::make_tuple(codes, scale, minimum);
}

py::tuple quantize_values(const py::array& x, int bits, int group, bool bfloat16) {
  constexpr const char* kOp = "quantize_values";
  check_bits(bits, kOp);
  check_group(group, kOp);
  const kv::Tokens values = read_view(x, bfloat16, kOp, "values");
  const int64_t batch = x.shape(0), heads = x.shape(1);
  const int64_t groups = (values.dim + group - 1) / group;
  py::array_t<uint8_t> codes({batch, heads, values.tokens, kv::packed_bytes(values.dim, bits)});
  py::array scale = half_array({batch, heads, values.tokens, groups});
  py::array minimum = half_array({batch, heads, values.tokens, groups});
  {
    py::gil_scoped_release release;
    kv::quantize_values(values, bits, group, codes.mutable_data(), static_cast<float16*>(scale.mutable_data()),
                        static_cast<float16*>(minimum.mutable_data()));
  }
  return py::make_tuple(codes, scale, minimum);
}

// `out` must hold exactly the packed streams' batch, heads, tokens and dim.
void check_out(const kv::MutableTokens& out, int64_t batch, int64_t heads, int64_t tokens, int64_t dim,
               const py::array& a, const char* op) {
  RK_CHECK_ARG(a.shape(0) == batch && a.shape(1) == heads && out.tokens == tokens && out.dim == dim, op,
               ": out must have shape (", batch, ", ", heads, ", ", tokens, ", ", dim, "), got ", describe(a));
}

void dequantize_keys(const py::array& codes, const py::array& scale, const py::array& minimum,
                     const py::array& offsets, int bits, py::array out, bool bfloat16) {
  constexpr const char* kOp = "dequantize_keys";
  const kv::PackedKeys keys = packed_keys(codes, scale, minimum, offsets, bits, kOp);
  const kv::MutableTokens target = write_view(out, bfloat16, kOp, "out");
  check_out(target, codes.shape(0), codes.shape(1), keys.tokens, keys.dim, out, kOp);
  py::gil_scoped_release release;
  kv::dequantize_keys(keys, target);
}

void dequantize_values(const py::array& codes, const py::array& scale, const py::array& minimum, int bits, int group,
                       py::array out, bool bfloat16) {
  constexpr const char* kOp = "dequantize_values";
  RK_CHECK_ARG(out.ndim() == 4, kOp, ": out must be 4-D [batch, heads, tokens, dim], got ", describe(out));
  const kv::PackedValues values = packed_values(codes, scale, minimum, bits, group, out.shape(3), kOp);
  const kv::MutableTokens target = write_view(out, bfloat16, kOp, "out");
  check_out(target, codes.shape(0), codes.shape(1), values.tokens, values.dim, out, kOp);
  py::gil_scoped_release release;
  kv::dequantize_values(values, target);
}

py::array_t<float> decode_attention(const py::array& query, const py::array& key_codes, const py::array& key_scale,
                                    const py::array& key_minimum, const py::array& key_offsets, int key_bits,
                                    const py::array& value_codes, const py::array& value_scale,
                                    const py::array& value_minimum, int value_bits, int value_group,
                                    const py::array& residual_keys, const py::array& residual_values,
                                    const py::object& mask, double scaling, bool bfloat16) {
  constexpr const char* kOp = "decode_attention";
  kv::DecodeAttention a;
  a.query = read_view(query, bfloat16, kOp, "query");
  RK_CHECK_ARG(a.query.tokens == 1, kOp, ": query must hold one token per head (decoding), got ", describe(query));
  a.keys = packed_keys(key_codes, key_scale, key_minimum, key_offsets, key_bits, kOp);
  a.batch = key_codes.shape(0);
  a.kv_heads = key_codes.shape(1);
  a.q_heads = query.shape(1);
  const int64_t dim = a.keys.dim;
  RK_CHECK_ARG(query.shape(0) == a.batch && query.shape(3) == dim, kOp, ": query must be (", a.batch,
               ", heads, 1, ", dim, ") to match the keys, got ", describe(query));
  RK_CHECK_ARG(a.kv_heads >= 1 && a.q_heads % a.kv_heads == 0, kOp, ": the query's ", a.q_heads,
               " heads must be a multiple of the cache's ", a.kv_heads, " key/value heads");
  a.values = packed_values(value_codes, value_scale, value_minimum, value_bits, value_group, dim, kOp);
  RK_CHECK_ARG(value_codes.shape(0) == a.batch && value_codes.shape(1) == a.kv_heads &&
                   a.values.tokens == a.keys.tokens,
               kOp, ": value codes must cover the keys' ", a.batch, " x ", a.kv_heads, " streams of ", a.keys.tokens,
               " tokens, got ", describe(value_codes));
  a.residual_keys = read_view(residual_keys, bfloat16, kOp, "residual_keys");
  a.residual_values = read_view(residual_values, bfloat16, kOp, "residual_values");
  for (const auto* r : {&residual_keys, &residual_values}) {
    RK_CHECK_ARG(r->shape(0) == a.batch && r->shape(1) == a.kv_heads && r->shape(3) == dim &&
                     r->shape(2) == residual_keys.shape(2),
                 kOp, ": residual keys and values must both be (", a.batch, ", ", a.kv_heads, ", tokens, ", dim,
                 "), got ", describe(residual_keys), " and ", describe(residual_values));
  }
  const int64_t length = a.keys.tokens + a.residual_keys.tokens;
  RK_CHECK_ARG(length >= 1, kOp, ": the cache is empty (no token to attend to)");
  py::array mask_array;
  if (!mask.is_none()) {
    mask_array = as_ndarray(mask, kOp, "mask");
    a.mask_per_head = mask_array.ndim() == 3;
    a.mask = a.mask_per_head ? packed<float>(mask_array, {a.batch, a.kv_heads, length}, kOp, "mask")
                             : packed<float>(mask_array, {a.batch, length}, kOp, "mask");
  }
  a.scaling = static_cast<float>(scaling);
  py::array_t<float> out({a.batch, a.q_heads, dim});
  a.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    kv::decode_attention(a);
  }
  return out;
}

py::array_t<int32_t> select_positions(const py::object& scores, int64_t streams, int64_t length, int64_t sinks,
                                      int64_t recent, int64_t budget, const std::string& pool, int64_t kernel) {
  constexpr const char* kOp = "select_positions";
  kv::Selection s;
  RK_CHECK_ARG(streams >= 0 && length >= 0, kOp, ": streams and length must be >= 0");
  s.streams = streams;
  s.length = length;
  s.sinks = sinks;
  s.recent = recent;
  s.budget = budget;
  s.kernel = kernel;
  RK_CHECK_ARG(pool == "none" || pool == "max" || pool == "avg", kOp, ": pooling must be 'none', 'max' or 'avg', got '",
               pool, "'");
  s.pool = pool == "max" ? kv::Pool::kMax : pool == "avg" ? kv::Pool::kAvg : kv::Pool::kNone;
  py::array score_array;
  if (!scores.is_none()) {
    score_array = as_ndarray(scores, kOp, "scores");
    s.scores = packed<float>(score_array, {streams, length}, kOp, "scores");
  }
  py::array_t<int32_t> out({streams, std::min(budget, length)});
  {
    py::gil_scoped_release release;
    kv::select_positions(s, out.mutable_data());
  }
  return out;
}

py::tuple segment_summaries(const py::array& keys, const py::array& starts, const std::string& kind,
                            bool bfloat16) {
  constexpr const char* kOp = "segment_summaries";
  RK_CHECK_ARG(kind == "minmax" || kind == "mean", kOp, ": kind must be 'minmax' or 'mean', got '", kind, "'");
  const kv::Tokens view = read_view(keys, bfloat16, kOp, "keys");
  RK_CHECK_ARG(starts.ndim() == 1 && starts.shape(0) >= 1, kOp, ": starts must be 1-D with segments + 1 entries");
  const int64_t segments = starts.shape(0) - 1;
  const int64_t* s = packed<int64_t>(starts, {segments + 1}, kOp, "starts");
  const bool minmax = kind == "minmax";
  py::array_t<float> a({keys.shape(0), keys.shape(1), segments, view.dim});
  py::array_t<float> b({minmax ? keys.shape(0) : 0, keys.shape(1), minmax ? segments : 0, view.dim});
  {
    py::gil_scoped_release release;
    kv::segment_summaries(view, s, segments, minmax, a.mutable_data(), minmax ? b.mutable_data() : nullptr);
  }
  return py::make_tuple(a, b);
}

// ---- the KV bitstream ----------------------------------------------------------------------

namespace bs = kv::bitstream;

// A read-only view of a bytes-like object.
std::pair<const uint8_t*, size_t> bytes_of(const py::buffer& b) {
  const py::buffer_info info = b.request();
  RK_CHECK_TYPE(info.ndim <= 1 && (info.ndim == 0 || info.strides[0] == info.itemsize), "kv stream: expected a "
                "contiguous bytes-like object");
  return {static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize)};
}

py::bytes to_bytes(const std::vector<uint8_t>& v) { return py::bytes(reinterpret_cast<const char*>(v.data()), v.size()); }

bs::StreamInfo header_of(const py::buffer& header) {
  const auto [data, size] = bytes_of(header);
  return bs::read_header(data, size);
}

py::bytes encode_header(uint32_t layers, uint32_t batch, uint32_t kv_heads, uint32_t head_dim, uint32_t value_dim,
                        uint32_t group_size, uint32_t residual, int dtype, uint64_t length) {
  RK_CHECK_ARG(dtype >= 0 && dtype <= 2, "kv stream: dtype code must be 0, 1 or 2");
  bs::StreamInfo info{layers, batch, kv_heads, head_dim, value_dim, group_size, residual, static_cast<Dtype>(dtype),
                      length};
  std::vector<uint8_t> out;
  bs::write_header(info, out);
  bs::read_header(out.data(), out.size());  // the same checks a reader makes
  return to_bytes(out);
}

py::dict decode_header(const py::buffer& header) {
  const bs::StreamInfo i = header_of(header);
  py::dict d;
  d["layers"] = i.layers;
  d["batch"] = i.batch;
  d["kv_heads"] = i.kv_heads;
  d["head_dim"] = i.head_dim;
  d["value_dim"] = i.value_dim;
  d["group_size"] = i.group_size;
  d["residual"] = i.residual;
  d["dtype"] = static_cast<int>(i.dtype);
  d["length"] = i.length;
  return d;
}

py::bytes encode_layer(const py::buffer& header, uint32_t index, int key_bits, int value_bits, uint64_t quantized,
                       uint64_t residual, uint64_t blocks, const py::list& arrays) {
  const bs::StreamInfo info = header_of(header);
  bs::LayerHead head;
  head.index = index;
  head.key_bits = key_bits;
  head.value_bits = value_bits;
  head.quantized = quantized;
  head.residual = residual;
  head.blocks = blocks;
  RK_CHECK_ARG(arrays.size() == bs::kSections, "kv stream: ", bs::kSections, " section arrays expected");
  const auto sizes = bs::section_bytes(info, head);
  std::array<const void*, bs::kSections> data{};
  std::vector<py::array> keep;
  for (int s = 0; s < bs::kSections; ++s) {
    if (sizes[s] == 0 && arrays[s].is_none()) continue;
    py::array a = as_ndarray(arrays[s], "kv stream", "a section");
    RK_CHECK_ARG((a.flags() & py::array::c_style) && static_cast<uint64_t>(a.nbytes()) == sizes[s],
                 "kv stream: section ", s, " must be a C-contiguous array of ", sizes[s], " bytes, got ", describe(a));
    data[s] = a.data();
    keep.push_back(std::move(a));
  }
  std::vector<uint8_t> out;
  {
    py::gil_scoped_release release;
    bs::write_layer(info, head, data, out);
  }
  return to_bytes(out);
}

py::dict layer_head(const py::buffer& header, const py::buffer& chunk, uint32_t index) {
  const bs::StreamInfo info = header_of(header);
  const auto [data, size] = bytes_of(chunk);
  const bs::LayerHead h = bs::read_layer_head(data, size, info, index);
  py::dict d;
  d["key_bits"] = h.key_bits;
  d["value_bits"] = h.value_bits;
  d["quantized"] = h.quantized;
  d["residual"] = h.residual;
  d["blocks"] = h.blocks;
  d["chunk_bytes"] = h.chunk_bytes;
  return d;
}

py::list decode_layer(const py::buffer& header, const py::buffer& chunk, uint32_t index) {
  const bs::StreamInfo info = header_of(header);
  const auto [data, size] = bytes_of(chunk);
  const bs::LayerHead h = bs::read_layer_head(data, size, info, index);
  const int64_t b = info.batch, heads = info.kv_heads, tq = static_cast<int64_t>(h.quantized);
  const int64_t nb = static_cast<int64_t>(h.blocks), r = static_cast<int64_t>(h.residual);
  const int64_t groups = (info.value_dim + info.group_size - 1) / info.group_size;
  const char* residual_dtype = info.dtype == Dtype::kFloat32 ? "float32" : info.dtype == Dtype::kFloat16 ? "float16"
                                                                                                           : "int16";
  py::list out;
  std::array<void*, bs::kSections> targets{};
  auto add = [&](int s, const char* dtype, std::vector<int64_t> shape) {
    py::array a(py::dtype(dtype), shape);
    targets[s] = a.mutable_data();
    out.append(a);
  };
  if (h.compressed()) {
    add(bs::kKeyCodes, "uint8", {b, heads, tq, kv::packed_bytes(info.head_dim, h.key_bits)});
    add(bs::kKeyScale, "float16", {b, heads, nb, info.head_dim});
    add(bs::kKeyMinimum, "float16", {b, heads, nb, info.head_dim});
    add(bs::kKeyOffsets, "int32", {b, heads, nb + 1});
    add(bs::kValueCodes, "uint8", {b, heads, tq, kv::packed_bytes(info.value_dim, h.value_bits)});
    add(bs::kValueScale, "float16", {b, heads, tq, groups});
    add(bs::kValueMinimum, "float16", {b, heads, tq, groups});
  } else {
    for (int s = 0; s < bs::kResidualKeys; ++s) out.append(py::none());
  }
  add(bs::kResidualKeys, residual_dtype, {b, heads, r, info.head_dim});
  add(bs::kResidualValues, residual_dtype, {b, heads, r, info.value_dim});
  {
    py::gil_scoped_release release;
    bs::read_layer(data, std::min<size_t>(size, h.chunk_bytes), info, h, targets);
  }
  return out;
}

}  // namespace

void bind_kv(py::module_& m) {
  m.def("kv_quantize_keys", &quantize_keys, py::arg("keys"), py::arg("bits"), py::arg("group_size"),
        py::arg("bfloat16") = false);
  m.def("kv_quantize_values", &quantize_values, py::arg("values"), py::arg("bits"), py::arg("group_size"),
        py::arg("bfloat16") = false);
  m.def("kv_dequantize_keys", &dequantize_keys, py::arg("codes"), py::arg("scale"), py::arg("minimum"),
        py::arg("offsets"), py::arg("bits"), py::arg("out"), py::arg("bfloat16") = false);
  m.def("kv_dequantize_values", &dequantize_values, py::arg("codes"), py::arg("scale"), py::arg("minimum"),
        py::arg("bits"), py::arg("group_size"), py::arg("out"), py::arg("bfloat16") = false);
  m.def("kv_decode_attention", &decode_attention, py::arg("query"), py::arg("key_codes"), py::arg("key_scale"),
        py::arg("key_minimum"), py::arg("key_offsets"), py::arg("key_bits"), py::arg("value_codes"),
        py::arg("value_scale"), py::arg("value_minimum"), py::arg("value_bits"), py::arg("value_group_size"),
        py::arg("residual_keys"), py::arg("residual_values"), py::arg("mask"), py::arg("scaling"),
        py::arg("bfloat16") = false);
  m.def("kv_encode_header", &encode_header, py::arg("layers"), py::arg("batch"), py::arg("kv_heads"),
        py::arg("head_dim"), py::arg("value_dim"), py::arg("group_size"), py::arg("residual"), py::arg("dtype"),
        py::arg("length"));
  m.def("kv_decode_header", &decode_header, py::arg("header"));
  m.def("kv_encode_layer", &encode_layer, py::arg("header"), py::arg("index"), py::arg("key_bits"),
        py::arg("value_bits"), py::arg("quantized"), py::arg("residual"), py::arg("blocks"), py::arg("arrays"));
  m.def("kv_layer_head", &layer_head, py::arg("header"), py::arg("chunk"), py::arg("index"));
  m.def("kv_decode_layer", &decode_layer, py::arg("header"), py::arg("chunk"), py::arg("index"));
  m.def("kv_segment_summaries", &segment_summaries, py::arg("keys"), py::arg("starts"), py::arg("kind"),
        py::arg("bfloat16") = false);
  m.def("kv_select_positions", &select_positions, py::arg("scores"), py::arg("streams"), py::arg("length"),
        py::arg("sinks"), py::arg("recent"), py::arg("budget"), py::arg("pooling"), py::arg("kernel"));
}

}  // namespace ragkernels::bindings
