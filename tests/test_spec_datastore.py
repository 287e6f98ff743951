"""The retrieval datastore and drafter (ragkernels.spec, issue 15)
against the plain-Python references of tests/reference/spec.py,
their edge cases, bad input, and corrupt files (issue 14: a loaded file is
untrusted, even with valid checksums)."""
import doctest
import os
import threading

import numpy as np
import pytest

import ragkernels as rk
from ragkernels import _spec_datastore as ds_module
from ragkernels.spec import Datastore, RetrievalDrafter
from ragkernels.spec import TokenTree
from tests.reference.core import patch_section, reseal
from tests.reference.spec import (draft_ref, longest_match_ref, suffix_array_ref, text_ref,
                                            token_start_ref)


def random_sequences(rng, n, max_len, vocab, min_len=0):
    return [rng.integers(0, vocab, int(rng.integers(min_len, max_len + 1))).astype(np.int64) for _ in range(n)]


def draft_arrays(tree):
    return tree.tokens.tolist(), tree.parents.tolist(), tree.weights.tolist()


def check_same_draft(ds, context, max_nodes, **params):
    session = RetrievalDrafter(ds, **params).start(np.asarray(context, np.int64))
    got = draft_arrays(session.draft(max_nodes))
    ref = draft_ref(ds.text, ds.suffix_array, context, max_nodes, **params)
    assert got == (list(ref[0]), list(ref[1]), [float(np.float32(w)) for w in ref[2]]), (context, params)
    # Every draft is a valid tree for the verifiers (parents first, weights
    # non-increasing, distinct siblings): the TokenTree constructor checks it.
    TokenTree(*got)
    return session


# ---- build: text and suffix array --------------------------------------------------------------

@pytest.mark.parametrize("seed,n,max_len,vocab", [(0, 1, 1, 1), (1, 5, 8, 2), (2, 20, 30, 3), (3, 13, 50, 50),
                                                  (4, 40, 12, 1000)])
def test_build_matches_reference(seed, n, max_len, vocab):
    rng = np.random.default_rng(seed)
    seqs = random_sequences(rng, n, max_len, vocab, min_len=1 if n == 1 else 0)
    if sum(len(s) for s in seqs) == 0:
        seqs[0] = np.array([0])
    ds = Datastore.build(seqs)
    np.testing.assert_array_equal(ds.text, text_ref(seqs))
    np.testing.assert_array_equal(ds.suffix_array, suffix_array_ref(ds.text))
    np.testing.assert_array_equal(ds._core.token_start, token_start_ref(ds.text))
    assert ds.num_tokens == sum(len(s) for s in seqs)
    assert ds.num_sequences == len(ds) == n
    assert ds.vocab_size is None
    assert ds.text.dtype == ds.suffix_array.dtype == np.int32
    assert not ds.text.flags.writeable and not ds.suffix_array.flags.writeable


def test_build_accepts_lists_int32_int64_sliced_and_other_integer_dtypes():
    seqs = [[3, 1, 2], np.array([1, 2, 3], np.int32), np.arange(10, dtype=np.int64)[::3], np.array([4], np.uint16),
            np.array([], np.int64), []]
    ds = Datastore.build(seqs, vocab_size=10)
    np.testing.assert_array_equal(ds.text, [3, 1, 2, -1, 1, 2, 3, -1, 0, 3, 6, 9, -1, 4, -1, -1, -1])
    assert ds.num_sequences == 6 and ds.num_tokens == 11 and ds.vocab_size == 10
    assert Datastore.build(iter([[1, 2], [2]])).num_tokens == 3  # any iterable, no len()


def test_build_and_draft_take_torch_tensors():
    torch = pytest.importorskip("torch")
    seqs = [torch.tensor([1, 2, 3]), torch.tensor([2, 3, 4], dtype=torch.int32), torch.tensor([5], dtype=torch.int16)]
    ds = Datastore.build(seqs)
    np.testing.assert_array_equal(ds.text, [1, 2, 3, -1, 2, 3, 4, -1, 5, -1])
    session = RetrievalDrafter(ds).start(torch.tensor([9, 2]))
    session.extend(torch.tensor([3], dtype=torch.int32))
    assert session.draft(4).tokens.tolist() == [3, 4]


def test_build_batches_match_one_batch(monkeypatch):
    rng = np.random.default_rng(5)
    seqs = random_sequences(rng, 50, 10, 4)
    whole = Datastore.build(seqs)
    monkeypatch.setattr(ds_module, "_BATCH", 7)
    batched = Datastore.build(seqs)
    np.testing.assert_array_equal(whole.text, batched.text)
    np.testing.assert_array_equal(whole.suffix_array, batched.suffix_array)


def test_build_repeated_tokens_and_one_token_sequences():
    ds = Datastore.build([[7] * 500, [7], [7, 7]])
    np.testing.assert_array_equal(ds.suffix_array, suffix_array_ref(ds.text))
    ds = Datastore.build([[5]])
    assert ds.num_tokens == 1 and ds.suffix_array.tolist() == [0]


def test_build_huge_ids():
    top = 2**31 - 1
    seqs = [[top, 0, top], [top, top - 1], [0, top]]
    ds = Datastore.build(seqs)
    np.testing.assert_array_equal(ds.text, text_ref(seqs))
    np.testing.assert_array_equal(ds.suffix_array, suffix_array_ref(ds.text))
    assert ds._core.token_start.size == 0  # 2**31 ids: no table, the first token is searched
    for context in ([5, 0, top], [top, top - 1], [top - 2], [1]):
        assert ds.longest_match(context) == longest_match_ref(ds.text, ds.suffix_array, context, 16)
        check_same_draft(ds, context, 10)
    assert Datastore.build(seqs, vocab_size=2**31).vocab_size == 2**31


def test_token_table_edges():
    # The table covers vocab_size ids when given (up to 2**22), else 1 + the
    # largest id; a context token beyond it simply does not occur.
    ds = Datastore.build([[3, 1]], vocab_size=6)
    assert ds._core.token_start.tolist() == [0, 0, 1, 1, 2, 2, 2]
    ds = Datastore.build([[3, 1]])
    assert ds._core.token_start.tolist() == [0, 0, 1, 1, 2]
    assert ds.longest_match([7]).length == 0 and ds.longest_match([2**31 - 1]).length == 0
    ds = Datastore.build([[2**22 - 1, 0]])
    assert ds._core.token_start.size == 2**22 + 1
    assert Datastore.build([[2**22, 0]])._core.token_start.size == 0
    assert Datastore.build([[2**22, 0]], vocab_size=2**22 + 1)._core.token_start.size == 0
    for seqs in ([[2**22 - 1, 0, 2**22 - 1]], [[2**22, 0, 2**22]]):
        ds = Datastore.build(seqs)
        for context in ([0, 2**22 - 1], [2**22], [0]):
            assert ds.longest_match(context) == longest_match_ref(ds.text, ds.suffix_array, context, 16)


def test_build_refuses_an_empty_datastore():
    with pytest.raises(ValueError, match="sequences is empty"):
        Datastore.build([])
    with pytest.raises(ValueError, match="all empty"):
        Datastore.build([[], np.array([], np.int32)])


def test_build_refuses_bad_ids_naming_the_position():
    with pytest.raises(ValueError, match=r"sequences\[1\]\[2\] = -3 is negative"):
        Datastore.build([[1], [4, 5, -3]])
    with pytest.raises(ValueError, match=r"sequences\[0\]\[1\] = 10 is outside \[0, vocab_size = 10\)"):
        Datastore.build([[9, 10]], vocab_size=10)
    with pytest.raises(ValueError, match=r"sequences\[0\]\[0\] = 2147483648 does not fit int32"):
        Datastore.build([[2**31]])
    with pytest.raises(ValueError, match=r"sequences\[0\]\[0\] = 18446744073709551615 is not a token id"):
        Datastore.build([np.array([2**64 - 1], np.uint64)])


def test_build_refuses_bad_dtype_ndim_and_arguments():
    with pytest.raises(TypeError, match=r"sequences\[1\] must hold integer token ids, got float64"):
        Datastore.build([[1], [1.5]])
    with pytest.raises(TypeError, match=r"sequences\[0\] must hold integer token ids, got bool"):
        Datastore.build([np.array([True])])
    with pytest.raises(ValueError, match=r"sequences\[0\] must be 1-D, got shape \(2, 2\)"):
        Datastore.build([np.zeros((2, 2), np.int64)])
    with pytest.raises(ValueError, match=r"must be 1-D, got shape \(\).*list of sequences"):
        Datastore.build(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="sequences must be an iterable"):
        Datastore.build("1 2 3")
    for bad in (0, -1, 2**31 + 1):
        with pytest.raises(ValueError, match="vocab_size"):
            Datastore.build([[0]], vocab_size=bad)
    with pytest.raises(TypeError, match="vocab_size"):
        Datastore.build([[0]], vocab_size=10.0)


def test_build_progress_bar(capsys):
    Datastore.build([[1, 2]] * 20, show_progress=True)
    assert "Datastore" in capsys.readouterr().err
    Datastore.build([[1, 2]] * 20)
    assert capsys.readouterr().err == ""


# ---- longest match ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,vocab,max_match", [(0, 2, 16), (1, 3, 4), (2, 5, 1), (3, 20, 16)])
def test_longest_match_matches_reference(seed, vocab, max_match):
    rng = np.random.default_rng(seed)
    ds = Datastore.build(random_sequences(rng, 12, 25, vocab, min_len=1))
    for _ in range(60):
        context = rng.integers(0, vocab + 2, int(rng.integers(1, 20)))  # vocab, vocab+1 never occur
        got = ds.longest_match(context, max_match=max_match)
        assert tuple(got) == longest_match_ref(ds.text, ds.suffix_array, context, max_match), context


def test_longest_match_never_crosses_a_sequence_boundary():
    ds = Datastore.build([[1, 2], [3, 4]])
    assert ds.longest_match([2, 3]) == (1, *ds.longest_match([3])[1:])  # "2 3" spans the separator
    assert ds.longest_match([9]).length == 0


# ---- drafting -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,vocab,params", [
    (0, 2, {}),
    (1, 3, {"max_candidates": 3}),
    (2, 4, {"max_candidates": 5, "max_depth": 3}),
    (3, 2, {"max_depth": 1}),
    (4, 3, {"min_match": 3, "max_match": 5}),
    (5, 3, {"min_weight": 0.3}),
    (6, 8, {"max_match": 2, "max_candidates": 2, "max_depth": 12}),
])
def test_draft_matches_reference(seed, vocab, params):
    rng = np.random.default_rng(seed)
    ds = Datastore.build(random_sequences(rng, 15, 30, vocab, min_len=1))
    for _ in range(40):
        context = rng.integers(0, vocab + 1, int(rng.integers(1, 12)))
        for max_nodes in (0, 1, 2, 7, 40, 10**6):
            check_same_draft(ds, context, max_nodes, **params)


def test_draft_hand_computed():
    ds = Datastore.build([[1, 2, 3, 4], [1, 2, 3, 5], [2, 3, 4, 6]])
    session = RetrievalDrafter(ds).start([9, 2, 3])
    tree = session.draft(10)
    assert tree.tokens.tolist() == [3, 4, 6, 5] and tree.parents.tolist() == [-1, 0, 1, 0]
    np.testing.assert_array_equal(tree.weights, np.float32([1, 2 / 3, 1 / 3, 1 / 3]))
    assert (session.match_length, session.match_count) == (2, 3)
    session.extend([4])  # "2 3 4": 2 occurrences, one continues with 6, one ends
    tree = session.draft(10)
    assert tree.tokens.tolist() == [4, 6] and tree.weights.tolist() == [1.0, 0.5]
    assert session.length == 4


def test_draft_zero_nodes_no_match_and_end_of_sequence():
    ds = Datastore.build([[1, 2, 3]])
    session = RetrievalDrafter(ds).start([1, 2])
    assert draft_arrays(session.draft(0)) == ([2], [-1], [1.0])
    assert session.match_length == 0  # no search for a root-only draft
    assert draft_arrays(session.draft(5)) == ([2, 3], [-1, 0], [1.0, 1.0])
    session.extend([3])  # "1 2 3" matches at the end of its sequence: nothing follows
    assert draft_arrays(session.draft(5)) == ([3], [-1], [1.0]) and session.match_length == 3
    session.extend(np.array([42], np.int32))  # never seen
    assert draft_arrays(session.draft(5)) == ([42], [-1], [1.0]) and session.match_length == 0


def test_draft_min_match():
    ds = Datastore.build([[1, 2, 3]])
    drafter = RetrievalDrafter(ds, min_match=2)
    assert drafter.start([7, 2]).draft(5).draft_size == 0
    assert drafter.start([1, 2]).draft(5).tokens.tolist() == [2, 3]


def test_draft_repeated_tokens():
    ds = Datastore.build([[4] * 200])
    for n in (1, 5, 16, 300):
        check_same_draft(ds, [4] * n, 20)
        check_same_draft(ds, [4] * n, 20, max_candidates=7, max_depth=16)


def test_draft_after_a_million_token_prompt_uses_only_the_tail():
    rng = np.random.default_rng(11)
    ds = Datastore.build(random_sequences(rng, 30, 40, 5, min_len=1))
    prompt = rng.integers(0, 5, 10**6)
    long_session = RetrievalDrafter(ds).start(prompt)
    short_session = RetrievalDrafter(ds).start(prompt[-16:])
    assert draft_arrays(long_session.draft(30)) == draft_arrays(short_session.draft(30))
    assert long_session.length == 10**6
    check_same_draft(ds, prompt[-40:], 30)
    for step in range(20):  # incremental extension == a fresh session on the whole sequence
        extra = rng.integers(0, 5, int(rng.integers(1, 4)))
        long_session.extend(extra)
        prompt = np.concatenate([prompt[-64:], extra])
        assert draft_arrays(long_session.draft(12)) == draft_arrays(RetrievalDrafter(ds).start(prompt).draft(12))


def test_one_token_vocabulary():
    ds = Datastore.build([[0, 0, 0], [0]], vocab_size=1)
    check_same_draft(ds, [0, 0], 5)
    with pytest.raises(ValueError, match=r"prompt\[0\] = 1 is outside \[0, vocab_size = 1\)"):
        RetrievalDrafter(ds).start([1])


def test_drafter_refuses_bad_tokens_naming_the_argument():
    ds = Datastore.build([[1, 2, 3]], vocab_size=100)
    drafter = RetrievalDrafter(ds)
    assert drafter.vocab_size == 100
    with pytest.raises(ValueError, match=r"RetrievalDrafter.start: prompt\[1\] = 100 is outside"):
        drafter.start([1, 100])
    with pytest.raises(ValueError, match=r"prompt\[0\] = -1"):
        drafter.start(np.array([-1], np.int32))
    session = drafter.start([1])
    with pytest.raises(ValueError, match=r"RetrievalSession.extend: tokens\[2\] = 2147483648"):
        session.extend(np.array([1, 2, 2**31]))
    assert session.length == 1  # a refused extension changes nothing
    with pytest.raises(TypeError, match=r"prompt must hold integer token ids, got float64"):
        drafter.start([1.0])
    with pytest.raises(TypeError, match=r"tokens must be int32 or int64, got int16"):
        session._core.extend(np.array([1], np.int16), "RetrievalSession.extend", "tokens")
    with pytest.raises(ValueError, match=r"tokens must be 1-D"):
        session.extend(np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="max_nodes must be an int in"):
        session.draft(-1)
    with pytest.raises(TypeError, match="max_nodes"):
        session.draft(2.0)
    unbounded = RetrievalDrafter(Datastore.build([[1]]))
    assert unbounded.vocab_size is None
    with pytest.raises(ValueError, match=r"prompt\[0\] = 2147483648 is not a token id"):
        unbounded.start([2**31])


def test_draft_of_an_empty_sequence():
    session = RetrievalDrafter(Datastore.build([[1, 2]])).start([])
    with pytest.raises(ValueError, match="sequence is empty"):
        session.draft(4)
    session.extend([1])
    assert session.draft(4).tokens.tolist() == [1, 2]
    assert len(session) == session.length == 1
    assert RetrievalDrafter(Datastore.build([[1, 2]])).start([]).finish() is None


def test_a_finished_session_refuses_calls():
    session = RetrievalDrafter(Datastore.build([[1, 2]])).start([1])
    session.finish()
    with pytest.raises(ValueError, match="RetrievalSession.draft: the session is finished"):
        session.draft(3)
    with pytest.raises(ValueError, match="RetrievalSession.extend: the session is finished"):
        session.extend([2])


def test_longest_match_of_an_empty_context():
    assert tuple(Datastore.build([[1, 2]]).longest_match([])) == (0, 0, 0)


@pytest.mark.parametrize("kwargs,message", [
    ({"max_match": 0}, "max_match"), ({"min_match": 0}, "min_match"), ({"min_match": 17}, "min_match"),
    ({"max_depth": 0}, "max_depth"), ({"max_candidates": 0}, "max_candidates"),
    ({"max_candidates": 2**20 + 1}, "max_candidates"), ({"min_weight": 1.5}, "min_weight"),
    ({"min_weight": float("nan")}, "min_weight"), ({"max_candidates": 2**20, "max_depth": 2**7}, "max_depth"),
])
def test_drafter_refuses_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetrievalDrafter(Datastore.build([[1]]), **kwargs)


def test_drafter_refuses_a_non_datastore():
    with pytest.raises(TypeError, match="datastore must be"):
        RetrievalDrafter([[1, 2]])


def test_sessions_share_a_datastore_across_threads():
    rng = np.random.default_rng(3)
    ds = Datastore.build(random_sequences(rng, 200, 60, 6, min_len=1))
    drafter = RetrievalDrafter(ds, max_candidates=16)
    contexts = [rng.integers(0, 6, 30) for _ in range(8)]
    expected = [draft_arrays(drafter.start(c).draft(20)) for c in contexts]
    results = [None] * len(contexts)

    def work(i):
        session = drafter.start(contexts[i])
        out = [draft_arrays(session.draft(20)) for _ in range(200)]
        results[i] = out

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(contexts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, out in enumerate(results):
        assert all(o == expected[i] for o in out)


def test_module_docstring_examples():
    result = doctest.testmod(ds_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# ---- save / load --------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    seqs = random_sequences(rng, 30, 20, 7)
    ds = Datastore.build(seqs, vocab_size=7)
    ds.save(tmp_path / "ds.rk")
    assert os.listdir(tmp_path) == ["ds.rk"]  # atomic write: no temporary left
    for verify in (True, False):
        loaded = Datastore.load(tmp_path / "ds.rk", verify=verify)
        np.testing.assert_array_equal(loaded.text, ds.text)
        np.testing.assert_array_equal(loaded.suffix_array, ds.suffix_array)
        assert (loaded.num_tokens, loaded.num_sequences, loaded.vocab_size) == (ds.num_tokens, 30, 7)
        for _ in range(10):
            context = rng.integers(0, 7, 8)
            assert draft_arrays(RetrievalDrafter(loaded).start(context).draft(20)) == \
                draft_arrays(RetrievalDrafter(ds).start(context).draft(20))
    Datastore.build([[1]]).save(str(tmp_path / "one.rk"))
    assert Datastore.load(str(tmp_path / "one.rk")).vocab_size is None
    text = Datastore.load(tmp_path / "ds.rk").text  # the mapping outlives the object
    np.testing.assert_array_equal(text, ds.text)


@pytest.fixture
def saved(tmp_path):
    ds = Datastore.build([[1, 2, 3, 1, 2], [2, 3, 4], [1]], vocab_size=5)
    path = tmp_path / "ds.rk"
    ds.save(path)
    return path, path.read_bytes(), ds


def write(tmp_path, data, name="bad.rk"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def as_bytes(values, dtype):
    return np.asarray(values, dtype).tobytes()


def test_load_refuses_empty_truncated_foreign_and_missing_files(saved, tmp_path):
    _, data, _ = saved
    with pytest.raises(rk.FormatError, match=r"empty\.rk: empty file"):
        Datastore.load(write(tmp_path, b"", "empty.rk"))
    for cut in (40, 200, len(data) - 3):
        with pytest.raises(rk.FormatError, match="bad.rk"):
            Datastore.load(write(tmp_path, data[:cut]))
    flipped = bytearray(data)
    flipped[-5] ^= 0x40
    with pytest.raises(rk.FormatError, match="checksum mismatch"):
        Datastore.load(write(tmp_path, bytes(flipped)))
    rk.save_arrays(tmp_path / "other.rk", {"x": np.arange(3)})
    with pytest.raises(rk.FormatError, match="expected 'spec-datastore'"):
        Datastore.load(tmp_path / "other.rk")
    with pytest.raises(OSError, match="missing.rk"):
        Datastore.load(tmp_path / "missing.rk")


# Each invariant broken by rewriting one section (same size) and resealing
# the checksums: the loader's own checks must refuse it, naming the field.
@pytest.mark.parametrize("section,values,dtype,message", [
    ("meta", [2, 9, 3, 5], np.int64, "datastore version 2"),
    ("meta", [1, 8, 3, 5], np.int64, "'text' must hold num_tokens \\+ num_sequences = 11"),
    ("meta", [1, 9, 2, 5], np.int64, "'text' must hold num_tokens \\+ num_sequences = 11"),
    ("meta", [1, 9, 3, 0], np.int64, "bad meta: vocab_size 0"),
    ("meta", [1, 9, 3, -2], np.int64, "bad meta: vocab_size -2"),
    ("meta", [1, 9, 3, 2**31 + 1], np.int64, "bad meta: vocab_size"),
    ("meta", [1, -1, 3, 5], np.int64, "bad meta: num_tokens -1"),
    ("meta", [1, 2**31, 3, 5], np.int64, "bad meta"),
    ("meta", [1, 9, 3, 4], np.int64, "entry 8 holds 4, not a token id in \\[0, vocab_size = 4\\)"),
    ("text", [1, 2, 3, 1, 2, -1, 2, 3, 4, -1, 1, 0], np.int32, "must end with the separator -1, got 0"),
    ("text", [1, 2, 3, 1, 2, -1, 2, 3, 9, -1, 1, -1], np.int32, "entry 8 holds 9"),
    ("text", [1, 2, 3, 1, 2, -1, 2, 3, -2, -1, 1, -1], np.int32, "entry 8 holds -2"),
    ("text", [1, 2, 3, -1, 2, -1, 2, 3, 4, -1, 1, -1], np.int32, "holds 4 separators, meta says num_sequences = 3"),
    ("text", [1, 2, 3, 1, 2, -1, 2, 3, 4, -1, 2, -1], np.int32, "is not the sorted array"),
    ("reversed_suffix_array", "swap", np.int32, "are out of order"),
    ("reversed_suffix_array", "outside", np.int32, "lies outside the text of 12 entries"),
    ("reversed_suffix_array", "separator", np.int32, "points at a separator"),
    ("reversed_suffix_array", "repeat", np.int32, "repeats entry"),
    ("token_start", [0, 0, 3, 5, 8, 9], np.int32, "'token_start' does not match the array: entry 5"),
    ("token_start", [0, 0, 3, 6, 5, 9], np.int32, "'token_start' decreases at token 3"),
])
def test_load_refuses_each_broken_invariant(saved, tmp_path, section, values, dtype, message):
    _, data, ds = saved
    if section == "reversed_suffix_array":
        sa = ds.suffix_array.copy()
        if values == "swap":
            sa[3], sa[4] = sa[4], sa[3]
        elif values == "outside":
            sa[2] = 12
        elif values == "separator":
            sa[2] = 5
        else:
            sa[5] = sa[1]
        values = sa
    path = write(tmp_path, patch_section(data, section, as_bytes(values, dtype)))
    with pytest.raises(rk.FormatError, match=message) as info:
        Datastore.load(path)
    assert str(info.value).startswith(str(path))


def test_load_refuses_missing_sections_wrong_dtypes_and_no_tokens(tmp_path):
    good = {"meta": np.array([1, 1, 1, -1], np.int64), "text": np.array([4, -1], np.int32),
            "reversed_suffix_array": np.array([0], np.int32), "token_start": np.zeros(0, np.int32)}
    rk.save_arrays(tmp_path / "ok.rk", good, kind="spec-datastore")
    assert Datastore.load(tmp_path / "ok.rk").text.tolist() == [4, -1]  # no table: allowed
    assert Datastore.load(tmp_path / "ok.rk").longest_match([4]).length == 1
    cases = [
        ({k: v for k, v in good.items() if k != "text"}, "no section 'text'"),
        ({**good, "text": good["text"].astype(np.int64)}, "section 'text' has dtype i64, expected i32"),
        ({**good, "meta": np.array([1, 1, 1], np.int64)}, "'meta' must hold 4 int64, got 3"),
        ({"meta": np.array([1, 0, 0, -1], np.int64), "text": np.zeros(0, np.int32),
          "reversed_suffix_array": np.zeros(0, np.int32)}, "holds no tokens"),
        ({"meta": np.array([1, 0, 2, -1], np.int64), "text": np.array([-1, -1], np.int32),
          "reversed_suffix_array": np.zeros(0, np.int32)}, "holds no tokens"),
        ({**good, "reversed_suffix_array": np.array([0, 0], np.int32)}, "must hold num_tokens = 1"),
        ({k: v for k, v in good.items() if k != "token_start"}, "no section 'token_start'"),
        ({**good, "token_start": np.array([0], np.int32)}, "'token_start' must hold 0 or 2"),
        ({**good, "token_start": np.zeros(2**22 + 2, np.int32)}, "'token_start' must hold 0 or 2"),
        ({**good, "token_start": np.array([0, 0], np.int32)}, "must run from 0 to num_tokens = 1"),
        ({**good, "token_start": np.array([1, 1], np.int32)}, "must run from 0 to num_tokens = 1"),
        ({**good, "token_start": np.array([0, 2, 1], np.int32)}, "'token_start' decreases at token 1"),
        ({**good, "token_start": np.array([0, 1, 1, 1, 1, 1], np.int32)}, "'token_start' does not match the array"),
        ({**good, "token_start": np.array([0, 0, 0, 0, 1], np.int32)}, "'token_start' does not match the array"),
    ]
    for arrays, message in cases:
        rk.save_arrays(tmp_path / "bad.rk", arrays, kind="spec-datastore")
        with pytest.raises(rk.FormatError, match=message):
            Datastore.load(tmp_path / "bad.rk")


def test_load_without_verify_never_reads_out_of_bounds_nor_drafts_bad_ids(saved, tmp_path):
    # verify=False trusts the contents: drafts may be wrong, but every read
    # stays inside the arrays and every drafted id is in [0, vocab_size).
    _, data, ds = saved
    rng = np.random.default_rng(4)
    n = ds.num_tokens
    for _ in range(300):
        sa = rng.integers(-3, 16, n).astype(np.int32)
        text = rng.integers(-3, 8, ds.num_tokens + ds.num_sequences).astype(np.int32)
        text[-1] = -1
        forged = patch_section(patch_section(data, "reversed_suffix_array", sa.tobytes()), "text", text.tobytes())
        path = write(tmp_path, forged)
        with pytest.raises(rk.FormatError):
            Datastore.load(path)
        loaded = Datastore.load(path, verify=False)
        for context in ([1], [2, 3], [1, 2, 3, 1, 2], [4, 4]):
            tree = RetrievalDrafter(loaded, max_depth=4).start(context).draft(50)
            assert ((tree.tokens >= 0) & (tree.tokens < 5)).all()
            TokenTree(tree.tokens, tree.parents, tree.weights)


def test_reseal_keeps_a_valid_file_valid(saved, tmp_path):
    _, data, ds = saved
    loaded = Datastore.load(write(tmp_path, reseal(data)))
    np.testing.assert_array_equal(loaded.suffix_array, ds.suffix_array)
