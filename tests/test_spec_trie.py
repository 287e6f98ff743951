"""ragkernels.spec.Trie (issue 16) against tests/reference/spec.py's dict trie:
the CSR arrays, bitmasks, advances and terminals on random and edge sets,
a million sequences, thread-count independence and bad input."""
import numpy as np
import pytest

import ragkernels as rk
from ragkernels.spec import Trie
from tests.reference import spec as ref


def random_sequences(rng, count, vocab, max_len=6):
    seqs = [rng.integers(0, vocab, rng.integers(1, max_len + 1)).tolist() for _ in range(count)]
    seqs += [s[:rng.integers(1, len(s) + 1)] for s in seqs[:count // 4]]  # prefixes of others
    seqs += seqs[:count // 8]  # duplicates
    seqs.append([vocab - 1] * 3)  # the largest id
    rng.shuffle(seqs)
    return seqs


def assert_same_arrays(trie, expected):
    assert trie.row_ptr.tolist() == expected.row_ptr
    assert trie.tokens.tolist() == expected.tokens
    assert trie.child.tolist() == expected.child
    assert trie.terminal.tolist() == expected.terminal
    assert trie.num_sequences == expected.num_sequences and trie.num_nodes == len(expected.terminal)


@pytest.mark.parametrize("seed, vocab", [(0, 5), (1, 31), (2, 32), (3, 33), (4, 64), (5, 70), (6, 1000)])
def test_trie_equals_reference(seed, vocab):
    rng = np.random.default_rng(seed)
    seqs = random_sequences(rng, 60, vocab)
    trie, expected = Trie.build(seqs, vocab_size=vocab), ref.TrieRef(seqs, vocab)
    assert_same_arrays(trie, expected)
    states = trie.start(8)
    want = [0] * 8
    for _ in range(8):  # random walks: mostly allowed tokens, some not, dead rows included
        assert trie.next_token_bitmask(states).tolist() == expected.bitmask(want)
        assert trie.is_terminal(states).tolist() == expected.is_terminal(want)
        allowed = trie.allowed(states)
        tokens = [int(rng.choice(a)) if a and rng.random() < 0.8 else int(rng.integers(0, vocab)) for a in allowed]
        states, want = trie.advance(states, tokens), expected.advance(want, tokens)
        assert states.tolist() == want
        assert states.dtype == np.int32


def test_values_offsets_form_equals_lists():
    rng = np.random.default_rng(7)
    seqs = random_sequences(rng, 40, 50)
    offsets = np.cumsum([0] + [len(s) for s in seqs])
    values = np.concatenate([np.asarray(s) for s in seqs]).astype(np.int32)
    a, b = Trie.build(seqs, vocab_size=50), Trie.build((values, offsets), vocab_size=50)
    for name in ("row_ptr", "tokens", "child", "terminal"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist()


def test_a_tuple_of_two_lists_is_two_sequences():
    trie = Trie.build(([5, 6, 7], [0, 3]), vocab_size=8)  # not values [5, 6, 7] with offsets [0, 3]
    assert trie.num_sequences == 2 and trie.allowed([0]) == [[0, 5]]


def test_edge_sets():
    one = Trie.build([[4]])
    assert (one.vocab_size, one.num_nodes, one.num_sequences) == (5, 2, 1)
    assert one.allowed([0, 1, -1]) == [[4], [], []]
    assert one.is_terminal(one.advance([0], [4])).tolist() == [True]
    dup = Trie.build([[1, 2], [1, 2], [1, 2]], vocab_size=3)
    assert (dup.num_sequences, dup.num_nodes) == (1, 3)
    prefix = Trie.build([[1, 2, 3], [1, 2]], vocab_size=4)
    s = prefix.advance(prefix.advance([0], [1]), [2])
    assert prefix.is_terminal(s).tolist() == [True] and prefix.allowed(s) == [[3]]  # terminal with a child
    wide = Trie.build([[0], [2**31 - 1]], vocab_size=2**31)  # the largest id
    assert wide.advance([0, 0], [2**31 - 1, 5]).tolist() == [2, -1]
    assert wide.tokens.tolist() == [0, 2**31 - 1]


def test_bits_at_word_edges():
    trie = Trie.build([[0], [31], [32], [63]], vocab_size=64)
    mask = trie.next_token_bitmask([0])
    assert mask.shape == (1, 2) and mask.dtype == np.int32
    assert mask.view(np.uint32).tolist() == [[1 | 1 << 31, 1 | 1 << 31]]


def test_arrays_are_read_only_views():
    trie = Trie.build([[1, 2]], vocab_size=3)
    for name in ("row_ptr", "tokens", "child", "terminal"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(trie, name)[0] = 1


def test_build_is_independent_of_thread_count():
    rng = np.random.default_rng(8)
    values = rng.integers(0, 300, 200_000).astype(np.int32)
    offsets = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 200_000), 39_999, replace=False)), [200_000]])
    before = rk.get_num_threads()
    try:
        arrays = []
        for threads in (1, 2, 3, 8):
            rk.set_num_threads(threads)
            t = Trie.build((values, offsets), vocab_size=300)
            arrays.append([getattr(t, n).tolist() for n in ("row_ptr", "tokens", "child", "terminal")])
    finally:
        rk.set_num_threads(before)
    assert all(a == arrays[0] for a in arrays[1:])


def test_a_million_sequences():
    rng = np.random.default_rng(9)
    n, vocab = 10**6, 49_152
    lengths = rng.integers(1, 9, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(0, vocab, offsets[-1]).astype(np.int32)
    trie = Trie.build((values, offsets), vocab_size=vocab)
    distinct = {values[offsets[i]:offsets[i + 1]].tobytes() for i in range(n)}
    assert trie.num_sequences == len(distinct) and len(trie.tokens) == trie.num_nodes - 1  # a tree
    rows = {tuple(values[offsets[i]:offsets[i + 1]]) for i in range(0, n, 997)}
    for seq in list(rows)[:200]:
        states = trie.start(1)
        for t in seq:
            states = trie.advance(states, [t])
        assert trie.is_terminal(states).tolist() == [True]
    assert trie.next_token_bitmask(trie.start(8)).shape == (8, vocab // 32)


def random_states(rng, trie, count):
    """States over the whole trie: the root, inner nodes, leaves and -1."""
    return np.concatenate([[0, -1], rng.integers(-1, trie.num_nodes, count - 2)]).astype(np.int32)


def random_logits(rng, rows, width, dtype=np.float32):
    logits = rng.standard_normal((rows, width)).astype(dtype)
    logits.flat[rng.integers(0, logits.size, 4)] = [np.nan, np.inf, -np.inf, np.nan]
    return logits


def same_bits(a, b):
    return a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed, vocab, extra", [(0, 5, 0), (1, 31, 1), (2, 32, 0), (3, 33, 31), (4, 64, 0),
                                                (5, 70, 37), (6, 1000, 24)])
@pytest.mark.parametrize("eos", [None, "in vocab", "past vocab"])
def test_mask_logits_equals_reference(seed, vocab, extra, eos):
    rng = np.random.default_rng(seed)
    # 300 sequences over a small vocabulary: the root has more children than
    # a bitmask row has words, so its row is precomputed (the dense path)
    seqs = random_sequences(rng, 300 if vocab <= 70 else 60, vocab)
    trie, expected = Trie.build(seqs, vocab_size=vocab), ref.TrieRef(seqs, vocab)
    width = vocab + extra
    eos_id = {None: None, "in vocab": vocab // 2, "past vocab": width - 1}[eos]
    states = random_states(rng, trie, 40)
    for dtype in (np.float32, np.float16):
        logits = random_logits(rng, len(states), width, dtype)
        want = expected.mask_logits(states.tolist(), logits, eos_id)
        got = logits.copy()
        assert trie.mask_logits(states, got, eos_token_id=eos_id) is got
        assert same_bits(got, want)


def test_mask_logits_out_writes_the_masked_copy_and_reads_logits_only():
    rng = np.random.default_rng(14)
    seqs = random_sequences(rng, 300, 70)
    trie, expected = Trie.build(seqs, vocab_size=70), ref.TrieRef(seqs, 70)
    states = random_states(rng, trie, 30)
    for eos in (None, 71):
        logits = random_logits(rng, len(states), 75)
        logits.flags.writeable = False  # only read
        out = np.full_like(logits, 123.0)
        assert trie.mask_logits(states, logits, eos_token_id=eos, out=out) is out
        assert same_bits(out, expected.mask_logits(states.tolist(), logits, eos))  # rows left alone copied too
    torch = pytest.importorskip("torch")
    logits = torch.randn(len(states), 75, dtype=torch.bfloat16)
    out = torch.empty_like(logits)
    trie.mask_logits(states, logits, eos_token_id=71, out=out)
    assert torch.equal(out, trie.mask_logits(states, logits.clone(), eos_token_id=71))


def test_mask_logits_on_torch_tensors_in_every_dtype():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    seqs = random_sequences(rng, 200, 100)
    trie, expected = Trie.build(seqs, vocab_size=100), ref.TrieRef(seqs, 100)
    states = random_states(rng, trie, 16)
    masked = np.isneginf(expected.mask_logits(states.tolist(), np.zeros((16, 128), np.float32), eos=101))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        logits = torch.from_numpy(random_logits(rng, 16, 128)).to(dtype)
        before = logits.clone()
        assert trie.mask_logits(states, logits, eos_token_id=101) is logits  # in place, no copy
        assert torch.isneginf(logits[torch.from_numpy(masked)]).all()
        kept = torch.from_numpy(~masked)
        assert torch.equal(logits[kept].view(torch.int16 if dtype != torch.float32 else torch.int32),
                           before[kept].view(torch.int16 if dtype != torch.float32 else torch.int32))


def test_mask_logits_on_strided_rows():
    rng = np.random.default_rng(12)
    seqs = random_sequences(rng, 50, 40)
    trie, expected = Trie.build(seqs, vocab_size=40), ref.TrieRef(seqs, 40)
    states = random_states(rng, trie, 6)
    wide = random_logits(rng, 12, 50)
    before = wide.copy()
    view = wide[::2, :45]  # rows 100 floats apart, 45 columns of 50
    want = expected.mask_logits(states.tolist(), view, eos=44)
    trie.mask_logits(states, view, eos_token_id=44)
    assert same_bits(wide[::2, :45], want)
    assert same_bits(wide[1::2], before[1::2]) and same_bits(wide[:, 45:], before[:, 45:])  # nothing else written


def test_mask_logits_is_independent_of_thread_count():
    rng = np.random.default_rng(13)
    seqs = random_sequences(rng, 100, 33)
    trie = Trie.build(seqs, vocab_size=33)
    states = random_states(rng, trie, 70_000)  # more rows than one thread's grain
    logits = random_logits(rng, len(states), 33)
    outs = []
    for threads in (1, 2, 3):
        rk.set_num_threads(threads)
        try:
            outs.append(trie.mask_logits(states, logits.copy(), eos_token_id=3))
        finally:
            rk.set_num_threads(2)
    assert same_bits(outs[0], outs[1]) and same_bits(outs[0], outs[2])
    want = ref.TrieRef(seqs, 33).mask_logits(states[:500].tolist(), logits[:500], eos=3)
    assert same_bits(outs[0][:500], want)


def test_mask_logits_bad_input():
    trie = Trie.build([[1, 2], [3]], vocab_size=4)
    states = trie.start(2)
    with pytest.raises(ValueError, match="logits has 3 columns but the trie's vocabulary 4 tokens"):
        trie.mask_logits(states, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="logits has 3 rows but states 2"):
        trie.mask_logits(states, np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="logits must be a 2-D float32 or float16 array, got float64"):
        trie.mask_logits(states, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="logits must be a 2-D float32 or float16 array"):
        trie.mask_logits(states, np.zeros(4, np.float32))
    frozen = np.zeros((2, 4), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="logits is read-only"):
        trie.mask_logits(states, frozen)
    with pytest.raises(ValueError, match="logits columns must be contiguous"):
        trie.mask_logits(states, np.zeros((2, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="eos_token_id 4 is outside the 4 logits"):
        trie.mask_logits(states, np.zeros((2, 4), np.float32), eos_token_id=4)
    with pytest.raises(ValueError, match=r"eos_token_id must be an int in \[0, "):
        trie.mask_logits(states, np.zeros((2, 4), np.float32), eos_token_id=-1)
    with pytest.raises(ValueError, match=r"states\[1\] = 9 is not a state of this trie"):
        trie.mask_logits([0, 9], np.zeros((2, 4), np.float32))
    logits = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match="out overlaps logits"):
        trie.mask_logits(states, logits[:, :4], out=logits[:, 2:6])
    with pytest.raises(TypeError, match="out must have the dtype and shape of logits"):
        trie.mask_logits(states, logits, out=np.zeros((2, 8), np.float16))
    with pytest.raises(ValueError, match="out has 1 rows but states 2"):
        trie.mask_logits(states, logits, out=np.zeros((1, 8), np.float32))
    with pytest.raises(TypeError, match="logits must be a numpy array or a DLPack tensor, got <class 'list'>"):
        trie.mask_logits(states, [[0.0] * 4] * 2)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="logits must be a 2-D float32, float16 or bfloat16 tensor"):
        trie.mask_logits(states, torch.zeros((2, 4), dtype=torch.float64))
    with pytest.raises(ValueError, match="columns must be contiguous"):
        trie.mask_logits(states, torch.zeros((4, 2)).T)
    with pytest.raises(ValueError, match="logits rows overlap"):
        trie.mask_logits(states, torch.zeros(1, 4).expand(2, 4))
    with pytest.raises((RuntimeError, BufferError), match="gradient"):
        trie.mask_logits(states, torch.zeros((2, 4), requires_grad=True))


def test_bad_input():
    with pytest.raises(ValueError, match="sequences is empty"):
        Trie.build([])
    with pytest.raises(ValueError, match=r"sequences\[1\] is empty"):
        Trie.build([[1], []], vocab_size=3)
    with pytest.raises(ValueError, match=r"sequences\[0\]\[1\] = 7 is outside the vocabulary \[0, 5\)"):
        Trie.build([[1, 7]], vocab_size=5)
    with pytest.raises(ValueError, match=r"sequences\[0\]\[0\] = -1 is outside"):
        Trie.build([[-1]], vocab_size=5)
    with pytest.raises(ValueError, match="does not fit a token id"):
        Trie.build([[2**31]], vocab_size=5)
    with pytest.raises(ValueError, match="vocab_size"):
        Trie.build([[1]], vocab_size=0)
    with pytest.raises(TypeError, match=r"sequences\[0\] must be a 1-D sequence of token ids"):
        Trie.build([[1.5, 2.0]])
    with pytest.raises(ValueError, match="offsets must start at 0"):
        Trie.build((np.array([1, 2]), np.array([1, 2])))
    trie = Trie.build([[1, 2]], vocab_size=3)
    with pytest.raises(ValueError, match=r"states\[1\] = 3 is not a state of this trie"):
        trie.next_token_bitmask([0, 3])
    with pytest.raises(ValueError, match=r"states\[0\] = -2"):
        trie.advance([-2], [1])
    with pytest.raises(ValueError, match=r"tokens\[0\] = 3 is outside the vocabulary \[0, 3\)"):
        trie.advance([0], [3])
    with pytest.raises(ValueError, match="tokens has 2 entries but states 1"):
        trie.advance([0], [1, 2])
    with pytest.raises(TypeError, match="states must be a 1-D integer array"):
        trie.is_terminal(np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="states must be a 1-D integer array"):
        trie.is_terminal(np.zeros((2, 2), np.int32))


def test_from_strings_tokenizes_as_the_model_writes():
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["see [doc1] and [doc22], not [doc3]"] * 10, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok)
    trie = Trie.from_strings(["doc1", "doc22"], tokenizer, prefix=" [", suffix="]")
    assert trie.vocab_size == len(tokenizer) and trie.num_sequences == 2
    for text in (" [doc1]", " [doc22]"):
        states = trie.start(1)
        for t in tokenizer(text, add_special_tokens=False)["input_ids"]:
            states = trie.advance(states, [t])
        assert trie.is_terminal(states).tolist() == [True]
    with pytest.raises(TypeError, match=r"strings\[1\] must be a str"):
        Trie.from_strings(["doc1", 7], tokenizer)
    with pytest.raises(ValueError, match="strings is empty"):
        Trie.from_strings([], tokenizer)


# ---- persistence ---------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(10)
    seqs = random_sequences(rng, 80, 90)
    trie = Trie.build(seqs, vocab_size=90)
    path = tmp_path / "ids.rktrie"
    trie.save(path)
    for verify in (True, False):
        loaded = Trie.load(path, verify=verify)
        assert_same_arrays(loaded, ref.TrieRef(seqs, 90))
        states = loaded.advance(loaded.start(3), [seqs[0][0], seqs[1][0], 89])
        assert states.tolist() == trie.advance(trie.start(3), [seqs[0][0], seqs[1][0], 89]).tolist()


@pytest.fixture
def saved(tmp_path):
    trie = Trie.build([[1, 2, 3], [1, 4], [5]], vocab_size=8)
    path = tmp_path / "t.rktrie"
    trie.save(path)
    return path


def test_corrupt_files_are_refused(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    flipped = tmp_path / "flipped.rktrie"
    data[-3] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(rk.FormatError, match="checksum"):
        Trie.load(flipped)
    truncated = tmp_path / "truncated.rktrie"
    truncated.write_bytes(saved.read_bytes()[:100])
    with pytest.raises(rk.FormatError):
        Trie.load(truncated)
    empty = tmp_path / "empty.rktrie"
    empty.write_bytes(b"")
    with pytest.raises(rk.FormatError):
        Trie.load(empty)
    ds = rk.spec.Datastore.build([[1, 2]], vocab_size=3)
    other = tmp_path / "other.rkds"
    ds.save(other)
    with pytest.raises(rk.FormatError, match="spec-trie"):
        Trie.load(other)
    with pytest.raises(OSError):
        Trie.load(tmp_path / "missing.rktrie")


# [[1, 2], [3]] over 4 tokens: nodes 0 (root), 1 (1), 2 (1 2), 3 (3).
GOOD = {"meta": np.array([1, 4, 2, 4], np.int64), "row_ptr": np.array([0, 2, 3, 3, 3], np.int64),
        "tokens": np.array([1, 3, 2], np.int32), "child": np.array([1, 3, 2], np.int32),
        "terminal": np.array([0, 0, 1, 1], np.uint8)}

ALWAYS = [  # refused even with verify=False: a step could read or write out of bounds
    ({k: v for k, v in GOOD.items() if k != "child"}, "no section 'child'"),
    ({**GOOD, "tokens": GOOD["tokens"].astype(np.int64)}, "section 'tokens' has dtype i64, expected i32"),
    ({**GOOD, "meta": np.array([1, 4, 2], np.int64)}, "'meta' must hold 4 int64"),
    ({**GOOD, "meta": np.array([2, 4, 2, 4], np.int64)}, "trie version 2"),
    ({**GOOD, "meta": np.array([1, 1, 2, 4], np.int64)}, "a trie has 2 to"),
    ({**GOOD, "meta": np.array([1, 4, 0, 4], np.int64)}, "0 sequences for 4 nodes"),
    ({**GOOD, "meta": np.array([1, 4, 2, 0], np.int64)}, "vocab_size 0"),
    ({**GOOD, "row_ptr": np.array([0, 2, 3, 3], np.int64)}, "must hold 5, 3, 3, 4 entries"),
    ({**GOOD, "row_ptr": np.array([0, 2, 1, 3, 3], np.int64)}, "'row_ptr' decreases at node 1"),
    ({**GOOD, "row_ptr": np.array([0, 2, 3, 3, 2], np.int64)}, "must start at 0 and end at the 3 edges"),
    ({**GOOD, "tokens": np.array([1, 3, 9], np.int32)}, r"entry 2 holds 9, outside the vocabulary \[0, 4\)"),
    ({**GOOD, "child": np.array([1, 3, 7], np.int32)}, r"'child' entry 2 holds 7, not a node in \[1, 4\)"),
    ({**GOOD, "child": np.array([0, 3, 2], np.int32)}, r"'child' entry 0 holds 0"),
]
VERIFIED = [  # refused by verify=True: not the trie build makes
    ({**GOOD, "tokens": np.array([3, 1, 2], np.int32)}, "not in increasing token order"),
    ({**GOOD, "child": np.array([3, 1, 2], np.int32)}, "node 3 is reached where node 1 should be"),
    ({**GOOD, "child": np.array([1, 2, 3], np.int32)}, "reached where node"),
    ({**GOOD, "terminal": np.array([0, 0, 1, 0], np.uint8)}, "node 3 is a leaf that ends no sequence"),
    ({**GOOD, "terminal": np.array([0, 0, 2, 1], np.uint8)}, "'terminal' entry 2 holds 2"),
    ({**GOOD, "terminal": np.array([1, 0, 1, 1], np.uint8)}, "the root is terminal"),
    ({**GOOD, "meta": np.array([1, 4, 3, 4], np.int64)}, "2 terminal nodes but meta says 3"),
]


def test_load_refuses_each_broken_invariant(tmp_path):
    rk.save_arrays(tmp_path / "ok.rktrie", GOOD, kind="spec-trie")
    assert Trie.load(tmp_path / "ok.rktrie").allowed([0, 1]) == [[1, 3], [2]]
    for arrays, message in ALWAYS + VERIFIED:
        path = tmp_path / "bad.rktrie"
        rk.save_arrays(path, arrays, kind="spec-trie")
        with pytest.raises(rk.FormatError, match=message) as info:
            Trie.load(path)
        assert str(info.value).startswith(str(path))
    for arrays, message in ALWAYS:
        rk.save_arrays(tmp_path / "bad.rktrie", arrays, kind="spec-trie")
        with pytest.raises(rk.FormatError, match=message):
            Trie.load(tmp_path / "bad.rktrie", verify=False)


def test_unverified_loads_step_in_bounds(tmp_path):
    """verify=False trusts the structure: steps may be wrong, never out of bounds."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        arrays = {**GOOD, "tokens": rng.integers(0, 4, 3).astype(np.int32),
                  "child": rng.integers(1, 4, 3).astype(np.int32),
                  "terminal": rng.integers(0, 3, 4).astype(np.uint8)}
        rk.save_arrays(tmp_path / "t.rktrie", arrays, kind="spec-trie")
        trie = Trie.load(tmp_path / "t.rktrie", verify=False)
        states = trie.start(4)
        for _ in range(4):
            trie.next_token_bitmask(states)
            trie.is_terminal(states)
            states = trie.advance(states, rng.integers(0, 4, 4))
            assert ((states >= -1) & (states < 4)).all()
