"""SPLADE-max pooling in plain numpy: slow, obvious, float64."""
import numpy as np


def splade_max_ref(logits, attention_mask):
    """Dense SPLADE-max weights from MLM logits.

    ``w[b, j] = max over i with attention_mask[b, i] == 1 of
    log(1 + max(0, logits[b, i, j]))``; 0 for a row with no position.

    Parameters
    ----------
    logits : ndarray, shape (batch, length, vocab_size)
    attention_mask : ndarray of int, shape (batch, length)

    Returns
    -------
    ndarray of float64, shape (batch, vocab_size)
    """
    logits = np.asarray(logits, np.float64)
    weights = np.zeros((logits.shape[0], logits.shape[2]))
    for b in range(logits.shape[0]):
        for i in range(logits.shape[1]):
            if attention_mask[b][i]:
                weights[b] = np.maximum(weights[b], np.log1p(np.maximum(logits[b, i], 0.0)))
    return weights


def pool_ref(states, attention_mask, mode):
    """sentence-transformers pooling of token states in plain numpy, float64.

    Parameters
    ----------
    states : ndarray, shape (batch, length, hidden)
    attention_mask : ndarray of int, shape (batch, length), right-padded
    mode : {"mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean",
            "lasttoken"}

    Returns
    -------
    ndarray of float64, shape (batch, hidden)
    """
    states = np.asarray(states, np.float64)
    out = np.zeros((states.shape[0], states.shape[2]))
    for b in range(states.shape[0]):
        kept = [i for i in range(states.shape[1]) if attention_mask[b][i]]
        rows = states[b, kept]
        if mode == "mean":
            out[b] = rows.sum(0) / len(kept)
        elif mode == "mean_sqrt_len_tokens":
            out[b] = rows.sum(0) / np.sqrt(len(kept))
        elif mode == "cls":
            out[b] = rows[0]
        elif mode == "lasttoken":
            out[b] = rows[-1]
        elif mode == "max":
            out[b] = rows.max(0)
        elif mode == "weightedmean":
            w = np.arange(1, len(kept) + 1, dtype=np.float64)
            out[b] = (rows * w[:, None]).sum(0) / w.sum()
        else:
            raise ValueError(mode)
    return out
