"""ragkernels.fusion against the Python reference, ranx.fuse on real runs,
edge cases and bad input."""
import json
import math
import random

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.fusion import METHODS, NORMS
from tests.reference import data_dir
from tests.reference import fusion as ref

# ranx's methods that need no training data (wrrf is ours).
RANX_METHODS = [m for m in METHODS if m != "wrrf"]
PARAMS = {"gmnz": {"gamma": 0.7}, "rbc": {"phi": 0.8}, "logn_isr": {"sigma": 0.05}, "rrf": {"k": 60}}


def params_for(method, n_runs):
    p = dict(PARAMS.get(method, {}))
    if method in ("wsum", "wmnz", "mixed", "wrrf", "w_bordafuse"):
        p["weights"] = [round(0.2 + 0.6 * i / max(n_runs - 1, 1), 3) for i in range(n_runs)][::-1]
    return p


def random_dict_runs(rng, n_runs, n_queries=7, pool=40, max_depth=30, tie_levels=None):
    """Dict runs with overlapping, partly disjoint docs and many ties."""
    runs = []
    for _ in range(n_runs):
        run = {}
        for q in range(n_queries):
            depth = int(rng.integers(0, max_depth + 1))
            docs = rng.choice(pool, size=min(depth, pool), replace=False)
            if tie_levels:
                scores = rng.integers(0, tie_levels, size=len(docs)).astype(float) * 0.25 - 1.0
            else:
                scores = rng.normal(size=len(docs)) * 5
            run[f"q{q}"] = {f"d{d}": float(s) for d, s in zip(docs, scores)}
        runs.append(run)
    return runs


def assert_same_run(got, expected, exact=True):
    assert list(got) == list(expected)
    for q in expected:
        assert list(got[q]) == list(expected[q]), q
        g = np.array(list(got[q].values()), dtype=np.float64)
        e = np.array(list(expected[q].values()), dtype=np.float64)
        if exact:
            np.testing.assert_array_equal(g, e, err_msg=q)
        else:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15, err_msg=q)


# ---- the ranx order ----------------------------------------------------------------------

def test_reference_argsort_is_numbas_quicksort():
    numba = pytest.importorskip("numba")
    argsort = numba.njit(lambda x: np.argsort(-x))
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 15, 16, 17, 40, 300):
        for levels in (1, 3, 50, None):
            x = rng.normal(size=n) if levels is None else rng.integers(0, levels, size=n).astype(float)
            assert ref.numba_argsort_desc(x.tolist()) == argsort(x).tolist()


@pytest.mark.parametrize("n", [1, 2, 14, 15, 16, 33, 257])
def test_single_run_keeps_ranx_tie_order(n):
    rng = np.random.default_rng(n)
    run = {"q": {f"d{i}": float(s) for i, s in enumerate(rng.integers(0, 4, size=n))}}
    got = rk.fusion.fuse([run], method="sum", norm=None)
    assert_same_run(got, {"q": ref.ranx_sorted(ref.ranx_sorted(run["q"]))})


# ---- exactness against the reference -----------------------------------------------------

@pytest.mark.parametrize("norm", list(NORMS) + [None])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_norm_equals_reference(method, norm):
    rng = np.random.default_rng(hash((method, norm)) % 2**32)
    for n_runs, ties in ((1, None), (3, 4), (5, None)):
        runs = random_dict_runs(rng, n_runs, tie_levels=ties)
        p = params_for(method, n_runs)
        got = rk.fusion.fuse(runs, method=method, norm=norm, params=p)
        assert_same_run(got, ref.fuse_ref(runs, method, norm, **p))


@pytest.mark.parametrize("ties", [None, 3])
@pytest.mark.parametrize("method", ["sum", "mnz", "wsum", "rrf", "max"])
def test_long_lists_equal_reference(method, ties):
    # Fused lists of hundreds of docs: the radix path (distinct scores) and
    # the numba replay (ties) of the ranx order.
    rng = np.random.default_rng(21)
    runs = random_dict_runs(rng, 3, n_queries=3, pool=300, max_depth=200, tie_levels=ties)
    p = params_for(method, 3)
    for norm in ("min-max", "zmuv", None):
        got = rk.fusion.fuse(runs, method=method, norm=norm, params=p)
        assert_same_run(got, ref.fuse_ref(runs, method, norm, **p))


@pytest.mark.parametrize("method", ["rrf", "sum", "mnz", "wsum", "med", "min"])
def test_arrays_equal_dicts(method):
    rng = np.random.default_rng(3)
    runs = []
    for depth, dtype, sdtype in ((25, np.int64, np.float32), (9, np.int32, np.float64), (40, np.int64, np.float64)):
        ids = np.stack([rng.choice(60, size=depth, replace=False) for _ in range(11)]).astype(dtype)
        ids[2, 3:] = -1  # short row
        ids[5, 0] = -1   # a pad in the middle
        scores = rng.integers(0, 6, size=ids.shape).astype(sdtype)
        scores[ids == -1] = -np.inf
        runs.append((ids, scores))
    p = params_for(method, 3)
    got_ids, got_scores = rk.fusion.fuse(runs, method=method, params=p)
    fused = ref.fuse_ref(ref.arrays_to_dicts(runs), method, "min-max", **p)
    width = max(len(v) for v in fused.values())
    exp_ids, exp_scores = ref.dicts_to_arrays(fused, 11, width)
    assert got_ids.dtype == np.int64 and got_scores.dtype == np.float64
    np.testing.assert_array_equal(got_ids, exp_ids)
    np.testing.assert_array_equal(got_scores, exp_scores)
    ids5, scores5 = rk.fusion.fuse(runs, method=method, params=p, top_k=5)
    np.testing.assert_array_equal(ids5, exp_ids[:, :5])
    np.testing.assert_array_equal(scores5, exp_scores[:, :5])


def test_per_query_weights_equal_reference():
    rng = np.random.default_rng(5)
    runs = random_dict_runs(rng, 2)
    weights = {q: [float(w), 1.0 - float(w)] for q, w in zip(sorted(runs[0]), rng.random(7))}
    for method in ("wsum", "wrrf", "mixed"):
        got = rk.fusion.fuse(runs, method=method, weights=weights)
        assert_same_run(got, ref.fuse_ref(runs, method, "min-max", weights=weights))


def test_result_does_not_depend_on_threads():
    rng = np.random.default_rng(9)
    runs = random_dict_runs(rng, 4, n_queries=64, tie_levels=3)
    before = rk.get_num_threads()
    try:
        rk.set_num_threads(1)
        one = rk.fusion.fuse(runs, method="mnz", norm="zmuv")
        rk.set_num_threads(4)
        four = rk.fusion.fuse(runs, method="mnz", norm="zmuv")
    finally:
        rk.set_num_threads(before)
    assert_same_run(one, four)


# ---- parity with ranx on real runs -------------------------------------------------------

ranx = pytest.importorskip("ranx")


def assert_ranx_parity(runs, methods=RANX_METHODS, norms=tuple(NORMS) + (None,)):
    """rk.fusion.fuse == ranx.fuse, ids in order and float64 scores, for every
    method x norm on `runs` (a list of {qid: {doc: score}} dicts).

    Reusable by other real-data tests (e.g. BM25 + dense on SciFact). Borda
    (norm or method) is compared up to the order of tied docs: ranx takes its
    candidates from a Python set, whose order changes with PYTHONHASHSEED;
    rank-based methods after the borda norm are skipped for that reason.
    """
    ranx_runs = [ranx.Run(r) for r in runs]
    for method in methods:
        for norm in norms:
            if norm == "borda" and method in ("rrf", "wrrf", "isr", "log_isr", "logn_isr", "rbc",
                                              "bordafuse", "w_bordafuse"):
                continue
            p = params_for(method, len(runs))
            expected = ranx.fuse(ranx_runs, norm=norm, method=method, params=p).to_dict()
            got = rk.fusion.fuse(runs, method=method, norm=norm, params=p)
            if norm == "borda" or method in ("bordafuse", "w_bordafuse"):
                assert got.keys() == expected.keys()
                for q in expected:
                    assert got[q] == expected[q], (method, norm, q)
                    assert list(got[q].values()) == sorted(expected[q].values(), reverse=True)
            else:
                try:
                    assert_same_run(got, dict(expected))
                except AssertionError as e:
                    raise AssertionError(f"method={method} norm={norm}: {e}") from None


def read_trec_run(path):
    run = {}
    with open(path) as f:
        for line in f:
            q, _, d, _, s, _ = line.split()
            run.setdefault(q, {})[d] = float(s)
    return run


DL19 = ["bm25", "bm25-rm3", "d-bert-kd-tasb", "open-ai-ada2", "splade-p-p-ensemble-distil"]


@pytest.fixture(scope="module")
def dl19_runs():
    """The real DL19 runs (top-100, 43 queries): BM25, BM25+RM3, TAS-B, ada2,
    SPLADE++, and RepLLaMA (top-1000)."""
    root = data_dir()
    if root is None or not (root / "msmarco-passage" / "runs").is_dir():
        pytest.skip("shared data (msmarco-passage/runs) not found; set RAGKERNELS_DATA")
    runs = root / "msmarco-passage" / "runs"
    out = {n: read_trec_run(runs / f"run.dl19-passage.{n}.top100.txt") for n in DL19}
    out["rep-llama"] = read_trec_run(runs / "run.dl19-passage.rep-llama.top1000.txt")
    return out


@pytest.fixture(scope="module")
def scifact_runs():
    root = data_dir()
    if root is None or not (root / "beir" / "scifact" / "corpus.jsonl").is_file():
        pytest.skip("shared data (beir/scifact) not found; set RAGKERNELS_DATA")
    base = root / "beir" / "scifact"
    with open(base / "corpus.jsonl") as f:
        docs = [json.loads(line) for line in f]
    test_ids = sorted({line.split("\t")[0] for line in open(base / "qrels" / "test.tsv").read().splitlines()[1:]})
    queries = {}
    with open(base / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    texts = [d["title"] + " " + d["text"] for d in docs]
    ids = [d["_id"] for d in docs]
    qids = test_ids[:40]
    runs = []
    for params in ({"k1": 0.9, "b": 0.4}, {"k1": 1.5, "b": 0.75}, {"method": "bm25+", "k1": 1.2, "b": 0.75}):
        index = rk.sparse.BM25Index.build(texts, ids=ids, **params)
        d, s = index.search([queries[q] for q in qids], k=100)
        runs.append(index.to_run(d, s, qids))
    return runs


def test_ranx_parity_dl19_every_method_and_norm(dl19_runs):
    # Sparse, dense and learned-sparse systems; 8 queries keep ranx quick.
    runs = [{q: dl19_runs[n][q] for q in sorted(dl19_runs[n])[:8]}
            for n in ("bm25", "open-ai-ada2", "splade-p-p-ensemble-distil")]
    assert_ranx_parity(runs)


def test_ranx_parity_dl19_six_systems(dl19_runs):
    runs = [dl19_runs[n] for n in DL19 + ["rep-llama"]]
    assert_ranx_parity(runs, methods=["rrf", "sum", "mnz", "wsum"], norms=("min-max", "zmuv"))


def test_ranx_parity_scifact_bm25_runs(scifact_runs):
    assert_ranx_parity(scifact_runs, methods=["rrf", "sum", "mnz", "max", "min", "med", "anz", "wsum"],
                       norms=("min-max", "max", "sum", "zmuv", "rank", None))


def test_ranx_run_in_ranx_run_out(dl19_runs):
    runs = [ranx.Run(dl19_runs[n]) for n in DL19[:3]]
    got = rk.fusion.fuse(runs, method="rrf")
    assert isinstance(got, ranx.Run)
    assert_same_run(got.to_dict(), dict(ranx.fuse(runs, method="rrf").to_dict()))


# ---- edge cases --------------------------------------------------------------------------

def test_empty_runs_and_queries():
    assert rk.fusion.fuse([{}, {}]) == {}
    assert rk.fusion.fuse([{"q": {}}, {"q": {}}], method="mnz") == {"q": {}}
    ids, scores = rk.fusion.fuse([(np.zeros((0, 4), np.int64), np.zeros((0, 4), np.float32))] * 2)
    assert ids.shape == (0, 0) and scores.shape == (0, 0)
    ids, scores = rk.fusion.fuse([(np.full((2, 3), -1), np.full((2, 3), -np.inf))] * 2, top_k=2)
    np.testing.assert_array_equal(ids, np.full((2, 2), -1))
    assert np.all(scores == -np.inf)


def test_disjoint_runs_and_single_doc():
    a = {"q": {"a": 2.0, "b": 1.0}}
    b = {"q": {"c": 7.0}}
    for method in ("rrf", "sum", "mnz", "max", "min", "med", "anz"):
        assert_same_run(rk.fusion.fuse([a, b], method=method), ref.fuse_ref([a, b], method))
    # min-max of one doc: (s - s) / 1e-9 = 0, as ranx.
    assert rk.fusion.fuse([b, b], method="sum") == {"q": {"c": 0.0}}
    assert rk.fusion.fuse([b], method="rrf", k=0) == {"q": {"c": 1.0}}
    # max of a doc missing from a run: the -1e9 fill never wins.
    assert rk.fusion.fuse([a, b], method="max", norm=None)["q"] == {"c": 7.0, "a": 2.0, "b": 1.0}


@pytest.mark.parametrize("bad,name", [(math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_non_finite_scores_are_refused_naming_run_query_and_doc(bad, name):
    # One -inf used to turn every fused score of the query into NaN (issue 14).
    with pytest.raises(ValueError, match=rf"runs\[1\]\['q'\]\['x'\] is {name}; scores must be finite"):
        rk.fusion.fuse([{"q": {"x": 1.0}}, {"q": {"y": 2.0, "x": bad}}], method="sum")
    ids = np.array([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=rf"runs\[0\] scores\[1, 0\] is {name} \(doc 3, query row 1\)"):
        rk.fusion.fuse([(ids, np.array([[1.0, 0.5], [bad, 0.0]]))])


# ---- bad input ---------------------------------------------------------------------------

def test_bad_method_and_norm():
    runs = [{"q": {"a": 1.0}}] * 2
    with pytest.raises(ValueError, match="method must be one of .*got 'combsum'"):
        rk.fusion.fuse(runs, method="combsum")
    with pytest.raises(ValueError, match="norm must be one of .*got 'l2'"):
        rk.fusion.fuse(runs, norm="l2")
    with pytest.raises(ValueError, match="takes no weights"):
        rk.fusion.fuse(runs, method="rrf", weights=[1, 1])
    with pytest.raises(ValueError, match="'wsum' needs weights"):
        rk.fusion.fuse(runs, method="wsum")
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        rk.fusion.fuse(runs, method="wsum", weights=[1, 2, 3])
    with pytest.raises(ValueError, match="needs params=\\{'gamma'"):
        rk.fusion.fuse(runs, method="gmnz")
    with pytest.raises(ValueError, match="phi must be in"):
        rk.fusion.fuse(runs, method="rbc", params={"phi": 2.0})
    with pytest.raises(ValueError, match="k must be a finite number >= 0"):
        rk.fusion.fuse(runs, k=-1)
    with pytest.raises(TypeError, match="k must be a number"):
        rk.fusion.fuse(runs, k="60")
    with pytest.raises(ValueError, match="unknown"):
        rk.fusion.fuse(runs, params={"alpha": 1})
    with pytest.raises(ValueError, match="top_k"):
        rk.fusion.fuse(runs, top_k=0)


def test_bad_runs():
    with pytest.raises(ValueError, match="at least one run"):
        rk.fusion.fuse([])
    with pytest.raises(TypeError, match="must be a list of runs"):
        rk.fusion.fuse({"q": {"a": 1.0}})
    with pytest.raises(TypeError, match=r"runs\[1\] must be a dict"):
        rk.fusion.fuse([{"q": {"a": 1.0}}, 3])
    with pytest.raises(TypeError, match=r"runs\[1\] is a arrays run but runs\[0\] is a dict run"):
        rk.fusion.fuse([{"q": {}}, (np.zeros((1, 1), np.int64), np.zeros((1, 1)))])
    with pytest.raises(ValueError, match=r"runs\[1\] lacks query 'q2'"):
        rk.fusion.fuse([{"q1": {}, "q2": {}}, {"q1": {}, "q3": {}}])
    with pytest.raises(ValueError, match=r"runs\[1\] has 1 queries"):
        rk.fusion.fuse([{"q1": {}, "q2": {}}, {"q1": {}}])
    with pytest.raises(TypeError, match=r"doc ids must be str, got int"):
        rk.fusion.fuse([{"q": {1: 1.0}}])
    with pytest.raises(TypeError, match=r"scores must be numbers, got str"):
        rk.fusion.fuse([{"q": {"a": "high"}}])
    with pytest.raises(TypeError, match=r"runs\[0\]\['q'\] must be a dict"):
        rk.fusion.fuse([{"q": [("a", 1.0)]}])


def test_bad_arrays():
    ids = np.array([[1, 2, 3]], np.int64)
    scores = np.array([[3.0, 2.0, 1.0]], np.float32)
    with pytest.raises(TypeError, match=r"runs\[0\] ids must be int32 or int64, got float64 with shape \(1, 3\)"):
        rk.fusion.fuse([(ids.astype(np.float64), scores)])
    with pytest.raises(TypeError, match=r"runs\[1\] scores must be float32 or float64, got int64"):
        rk.fusion.fuse([(ids, scores), (ids, ids)])
    with pytest.raises(ValueError, match=r"runs\[0\] ids and scores must be 2-D of one shape"):
        rk.fusion.fuse([(ids, scores[:, :2].copy())])
    with pytest.raises(ValueError, match=r"runs\[0\] ids and scores must be 2-D"):
        rk.fusion.fuse([(ids[0], scores[0])])
    with pytest.raises(ValueError, match=r"runs\[1\] has 2 rows, runs\[0\] has 1"):
        rk.fusion.fuse([(ids, scores), (np.repeat(ids, 2, 0), np.repeat(scores, 2, 0))])
    wide = np.arange(12, dtype=np.int64).reshape(2, 6)
    with pytest.raises(ValueError, match=r"runs\[0\] ids must be C-contiguous"):
        rk.fusion.fuse([(wide[:, ::2], np.ones((2, 3), np.float32))])
    with pytest.raises(ValueError, match=r"runs\[0\] lists doc 2 twice in row 0"):
        rk.fusion.fuse([(np.array([[2, 2]]), np.array([[1.0, 0.5]]))])
    with pytest.raises(ValueError, match=r"ids must be >= 0, or -1"):
        rk.fusion.fuse([(np.array([[-5]]), np.array([[1.0]]))])
    with pytest.raises(ValueError, match=r"must be an \(ids, scores\) pair"):
        rk.fusion.fuse([(ids, scores, scores)])
    with pytest.raises(TypeError, match="per-query weights of array runs"):
        rk.fusion.fuse([(ids, scores)] * 2, method="wsum", weights={"0": [1, 1]})


# ---- weight search and adaptive weights --------------------------------------------------

def test_weight_grid_is_ranx_grid():
    from ranx.fusion_optimization.optimize_weights import get_possible_weights, get_trial_configs

    for step, n in ((0.1, 2), (0.1, 3), (0.05, 2), (0.25, 4)):
        expected = get_trial_configs(get_possible_weights(step), n)
        assert rk.fusion._weight_grid(step, n) == [tuple(map(float, w)) for w in expected]


def test_optimize_fusion_picks_the_best_trial(dl19_runs):
    qrels = {}
    root = data_dir()
    with open(root / "msmarco-passage" / "trec-dl-2019" / "qrels.dl19-passage.txt") as f:
        for line in f:
            q, _, d, r = line.split()
            qrels.setdefault(q, {})[d] = int(r)
    runs = [dl19_runs["bm25"], dl19_runs["open-ai-ada2"]]
    best, report = rk.fusion.optimize_fusion(qrels, runs, method="wsum", metric="ndcg@10",
                                             return_optimization_report=True)
    assert len(report) == 11
    top = max(report.values())
    assert report[str(best["weights"])] == top
    assert str(best["weights"]) == [k for k, v in report.items() if v == top][-1]  # the last best, as ranx
    ev = rk.metrics.evaluate(qrels, rk.fusion.fuse(runs, method="wsum", params=best), "ndcg_cut.10")
    assert ev.summary["ndcg_cut_10"] == pytest.approx(top)
    best_k = rk.fusion.optimize_fusion(qrels, runs, method="rrf", metric="map", min_k=10, max_k=30)
    assert best_k["k"] in (10, 20, 30)


def test_idf_weights():
    index = rk.sparse.BM25Index.build(["the cat sat", "the dog ran", "the fox", "a cat"], ids=list("abcd"))
    w = rk.fusion.idf_weights(index, {"q1": "the", "q2": "fox", "q3": "cat fox", "q4": "zebra"}, low=0.1, high=0.9)
    assert w["q1"] == pytest.approx([0.1, 0.9])  # a stopword: no known term
    assert w["q2"] == pytest.approx([0.9, 0.1])  # df 1: the rarest term
    n = 4
    idf = lambda df: math.log(1 + (n - df + 0.5) / (df + 0.5))  # noqa: E731
    s = (idf(2) + idf(1)) / 2 / idf(1)
    assert w["q3"] == pytest.approx([0.1 + 0.8 * s, 0.9 - 0.8 * s])
    assert w["q4"] == pytest.approx([0.1, 0.9])
    arr = rk.fusion.idf_weights(index, ["fox", "cat fox"], df={"fox": 1, "cat": 2}, low=0.1, high=0.9)
    np.testing.assert_allclose(arr, [w["q2"], w["q3"]])
    with pytest.raises(ValueError, match="low and high"):
        rk.fusion.idf_weights(index, ["x"], low=-1)
    fused = rk.fusion.fuse([{"q2": {"a": 1.0}}, {"q2": {"b": 1.0}}], method="wsum", norm=None,
                           weights={"q2": w["q2"]})
    assert list(fused["q2"]) == ["a", "b"]


def test_hypothesis_random_runs():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    docs = st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]),
                           st.sampled_from([0.0, 0.5, 1.0, -2.0, 3.25, 1e-12]), max_size=12)

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(st.lists(docs, min_size=1, max_size=4), st.sampled_from(METHODS),
                      st.sampled_from(list(NORMS) + [None]))
    def check(per_run, method, norm):
        runs = [{"q": d} for d in per_run]
        p = params_for(method, len(runs))
        assert_same_run(rk.fusion.fuse(runs, method=method, norm=norm, params=p),
                        ref.fuse_ref(runs, method, norm, **p))

    check()


def test_random_module_seed_is_not_used():
    # fuse is deterministic: the same call twice gives the same dict order.
    rng = np.random.default_rng(11)
    runs = random_dict_runs(rng, 3, tie_levels=2)
    random.seed(1)
    a = rk.fusion.fuse(runs, method="rrf")
    random.seed(2)
    assert_same_run(a, rk.fusion.fuse(runs, method="rrf"))


def test_ranx_parity_on_scifact_bm25_and_dense(scifact, scifact_subset, scifact_embeddings):
    """The issue's parity test: a real BM25 run and a real dense run of BEIR
    SciFact (test queries, the documents the embeddings cover)."""
    doc_ids, texts = scifact_subset
    bm25 = rk.sparse.BM25Index.build(texts, ids=doc_ids)
    queries = scifact.queries
    bm25_run = bm25.to_run(*bm25.search(queries.texts, k=100), queries.ids)
    flat = rk.dense.FlatIndex(scifact_embeddings["docs"], metric="ip", ids=doc_ids)
    dense_run = flat.to_run(*flat.search(scifact_embeddings["queries"], k=100), queries.ids)
    runs = [{q: r for q, r in run.items() if r} for run in (bm25_run, dense_run)]
    shared = set(runs[0]) & set(runs[1])
    assert_ranx_parity([{q: run[q] for q in sorted(shared)} for run in runs])
