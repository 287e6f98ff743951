"""ragkernels.spec drafters against their Python references (prompt lookup by
brute-force scan, SuffixDecoding by counting in dicts) on random and edge
inputs, eviction, concurrency and bad input."""
import doctest
import threading

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.spec import TokenTree
from ragkernels.spec import PromptLookupDrafter, SuffixDrafter
from tests.reference import spec as ref

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

INT32_MAX = 2**31 - 1


def as_lists(tree):
    assert isinstance(tree, TokenTree)
    return tree.tokens.tolist(), tree.parents.tolist(), tree.weights.tolist()


def split(tokens, cuts):
    """tokens cut into consecutive chunks at the (sorted, in-range) cuts."""
    cuts = sorted({c % (len(tokens) + 1) for c in cuts}) if tokens else []
    bounds = [0] + cuts + [len(tokens)]
    return [tokens[a:b] for a, b in zip(bounds, bounds[1:])]


def test_docstring_examples():
    import ragkernels._spec_drafters as module
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# ---- prompt lookup: against the reference --------------------------------------------


def check_lookup(drafter, session, context, sequence, max_nodes):
    expected = ref.prompt_lookup_draft(context, sequence, max_nodes, drafter.max_depth, drafter.min_match)
    assert as_lists(session.draft(max_nodes)) == expected
    assert len(session) == len(sequence)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(vocab=st.integers(1, 6), data=st.data(), max_depth=st.integers(1, 12),
                  min_match=st.integers(1, 4), max_nodes=st.integers(0, 20))
def test_prompt_lookup_matches_reference(vocab, data, max_depth, min_match, max_nodes):
    tokens = st.lists(st.integers(0, vocab - 1), max_size=30)
    context = data.draw(st.lists(tokens, max_size=3))
    prompt = data.draw(tokens)
    generated = data.draw(st.lists(st.integers(0, vocab - 1), max_size=30))
    cuts = data.draw(st.lists(st.integers(0, 40), max_size=5))
    drafter = PromptLookupDrafter(max_depth=max_depth, min_match=min_match)
    session = drafter.start(np.array(prompt, np.int64), [np.array(c, np.int32) for c in context])
    sequence = list(prompt)
    for chunk in [[]] + split(generated, cuts):
        session.extend(np.array(chunk, np.int32))
        sequence += chunk
        if sequence:
            check_lookup(drafter, session, context, sequence, max_nodes)
    # The same text given at once drafts the same.
    if sequence:
        again = drafter.start(sequence, context)
        assert as_lists(again.draft(max_nodes)) == as_lists(session.draft(max_nodes))


@pytest.mark.parametrize("seed", range(6))
def test_prompt_lookup_token_by_token(seed):
    rng = np.random.default_rng(seed)
    vocab = [1, 2, 3, 8, 30, 1000][seed]
    context = [rng.integers(0, vocab, size=int(rng.integers(0, 60))) for _ in range(int(rng.integers(0, 3)))]
    text = rng.integers(0, vocab, size=150)
    drafter = PromptLookupDrafter(max_depth=10, min_match=1)
    session = drafter.start(text[:1], context)
    for i in range(1, len(text)):
        check_lookup(drafter, session, context, text[:i].tolist(), 10)
        session.extend(text[i:i + 1])


def test_prompt_lookup_edge_cases():
    drafter = PromptLookupDrafter(max_depth=6, min_match=1)
    # Empty prompt: nothing to root a draft at until a token comes.
    session = drafter.start(np.array([], np.int64))
    with pytest.raises(ValueError, match="sequence is empty"):
        session.draft(4)
    session.extend([3, 4, 3])
    assert as_lists(session.draft(4))[0] == [3, 4, 3, 4, 3, 4][:5]
    # Empty context, in each spelling, is no context.
    for context in (None, [], np.array([], np.int32), [np.array([], np.int64)], [[]]):
        assert as_lists(drafter.start([1, 2, 1], context).draft(3)) == as_lists(drafter.start([1, 2, 1]).draft(3))
    # max_nodes 0: a root-only tree.
    tree = drafter.start([5, 5, 5]).draft(0)
    assert tree.tokens.tolist() == [5] and tree.draft_size == 0
    # A draft longer than anything there: the period repeats up to max_depth.
    assert drafter.start([1, 2, 1]).draft(1000).tokens.tolist() == [1, 2, 1, 2, 1, 2, 1]
    # No earlier occurrence: nothing.
    assert drafter.start([1, 2, 3]).draft(5).draft_size == 0
    # The copy stops at the end of a context piece.
    assert drafter.start([7, 8], [[1, 7, 8, 9], [2]]).draft(5).tokens.tolist() == [8, 9]


def test_prompt_lookup_one_token_vocabulary_and_repeats():
    drafter = PromptLookupDrafter(max_depth=8, min_match=2)
    session = drafter.start(np.zeros(1, np.int64))
    assert session.draft(8).draft_size == 0  # a single token matches nothing
    session.extend(np.zeros(1, np.int64))
    assert session.draft(8).draft_size == 0  # L = 1 < min_match
    session.extend(np.zeros(5, np.int64))
    tokens, _, weights = as_lists(session.draft(8))
    assert tokens == [0] * 9
    assert weights[1:] == [ref.f32(7 / (7 + k)) for k in range(1, 9)]  # L = 6
    assert session.match_length == 6


def test_prompt_lookup_huge_ids():
    big = np.array([INT32_MAX, INT32_MAX - 1, 0, INT32_MAX, INT32_MAX - 1], np.int64)
    drafter = PromptLookupDrafter(max_depth=5, min_match=1, vocab_size=INT32_MAX + 1)
    tree = drafter.start(big).draft(5)
    assert as_lists(tree) == ref.prompt_lookup_draft([], big.tolist(), 5, 5, 1)
    assert tree.tokens.tolist()[:2] == [INT32_MAX - 1, 0]


def test_prompt_lookup_million_token_context():
    rng = np.random.default_rng(1)
    context = rng.integers(0, 50000, size=1_000_000).astype(np.int32)
    drafter = PromptLookupDrafter(max_depth=16)
    at = 654_321
    session = drafter.start(context[at - 20:at].copy(), context)  # the prompt repeats a passage
    assert session.match_length == 20
    assert session.draft(16).tokens.tolist()[1:] == context[at:at + 16].tolist()
    session.extend(context[at:at + 3])  # accepted: still O(1) per token
    assert session.draft(4).tokens.tolist()[1:] == context[at + 3:at + 7].tolist()
    assert session.memory_bytes < 400 * 1_000_000


def test_prompt_lookup_sessions_in_threads():
    rng = np.random.default_rng(3)
    texts = [rng.integers(0, 5, size=400) for _ in range(8)]
    drafter = PromptLookupDrafter(max_depth=8, min_match=1)

    def run(text):
        session = drafter.start(text[:50])
        out = []
        for i in range(50, len(text)):
            out.append(as_lists(session.draft(8)))
            session.extend(text[i:i + 1])
        return out

    serial = [run(t) for t in texts]
    results = [None] * len(texts)
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(texts[i]))) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == serial


def test_prompt_lookup_finish_and_torch():
    session = PromptLookupDrafter().start([1, 2, 3, 1, 2])
    session.finish()
    for call in (lambda: session.draft(3), lambda: session.extend([1]), session.finish):
        with pytest.raises(ValueError, match="finished"):
            call()
    torch = pytest.importorskip("torch")
    tree = PromptLookupDrafter().start(torch.tensor([1, 2, 3, 1, 2])).draft(3)
    assert tree.tokens.tolist() == [2, 3, 1, 2]


# ---- SuffixDecoding: against the reference --------------------------------------------


def check_suffix(session, ref_session, max_nodes):
    assert as_lists(session.draft(max_nodes)) == ref_session.draft(max_nodes)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(vocab=st.sampled_from([1, 2, 3, 5, 12]), data=st.data(), max_depth=st.integers(2, 8),
                  max_match=st.integers(1, 8), factor=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
                  min_probability=st.sampled_from([0.0, 0.1, 0.3, 0.5]), max_nodes=st.integers(0, 16))
def test_suffix_drafter_matches_reference(vocab, data, max_depth, max_match, factor, min_probability, max_nodes):
    tokens = st.lists(st.integers(0, vocab - 1), max_size=25)
    answers = data.draw(st.lists(tokens, max_size=12))
    context = data.draw(st.lists(tokens, max_size=2))
    prompt = data.draw(tokens)
    generated = data.draw(st.lists(st.integers(0, vocab - 1), max_size=25))
    cuts = data.draw(st.lists(st.integers(0, 30), max_size=4))
    max_answers = data.draw(st.sampled_from([None, 1, 3]))
    kwargs = dict(max_match=max_match, max_spec_factor=factor, min_probability=min_probability,
                  max_answers=max_answers, max_tokens=None)
    drafter = SuffixDrafter(max_depth, **kwargs)
    expected = ref.SuffixDrafterRef(max_depth, **kwargs)
    for answer in answers:
        drafter.add(np.array(answer, np.int64))
        expected.add(answer)
    session = drafter.start(prompt, [np.array(c, np.int64) for c in context])
    ref_session = expected.start(prompt, context)
    for chunk in [[]] + split(generated, cuts):
        session.extend(np.array(chunk, np.int64))
        ref_session.extend(chunk)
        if ref_session.sequence:
            check_suffix(session, ref_session, max_nodes)
    session.finish()
    ref_session.finish()
    assert [a.tolist() for a in drafter.export_trie()] == list(expected.trie().export())
    assert drafter.num_answers == len(expected.texts)
    assert drafter._core.check() == ""


@pytest.mark.parametrize("seed", range(4))
def test_suffix_drafter_answers_in_sequence(seed):
    """A run of requests, each drafting token by token and then finishing."""
    rng = np.random.default_rng(seed)
    vocab = [2, 4, 10, 40][seed]
    drafter = SuffixDrafter(max_depth=6, max_answers=5, min_probability=0.05, max_spec_factor=2.0)
    expected = ref.SuffixDrafterRef(max_depth=6, max_answers=5, min_probability=0.05, max_spec_factor=2.0)
    for _ in range(12):
        prompt = rng.integers(0, vocab, size=int(rng.integers(1, 20)))
        answer = rng.integers(0, vocab, size=int(rng.integers(0, 30)))
        session, ref_session = drafter.start(prompt), expected.start(prompt)
        for t in answer:
            check_suffix(session, ref_session, 12)
            session.extend([t])
            ref_session.extend([t])
        session.finish()
        ref_session.finish()
    assert [a.tolist() for a in drafter.export_trie()] == list(expected.trie().export())


@pytest.mark.parametrize("min_probability", [0.0, 0.02, 0.1, 0.3])
def test_suffix_drafter_frequent_tokens_match_reference(min_probability):
    """Skewed texts: frequent tokens get dozens of distinct followers, whose
    nodes keep their children in count order (read only down to the floor)."""
    rng = np.random.default_rng(11)
    texts = [(rng.zipf(1.5, size=int(rng.integers(20, 120))) % 40).astype(np.int64) for _ in range(150)]
    kwargs = dict(max_match=3, min_probability=min_probability, max_spec_factor=8.0, max_answers=100)
    drafter, expected = SuffixDrafter(6, **kwargs), ref.SuffixDrafterRef(6, **kwargs)
    for i, text in enumerate(texts):
        drafter.add(text)  # the first 50 are evicted on the way, through sorted nodes
        expected.add(text)
        if i % 30 == 29:
            assert drafter._core.check() == ""
    assert [a.tolist() for a in drafter.export_trie()] == list(expected.trie().export())
    fan_out = np.bincount(drafter.export_trie()[1][1:])
    assert fan_out.max() > 20
    for seed in range(40):
        prompt = (np.random.default_rng(seed).zipf(1.5, size=5) % 40).astype(np.int64)
        for max_nodes in (1, 3, 12, 40):
            check_suffix(drafter.start(prompt), expected.start(prompt), max_nodes)


def test_suffix_drafter_edge_cases():
    drafter = SuffixDrafter(max_depth=8)
    drafter.add([1, 2, 3, 4])
    session = drafter.start([])
    with pytest.raises(ValueError, match="sequence is empty"):
        session.draft(3)
    session.extend([1, 2])
    assert session.draft(3).tokens.tolist() == [2, 3, 4]  # L = 2: cap 2 * 1.0
    assert session.draft(0).tokens.tolist() == [2]
    for context in (None, [], np.array([], np.int64), [[]]):
        assert drafter.start([1, 2], context).draft(5).tokens.tolist() == [2, 3, 4]
    # A draft longer than anything there: only what the tree holds.
    long = SuffixDrafter(max_depth=8, max_spec_factor=100.0)
    long.add([1, 2, 3, 4])
    assert long.start([1, 2]).draft(1000).tokens.tolist() == [2, 3, 4]
    # Nothing matches: a root-only tree; an empty add is ignored.
    drafter.add([])
    assert drafter.num_answers == 1
    assert drafter.start([9, 9]).draft(5).draft_size == 0
    # The context drafts for its own session only.
    other = drafter.start([5, 6], context=[[5, 6, 7, 8]])
    assert other.draft(4).tokens.tolist() == [6, 7, 8]
    assert drafter.start([5, 6]).draft(4).draft_size == 0


def test_suffix_drafter_one_token_vocabulary_and_repeats():
    drafter = SuffixDrafter(max_depth=6, max_spec_factor=4.0)
    expected = ref.SuffixDrafterRef(max_depth=6, max_spec_factor=4.0)
    for n in (1, 5, 40):
        drafter.add(np.zeros(n, np.int64))
        expected.add([0] * n)
    for prompt in ([0], [0, 0, 0], [0] * 50):
        session, ref_session = drafter.start(prompt), expected.start(prompt)
        check_suffix(session, ref_session, 20)
        # match min(len, max_match = 3); cap 4 * match; depth 6 - match left
        assert session.draft(20).tokens.tolist() == [0] * (1 + (4 if len(prompt) == 1 else 3))
    assert drafter._core.check() == ""


def test_suffix_drafter_huge_ids():
    big = [INT32_MAX, INT32_MAX - 1, 0, INT32_MAX, INT32_MAX - 1, 7]
    drafter = SuffixDrafter(max_depth=4, vocab_size=INT32_MAX + 1)
    expected = ref.SuffixDrafterRef(max_depth=4)
    drafter.add(np.array(big, np.int64))
    expected.add(big)
    prompt = [3, INT32_MAX, INT32_MAX - 1]
    check_suffix(drafter.start(prompt), expected.start(prompt), 4)
    assert drafter.start(prompt).draft(4).tokens.tolist() == [INT32_MAX - 1, 0, 7]


def test_suffix_drafter_million_token_context():
    rng = np.random.default_rng(2)
    context = rng.integers(0, 50000, size=1_000_000).astype(np.int64)
    drafter = SuffixDrafter(max_depth=32)
    at = 321_000
    session = drafter.start(context[at - 20:at].copy(), [context])
    # Matched on its last 16 tokens (max_match), seen once: prob 1 each.
    tree = session.draft(16)
    assert tree.tokens.tolist()[1:] == context[at:at + 16].tolist()
    assert tree.weights.tolist() == [1.0] * 17
    # A million-token prompt ending with an earlier passage, then extended.
    big = drafter.start(np.concatenate([context, context[at - 20:at]]))
    assert big.draft(8).tokens.tolist()[1:] == context[at:at + 8].tolist()
    big.extend(context[at:at + 3])
    assert big.draft(8).tokens.tolist()[1:] == context[at + 3:at + 11].tolist()


# ---- eviction ------------------------------------------------------------------------


def test_suffix_drafter_eviction_equals_fresh_tree():
    rng = np.random.default_rng(5)
    texts = [rng.integers(0, 6, size=int(rng.integers(1, 300))) for _ in range(60)]
    drafter = SuffixDrafter(max_depth=12, max_answers=4)
    peak = 0
    for text in texts:
        drafter.add(text)
        peak = max(peak, drafter.memory_bytes)
    fresh = SuffixDrafter(max_depth=12)
    for text in texts[-4:]:
        fresh.add(text)
    assert drafter.num_answers == 4
    assert drafter.num_tokens == sum(map(len, texts[-4:]))
    assert drafter.num_nodes == fresh.num_nodes
    assert [a.tolist() for a in drafter.export_trie()] == [a.tolist() for a in fresh.export_trie()]
    expected = ref.SuffixDrafterRef(max_depth=12)
    for text in texts[-4:]:
        expected.add(text)
    assert [a.tolist() for a in drafter.export_trie()] == list(expected.trie().export())
    # Memory follows the kept texts down: within a small factor of a fresh tree.
    assert drafter.memory_bytes <= 3 * fresh.memory_bytes
    assert drafter._core.check() == ""


def test_suffix_drafter_memory_returns():
    rng = np.random.default_rng(6)
    drafter = SuffixDrafter(max_depth=16, max_answers=4)
    for _ in range(4):
        drafter.add(rng.integers(0, 1000, size=20_000))
    peak = drafter.memory_bytes
    for _ in range(4):  # small texts push the large ones out
        drafter.add(rng.integers(0, 1000, size=10))
    assert drafter.num_tokens == 40
    assert drafter.memory_bytes < peak / 50
    assert drafter._core.check() == ""


def test_suffix_drafter_token_budget():
    rng = np.random.default_rng(7)
    drafter = SuffixDrafter(max_depth=16, max_tokens=20_000)
    for _ in range(40):
        drafter.add(rng.integers(0, 1000, size=5_000))
    assert (drafter.num_answers, drafter.num_tokens) == (4, 20_000)
    drafter.add(rng.integers(0, 1000, size=20_001))  # longer than the budget: not kept, nothing evicted
    assert (drafter.num_answers, drafter.num_tokens) == (4, 20_000)
    drafter.add(rng.integers(0, 1000, size=20_000))  # evicts all the others
    assert (drafter.num_answers, drafter.num_tokens) == (1, 20_000)
    assert drafter._core.check() == ""


def test_suffix_drafter_max_answers_zero():
    drafter = SuffixDrafter(max_answers=0)
    drafter.add([1, 2, 3])
    session = drafter.start([1, 2])
    session.extend([3])
    session.finish()
    assert drafter.num_answers == 0 and drafter.num_nodes == 1


# ---- concurrency ----------------------------------------------------------------------


def test_suffix_drafter_threads_draft_while_others_finish():
    rng = np.random.default_rng(8)
    drafter = SuffixDrafter(max_depth=10, max_answers=10_000)
    for _ in range(100):
        drafter.add(rng.integers(0, 8, size=60))
    prompts = [rng.integers(0, 8, size=40) for _ in range(6)]
    steps = [rng.integers(0, 8, size=30) for _ in range(6)]

    def run(i):
        session = drafter.start(prompts[i])
        out = []
        for t in steps[i]:
            out.append(as_lists(session.draft(12)))
            session.extend([t])
        return out

    serial = [run(i) for i in range(6)]
    stop = threading.Event()

    def finisher(w):
        k = 0
        while not stop.is_set() and k < 3000:  # 100 + 2 * 3000 < max_answers: nothing evicted
            # Answers over other ids: they change no count the drafters read.
            session = drafter.start([1000 + w])
            session.extend([2000 + k % 500, 3000 + w])
            session.finish()
            k += 1

    results = [None] * 6
    finishers = [threading.Thread(target=finisher, args=(w,)) for w in range(2)]
    drafters = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(i))) for i in range(6)]
    for t in finishers + drafters:
        t.start()
    for t in drafters:
        t.join()
    stop.set()
    for t in finishers:
        t.join()
    assert results == serial
    assert drafter.num_answers > 100
    assert drafter._core.check() == ""


def test_suffix_session_finish_adds_the_answer():
    drafter = SuffixDrafter(max_depth=8)
    session = drafter.start([1, 2, 3])
    session.extend([10, 11, 12, 13])
    assert drafter.num_answers == 0
    session.finish()
    assert drafter.num_answers == 1 and drafter.num_tokens == 4  # the answer only, not the prompt
    assert drafter.start([9, 10, 11]).draft(4).tokens.tolist() == [11, 12, 13]
    with pytest.raises(ValueError, match="finished"):
        session.finish()
    with pytest.raises(ValueError, match="finished"):
        session.draft(2)


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: PromptLookupDrafter(vocab_size=10), lambda: SuffixDrafter(vocab_size=10)])
def test_bad_token_ids(make):
    drafter = make()
    name = type(drafter).__name__
    with pytest.raises(ValueError, match=rf"{name}.start: prompt\[1\] = -1 is negative"):
        drafter.start(np.array([1, -1, 2]))
    with pytest.raises(ValueError, match=r"prompt\[2\] = 10 is outside the vocabulary \[0, 10\)"):
        drafter.start(np.array([1, 2, 10]))
    with pytest.raises(ValueError, match=r"context\[1\]\[0\] = 12 is outside"):
        drafter.start([1], [[1], [12]])
    with pytest.raises(ValueError, match=r"context\[0\] = -3 is negative"):
        drafter.start([1], np.array([-3]))
    with pytest.raises(TypeError, match=r"prompt must be int32 or int64 token ids, got float64"):
        drafter.start(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"prompt must be int32 or int64"):
        drafter.start([1.5])
    with pytest.raises(ValueError, match=r"prompt must be 1-D, got int64 with shape \(1, 2\)"):
        drafter.start(np.array([[1, 2]]))
    with pytest.raises(TypeError, match="prompt must be a numpy array or a DLPack tensor"):
        drafter.start("1 2 3")
    session = drafter.start([1, 2, 1])
    with pytest.raises(ValueError, match=r"extend: tokens\[0\] = 11 is outside"):
        session.extend([11])
    with pytest.raises(ValueError, match=r"extend: tokens\[1\] = -2 is negative"):
        session.extend(np.array([1, -2], np.int32))
    with pytest.raises(ValueError, match=r"draft: max_nodes must be an int in \[0"):
        session.draft(-1)
    with pytest.raises(TypeError, match="draft: max_nodes must be an int"):
        session.draft(2.0)
    assert len(session) == 3  # nothing appended by the failed calls


def test_bad_ids_without_vocabulary():
    with pytest.raises(ValueError, match=r"prompt\[0\] = 2147483648 exceeds 2\*\*31 - 1"):
        PromptLookupDrafter().start(np.array([2**31], np.int64))
    drafter = SuffixDrafter()
    with pytest.raises(ValueError, match=r"SuffixDrafter.add: tokens\[1\] = -5 is negative"):
        drafter.add([1, -5])
    with pytest.raises(ValueError, match=r"tokens\[0\] = 4294967296 exceeds"):
        drafter.add(np.array([2**32], np.int64))
    assert drafter.num_answers == 0


@pytest.mark.parametrize("make, message", [
    (lambda: PromptLookupDrafter(max_depth=0), "max_depth must be an int in"),
    (lambda: PromptLookupDrafter(min_match=-1), "min_match must be an int in"),
    (lambda: PromptLookupDrafter(vocab_size=0), "vocab_size must be an int in"),
    (lambda: SuffixDrafter(max_depth=1), "max_depth must be an int in"),
    (lambda: SuffixDrafter(max_match=0), "max_match must be an int in"),
    (lambda: SuffixDrafter(max_spec_factor=0.0), "max_spec_factor must be a finite number > 0"),
    (lambda: SuffixDrafter(max_spec_factor=float("nan")), "max_spec_factor must be finite"),
    (lambda: SuffixDrafter(min_probability=1.5), r"min_probability must be in \[0, 1\]"),
    (lambda: SuffixDrafter(max_answers=-1), "max_answers must be an int in"),
    (lambda: SuffixDrafter(max_tokens=-2), "max_tokens must be an int in"),
])
def test_bad_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_parameter_types():
    with pytest.raises(TypeError, match="max_depth must be an int"):
        PromptLookupDrafter(max_depth=2.5)
    with pytest.raises(TypeError, match="min_probability must be a number"):
        SuffixDrafter(min_probability="0.1")


# ---- the cross-vocabulary bridge ------------------------------------------------------------

from ragkernels.spec import VocabBridge, token_bytes  # noqa: E402

BYTES = [b"a", b"b", b" ", b"\n", b"\xc3\xa9"]  # "é" is two bytes: a piece may split it


def random_vocab(rng, size):
    """Every single byte of BYTES (so any text is spelled) plus random longer pieces."""
    singles = [bytes([c]) for piece in BYTES for c in piece]
    pieces = set(singles)
    while len(pieces) < size:
        pieces.add(b"".join(BYTES[i] for i in rng.integers(0, len(BYTES), rng.integers(2, 5))))
    pieces = sorted(pieces)
    rng.shuffle(pieces)
    return pieces + [b"", pieces[0]]  # an empty (special) token and a duplicate: the lower id wins


def random_tree(rng, vocab_size, n):
    """A valid drafter tree: unique child tokens, weights falling down paths."""
    tokens, parents, weights = [0], [-1], [1.0]
    used = {}
    for _ in range(n):
        parent = int(rng.integers(0, len(tokens)))
        token = int(rng.integers(0, vocab_size))
        if token in used.setdefault(parent, set()):
            continue
        used[parent].add(token)
        tokens.append(token)
        parents.append(parent)
        weights.append(float(np.float32(weights[parent] * rng.uniform(0.3, 1.0))))
    return TokenTree(tokens, parents, weights)


class EchoDrafter:
    """Records what the bridge hands it; drafts a tree chosen by the test."""

    vocab_size = None

    def __init__(self):
        self.tree = None

    def start(self, prompt, context=None):
        self.sequence, self.context = list(np.asarray(prompt)), context
        return self

    def extend(self, tokens):
        self.sequence += list(np.asarray(tokens))

    def draft(self, max_nodes):
        return self.tree

    def finish(self):
        self.finished = True


@pytest.mark.parametrize("seed", range(12))
def test_bridge_equals_reference(seed):
    rng = np.random.default_rng(seed)
    drafter_vocab, target_vocab = random_vocab(rng, 12), random_vocab(rng, 20)
    inner = EchoDrafter()
    bridge = VocabBridge(inner, drafter_vocab, target_vocab)
    expected = ref.BridgeSessionRef(drafter_vocab, target_vocab)
    prompt = rng.integers(0, len(target_vocab) - 1, 6).tolist()
    session = bridge.start(prompt)
    assert inner.sequence == expected.extend(prompt)
    for _ in range(15):
        accepted = rng.integers(0, len(target_vocab) - 1, rng.integers(0, 4)).tolist()
        before = len(inner.sequence)
        session.extend(accepted)
        expected_committed = expected.extend(accepted)
        assert inner.sequence[before:] == expected_committed
        assert session.pending == expected.pending
        inner.tree = random_tree(rng, len(drafter_vocab), 12)
        budget = int(rng.integers(0, 10))
        tree = session.draft(budget)
        if not expected_committed and not inner.sequence:
            continue
        t = inner.tree
        want = expected.map(t.tokens.tolist(), t.parents.tolist(), t.weights.tolist(), budget)
        assert as_lists(tree) == (want[0], want[1], [float(np.float32(w)) for w in want[2]])
    committed = list(inner.sequence)
    session.finish()
    assert inner.sequence == committed + expected.flush() and inner.finished


def test_bridge_hands_the_drafter_whole_words():
    inner = EchoDrafter()
    vocab = [b"a", b"b", b" ", b"ab", b" ab", b"\n"]
    session = VocabBridge(inner, vocab, vocab).start([3, 4, 4])  # "ab ab ab"
    assert inner.sequence == [3, 4] and session.pending == b" ab"
    session.extend([5, 5, 3])  # "\n\nab": the whitespace run goes with the word after it
    assert inner.sequence == [3, 4, 4] and session.pending == b"\n\nab"
    session.extend([0] * 30)  # no whitespace for over 16 bytes: cut 8 bytes from the end
    assert session.pending == b"a" * 8 and len(session) == 36


def test_bridge_cuts_long_words_at_a_character_start():
    inner = EchoDrafter()
    vocab = [b"x", "€".encode()]
    session = VocabBridge(inner, vocab, vocab).start([0] * 3 + [1] * 6)  # 21 bytes: 13 is inside a "€"
    assert session.pending == "€".encode() * 3  # cut at 12, not 13
    assert inner.sequence == [0] * 3 + [1] * 3


def test_bridge_drafts_nothing_before_the_first_word():
    inner = EchoDrafter()
    inner.tree = TokenTree([0, 1], [-1, 0], [1.0, 0.9])
    session = VocabBridge(inner, [b"a", b"b"], [b"a", b"b"]).start([0, 1])  # no whitespace: nothing committed
    assert inner.sequence == [] and as_lists(session.draft(4)) == ([1], [-1], [1.0])
    with pytest.raises(ValueError, match="sequence is empty"):
        VocabBridge(inner, [b"a"], [b"a"]).start([]).draft(4)


def test_bridge_with_trained_tokenizers_drafts_the_text():
    """Two byte-level BPE tokenizers of different sizes trained here: a
    suffix drafter that saw a sentence in one drafts its continuation in
    the other's ids, spelling the same bytes."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    text = ["the quick brown fox jumps over the lazy dog", "a retrieval augmented answer quotes its passages",
            "speculative decoding drafts tokens that the model verifies"] * 20

    def train(size):
        tok = tokenizers.Tokenizer(tokenizers.models.BPE())
        tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tokenizers.decoders.ByteLevel()
        trainer = tokenizers.trainers.BpeTrainer(vocab_size=size, special_tokens=["<eos>"],
                                                 initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(text, trainer)
        return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")

    small, large = train(300), train(420)
    for tok in (small, large):
        pieces = token_bytes(tok)
        assert pieces[tok.eos_token_id] == b""
        for line in text[:3] + ["unseen wörds, digits 123 and ü"]:
            assert b"".join(pieces[i] for i in tok(line)["input_ids"]) == line.encode()
    inner = SuffixDrafter(max_depth=32, max_spec_factor=8)
    inner.add(small(text[0])["input_ids"])
    session = VocabBridge.from_tokenizers(inner, small, large).start(large("so the quick brown fox")["input_ids"])
    tree = session.draft(16)
    pieces = token_bytes(large)
    chain = [int(t) for t, p in zip(tree.tokens[1:], tree.parents[1:])]  # the tree is one chain here
    assert tree.parents.tolist() == list(range(-1, len(chain)))
    assert len(chain) >= 3 and b" jumps over the lazy dog".startswith(b"".join(pieces[t] for t in chain))


def test_bridge_bad_input():
    inner = EchoDrafter()
    with pytest.raises(TypeError, match=r"drafter_vocab\[1\] must be bytes"):
        VocabBridge(inner, [b"a", "b"], [b"a"])
    with pytest.raises(ValueError, match="target_vocab is empty"):
        VocabBridge(inner, [b"a"], [])
    with pytest.raises(TypeError, match="start"):
        VocabBridge(object(), [b"a"], [b"a"])
    with pytest.raises(ValueError, match="drafter takes ids below 10"):
        VocabBridge(SuffixDrafter(vocab_size=10), [b"a"] * 11, [b"a"])
    session = VocabBridge(inner, [b"a", b" "], [b"a", b" "]).start([0, 1, 0])
    with pytest.raises(ValueError, match=r"tokens\[0\] = 2 is outside the vocabulary \[0, 2\)"):
        session.extend([2])
    inner.tree = TokenTree([0, 5], [-1, 0], [1.0, 0.5])
    with pytest.raises(ValueError, match="drafter proposed token 5, outside its vocabulary of 2"):
        session.draft(4)
    inner.tree = "not a tree"
    with pytest.raises(TypeError, match="the drafter's tree must be a ragkernels.spec.TokenTree"):
        session.draft(4)
    with pytest.raises(ValueError, match="max_nodes"):
        session.draft(-1)


def test_token_bytes_refuses_wordpiece():
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    tok.decoder = tokenizers.decoders.WordPiece()
    with pytest.raises(ValueError, match="neither byte-level BPE nor SentencePiece"):
        token_bytes(transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]"))
    with pytest.raises(TypeError, match="fast Hugging Face tokenizer"):
        token_bytes(object())
