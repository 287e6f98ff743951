"""Slow, obvious references for the core ops."""
import math

import numpy as np


def topk_ref(scores, k):
    """Per row: sort by (NaN last, score desc, index asc); pad with -1/-inf."""
    scores = np.asarray(scores)
    ids = np.full((scores.shape[0], k), -1, np.int64)
    out = np.full((scores.shape[0], k), -np.inf, scores.dtype)
    for r, row in enumerate(scores.tolist()):
        order = sorted(range(len(row)), key=lambda i: (math.isnan(row[i]), -row[i] if not math.isnan(row[i]) else 0, i))
        best = order[:k]
        ids[r, :len(best)] = best
        out[r, :len(best)] = [row[i] for i in best]
    return ids, out
