"""Plain-Python fusion: every method and norm of ragkernels.fusion, written
the way ranx's numba code reads (ranx/fusion/*.py, ranx/normalization/*.py),
on ordinary dicts, in float64, with sums left to right from 0.

Ties are ordered as ranx orders them: `numba_argsort_desc` is numba's
quicksort (numba/misc/quicksort.py) transcribed line by line.
"""
import math

import numpy as np

SMALL_QUICKSORT = 15


def _lt(a, b):
    # numba lt_floats on the negated scores: NaN last.
    a, b = -a, -b
    return a < b or (math.isnan(b) and not math.isnan(a))


def numba_argsort_desc(values):
    """Positions of `values` as numba's np.argsort(-values) returns them."""
    v = list(values)
    r = list(range(len(v)))
    if len(v) < 2:
        return r

    def insertion_sort(low, high):
        for i in range(low + 1, high + 1):
            k = r[i]
            x = v[k]
            j = i
            while j > low and _lt(x, v[r[j - 1]]):
                r[j] = r[j - 1]
                j -= 1
            r[j] = k

    def partition(low, high):
        mid = (low + high) >> 1
        if _lt(v[r[mid]], v[r[low]]):
            r[low], r[mid] = r[mid], r[low]
        if _lt(v[r[high]], v[r[mid]]):
            r[high], r[mid] = r[mid], r[high]
        if _lt(v[r[mid]], v[r[low]]):
            r[low], r[mid] = r[mid], r[low]
        pivot = v[r[mid]]
        r[high], r[mid] = r[mid], r[high]
        i, j = low, high - 1
        while True:
            while i < high and _lt(v[r[i]], pivot):
                i += 1
            while j >= low and _lt(pivot, v[r[j]]):
                j -= 1
            if i >= j:
                break
            r[i], r[j] = r[j], r[i]
            i += 1
            j -= 1
        r[i], r[high] = r[high], r[i]
        return i

    stack = [(0, len(v) - 1)]
    while stack:
        low, high = stack.pop()
        while high - low >= SMALL_QUICKSORT:
            i = partition(low, high)
            if high - i > i - low:
                if high > i:
                    stack.append((i + 1, high))
                high = i - 1
            else:
                if i > low:
                    stack.append((low, i - 1))
                low = i + 1
        insertion_sort(low, high)
    return r


def ranx_sorted(docs):
    """{doc: score} re-ordered as ranx.Run(dict) orders it."""
    items = list(docs.items())
    return {items[i][0]: float(items[i][1]) for i in numba_argsort_desc([s for _, s in items])}


# ---- normalizations (ranx/normalization) --------------------------------------------

def _psum(xs):
    acc = 0.0
    for x in xs:
        acc += x
    return acc


def normalize_ref(docs, norm):
    """One query of one run, in ranx order; returns a new dict."""
    if norm is None or not docs:
        return dict(docs)
    s = list(docs.values())
    n = len(s)
    if norm in ("min-max", "min-max-inverted"):
        lo, hi = min(s), max(s)
        den = max(hi - lo, 1e-9)
        if norm == "min-max":
            return {d: (x - lo) / den for d, x in docs.items()}
        return ranx_sorted({d: (hi - x) / den for d, x in docs.items()})
    if norm == "max":
        den = max(max(s), 1e-9)
        return {d: x / den for d, x in docs.items()}
    if norm == "sum":
        lo = min(s)
        den = max(_psum(s) - lo * n, 1e-9)
        return {d: (x - lo) / den for d, x in docs.items()}
    if norm == "zmuv":
        mean = _psum(s) / n
        std = math.sqrt(_psum([(x - mean) * (x - mean) for x in s]) / n)
        den = max(std, 1e-9)
        return {d: (x - mean) / den for d, x in docs.items()}
    if norm == "rank":
        return {d: 1 - (i / n) for i, d in enumerate(docs)}
    raise ValueError(norm)


def _candidates(per_run):
    seen = {}
    for docs in per_run:
        for d in docs:
            seen.setdefault(d, None)
    return list(seen)


def borda_norm_ref(per_run):
    """ranx borda_norm on one query (candidates in first-seen order)."""
    cands = _candidates(per_run)
    nc = len(cands)
    out = []
    for docs in per_run:
        order = list(docs)
        out.append({d: (1 - order.index(d) / nc) if d in docs else 0.5 - (len(docs) - 1) / (2 * nc)
                    for d in cands})
    return out


# ---- methods (ranx/fusion) ---------------------------------------------------------------

def _int_power(a, b):
    r = 1.0
    while b:
        if b & 1:
            r *= a
        b >>= 1
        a *= a
    return r


def _rank_transform(docs, method, k, phi):
    if method in ("rrf", "wrrf"):
        return {d: 1 / (k + i + 1) for i, d in enumerate(docs)}
    if method in ("isr", "log_isr", "logn_isr"):
        return {d: 1 / ((i + 1) ** 2) for i, d in enumerate(docs)}
    if method == "rbc":
        return {d: (1 - phi) * _int_power(phi, i) for i, d in enumerate(docs)}
    return docs


def _borda_score(per_run):
    cands = _candidates(per_run)
    out = []
    for docs in per_run:
        scores = {d: float(len(cands) - i) for i, d in enumerate(docs)}
        unranked = (len(cands) - len(docs) + 1) / 2
        for d in cands:
            if d not in docs:
                scores[d] = unranked
        out.append(scores)
    return out


def _combine(per_run, method, weights, gamma, sigma):
    fused = {}
    for docs in per_run:
        for d in docs:
            if d in fused:
                continue
            present = [res[d] for res in per_run if d in res]
            w_present = [weights[i] for i, res in enumerate(per_run) if d in res] if weights else None
            if method in ("sum", "rrf", "rbc", "bordafuse"):
                fused[d] = _psum([res.get(d, 0.0) for res in per_run])
            elif method in ("wsum", "wrrf", "w_bordafuse"):
                fused[d] = _psum([weights[i] * res.get(d, 0.0) for i, res in enumerate(per_run)])
            elif method == "max":
                fused[d] = max([res.get(d, -1e9) for res in per_run])
            elif method == "min":
                fused[d] = min([res.get(d, 1e9) for res in per_run])
            elif method in ("mnz", "isr"):
                fused[d] = _psum(present) * len(present)
            elif method == "anz":
                fused[d] = _psum(present) / len(present)
            elif method == "med":
                fused[d] = float(np.median(present))
            elif method == "gmnz":
                fused[d] = _psum(present) * (len(present) ** gamma)
            elif method == "wmnz":
                fused[d] = _psum(present) * _psum(w_present)
            elif method == "mixed":
                fused[d] = _psum([x * w for x, w in zip(present, w_present)]) * math.sqrt(len(present))
            elif method == "log_isr":
                fused[d] = _psum(present) * math.log(len(present))
            elif method == "logn_isr":
                fused[d] = _psum(present) * math.log(len(present) + sigma)
            else:
                raise ValueError(method)
    return fused


def fuse_query_ref(per_run, method, norm="min-max", k=60, weights=None, gamma=None, sigma=0.01, phi=None,
                   presorted=False):
    """One query: per_run is a list of {doc: score} (insertion order)."""
    runs = [dict(d) if presorted else ranx_sorted(d) for d in per_run]
    if norm == "borda":
        runs = borda_norm_ref(runs)
    else:
        runs = [normalize_ref(d, norm) for d in runs]
    if method in ("bordafuse", "w_bordafuse"):
        runs = _borda_score(runs)
    else:
        runs = [_rank_transform(d, method, k, phi) for d in runs]
    return ranx_sorted(_combine(runs, method, weights, gamma, sigma))


def fuse_ref(runs, method="rrf", norm="min-max", k=60, weights=None, gamma=None, sigma=0.01, phi=None,
             top_k=None):
    """Dict runs {qid: {doc: score}} -> {qid: {doc: score}}, queries sorted.

    `weights` is a list (one per run) or {qid: list} (per query)."""
    out = {}
    for q in sorted(runs[0]):
        w = weights[q] if isinstance(weights, dict) else weights
        fused = fuse_query_ref([r[q] for r in runs], method, norm, k, w, gamma, sigma, phi)
        out[q] = dict(list(fused.items())[:top_k]) if top_k else fused
    return out


def arrays_to_dicts(runs):
    """(ids, scores) array runs -> dict runs keyed by str(row) and str(id)."""
    out = []
    for ids, scores in runs:
        out.append({str(q): {str(int(d)): float(s) for d, s in zip(ids[q], scores[q]) if d != -1}
                    for q in range(ids.shape[0])})
    return out


def dicts_to_arrays(fused, n_queries, width):
    ids = np.full((n_queries, width), -1, np.int64)
    scores = np.full((n_queries, width), -np.inf, np.float64)
    for q in range(n_queries):
        row = list(fused[str(q)].items())[:width]
        ids[q, :len(row)] = [int(d) for d, _ in row]
        scores[q, :len(row)] = [s for _, s in row]
    return ids, scores
