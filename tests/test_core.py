import numpy as np
import pytest

import ragkernels as rk
from tests.reference.core import topk_ref


def assert_topk_equal(scores, k):
    ids, top = rk.topk(scores, k)
    ref_ids, ref_top = topk_ref(scores, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(top, ref_top)
    assert ids.dtype == np.int64 and top.dtype == scores.dtype
    return ids, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n,k", [(1, 1, 1), (3, 10, 3), (19, 111, 7), (5, 1000, 10), (4, 1000, 900),
                                      (2, 5, 9), (7, 4096, 1)])
def test_topk_matches_reference(dtype, rows, n, k):
    rng = np.random.default_rng(rows * 1000 + n + k)
    assert_topk_equal(rng.standard_normal((rows, n)).astype(dtype), k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_ties_nan_inf_and_signed_zero(dtype):
    row = np.array([[1.0, np.nan, 3.0, 3.0, -0.0, 0.0, -np.inf, 2.0, np.inf, np.nan]], dtype)
    ids, top = assert_topk_equal(row, 12)
    assert ids[0].tolist() == [8, 2, 3, 7, 0, 4, 5, 6, 1, 9, -1, -1]


@pytest.mark.parametrize("k", [1, 130, 200, 700, 2000])
def test_topk_dense_selection_with_ties_sorted_rows_and_nan(k):
    # k >= n / 16 takes the sampled-bar path; ties, sorted rows and NaN make
    # its estimate miss, which must fall back to the rising bar unchanged.
    rng = np.random.default_rng(k)
    rows = [rng.integers(0, 3, 2000), np.arange(2000), np.arange(2000)[::-1], rng.standard_normal(2000)]
    sampled_only = np.zeros(2000)
    sampled_only[np.arange(128) * 2000 // 128] = 1.0  # exactly where the sample looks
    rows.append(sampled_only)
    scores = np.array(rows, np.float64)
    scores[3, ::7] = np.nan
    assert_topk_equal(scores, k)
    assert_topk_equal(scores.astype(np.float32), k)


def test_topk_many_ties_long_row():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(6, 5000)).astype(np.float32)
    assert_topk_equal(scores, 50)


def test_topk_sliced_views_read_in_place():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((40, 300))
    assert_topk_equal(base[::3, 1::2], 5)
    assert_topk_equal(base.T, 4)


def test_topk_empty_inputs():
    ids, top = rk.topk(np.zeros((0, 5), np.float32), 3)
    assert ids.shape == (0, 3) and top.shape == (0, 3)
    ids, top = rk.topk(np.zeros((2, 0), np.float32), 2)
    assert (ids == -1).all() and np.isneginf(top).all()


def test_topk_identical_for_any_thread_count():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 50, size=(257, 700)).astype(np.float32)
    before = rk.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3, 8):
            rk.set_num_threads(threads)
            results.append(rk.topk(scores, 20))
    finally:
        rk.set_num_threads(before)
    for ids, top in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(top, results[0][1])


def test_topk_accepts_dlpack_tensors():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[0.1, 0.9, 0.5]], dtype=torch.float32)
    ids, top = rk.topk(t, 2)
    assert ids.tolist() == [[1, 2]]


@pytest.mark.parametrize("bad,k,err,match", [
    (np.zeros((2, 3), np.int32), 1, TypeError, "float32 or float64, got int32 with shape \\(2, 3\\)"),
    (np.zeros((2, 3), np.float16), 1, TypeError, "float16"),
    (np.zeros(3, np.float32), 1, ValueError, "scores must be 2-D, got float32 with shape \\(3,\\)"),
    (np.zeros((2, 3), np.float32), 0, ValueError, r"topk: k must be an int in \[1, 2\*\*63 - 1\], got 0"),
    (np.zeros((2, 3), np.float32), -5, ValueError, r"k must be an int in \[1, 2\*\*63 - 1\], got -5"),
    (np.zeros((2, 3), np.float32), 2**70, ValueError, r"topk: k must be an int in \[1, 2\*\*63 - 1\]"),
    (np.zeros((2, 3), np.float32), 2.0, TypeError, "topk: k must be an int, got float"),
    ([[1.0, 2.0]], 1, TypeError, "numpy array or a DLPack tensor, got list"),
])
def test_topk_bad_input_raises_clear_error(bad, k, err, match):
    with pytest.raises(err, match=match):
        rk.topk(bad, k)


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 1024\], got 0"):
        rk.set_num_threads(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [3, 600])
def test_topk_long_rows_mostly_nan(dtype, k):
    # The bar of the selection becomes NaN for k=600: no block may be skipped.
    rng = np.random.default_rng(k)
    scores = rng.standard_normal((3, 5000)).astype(dtype)
    scores[rng.random(scores.shape) < 0.9] = np.nan
    scores[:, 4000:4010] = np.inf
    assert_topk_equal(scores, k)


def test_progress_bar_draws_the_final_line_once_even_after_a_slow_step(capsys):
    import time

    from tqdm.auto import tqdm

    from ragkernels._progress import ProgressBar

    def final_lines(make):
        with make() as bar:
            bar.update(1)
            time.sleep(0.15)  # longer than tqdm's refresh interval: update() would draw
            bar.update(2)
        err = capsys.readouterr().err.replace("\r", "\n")
        return sum("100%" in line for line in err.splitlines())

    assert final_lines(lambda: tqdm(total=3)) == 2  # the issue-14 symptom, in plain tqdm
    assert final_lines(lambda: ProgressBar(3, True)) == 1
