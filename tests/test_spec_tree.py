"""ragkernels.spec token trees against the Python reference: merge, masks,
positions, greedy and sampling verification (exact draws and the exact output
distribution), edge cases and bad input."""
import random

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.spec import TokenTree
from tests.reference import spec as ref


def random_tree(rng, n, vocab, root=None, decay=True):
    """A random tree of n nodes: distinct sibling tokens, weights that never grow."""
    tokens, parents, weights = [rng.randrange(vocab) if root is None else root], [-1], [1.0]
    used = {0: set()}
    for i in range(1, n):
        for _ in range(20):
            p = rng.randrange(i)
            free = [t for t in range(vocab) if t not in used[p]]
            if free:
                break
        else:
            break
        t = rng.choice(free)
        used[p].add(t)
        used[len(tokens)] = set()
        tokens.append(t)
        parents.append(p)
        w = weights[p] * (rng.choice([0.25, 0.5, 0.5, 0.75, 1.0]) if decay else 1.0)
        weights.append(float(np.float32(w)))
    return tokens, parents, weights


def make(tree):
    return TokenTree(*tree)


def as_lists(tree):
    return tree.tokens.tolist(), tree.parents.tolist(), tree.weights.tolist()


# ---- the object -------------------------------------------------------------


def test_arrays_are_zero_copy_read_only_views():
    tree = TokenTree([7, 1, 2, 3], [-1, 0, 0, 1], [1, 0.5, 0.25, 0.25])
    tokens = tree.tokens
    assert tokens.dtype == np.int32 and tree.parents.dtype == np.int32 and tree.weights.dtype == np.float32
    assert not tokens.flags.writeable
    assert np.shares_memory(tokens, tree.tokens)  # the same buffer each time, no copy
    del tree
    assert tokens.tolist() == [7, 1, 2, 3]  # the view keeps its tree alive
    assert len(TokenTree([7, 1], [-1, 0])) == 2 and TokenTree([7, 1], [-1, 0]).draft_size == 1


def test_root_only_tree():
    tree = TokenTree([5], [-1])
    assert len(tree) == 1 and tree.draft_size == 0
    assert tree.attention_mask(3).tolist() == [[0, 0, 0, 0]]
    assert tree.position_ids(3).tolist() == [3]
    nodes, tokens = rk.spec.verify_greedy(tree, [9])
    assert nodes.tolist() == [0] and tokens.tolist() == [9]


@pytest.mark.parametrize("seed", range(30))
def test_masks_and_positions_equal_reference(seed):
    rng = random.Random(seed)
    tokens, parents, weights = random_tree(rng, rng.randrange(1, 40), rng.choice([2, 5, 50]))
    tree = TokenTree(tokens, parents, weights)
    past = rng.choice([0, 1, 17])
    expected = ref.attention_mask(parents, past)
    for dtype in (np.float32, np.float64, np.float16):
        mask = tree.attention_mask(past, dtype)
        assert mask.dtype == dtype and mask.shape == (len(tokens), past + len(tokens))
        low = np.finfo(dtype).min
        assert np.array_equal(mask == 0, expected == 0)
        assert np.all(mask[mask != 0] == low)  # finite: -inf would give NaN rows in softmax
    assert np.array_equal(tree.attention_mask(past, bool), expected == 0)
    assert tree.position_ids(past).tolist() == [past + d for d in ref.depths(parents)]
    assert tree.depths.tolist() == ref.depths(parents)


def test_mask_of_a_chain_is_causal():
    tree = TokenTree([1, 2, 3, 4], [-1, 0, 1, 2])
    assert np.array_equal(tree.attention_mask(2, bool), np.tril(np.ones((4, 6), bool), k=2))


# ---- merge -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_merge_equals_reference(seed):
    rng = random.Random(seed)
    vocab = rng.choice([2, 3, 8, 100])
    trees = [random_tree(rng, rng.randrange(1, 25), vocab, root=4) for _ in range(rng.randrange(1, 4))]
    for budget in (0, 1, 3, 10, 1000):
        merged = rk.spec.merge([make(t) for t in trees], budget)
        assert as_lists(merged) == ref.merge(trees, budget)
        assert merged.draft_size <= budget


def test_merge_shares_prefixes_and_keeps_the_best_weight():
    a = TokenTree([9, 1, 2], [-1, 0, 1], [1, 0.5, 0.4])
    b = TokenTree([9, 1, 3], [-1, 0, 1], [1, 0.8, 0.1])
    merged = rk.spec.merge([a, b], 10)
    assert merged.tokens.tolist() == [9, 1, 2, 3]
    assert merged.parents.tolist() == [-1, 0, 1, 1]
    assert merged.weights.tolist() == pytest.approx([1, 0.8, 0.4, 0.1])
    chain = TokenTree([9, 5, 6, 7], [-1, 0, 1, 2], [1, 0.9, 0.8, 0.7])
    assert rk.spec.merge([chain], 2).tokens.tolist() == [9, 5, 6]  # a chain keeps its order


def test_merge_refuses_different_roots_and_bad_arguments():
    a, b = TokenTree([1], [-1]), TokenTree([2], [-1])
    with pytest.raises(ValueError, match=r"merge: trees\[1\] has root token 2, trees\[0\] has 1"):
        rk.spec.merge([a, b], 4)
    with pytest.raises(ValueError, match="trees is empty"):
        rk.spec.merge([], 4)
    with pytest.raises(ValueError, match=r"budget must be an int in \[0"):
        rk.spec.merge([a], -1)
    with pytest.raises(TypeError, match=r"trees\[0\] must be a ragkernels.spec.TokenTree"):
        rk.spec.merge([[1]], 4)
    with pytest.raises(TypeError, match="got one TokenTree"):
        rk.spec.merge(a, 4)


# ---- greedy verification ----------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_verify_greedy_equals_reference(seed):
    rng = random.Random(seed)
    vocab = rng.choice([1, 2, 4, 30])
    tokens, parents, weights = random_tree(rng, rng.randrange(1, 30), vocab)
    tree = TokenTree(tokens, parents, weights)
    for _ in range(10):
        # Argmax mostly following some child, so paths go deep.
        argmax = []
        for u in range(len(tokens)):
            kids = ref.children_of(parents, u)
            argmax.append(tokens[rng.choice(kids)] if kids and rng.random() < 0.8 else rng.randrange(vocab + 2))
        nodes, out = rk.spec.verify_greedy(tree, np.array(argmax))
        exp_nodes, exp_out = ref.verify_greedy(tokens, parents, argmax)
        assert nodes.tolist() == exp_nodes and out.tolist() == exp_out
        assert out.tolist()[:-1] == [tokens[i] for i in nodes.tolist()[1:]]


def test_verify_greedy_takes_torch_tensors_and_checks_argmax():
    torch = pytest.importorskip("torch")
    tree = TokenTree([7, 1, 2], [-1, 0, 1])
    nodes, tokens = rk.spec.verify_greedy(tree, torch.tensor([1, 2, 5]))
    assert nodes.tolist() == [0, 1, 2] and tokens.tolist() == [1, 2, 5]
    with pytest.raises(ValueError, match=r"argmax must have one entry per tree node \(3\), got 2"):
        rk.spec.verify_greedy(tree, [1, 2])
    with pytest.raises(ValueError, match=r"argmax\[0\] must be a token id >= 0, got -1"):
        rk.spec.verify_greedy(tree, [-1, 0, 0])
    with pytest.raises(TypeError, match="argmax must hold integers, got float"):
        rk.spec.verify_greedy(tree, np.zeros(3))
    with pytest.raises(TypeError, match="tree must be a ragkernels.spec.TokenTree"):
        rk.spec.verify_greedy([7, 1], [0, 0])


# ---- sampling verification ----------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_verify_sampling_equals_reference_draw_for_draw(seed):
    rng = random.Random(seed)
    vocab = rng.choice([1, 2, 3, 6, 40])
    tokens, parents, weights = random_tree(rng, rng.randrange(1, 25), vocab)
    tree = TokenTree(tokens, parents, weights)
    np_rng = np.random.default_rng(seed)
    probs = np_rng.random((len(tokens), vocab)).astype(np.float32) ** 3
    probs[np_rng.random(probs.shape) < 0.3] = 0  # zeros, including on drafted tokens
    probs[:, 0] += 0.01  # every row keeps some mass
    for s in range(20):
        nodes, out = rk.spec.verify_sampling(tree, probs, s * 7919 + seed)
        exp_nodes, exp_out = ref.verify_sampling(tokens, parents, probs, s * 7919 + seed)
        assert nodes.tolist() == exp_nodes and out.tolist() == exp_out


def test_verify_sampling_keeps_the_target_distribution_exactly_and_empirically():
    # One node with three drafted children on a 5-token vocabulary: the first
    # emitted token must be distributed as p, whatever the draft.
    p = np.array([0.1, 0.4, 0.05, 0.3, 0.15], np.float32)
    tree = TokenTree([0, 3, 1, 4], [-1, 0, 0, 0], [1, 0.9, 0.5, 0.2])
    probs = np.tile(p, (4, 1))
    exact = ref.sequential_distribution(tree.tokens.tolist(), tree.parents.tolist(), probs)
    np.testing.assert_allclose(exact, p / p.sum(), rtol=1e-6)
    n = 40000
    counts = np.zeros(5)
    for s in range(n):
        counts[rk.spec.verify_sampling(tree, probs, s).tokens[0]] += 1
    expected = n * p / p.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 23.5  # chi-square, 4 degrees of freedom: exceeded with probability 1e-4


def test_verify_sampling_with_the_whole_mass_on_drafted_tokens():
    # Only drafted tokens have mass: a child must be accepted, never an error.
    tree = TokenTree([0, 1, 2], [-1, 0, 0])
    probs = np.array([[0, 0.5, 0.5], [1, 0, 0], [1, 0, 0]], np.float32)
    for s in range(200):
        nodes, tokens = rk.spec.verify_sampling(tree, probs, s)
        assert tokens[0] in (1, 2) and len(nodes) == 2


def test_verify_sampling_one_token_vocabulary_accepts_the_whole_chain():
    tree = TokenTree([0, 0, 0, 0], [-1, 0, 1, 2])
    nodes, tokens = rk.spec.verify_sampling(tree, np.ones((4, 1), np.float32), 1)
    assert nodes.tolist() == [0, 1, 2, 3] and tokens.tolist() == [0, 0, 0, 0]


def test_verify_sampling_refuses_bad_probs():
    tree = TokenTree([0, 1], [-1, 0])
    with pytest.raises(ValueError, match=r"probs must have one row per tree node \(2\), got 1"):
        rk.spec.verify_sampling(tree, np.ones((1, 3), np.float32), 0)
    with pytest.raises(TypeError, match="probs must be float32"):
        rk.spec.verify_sampling(tree, np.ones((2, 3)), 0)
    bad = np.ones((2, 3), np.float32)
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match=r"probs\[0, 2\] must be finite and >= 0, got nan"):
        rk.spec.verify_sampling(tree, bad, 0)
    with pytest.raises(ValueError, match=r"probs\[0\] sums to 0"):
        rk.spec.verify_sampling(tree, np.zeros((2, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 18446744073709551615\]"):
        rk.spec.verify_sampling(tree, np.ones((2, 3), np.float32), -1)


# ---- bad trees -----------------------------------------------------------------


@pytest.mark.parametrize(
    "tokens, parents, weights, message",
    [
        ([], [], [], r"a token tree has at least its root"),
        ([1, 2], [-1], [1, 1], r"tokens, parents and weights must have the same length, got 2, 1 and 2"),
        ([1, 2], [0, 0], [1, 1], r"parents\[0\] must be -1"),
        ([1, 2], [-1, 1], [1, 1], r"parents\[1\] must be in \[0, 1\)"),
        ([1, 2, 3], [-1, 2, 0], [1, 1, 1], r"parents\[1\] must be in \[0, 1\)"),
        ([1, -2], [-1, 0], [1, 1], r"tokens\[1\] must be >= 0, got -2"),
        ([1, 2], [-1, 0], [0.5, 0.5], r"weights\[0\] \(the root's\) must be 1"),
        ([1, 2], [-1, 0], [1, float("nan")], r"weights\[1\] must be in \[0, 1\], got nan"),
        ([1, 2], [-1, 0], [1, 1.5], r"weights\[1\] must be in \[0, 1\], got 1.5"),
        ([1, 2, 3], [-1, 0, 1], [1, 0.5, 0.7], r"weights\[2\] = 0.7 is above its parent's"),
        ([1, 2, 2], [-1, 0, 0], [1, 1, 1], r"node 0 has two children with token 2"),
    ],
)
def test_bad_trees_are_refused_naming_the_field(tokens, parents, weights, message):
    with pytest.raises(ValueError, match=message):
        TokenTree(tokens, parents, weights)


def test_tree_arguments_refuse_silent_casts():
    with pytest.raises(ValueError, match=r"tokens\[1\] = 2147483648 does not fit int32"):
        TokenTree([1, 2**31], [-1, 0])
    with pytest.raises(TypeError, match="tokens must hold integers, got float64"):
        TokenTree([1.0, 2.0], [-1, 0])
    with pytest.raises(ValueError, match=r"tokens must be 1-D, got shape \(1, 2\)"):
        TokenTree([[1, 2]], [-1, 0])
    assert TokenTree([2**31 - 1, 0], [-1, 0]).tokens.tolist() == [2**31 - 1, 0]  # huge ids
    tree = TokenTree([1, 2], [-1, 0])
    with pytest.raises(ValueError, match=r"past_length must be an int in \[0"):
        tree.attention_mask(-1)
    with pytest.raises(TypeError, match="dtype must be float32, float64, float16 or bool, got int32"):
        tree.attention_mask(0, np.int32)
