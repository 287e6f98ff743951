"""ragkernels.kv: quantization, packing, dequantization and fused decode
attention against the numpy references in tests/reference/kv.py."""
import numpy as np
import pytest

import ragkernels as rk
from ragkernels import kv
from tests.reference import kv as ref

torch = pytest.importorskip("torch")

SHAPES = [  # (group, head_dim, tokens)
    (32, 64, 70),   # whole groups of channels, a partial last block of tokens
    (48, 64, 5),    # group does not divide the head dimension: a 16-channel tail
    (5, 13, 11),    # odd everything
    (16, 128, 700),  # rows enough for several threads and quantizer batches
    (32, 64, 1),    # one token
]


def states(rng, batch, heads, tokens, dim, scale=1.0):
    return (rng.standard_normal((batch, heads, tokens, dim)) * scale).astype(np.float32)


@pytest.mark.parametrize("bits", kv.SUPPORTED_BITS)
@pytest.mark.parametrize("group,dim,tokens", SHAPES)
def test_keys_match_reference(bits, group, dim, tokens):
    x = states(np.random.default_rng(bits * 100 + dim), 2, 3, tokens, dim)
    packed = kv.quantize_keys(x, bits, group)
    codes, scale, minimum = ref.quantize_keys(x, bits, group)
    assert np.array_equal(packed.codes, ref.pack(codes, bits))
    assert np.array_equal(packed.scale.view(np.uint16), scale.view(np.uint16))
    assert np.array_equal(packed.minimum.view(np.uint16), minimum.view(np.uint16))
    blocks = -(-tokens // group)
    assert packed.offsets.tolist() == [[[min(j * group, tokens) for j in range(blocks + 1)]] * 3] * 2
    restored = kv.dequantize_keys(packed)
    assert np.array_equal(restored, ref.dequantize_keys(codes, scale, minimum, packed.offsets))


@pytest.mark.parametrize("bits", kv.SUPPORTED_BITS)
@pytest.mark.parametrize("group,dim,tokens", SHAPES)
def test_values_match_reference(bits, group, dim, tokens):
    x = states(np.random.default_rng(bits * 10 + tokens), 2, 3, tokens, dim, scale=3.0)
    packed = kv.quantize_values(x, bits, group)
    codes, scale, minimum = ref.quantize_values(x, bits, group)
    assert np.array_equal(packed.codes, ref.pack(codes, bits))
    assert np.array_equal(packed.scale.view(np.uint16), scale.view(np.uint16))
    assert np.array_equal(packed.minimum.view(np.uint16), minimum.view(np.uint16))
    assert np.array_equal(kv.dequantize_values(packed, dim), ref.dequantize_values(codes, scale, minimum, group))


@pytest.mark.parametrize("bits", kv.SUPPORTED_BITS)
def test_error_within_half_a_step(bits):
    """|x - dequantized| <= scale / 2 (plus float32 rounding), keys and values."""
    rng = np.random.default_rng(bits)
    x = states(rng, 1, 4, 96, 40, scale=5.0) + rng.uniform(-50, 50, (1, 4, 1, 40)).astype(np.float32)
    keys = kv.quantize_keys(x, bits, 32)
    err = np.abs(kv.dequantize_keys(keys) - x)
    step = np.repeat(keys.scale.astype(np.float32), 32, axis=2)[:, :, :96]
    assert np.all(err <= step / 2 + 1e-6 * (np.abs(x) + 1))
    values = kv.quantize_values(x, bits, 16)
    err = np.abs(kv.dequantize_values(values, 40) - x)
    step = values.scale.astype(np.float32)[..., np.arange(40) // 16]
    assert np.all(err <= step / 2 + 1e-6 * (np.abs(x) + 1))


def test_constant_and_extreme_groups():
    x = np.zeros((1, 1, 4, 8), np.float32)
    x[..., 1] = 0.1        # not a float16: the minimum rounds down, the scale covers the gap
    x[..., 2] = 65504.0    # the largest float16
    x[..., 3] = -65504.0
    for bits in kv.SUPPORTED_BITS:
        keys = kv.quantize_keys(x, bits, 4)
        restored = kv.dequantize_keys(keys)
        step = keys.scale.astype(np.float32)
        assert np.all(np.abs(restored - x) <= step / 2 + 1e-6 * np.abs(x))
        assert np.array_equal(restored[..., [0, 2, 3]], x[..., [0, 2, 3]])


def test_signed_zero_extremes_are_positive_zero():
    """A group whose minimum or maximum is a zero gets +0 bits, whichever of
    -0.0 and +0.0 comes first in it (the reference adds 0 as well)."""
    x = np.ones((1, 1, 3, 40), np.float32)
    x[0, 0, 0, :2] = [-0.0, 0.0]
    x[0, 0, 1, :2] = [0.0, -0.0]
    x[0, 0, 2, :] = -0.0
    x[0, 0, 2, ::3] = 0.0
    for quantize, reference in ((kv.quantize_keys, ref.quantize_keys), (kv.quantize_values, ref.quantize_values)):
        packed = quantize(x, 2, 32)
        _, scale, minimum = reference(x, 2, 32)
        assert np.array_equal(packed.minimum.view(np.uint16), minimum.view(np.uint16))
        assert np.array_equal(packed.scale.view(np.uint16), scale.view(np.uint16))
        assert not (packed.minimum.view(np.uint16) & 0x8000).any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_groups_become_nan(bad):
    x = states(np.random.default_rng(1), 1, 2, 8, 16)
    x[0, 1, 3, 5] = bad
    keys = kv.quantize_keys(x, 4, 4)
    restored = kv.dequantize_keys(keys)
    nan = np.isnan(restored)
    assert nan[0, 1, :4, 5].all() and nan.sum() == 4  # only the (block, channel) holding it
    values = kv.quantize_values(x, 4, 8)
    restored = kv.dequantize_values(values, 16)
    nan = np.isnan(restored)
    assert nan[0, 1, 3, :8].all() and nan.sum() == 8  # only the (token, group) holding it
    c, s, m = ref.quantize_keys(x, 4, 4)
    assert np.array_equal(keys.codes, ref.pack(c, 4))


def test_beyond_float16_is_an_error():
    x = np.zeros((1, 1, 2, 4), np.float32)
    x[0, 0, 0, 0] = 1e6
    with pytest.raises(ValueError, match="float16"):
        kv.quantize_keys(x, 2, 2)
    x[0, 0, 0, 0] = -70000.0
    with pytest.raises(ValueError, match="float16"):
        kv.quantize_values(torch.from_numpy(x).to(torch.bfloat16), 8, 2)
    # Inside +-65504 every range fits: (65504 - -65504) / 3 is a float16.
    x[0, 0, 0, 0], x[0, 0, 1, 0] = 65504.0, -65504.0
    assert np.isfinite(kv.dequantize_keys(kv.quantize_keys(x, 2, 2))).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_torch_inputs_read_in_place(dtype):
    """torch tensors of every supported dtype, as transformers hands them out
    (a transposed view of [batch, tokens, heads, dim]); torch comes back."""
    rng = np.random.default_rng(3)
    base = torch.from_numpy(rng.standard_normal((2, 9, 3, 24)).astype(np.float32)).to(dtype)
    x = base.transpose(1, 2)  # [2, 3, 9, 24], not contiguous
    exact = x.float().numpy()
    keys = kv.quantize_keys(x, 3, 4)
    assert isinstance(keys.codes, torch.Tensor)
    c, s, m = ref.quantize_keys(exact, 3, 4)
    assert np.array_equal(keys.codes.numpy(), ref.pack(c, 3))
    out = torch.empty(2, 3, 9, 24, dtype=dtype)
    kv.dequantize_keys(keys, out=out)
    expected = torch.from_numpy(ref.dequantize_keys(c, s, m, keys.offsets.numpy())).to(dtype)
    assert torch.equal(out, expected)
    values = kv.quantize_values(x, 2, 16)
    c, s, m = ref.quantize_values(exact, 2, 16)
    assert np.array_equal(values.codes.numpy(), ref.pack(c, 2))


def attention_case(rng, bits, group, dim, quantized, residual, batch=2, kv_heads=2, rep=3):
    x = states(rng, batch, kv_heads, quantized + residual, dim)
    v = states(rng, batch, kv_heads, quantized + residual, dim, scale=2.0)
    keys = kv.quantize_keys(x[:, :, :quantized], bits, group)
    values = kv.quantize_values(v[:, :, :quantized], bits, group)
    full_k = np.concatenate([kv.dequantize_keys(keys), x[:, :, quantized:]], axis=2)
    full_v = np.concatenate([kv.dequantize_values(values, dim), v[:, :, quantized:]], axis=2)
    query = states(rng, batch, kv_heads * rep, 1, dim)
    return query, keys, values, x[:, :, quantized:], v[:, :, quantized:], full_k, full_v


# The fused kernel's copies per instruction set: RAGKERNELS_ISA caps the one
# that runs (a cap above what this processor has runs its best copy again).
ISAS = ["baseline", "avx2", "avx512"]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", kv.SUPPORTED_BITS)
@pytest.mark.parametrize("group,dim,quantized,residual", [
    (32, 64, 96, 7), (32, 64, 1300, 3), (48, 64, 50, 0), (5, 13, 11, 1), (32, 64, 0, 5), (32, 64, 1, 0),
    (16, 64, 200, 3), (64, 128, 300, 2), (8, 64, 40, 1)])
def test_decode_attention_matches_reference(bits, group, dim, quantized, residual, isa, monkeypatch):
    monkeypatch.setenv("RAGKERNELS_ISA", isa)
    rng = np.random.default_rng(quantized + bits)
    query, keys, values, rk_, rv, full_k, full_v = attention_case(rng, bits, group, dim, quantized, residual)
    out = kv.decode_attention(query, keys, values, rk_, rv)
    expected = ref.attention(query, full_k, full_v)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)


def test_decode_attention_masks_left_padding():
    """A left-padded batch row: its padding positions get -inf and weigh
    nothing; a fully masked row gives zeros (as torch's SDPA)."""
    rng = np.random.default_rng(7)
    query, keys, values, rk_, rv, full_k, full_v = attention_case(rng, 4, 32, 64, 600, 4)
    mask = np.zeros((2, 604), np.float32)
    mask[1, :550] = -np.inf
    out = kv.decode_attention(query, keys, values, rk_, rv, mask=mask)
    np.testing.assert_allclose(out, ref.attention(query, full_k, full_v, mask), rtol=2e-5, atol=2e-5)
    unpadded = kv.decode_attention(query[1:], kv.QuantizedKeys(
        keys.codes[1:, :, 550:].copy(), keys.scale[1:, :, 17:].copy(), keys.minimum[1:, :, 17:].copy(),
        np.ascontiguousarray(np.minimum(np.maximum(keys.offsets[1:, :, 17:] - 550, 0), 50)), 4),
        kv.QuantizedValues(*(a[1:, :, 550:].copy() for a in values[:3]), 4, 32), rk_[1:], rv[1:])
    np.testing.assert_allclose(out[1:], unpadded, rtol=1e-5, atol=1e-6)
    mask[0] = -np.inf
    out = kv.decode_attention(query, keys, values, rk_, rv, mask=mask)
    assert np.all(out[0] == 0)


def test_decode_attention_nan_propagates():
    rng = np.random.default_rng(8)
    query, keys, values, rk_, rv, full_k, full_v = attention_case(rng, 2, 32, 64, 64, 2, batch=1, kv_heads=1, rep=2)
    rk_[0, 0, 1, 3] = np.nan
    out = kv.decode_attention(query, keys, values, rk_, rv)
    assert np.isnan(out).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_decode_attention_half_inputs(dtype):
    rng = np.random.default_rng(9)
    query, keys, values, rk_, rv, full_k, full_v = attention_case(rng, 4, 32, 64, 100, 6)
    q, rk16, rv16 = (torch.from_numpy(a).to(dtype) for a in (query, rk_, rv))
    keys_t = kv.QuantizedKeys(*(torch.from_numpy(a) for a in keys[:4]), keys.bits)
    values_t = kv.QuantizedValues(*(torch.from_numpy(a) for a in values[:3]), values.bits, values.group_size)
    out = kv.decode_attention(q, keys_t, values_t, rk16, rv16)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    full_k[:, :, 100:] = rk16.float().numpy()
    full_v[:, :, 100:] = rv16.float().numpy()
    np.testing.assert_allclose(out.numpy(), ref.attention(q.float().numpy(), full_k, full_v), rtol=1e-5, atol=1e-5)


def test_decode_attention_thread_count_does_not_matter():
    rng = np.random.default_rng(10)
    args = attention_case(rng, 2, 32, 64, 3000, 9)[:5]
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = kv.decode_attention(*args)
        rk.set_num_threads(2)
        two = kv.decode_attention(*args)
    finally:
        rk.set_num_threads(before)
    assert np.array_equal(one, two)


def test_compacted_blocks():
    """Offsets that leave blocks partial or empty (what compaction makes)."""
    rng = np.random.default_rng(11)
    x = states(rng, 1, 2, 64, 16)
    keys = kv.quantize_keys(x, 4, 16)
    keep = [np.r_[0:5, 20:32, 40:41], np.r_[16:32, 60:62]]  # per head; equal counts are not required here
    keep[1] = np.r_[16:32, 61:63]
    rows = [keys.codes[0, h, keep[h]] for h in range(2)]
    offsets = np.stack([np.searchsorted(k, np.arange(0, 65, 16)) for k in keep]).astype(np.int32)[None]
    compact = kv.QuantizedKeys(np.stack(rows)[None], keys.scale, keys.minimum, offsets, 4)
    restored = kv.dequantize_keys(compact)
    full = kv.dequantize_keys(keys)
    for h in range(2):
        assert np.array_equal(restored[0, h], full[0, h, keep[h]])
    query = states(rng, 1, 2, 1, 16)
    empty = np.zeros((1, 2, 0, 16), np.float32)
    values = kv.quantize_values(np.stack([x[0, h, keep[h]] for h in range(2)])[None], 4, 16)
    out = kv.decode_attention(query, compact, values, empty, empty)
    np.testing.assert_allclose(out, ref.attention(query, restored, kv.dequantize_values(values, 16)), atol=1e-5)


def test_bad_arguments():
    x = np.zeros((1, 1, 4, 8), np.float32)
    with pytest.raises(ValueError, match="bits must be one of"):
        kv.quantize_keys(x, 5, 4)
    with pytest.raises(ValueError, match="group_size"):
        kv.quantize_values(x, 4, 0)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        kv.quantize_keys(x.astype(np.float64), 4, 4)
    with pytest.raises(ValueError, match="4-D"):
        kv.quantize_keys(x[0], 4, 4)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        kv.quantize_keys(x.tolist(), 4, 4)
    keys, values = kv.quantize_keys(x, 4, 4), kv.quantize_values(x, 4, 4)
    bad = kv.QuantizedKeys(keys.codes, keys.scale, keys.minimum, np.array([[[0, 3]]], np.int32), 4)
    with pytest.raises(ValueError, match="must end at the 4 quantized tokens"):
        kv.dequantize_keys(bad)
    bad = kv.QuantizedKeys(keys.codes, keys.scale, keys.minimum, np.array([[[0, 5]]], np.int32), 4)
    with pytest.raises(ValueError, match="must end"):
        kv.dequantize_keys(bad)
    with pytest.raises(ValueError, match="shape"):
        kv.dequantize_keys(keys._replace(bits=2))  # codes are 4-bit wide
    with pytest.raises(ValueError, match="out must have shape"):
        kv.dequantize_keys(keys, out=np.zeros((1, 1, 3, 8), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros((1, 1, 4, 8), np.float32)
        ro.flags.writeable = False
        kv.dequantize_values(values, 8, out=ro)
    empty = np.zeros((1, 1, 0, 8), np.float32)
    query = np.zeros((1, 2, 1, 8), np.float32)
    with pytest.raises(ValueError, match="multiple of"):
        kv.decode_attention(np.zeros((1, 3, 1, 8), np.float32), kv.quantize_keys(np.zeros((1, 2, 4, 8), np.float32), 4, 4),
                            kv.quantize_values(np.zeros((1, 2, 4, 8), np.float32), 4, 4),
                            np.zeros((1, 2, 0, 8), np.float32), np.zeros((1, 2, 0, 8), np.float32))
    with pytest.raises(ValueError, match="one token"):
        kv.decode_attention(np.zeros((1, 2, 2, 8), np.float32), keys, values, empty, empty)
    with pytest.raises(ValueError, match="mask"):
        kv.decode_attention(query, keys, values, empty, empty, mask=np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="share one dtype"):
        kv.decode_attention(query, keys, values, empty.astype(np.float16), empty)
    with pytest.raises(ValueError, match="empty"):
        k0, v0 = kv.quantize_keys(empty, 4, 4), kv.quantize_values(empty, 4, 4)
        kv.decode_attention(query, k0, v0, empty, empty)
    with pytest.raises(ValueError, match="residual"):
        kv.decode_attention(query, keys, values, np.zeros((1, 1, 2, 8), np.float32), empty)


def test_nbytes_counts_everything():
    x = np.zeros((1, 2, 64, 64), np.float32)
    keys, values = kv.quantize_keys(x, 2, 32), kv.quantize_values(x, 2, 32)
    assert kv.nbytes(keys) == 2 * 64 * 16 + 2 * 2 * 2 * 64 * 2 + 2 * 3 * 4
    assert kv.nbytes(values) == 2 * 64 * 16 + 2 * 2 * 64 * 2 * 2
    assert kv.packed_bytes(64, 3) == 16 + 8 and kv.packed_bytes(13, 2) == 4


@pytest.mark.parametrize("policy", [kv.StreamingLLM(sinks=2, window=5), kv.H2O(9), kv.H2O(9, recent=2),
                                    kv.SnapKV(10, window=3, kernel=3), kv.SnapKV(10, window=3, kernel=5, pooling="avg"),
                                    kv.SnapKV(10, window=4, kernel=1)])
@pytest.mark.parametrize("length", [1, 7, 10, 11, 60])
def test_policy_selection_matches_reference(policy, length):
    rng = np.random.default_rng(length)
    streams = 3
    scores = rng.standard_normal((streams, length)).astype(np.float32)
    scores[0, ::4] = 0.5                       # ties
    scores[1, 1::5] = np.nan                   # NaN ranks last
    scores[2] = np.round(scores[2])            # many ties
    budget = policy.budget_for(0, length)
    got = policy.select(None if not policy.needs_scores else scores, length, budget, streams)
    assert got.dtype == np.int32 and got.shape == (streams, min(budget, length))
    for s in range(streams):
        expected = ref.select_positions(scores[s], length, policy.sinks, policy.recent_for(budget), budget,
                                        policy.pooling, policy.kernel)
        assert got[s].tolist() == expected


def test_policy_budgets_and_errors():
    assert kv.H2O(0.5).budget_for(0, 100) == 50 and kv.H2O(0.5).recent_for(50) == 25
    assert kv.SnapKV([8, 0.25], window=4).budget_for(1, 100) == 25
    assert kv.SnapKV(0.01, window=4).budget_for(0, 100) == 4  # never below the window
    with pytest.raises(ValueError, match=r"budget 3 < sinks \+ window \(0 \+ 4\)"):
        kv.SnapKV(3, window=4).budget_for(0, 100)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        kv.H2O(1.5)
    with pytest.raises(ValueError, match="budget"):
        kv.H2O(0)
    with pytest.raises(ValueError, match="pooling"):
        kv.SnapKV(8, pooling="median")
    with pytest.raises(ValueError, match="sinks"):
        kv.StreamingLLM(sinks=-1)
    with pytest.raises(ValueError, match="must be >= 1 and >= sinks"):
        rk._core.kv_select_positions(None, 1, 10, 2, 3, 4, "none", 1)
    with pytest.raises(ValueError, match="scores are needed"):
        rk._core.kv_select_positions(None, 1, 10, 0, 3, 5, "none", 1)
    with pytest.raises(ValueError, match="odd"):
        rk._core.kv_select_positions(np.zeros((1, 10), np.float32), 1, 10, 0, 3, 5, "max", 2)


def test_page_bounds_and_sentence_means_match_numpy():
    rng = np.random.default_rng(12)
    keys = states(rng, 2, 3, 37, 8)
    keys[1, 2, 5, 3] = np.nan
    low, high = kv.page_bounds(keys, 16)
    assert low.shape == high.shape == (2, 3, 2, 8)
    for p in range(2):
        page = keys[:, :, p * 16:(p + 1) * 16]
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(low[:, :, p], np.min(page, axis=2))
            np.testing.assert_array_equal(high[:, :, p], np.max(page, axis=2))
    assert np.isnan(low[1, 2, 0, 3]) and np.isnan(high[1, 2, 0, 3])
    means = kv.segment_means(keys, [0, 3, 20, 37])
    np.testing.assert_allclose(means[0, 0, 1], keys[0, 0, 3:20].mean(0), rtol=1e-6)
    bf = torch.from_numpy(keys).to(torch.bfloat16)
    np.testing.assert_array_equal(kv.page_bounds(bf, 16)[1].numpy()[0], bf.float().numpy()[0, :, :32].reshape(3, 2, 16, 8).max(2))
    with pytest.raises(ValueError, match="non-empty run"):
        kv.segment_means(keys, [0, 5, 5])
    with pytest.raises(ValueError, match="non-empty run"):
        kv.segment_means(keys, [0, 38])
    chosen = kv.choose_segments(np.array([[3.0, 1.0, 2.0, np.nan], [np.nan, 1.0, 1.0, 0.0]]), [5, 1, 2, 1], 6)
    assert chosen.tolist() == [[True, True, False, False], [False, True, True, True]]
