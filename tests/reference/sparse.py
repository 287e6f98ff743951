"""Plain numpy references for ragkernels.sparse: score every document, sort.

BM25 follows bm25s 0.3 step by step (float64 formulas under NumPy 2 rules,
one float32 score per posting); a repeated query term weighs its count, and a
document's score is the float32 sum of weight * score over its query terms,
taken in the canonical order (largest term maximum first, ties by first
occurrence in the query), plus, for BM25L/BM25+, the query's summed
nonoccurrence. Only documents with a query term are ranked; ties go to the
lower document number.
"""
import math
from collections import Counter
from typing import Dict, List, Sequence, Tuple

import numpy as np


def _idf(method: str, df: int, n: int) -> float:
    if method == "robertson":
        return math.log(max((n - df + 0.5) / (df + 0.5), 1.0))
    if method == "lucene":
        return math.log(1 + (n - df + 0.5) / (df + 0.5))
    if method == "atire":
        return math.log(n / df)
    if method == "bm25l":
        return math.log((n + 1) / (df + 0.5))
    return math.log((n + 1) / df)  # bm25+


def _tfc(method: str, tf: int, dl: float, avg: float, k1: float, b: float, delta: float) -> float:
    norm = (1 - b) + b * dl / avg
    if method in ("robertson", "lucene"):
        return tf / (k1 * norm + tf)
    if method == "atire":
        return float(np.float32(tf) * np.float32(k1 + 1)) / (tf + k1 * norm)
    if method == "bm25l":
        c = tf / norm
        return ((k1 + 1) * (c + delta)) / (k1 + c + delta)
    return float(np.float32(k1 + 1) * np.float32(tf)) / (k1 * norm + tf) + delta  # bm25+


def bm25_postings(docs: Sequence[Sequence], method="lucene", k1=1.5, b=0.75, delta=0.5):
    """{term: {doc: float32 score}} and {term: float32 nonoccurrence}, as bm25s stores them."""
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    postings: Dict[object, Dict[int, np.float32]] = {}
    nonocc: Dict[object, np.float32] = {}
    for term, f in df.items():
        idf = _idf(method, f, n)
        nonocc[term] = np.float32(idf * _tfc(method, 0, avg, avg, k1, b, delta)) if method in ("bm25l", "bm25+") \
            else np.float32(0)
        postings[term] = {}
    for i, d in enumerate(docs):
        for term, tf in Counter(d).items():
            idf32 = float(np.float32(_idf(method, df[term], n)))
            postings[term][i] = np.float32(idf32 * _tfc(method, tf, len(d), avg, k1, b, delta) - float(nonocc[term]))
    return postings, nonocc


def query_terms(query: Sequence) -> List[Tuple[object, float]]:
    """(term, weight) in order of first occurrence; a repeat adds 1."""
    counts = Counter(query)
    seen, out = set(), []
    for t in query:
        if t not in seen:
            seen.add(t)
            out.append((t, float(counts[t])))
    return out


def canonical_order(terms: List[Tuple[object, float]], postings: Dict) -> List[Tuple[object, float]]:
    """Terms by their largest float32 contribution, descending; stable, so ties keep query order."""
    def best(term_weight):
        t, w = term_weight
        return max(float(np.float32(np.float32(w) * s)) for s in postings[t].values())
    return sorted(terms, key=lambda tw: -best(tw))


def rank(scores: Dict[int, np.float32], k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k of {doc: score}: higher score, then lower doc; padded with -1 / -inf."""
    best = sorted(scores.items(), key=lambda x: (-float(x[1]), x[0]))[:k]
    docs = np.full(k, -1, np.int64)
    out = np.full(k, -np.inf, np.float32)
    for r, (d, s) in enumerate(best):
        docs[r], out[r] = d, s
    return docs, out


def bm25_search(docs: Sequence[Sequence], queries: Sequence[Sequence], k: int, method="lucene", k1=1.5, b=0.75,
                delta=0.5) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k of every query by scoring every document."""
    postings, nonocc = bm25_postings(docs, method, k1, b, delta)
    k = min(k, len(docs))  # the index caps k at its number of documents
    all_docs, all_scores = [], []
    for q in queries:
        in_query_order = [(t, w) for t, w in query_terms(q) if t in postings]
        terms = canonical_order(in_query_order, postings)
        constant = np.float32(0)  # summed in query order, as bm25s does
        for t, w in in_query_order:
            for _ in range(int(w)):
                constant = np.float32(constant + nonocc[t])
        scores: Dict[int, np.float32] = {}
        for d in sorted({d for t, _ in terms for d in postings[t]}):
            s = np.float32(0)
            for t, w in terms:
                s = np.float32(s + np.float32(np.float32(w) * postings[t].get(d, np.float32(0))))
            scores[d] = np.float32(s + constant)
        d_, s_ = rank(scores, k)
        all_docs.append(d_)
        all_scores.append(s_)
    return np.array(all_docs).reshape(len(queries), k), np.array(all_scores).reshape(len(queries), k)


def quantize(weights: np.ndarray, bits: int, max_weight: float) -> np.ndarray:
    """Anserini/PISA-style linear impacts: max(1, round(w * (2^bits - 1) / max_w))."""
    scale = ((1 << bits) - 1) / np.float64(np.float32(max_weight))
    return np.maximum(1, np.rint(weights.astype(np.float64) * scale)).astype(np.int64)


def impact_search(docs: Sequence[Dict], queries: Sequence[Dict], k: int, bits: int = 8):
    """Top-k by the float32 dot product of query weights and quantized impacts."""
    max_w = max(float(np.float32(w)) for d in docs for w in d.values() if w > 0)
    k = min(k, len(docs))  # the index caps k at its number of documents
    impacts = [{t: int(quantize(np.array([np.float32(w)]), bits, max_w)[0]) for t, w in d.items() if w > 0}
               for d in docs]
    all_docs, all_scores = [], []
    by_term: Dict[object, Dict[int, np.float32]] = {}
    for i, d in enumerate(impacts):
        for t, v in d.items():
            by_term.setdefault(t, {})[i] = np.float32(v)
    for q in queries:
        terms = canonical_order([(t, w) for t, w in q.items() if w > 0 and t in by_term], by_term)
        terms = [(t, np.float32(w)) for t, w in terms]
        scores = {}
        for i, d in enumerate(impacts):
            if any(t in d for t, _ in terms):
                s = np.float32(0)
                for t, w in terms:
                    s = np.float32(s + np.float32(w * np.float32(d.get(t, 0))))
                scores[i] = s
        d_, s_ = rank(scores, k)
        all_docs.append(d_)
        all_scores.append(s_)
    return np.array(all_docs).reshape(len(queries), k), np.array(all_scores).reshape(len(queries), k)
