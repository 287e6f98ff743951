"""Plain numpy references for ragkernels.rerank's MaxSim (float64)."""
import numpy as np


def maxsim_ref(queries, query_offsets, documents, doc_offsets, candidates, scales=None):
    """MaxSim by numpy einsum + max + sum, in float64, with the op's rules:
    an empty slot (-1) or an empty document scores -inf, an empty query 0, a
    NaN dot product NaN (np.max propagates it)."""
    docs = documents.astype(np.float64)
    if scales is not None:
        docs = docs * scales.astype(np.float64)[:, None]
    out = np.empty(candidates.shape, dtype=np.float64)
    for q in range(candidates.shape[0]):
        query = queries[query_offsets[q]:query_offsets[q + 1]].astype(np.float64)
        for c, doc in enumerate(candidates[q]):
            tokens = docs[doc_offsets[doc]:doc_offsets[doc + 1]] if doc >= 0 else docs[:0]
            if len(tokens) == 0:
                out[q, c] = -np.inf
            elif len(query) == 0:
                out[q, c] = 0.0
            else:
                out[q, c] = np.einsum("id,jd->ij", query, tokens).max(axis=1).sum()
    return out


def topk_ref(scores, candidates, k):
    """Best k per row: higher score first, ties by candidate position, NaN last;
    -1 / -inf padding. Returns document numbers and scores."""
    ids = np.full((scores.shape[0], k), -1, dtype=np.int64)
    top = np.full((scores.shape[0], k), -np.inf, dtype=scores.dtype)
    for q, row in enumerate(scores):
        key = [(np.isnan(s), -s if not np.isnan(s) else 0.0, c) for c, s in enumerate(row)]
        order = [c for _, _, c in sorted(key)][:k]
        ids[q, :len(order)] = candidates[q, order]
        top[q, :len(order)] = row[order]
    return ids, top
