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
