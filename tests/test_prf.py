"""ragkernels.prf against the Anserini-faithful references, edge cases, bad input."""
import numpy as np
import pytest

import ragkernels as rk
from ragkernels.sparse import BM25Index, ImpactIndex
from tests.reference import data_dir
from tests.reference import prf as ref


def random_corpus(rng, n_docs, vocab, max_len=30, zipf=1.1):
    weights = 1.0 / np.arange(1, vocab + 1) ** zipf
    weights /= weights.sum()
    return [[f"t{t}" for t in rng.choice(vocab, size=int(rng.integers(0, max_len + 1)), p=weights)]
            for _ in range(n_docs)]


def random_queries(rng, n, vocab, max_len=5):
    # Ids past the vocabulary make unknown tokens; repeats happen.
    return [[f"t{t}" for t in rng.integers(0, vocab + 5, size=int(rng.integers(0, max_len + 1)))] for _ in range(n)]


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(3)
    docs = random_corpus(rng, 300, 150)
    queries = random_queries(rng, 40, 150)
    return docs, queries, BM25Index.build(docs, k1=0.9, b=0.4)


# ---- the forward view --------------------------------------------------------

def test_forward_rows_are_the_transposed_postings(corpus):
    docs, _, index = corpus
    forward = rk.prf._forward(index, "test")
    assert forward is rk.prf._forward(index, "test")  # built once, cached
    term_ids = {t: i for i, t in enumerate(index.vocabulary)}
    expected = ref.forward_rows(docs, term_ids)
    assert forward.num_docs == len(docs) and forward.num_postings == index.num_postings
    for d in range(len(docs)):
        terms, tfs = forward.row(d)
        assert terms.tolist() == expected[d][0] and tfs.tolist() == expected[d][1]
    with pytest.raises(ValueError, match="doc must be in"):
        forward.row(len(docs))


def test_term_ids_follow_first_occurrence(corpus):
    # The references break pruning ties by first occurrence; so does the index's term id.
    docs, _, index = corpus
    order = list(dict.fromkeys(t for d in docs for t in d))
    assert index.vocabulary == order


# ---- RM3 ---------------------------------------------------------------------

@pytest.mark.parametrize("fb_docs,fb_terms,weight,ratio", [(10, 10, 0.5, 0.1), (1, 1, 0.3, 0.2), (3, 25, 0.0, 1.0),
                                                          (50, 5, 1.0, 0.05), (7, 10, 0.5, 0.0)])
def test_rm3_equals_reference(corpus, fb_docs, fb_terms, weight, ratio):
    docs, queries, index = corpus
    run = index.search(queries, k=max(fb_docs, 12))
    got = rk.prf.rm3(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, original_weight=weight, max_df_ratio=ratio,
                     results=run)
    expected = ref.rm3_ref(docs, queries, run[0], run[1], fb_docs, fb_terms, weight, ratio)
    assert got == expected
    assert [list(g) for g in got] == [list(e) for e in expected]  # same order: heaviest first
    # Searching itself gives the same feedback (k = fb_docs is enough).
    assert rk.prf.rm3(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, original_weight=weight,
                      max_df_ratio=ratio) == got


def test_rm3_weights_form_a_distribution(corpus):
    _, queries, index = corpus
    for q, expanded in zip(queries, rk.prf.rm3(index, queries)):
        known = [t for t in q if t in set(index.vocabulary)]
        if known and len(known) == len(q):
            assert sum(expanded.values()) == pytest.approx(1.0, rel=1e-5)
        assert all(w > 0 for w in expanded.values())


def test_rm3_texts_equal_analyzed_tokens():
    texts = ["The cats are purring loudly", "A cat purrs", "Dogs bark at cats", "Birds sing", "Fish swim",
             "Cows graze", "Owls hoot at night", "Hens lay eggs", "Ants march", "Bees buzz around flowers",
             "cat food and cat toys"]
    index = BM25Index.build(texts)
    queries = ["cat", "purring dogs", "the", "unknown words here cat"]
    tokens = rk.text.Analyzer().tokenize(queries)
    got = rk.prf.rm3(index, queries, fb_docs=3, max_df_ratio=0.5)
    assert got == rk.prf.rm3(index, tokens, fb_docs=3, max_df_ratio=0.5)
    doc_tokens = rk.text.Analyzer().tokenize(texts)
    run = index.search(queries, k=3)
    assert got == ref.rm3_ref(doc_tokens, tokens, run[0], run[1], 3, 10, 0.5, 0.5)
    assert got[2] == {}  # a query of stopwords only


def test_rm3_search_is_search_of_the_expansion(corpus):
    docs, queries, index = corpus
    expanded = rk.prf.rm3(index, queries, fb_docs=5)
    got = rk.prf.rm3_search(index, queries, k=50, fb_docs=5)
    np.testing.assert_array_equal(got[0], index.search(expanded, k=50)[0])
    np.testing.assert_array_equal(got[1], index.search(expanded, k=50)[1])
    for row, q in zip(got[0], expanded):
        assert set(row[row >= 0].tolist()) <= ref.search_weighted_ref(docs, q)


def test_rm3_edge_cases():
    docs = [["cat", "purr"], ["cat", "purr", "purr"], ["purr", "meow"], ["dog"], ["fish"], ["bird"], ["cow"],
            ["pig"], ["hen"], ["owl"], ["ant", "cat"]]
    index = BM25Index.build(docs)
    # Empty query, unknown-only query (no hits): nothing to search for.
    assert rk.prf.rm3(index, [[], ["zebra"]]) == [{}, {}]
    docs_e, scores_e = rk.prf.rm3_search(index, [[]], k=3)
    assert docs_e.tolist() == [[-1, -1, -1]] and np.isneginf(scores_e).all()
    # An unknown token still counts in the query's L1 norm, as in Anserini.
    half = rk.prf.rm3(index, [["cow", "zebra"]], max_df_ratio=1.0)[0]
    assert half["cow"] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    # Fewer hits than fb_docs; k beyond the corpus is capped at it, then rows pad.
    run = index.search([["cat"]], k=10)
    assert (run[0][0] >= 0).sum() == 3
    got = rk.prf.rm3(index, [["cat"]], fb_docs=10, max_df_ratio=0.5)
    assert got == ref.rm3_ref(docs, [["cat"]], run[0], run[1], 10, 10, 0.5, 0.5)
    d, s = rk.prf.rm3_search(index, [["cat"]], k=100, max_df_ratio=0.5)
    assert d.shape == (1, index.num_docs) and (d[0, 4:] == -1).all()
    # Empty batch.
    assert rk.prf.rm3(index, []) == []
    assert rk.prf.rm3_search(index, [], k=5)[0].shape == (0, 5)


def test_index_of_empty_documents():
    index = BM25Index.build([[], []])
    assert rk.prf.rm3(index, [["a"]]) == [{}] and rk.prf.rocchio(index, [["a"]]) == [{}]
    assert rk.prf.rm3_search(index, [["a"]], k=3)[0].tolist() == [[-1, -1]]  # k capped at 2 documents


def test_rm3_single_document():
    index = BM25Index.build([["lonely", "doc", "doc"]])
    # Every term is in 100 % of the documents: no feedback term passes 10 %.
    assert rk.prf.rm3(index, [["doc"]]) == [{"doc": 0.5}]
    got = rk.prf.rm3(index, [["doc"]], max_df_ratio=1.0)[0]
    assert got == ref.rm3_ref([["lonely", "doc", "doc"]], [["doc"]], [[0]], [index.search([["doc"]], k=1)[1][0]],
                              10, 10, 0.5, 1.0)[0]
    assert list(got) == ["doc", "lonely"]


def test_rm3_and_rocchio_unicode_terms():
    # RM3 keeps [a-z0-9]+ terms only; Rocchio any term of 2..20 UTF-16 units.
    docs = [["café", "latte", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔘", "x"], ["café", "latte"]] + [[f"filler{i}"] for i in range(20)]
    index = BM25Index.build(docs)
    queries = [["latte"]]
    run = index.search(queries, k=10)
    rm = rk.prf.rm3(index, queries, max_df_ratio=0.5)[0]
    assert set(rm) == {"latte"}
    assert rm == ref.rm3_ref(docs, queries, run[0], run[1], 10, 10, 0.5, 0.5)[0]
    unfiltered = rk.prf.rm3(index, queries, max_df_ratio=0.5, filter_terms=False)[0]
    assert set(unfiltered) == {"latte", "café", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔘", "x"}
    assert unfiltered == ref.rm3_ref(docs, queries, run[0], run[1], 10, 10, 0.5, 0.5, filter_terms=False)[0]
    ro = rk.prf.rocchio(index, queries, max_df_ratio=0.5)[0]
    assert set(ro) == {"latte", "café", "😀"}  # "x" is too short, the 11-letter Fraktur word 22 units long
    assert ro == ref.rocchio_ref(docs, queries, run[0], 10, 10, 1.0, 0.75, 0.5)[0]


def test_hypothesis_small_corpora():
    # Tiny corpora with many ties, unicode and short terms, repeated query tokens.
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    words = st.sampled_from(["ab", "cd", "ef", "gh", "x", "café", "😀", "Up", "9z", "ij", "kl"])

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(st.lists(st.lists(words, max_size=8), min_size=1, max_size=12),
                      st.lists(st.lists(words, max_size=4), max_size=4),
                      st.integers(1, 6), st.integers(1, 6), st.sampled_from([0.0, 0.3, 0.5, 1.0]),
                      st.sampled_from([0.1, 0.5, 1.0]), st.booleans())
    def check(docs, queries, fb_docs, fb_terms, weight, ratio, filter_terms):
        index = BM25Index.build(docs)
        hypothesis.assume(index.num_terms > 0)  # searching a term-less index is test_sparse's business
        run = index.search(queries, k=fb_docs) if queries else None
        got = rk.prf.rm3(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, original_weight=weight,
                         max_df_ratio=ratio, filter_terms=filter_terms)
        if not queries:
            assert got == []
            return
        expected = ref.rm3_ref(docs, queries, run[0], run[1], fb_docs, fb_terms, weight, ratio, filter_terms)
        assert got == expected and [list(g) for g in got] == [list(e) for e in expected]
        got = rk.prf.rocchio(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, max_df_ratio=ratio)
        assert got == ref.rocchio_ref(docs, queries, run[0], fb_docs, fb_terms, 1.0, 0.75, ratio)

    check()


# ---- Rocchio over BM25 -----------------------------------------------------------

@pytest.mark.parametrize("fb_docs,fb_terms,alpha,beta,ratio", [(10, 10, 1.0, 0.75, 0.1), (1, 1, 0.0, 1.0, 0.3),
                                                               (4, 30, 2.0, 0.0, 1.0), (60, 7, 0.5, 0.5, 0.05)])
def test_rocchio_equals_reference(corpus, fb_docs, fb_terms, alpha, beta, ratio):
    docs, queries, index = corpus
    run = index.search(queries, k=fb_docs)
    got = rk.prf.rocchio(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, alpha=alpha, beta=beta,
                         max_df_ratio=ratio)
    expected = ref.rocchio_ref(docs, queries, run[0], fb_docs, fb_terms, alpha, beta, ratio)
    assert got == expected
    assert [list(g) for g in got] == [list(e) for e in expected]
    d, s = rk.prf.rocchio_search(index, queries, k=20, fb_docs=fb_docs, fb_terms=fb_terms, alpha=alpha, beta=beta,
                                 max_df_ratio=ratio)
    np.testing.assert_array_equal(d, index.search(got, k=20)[0])


def test_rocchio_edge_cases():
    docs = [["cat", "purr"], ["cat", "purr", "purr"], ["dog"]] + [[f"filler{i}"] for i in range(20)]
    index = BM25Index.build(docs)
    assert rk.prf.rocchio(index, [[], ["zebra"]]) == [{}, {}]
    # Unknown tokens count in the query's L2 norm.
    assert rk.prf.rocchio(index, [["dog", "zebra"]], beta=0.0)[0] == {"dog": pytest.approx(2 ** -0.5)}
    assert rk.prf.rocchio(BM25Index.build([["one", "doc"]]), [["doc"]]) == [{"doc": 1.0}]


def test_one_thread_and_many_agree(corpus):
    _, queries, index = corpus
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = (rk.prf.rm3(index, queries * 3), rk.prf.rocchio(index, queries * 3))
        rk.set_num_threads(4)
        many = (rk.prf.rm3(index, queries * 3), rk.prf.rocchio(index, queries * 3))
    finally:
        rk.set_num_threads(before)
    assert one == many


# ---- Rocchio over dense vectors -----------------------------------------------------

def unit_rows(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_search(q, d, k):
    scores = q.astype(np.float64) @ d.T.astype(np.float64)
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids.astype(np.int64)


@pytest.mark.parametrize("fb_docs,alpha,beta,normalize", [(5, 0.4, 0.6, True), (1, 1.0, 1.0, False),
                                                          (3, 0.0, 1.0, True), (20, 2.0, 0.0, False)])
def test_rocchio_dense_equals_reference(fb_docs, alpha, beta, normalize):
    rng = np.random.default_rng(11)
    docs = unit_rows(rng, 97, 33)
    queries = unit_rows(rng, 19, 33)
    ids = exact_search(queries, docs, 10)
    ids[3, 2:] = -1  # padding: fewer hits
    ids[5, :] = -1   # no hit at all
    got = rk.prf.rocchio_dense(queries, docs, ids, fb_docs=fb_docs, alpha=alpha, beta=beta, normalize=normalize)
    expected = ref.rocchio_dense_ref(queries, docs, ids, fb_docs, alpha, beta, normalize)
    assert got.dtype == np.float32 and got.shape == queries.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_rocchio_dense_views_and_dlpack():
    rng = np.random.default_rng(5)
    big = rng.standard_normal((40, 20)).astype(np.float32)
    docs = big[::2, 1:17]  # strided rows and columns, read in place
    queries = big[1:8, 3:19]
    ids = exact_search(queries, docs, 6)
    expected = ref.rocchio_dense_ref(queries, docs, ids)
    np.testing.assert_allclose(rk.prf.rocchio_dense(queries, docs, ids[:, ::1]), expected, rtol=1e-6, atol=1e-7)

    class Tensor:  # any framework's CPU tensor, through DLPack
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kwargs):
            return self.a.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    got = rk.prf.rocchio_dense(Tensor(np.ascontiguousarray(queries)), Tensor(np.ascontiguousarray(docs)), Tensor(ids))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_rocchio_dense_edge_cases():
    q = np.array([[1.0, 0.0]], np.float32)
    d = np.array([[0.0, 1.0]], np.float32)
    # A single document; fb_docs larger than the run; an empty batch; a zero vector.
    np.testing.assert_allclose(rk.prf.rocchio_dense(q, d, np.array([[0]]), fb_docs=10),
                               [[0.4 / np.hypot(0.4, 0.6), 0.6 / np.hypot(0.4, 0.6)]], rtol=1e-6)
    assert rk.prf.rocchio_dense(np.zeros((0, 2), np.float32), d, np.zeros((0, 3), np.int64)).shape == (0, 2)
    assert rk.prf.rocchio_dense(np.zeros((1, 2), np.float32), d, np.array([[-1]])).tolist() == [[0.0, 0.0]]
    # A NaN in a doc row no query uses is never read.
    d2 = np.array([[0.0, 1.0], [np.nan, 0.0]], np.float32)
    assert np.isfinite(rk.prf.rocchio_dense(q, d2, np.array([[0, 1]]), fb_docs=1)).all()


# ---- bad input ---------------------------------------------------------------------

def test_dense_bad_input():
    q = np.ones((2, 4), np.float32)
    d = np.ones((5, 4), np.float32)
    ids = np.zeros((2, 3), np.int64)
    f = rk.prf.rocchio_dense
    with pytest.raises(TypeError, match="queries must be float32, got float64"):
        f(q.astype(np.float64), d, ids)
    with pytest.raises(TypeError, match="feedback_ids must be int64, got int32"):
        f(q, d, ids.astype(np.int32))
    with pytest.raises(TypeError, match="doc_vectors must be a numpy array"):
        f(q, d.tolist(), ids)
    with pytest.raises(ValueError, match="doc_vectors must have the dimension of queries"):
        f(q, np.ones((5, 3), np.float32), ids)
    with pytest.raises(ValueError, match="feedback_ids must have one row per query"):
        f(q, d, np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="queries must be 2-D"):
        f(np.ones(4, np.float32), d, ids)
    with pytest.raises(ValueError, match="negative strides"):
        f(q[::-1], d, ids)
    with pytest.raises(ValueError, match=r"feedback_ids\[1, 0\] = 5 is not a row"):
        f(q, d, np.array([[0, 1, 2], [5, 0, 0]], np.int64))
    with pytest.raises(ValueError, match=r"feedback_ids\[0, 0\] = -2"):
        f(q, d, np.full((2, 3), -2, np.int64))
    bad = d.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"doc_vectors\[2\] \(feedback of query 0\) has a NaN"):
        f(q, bad, np.array([[2, 0, 0], [0, 0, 0]], np.int64))
    badq = q.copy()
    badq[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"queries\[1\] has a NaN or infinite"):
        f(badq, d, ids)
    with pytest.raises(ValueError, match="fb_docs must be >= 1, got 0"):
        f(q, d, ids, fb_docs=0)
    with pytest.raises(TypeError, match="fb_docs must be an int, got float"):
        f(q, d, ids, fb_docs=2.5)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0, got -1"):
        f(q, d, ids, alpha=-1.0)
    with pytest.raises(ValueError, match="beta must be finite and >= 0, got nan"):
        f(q, d, ids, beta=float("nan"))
    with pytest.raises(TypeError, match="normalize must be a bool"):
        f(q, d, ids, normalize="yes")


@pytest.mark.parametrize("op", [rk.prf.rm3, rk.prf.rocchio])
def test_sparse_bad_input(corpus, op):
    _, queries, index = corpus
    name = op.__name__
    with pytest.raises(ValueError, match=f"{name}: fb_docs must be >= 1, got 0"):
        op(index, queries, fb_docs=0)
    with pytest.raises(ValueError, match=f"{name}: fb_terms must be >= 1, got -3"):
        op(index, queries, fb_terms=-3)
    with pytest.raises(TypeError, match="fb_terms must be an int, got float"):
        op(index, queries, fb_terms=1.5)
    with pytest.raises(ValueError, match="max_df_ratio must be in"):
        op(index, queries, max_df_ratio=1.5)
    with pytest.raises(TypeError, match="index must be a ragkernels.sparse.BM25Index, got ImpactIndex"):
        op(ImpactIndex.build([{"a": 1.0}]), [["a"]])
    with pytest.raises(TypeError, match="queries must be"):
        op(index, 42)
    with pytest.raises(TypeError, match=r"queries\[1\] must be a list of str"):
        op(index, [["t1"], "t2"])
    with pytest.raises(TypeError, match=r"queries\[0\]\[1\] must be str, got int"):
        op(index, [["t1", 3]])
    with pytest.raises(TypeError, match="queries must be"):
        op(index, {"t1": 1.0})
    run = index.search(queries, k=10)
    with pytest.raises(TypeError, match="docs must be int64, got int32"):
        op(index, queries, results=(run[0].astype(np.int32), run[1]))
    with pytest.raises(ValueError, match="docs must have one row per query"):
        op(index, queries, results=(run[0][:3], run[1][:3]))
    bad = run[0].copy()
    bad[2, 1] = index.num_docs
    with pytest.raises(ValueError, match=r"docs\[2, 1\] = 300 is not a document"):
        op(index, queries, results=(bad, run[1]))
    with pytest.raises(TypeError, match="results must be a"):
        op(index, queries, results=run[0])


def test_rm3_bad_weights_and_scores(corpus):
    _, queries, index = corpus
    for w in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="rm3: original_weight must be in \\[0, 1\\]"):
            rk.prf.rm3(index, queries, original_weight=w)
    run = index.search(queries, k=10)
    with pytest.raises(TypeError, match="filter_terms must be a bool"):
        rk.prf.rm3(index, queries, filter_terms="no")
    with pytest.raises(TypeError, match="scores must be float32, got float64"):
        rk.prf.rm3(index, queries, results=(run[0], run[1].astype(np.float64)))
    with pytest.raises(ValueError, match="scores must have the shape of docs"):
        rk.prf.rm3(index, queries, results=(run[0], run[1][:, :5]))
    scores = run[1].copy()
    scores[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"scores\[0, 0\] must be finite"):
        rk.prf.rm3(index, queries, results=(run[0], scores))
    for beta in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="rocchio: beta must be finite and >= 0"):
            rk.prf.rocchio(index, queries, beta=beta)
    with pytest.raises(ValueError, match="rocchio: alpha must be finite and >= 0"):
        rk.prf.rocchio(index, queries, alpha=-0.5)


def test_feedback_needs_string_vocabulary_and_texts():
    with pytest.raises(ValueError, match="string vocabulary"):
        rk.prf.rm3(BM25Index.build([[1, 2], [2, 3]]), [["a"]])
    tokens_index = BM25Index.build([["a", "b"], ["b", "c"]])
    with pytest.raises(ValueError, match="built from tokens, not texts"):
        rk.prf.rm3(tokens_index, ["a b"], results=(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32)))


# ---- real data ---------------------------------------------------------------------

def test_rm3_on_scifact_equals_reference():
    root = data_dir()
    if root is None or not (root / "beir" / "scifact").is_dir():
        pytest.skip("BEIR SciFact not found under the shared data folder")
    ds = rk.data.load_beir(root / "beir" / "scifact")
    analyzer = rk.text.Analyzer()
    docs = analyzer.tokenize(ds.corpus.full_texts())
    index = BM25Index.build(docs, k1=0.9, b=0.4)
    queries = analyzer.tokenize(ds.queries.texts[:40])
    run = index.search(queries, k=10)
    assert rk.prf.rm3(index, queries, results=run) == ref.rm3_ref(docs, queries, run[0], run[1])
    assert rk.prf.rocchio(index, queries, results=run) == ref.rocchio_ref(docs, queries, run[0])


def test_lone_surrogates_in_queries_are_non_word_characters_issue14():
    index = rk.sparse.BM25Index.build(["cats sit on mats", "dogs sit on logs", "cats and dogs"])
    expanded = rk.prf.rm3(index, ["cats\udcff", "cats"], fb_docs=2, fb_terms=3)
    assert expanded[0] == expanded[1]
    tokens = rk.sparse.BM25Index.build([["cat", "sat"], ["dog"]])
    with pytest.raises(ValueError, match=r"queries\[0\]\[1\] cannot be encoded as UTF-8"):
        rk.prf.rm3(tokens, [["cat", "\ud800"]], fb_docs=1, fb_terms=2)
