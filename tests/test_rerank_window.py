"""ragkernels.rerank.sliding_windows / sliding_window_order against the
plain-Python reference: schedules, random steps with ties and NaN, the
whole loop, threads, and bad input."""
import numpy as np
import pytest

import ragkernels as rk
from tests.reference import listwise as ref


def random_orders(rng, lengths, width=None):
    """-1-padded random permutations, one row per length."""
    width = max(lengths, default=0) if width is None else width
    orders = np.full((len(lengths), width), -1, np.int64)
    for q, n in enumerate(lengths):
        orders[q, :n] = rng.permutation(n)
    return orders


def random_windows(rng, lengths, max_width):
    windows = np.zeros((len(lengths), 2), np.int64)
    for q, n in enumerate(lengths):
        start = int(rng.integers(0, n + 1))
        windows[q] = start, start + int(rng.integers(0, min(max_width, n - start) + 1))
    return windows


def random_scores(rng, shape, kind):
    if kind == "ties":
        return rng.integers(0, 3, size=shape).astype(np.float32)
    scores = rng.normal(size=shape)
    if kind == "nan":
        scores[rng.random(shape) < 0.3] = np.nan
        scores[rng.random(shape) < 0.1] = np.inf
        scores[rng.random(shape) < 0.1] = -np.inf
    return scores.astype(np.float32 if kind == "plain32" else np.float64)


# ---- schedule ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 5, 9, 10, 11, 19, 20, 21, 37, 100, 101])
@pytest.mark.parametrize("window,stride", [(1, 1), (3, 1), (4, 4), (10, 4), (20, 10), (20, 20), (7, 3)])
def test_sliding_windows_matches_reference(n, window, stride):
    got = rk.rerank.sliding_windows(n, window=window, stride=stride)
    assert got.dtype == np.int64 and got.shape == (len(ref.sliding_windows_ref(n, window, stride)), 2)
    assert [tuple(w) for w in got.tolist()] == ref.sliding_windows_ref(n, window, stride)
    # Every item is seen by a window; the last window starts at the top.
    covered = set()
    for start, end in got.tolist():
        covered.update(range(start, end))
        assert 0 < end - start <= window
    assert covered == set(range(n))
    if n:
        assert got[-1, 0] == 0


@pytest.mark.parametrize("n", range(0, 45))
@pytest.mark.parametrize("window,stride", [(10, 4), (20, 10), (5, 5), (6, 1)])
def test_sliding_windows_is_rankllms_schedule(n, window, stride):
    got = [tuple(w) for w in rk.rerank.sliding_windows(n, window, stride).tolist()]
    if n == window - stride and n > 0:  # RankLLM processes no window at all there (documented)
        assert ref.rankllm_sliding_windows(n, window, stride) == [] and got == [(0, n)]
    else:
        assert got == ref.rankllm_sliding_windows(n, window, stride)


def test_sliding_windows_batched():
    lengths = [3, 25, 0, 37, 1]
    got = rk.rerank.sliding_windows(np.array(lengths), window=10, stride=4)
    per_query = [ref.sliding_windows_ref(n, 10, 4) for n in lengths]
    assert got.shape == (max(len(w) for w in per_query), len(lengths), 2)
    for q, windows in enumerate(per_query):
        expected = windows + [(0, 0)] * (got.shape[0] - len(windows))
        assert [tuple(w) for w in got[:, q].tolist()] == expected
    assert rk.rerank.sliding_windows([], 10, 4).shape == (0, 0, 2)
    assert rk.rerank.sliding_windows([0, 0], 10, 4).shape == (0, 2, 2)
    np.testing.assert_array_equal(rk.rerank.sliding_windows(np.array([5], np.int32), 3, 2),
                                  rk.rerank.sliding_windows([5], 3, 2))


@pytest.mark.parametrize("kwargs,match", [
    ({"n": -1, "window": 4, "stride": 2}, "n must be >= 0"),
    ({"n": 5, "window": 0, "stride": 1}, "window must be >= 1"),
    ({"n": 5, "window": 4, "stride": 0}, "stride must be >= 1"),
    ({"n": 5, "window": 4, "stride": 5}, "stride must be <= window"),
    ({"n": [3, -1], "window": 4, "stride": 2}, r"n\[1\] must be >= 0"),
])
def test_sliding_windows_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rk.rerank.sliding_windows(**kwargs)


@pytest.mark.parametrize("bad", [{"n": 5.0}, {"n": [1.5, 2.0]}, {"window": 2.5}, {"stride": True}])
def test_sliding_windows_rejects_non_integers(bad):
    args = {"n": 5, "window": 4, "stride": 2, **bad}
    with pytest.raises(TypeError, match="sliding_windows"):
        rk.rerank.sliding_windows(**args)


# ---- one step --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["plain32", "plain64", "ties", "nan"])
@pytest.mark.parametrize("n_queries,max_len,width", [(1, 1, 1), (13, 37, 10), (7, 5, 9), (40, 20, 20)])
def test_sliding_window_order_matches_reference(kind, n_queries, max_len, width):
    rng = np.random.default_rng(n_queries * 100 + max_len)
    lengths = rng.integers(0, max_len + 1, size=n_queries).tolist()
    lengths[0] = max_len  # at least one full row
    orders = random_orders(rng, lengths)
    windows = random_windows(rng, lengths, width)
    scores = random_scores(rng, (n_queries, width), kind)
    before = orders.copy()
    got = rk.rerank.sliding_window_order(orders, windows, scores)
    np.testing.assert_array_equal(orders, before)  # input untouched
    assert got.dtype == np.int64 and got.shape == orders.shape and got.flags.c_contiguous
    assert got.tolist() == ref.sliding_window_order_ref(orders.tolist(), windows.tolist(), scores.tolist())


def test_sliding_window_order_edge_shapes():
    # window == n, an empty list, and a window of one item.
    order = np.array([2, 0, 1])
    assert rk.rerank.sliding_window_order(order, (0, 3), np.array([0.0, 5.0, 1.0])).tolist() == [0, 1, 2]
    empty = np.zeros((1, 0), np.int64)
    assert rk.rerank.sliding_window_order(empty, [[0, 0]], np.zeros((1, 0))).shape == (1, 0)
    none = np.zeros((0, 4), np.int64)
    assert rk.rerank.sliding_window_order(none, np.zeros((0, 2), np.int64), np.zeros((0, 3))).shape == (0, 4)
    assert rk.rerank.sliding_window_order(np.array([0]), (0, 1), np.array([np.nan])).tolist() == [0]
    # Scores wider than the window: the extra columns are ignored.
    got = rk.rerank.sliding_window_order(np.array([0, 1, 2]), (1, 3), np.array([1.0, 2.0, 99.0, -5.0]))
    assert got.tolist() == [0, 2, 1]


def test_sliding_window_order_all_ties_and_all_nan_keep_order():
    order = np.array([[4, 2, 0, 1, 3]])
    for value in (0.0, np.nan, np.inf):
        got = rk.rerank.sliding_window_order(order, [[0, 5]], np.full((1, 5), value))
        np.testing.assert_array_equal(got, order)


def test_sliding_window_order_views_and_other_integer_types():
    rng = np.random.default_rng(3)
    base = random_orders(rng, [9] * 8, width=9)
    big = np.zeros((8, 20), np.int64)
    big[:, ::2][:, :9] = base
    sliced = big[:, ::2][:, :9]  # non-contiguous view
    windows = np.tile([2, 7], (8, 1))
    scores = np.asfortranarray(rng.normal(size=(8, 5)).astype(np.float32))
    expected = rk.rerank.sliding_window_order(base, windows, np.ascontiguousarray(scores))
    np.testing.assert_array_equal(rk.rerank.sliding_window_order(sliced, windows, scores), expected)
    np.testing.assert_array_equal(
        rk.rerank.sliding_window_order(base.astype(np.int32), windows.astype(np.uint8), scores), expected)


def test_sliding_window_order_torch_tensors():
    torch = pytest.importorskip("torch")
    orders = torch.tensor([[2, 0, 1, -1]])
    scores = torch.tensor([[0.5, 2.0]], dtype=torch.float32)
    got = rk.rerank.sliding_window_order(orders, torch.tensor([[1, 3]]), scores)
    assert isinstance(got, np.ndarray) and got.tolist() == [[2, 1, 0, -1]]


def test_sliding_window_order_whole_loop_matches_reference():
    rng = np.random.default_rng(17)
    n, window, stride = 37, 10, 4
    item_scores = rng.integers(0, 6, size=n).astype(np.float64)
    item_scores[rng.random(n) < 0.15] = np.nan

    def scorer(items):
        return [item_scores[i] for i in items]

    order = np.arange(n)
    for start, end in rk.rerank.sliding_windows(n, window, stride):
        scores = np.asarray(scorer(order[start:end]))
        order = rk.rerank.sliding_window_order(order, (start, end), scores)
    assert order.tolist() == ref.sliding_window_rerank_ref(n, window, stride, scorer)


def test_sliding_window_order_batched_loop_matches_per_query_loops():
    rng = np.random.default_rng(23)
    lengths = [37, 5, 0, 20, 1, 21]
    window, stride = 10, 4
    item_scores = [rng.normal(size=n) for n in lengths]
    orders = random_orders(rng, lengths)
    orders[orders >= 0] = -1
    for q, n in enumerate(lengths):
        orders[q, :n] = np.arange(n)
    for step in rk.rerank.sliding_windows(lengths, window, stride):
        scores = np.full((len(lengths), window), np.nan)
        for q, (start, end) in enumerate(step):
            scores[q, :end - start] = item_scores[q][orders[q, start:end]]
        orders = rk.rerank.sliding_window_order(orders, step, scores)
    for q, n in enumerate(lengths):
        expected = ref.sliding_window_rerank_ref(n, window, stride, lambda items: item_scores[q][items])
        assert orders[q, :n].tolist() == expected and (orders[q, n:] == -1).all()


def test_sliding_window_order_same_on_any_thread_count():
    rng = np.random.default_rng(29)
    lengths = rng.integers(0, 60, size=999).tolist()
    orders = random_orders(rng, lengths)
    windows = random_windows(rng, lengths, 20)
    scores = random_scores(rng, (999, 20), "ties")
    saved = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = rk.rerank.sliding_window_order(orders, windows, scores)
        rk.set_num_threads(4)
        four = rk.rerank.sliding_window_order(orders, windows, scores)
    finally:
        rk.set_num_threads(saved)
    np.testing.assert_array_equal(one, four)


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("orders,windows,width,match", [
    ([[0, 0, 1]], [[0, 1]], 3, r"orders\[0\] must be a permutation; orders\[0, 1\] = 0 repeats orders\[0, 0\]"),
    ([[0, 3, 1]], [[0, 1]], 3, r"orders\[0, 1\] = 3 is out of range \[0, 3\)"),
    ([[2**62, 0]], [[0, 1]], 3, r"orders\[0, 0\] = 4611686018427387904 is out of range \[0, 2\)"),
    ([[0, 1], [1, -2]], [[0, 1], [0, 1]], 3, r"orders\[1, 1\] = -2 is negative; only -1 pads"),
    ([[0, -1, 1]], [[0, 1]], 3, r"orders\[0, 2\] = 1 must be -1: it follows the pad at column 1"),
    ([[0, 1, -1]], [[0, 3]], 3, r"windows\[0\] = \(0, 3\) must satisfy 0 <= start <= end <= 2"),
    ([[2, 1, 0]], [[2, 1]], 3, r"windows\[0\] = \(2, 1\)"),
    ([[2, 1, 0]], [[-1, 1]], 3, r"windows\[0\] = \(-1, 1\)"),
    ([[2, 1, 0]], [[0, 3]], 2, r"windows\[0\] = \(0, 3\) spans 3 items but scores has 2 columns"),
    ([[2, 1, 0]], [[0, 3], [0, 1]], 3, r"windows must have shape \(1, 2\)"),
    ([[2, 1, 0]], [[0, 3, 1]], 3, r"windows must have shape \(1, 2\)"),
])
def test_sliding_window_order_rejects_bad_values(orders, windows, width, match):
    orders = np.array(orders, np.int64)
    with pytest.raises(ValueError, match=match):
        rk.rerank.sliding_window_order(orders, np.array(windows), np.zeros((len(orders), width)))


def test_sliding_window_order_rejects_bad_types_and_shapes():
    order = np.array([[1, 0]])
    with pytest.raises(TypeError, match="orders must hold integers"):
        rk.rerank.sliding_window_order(order.astype(np.float64), [[0, 2]], np.zeros((1, 2)))
    with pytest.raises(TypeError, match="windows must hold integers"):
        rk.rerank.sliding_window_order(order, [[0.0, 2.0]], np.zeros((1, 2)))
    with pytest.raises(TypeError, match="scores must be float32 or float64, got float16"):
        rk.rerank.sliding_window_order(order, [[0, 2]], np.zeros((1, 2), np.float16))
    with pytest.raises(TypeError, match="scores must be float32 or float64, got int64"):
        rk.rerank.sliding_window_order(order, [[0, 2]], np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="scores must have one row per order"):
        rk.rerank.sliding_window_order(order, [[0, 2]], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="scores must be 2-D"):
        rk.rerank.sliding_window_order(order, [[0, 2]], np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match="orders must be 2-D"):
        rk.rerank.sliding_window_order(np.zeros((1, 2, 2), np.int64), [[0, 2]], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="with 1-D orders, windows must be one"):
        rk.rerank.sliding_window_order(np.array([1, 0]), [[0, 2]], np.zeros(2))
    with pytest.raises(ValueError, match="holds values past int64"):
        rk.rerank.sliding_window_order(np.array([[2**63]], np.uint64), [[0, 1]], np.zeros((1, 1)))
