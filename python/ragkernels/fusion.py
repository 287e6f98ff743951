"""Hybrid fusion of ranked runs: RRF, CombSUM & co, score normalizations.

Every method and normalization of ``ranx.fuse`` that needs no training
data is computed in the C++ core, in float64 and in parallel over queries,
with ranx's exact numbers *and* its exact document order (ties included):

* methods: ``"rrf"``, ``"wrrf"`` (weighted RRF, ours), ``"sum"``,
  ``"mnz"``, ``"max"``, ``"min"``, ``"med"``, ``"anz"``, ``"gmnz"``,
  ``"wsum"``, ``"wmnz"``, ``"mixed"``, ``"isr"``, ``"log_isr"``,
  ``"logn_isr"``, ``"rbc"``, ``"bordafuse"``, ``"w_bordafuse"``;
* norms: ``"min-max"``, ``"min-max-inverted"``, ``"max"``, ``"sum"``,
  ``"zmuv"``, ``"rank"``, ``"borda"``, or None.

Runs come in three forms and the result comes back in the form given:

* dicts ``{query_id: {doc_id: score}}`` (str ids);
* ``ranx.Run`` objects (ranx is imported only when one is passed);
* compact arrays: an ``(ids, scores)`` pair per run, both of shape
  (n_queries, depth), ids int32/int64 with -1 pads, scores
  float32/float64, rows aligned by query across runs -- what
  ``ragkernels.sparse.BM25Index.search`` returns.
"""
from __future__ import annotations

import math
from itertools import product
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ragkernels import _core

__all__ = ["METHODS", "NORMS", "fuse", "optimize_fusion", "idf_weights"]

#: Fusion methods, spelled as ranx spells them (plus ``"wrrf"``).
METHODS = ("rrf", "wrrf", "sum", "mnz", "max", "min", "med", "anz", "gmnz", "wsum", "wmnz",
           "mixed", "isr", "log_isr", "logn_isr", "rbc", "bordafuse", "w_bordafuse")
#: Normalizations, spelled as ranx spells them (None: scores as given).
NORMS = ("min-max", "min-max-inverted", "max", "sum", "zmuv", "rank", "borda")

_WEIGHTED = ("wsum", "wmnz", "mixed", "wrrf", "w_bordafuse")
_PARAMS = ("k", "weights", "gamma", "sigma", "phi")

Arrays = Tuple[np.ndarray, np.ndarray]
RunLike = Union[Mapping[str, Mapping[str, float]], Arrays, Any]


def _is_ranx_run(obj: Any) -> bool:
    return type(obj).__name__ == "Run" and type(obj).__module__.startswith("ranx")


def _kind(run: Any, i: int) -> str:
    if _is_ranx_run(run):
        return "ranx"
    if isinstance(run, Mapping):
        return "dict"
    if isinstance(run, (tuple, list)):
        return "arrays"
    raise TypeError(f"fuse: runs[{i}] must be a dict {{query_id: {{doc_id: score}}}}, a ranx.Run or an "
                    f"(ids, scores) pair of arrays, got {type(run).__name__}")


def _as_dict(run: Mapping) -> dict:
    if type(run) is dict and all(type(v) is dict for v in run.values()):
        return run
    return {q: (d if isinstance(d, dict) else dict(d)) if isinstance(d, Mapping) else d
            for q, d in run.items()}


_SEP = "\x1f"  # joins doc ids inside numba; ids holding it take the slow path
_flatten_cache: List[Any] = []


def _ranx_flattener():
    """A numba function giving a ranx Run's content as (query ids, doc ids
    joined by _SEP, scores, docs per query): one str to split instead of
    boxing every entry of numba's typed dicts (~2 us each)."""
    if not _flatten_cache:
        from numba import njit, types
        from numba.typed import List as TypedList

        @njit
        def flatten(run):
            qids = TypedList.empty_list(types.unicode_type)
            docs = TypedList.empty_list(types.unicode_type)
            n = 0
            for q in run:
                n += len(run[q])
            scores = np.empty(n)
            counts = np.empty(len(run), np.int64)
            i = 0
            j = 0
            for q, results in run.items():
                qids.append(q + "")  # ranx keys may be fixed-width char seqs
                counts[j] = len(results)
                j += 1
                for d, v in results.items():
                    docs.append(d + "")
                    scores[i] = v
                    i += 1
            return qids, _SEP.join(docs), scores, counts

        _flatten_cache.append(flatten)
    return _flatten_cache[0]


def _ranx_to_dict(run: Any) -> dict:
    if len(run.run) == 0:
        return {}
    qids, joined, scores, counts = _ranx_flattener()(run.run)
    docs = joined.split(_SEP) if joined else []
    if len(docs) != len(scores):  # a doc id holds _SEP
        return {q: dict(d) for q, d in run.run.items()}
    out, at, values = {}, 0, scores.tolist()
    for q, n in zip(list(qids), counts.tolist()):
        out[q] = dict(zip(docs[at:at + n], values[at:at + n]))
        at += n
    return out


def _to_ranx(result: Dict[str, Dict[str, float]], name: str) -> Any:
    """A ranx.Run holding `result` in its order (ranx.Run(dict) would re-sort
    it with an unstable sort and could permute ties)."""
    from numba.typed import List as TypedList
    from ranx import Run
    from ranx.data_structures.common import create_bulk

    run = Run()
    run.name = name
    if result:
        width = max((len(d) for docs in result.values() for d in docs), default=1) or 1
        run.run = create_bulk(TypedList(list(result)),
                              TypedList([np.array(list(docs), dtype=f"<U{width}") for docs in result.values()]),
                              TypedList([np.array(list(docs.values()), dtype=np.float64)
                                         for docs in result.values()]))
    run.sorted = True
    return run


def _resolve_params(method: str, k: Optional[float], weights: Any, params: Optional[Mapping]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"k": 60.0, "weights": None, "gamma": None, "sigma": 0.01, "phi": None}
    given = dict(params or {})
    unknown = set(given) - set(_PARAMS)
    if unknown:
        raise ValueError(f"fuse: params accepts {', '.join(_PARAMS)}; got unknown {sorted(unknown)}")
    for name, value in (("k", k), ("weights", weights)):
        if value is not None:
            if name in given:
                raise ValueError(f"fuse: {name} given both as an argument and in params")
            given[name] = value
    out.update(given)
    if method == "gmnz" and out["gamma"] is None:
        raise ValueError("fuse: method 'gmnz' needs params={'gamma': float}")
    if method == "rbc" and out["phi"] is None:
        raise ValueError("fuse: method 'rbc' needs params={'phi': float in [0, 1]}")
    if method in _WEIGHTED and out["weights"] is None:
        raise ValueError(f"fuse: method {method!r} needs weights=, one per run")
    if method not in _WEIGHTED and out["weights"] is not None:
        raise ValueError(f"fuse: method {method!r} takes no weights (weighted methods: {', '.join(_WEIGHTED)})")
    for name in ("k", "gamma", "sigma", "phi"):
        value = out[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
            raise TypeError(f"fuse: {name} must be a number, got {type(value).__name__}")
    return out


def _flat_weights(weights: Any, n_runs: int, query_ids: Optional[List[str]]) -> Optional[List[float]]:
    """Per-run weights as a list; per-query weights ({qid: [w...]} for dict
    runs, an (n_queries, n_runs) array for array runs) flattened query-major."""
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        if query_ids is None:
            raise TypeError("fuse: per-query weights of array runs must be an (n_queries, n_runs) array")
        missing = [q for q in query_ids if q not in weights]
        if missing:
            raise ValueError(f"fuse: weights lacks query {missing[0]!r}")
        weights = [weights[q] for q in query_ids]
    w = np.asarray(weights, dtype=np.float64) if not isinstance(weights, np.ndarray) else weights
    if w.dtype.kind not in "fiu":
        raise TypeError(f"fuse: weights must be numbers, got dtype {w.dtype}")
    if w.ndim not in (1, 2) or w.shape[-1] != n_runs:
        raise ValueError(f"fuse: weights must have shape ({n_runs},) or (n_queries, {n_runs}), got {w.shape}")
    return w.astype(np.float64).ravel().tolist()


def fuse(runs: Sequence[RunLike], method: str = "rrf", norm: Optional[str] = "min-max", *,
         k: Optional[float] = None, weights: Any = None, params: Optional[Mapping[str, Any]] = None,
         top_k: Optional[int] = None):
    """Fuse several runs into one, per query, exactly as ``ranx.fuse``.

    Parameters
    ----------
    runs : sequence of dict, ranx.Run or (ids, scores) pairs
        All of one form. Dicts and Runs must hold the same query ids.
        Array pairs: ids int32/int64 (n_queries, depth_r), -1 pads;
        scores float32/float64 of the same shape; C-contiguous; rows
        aligned by query, depths may differ. Scores must be finite: NaN
        and +-inf are refused (ranx lets an inf through, and min-max or a
        sum turns it into NaN for every doc of the query).
    method : str, default "rrf"
        One of `METHODS` (ranx's names; ``"wrrf"`` is weighted RRF).
    norm : str or None, default "min-max"
        One of `NORMS`, applied to each run per query first (ranx's
        default). It changes no rank-based method but min-max-inverted
        and borda.
    k : float, optional
        RRF's constant (``rrf``, ``wrrf``), default 60, >= 0.
    weights : sequence of float, dict or ndarray, optional
        For wsum, wmnz, mixed, wrrf, w_bordafuse: one weight per run, or
        per query: ``{query_id: [w_0, ...]}`` (dict runs) or an array of
        shape (n_queries, n_runs) (array runs), e.g. `idf_weights`.
    params : dict, optional
        ranx's ``params``: ``k``, ``weights``, ``gamma`` (gmnz, needed),
        ``phi`` (rbc, needed, in [0, 1]), ``sigma`` (logn_isr, 0.01).
    top_k : int, optional
        Keep the best `top_k` documents per query (default: all).

    Returns
    -------
    dict, ranx.Run or (ids, scores)
        In the form of `runs`. Dicts and Runs: ``{query_id: {doc_id:
        score}}``, queries sorted, docs best first. Arrays: ids int64 and
        scores float64 of shape (n_queries, width), width = `top_k` or the
        most fused docs of any query; -1 / -inf pads.

    Raises
    ------
    TypeError
        A run of an unsupported type, mixed forms, non-str ids, wrong
        dtypes, non-numeric scores or parameters.
    ValueError
        No runs; unknown method or norm; mismatched query ids or rows;
        shapes that disagree; non-contiguous arrays; NaN or inf scores
        (the message names the run, the query and the doc); a
        repeated doc in an array row; missing or out-of-range params.

    Notes
    -----
    Each run's documents are ranked as ``ranx.Run`` ranks them: numba's
    quicksort argsort of the negated scores, which is not stable, so ties
    keep ranx's (not the id) order; a sorted ranx.Run is taken as is.
    Missing documents count as ranx counts them: 0 in sum/wsum/rrf/rbc,
    -1e9 in max, 1e9 in min, and absent (not counted) in mnz, anz, med,
    gmnz, wmnz, mixed and the ISR family. The fused list is ranked the
    same way as the runs. Cormack et al., SIGIR 2009 (RRF); Fox & Shaw,
    TREC 1993 (CombSUM/MNZ...); see ranx for the others.

    Examples
    --------
    >>> import ragkernels as rk
    >>> bm25 = {"q1": {"d1": 12.0, "d2": 9.5, "d3": 3.0}}
    >>> dense = {"q1": {"d2": 0.91, "d4": 0.80}}
    >>> fused = rk.fusion.fuse([bm25, dense], method="rrf", k=60)
    >>> list(fused["q1"])
    ['d2', 'd1', 'd4', 'd3']
    >>> rk.fusion.fuse([bm25, dense], method="wsum", weights=[0.3, 0.7])["q1"]["d2"]
    0.9166666666666666
    """
    if isinstance(runs, (Mapping, str)) or _is_ranx_run(runs):
        raise TypeError(f"fuse: runs must be a list of runs, got {type(runs).__name__}")
    runs = list(runs)
    if not runs:
        raise ValueError("fuse: runs must hold at least one run")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"fuse: method must be one of {', '.join(METHODS)}, got {method!r}")
    if norm is not None and (not isinstance(norm, str) or norm.replace("_", "-") not in NORMS):
        raise ValueError(f"fuse: norm must be one of {', '.join(NORMS)} or None, got {norm!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"fuse: top_k must be an int >= 1 or None, got {top_k!r}")
    kinds = [_kind(r, i) for i, r in enumerate(runs)]
    for i, kind in enumerate(kinds):
        if kind != kinds[0]:
            raise TypeError(f"fuse: runs[{i}] is a {kind} run but runs[0] is a {kinds[0]} run; "
                            "pass runs of one form")
    p = _resolve_params(method, k, weights, params)
    norm = None if norm is None else norm.replace("_", "-")
    top = -1 if top_k is None else int(top_k)
    args = (method, norm, float(p["k"]), float(p["gamma"] or 0.0), float(p["sigma"]), float(p["phi"] or 0.0))
    if kinds[0] == "arrays":
        w = _flat_weights(p["weights"], len(runs), None)
        return _core.fuse_arrays(runs, *args, w, top)
    if kinds[0] == "ranx":
        presorted = [bool(r.sorted) for r in runs]
        dicts = [_ranx_to_dict(r) for r in runs]
    else:
        presorted = [False] * len(runs)
        dicts = [_as_dict(r) for r in runs]
    qids = sorted(dicts[0]) if isinstance(p["weights"], Mapping) else None
    w = _flat_weights(p["weights"], len(runs), qids)
    result = _core.fuse_dicts(dicts, presorted, *args, w, top)
    return _to_ranx(result, method) if kinds[0] == "ranx" else result


# ---- weight search ----------------------------------------------------------------------

def _metric_name(metric: str) -> str:
    """ranx's metric spelling (``ndcg@10``) as trec_eval's (``ndcg_cut.10``)."""
    name, _, cut = metric.partition("@")
    table = {"ndcg": "ndcg_cut", "map": "map_cut", "precision": "P", "recall": "recall", "mrr": "recip_rank",
             "hit_rate": "success", "r-precision": "Rprec"}
    if not cut:
        return {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank", "r-precision": "Rprec"}.get(name, name)
    if name not in table or name == "mrr":
        raise ValueError(f"optimize_fusion: unsupported metric {metric!r}")
    return f"{table[name]}.{cut}"


def _weight_grid(step: float, n_runs: int) -> List[Tuple[float, ...]]:
    # ranx.fusion_optimization.optimize_weights, to the letter (same rounding,
    # same exact `sum == 1.0` filter, same order).
    digits = str(step)[::-1].find(".")
    values = [float(round(x, digits)) for x in np.arange(0, 1 + step, step)]
    return [seq for seq in product(*[values] * n_runs) if sum(seq) == 1.0]


def _param_grid(method: str, n_runs: int, step: Optional[float], kw: Mapping[str, Any]) -> List[Dict[str, Any]]:
    if method in _WEIGHTED:
        return [{"weights": list(w)} for w in _weight_grid(0.1 if step is None else step, n_runs)]
    if method == "rrf":
        return [{"k": kk} for kk in range(kw.get("min_k", 10), kw.get("max_k", 100) + 1,
                                         int(10 if step is None else step))]
    names = {"gmnz": "gamma", "rbc": "phi", "logn_isr": "sigma"}
    if method in names:
        name, step = names[method], 0.01 if step is None else step
        lo, hi = kw.get(f"min_{name}", 0.01), kw.get(f"max_{name}", 1.0)
        digits = str(step)[::-1].find(".")
        return [{name: round(float(x), digits)} for x in np.arange(lo, hi + step, step)]
    raise ValueError(f"optimize_fusion: method {method!r} has no parameters to optimize "
                     f"(optimizable: {', '.join(_WEIGHTED + ('rrf', 'gmnz', 'rbc', 'logn_isr'))})")


def optimize_fusion(qrels: Any, runs: Sequence[RunLike], norm: Optional[str] = "min-max", method: str = "wsum",
                    metric: str = "ndcg@10", *, step: Optional[float] = None,
                    return_optimization_report: bool = False, show_progress: bool = False, **kwargs: Any):
    """Search a fusion's parameters on training queries, as ranx does.

    Parameters
    ----------
    qrels : dict, path, tuple of arrays or ragkernels Qrels
        Judgments of the training queries (see ragkernels.metrics).
    runs : sequence of dict or ranx.Run
        The runs to fuse, on the training queries.
    norm, method : str
        As in `fuse`; `method` must have parameters: wsum, wmnz, mixed,
        wrrf, w_bordafuse (weights), rrf (k), gmnz (gamma), rbc (phi),
        logn_isr (sigma).
    metric : str, default "ndcg@10"
        ranx's spelling (``ndcg@10``, ``map``, ``recall@100``...) or
        trec_eval's (``ndcg_cut.10``); evaluated by ragkernels.metrics.
    step : float, optional
        Grid step: weights 0.1 (every weight vector on the grid that sums
        to 1.0, as ranx builds it), k 10 (``min_k`` 10 to ``max_k`` 100),
        gamma/phi/sigma 0.01 (``min_*`` 0.01 to ``max_*`` 1.0).
    return_optimization_report : bool
        Also return ``{str(params): score}`` for every trial.
    show_progress : bool
        A tqdm bar over trials.

    Returns
    -------
    dict
        The best params (``{"weights": [...]}``, ``{"k": 60}``...), ready
        for ``fuse(..., params=best)``; the last of equal bests, as ranx.
    dict, optional
        The report.

    Examples
    --------
    >>> import ragkernels as rk
    >>> qrels = {"q1": {"d2": 1}}
    >>> runs = [{"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": {"d2": 5.0, "d1": 1.0}}]
    >>> rk.fusion.optimize_fusion(qrels, runs, method="wsum", step=0.5)
    {'weights': [0.5, 0.5]}
    """
    from ragkernels import metrics

    runs = list(runs)
    trials = _param_grid(method, len(runs), step, kwargs)
    measure = _metric_name(metric)
    loaded = metrics.load_qrels(qrels)
    best_score, best, report = -math.inf, None, {}
    iterator = trials
    if show_progress:
        from tqdm.auto import tqdm
        iterator = tqdm(trials, desc=f"Optimizing {method}")
    for trial in iterator:
        fused = fuse(runs, method=method, norm=norm, params=trial)
        if _is_ranx_run(fused):
            fused = _ranx_to_dict(fused)
        ev = metrics.evaluate(loaded, fused, measure)
        score = float(next(iter(ev.summary.values())))
        key = str(trial[next(iter(trial))])
        report[key] = score
        if score >= best_score:
            best_score, best = score, trial
    return (best, report) if return_optimization_report else best


# ---- per-query adaptive weights ---------------------------------------------------------

def idf_weights(index: Any, queries: Union[Mapping[str, str], Sequence[str]], *, low: float = 0.2,
                high: float = 0.8, df: Optional[Mapping[str, int]] = None):
    """Per-query weights of a (sparse, dense) run pair from query-term IDF.

    A query of rare, specific terms (high IDF: names, numbers, jargon) is
    better served by exact term matching; one of common words by the dense
    encoder. Each query's specificity ``s`` is the mean over its known
    terms of ``idf(t) / idf_max`` (Lucene's BM25 IDF; ``idf_max`` is that of
    a term in one document), in [0, 1]; the sparse run's weight is
    ``low + (high - low) * s`` and the dense run's is one minus it.

    Parameters
    ----------
    index : ragkernels.sparse.BM25Index
        Built from texts (its analyzer tokenizes the queries).
    queries : dict {query_id: text} or sequence of str
    low, high : float, default 0.2 and 0.8
        The sparse weight of the least and the most specific query.
    df : dict {term: document frequency}, optional
        Overrides the counts taken from `index`.

    Returns
    -------
    dict {query_id: [w_sparse, w_dense]} or ndarray of float64 (n, 2)
        A dict for a dict of queries (pass as ``fuse(weights=...)`` with
        dict runs), else an array aligned with `queries` (array runs).

    Examples
    --------
    >>> import ragkernels as rk
    >>> index = rk.sparse.BM25Index.build(["the cat", "the dog", "the fox"])
    >>> idf_weights(index, ["the", "fox"]).round(3).tolist()
    [[0.2, 0.8], [0.8, 0.2]]
    """
    if not 0.0 <= low <= 1.0 or not 0.0 <= high <= 1.0:
        raise ValueError(f"idf_weights: low and high must be in [0, 1], got {low} and {high}")
    analyzer = index.analyzer
    if analyzer is None:
        raise ValueError("idf_weights: the index was built from tokens; it has no analyzer for query texts")
    ids = list(queries) if isinstance(queries, Mapping) else None
    texts = [queries[q] for q in ids] if ids is not None else list(queries)
    tokens = analyzer.tokenize(texts)
    if df is None:
        df = dict(zip(index.vocabulary, index.document_frequencies().tolist()))
    n = float(index.num_docs)
    idf_max = math.log(1.0 + (n - 1 + 0.5) / (1 + 0.5))
    out = np.empty((len(texts), 2), dtype=np.float64)
    for i, ts in enumerate(tokens):
        idfs = [math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in ts if df.get(t, 0) > 0]
        s = min(1.0, sum(idfs) / len(idfs) / idf_max) if idfs and idf_max > 0 else 0.0
        out[i, 0] = low + (high - low) * s
        out[i, 1] = 1.0 - out[i, 0]
    if ids is not None:
        return {q: row for q, row in zip(ids, out.tolist())}
    return out
