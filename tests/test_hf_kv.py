"""ragkernels.hf.CompressedCache on tiny Llama and GPT-2 models (random
weights, real transformers code): equal to DynamicCache when compression is
off, equal to the reference layer of tests/reference/kv.py when on, exact
crop/compact, generate in every mode, and speculative decoding on top."""
import inspect

import numpy as np

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.cache_utils import Cache, DynamicCache  # noqa: E402

import ragkernels as rk  # noqa: E402
from ragkernels import kv  # noqa: E402
from ragkernels.hf import compressed_cache  # noqa: E402
from tests.reference import kv as ref  # noqa: E402

VOCAB = 97
MODELS = ["llama", "gpt2"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(kind, attn="sdpa", seed=0):
    torch.manual_seed(seed)
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                          bos_token_id=None, eos_token_id=None, pad_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=48, n_layer=2, n_head=2, n_positions=512,
                                         bos_token_id=None, eos_token_id=None, pad_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
    model.set_attn_implementation(attn)
    model.generation_config.pad_token_id = 0
    return model.eval()


@pytest.fixture(params=MODELS)
def model(request):
    return make_model(request.param)


def prompts(batch=2, length=37, seed=0, padded=True):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    if padded and batch > 1:
        ids[1, :9], mask[1, :9] = 0, 0  # left padding
    return ids, mask


def reference_cache(model, bits=4, group=8, residual=8):
    layers = model.config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[ref.reference_layer(bits, bits, group, residual) for _ in range(layers)])


def forward(model, cache, **inputs):
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        return model(**inputs, **{key: cache}, use_cache=True)


def step_logits(model, cache, ids, mask, steps=20):
    """Prefill, then greedy steps one token at a time; every step's logits."""
    out = forward(model, cache, input_ids=ids, attention_mask=mask)
    logits = [out.logits[:, -1]]
    for _ in range(steps):
        token = logits[-1].argmax(-1, keepdim=True)
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        out = forward(model, cache, input_ids=token, attention_mask=mask)
        logits.append(out.logits[:, -1])
    return torch.stack(logits)


def test_off_equals_dynamic_cache(model):
    ids, mask = prompts()
    common = dict(attention_mask=mask, max_new_tokens=12)
    for mode in (dict(do_sample=False), dict(num_beams=3), dict(do_sample=True, top_k=5)):
        torch.manual_seed(3)
        expected = model.generate(ids, cache=DynamicCache(), **common, **mode)
        torch.manual_seed(3)
        got = model.generate(ids, cache=rk.hf.CompressedCache(model.config, key_bits=None), **common, **mode)
        assert torch.equal(got, expected), mode


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_equals_reference_step_by_step(model, bits):
    """Every step's logits equal those of the reference layer: the same
    tokens are quantized at the same steps, to the same values."""
    ids, mask = prompts()
    expected = step_logits(model, reference_cache(model, bits, 8, 8), ids, mask)
    cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=8)
    got = step_logits(model, cache, ids, mask)
    assert torch.equal(got, expected)
    assert cache.layers[0].quantized_tokens == 48  # 37 + 20 positions, >= 8 residual, whole blocks of 8


def test_fused_attention_matches_reference(monkeypatch):
    for kind in MODELS:
        model = make_model(kind)
        ids, mask = prompts()
        expected = step_logits(model, reference_cache(model, 4, 8, 8), ids, mask)
        calls = []
        original = kv.decode_attention
        monkeypatch.setattr(kv, "decode_attention", lambda *a, **k: calls.append(1) or original(*a, **k))
        rk.hf.enable_fused_attention(model)
        got = step_logits(model, rk.hf.CompressedCache(model.config, key_bits=4, group_size=8, residual=8), ids, mask)
        assert len(calls) == 20 * 2  # every decode step of both layers read the packed codes
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        monkeypatch.setattr(kv, "decode_attention", original)


@pytest.mark.parametrize("mode", [dict(do_sample=False), dict(num_beams=3), dict(do_sample=True, top_p=0.9)])
def test_generate_equals_reference(model, mode):
    ids, mask = prompts()
    torch.manual_seed(5)
    expected = model.generate(ids, attention_mask=mask, cache=reference_cache(model), max_new_tokens=24, **mode)
    torch.manual_seed(5)
    cache = rk.hf.CompressedCache(model.config, key_bits=4, group_size=8, residual=8)
    got = model.generate(ids, attention_mask=mask, cache=cache, max_new_tokens=24, **mode)
    assert torch.equal(got, expected)


def filled_cache(model, bits=3, steps=14):
    ids, mask = prompts()
    cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=8)
    step_logits(model, cache, ids, mask, steps=steps)
    return cache


def views(cache):
    return [tuple(t.clone() for t in layer.dequantized()) for layer in cache.layers]


@pytest.mark.parametrize("remove", [1, 5, 9, 17, 30, 51])
def test_crop_is_exact(model, remove):
    """Within the residual or into quantized blocks: the kept tokens are
    exactly what they were, and the cache keeps working."""
    cache = filled_cache(model)
    before, held = views(cache), cache.get_seq_length()
    cache.crop(-remove)
    assert cache.get_seq_length() == held - remove
    for layer, (k, v) in zip(cache.layers, before):
        got_k, got_v = layer.dequantized()
        assert torch.equal(got_k, k[:, :, : held - remove]) and torch.equal(got_v, v[:, :, : held - remove])
    token = torch.tensor([[5], [6]])
    forward(model, cache, input_ids=token, attention_mask=torch.ones(2, held - remove + 1, dtype=torch.long))
    assert cache.get_seq_length() == held - remove + 1
    with pytest.raises(ValueError, match="negative"):
        cache.crop(3)


def test_compact_is_exact(model):
    cache = filled_cache(model)
    held = cache.get_seq_length()
    before = views(cache)
    keep_sets = [
        torch.tensor([list(range(0, 40)) + [45, 50], list(range(0, 40)) + [44, 49]]),  # prefix + a path per row
        torch.tensor([[0, 1, 2, 3] + list(range(held - 10, held))] * 2),                # sinks + window
        torch.tensor([[3, 1, 1, 20, held - 1], [0, 0, 2, 2, 5]]),                       # any order, repeats
    ]
    for keep in keep_sets:
        cache = filled_cache(model)
        cache.compact(keep)
        for layer, (k, v) in zip(cache.layers, before):
            got_k, got_v = layer.dequantized()
            index = keep[:, None, :, None]
            assert torch.equal(got_k, torch.gather(k, 2, index.expand(-1, k.shape[1], -1, k.shape[3])))
            assert torch.equal(got_v, torch.gather(v, 2, index.expand(-1, v.shape[1], -1, v.shape[3])))
    # per head, as eviction policies keep them
    cache = filled_cache(model)
    heads = cache.layers[0].keys.shape[1]
    keep = torch.stack([torch.stack([torch.randperm(held - 6)[:20].sort().values for _ in range(heads)])
                        for _ in range(2)])
    cache.compact(keep)
    for layer, (k, v) in zip(cache.layers, before):
        got_k, _ = layer.dequantized()
        assert torch.equal(got_k, torch.gather(k, 2, keep[..., None].expand(-1, -1, -1, k.shape[3])))


def test_speculative_decoding_runs_on_a_compressed_cache():
    """transformers' QuantizedCache cannot be rolled back; ours can. With
    compression off the output equals greedy decoding exactly."""
    model = make_model("llama")
    ids = torch.randint(1, VOCAB, (1, 30), generator=torch.Generator().manual_seed(2))
    ids = torch.cat([ids, ids[:, :12]], dim=1)  # a repeat the prompt-lookup drafter finds
    drafter = rk.spec.PromptLookupDrafter()
    expected = model.generate(ids, max_new_tokens=30, do_sample=False)
    cache = rk.hf.CompressedCache(model.config, key_bits=None)
    out = rk.hf.speculative_generate(model, ids, drafter, max_new_tokens=30, cache=cache)
    assert torch.equal(out.sequences, expected)
    cache = rk.hf.CompressedCache(model.config, key_bits=4, group_size=8, residual=8)
    out = rk.hf.speculative_generate(model, ids, drafter, max_new_tokens=30, cache=cache)
    assert out.sequences.shape == (1, 72)
    assert cache.get_seq_length() == 71  # every position but the last token's
    assert cache.layers[0].quantized_tokens > 0


def test_nbytes_counts_every_byte():
    model = make_model("llama")
    cache = filled_cache(model, bits=2, steps=40)
    layer = cache.layers[0]
    batch, heads, residual, dim = layer.keys.shape
    tokens, blocks = layer.quantized_tokens, layer.quantized_keys.scale.shape[2]
    expected = (2 * batch * heads * residual * dim * 4                       # float32 residual keys and values
                + 2 * batch * heads * tokens * kv.packed_bytes(dim, 2)       # key and value codes
                + 2 * batch * heads * blocks * dim * 2                       # key scale and minimum
                + batch * heads * (blocks + 1) * 4                           # key block offsets
                + 2 * batch * heads * tokens * (dim // 8) * 2)               # value scale and minimum
    assert layer.nbytes == expected
    assert cache.nbytes == 2 * expected


def test_per_layer_bits_and_errors():
    model = make_model("llama")
    cache = rk.hf.CompressedCache(model.config, key_bits=[2, None], value_bits=[4, None], group_size=8, residual=8)
    ids, mask = prompts(batch=1)
    step_logits(model, cache, ids, mask, steps=12)
    assert cache.layers[0].quantized_tokens > 0 and cache.layers[1].quantized_tokens == 0
    assert cache.layers[1].get_seq_length() == cache.layers[0].get_seq_length()
    with pytest.raises(ValueError, match="one of"):
        rk.hf.CompressedCache(model.config, key_bits=5)
    with pytest.raises(ValueError, match="one entry per layer"):
        rk.hf.CompressedCache(model.config, key_bits=[2, 2, 2])
    with pytest.raises(ValueError, match="both set or both None"):
        rk.hf.CompressedCache(model.config, key_bits=[2, None], value_bits=[2, 2])
    with pytest.raises(ValueError, match="group_size"):
        rk.hf.CompressedCache(model.config, group_size=0)


def test_bfloat16_model():
    model = make_model("llama").to(torch.bfloat16)
    ids, mask = prompts()
    expected = step_logits(model, reference_cache(model, 4, 8, 8), ids, mask, steps=12)
    got = step_logits(model, rk.hf.CompressedCache(model.config, key_bits=4, group_size=8, residual=8), ids, mask,
                      steps=12)
    assert torch.equal(got, expected)


POLICIES = [lambda: kv.StreamingLLM(sinks=3, window=12), lambda: kv.H2O(16), lambda: kv.H2O(14, recent=4),
            lambda: kv.SnapKV(20, window=6, kernel=3), lambda: kv.SnapKV([0.5, 0.25], window=4, kernel=5,
                                                                           pooling="avg")]


@pytest.mark.parametrize("make_policy", POLICIES)
@pytest.mark.parametrize("bits", [None, 4])
def test_policies_equal_reference(make_policy, bits):
    """Kept positions equal the float64 reference's at every step, and the
    logits agree; batch with left padding; compressed or not."""
    model = make_model("llama")
    ids, mask = prompts()
    policy = make_policy()
    reference, _ = ref.reference_policy_cache(2, policy)
    ref.install_reference_attention(policy)
    model.set_attn_implementation(ref.REFERENCE_ATTENTION)
    expected = step_logits(model, reference, ids, mask, steps=14)
    rk.hf.enable_fused_attention(model)
    residual = 8 if bits else 128
    cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=residual, policy=policy)
    if bits is None:
        got = step_logits(model, cache, ids, mask, steps=14)
        torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-4)
        for layer, ref_layer in zip(cache.layers, reference.layers):
            assert layer.positions.tolist() == ref_layer.kept
            assert layer.get_seq_length() == 37 + 14
            assert layer.held == len(ref_layer.kept[0][0])
    else:  # quantization changes the weights: run it, check the invariants
        step_logits(model, cache, ids, mask, steps=14)
        for layer in cache.layers:
            grown = 14 if policy.prefill_only else 0  # SnapKV compresses the prompt only
            assert layer.held <= layer.budget + grown and layer.get_seq_length() == 51
            assert bool((layer.positions[..., 1:] > layer.positions[..., :-1]).all())


def test_policy_needs_the_attention_implementation():
    model = make_model("llama")
    ids, mask = prompts()
    with pytest.raises(ValueError, match="enable_fused_attention"):
        step_logits(model, rk.hf.CompressedCache(model.config, key_bits=None, policy=kv.H2O(8)), ids, mask)
    with pytest.raises(TypeError, match="policy"):
        rk.hf.CompressedCache(model.config, policy="h2o")
    with pytest.raises(ValueError, match="one entry per layer"):
        rk.hf.CompressedCache(model.config, policy=kv.H2O([8, 8, 8]))


# ---- the KV bitstream ------------------------------------------------------------------------

def filled(model, bits, dtype=torch.float32, tokens=70, residual=8):
    model = model.to(dtype)
    ids, mask = prompts(length=tokens)
    cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=residual)
    step_logits(model, cache, ids, mask, steps=3)
    return cache


def same_content(a, b):
    assert a.get_seq_length() == b.get_seq_length()
    for x, y in zip(a.layers, b.layers):
        assert (x.key_bits, x.value_bits, x.quantized_tokens, x.held) == (y.key_bits, y.value_bits,
                                                                          y.quantized_tokens, y.held)
        for s, t in zip(x.dequantized(), y.dequantized()):
            assert s.dtype == t.dtype and torch.equal(s.view(torch.int16) if s.dtype == torch.bfloat16 else s,
                                                      t.view(torch.int16) if t.dtype == torch.bfloat16 else t)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, None, [2, None]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_bitstream_round_trip_is_exact(model, bits, dtype):
    if isinstance(bits, list) and model.config.model_type == "gpt2":
        bits = [2, 4]
    cache = filled(model, bits, dtype)
    blob = kv.encode(cache)
    restored = kv.decode(blob, model.config)
    same_content(cache, restored)
    for x, y in zip(cache.layers, restored.layers):
        if x.compressed:
            for a, b in zip(x.quantized_keys[:4] + x.quantized_values[:3], y.quantized_keys[:4] + y.quantized_values[:3]):
                assert torch.equal(a, b)
    # the restored cache decodes on: the same next logits as the original
    token = torch.tensor([[7], [8]])
    mask = torch.ones(2, cache.get_seq_length() + 1, dtype=torch.long)
    assert torch.equal(forward(model, cache, input_ids=token, attention_mask=mask).logits,
                       forward(model, restored, input_ids=token, attention_mask=mask).logits)


def test_bitstream_streams_through_a_file(tmp_path):
    model = make_model("llama")
    cache = filled(model, 3)
    path = tmp_path / "passage.kv"
    with open(path, "wb") as f:
        assert kv.encode(cache, f) is None
    with open(path, "rb") as f:
        same_content(cache, kv.decode(f, model.config))
    assert path.read_bytes() == kv.encode(cache)


def test_bitstream_entropy_coding_pays_on_skewed_codes():
    """Codes that repeat along tokens (the order-1 model's context) cost
    less than their packed bits."""
    model = make_model("llama")
    cache = filled(model, 4, tokens=300)
    before = len(kv.encode(cache))
    code_bytes = 0
    for layer in cache.layers:  # every odd token's key codes equal to its predecessor's
        codes = layer.quantized_keys.codes
        codes[:, :, 1::2] = codes[:, :, 0:-1:2]
        code_bytes += codes.numel()
    restored = kv.decode(kv.encode(cache), model.config)
    same_content(cache, restored)
    assert len(kv.encode(cache)) < before - 0.2 * code_bytes


def test_bitstream_rejects_corruption_truncation_and_other_models():
    model = make_model("llama")
    cache = filled(model, 2)
    blob = bytearray(kv.encode(cache))
    restored = kv.decode(bytes(blob), model.config)
    same_content(cache, restored)
    for cut in (0, 10, 63, 64, 100, len(blob) - 1):
        with pytest.raises(rk.FormatError, match="truncated|shorter"):
            kv.decode(bytes(blob[:cut]), model.config)
    with pytest.raises(rk.FormatError, match="follow the last layer"):
        kv.decode(bytes(blob) + b"\0", model.config)
    for at in (0, 9, 20, 70, 130, len(blob) // 2, len(blob) - 3):
        bad = bytearray(blob)
        bad[at] ^= 0x40
        with pytest.raises(rk.FormatError):
            kv.decode(bytes(bad), model.config)
    bad = bytearray(blob)
    bad[8] = 3  # format version 3
    with pytest.raises(rk.FormatError, match="version 3"):
        kv.decode(bytes(bad), model.config)
    other = make_model("llama")
    other.config.num_key_value_heads = 4
    with pytest.raises(ValueError, match="another model config"):
        kv.decode(bytes(blob), other.config)
    with pytest.raises(ValueError, match="another model config"):
        kv.decode(bytes(blob), make_model("gpt2").config)
    with pytest.raises(TypeError, match="bytes or a binary file"):
        kv.decode("blob", model.config)
    with pytest.raises(TypeError, match="CompressedCache"):
        kv.encode(DynamicCache())
    with pytest.raises(ValueError, match="empty"):
        kv.encode(rk.hf.CompressedCache(model.config))


# ---- per-layer bits (KVTuner-style calibration) ------------------------------------------------

def test_choose_bits_is_the_best_plan_under_the_budget():
    import itertools

    from ragkernels.hf.calibrate import choose_bits

    rng = np.random.default_rng(0)
    pairs = [(8, 8), (4, 4), (4, 2), (2, 2)]
    for trial in range(30):
        layers = int(rng.integers(1, 5))
        sens = rng.random((layers, len(pairs))).tolist()
        budget = float(rng.choice([2.0, 2.5, 3.0, 3.25, 4.0, 8.0]))
        picks = choose_bits(sens, pairs, budget)
        feasible = [c for c in itertools.product(range(len(pairs)), repeat=layers)
                    if sum(sum(pairs[i]) for i in c) <= 2 * budget * layers]
        best = min(sum(sens[l][i] for l, i in enumerate(c)) for c in feasible)
        assert sum(sum(pairs[i]) for i in picks) <= 2 * budget * layers
        assert sum(sens[l][i] for l, i in enumerate(picks)) == pytest.approx(best)
    with pytest.raises(ValueError, match="below the cheapest"):
        choose_bits([[0.1, 0.2]], [(4, 4), (2, 2)], 1.5)


def test_calibrate_bits_on_a_tiny_model():
    model = make_model("llama")
    ids = torch.randint(1, VOCAB, (1, 160), generator=torch.Generator().manual_seed(4))
    plan = kv.calibrate_bits(model, ids, budget_bits=3.25, pairs=[(8, 8), (4, 4), (2, 2)], chunk=32)
    assert len(plan.key_bits) == len(plan.value_bits) == 2 and plan.average <= 3.25
    assert len(plan.sensitivity) == 2 and all(len(row) == 3 for row in plan.sensitivity)
    assert all(row[2] > row[0] for row in plan.sensitivity)  # 2-bit hurts more than 8-bit
    rich = kv.calibrate_bits(model, ids, budget_bits=8, pairs=[(8, 8), (2, 2)], chunk=32)
    assert rich.key_bits == rich.value_bits == [8, 8]
    cache = rk.hf.CompressedCache(model.config, key_bits=plan.key_bits, value_bits=plan.value_bits, group_size=8,
                                  residual=8)
    step_logits(model, cache, *prompts(), steps=4)
    with pytest.raises(ValueError, match="more than chunk"):
        kv.calibrate_bits(model, ids[:, :10], chunk=32)
    with pytest.raises(ValueError, match="pair's bits"):
        kv.calibrate_bits(model, ids, pairs=[(5, 4)])


# ---- query-aware selection: Quest pages, SentenceKV sentences --------------------------------

@pytest.mark.parametrize("bits", [None, 4])
@pytest.mark.parametrize("kind", ["quest", "sentence"])
def test_selection_step_equals_reference(kind, bits):
    """A decoding step attends to exactly the pages / sentences the float64
    reference picks, over the cache's own (dequantized) keys and values."""
    model = make_model("llama")
    rk.hf.enable_fused_attention(model)
    selection = kv.Quest(budget=32, page_size=8) if kind == "quest" else kv.SentenceKV(budget=30)
    cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=8, selection=selection)
    ids, mask = prompts(batch=1, length=90)
    starts = np.array([0, 7, 19, 33, 40, 61, 77, 90])
    cache.set_sentences(starts)
    forward(model, cache, input_ids=ids, attention_mask=mask)
    forward(model, cache, input_ids=torch.tensor([[5]]), attention_mask=torch.ones(1, 91, dtype=torch.long))
    layer = cache.layers[1]
    keys, values = layer.dequantized()
    heads = keys.shape[1]
    query = torch.randn(1, 2 * heads, 1, keys.shape[3], generator=torch.Generator().manual_seed(1))
    got = layer.attend(query, None, keys.shape[3] ** -0.5)[:, 0]  # [batch, q_heads, dim]
    expected = ref.selected_attention(query.numpy(), keys.numpy(), values.numpy(), kind, selection.budget,
                                      page_size=8, sentence_starts=starts)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)
    # whole generations run, and the full cache is kept
    fresh = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=8, selection=selection)
    fresh.set_sentences(starts)
    out = model.generate(ids, cache=fresh, max_new_tokens=6, do_sample=False)
    assert out.shape == (1, 96) and fresh.layers[0].held == fresh.get_seq_length() == 95


def test_sentence_starts_and_selection_errors():
    class Tokenizer:  # characters as tokens
        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    text = "One here. Two there! Three?"
    starts = rk.hf.sentence_starts(Tokenizer(), [ord(c) for c in text])
    assert starts.tolist() == [0, 10, 21, len(text)]
    model = make_model("llama")
    with pytest.raises(ValueError, match="enable_fused_attention"):
        step_logits(model, rk.hf.CompressedCache(model.config, selection=kv.Quest(32)), *prompts(), steps=1)
    with pytest.raises(ValueError, match="do not combine"):
        rk.hf.CompressedCache(model.config, policy=kv.H2O(8), selection=kv.Quest(32))
    with pytest.raises(TypeError, match="selection"):
        rk.hf.CompressedCache(model.config, selection="quest")
    with pytest.raises(ValueError, match="budget"):
        kv.Quest(budget=8, page_size=16)
    with pytest.raises(ValueError, match="begin at 0"):
        rk.hf.CompressedCache(model.config, selection=kv.SentenceKV(8)).set_sentences([3, 9])
