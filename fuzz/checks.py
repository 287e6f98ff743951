"""What a fuzz target expects of a loader, and the invariants it checks
once a file has been accepted (docs/fuzzing.md, "What counts as a finding").

A rejection is fine when it is a `ValueError` (``ragkernels.FormatError``
is one) or an `OSError` whose message names the file; anything else is a
finding: another exception type, a `UnicodeError` (a subclass of
`ValueError`, but it names neither file nor line), a message without the
file, a crash, a hang. An accepted file must then behave: every search
algorithm returns the same documents and scores, ids are in range, scores
are not NaN, and what the loader accepted is what the matching
constructor would accept.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

import ragkernels as rk


class Finding(Exception):
    """An invariant broken by a file the loader accepted. The message is
    ``"<what is wrong> -- <details>"``; findings are told apart by the part
    before `` -- ``."""


def rejection_problem(exc: BaseException, names: Sequence[str]) -> Optional[str]:
    """None when `exc` is an acceptable refusal of a file named by one of
    `names`; else what is wrong with it."""
    if isinstance(exc, Finding):
        return str(exc)
    if isinstance(exc, UnicodeError):
        return f"bare {type(exc).__name__} (must be a FormatError/ValueError naming the file and where)"
    if isinstance(exc, (ValueError, OSError)):
        message = str(exc)
        if not any(name in message for name in names):
            return f"{type(exc).__name__} whose message does not name the file"
        return None
    return f"unexpected {type(exc).__name__}"


# --- ranked results ---------------------------------------------------------------------------

def check_ranking(docs: np.ndarray, scores: np.ndarray, n_rows: int, k: int, n_docs: int, what: str) -> None:
    """Shapes (n_rows, k), or (n_rows, min(k, n_docs)) where k is capped at
    the corpus; ids in [-1, n_docs), -1 only as trailing padding (score
    -inf); no repeated id in a row; scores not NaN, non-increasing. An
    empty index returns one padding column."""
    widths = {k, max(min(k, n_docs), 1)}
    if docs.shape != scores.shape or docs.ndim != 2 or docs.shape[0] != n_rows or docs.shape[1] not in widths:
        raise Finding(f"{what}: wrong result shapes -- {docs.shape} / {scores.shape}, expected ({n_rows}, k) "
                      f"with k in {widths}")
    if docs.size and (docs.min() < -1 or docs.max() >= n_docs):
        raise Finding(f"{what}: id out of range -- [-1, {n_docs}) expected, got {docs.min()}..{docs.max()}")
    if np.isnan(scores).any():
        raise Finding(f"{what}: NaN score -- {scores.tolist()}")
    for r in range(n_rows):
        real = docs[r] >= 0
        count = int(real.sum())
        if not real[:count].all():
            raise Finding(f"{what}: -1 padding before a real result -- row {r}: {docs[r].tolist()}")
        if count > n_docs or len(set(docs[r, :count].tolist())) != count:
            raise Finding(f"{what}: repeated document -- row {r}: {docs[r, :count].tolist()}")
        if not np.all(scores[r, count:] == -np.inf):
            raise Finding(f"{what}: padding score is not -inf -- row {r}: {scores[r].tolist()}")
        if count > 1 and np.any(np.diff(scores[r, :count]) > 0):
            raise Finding(f"{what}: scores not sorted -- row {r}: {scores[r, :count].tolist()}")


def _same(a, b) -> bool:
    return a[0].shape == b[0].shape and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1], equal_nan=True)


# --- sparse -----------------------------------------------------------------------------------

ALGORITHMS = ("exhaustive", "taat", "maxscore", "bmw")


def _sparse_queries(index) -> List[list]:
    """Batches of queries (each batch one kind) made from the index's own terms."""
    T = index.num_terms
    if index._core.vocabulary == "strings":
        vocab = index.vocabulary
        pick = [t for t in vocab[:3] + vocab[T // 2:T // 2 + 2] + vocab[-2:] if t] or ["x"]
        batches = [[[t] for t in pick[:4]] + [pick, pick[:2] * 2, ["\x00never-a-term"]],
                   [{t: 1.0 for t in pick}, {pick[0]: 2.5, pick[-1]: 0.25}]]
        if index._core.analyzer_config is not None:
            batches.append([" ".join(pick), pick[0].upper(), ""])
        return batches
    ids = sorted({0, 1, T // 2, max(T - 1, 0), T + 5})
    return [[[i] for i in ids] + [ids, [0, 0, 1]], [{i: 1.5 for i in ids}, {0: 0.5}]]


def check_sparse(index, what: str = "search") -> None:
    """Every algorithm returns what exhaustive evaluation returns."""
    n = index.num_docs
    ids = index.doc_ids
    if ids and (len(ids) != n or len(set(ids)) != n):
        raise Finding(f"doc_ids: not one unique id per document (build refuses that) -- {len(ids)} ids, "
                      f"{len(set(ids))} distinct, {n} documents")
    index.vocabulary  # decodes every term: must not raise a bare UnicodeError
    if len(index.document_frequencies()) != index.num_terms:
        raise Finding("document_frequencies: length differs from num_terms")
    if isinstance(index, rk.sparse.BM25Index):
        p = index.params
        bad = {k: v for k, v in p.items() if not np.isfinite(v) or v < 0} or ({"b": p["b"]} if p["b"] > 1 else {})
        if bad or not np.isfinite(index._core.avg_doc_length) or index._core.avg_doc_length < 0:
            raise Finding(f"params: load accepted values that build refuses -- {p}")
    for batch in _sparse_queries(index):
        for k in sorted({1, 10, min(n + 3, 1000)}):
            found = {a: index.search(batch, k=k, algorithm=a) for a in ALGORITHMS}
            oracle = found["exhaustive"]
            check_ranking(*oracle, len(batch), k, n, f"{what} exhaustive k={k}")
            for a in ALGORITHMS[1:]:
                if not _same(found[a], oracle):
                    row = next((r for r in range(len(batch)) if not _same((found[a][0][r:r + 1], found[a][1][r:r + 1]),
                                                                          (oracle[0][r:r + 1], oracle[1][r:r + 1]))), 0)
                    raise Finding(f"{what}: {a} disagrees with exhaustive -- k={k}, query {batch[row]!r}: "
                                  f"{found[a][0][row][:5].tolist()} {found[a][1][row][:5].tolist()} vs "
                                  f"{oracle[0][row][:5].tolist()} {oracle[1][row][:5].tolist()}")
    if ids:
        docs, scores = index.search(_sparse_queries(index)[0][:1], k=3)
        index.to_run(docs, scores, ["q"])


# --- dense ------------------------------------------------------------------------------------

def _dense_reference(index, q: np.ndarray):
    """Scores of every stored vector (float64) and a tolerance per score."""
    v = np.asarray(index.vectors, dtype=np.float64)
    if index.dtype == "int8":
        v = v * np.asarray(index.scales, dtype=np.float64)[:, None]
    q = q.astype(np.float64)
    vn = np.linalg.norm(v, axis=1)
    qn = np.linalg.norm(q, axis=1)
    dot = q @ v.T
    if index.metric == "ip":
        ref, size = dot, qn[:, None] * vn[None, :]
    elif index.metric == "cosine":
        denom = qn[:, None] * vn[None, :]
        ref = np.divide(dot, denom, out=np.zeros_like(dot), where=denom > 0)
        size = np.ones_like(dot)
    else:
        ref = 2 * dot - vn[None, :] ** 2 - qn[:, None] ** 2
        size = (qn[:, None] + vn[None, :]) ** 2
    tol = 1e-4 * size + 1e-5 + 1e-6 * np.abs(ref)
    # Past float32's range the search rightly gives +-inf (or loses all
    # precision): no comparison there.
    return ref, np.where(size > 1e36, np.inf, tol)


def check_flat(index) -> None:
    """What the constructor enforces, then search against float64 scores."""
    n, dim = len(index), index.dim
    vectors = np.asarray(index.vectors)
    if vectors.shape != (n, dim):
        raise Finding(f"vectors: wrong shape -- {vectors.shape}, expected ({n}, {dim})")
    if vectors.dtype.kind == "f" and not np.isfinite(vectors).all():
        raise Finding("vectors: load accepted non-finite values (the constructor refuses them)")
    if index.dtype == "int8":
        scales = np.asarray(index.scales)
        if scales.shape != (n,) or not np.isfinite(scales).all() or (scales < 0).any():
            raise Finding(f"scales: load accepted a non-finite or negative int8 scale -- {scales[:5].tolist()}")
    ids = index.doc_ids
    if ids is not None and (len(ids) != n or len(set(ids)) != n):
        raise Finding(f"doc_ids: not one unique id per vector (the constructor refuses that) -- {len(ids)} ids, "
                      f"{len(set(ids))} distinct, {n} vectors")
    # The queries below are (3, dim): a file may say dim = 2**30 with no vectors.
    if n * max(dim, 1) > 4_000_000 or not 0 < dim <= 100_000:
        return
    rng = np.random.default_rng(1)
    queries = np.concatenate([rng.standard_normal((2, dim)), np.zeros((1, dim))]).astype(np.float32)
    ref, tol = _dense_reference(index, queries)
    for k in sorted({1, max(min(n, 5), 1), min(n + 2, 1000)}):  # k >= 1: k=0 is refused by design
        docs, scores = index.search(queries, k=k)
        check_ranking(docs, scores, len(queries), k, n, f"search k={k}")
        for r in range(len(queries)):
            real = docs[r][docs[r] >= 0]
            got = scores[r][: len(real)].astype(np.float64)
            if len(real) != min(k, n):
                raise Finding(f"search: not min(k, n) results -- k={k}: {len(real)} results of {n} vectors")
            with np.errstate(invalid="ignore"):
                off = np.abs(got - ref[r, real]) > tol[r, real]
            if off.any():
                j = int(np.argmax(off))
                raise Finding(f"search: a score is not the {index.metric} of the stored vectors (row terms do not "
                              f"match the vectors) -- k={k}, vector {real[j]}: {float(got[j])!r}, expected "
                              f"{float(ref[r, real[j]])!r}")
            if len(real) and len(real) < n:
                rest = np.ones(n, bool)
                rest[real] = False
                better = ref[r, rest] - tol[r, rest] > got[-1]
                if better.any():
                    raise Finding(f"search: a better vector was left out -- k={k}, vector "
                                  f"{np.flatnonzero(rest)[np.argmax(better)]}")
    if ids is not None:
        index.to_run(*index.search(queries[:1], k=1), ["q"])


# --- term match -------------------------------------------------------------------------------

def check_term_match(index) -> None:
    """The arrays keep the documented invariants and term_match sums exactly
    as a float64 reference (ascending term id, rounded once to float32)."""
    offsets, terms, weights = index.offsets, index.terms, index.weights
    n, p, vocab = index.num_docs, index.num_postings, index.vocab_size
    if offsets.shape != (n + 1,) or terms.shape != (p,) or weights.shape != (p,):
        raise Finding(f"arrays: wrong shapes -- {offsets.shape} {terms.shape} {weights.shape} for N={n}, P={p}")
    if offsets[0] != 0 or offsets[-1] != p or np.any(np.diff(offsets) < 0):
        raise Finding("offsets: not 0 .. P non-decreasing")
    if not np.isfinite(weights).all():
        raise Finding("weights: non-finite weight accepted")
    if p and int(terms.max()) >= vocab:
        raise Finding(f"terms: id >= vocab_size -- {int(terms.max())} >= {vocab}")
    for d in range(n):
        row = terms[offsets[d]:offsets[d + 1]]
        if np.any(np.diff(row.astype(np.int64)) <= 0):
            raise Finding(f"terms: a document's terms are not strictly ascending -- document {d}")
    if n == 0:
        return
    candidates = np.arange(min(n, 200), dtype=np.int64)
    pool = np.unique(terms[: offsets[min(n, 200)]]) if p else np.array([0])
    queries = [pool[:3], pool[::7][:6], np.array([0, vocab + 3 if vocab < 2**32 else 1, int(pool[-1])])]
    queries = [np.asarray(q, dtype=np.int64) for q in queries]
    got = rk.rerank.term_match(queries, index, np.tile(candidates, (len(queries), 1)))
    for qi, q in enumerate(queries):
        qset = set(q.tolist())
        for d in candidates.tolist():
            row = terms[offsets[d]:offsets[d + 1]].tolist()
            w = weights[offsets[d]:offsets[d + 1]].astype(np.float64)
            ref = np.float32(sum(float(w[j]) for j, t in enumerate(row) if t in qset))
            if not (got[qi, d] == ref or (np.isnan(ref) and np.isnan(got[qi, d]))):
                raise Finding(f"term_match: a score differs from the float64 reference -- query {q.tolist()} doc {d}: "
                              f"{got[qi, d]!r}, reference {ref!r}")


def run_term_match_unverified(index) -> None:
    """After load(verify=False): wrong sums are allowed, crashes are not."""
    n = index.num_docs
    if n:
        candidates = np.arange(min(n, 500), dtype=np.int64)
        rk.rerank.term_match(np.array([0, 1, 2, 3, 100, 2**31], np.int64), index, candidates, k=3)


# --- arrays and text --------------------------------------------------------------------------

def touch_arrays(arrays: Dict[str, np.ndarray]) -> None:
    """Read every byte of every section (a bad view would fault here)."""
    for name, a in arrays.items():
        if not isinstance(name, str) or not isinstance(a, np.ndarray) or a.ndim != 1:
            raise Finding(f"load_arrays: a section is not a 1-D array -- {name!r}: {type(a).__name__}")
        a.tobytes()


def check_evaluation(ev) -> None:
    if ev.values.size and np.isnan(ev.values).any():
        raise Finding("evaluate: NaN in per-query values")
    if any(np.isnan(v) for v in ev.summary.values()):
        raise Finding("evaluate: NaN in the summary")
    ev.to_trec_eval(per_query=True)


def check_texts(ids: Sequence[str], texts: Iterable[str]) -> None:
    texts = list(texts)
    if len(ids) != len(texts) or len(set(ids)) != len(ids):
        raise Finding(f"reader: not one unique id per text -- {len(ids)} ids, {len(set(ids))} distinct, "
                      f"{len(texts)} texts")
