"""Slow, obvious references for ragkernels.dense."""
import numpy as np


def quantize_int8_ref(x):
    """Per row: scale = max|x| / 127 (float32), codes = rint(x / scale); zero rows -> scale 0."""
    x = np.asarray(x, np.float32)
    scales = (np.abs(x).max(axis=1) / np.float32(127)).astype(np.float32) if x.size else np.zeros(len(x), np.float32)
    codes = np.zeros(x.shape, np.int8)
    nz = scales > 0
    codes[nz] = np.clip(np.rint(x[nz] / scales[nz, None]), -127, 127).astype(np.int8)
    return codes, scales


def stored_vectors_ref(x, dtype):
    """The float64 values a FlatIndex of `dtype` scores against."""
    x = np.asarray(x, np.float32)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "int8":
        codes, scales = quantize_int8_ref(x)
        return codes.astype(np.float64) * scales.astype(np.float64)[:, None]
    return x.astype(np.float64)


def scores_ref(docs, queries, metric):
    """Exact float64 scores: ip, cosine (zero vectors score 0) or -squared L2."""
    d = np.asarray(docs, np.float64)
    q = np.asarray(queries, np.float64)
    if metric == "ip":
        return q @ d.T
    if metric == "cosine":
        def unit(m):
            norms = np.linalg.norm(m, axis=1, keepdims=True)
            return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
        return unit(q) @ unit(d).T
    return -(((q[:, None, :] - d[None, :, :]) ** 2).sum(axis=2))


def search_ref(docs, queries, k, metric="ip", dtype="float32"):
    """Top-k by (score desc, row asc), padded with -1 / -inf; float64 scores."""
    s = scores_ref(stored_vectors_ref(docs, dtype), queries, metric)
    m, n = s.shape
    ids = np.full((m, k), -1, np.int64)
    out = np.full((m, k), -np.inf)
    for r in range(m):
        order = sorted(range(n), key=lambda i: (-s[r, i], i))[:k]
        ids[r, :len(order)] = order
        out[r, :len(order)] = s[r, order]
    return ids, out
