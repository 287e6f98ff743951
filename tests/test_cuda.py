"""CUDA ops against their CPU oracle; skipped where no GPU is present."""
import numpy as np
import pytest

import ragkernels as rk
from ragkernels import _backend

pytestmark = pytest.mark.cuda
torch = pytest.importorskip("torch")
if not (_backend.cuda_available() and torch.cuda.is_available()):
    pytest.skip("no CUDA GPU or ragkernels built without CUDA", allow_module_level=True)


@pytest.mark.parametrize("rows,n,k", [(1, 1, 1), (19, 111, 7), (64, 5000, 100), (3, 5, 9)])
def test_topk_cuda_matches_cpu(rows, n, k):
    rng = np.random.default_rng(rows + n + k)
    scores = rng.integers(0, 20, size=(rows, n)).astype(np.float32)
    scores[0, 0] = np.nan
    ids, top = rk.topk(torch.from_numpy(scores).cuda(), k)
    assert ids.is_cuda and ids.dtype == torch.int64
    cpu_ids, cpu_top = rk.topk(scores, k)
    np.testing.assert_array_equal(ids.cpu().numpy(), cpu_ids)
    np.testing.assert_array_equal(top.cpu().numpy(), cpu_top)


def test_topk_cuda_rejects_float64():
    with pytest.raises(TypeError, match="float32"):
        rk.topk(torch.zeros((2, 3), dtype=torch.float64, device="cuda"), 1)


# ------------------------------------------------------------ dense ------
# ragkernels._cuda.dense_search (cuda/dense/flat_search.cu) against the
# float64 numpy oracle of tests/reference/dense.py and, where it is built,
# the CPU rk.dense.FlatIndex: every metric and storage, both paths (fused
# scan, cuBLAS GEMM + top-k), k = 1, k > n, k = 5,000, one query and 300,
# ties, zero vectors under cosine, bad inputs.
from torch.utils.dlpack import from_dlpack  # noqa: E402

from ragkernels import _cuda  # noqa: E402
from tests.reference.dense import quantize_int8_ref, scores_ref, stored_vectors_ref  # noqa: E402

METRICS = ["ip", "cosine", "l2"]
STORAGES = ["float32", "float16", "int8"]
PATHS = [False] + ([True] if _cuda.dense_gemm_available() else [])


def stored_on_gpu(docs, dtype):
    """(CUDA docs tensor, CUDA int8 scales or None) as a FlatIndex stores them."""
    if dtype == "int8":
        codes, scales = quantize_int8_ref(docs)
        return torch.from_numpy(codes).cuda(), torch.from_numpy(scales).cuda()
    return torch.from_numpy(np.asarray(docs, np.float32).astype(dtype)).cuda(), None


def gpu_search(queries, docs, k, metric="ip", dtype="float32", use_gemm=False):
    stored, scales = stored_on_gpu(docs, dtype)
    row_scale, row_offset = _cuda.dense_row_terms(stored, metric, scales)
    wrap = (lambda c: None if c is None else from_dlpack(c))
    ids, scores = _cuda.dense_search(torch.from_numpy(queries).cuda(), stored, k, metric,
                                     wrap(row_scale), wrap(row_offset), use_gemm=use_gemm)
    ids, scores = from_dlpack(ids), from_dlpack(scores)
    assert ids.is_cuda and ids.dtype == torch.int64 and scores.dtype == torch.float32
    assert ids.shape == scores.shape == (queries.shape[0], k)
    return ids.cpu().numpy(), scores.cpu().numpy()


def oracle(queries, docs, k, metric, dtype):
    """Top-k of the float64 reference scores: (ids, scores), -1 / -inf padded."""
    s = scores_ref(stored_vectors_ref(docs, dtype), queries, metric)
    nq, n = s.shape
    order = np.lexsort((np.broadcast_to(np.arange(n), s.shape), -s), axis=1)[:, :k]
    ids = np.full((nq, k), -1, np.int64)
    top = np.full((nq, k), -np.inf)
    ids[:, :order.shape[1]] = order
    top[:, :order.shape[1]] = np.take_along_axis(s, order, axis=1)
    return ids, top, s


def assert_matches_oracle(ids, scores, queries, docs, k, metric, dtype):
    """A valid top-k up to float32 rounding: the scores are the oracle's
    sorted top-k scores, and each id's oracle score is the score reported
    beside it. (Ids may then differ only among near-ties; exact tie order is
    tested on integer data, where every score is exact.)"""
    ref_ids, ref_top, full = oracle(queries, docs, k, metric, dtype)
    tol = 2e-5 * max(1.0, float(np.abs(full).max()))
    np.testing.assert_allclose(scores, ref_top, atol=tol, rtol=0)
    np.testing.assert_array_equal(ids == -1, ref_ids == -1)
    for q in range(ids.shape[0]):
        got = ids[q][ids[q] >= 0]
        assert len(set(got.tolist())) == len(got)
        assert (np.diff(scores[q, :len(got)]) <= 0).all(), "best first"
        np.testing.assert_allclose(full[q, got], scores[q, :len(got)], atol=tol, rtol=0)


@pytest.mark.parametrize("use_gemm", PATHS, ids=lambda g: "gemm" if g else "scan")
@pytest.mark.parametrize("dtype", STORAGES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq,n,dim,k", [(1, 5000, 48, 10), (300, 4099, 37, 20), (7, 3, 16, 5)])
def test_dense_search_matches_oracle(metric, dtype, use_gemm, nq, n, dim, k):
    rng = np.random.default_rng(nq + n + dim)
    docs = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((nq, dim)).astype(np.float32)
    ids, scores = gpu_search(queries, docs, k, metric, dtype, use_gemm)
    assert_matches_oracle(ids, scores, queries, docs, k, metric, dtype)


@pytest.mark.parametrize("use_gemm", PATHS, ids=lambda g: "gemm" if g else "scan")
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_dense_search_ties_go_to_the_lower_id_exactly(metric, use_gemm):
    # Small integers: every dot, norm and score is exact in float32, so ids
    # and scores must equal the oracle's exactly, ties included.
    rng = np.random.default_rng(11)
    docs = rng.integers(-2, 3, size=(6000, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(300, 8)).astype(np.float32)
    ids, scores = gpu_search(queries, docs, 50, metric, "float32", use_gemm)
    ref_ids, ref_top, _ = oracle(queries, docs, 50, metric, "float32")
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_top.astype(np.float32))


@pytest.mark.parametrize("use_gemm", PATHS, ids=lambda g: "gemm" if g else "scan")
@pytest.mark.parametrize("k", [1, 3000, 5000])
def test_dense_search_k_one_and_large_k(k, use_gemm):
    rng = np.random.default_rng(k)
    docs = rng.integers(-3, 4, size=(6001, 12)).astype(np.float32)
    queries = rng.integers(-3, 4, size=(5, 12)).astype(np.float32)
    ids, scores = gpu_search(queries, docs, k, "ip", "float32", use_gemm)
    ref_ids, ref_top, _ = oracle(queries, docs, k, "ip", "float32")
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_top.astype(np.float32))


@pytest.mark.parametrize("use_gemm", PATHS, ids=lambda g: "gemm" if g else "scan")
def test_dense_search_pads_when_k_exceeds_n(use_gemm):
    docs = np.array([[1, 0], [0, 2], [1, 1]], np.float32)
    ids, scores = gpu_search(np.array([[1, 1]], np.float32), docs, 6, "ip", "float32", use_gemm)
    np.testing.assert_array_equal(ids, [[1, 2, 0, -1, -1, -1]])
    np.testing.assert_array_equal(scores, [[2, 2, 1, -np.inf, -np.inf, -np.inf]])


@pytest.mark.parametrize("use_gemm", PATHS, ids=lambda g: "gemm" if g else "scan")
def test_dense_search_zero_vectors_score_zero_under_cosine(use_gemm):
    docs = np.array([[0, 0], [1, 0], [-1, 0], [0, 0]], np.float32)
    queries = np.array([[2, 0], [0, 0]], np.float32)
    ids, scores = gpu_search(queries, docs, 4, "cosine", "float32", use_gemm)
    np.testing.assert_array_equal(ids, [[1, 0, 3, 2], [0, 1, 2, 3]])
    np.testing.assert_array_equal(scores, [[1, 0, 0, -1], [0, 0, 0, 0]])


def test_dense_search_gemm_tiles_and_scan_chunks_agree():
    # n spans several GEMM tiles (2^25 floats / 300 queries = 111,848 rows)
    # and many scan chunks; both paths must give the same exact answer.
    rng = np.random.default_rng(5)
    docs = rng.integers(-4, 5, size=(240_001, 4)).astype(np.float32)
    queries = rng.integers(-4, 5, size=(300, 4)).astype(np.float32)
    results = [gpu_search(queries, docs, 100, "ip", "float32", path) for path in PATHS]
    for ids, scores in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])
    ref_ids, _, _ = oracle(queries[:3], docs, 100, "ip", "float32")
    np.testing.assert_array_equal(results[0][0][:3], ref_ids)


@pytest.mark.parametrize("dtype", STORAGES)
@pytest.mark.parametrize("metric", METRICS)
def test_dense_search_matches_cpu_flat_index(metric, dtype):
    flat = getattr(getattr(rk, "dense", None), "FlatIndex", None)
    if flat is None:
        pytest.skip("rk.dense.FlatIndex is not built")
    rng = np.random.default_rng(3)
    docs = rng.standard_normal((3000, 64)).astype(np.float32)
    queries = rng.standard_normal((40, 64)).astype(np.float32)
    index = flat(docs, metric=metric, dtype=dtype)
    cpu_ids, cpu_scores = index.search(queries, k=25)
    # The GPU gets the index's own stored rows (float16 / int8 codes + scales).
    stored = torch.from_numpy(np.ascontiguousarray(index.vectors)).cuda()
    scales = None if index.scales is None else torch.from_numpy(index.scales).cuda()
    wrap = (lambda c: None if c is None else from_dlpack(c))
    row_scale, row_offset = (wrap(c) for c in _cuda.dense_row_terms(stored, metric, scales))
    for path in PATHS:
        ids, scores = _cuda.dense_search(torch.from_numpy(queries).cuda(), stored, 25, metric, row_scale,
                                         row_offset, use_gemm=path)
        ids, scores = from_dlpack(ids).cpu().numpy(), from_dlpack(scores).cpu().numpy()
        np.testing.assert_allclose(scores, cpu_scores, rtol=1e-5, atol=1e-5)
        assert (ids == cpu_ids).mean() > 0.99  # differences only at float32 near-ties


def test_dense_row_terms_match_the_formulas():
    rng = np.random.default_rng(8)
    docs = rng.standard_normal((50, 9)).astype(np.float32)
    docs[3] = 0
    stored, _ = stored_on_gpu(docs, "float32")
    assert _cuda.dense_row_terms(stored, "ip") == (None, None)
    scale, offset = _cuda.dense_row_terms(stored, "cosine")
    assert offset is None
    norms = np.linalg.norm(docs.astype(np.float64), axis=1)
    expected = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    np.testing.assert_allclose(from_dlpack(scale).cpu().numpy(), expected, rtol=1e-6)
    scale, offset = _cuda.dense_row_terms(stored, "l2")
    np.testing.assert_array_equal(from_dlpack(scale).cpu().numpy(), 2.0)
    np.testing.assert_allclose(from_dlpack(offset).cpu().numpy(), -norms ** 2, rtol=1e-6)


def test_dense_search_bad_inputs():
    docs = torch.zeros((4, 3), device="cuda")
    q = torch.ones((2, 3), device="cuda")
    with pytest.raises(TypeError, match="queries must be float32, got float64"):
        _cuda.dense_search(q.double(), docs, 2)
    with pytest.raises(TypeError, match="docs must be float32, float16 or int8, got float64"):
        _cuda.dense_search(q, docs.double(), 2)
    with pytest.raises(TypeError, match="queries must be on a CUDA device"):
        _cuda.dense_search(q.cpu(), docs, 2)
    with pytest.raises(ValueError, match="queries have dim 2, docs have dim 3"):
        _cuda.dense_search(q[:, :2].contiguous(), docs, 2)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        _cuda.dense_search(q, docs, 0)
    with pytest.raises(ValueError, match="metric must be 'ip', 'cosine' or 'l2', got 'dot'"):
        _cuda.dense_search(q, docs, 2, "dot")
    with pytest.raises(ValueError, match="C-contiguous"):
        _cuda.dense_search(q, torch.zeros((3, 4), device="cuda").T, 2)
    with pytest.raises(ValueError, match="row_scale must be a contiguous"):
        _cuda.dense_search(q, docs, 2, "cosine", torch.ones(5, device="cuda"))
    bad = q.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="queries contain NaN or inf"):
        _cuda.dense_search(bad, docs, 2)
    half = docs.half()
    half[0, 0] = float("inf")
    with pytest.raises(ValueError, match="docs contain NaN or inf"):
        _cuda.dense_search(q, half, 2)
    if not _cuda.dense_gemm_available():
        with pytest.raises(ValueError, match="no cuBLAS"):
            _cuda.dense_search(q, docs, 2, use_gemm=True)


@pytest.mark.parametrize("use_gemm", PATHS, ids=lambda g: "gemm" if g else "scan")
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_dense_search_equals_cpu_flat_index_exactly_on_integers(metric, use_gemm):
    flat = getattr(getattr(rk, "dense", None), "FlatIndex", None)
    if flat is None:
        pytest.skip("rk.dense.FlatIndex is not built")
    rng = np.random.default_rng(21)
    docs = rng.integers(-3, 4, size=(5000, 16)).astype(np.float32)
    queries = rng.integers(-3, 4, size=(64, 16)).astype(np.float32)
    cpu_ids, cpu_scores = flat(docs, metric=metric).search(queries, k=40)
    ids, scores = gpu_search(queries, docs, 40, metric, "float32", use_gemm)
    np.testing.assert_array_equal(ids, cpu_ids)
    np.testing.assert_array_equal(scores, cpu_scores)


# rk.dense.FlatIndex built from a CUDA tensor: the public path to the kernels.

@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_flat_index_on_cuda_matches_the_cpu_index(metric, dtype):
    rng = np.random.default_rng(8)
    docs = rng.integers(-3, 4, size=(3000, 48)).astype(dtype)
    queries = rng.integers(-3, 4, size=(37, 48)).astype(np.float32)
    cpu = rk.dense.FlatIndex(docs, metric=metric)
    gpu = rk.dense.FlatIndex(torch.from_numpy(docs).cuda(), metric=metric, dtype=dtype)
    for batch in (queries[:1], queries):
        ids, scores = gpu.search(torch.from_numpy(batch).cuda(), k=20)
        assert ids.is_cuda and scores.is_cuda
        cpu_ids, cpu_scores = cpu.search(batch, k=20)
        np.testing.assert_allclose(scores.cpu().numpy(), cpu_scores, rtol=1e-5, atol=1e-5)
        if metric != "cosine":  # integer arithmetic: exact, ties included
            np.testing.assert_array_equal(ids.cpu().numpy(), cpu_ids)


def test_flat_index_refuses_queries_on_another_device():
    docs = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="queries are on cuda but the index is on cpu"):
        rk.dense.FlatIndex(docs).search(torch.from_numpy(docs).cuda(), k=1)
    with pytest.raises(ValueError, match="queries are on cpu but the index is on cuda"):
        rk.dense.FlatIndex(torch.from_numpy(docs).cuda()).search(docs, k=1)
    with pytest.raises(TypeError, match="int8 indexes are built on the CPU"):
        rk.dense.FlatIndex(torch.from_numpy(docs).cuda(), dtype="int8")
