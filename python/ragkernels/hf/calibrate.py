"""Per-layer key/value bit widths under an average-bits budget (KVTuner-style).

KVTuner (Li et al., 2025) observes that layers differ widely in how much a
low-precision KV hurts the output, keys more than values, and searches
per-layer (key bits, value bits) pairs offline. Here, for each layer and each
candidate pair, the layer alone is quantized (every other layer at full
precision) while the calibration text is fed in chunks, so every chunk
attends to the quantized KV of the earlier ones; the layer's sensitivity to
the pair is the mean KL divergence of the next-token distributions from full
precision. The plan minimizes the summed sensitivities (treating layers as
independent) subject to the mean of (key bits + value bits) / 2 over layers
being at most the budget: a multiple-choice knapsack, solved exactly by
dynamic programming over the bit sums.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from ragkernels._checks import check_int

DEFAULT_PAIRS = ((8, 8), (8, 4), (4, 4), (4, 3), (4, 2), (3, 3), (2, 2))


class BitPlan(NamedTuple):
    """Per-layer bit widths chosen by `calibrate_bits`.

    ``key_bits``/``value_bits``: one per layer (pass them to
    ``rk.hf.CompressedCache``); ``average``: their mean over layers and K/V;
    ``sensitivity``: [layer][pair] mean KL divergence measured for each
    candidate pair of ``pairs``.
    """
    key_bits: List[int]
    value_bits: List[int]
    average: float
    pairs: List[Tuple[int, int]]
    sensitivity: List[List[float]]


def choose_bits(sensitivity: Sequence[Sequence[float]], pairs: Sequence[Tuple[int, int]],
                budget_bits: float) -> List[int]:
    """The pair index per layer minimizing the summed sensitivity with
    mean((k + v) / 2) <= budget_bits (ties: more bits). ValueError when even
    the cheapest pairs exceed the budget."""
    layers = len(sensitivity)
    cost = [k + v for k, v in pairs]  # twice the pair's mean bits
    capacity = int(np.floor(2 * budget_bits * layers + 1e-9))
    if layers and min(cost) * layers > capacity:
        raise ValueError(f"calibrate_bits: budget_bits {budget_bits} is below the cheapest pair "
                         f"({min(cost) / 2} bits per layer)")
    # best[c]: (total sensitivity, -bits used, picks) of the layers so far using exactly c bit units
    best = {0: (0.0, 0, [])}
    for layer in range(layers):
        nxt: Dict[int, Tuple[float, int, List[int]]] = {}
        for used, (total, neg_bits, picks) in best.items():
            for i, c in enumerate(cost):
                if used + c > capacity:
                    continue
                cand = (total + float(sensitivity[layer][i]), neg_bits - c, picks + [i])
                old = nxt.get(used + c)
                if old is None or cand[:2] < old[:2]:
                    nxt[used + c] = cand
        best = nxt
    return min(best.values(), key=lambda t: (t[0], t[1]))[2]


def calibrate_bits(model: Any, calibration_ids: Any, budget_bits: float = 3.25,
                   pairs: Sequence[Tuple[int, int]] = DEFAULT_PAIRS, group_size: int = 32,
                   chunk: int = 64) -> BitPlan:
    """Per-layer (key bits, value bits) for ``model`` under ``budget_bits`` (see the module docstring).

    ``calibration_ids``: int tensor [batch, tokens] of calibration text (a few
    hundred tokens of the target domain is typical); fed ``chunk`` tokens at a
    time with no full-precision residual, so every earlier chunk is read quantized.
    """
    import torch

    from ragkernels import kv
    from ragkernels.hf.compressed_cache import CompressedCache

    op = "calibrate_bits"
    chunk = check_int(chunk, "chunk", op)
    group_size = check_int(group_size, "group_size", op)
    pairs = [tuple(p) for p in pairs]
    for k, v in pairs:
        if k not in kv.SUPPORTED_BITS or v not in kv.SUPPORTED_BITS:
            raise ValueError(f"{op}: every pair's bits must be in {kv.SUPPORTED_BITS}, got {(k, v)}")
    ids = torch.as_tensor(calibration_ids)
    if ids.ndim != 2 or ids.shape[1] <= chunk:
        raise ValueError(f"{op}: calibration_ids must be [batch, tokens] with more than chunk={chunk} tokens, "
                         f"got shape {tuple(ids.shape)}")
    config = model.config.get_text_config(decoder=True)
    layers = config.num_hidden_layers

    def log_probs(key_bits, value_bits):
        cache = CompressedCache(model.config, key_bits=key_bits, value_bits=value_bits, group_size=group_size,
                                residual=0)
        out = []
        with torch.no_grad():
            for start in range(0, ids.shape[1], chunk):
                logits = model(input_ids=ids[:, start:start + chunk], cache=cache, use_cache=True).logits
                if start:  # the first chunk attends to itself only: nothing quantized yet
                    out.append(torch.log_softmax(logits.float(), dim=-1))
        return torch.cat(out, dim=1)

    reference = log_probs(None, None)
    sensitivity = []
    for layer in range(layers):
        row = []
        for k, v in pairs:
            kb = [None] * layers
            vb = [None] * layers
            kb[layer], vb[layer] = k, v
            got = log_probs(kb, vb)
            kl = (reference.exp() * (reference - got)).sum(-1).mean()
            row.append(max(float(kl), 0.0))
        sensitivity.append(row)
    picks = choose_bits(sensitivity, pairs, budget_bits)
    key_bits = [pairs[i][0] for i in picks]
    value_bits = [pairs[i][1] for i in picks]
    average = float(np.mean([(k + v) / 2 for k, v in zip(key_bits, value_bits)]))
    return BitPlan(key_bits, value_bits, average, pairs, sensitivity)
