"""Slow, obvious references for ragkernels.rerank.term_match (TILDEv2-style
exact term matching), plus a vectorized numpy version (the benchmark peer).

Both sum a pair's matched weights in float64 in ascending term id and round
once to float32, as the compiled op does, so all three agree bit for bit.
"""
import numpy as np


def index_ref(term_ids, weights, offsets):
    """One {term: weight} dict per document; a repeated term keeps its largest weight."""
    docs = []
    for d in range(len(offsets) - 1):
        doc = {}
        for t, w in zip(term_ids[offsets[d]:offsets[d + 1]].tolist(), weights[offsets[d]:offsets[d + 1]].tolist()):
            doc[t] = max(doc.get(t, -np.inf), w)
        docs.append(doc)
    return docs


def index_arrays_ref(docs):
    """(offsets int64, terms uint32, weights float32) of `index_ref` dicts, terms ascending."""
    offsets, terms, weights = [0], [], []
    for doc in docs:
        for t in sorted(doc):
            terms.append(t)
            weights.append(doc[t])
        offsets.append(len(terms))
    return (np.array(offsets, np.int64), np.array(terms, np.uint32), np.array(weights, np.float32))


def query_terms_ref(query):
    """Distinct term ids of one query, ascending, without the -1 padding."""
    return sorted({int(t) for t in np.asarray(query).tolist() if t != -1})


def score_ref(query, doc):
    """sum over the distinct terms of `query` of doc's weight, float64, ascending term order."""
    total = 0.0
    for t in query_terms_ref(query):
        total += float(doc.get(t, 0.0))
    return np.float32(total)


def term_match_ref(queries, docs, candidates, k=None):
    """Scores (Q, C) of `queries` (a list of id sequences) against `docs`
    (index_ref dicts) at `candidates` (-1: empty, -inf); with k, the
    (ids, scores) of the k best per row, ties to the earlier position."""
    candidates = np.asarray(candidates)
    scores = np.full(candidates.shape, -np.inf, np.float32)
    for i, query in enumerate(queries):
        for j, d in enumerate(candidates[i].tolist()):
            if d >= 0:
                scores[i, j] = score_ref(query, docs[d])
    if k is None:
        return scores
    ids = np.full((len(queries), k), -1, np.int64)
    top = np.full((len(queries), k), -np.inf, np.float32)
    for i in range(len(queries)):
        order = sorted(range(candidates.shape[1]), key=lambda j: (-scores[i, j], j))[:k]
        ids[i, :len(order)] = [candidates[i, j] for j in order]
        top[i, :len(order)] = [scores[i, j] for j in order]
    return ids, top


def term_match_numpy(queries, offsets, terms, weights, candidates):
    """Vectorized numpy term matching, one query at a time: gathers the
    candidates' postings, marks those whose term is a query term
    (np.isin against the distinct query ids), and adds their weights per
    candidate with np.bincount (float64, in posting order = ascending term)."""
    candidates = np.asarray(candidates, np.int64)
    scores = np.full(candidates.shape, -np.inf, np.float32)
    for i, query in enumerate(queries):
        q = np.unique(np.asarray(query, np.int64))
        q = q[q >= 0]
        row = candidates[i]
        valid = np.flatnonzero(row >= 0)
        docs = row[valid]
        starts, lengths = offsets[docs], offsets[docs + 1] - offsets[docs]
        owner = np.repeat(np.arange(len(docs)), lengths)
        begins = np.cumsum(lengths) - lengths  # where each candidate's postings start in the gathered list
        postings = np.arange(lengths.sum()) - np.repeat(begins, lengths) + np.repeat(starts, lengths)
        hit = np.isin(terms[postings], q)
        sums = np.bincount(owner[hit], weights=weights[postings[hit]].astype(np.float64), minlength=len(docs))
        scores[i, valid] = sums.astype(np.float32)
    return scores
