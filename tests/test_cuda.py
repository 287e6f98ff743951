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


# ---- rerank: maxsim ----
# ragkernels._cuda.maxsim (cuda/rerank/maxsim.cu) against the float64 numpy
# reference (tests/reference/rerank.py) and its oracle, the CPU op
# ragkernels._core.maxsim: float32 / float16 / int8 documents; dims 1 and 7
# (element-wise loads), 128, 384, 1024 (4-wide loads, several 64-wide
# dimension chunks) and a misaligned base pointer; token counts on each side
# of the kernel's tiles (32 query, 64 document tokens); empty documents and
# queries, -1 slots, NaN, one candidate, 4,000-token documents, 5,000
# candidates, scores that do not depend on the batch; exact equality on
# integer tokens; bad inputs.
from ragkernels import _core  # noqa: E402
from tests.reference.rerank import maxsim_ref  # noqa: E402

MAXSIM_DTYPES = ["float32", "float16", "int8"]


def maxsim_problem(rng, query_lens, doc_lens, dim, dtype, num_candidates, integers=False):
    """Ragged unit-norm (or small-integer) tokens and random candidates, -1 slots
    included: (queries, query_offsets, documents, doc_offsets, scales, candidates)
    as numpy arrays, the documents stored as `dtype` (int8: codes + one scale per
    token)."""
    q_off = np.concatenate([[0], np.cumsum(query_lens)]).astype(np.int64)
    d_off = np.concatenate([[0], np.cumsum(doc_lens)]).astype(np.int64)
    if integers:
        queries = rng.integers(-3, 4, size=(q_off[-1], dim)).astype(np.float32)
        docs = rng.integers(-3, 4, size=(d_off[-1], dim)).astype(np.float32)
    else:
        queries = rng.standard_normal((q_off[-1], dim)).astype(np.float32)
        docs = rng.standard_normal((d_off[-1], dim)).astype(np.float32)
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-6)
        docs /= np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-6)
    scales = None
    if dtype == "int8":
        if integers:
            scales = np.ones(len(docs), np.float32)
        else:
            scales = (np.abs(docs).max(axis=1) / 127).astype(np.float32) + np.float32(1e-8)
        docs = np.clip(np.rint(docs / scales[:, None]), -127, 127).astype(np.int8)
    else:
        docs = docs.astype(dtype)
    candidates = rng.integers(-1, max(len(doc_lens), 1), size=(len(query_lens), num_candidates)).astype(np.int64)
    if len(doc_lens) == 0:
        candidates[:] = -1
    return queries, q_off, docs, d_off, scales, candidates


def gpu_maxsim(queries, q_off, docs, d_off, scales, candidates):
    """_cuda.maxsim on CUDA copies of the numpy inputs; the scores as numpy."""
    def cuda(a):
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).cuda()

    out = from_dlpack(_cuda.maxsim(cuda(queries), cuda(q_off), cuda(docs), cuda(d_off), cuda(scales),
                                   cuda(candidates)))
    assert out.is_cuda and out.dtype == torch.float32 and tuple(out.shape) == candidates.shape
    return out.cpu().numpy()


def assert_maxsim_matches(problem, exact=False):
    """GPU scores = the float64 reference and the CPU op (rtol / atol 1e-5 on
    unit-norm tokens; exactly on integer tokens, where every sum is exact);
    -inf and NaN in the same places."""
    queries, q_off, docs, d_off, scales, candidates = problem
    got = gpu_maxsim(*problem)
    ref = maxsim_ref(queries, q_off, docs, d_off, candidates, scales)
    cpu = _core.maxsim(queries, q_off, docs, d_off, scales, candidates)
    if exact:
        np.testing.assert_array_equal(got, ref.astype(np.float32))
        np.testing.assert_array_equal(got, cpu)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, cpu, rtol=1e-5, atol=1e-5)
    return got


@pytest.mark.parametrize("dtype", MAXSIM_DTYPES)
@pytest.mark.parametrize("dim", [1, 7, 128, 384, 1024])
def test_maxsim_matches_reference(dim, dtype):
    rng = np.random.default_rng(dim)
    query_lens = [32, 5, 1, 33]
    doc_lens = rng.integers(1, 200, size=40)
    doc_lens[[3, 17]] = 0  # empty documents
    assert_maxsim_matches(maxsim_problem(rng, query_lens, doc_lens, dim, dtype, 25))


@pytest.mark.parametrize("dtype", MAXSIM_DTYPES)
@pytest.mark.parametrize("dim", [1, 3, 4, 63, 64, 65, 128, 200])
def test_maxsim_exact_on_integer_tokens(dim, dtype):
    # Small integers: every product and sum is exact in float32, so any
    # indexing, padding or tile-edge slip shows as an exact mismatch.
    rng = np.random.default_rng(100 + dim)
    query_lens = [0, 1, 31, 32, 33, 64, 65]
    doc_lens = [0, 1, 2, 63, 64, 65, 127, 128, 129, 300]
    problem = maxsim_problem(rng, query_lens, doc_lens, dim, dtype, 30, integers=True)
    assert_maxsim_matches(problem, exact=True)


@pytest.mark.parametrize("dtype", MAXSIM_DTYPES)
def test_maxsim_misaligned_storage_uses_elementwise_loads(dtype):
    # dim % 4 == 0 but the tensors start one element into their storage: the
    # kernel must not use its 4-wide loads there.
    rng = np.random.default_rng(5)
    queries, q_off, docs, d_off, scales, candidates = maxsim_problem(rng, [20, 40], [70, 3, 150], 128, dtype, 6)
    expected = gpu_maxsim(queries, q_off, docs, d_off, scales, candidates)
    q_buf = torch.zeros(queries.size + 1, dtype=torch.float32, device="cuda")
    q_buf[1:] = torch.from_numpy(queries).cuda().reshape(-1)
    d_buf = torch.zeros(docs.size + 1, dtype=getattr(torch, dtype), device="cuda")
    d_buf[1:] = torch.from_numpy(docs).cuda().reshape(-1)
    q_view, d_view = q_buf[1:].view(queries.shape), d_buf[1:].view(docs.shape)
    assert q_view.data_ptr() % 16 != 0 and d_view.data_ptr() % (4 * d_view.element_size()) != 0
    out = from_dlpack(_cuda.maxsim(q_view, torch.from_numpy(q_off).cuda(), d_view, torch.from_numpy(d_off).cuda(),
                                   None if scales is None else torch.from_numpy(scales).cuda(),
                                   torch.from_numpy(candidates).cuda()))
    np.testing.assert_array_equal(out.cpu().numpy(), expected)


def test_maxsim_edge_cases():
    rng = np.random.default_rng(3)
    queries, q_off, docs, d_off, _, _ = maxsim_problem(rng, [4, 0, 2], [5, 0, 3], 16, "float32", 1)
    candidates = np.array([[0, 1, -1, 2], [0, 1, -1, 2], [2, 2, 0, -1]], np.int64)
    got = assert_maxsim_matches((queries, q_off, docs, d_off, None, candidates))
    assert np.isneginf(got[[0, 1], 1]).all()  # an empty document
    assert np.isneginf(got[[0, 1], 2]).all() and np.isneginf(got[2, 3])  # -1 slots
    assert np.isfinite(got[[0, 2], 0]).all()
    np.testing.assert_array_equal(got[1], [0.0, -np.inf, -np.inf, 0.0])  # empty query
    assert got[2, 0] == got[2, 1]  # the same document twice
    # One candidate; no candidates; no queries.
    assert_maxsim_matches((queries, q_off, docs, d_off, None, np.array([[2], [0], [1]], np.int64)))
    empty = gpu_maxsim(queries, q_off, docs, d_off, None, np.zeros((3, 0), np.int64))
    assert empty.shape == (3, 0)
    none = gpu_maxsim(queries[:0], np.zeros(1, np.int64), docs, d_off, None, np.zeros((0, 4), np.int64))
    assert none.shape == (0, 4)
    # Every document empty, no token rows at all.
    got = gpu_maxsim(queries, q_off, docs[:0], np.zeros(4, np.int64), None, candidates.clip(-1, 2))
    assert np.isneginf(got).all()
    # dim 0: every dot is 0, as on the CPU.
    zq, zd = np.zeros((6, 0), np.float32), np.zeros((8, 0), np.float32)
    assert_maxsim_matches((zq, q_off, zd, d_off, None, candidates), exact=True)


@pytest.mark.parametrize("dtype", MAXSIM_DTYPES)
def test_maxsim_nan_propagates(dtype):
    rng = np.random.default_rng(11)
    queries, q_off, docs, d_off, scales, _ = maxsim_problem(rng, [3, 40, 0], [10, 70, 4], 24, dtype, 1)
    queries[q_off[1] + 35, 7] = np.nan  # query 1's token 35: past the first 32-token tile
    if dtype == "int8":
        scales[d_off[1] + 66] = np.nan  # document 1's token 66: in its second 64-token tile
    else:
        docs[d_off[1] + 66, 5] = np.nan
    candidates = np.array([[0, 1, 2, -1]] * 3, np.int64)
    got = assert_maxsim_matches((queries, q_off, docs, d_off, scales, candidates))
    nan = np.isnan(got)
    np.testing.assert_array_equal(nan, [[False, True, False, False], [True, True, True, False],
                                        [False, False, False, False]])
    np.testing.assert_array_equal(got[2], [0.0, 0.0, 0.0, -np.inf])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_maxsim_long_documents(dtype):
    rng = np.random.default_rng(4000)
    problem = maxsim_problem(rng, [32, 70], [4000, 4001, 1, 3999, 64], 128, dtype, 8)
    assert_maxsim_matches(problem)


def test_maxsim_many_candidates_and_batch_invariance():
    rng = np.random.default_rng(5000)
    problem = maxsim_problem(rng, [32, 7], rng.integers(0, 60, size=300), 64, "float16", 5000)
    got = assert_maxsim_matches(problem)
    queries, q_off, docs, d_off, scales, candidates = problem
    # A score depends on its query and document only: the same pairs scored
    # one at a time, and twice in a batch, give the same bits.
    for q, c in [(0, 0), (0, 4999), (1, 2500)]:
        one = gpu_maxsim(queries, q_off, docs, d_off, scales,
                         np.where(np.arange(2)[:, None] == q, candidates[:, c:c + 1], -1))
        assert one[q, 0] == got[q, c] or (np.isnan(one[q, 0]) and np.isnan(got[q, c]))
    np.testing.assert_array_equal(gpu_maxsim(*problem), got)


def test_maxsim_bad_inputs():
    rng = np.random.default_rng(0)
    queries, q_off, docs, d_off, _, candidates = maxsim_problem(rng, [3, 2], [4, 5, 6], 8, "float32", 3)
    q, qo, d, do, c = (torch.from_numpy(a).cuda() for a in (queries, q_off, docs, d_off, candidates))

    def call(**kw):
        args = dict(queries=q, query_offsets=qo, documents=d, doc_offsets=do, scales=None, candidates=c)
        args.update(kw)
        return _cuda.maxsim(**args)

    with pytest.raises(TypeError, match="queries must be float32, got float64"):
        call(queries=q.double())
    with pytest.raises(TypeError, match="documents must be float32, float16 or int8, got float64"):
        call(documents=d.double())
    with pytest.raises(TypeError, match="queries must be on a CUDA device"):
        call(queries=q.cpu())
    with pytest.raises(TypeError, match="candidates must be on a CUDA device"):
        call(candidates=c.cpu())
    with pytest.raises(TypeError, match="candidates must be int64, got int32"):
        call(candidates=c.int())
    with pytest.raises(TypeError, match="doc_offsets must be int64, got int32"):
        call(doc_offsets=do.int())
    with pytest.raises(ValueError, match="query tokens have dimension 8 but document tokens have 4"):
        call(documents=d[:, :4].contiguous())
    with pytest.raises(ValueError, match="documents must be C-contiguous"):
        call(documents=torch.zeros((8, 15), device="cuda").T)
    with pytest.raises(ValueError, match="queries must be 2-D"):
        call(queries=q.reshape(-1))
    with pytest.raises(ValueError, match="candidates has 1 rows but there are 2 queries"):
        call(candidates=c[:1])
    with pytest.raises(ValueError, match="query_offsets must be a contiguous 1-D tensor"):
        call(query_offsets=qo[:0])
    with pytest.raises(ValueError, match="int8 documents need scales"):
        call(documents=d.to(torch.int8))
    with pytest.raises(ValueError, match="scales apply to int8 documents only"):
        call(scales=torch.ones(15, device="cuda"))
    with pytest.raises(ValueError, match="scales must be a contiguous 1-D tensor of 15 entries"):
        call(documents=d.to(torch.int8), scales=torch.ones(14, device="cuda"))
    with pytest.raises(TypeError, match="scales must be float32, got float16"):
        call(documents=d.to(torch.int8), scales=torch.ones(15, device="cuda", dtype=torch.float16))
    # Values checked on the device, reported as the CPU op reports them.
    bad = c.clone()
    bad[1, 2] = 3
    with pytest.raises(ValueError, match=r"candidates\[1, 2\] = 3 is out of range \[0, 3\)"):
        call(candidates=bad)
    bad[0, 1] = -2
    with pytest.raises(ValueError, match=r"candidates\[0, 1\] = -2 is out of range \[0, 3\)"):
        call(candidates=bad)
    big = torch.full((2, 5000), 2, dtype=torch.int64, device="cuda")
    big[1, 4321] = 1 << 40
    with pytest.raises(ValueError, match=r"candidates\[1, 4321\] = 1099511627776 is out of range"):
        call(candidates=big)
    cases = [("doc_offsets", [1, 4, 9, 15], r"doc_offsets\[0\] must be 0, got 1"),
             ("doc_offsets", [0, 4, 3, 15], r"doc_offsets must not decrease: doc_offsets\[1\] = 4 > "
                                            r"doc_offsets\[2\] = 3"),
             ("doc_offsets", [0, 4, 9, 16], r"doc_offsets\[-1\] must equal the number of token rows \(15\), got 16"),
             ("doc_offsets", [0, 4, 9, 14], r"doc_offsets\[-1\] must equal the number of token rows \(15\), got 14"),
             ("query_offsets", [0, 6, 5], r"query_offsets must not decrease"),
             ("query_offsets", [0, 3, 4], r"query_offsets\[-1\] must equal the number of token rows \(5\), got 4")]
    for arg, offsets, message in cases:
        with pytest.raises(ValueError, match=message):
            call(**{arg: torch.tensor(offsets, dtype=torch.int64, device="cuda"), "candidates": bad})
    with pytest.raises(ValueError, match=r"query_offsets\[0\] must be 0, got 3"):
        call(queries=q[:0], query_offsets=torch.tensor([3], dtype=torch.int64, device="cuda"),
             candidates=c[:0])
    # Nothing was left broken: a good call after the bad ones.
    np.testing.assert_allclose(from_dlpack(call()).cpu().numpy(),
                               maxsim_ref(queries, q_off, docs, d_off, candidates), rtol=1e-5, atol=1e-5)


def test_rerank_maxsim_front_end_on_cuda_tensors():
    """rk.rerank.maxsim with torch CUDA tensors: every query form, top-k, the
    result on the device and equal to the CPU op."""
    rng = np.random.default_rng(11)
    docs = rng.standard_normal((300, 48)).astype(np.float32)
    doc_offsets = np.concatenate([[0], np.sort(rng.integers(0, 300, 39)), [300]]).astype(np.int64)
    padded = rng.standard_normal((3, 20, 48)).astype(np.float32)
    mask = rng.random((3, 20)) < 0.7
    cand = rng.integers(-1, 40, (3, 25)).astype(np.int64)
    want = rk.rerank.maxsim(padded, docs, doc_offsets, cand, query_mask=mask)
    dev = {"documents": torch.from_numpy(docs).cuda(), "doc_offsets": torch.from_numpy(doc_offsets).cuda()}
    got = rk.rerank.maxsim(torch.from_numpy(padded).cuda(), dev["documents"], dev["doc_offsets"],
                           torch.from_numpy(cand).cuda(), query_mask=torch.from_numpy(mask).cuda())
    assert got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-5)
    ids, top = rk.rerank.maxsim(torch.from_numpy(padded).cuda(), dev["documents"], dev["doc_offsets"],
                                torch.from_numpy(cand).cuda(), query_mask=torch.from_numpy(mask).cuda(), k=30)
    want_ids, want_top = rk.rerank.maxsim(padded, docs, doc_offsets, cand, query_mask=mask, k=30)
    np.testing.assert_allclose(top.cpu().numpy(), want_top, rtol=1e-5, atol=1e-5)
    assert ids.shape == (3, 30) and (ids.cpu().numpy()[:, 25:] == -1).all()
    one = rk.rerank.maxsim(torch.from_numpy(padded[0]).cuda(), dev["documents"], dev["doc_offsets"])
    assert one.shape == (40,)
    np.testing.assert_allclose(one.cpu().numpy(), rk.rerank.maxsim(padded[0], docs, doc_offsets),
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ spec -------
# Trie.mask_logits on CUDA tensors (cuda/spec/trie_mask.cu) against the CPU
# op, bit for bit: every dtype, padded widths, segments boundaries (widths
# past 4,096 columns), wide nodes, dead rows, eos, strided rows, bad input
# (the CPU op is itself tested against tests/reference/spec.py).


def trie_and_states(rng, vocab, count=300, rows=24):
    seqs = [rng.integers(0, vocab, rng.integers(1, 6)).tolist() for _ in range(count)]
    seqs += [[vocab - 1], [0], seqs[0][:1]]
    trie = rk.spec.Trie.build(seqs, vocab_size=vocab)
    states = np.concatenate([[0, -1], rng.integers(-1, trie.num_nodes, rows - 2)]).astype(np.int32)
    return trie, states


@pytest.mark.parametrize("vocab, extra", [(33, 0), (100, 28), (5000, 0), (49_152, 0), (49_152, 100)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("eos", [None, 2])
def test_trie_mask_logits_cuda_equals_cpu(vocab, extra, dtype, eos):
    rng = np.random.default_rng(vocab + extra)
    trie, states = trie_and_states(rng, vocab, count=300 if vocab < 1000 else 20_000)
    logits = torch.randn(len(states), vocab + extra).to(getattr(torch, dtype))
    logits[0, 1] = float("nan")
    on_gpu = logits.cuda()
    assert trie.mask_logits(states, on_gpu, eos_token_id=eos) is on_gpu
    want = trie.mask_logits(states, logits.clone(), eos_token_id=eos)
    bits = torch.int32 if dtype == "float32" else torch.int16
    assert torch.equal(on_gpu.cpu().view(bits), want.view(bits))


def test_trie_mask_logits_cuda_on_strided_rows():
    rng = np.random.default_rng(5)
    trie, states = trie_and_states(rng, 70, rows=6)
    wide = torch.randn(12, 80, device="cuda")
    before = wide.clone()
    trie.mask_logits(states, wide[::2, :75], eos_token_id=74)
    cpu = before.cpu().numpy()
    expected = trie.mask_logits(states, cpu[::2, :75].copy(), eos_token_id=74)
    assert np.array_equal(wide[::2, :75].cpu().numpy(), expected, equal_nan=True)
    assert torch.equal(wide[1::2], before[1::2]) and torch.equal(wide[:, 75:], before[:, 75:])


def test_trie_mask_logits_cuda_bad_input():
    trie = rk.spec.Trie.build([[1, 2], [3]], vocab_size=4)
    states = trie.start(2)
    with pytest.raises(ValueError, match="logits has 3 columns but the trie's vocabulary 4 tokens"):
        trie.mask_logits(states, torch.zeros(2, 3, device="cuda"))
    with pytest.raises(ValueError, match="logits has 3 rows but states 2"):
        trie.mask_logits(states, torch.zeros(3, 4, device="cuda"))
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        trie.mask_logits(states, torch.zeros(2, 4, device="cuda", dtype=torch.float64))
    with pytest.raises(ValueError, match="columns must be contiguous"):
        trie.mask_logits(states, torch.zeros(4, 2, device="cuda").T)
    with pytest.raises(ValueError, match=r"states\[1\] = 9 is not a state of this trie"):
        trie.mask_logits([0, 9], torch.zeros(2, 4, device="cuda"))
    with pytest.raises(ValueError, match="eos_token_id 4 is outside the 4 logits"):
        trie.mask_logits(states, torch.zeros(2, 4, device="cuda"), eos_token_id=4)
    with pytest.raises(ValueError, match="logits rows overlap"):
        trie.mask_logits(states, torch.zeros(1, 4, device="cuda").expand(2, 4))
    with pytest.raises(ValueError, match="out= is for CPU arrays"):
        trie.mask_logits(states, torch.zeros(2, 4, device="cuda"), out=torch.zeros(2, 4, device="cuda"))


# ------------------------------------------------------------ kv ---------
# rk.kv on CUDA tensors (cuda/kv/quantize.cu, cuda/kv/decode_attention.cu)
# against the CPU op, its oracle (itself tested against tests/reference/kv.py):
# codes, scales, minimums and offsets bit for bit, for every bits, group sizes
# dividing the head dimension and not, one token, NaN / inf / signed zeros,
# float32 / float16 / bfloat16, transposed views; decode attention within
# rtol 1e-4 / atol 1e-5 (float32 sums in another order), NaN where the CPU has
# NaN, for masks per batch row and per KV head, left padding, fully masked
# rows, GQA, several 512-token chunks, compacted blocks, empty quantized part
# or residual; bad inputs. Device movement goes through kv_gpu / kv_on_gpu.
import re  # noqa: E402

from ragkernels import kv  # noqa: E402

KV_DTYPES = ["float32", "float16", "bfloat16"]
KV_SHAPES = [(32, 64, 70), (48, 64, 5), (5, 13, 11), (32, 64, 1), (16, 128, 700), (64, 300, 3)]  # group, dim, tokens
KV_RTOL, KV_ATOL = 1e-4, 1e-5


def kv_gpu(x):
    """A CUDA copy of a numpy array (read-only ones too) or CPU tensor."""
    return (x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))).cuda()


def kv_on_gpu(t):
    return t.is_cuda


def kv_bits(t):
    """A CPU tensor whose equality is bit equality (float16 as int16)."""
    t = torch.as_tensor(t).cpu()
    return t.view(torch.int16) if t.dtype == torch.float16 else t


def assert_packed_equal(gpu, cpu):
    for g, c in zip(gpu, cpu):
        if isinstance(c, int):
            assert g == c
            continue
        assert kv_on_gpu(g) and g.dtype == torch.as_tensor(c).dtype and tuple(g.shape) == tuple(c.shape)
        assert torch.equal(kv_bits(g), kv_bits(c))


def kv_states(rng, batch, heads, tokens, dim, specials=False):
    x = rng.standard_normal((batch, heads, tokens, dim)).astype(np.float32)
    if specials and x.size:
        flat = x.reshape(-1)
        at = rng.choice(flat.size, size=max(1, flat.size // 20), replace=False)
        flat[at] = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 60000.0, -60000.0, 1e-40, 3e-6],
                                       np.float32), size=at.size)
        x[0, 0, :, : dim // 2] = np.where(rng.random((tokens, dim // 2)) < 0.5, 0.0, -0.0)  # signed-zero ties
    return x


@pytest.mark.parametrize("dtype", KV_DTYPES)
@pytest.mark.parametrize("group,dim,tokens", KV_SHAPES)
@pytest.mark.parametrize("bits", kv.SUPPORTED_BITS)
def test_kv_quantize_cuda_equals_cpu(bits, group, dim, tokens, dtype):
    rng = np.random.default_rng(bits * 1000 + dim + tokens)
    x = torch.from_numpy(kv_states(rng, 2, 3, tokens, dim, specials=True)).to(getattr(torch, dtype))
    assert_packed_equal(kv.quantize_keys(kv_gpu(x), bits, group), kv.quantize_keys(x, bits, group))
    assert_packed_equal(kv.quantize_values(kv_gpu(x), bits, group), kv.quantize_values(x, bits, group))


@pytest.mark.parametrize("dtype", KV_DTYPES)
def test_kv_quantize_cuda_reads_transposed_views(dtype):
    """[batch, tokens, heads, dim] storage viewed as [batch, heads, tokens, dim],
    as transformers hands states out; a padded token stride too."""
    rng = np.random.default_rng(3)
    base = torch.from_numpy(rng.standard_normal((2, 9, 3, 24)).astype(np.float32)).to(getattr(torch, dtype))
    on_gpu = kv_gpu(base)
    for view, gpu_view in [(base.transpose(1, 2), on_gpu.transpose(1, 2)),
                           (base.transpose(1, 2)[..., :20], on_gpu.transpose(1, 2)[..., :20])]:
        for bits in (3, 4):
            assert_packed_equal(kv.quantize_keys(gpu_view, bits, 4), kv.quantize_keys(view, bits, 4))
            assert_packed_equal(kv.quantize_values(gpu_view, bits, 16), kv.quantize_values(view, bits, 16))


def test_kv_quantize_cuda_beyond_float16_raises_the_cpu_error():
    x = np.zeros((1, 2, 6, 5), np.float32)
    for big in (1e6, -70000.0):
        x[0, 1, 4, 3] = big
        for op in (kv.quantize_keys, kv.quantize_values):
            with pytest.raises(ValueError, match="float16") as cpu:
                op(x, 2, 2)
            with pytest.raises(ValueError, match=re.escape(str(cpu.value))):
                op(kv_gpu(x), 2, 2)


def test_kv_quantize_cuda_empty_and_bad_inputs():
    empty = np.zeros((2, 3, 0, 8), np.float32)
    assert_packed_equal(kv.quantize_keys(kv_gpu(empty), 4, 4), kv.quantize_keys(empty, 4, 4))
    assert_packed_equal(kv.quantize_values(kv_gpu(empty), 4, 4), kv.quantize_values(empty, 4, 4))
    x = kv_gpu(np.zeros((1, 1, 4, 8), np.float32))
    with pytest.raises(ValueError, match="bits must be one of"):
        kv.quantize_keys(x, 5, 4)
    with pytest.raises(ValueError, match="group_size"):
        kv.quantize_values(x, 4, 0)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        kv.quantize_keys(x.double(), 4, 4)
    with pytest.raises(ValueError, match="4-D"):
        kv.quantize_keys(x[0], 4, 4)
    with pytest.raises(ValueError, match="contiguous channels"):
        kv.quantize_values(x[..., ::2], 4, 4)
    with pytest.raises(ValueError, match="head dimension must be >= 1"):
        kv.quantize_keys(x[..., :0], 4, 4)


def kv_attention_case(rng, key_bits, value_bits, group, dim, quantized, residual, batch=2, kv_heads=2, rep=3,
                      dtype="float32"):
    """CPU arguments of decode_attention: query, keys, values, residual keys and values."""
    keys = kv.quantize_keys(kv_states(rng, batch, kv_heads, quantized, dim), key_bits, group)
    values = kv.quantize_values(2 * kv_states(rng, batch, kv_heads, quantized, dim), value_bits, group)
    t = getattr(torch, dtype)
    query = torch.from_numpy(kv_states(rng, batch, kv_heads * rep, 1, dim)).to(t)
    rk_ = torch.from_numpy(kv_states(rng, batch, kv_heads, residual, dim)).to(t)
    rv = torch.from_numpy(2 * kv_states(rng, batch, kv_heads, residual, dim)).to(t)
    return query, keys, values, rk_, rv


def kv_to_gpu(query, keys, values, rk_, rv):
    return (kv_gpu(query), kv.QuantizedKeys(*(kv_gpu(a) for a in keys[:4]), keys.bits),
            kv.QuantizedValues(*(kv_gpu(a) for a in values[:3]), values.bits, values.group_size),
            kv_gpu(rk_), kv_gpu(rv))


def assert_attention_matches(args, mask=None, gpu_mask=None, **kwargs):
    want = torch.as_tensor(kv.decode_attention(*args, mask=mask, **kwargs))
    got = kv.decode_attention(*kv_to_gpu(*args), mask=mask if gpu_mask is None else gpu_mask, **kwargs)
    assert kv_on_gpu(got) and got.dtype == torch.float32 and tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=KV_RTOL, atol=KV_ATOL)
    return got.cpu().numpy()


@pytest.mark.parametrize("key_bits,value_bits", [(2, 2), (3, 3), (4, 4), (8, 8), (4, 2), (2, 8)])
@pytest.mark.parametrize("group,dim,quantized,residual", [
    (32, 64, 96, 7), (32, 64, 1300, 3), (48, 64, 50, 0), (5, 13, 11, 1), (32, 64, 0, 5), (32, 64, 1, 0),
    (16, 300, 40, 2), (128, 256, 600, 0)])
def test_kv_decode_attention_cuda_matches_cpu(key_bits, value_bits, group, dim, quantized, residual):
    rng = np.random.default_rng(quantized + key_bits * 10 + value_bits)
    assert_attention_matches(kv_attention_case(rng, key_bits, value_bits, group, dim, quantized, residual))


@pytest.mark.parametrize("rep", [1, 8, 12])  # one head per block, a full block of 8, two blocks (8 + 4)
def test_kv_decode_attention_cuda_grouped_query_heads(rep):
    rng = np.random.default_rng(rep)
    assert_attention_matches(kv_attention_case(rng, 4, 4, 32, 64, 70, 3, batch=1, kv_heads=2, rep=rep))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_kv_decode_attention_cuda_half_inputs_and_strided_query(dtype):
    rng = np.random.default_rng(9)
    query, keys, values, rk_, rv = kv_attention_case(rng, 4, 4, 32, 64, 100, 6, dtype=dtype)
    assert_attention_matches((query, keys, values, rk_, rv))
    wide = torch.from_numpy(kv_states(rng, 2, 1, 6, 64)).to(getattr(torch, dtype))  # [batch, 1, q_heads, dim]
    want = kv.decode_attention(wide.transpose(1, 2), keys, values, rk_, rv)
    _, *cache = kv_to_gpu(query, keys, values, rk_, rv)
    got = kv.decode_attention(kv_gpu(wide).transpose(1, 2), *cache)
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=KV_RTOL, atol=KV_ATOL)


def test_kv_decode_attention_cuda_masks():
    """Left padding per batch row, a mask per KV head, fully masked rows
    (zeros, as torch's SDPA), boolean masks, a mask given on the CPU."""
    rng = np.random.default_rng(7)
    args = kv_attention_case(rng, 4, 4, 32, 64, 600, 4)
    mask = np.zeros((2, 604), np.float32)
    mask[1, :550] = -np.inf
    mask[0, 602] = -2.5
    assert_attention_matches(args, mask, kv_gpu(mask))
    assert_attention_matches(args, mask, mask)  # numpy mask: moved to the query's device
    assert_attention_matches(args, mask == 0, kv_gpu(mask == 0))  # boolean: True attends
    per_head = np.zeros((2, 2, 604), np.float32)
    per_head[0, 1, 100:530] = -np.inf
    per_head[1, 0] = -np.inf  # fully masked KV head: its 3 query heads get zeros
    out = assert_attention_matches(args, per_head, kv_gpu(per_head))
    assert np.all(out[1, :3] == 0) and np.all(out[1, 3:] != 0)
    mask[0] = -np.inf
    out = assert_attention_matches(args, mask, kv_gpu(mask))
    assert np.all(out[0] == 0)


def test_kv_decode_attention_cuda_nan():
    """A NaN score (here a residual key) makes the head NaN, masked or not; a
    NaN in a masked position's value is never read."""
    rng = np.random.default_rng(8)
    query, keys, values, rk_, rv = kv_attention_case(rng, 2, 2, 32, 64, 64, 2, batch=1, kv_heads=1, rep=2)
    rk_[0, 0, 1, 3] = float("nan")
    assert np.isnan(assert_attention_matches((query, keys, values, rk_, rv))).all()
    mask = np.zeros((1, 66), np.float32)
    mask[0, 65] = -np.inf
    assert np.isnan(assert_attention_matches((query, keys, values, rk_, rv), mask, kv_gpu(mask))).all()
    rk_[0, 0, 1, 3] = 0.5
    rv[0, 0, 1, 0] = float("nan")
    assert np.isfinite(assert_attention_matches((query, keys, values, rk_, rv), mask, kv_gpu(mask))).all()


def test_kv_decode_attention_cuda_compacted_blocks_and_gpu_quantization():
    """Offsets leaving blocks partial or empty (compaction); and the whole
    path on the GPU: quantize there, attend there."""
    rng = np.random.default_rng(11)
    x = kv_states(rng, 1, 2, 64, 16)
    keys = kv.quantize_keys(x, 4, 16)
    keep = [np.r_[0:5, 20:32, 40:41], np.r_[16:32, 61:63]]
    offsets = np.stack([np.searchsorted(k, np.arange(0, 65, 16)) for k in keep]).astype(np.int32)[None]
    compact = kv.QuantizedKeys(np.stack([keys.codes[0, h, keep[h]] for h in range(2)])[None], keys.scale,
                               keys.minimum, offsets, 4)
    values = kv.quantize_values(np.stack([x[0, h, keep[h]] for h in range(2)])[None], 4, 16)
    empty = np.zeros((1, 2, 0, 16), np.float32)
    assert_attention_matches((kv_states(rng, 1, 2, 1, 16), compact, values, empty, empty))
    k, v, q = (torch.from_numpy(kv_states(rng, 2, 2, 300, 64)) for _ in range(3))
    q = q[:, :, :1].repeat(1, 2, 1, 1)
    got = kv.decode_attention(kv_gpu(q), kv.quantize_keys(kv_gpu(k[:, :, :256]), 2, 32),
                              kv.quantize_values(kv_gpu(v[:, :, :256]), 2, 32), kv_gpu(k[:, :, 256:]),
                              kv_gpu(v[:, :, 256:]))
    want = kv.decode_attention(q, kv.quantize_keys(k[:, :, :256], 2, 32), kv.quantize_values(v[:, :, :256], 2, 32),
                               k[:, :, 256:], v[:, :, 256:])
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=KV_RTOL, atol=KV_ATOL)


def test_kv_decode_attention_cuda_bad_inputs():
    rng = np.random.default_rng(12)
    query, keys, values, rk_, rv = kv_to_gpu(*kv_attention_case(rng, 4, 4, 4, 8, 8, 0, batch=1, kv_heads=2, rep=1))
    with pytest.raises(ValueError, match="one token"):
        kv.decode_attention(query.repeat(1, 1, 2, 1), keys, values, rk_, rv)
    with pytest.raises(ValueError, match="multiple of"):
        kv.decode_attention(query[:, :1].repeat(1, 3, 1, 1), keys, values, rk_, rv)
    with pytest.raises(ValueError, match="mask"):
        kv.decode_attention(query, keys, values, rk_, rv, mask=kv_gpu(np.zeros((1, 3), np.float32)))
    with pytest.raises(TypeError, match="share one dtype"):
        kv.decode_attention(query, keys, values, rk_.half(), rv)
    with pytest.raises(ValueError, match="residual"):
        kv.decode_attention(query, keys, values, kv_gpu(np.zeros((1, 2, 2, 8), np.float32)), rv)
    with pytest.raises(ValueError, match="empty"):
        empty = kv_gpu(np.zeros((1, 2, 0, 8), np.float32))
        kv.decode_attention(query, kv.quantize_keys(empty, 4, 4), kv.quantize_values(empty, 4, 4), empty, empty)
    bad = keys._replace(offsets=kv_gpu(np.array([[[0, 4, 7], [0, 4, 8]]], np.int32)))
    with pytest.raises(ValueError, match="must end at the 8 quantized tokens"):
        kv.decode_attention(query, bad, values, rk_, rv)
    bad = keys._replace(offsets=kv_gpu(np.array([[[0, 4, 8], [0, 5, 4]]], np.int32)))
    with pytest.raises(ValueError, match="decrease"):
        kv.decode_attention(query, bad, values, rk_, rv)
    with pytest.raises(ValueError, match="shape"):
        kv.decode_attention(query, keys._replace(bits=2), values, rk_, rv)  # codes are 4-bit wide
    with pytest.raises(TypeError, match="CUDA device"):
        kv.decode_attention(query, keys._replace(codes=keys.codes.cpu()), values, rk_, rv)
