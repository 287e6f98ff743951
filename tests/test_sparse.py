"""ragkernels.sparse against the numpy reference, bm25s, and bad input."""
import os
import random

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.sparse import ALGORITHMS, METHODS, BM25Index, ImpactIndex
from tests.reference import data_dir
from tests.reference import core as core_ref
from tests.reference import sparse as ref

bm25s = pytest.importorskip("bm25s")
Stemmer = pytest.importorskip("Stemmer")


def random_corpus(rng, n_docs, vocab, max_len=30, zipf=1.2):
    weights = 1.0 / np.arange(1, vocab + 1) ** zipf
    weights /= weights.sum()
    docs = []
    for _ in range(n_docs):
        n = int(rng.integers(0, max_len + 1))
        docs.append([f"t{t}" for t in rng.choice(vocab, size=n, p=weights)])
    return docs


def random_queries(rng, n, vocab, max_len=6):
    return [[f"t{t}" for t in rng.integers(0, vocab + 3, size=int(rng.integers(0, max_len + 1)))] for _ in range(n)]


def assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ---- exactness against the reference --------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_algorithm_equals_reference(method, seed):
    rng = np.random.default_rng(seed)
    docs = random_corpus(rng, 400, 60)
    queries = random_queries(rng, 40, 60)
    index = BM25Index.build(docs, method=method, k1=1.2, b=0.75, delta=0.7)
    for k in (1, 7, 100, 500):
        expected = ref.bm25_search(docs, queries, k, method, 1.2, 0.75, 0.7)
        for algorithm in ALGORITHMS:
            assert_same(index.search(queries, k=k, algorithm=algorithm), expected)


@pytest.mark.parametrize("seed", range(6))
def test_pruning_is_exact_on_skewed_long_postings(seed):
    # Long lists spanning many blocks, frequent terms and many near-ties:
    # where MaxScore and BMW skip the most.
    rng = np.random.default_rng(100 + seed)
    docs = random_corpus(rng, 3000, 40, max_len=12, zipf=0.8)
    queries = random_queries(rng, 30, 40, max_len=8)
    index = BM25Index.build(docs, k1=0.9, b=0.4)
    for k in (1, 10, 50):
        exhaustive = index.search(queries, k=k, algorithm="exhaustive")
        assert_same(index.search(queries, k=k, algorithm="maxscore"), exhaustive)
        assert_same(index.search(queries, k=k, algorithm="bmw"), exhaustive)
    assert_same(index.search(queries[:5], k=10), ref.bm25_search(docs, queries[:5], 10, "lucene", 0.9, 0.4))


def test_ties_go_to_the_lower_document():
    docs = [["a", "b"]] * 300 + [["a", "c"]] * 300
    index = BM25Index.build(docs)
    for algorithm in ALGORITHMS:
        d, s = index.search([["a"]], k=5, algorithm=algorithm)
        assert d.tolist() == [[0, 1, 2, 3, 4]]
        d, s = index.search([["c", "a"]], k=3, algorithm=algorithm)
        assert d.tolist() == [[300, 301, 302]]


def test_k_from_one_to_beyond_the_corpus():
    docs = [["x"], ["x", "y"], ["y"], ["z"]]
    index = BM25Index.build(docs)
    d, s = index.search([["x", "y"]], k=10)
    assert d[0, :3].tolist() == [1, 0, 2] and (d[0, 3:] == -1).all() and np.isneginf(s[0, 3:]).all()
    d, _ = index.search([["x", "y"]], k=1)
    assert d.tolist() == [[1]]


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(7)
    docs = random_corpus(rng, 2000, 200)
    queries = random_queries(rng, 300, 200)
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = BM25Index.build(docs)
        r1 = one.search(queries, k=20)
        rk.set_num_threads(3)
        three = BM25Index.build(docs)
        assert three.vocabulary == one.vocabulary
        assert_same(three.search(queries, k=20), r1)
    finally:
        rk.set_num_threads(before)


# ---- edge cases ------------------------------------------------------------

def test_one_document_and_empty_queries():
    index = BM25Index.build(["a single lonely document"], ids=["only"])
    d, s = index.search(["lonely", "", "the and of", "unknownword"], k=3)  # k capped at 1 document
    assert d[:, 0].tolist() == [0, -1, -1, -1] and s[0, 0] > 0
    assert np.isneginf(s[1:]).all()
    assert index.search([], k=3)[0].shape == (0, 1)


def test_term_in_every_document():
    docs = [["common", f"w{i}"] for i in range(1000)]
    index = BM25Index.build(docs, method="robertson")  # robertson idf clamps to 0
    for algorithm in ALGORITHMS:
        d, s = index.search([["common"]], k=3, algorithm=algorithm)
        assert d.tolist() == [[0, 1, 2]] and s.tolist() == [[0.0, 0.0, 0.0]]
    lucene = BM25Index.build(docs)
    assert_same(lucene.search([["common", "w5"]], k=4, algorithm="bmw"),
                lucene.search([["common", "w5"]], k=4, algorithm="exhaustive"))


def test_unicode_texts_and_tokens():
    texts = ["Ünïcödé naïve café", "ΟΔΟΣ οδός", "東京 タワー 東京", "emoji 🙂 text", "naïve naïve"]
    index = BM25Index.build(texts)
    d, _ = index.search(["NAÏVE", "οδος"], k=2)
    assert d[0].tolist() == [4, 0]
    tokens = [["東京", "タワー"], ["🙂", "東京"]]
    tindex = BM25Index.build(tokens)
    assert tindex.search([["東京"]], k=2)[0].tolist() == [[0, 1]]


def test_token_id_documents_and_queries():
    rng = np.random.default_rng(3)
    docs = [rng.integers(0, 50, size=rng.integers(1, 20)) for _ in range(300)]
    queries = [rng.integers(0, 55, size=4) for _ in range(20)]
    index = BM25Index.build(docs)
    expected = ref.bm25_search([d.tolist() for d in docs], [[t for t in q.tolist() if t < 50] for q in queries], 10)
    assert_same(index.search(queries, k=10), expected)
    assert index.vocabulary == []


def test_million_documents():
    # 10^6 documents of token ids: build, then pruned == exhaustive.
    rng = np.random.default_rng(11)
    n = 1_000_000
    lengths = rng.integers(1, 6, size=n)
    flat = (rng.zipf(1.3, size=int(lengths.sum())) % 5000).astype(np.int64)
    docs = np.split(flat, np.cumsum(lengths)[:-1])
    index = BM25Index.build(docs)
    assert index.num_docs == n
    queries = [np.array([1, 7, 300]), np.array([2, 2, 4999]), np.array([0])]
    exhaustive = index.search(queries, k=100, algorithm="exhaustive")
    assert_same(index.search(queries, k=100, algorithm="bmw"), exhaustive)
    assert_same(index.search(queries, k=100, algorithm="maxscore"), exhaustive)


# ---- persistence -------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    texts = [" ".join(doc) for doc in random_corpus(rng, 500, 80)]
    index = BM25Index.build(texts, ids=[f"doc{i}" for i in range(500)], method="bm25+", k1=1.1, b=0.6)
    path = tmp_path / "i.rkidx"
    index.save(path)
    loaded = BM25Index.load(path)
    assert loaded.doc_ids == index.doc_ids and loaded.vocabulary == index.vocabulary
    assert loaded.method == "bm25+" and loaded.params == index.params
    assert loaded.analyzer.config == index.analyzer.config
    queries = [" ".join(q) for q in random_queries(rng, 50, 80)]
    assert_same(loaded.search(queries, k=30), index.search(queries, k=30))
    with pytest.raises(ValueError, match="bm25 index"):
        ImpactIndex.load(path)


def test_corrupt_or_truncated_index_is_refused(tmp_path):
    index = BM25Index.build([["a", "b"], ["b", "c"]] * 200)
    path = tmp_path / "i.rkidx"
    index.save(path)
    raw = bytearray(path.read_bytes())
    corrupt = tmp_path / "corrupt.rkidx"
    raw[len(raw) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(rk.FormatError):
        BM25Index.load(corrupt)
    truncated = tmp_path / "truncated.rkidx"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(rk.FormatError):
        BM25Index.load(truncated)
    other = tmp_path / "other.rk"
    rk.save_arrays(other, {"x": np.arange(3)})
    with pytest.raises(rk.FormatError, match="kind"):
        BM25Index.load(other)
    with pytest.raises(OSError):
        BM25Index.load(tmp_path / "missing.rkidx")


# ---- bad input ----------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    index = BM25Index.build(["a b", "b c"])
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        BM25Index.build(["text", 3])
    with pytest.raises(TypeError, match=r"documents\[1\]\[1\] must be str"):
        BM25Index.build([["a"], ["b", 3]])
    with pytest.raises(TypeError, match=r"queries\[0\]\[1\] must be str"):
        BM25Index.build([["a"]]).search([["a", None]])
    with pytest.raises(TypeError, match=r"queries\[0\]: expected str"):
        BM25Index.build([["a"]]).search([[None]])
    with pytest.raises(TypeError, match="do not mix"):
        BM25Index.build(["text", ["tok"]])
    with pytest.raises(TypeError):
        BM25Index.build("one string")
    with pytest.raises(ValueError, match="empty"):
        BM25Index.build([])
    with pytest.raises(ValueError, match="ids"):
        BM25Index.build(["a", "b"], ids=["1"])
    with pytest.raises(ValueError, match="unique"):
        BM25Index.build(["a", "b"], ids=["x", "x"])
    with pytest.raises(TypeError, match=r"ids\[0\]"):
        BM25Index.build(["a"], ids=[1])
    with pytest.raises(ValueError, match="method"):
        BM25Index.build(["a"], method="bm26")
    with pytest.raises(ValueError, match="b must be"):
        BM25Index.build(["a"], b=1.5)
    with pytest.raises(ValueError, match="k1"):
        BM25Index.build(["a"], k1=float("nan"))
    with pytest.raises(ValueError, match="token ids"):
        BM25Index.build([[1, -2]])
    with pytest.raises(ValueError, match=r"k must be an int in \[1, "):
        index.search(["a"], k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        index.search(["a"], k=2.5)
    with pytest.raises(ValueError, match="algorithm"):
        index.search(["a"], algorithm="wand")
    with pytest.raises(TypeError, match=r"queries\[1\]"):
        index.search(["a", None])
    with pytest.raises(ValueError, match="token"):
        BM25Index.build([["a"]]).search(["raw text"])


def test_impact_weights_must_be_finite_and_non_negative():
    with pytest.raises(ValueError, match="finite"):
        ImpactIndex.build([{"a": float("nan")}])
    with pytest.raises(ValueError, match=">= 0"):
        ImpactIndex.build([{"a": -1.0}])
    index = ImpactIndex.build([{"a": 1.0}])
    with pytest.raises(ValueError, match=">= 0"):
        index.search([{"a": -0.5}])
    with pytest.raises(ValueError, match="bits"):
        ImpactIndex.build([{"a": 1.0}], bits=0)
    with pytest.raises(ValueError, match="integer impacts"):
        ImpactIndex.build([{"a": 1.5}], bits=None)


# ---- learned sparse ---------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 12])
def test_impact_index_equals_reference(bits):
    rng = np.random.default_rng(bits)
    vocab = [f"w{i}" for i in range(80)]
    docs = [{vocab[t]: float(rng.gamma(1.0, 1.0)) for t in rng.choice(80, size=rng.integers(1, 25), replace=False)}
            for _ in range(600)]
    queries = [{vocab[t]: float(rng.random()) for t in rng.choice(80, size=rng.integers(1, 8), replace=False)}
               for _ in range(40)]
    index = ImpactIndex.build(docs, bits=bits)
    for k in (1, 10, 100):
        expected = ref.impact_search(docs, queries, k, bits)
        for algorithm in ALGORITHMS:
            assert_same(index.search(queries, k=k, algorithm=algorithm), expected)


def test_impact_csr_input_with_vocabulary_matches_dict_input():
    hf = pytest.importorskip("ragkernels.hf")
    rng = np.random.default_rng(9)
    rows = [np.sort(rng.choice(30, size=rng.integers(1, 10), replace=False)) for _ in range(200)]
    values = [rng.random(len(r)).astype(np.float32) + 0.01 for r in rows]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    csr = hf.SparseVectors(indptr, np.concatenate(rows).astype(np.int32), np.concatenate(values), 30)
    vocab = [f"tok{i}" for i in range(30)]
    by_csr = ImpactIndex.build(csr, vocabulary=vocab)
    by_dict = ImpactIndex.build([{int(t): float(v) for t, v in zip(r, w)} for r, w in zip(rows, values)])
    q_ids = [{3: 1.0, 7: 0.5}, {29: 2.0}]
    q_tokens = [{"tok3": 1.0, "tok7": 0.5}, {"tok29": 2.0}]
    assert_same(by_csr.search(q_ids, k=10), by_dict.search(q_ids, k=10))
    assert_same(by_csr.search(q_tokens, k=10), by_dict.search(q_ids, k=10))
    q_csr = hf.SparseVectors(np.array([0, 2, 3]), np.array([3, 7, 29], np.int32),
                             np.array([1.0, 0.5, 2.0], np.float32), 30)
    assert_same(by_csr.search(q_csr, k=10), by_dict.search(q_ids, k=10))


def test_windows_and_long_lists_stay_exact():
    # Lists spanning many MaxScore windows (8192 docs) and blocks, a rare term
    # only near the end, and a query whose terms switch from essential to not.
    rng = np.random.default_rng(21)
    n = 40_000
    docs = [["common"] * int(rng.integers(1, 4)) + (["mid"] if i % 7 == 0 else []) +
            (["rare"] if i > n - 50 and i % 3 == 0 else []) for i in range(n)]
    index = BM25Index.build(docs)
    queries = [["common", "mid", "rare"], ["rare", "common"], ["mid", "mid", "common"], ["common"]]
    for k in (1, 10, 1000):
        exhaustive = index.search(queries, k=k, algorithm="exhaustive")
        for algorithm in ALGORITHMS:
            assert_same(index.search(queries, k=k, algorithm=algorithm), exhaustive)


def test_integer_impacts_are_kept():
    index = ImpactIndex.build([{"a": 3, "b": 1}, {"a": 5}], bits=None)
    d, s = index.search([{"a": 1.0, "b": 2.0}], k=2)
    assert d.tolist() == [[0, 1]] and s.tolist() == [[5.0, 5.0]]


# ---- parity with bm25s on real data -------------------------------------------------

def _beir(name):
    root = data_dir() / name
    if not root.exists():
        pytest.skip(f"{root} is absent (set RAGKERNELS_DATA)")
    return rk.data.load_beir(root)


def _bm25s_tokens(texts):
    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False,
                          show_progress=False)


@pytest.mark.parametrize("name", ["beir/scifact", "classic/cacm"])
@pytest.mark.parametrize("method", METHODS)
def test_scores_and_top10_equal_bm25s(name, method):
    ds = _beir(name)
    docs = _bm25s_tokens(ds.corpus.full_texts())
    queries = _bm25s_tokens(ds.queries.texts)
    retriever = bm25s.BM25(method=method, k1=1.2, b=0.75)
    retriever.index(docs, show_progress=False)
    index = BM25Index.build(docs, method=method, k1=1.2, b=0.75)
    ours_docs, ours_scores = index.search(queries, k=10)
    for i, q in enumerate(queries):
        if not any(t in retriever.vocab_dict for t in q):
            assert (ours_docs[i] == -1).all()
            continue
        full = retriever.get_scores(q)
        kept = ours_docs[i] >= 0
        # Scores: bm25s's float32 values to float32 rounding (a repeated query
        # term is summed in another order).
        np.testing.assert_allclose(ours_scores[i][kept], full[ours_docs[i][kept]], rtol=3e-7, atol=0)
        # Top-10: bm25s's ten best scores, with ties at the cut-off in any order.
        expected = np.sort(full)[::-1][: kept.sum()]
        np.testing.assert_allclose(ours_scores[i][kept], expected, rtol=3e-7)
        cutoff = ours_scores[i][kept][-1]
        assert set(np.flatnonzero(full > cutoff * (1 + 1e-6))) <= set(ours_docs[i][kept])


def test_text_index_equals_index_of_bm25s_tokens():
    ds = _beir("beir/scifact")
    texts = ds.corpus.full_texts()
    from_text = BM25Index.build(texts, k1=1.2, b=0.75)
    from_tokens = BM25Index.build(_bm25s_tokens(texts), k1=1.2, b=0.75)
    assert sorted(from_text.vocabulary) == sorted(from_tokens.vocabulary)
    assert_same(from_text.search(ds.queries.texts, k=100), from_tokens.search(_bm25s_tokens(ds.queries.texts), k=100))


@pytest.mark.parametrize("name", ["beir/scifact", "classic/cacm"])
def test_quality_equals_bm25s(name):
    ds = _beir(name)
    docs = _bm25s_tokens(ds.corpus.full_texts())
    queries = _bm25s_tokens(ds.queries.texts)
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(docs, show_progress=False)
    results, scores = retriever.retrieve(queries, k=100, show_progress=False, n_threads=1)
    theirs = {q: {ds.corpus.ids[d]: float(s) for d, s in zip(r, sr) if s > 0}
              for q, r, sr in zip(ds.queries.ids, results, scores)}
    index = BM25Index.build(ds.corpus.full_texts(), ids=ds.corpus.ids, k1=1.2, b=0.75)
    ours = index.to_run(*index.search(ds.queries.texts, k=100), ds.queries.ids)
    measures = ["ndcg_cut_10", "recall_100"]
    a = rk.metrics.evaluate(ds.qrels, ours, measures).summary
    b = rk.metrics.evaluate(ds.qrels, theirs, measures).summary
    for m in measures:
        assert a[m] == pytest.approx(b[m], abs=1e-4), m


def test_document_frequencies_count_documents_per_term():
    index = BM25Index.build([["a", "b", "a"], ["b"], ["c", "b"]], ids=["x", "y", "z"])
    df = dict(zip(index.vocabulary, index.document_frequencies().tolist()))
    assert df == {"a": 1, "b": 3, "c": 1}


def test_term_ids_analyze_texts_as_the_documents_were():
    index = BM25Index.build(["Running dogs", "cats sat on the mat", "Ünïcode naïve"])
    texts = ["the dogs RAN", "", "naïve cats ünïcode birds"]
    values, offsets = index.term_ids(texts)
    position = {t: i for i, t in enumerate(index.vocabulary)}
    expected = [[position.get(t, -1) for t in tokens] for tokens in rk.text.Analyzer().tokenize(texts)]
    assert [values[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])] == expected
    assert -1 in values.tolist()  # "ran"/"bird" are not in the index
    with pytest.raises(ValueError, match="built from tokens, not texts"):
        BM25Index.build([["a", "b"]]).term_ids(["a"])
    with pytest.raises(TypeError, match="not one str"):
        index.term_ids("dogs")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        index.term_ids(["dogs", 3])


class FreshItems(list):
    """A list whose items come back as new str objects on every access."""

    def __getitem__(self, i):
        return "".join(list(super().__getitem__(i)))


def test_texts_that_are_temporaries_stay_alive_while_the_gil_is_released():
    texts = ["ünïcode cats " * 40 + str(i) for i in range(64)]
    index = BM25Index.build(texts)
    values, offsets = index.term_ids(FreshItems(texts))
    want_values, want_offsets = index.term_ids(texts)
    assert values.tolist() == want_values.tolist() and offsets.tolist() == want_offsets.tolist()
    ids, scores = index.search(FreshItems(texts[:8]), k=3)
    want_ids, want_scores = index.search(texts[:8], k=3)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)



# ---- hostile files and arguments (issue 14) ----------------------------------------

def _saved_index(tmp_path, **params):
    rng = np.random.default_rng(14)
    index = BM25Index.build(random_corpus(rng, 600, 50), ids=[f"d{i}" for i in range(600)], **params)
    path = tmp_path / "i.rkidx"
    index.save(path)
    return index, path, random_queries(rng, 40, 50)


def _forge(tmp_path, path, section, change):
    """A copy of the index at `path` with `change(array)` applied to one
    section, every checksum valid: only the loader's own checks can refuse it."""
    data = path.read_bytes()
    array = rk.load_arrays(path)[section].copy()
    change(array)
    forged = tmp_path / f"forged-{section}.rkidx"
    forged.write_bytes(core_ref.patch_section(data, section, array.tobytes()))
    return forged


@pytest.mark.parametrize("position,value,match", [
    (0, float("nan"), "k1"), (0, float("inf"), "k1"), (0, -1.0, "k1"), (1, float("nan"), "b"),
    (1, 2.0, "b"), (2, float("-inf"), "delta"), (3, float("nan"), "average document length"),
    (3, float("inf"), "average document length"), (3, 1e300, "average document length"),
    (3, 0.0, "average document length"),
])
def test_load_refuses_bad_bm25_parameters_behind_valid_checksums(tmp_path, position, value, match):
    _, path, _ = _saved_index(tmp_path)
    forged = _forge(tmp_path, path, "params", lambda a: a.__setitem__(position, value))
    with pytest.raises(rk.FormatError, match=f"{forged}.*{match}"):
        BM25Index.load(forged)


@pytest.mark.parametrize("section", ["term_max", "block_max"])
@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_load_refuses_maxima_that_would_make_pruning_disagree(tmp_path, section, factor):
    # A lowered term_max makes MaxScore/BMW skip documents TAAT finds; a
    # raised one is harmless to results but is no maximum of this index.
    index, path, queries = _saved_index(tmp_path)
    forged = _forge(tmp_path, path, section, lambda a: a.__setitem__(np.argmax(a), a.max() * factor))
    with pytest.raises(rk.FormatError, match=f"{forged}.*maximum"):
        BM25Index.load(forged)
    loaded = BM25Index.load(path)  # the untouched file still loads, and every algorithm agrees
    for algorithm in ALGORITHMS:
        assert_same(loaded.search(queries, k=10, algorithm=algorithm), index.search(queries, k=10))


@pytest.mark.parametrize("section", ["term_idf", "term_nonoccurrence"])
def test_load_refuses_idf_that_disagrees_with_document_frequencies(tmp_path, section):
    _, path, _ = _saved_index(tmp_path, method="bm25+")
    forged = _forge(tmp_path, path, section, lambda a: a.__setitem__(3, a[3] + 1))
    with pytest.raises(rk.FormatError, match=f"{forged}.*idf of term 3"):
        BM25Index.load(forged)


@pytest.mark.parametrize("section", ["vocab_chars", "doc_id_chars"])
def test_load_names_the_file_when_strings_are_not_utf8(tmp_path, section):
    _, path, _ = _saved_index(tmp_path)
    forged = _forge(tmp_path, path, section, lambda a: a.__setitem__(0, 0xFF))
    with pytest.raises(rk.FormatError, match=f"{forged}.*not valid UTF-8"):
        BM25Index.load(forged)


def test_search_caps_k_at_the_corpus_size():
    index = BM25Index.build(["cat", "cat dog", "dog", "bird"])
    docs, scores = index.search(["cat"] * 200, k=10**12)  # 2.4 GB of padding before the cap
    assert docs.shape == scores.shape == (200, 4)
    assert docs[0].tolist() == [0, 1, -1, -1]


@pytest.mark.parametrize("k,error", [(2**63, ValueError), (2**70, ValueError), (-1, ValueError),
                                     ("10", TypeError), (True, TypeError)])
def test_search_k_out_of_range_names_k(k, error):
    index = BM25Index.build(["cat", "dog"])
    with pytest.raises(error, match="search: k must be an int"):
        index.search(["cat"], k=k)


def test_build_refuses_parameters_given_as_strings():
    with pytest.raises(TypeError, match="build: k1 must be a real number, got str '1.2'"):
        BM25Index.build(["cat"], k1="1.2")
    with pytest.raises(TypeError, match="build: b must be a real number"):
        BM25Index.build(["cat"], b=None)


def test_to_run_refuses_rows_outside_the_index():
    index = BM25Index.build(["cat", "dog"], ids=["a", "b"])
    docs, scores = index.search(["cat"], k=2)
    assert index.to_run(docs, scores, ["q"]) == {"q": {"a": pytest.approx(float(scores[0, 0]))}}
    with pytest.raises(ValueError, match=r"to_run: docs\[0, 1\] = 7 is not a document of this index"):
        index.to_run(np.array([[0, 7]]), scores, ["q"])
    with pytest.raises(ValueError, match="to_run: docs and scores must be 2-D of one shape"):
        index.to_run(docs[:, :1], scores, ["q"])


def test_lone_surrogates_in_texts_are_non_word_characters_as_in_bm25s():
    # bm25s's regex and str.lower() see a surrogate as a non-word character;
    # the analyzer does the same (no UnicodeEncodeError that names no document).
    texts = ["fine"] * 9000 + ["bad\udcffcat sat"]  # past the first batch of the Python loop
    index = BM25Index.build(texts)
    assert set(index.vocabulary) == {"fine", "bad", "cat", "sat"}
    docs, _ = index.search(["cat \ud800", "\ud800"], k=1)
    assert docs.tolist() == [[9000], [-1]]


def test_lone_surrogate_in_a_token_names_it_in_the_whole_input():
    tokens = [["fine"]] * 9000 + [["ok", "bad\udcff"]]
    with pytest.raises(ValueError, match=r"build: documents\[9000\]\[1\] cannot be encoded as UTF-8"):
        BM25Index.build(tokens)
    with pytest.raises(ValueError, match=r"search: queries\[1\]\[0\] cannot be encoded as UTF-8"):
        BM25Index.build([["cat"]]).search([["cat"], ["\ud800"]])


def test_progress_bars_draw_their_final_line_once_in_a_log(capsys):
    # tqdm's close() redraws the final state; an update() reaching the total
    # drew it too, so a log showed "100%" twice (issue 14).
    BM25Index.build([f"doc {i}" for i in range(20_000)], show_progress=True).search(
        ["doc"] * 9000, k=1, show_progress=True)
    rk.text.Analyzer().tokenize(["a b"] * 10, show_progress=True)
    err = capsys.readouterr().err
    for desc in ("Index", "Search", "Tokenize"):
        assert sum("100%" in line and desc in line for line in err.replace("\r", "\n").splitlines()) == 1, err


def test_load_refuses_repeated_doc_ids_as_build_does(tmp_path):
    # Found by the fuzzer (bm25_fixed): to_run merged the two documents silently.
    _, path, _ = _saved_index(tmp_path)
    forged = _forge(tmp_path, path, "doc_id_chars", lambda a: a.__setitem__(3, ord("0")))  # "d1" -> "d0"
    with pytest.raises(rk.FormatError, match=f"{forged}: doc id of document 1 repeats an earlier one"):
        BM25Index.load(forged)


def test_load_bounds_the_documents_of_an_impact_index_without_ids(tmp_path):
    # Found by the fuzzer (impact_fixed): a 2 KB file claimed 2**31 documents
    # and every search allocated gigabytes.
    path = tmp_path / "impact.rkidx"
    ImpactIndex.build([{"cat": 1.0}, {"dog": 2.0}, {}]).save(path)
    assert ImpactIndex.load(path).num_docs == 3  # a trailing empty document is fine
    forged = _forge(tmp_path, path, "meta", lambda a: a.__setitem__(2, 2**31))
    with pytest.raises(rk.FormatError, match="2147483648 documents but only 2 postings and no doc ids"):
        ImpactIndex.load(forged)


def test_token_queries_on_an_index_without_terms_return_empty_rows():
    # Found by the fuzzer (beir_corpus): "this index has no string vocabulary".
    index = BM25Index.build(["", "the a"])
    for queries in ([["cat"]], [{"cat": 1.0}]):
        docs, scores = index.search(queries, k=2)
        assert docs.tolist() == [[-1, -1]] and np.isneginf(scores).all()
