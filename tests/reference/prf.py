"""Plain Python references for ragkernels.prf, written from Anserini's Java.

RM3 follows io.anserini.rerank.lib.Rm3Reranker and Rocchio follows
RocchioReranker, with io.anserini.util.FeatureVector, line by line: float32
weights (numpy float32 scalars), float64 norms, and the same order of
operations, so results are compared exactly. Where Anserini's order is a
hash map's, ties go to the lower term id (`rank`), as in ragkernels.
Documents and queries are token lists; the first-stage run (ids, scores) is
an input, since the search itself is tested in test_sparse.py.
"""
import math
import re
from collections import Counter
from typing import Dict, List, Sequence

import numpy as np

f32 = np.float32


def forward_rows(docs: Sequence[Sequence[str]], term_ids: Dict[str, int]):
    """Row d: (term ids ascending, their tf in doc d)."""
    rows = []
    for d in docs:
        counts = sorted((term_ids[t], c) for t, c in Counter(d).items())
        rows.append(([t for t, _ in counts], [c for _, c in counts]))
    return rows


def _utf16_length(term: str) -> int:
    return len(term.encode("utf-16-le")) // 2  # Java's String.length()


def feedback_term_ok(term: str, df: int, num_docs: int, ascii_only: bool, max_df_ratio: float,
                     check_chars: bool = True) -> bool:
    """Anserini's createdFeatureVector filters."""
    if check_chars and (_utf16_length(term) < 2 or _utf16_length(term) > 20):
        return False
    if check_chars and ascii_only and not re.fullmatch("[a-z0-9]+", term):
        return False
    return not f32(df) / f32(num_docs) > f32(max_df_ratio)


def _ordered(vec: Dict[str, np.float32], rank: Dict[str, int]):
    return sorted(vec.items(), key=lambda kv: (-float(kv[1]), rank[kv[0]]))


def _prune(vec, k, rank):
    return dict(_ordered(vec, rank)[:k])


def _l1(vec, rank) -> float:
    return sum(abs(float(w)) for _, w in _ordered(vec, rank))


def _l2(vec, rank) -> float:
    return math.sqrt(sum(float(w) * float(w) for _, w in _ordered(vec, rank)))


def _scale(vec, norm, rank):
    if norm == 0:
        return dict(vec)
    return {t: f32(float(w) / norm) for t, w in _ordered(vec, rank)}


def _doc_vectors(docs, ids_row, fb_docs, keep):
    vectors = []
    used = []
    for j, d in enumerate(list(ids_row)[:fb_docs]):
        if d < 0:
            continue
        vectors.append({t: f32(c) for t, c in Counter(docs[d]).items() if keep[t]})
        used.append(j)
    return vectors, used


def _query_counts(tokens):
    return Counter(tokens)  # every token, known or not: all count in the norms


def _keep(docs, ascii_only, max_df_ratio, check_chars=True):
    df = Counter(t for d in docs for t in set(d))
    return {t: feedback_term_ok(t, f, len(docs), ascii_only, max_df_ratio, check_chars) for t, f in df.items()}


def rm3_ref(docs, queries, run_ids, run_scores, fb_docs=10, fb_terms=10, original_weight=0.5, max_df_ratio=0.1,
            filter_terms=True):
    """Expanded queries as {term: float} dicts, heaviest first (ties: lower term id)."""
    rank = {}
    for d in docs:
        for t in d:
            rank.setdefault(t, len(rank))
    keep = _keep(docs, True, max_df_ratio, filter_terms)
    w = f32(original_weight)
    out = []
    for q, tokens in enumerate(queries):
        vectors, used = _doc_vectors(docs, run_ids[q], fb_docs, keep)
        vectors = [_prune(v, fb_terms, rank) for v in vectors]
        norms = [f32(_l1(v, rank)) for v in vectors]
        vocab = set().union(*vectors) if vectors else set()
        rm = {}
        for term in vocab:
            weight = f32(0)
            for v, norm, j in zip(vectors, norms, used):
                if norm > f32(0.001):
                    weight = f32(weight + f32(f32(v.get(term, f32(0)) / norm) * f32(run_scores[q][j])))
            rm[term] = weight
        rm = _prune(rm, fb_terms, rank)
        rm = _scale(rm, _l1(rm, rank), rank)
        counts = _query_counts(tokens)
        total = float(sum(counts.values()))
        qv = {t: f32(c / total) for t, c in counts.items() if t in rank}
        mixed = {}
        for term in set(qv) | set(rm):
            x = qv.get(term, f32(0))
            y = rm.get(term, f32(0))
            mixed[term] = f32(float(f32(w * x)) + (1.0 - float(w)) * float(y))
        out.append({t: float(v) for t, v in _ordered(mixed, rank) if v > 0})
    return out


def rocchio_ref(docs, queries, run_ids, fb_docs=10, fb_terms=10, alpha=1.0, beta=0.75, max_df_ratio=0.1):
    """Anserini's Rocchio (positive feedback only) as {term: float} dicts."""
    rank = {}
    for d in docs:
        for t in d:
            rank.setdefault(t, len(rank))
    keep = _keep(docs, False, max_df_ratio)
    a32, b32 = f32(alpha), f32(beta)
    out = []
    for q, tokens in enumerate(queries):
        vectors, _ = _doc_vectors(docs, run_ids[q], fb_docs, keep)
        norms = [f32(_l2(v, rank)) for v in vectors]
        vocab = set().union(*vectors) if vectors else set()
        mean = {}
        for term in vocab:
            weight = f32(0)
            for v, norm in zip(vectors, norms):
                if norm > f32(0.001):
                    weight = f32(weight + f32(v.get(term, f32(0)) / norm))
            mean[term] = f32(weight / f32(len(vectors)))
        mean = _prune(mean, fb_terms, rank)
        mean = _scale(mean, _l2(mean, rank), rank)
        counts = _query_counts(tokens)
        norm = math.sqrt(sum(float(c) * c for c in counts.values()))
        qv = {t: f32(c / norm) for t, c in counts.items() if t in rank}
        mixed = {}
        for term in set(qv) | set(mean):
            weight = f32(f32(a32 * qv.get(term, f32(0))) + f32(b32 * mean.get(term, f32(0))))
            if weight > 0:
                mixed[term] = weight
        out.append({t: float(v) for t, v in _ordered(mixed, rank)})
    return out


def rocchio_dense_ref(queries, doc_vectors, feedback_ids, fb_docs=5, alpha=0.4, beta=0.6, normalize=True):
    """alpha * q + beta * mean of the feedback doc vectors, float64, then float32."""
    queries = np.asarray(queries, np.float64)
    doc_vectors = np.asarray(doc_vectors, np.float64)
    out = np.zeros(queries.shape, np.float32)
    for i, q in enumerate(queries):
        ids = [d for d in list(feedback_ids[i])[:fb_docs] if d >= 0]
        v = alpha * q
        if ids:
            v = v + beta * doc_vectors[ids].mean(axis=0)
        if normalize:
            n = np.linalg.norm(v)
            if n > 0:
                v = v / n
        out[i] = v
    return out


def search_weighted_ref(docs: List[List[str]], query: Dict[str, float]):
    """Docs that contain a term of `query` (a set): what a weighted search may return."""
    return {i for i, d in enumerate(docs) if set(d) & set(query)}
