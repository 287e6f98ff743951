"""Plain numpy references of ragkernels.kv (csrc/kv), written from the
definitions in docs/kv.md: min-max quantization with float16 scale and
minimum, the packed row layout, and attention over the dequantized cache.

States are float32 numpy arrays [batch, heads, tokens, dim] (float16 and
bfloat16 inputs are converted exactly to float32 first).
"""
import numpy as np


def round_down_f16(x):
    h = np.float16(x)
    if np.float32(h) > x:
        h = np.nextafter(h, np.float16(-np.inf))
    return h


def round_up_f16(x):
    h = np.float16(x)
    if np.float32(h) < x:
        h = np.nextafter(h, np.float16(np.inf))
    return h


def group_params(group, bits):
    """(scale, minimum) as float16 of one group of float32 values."""
    if not np.all(np.isfinite(group)):
        return np.float16(np.nan), np.float16(np.nan)
    levels = np.float32(2**bits - 1)
    # + 0: a zero extreme is +0 whichever zero the scan met first
    m = round_down_f16(np.float32(group.min()) + np.float32(0))
    s = round_up_f16((np.float32(group.max()) + np.float32(0) - np.float32(m)) / levels)
    if not (np.isfinite(m) and np.isfinite(s)):
        raise ValueError("beyond float16")
    return s, m


def codes_of(x, s, m, bits):
    s32, m32 = np.float32(s), np.float32(m)
    inv = np.float32(1) / s32 if s32 > 0 else np.float32(0)
    with np.errstate(invalid="ignore"):
        v = np.floor((x.astype(np.float32) - m32) * inv + np.float32(0.5))
    v = np.where(v >= 0, v, 0)
    return np.minimum(v, 2**bits - 1).astype(np.uint8)


def quantize_keys(x, bits, group):
    """codes [B,H,T,D] (unpacked), scale and minimum [B,H,blocks,D]."""
    b, h, t, d = x.shape
    blocks = -(-t // group)
    codes = np.zeros((b, h, t, d), np.uint8)
    scale = np.zeros((b, h, blocks, d), np.float16)
    minimum = np.zeros((b, h, blocks, d), np.float16)
    for i in range(b):
        for j in range(h):
            for k in range(blocks):
                rows = slice(k * group, min(t, (k + 1) * group))
                for c in range(d):
                    s, m = group_params(x[i, j, rows, c], bits)
                    scale[i, j, k, c], minimum[i, j, k, c] = s, m
                    codes[i, j, rows, c] = codes_of(x[i, j, rows, c], s, m, bits)
    return codes, scale, minimum


def quantize_values(x, bits, group):
    """codes [B,H,T,D] (unpacked), scale and minimum [B,H,T,groups]."""
    b, h, t, d = x.shape
    groups = -(-d // group)
    codes = np.zeros((b, h, t, d), np.uint8)
    scale = np.zeros((b, h, t, groups), np.float16)
    minimum = np.zeros((b, h, t, groups), np.float16)
    for i in range(b):
        for j in range(h):
            for k in range(t):
                for g in range(groups):
                    cols = slice(g * group, min(d, (g + 1) * group))
                    s, m = group_params(x[i, j, k, cols], bits)
                    scale[i, j, k, g], minimum[i, j, k, g] = s, m
                    codes[i, j, k, cols] = codes_of(x[i, j, k, cols], s, m, bits)
    return codes, scale, minimum


def pack_plane(codes, width):
    """A row of codes (< 2**width), little-endian within each byte."""
    per_byte = 8 // width
    out = np.zeros(-(-len(codes) // per_byte), np.uint8)
    for i, c in enumerate(codes):
        out[i // per_byte] |= np.uint8(int(c) << ((i % per_byte) * width))
    return out


def pack_row(codes, bits):
    if bits == 3:
        return np.concatenate([pack_plane(codes & 3, 2), pack_plane(codes >> 2, 1)])
    return pack_plane(codes, bits)


def pack(codes, bits):
    """Packs the last axis of unpacked codes [..., D]."""
    flat = codes.reshape(-1, codes.shape[-1])
    rows = [pack_row(r, bits) for r in flat]
    width = len(rows[0]) if rows else len(pack_row(np.zeros(codes.shape[-1], np.uint8), bits))
    return np.array(rows, np.uint8).reshape(*codes.shape[:-1], width)


def dequantize_keys(codes, scale, minimum, offsets):
    """codes unpacked [B,H,T,D]; offsets [B,H,blocks+1]."""
    out = np.zeros(codes.shape, np.float32)
    b, h = codes.shape[:2]
    for i in range(b):
        for j in range(h):
            for k in range(offsets.shape[2] - 1):
                rows = slice(offsets[i, j, k], offsets[i, j, k + 1])
                out[i, j, rows] = (codes[i, j, rows].astype(np.float32) * scale[i, j, k].astype(np.float32)
                                   + minimum[i, j, k].astype(np.float32))
    return out


def dequantize_values(codes, scale, minimum, group):
    d = codes.shape[-1]
    expand = np.arange(d) // group
    return (codes.astype(np.float32) * scale[..., expand].astype(np.float32)
            + minimum[..., expand].astype(np.float32))


def attention(query, keys, values, mask=None, scaling=None):
    """Softmax attention of query [B,Hq,1,D] over keys/values [B,Hkv,T,D] in
    float64, grouped-query heads as transformers' repeat_kv; a fully masked
    row gives zeros, a zero weight reads nothing."""
    b, hq, _, d = query.shape
    hkv = keys.shape[1]
    rep = hq // hkv
    scaling = d ** -0.5 if scaling is None else scaling
    out = np.zeros((b, hq, d))
    for i in range(b):
        for j in range(hq):
            k = keys[i, j // rep].astype(np.float64)
            v = values[i, j // rep].astype(np.float64)
            s = k @ query[i, j, 0].astype(np.float64) * scaling
            if mask is not None:
                s = s + mask[i]
            if np.all(s == -np.inf):
                continue
            p = np.exp(s - np.max(s))
            p /= p.sum()
            keep = p != 0
            out[i, j] = p[keep] @ v[keep]
    return out


def reference_layer(key_bits, value_bits, group, residual):
    """A transformers cache layer holding what CompressedLayer holds, written
    from the docs: every token at full precision until an update finds it
    among the oldest residual tokens of earlier updates, beyond `residual`
    kept ones, in a whole block of `group`; then it is replaced by its
    quantized-dequantized value (quantize_keys / quantize_values above)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class ReferenceCompressedLayer(DynamicLayer):
        def __init__(self):
            super().__init__()
            self.quantized = 0

        def update(self, key_states, value_states, *args, **kwargs):
            earlier = 0 if not self.is_initialized else self.keys.shape[-2] - self.quantized
            keys, values = super().update(key_states, value_states)
            movable = min(earlier, keys.shape[-2] - self.quantized - residual)
            for _ in range(max(movable, 0) // group):
                block = slice(self.quantized, self.quantized + group)
                k = keys[:, :, block].float().numpy()
                v = values[:, :, block].float().numpy()
                kc, ks, km = quantize_keys(k, key_bits, group)
                vc, vs, vm = quantize_values(v, value_bits, group)
                offsets = np.zeros((k.shape[0], k.shape[1], 2), np.int32)
                offsets[..., 1] = group
                keys[:, :, block] = torch.from_numpy(dequantize_keys(kc, ks, km, offsets)).to(keys.dtype)
                values[:, :, block] = torch.from_numpy(dequantize_values(vc, vs, vm, group)).to(values.dtype)
                self.quantized += group
            return keys, values

    return ReferenceCompressedLayer()


def pool_scores(row, pooling, kernel):
    """'same'-size 1-D pooling of one row, as torch's max_pool1d / avg_pool1d
    with padding kernel // 2, stride 1 and count_include_pad."""
    if pooling == "none":
        return list(row)
    half, n, out = kernel // 2, len(row), []
    for i in range(n):
        window = [row[j] for j in range(max(0, i - half), min(n, i + half + 1))]
        if pooling == "max":
            out.append(np.nan if any(np.isnan(window)) else max(window))
        else:
            out.append(np.float32(np.sum(np.array(window, np.float32), dtype=np.float32)) / np.float32(kernel))
    return out


def select_positions(scores, length, sinks, recent, budget, pooling="none", kernel=1):
    """Kept positions of one stream: the first `sinks`, the last `recent`, and
    the best of the middle by pooled score (ties: earlier first; NaN last)."""
    if length <= budget:
        return list(range(length))
    middle = range(sinks, length - recent)
    heavy = budget - sinks - recent
    chosen = []
    if heavy:  # the scored positions pooled among themselves
        pooled = [None] * sinks + pool_scores(scores[sinks:length - recent], pooling, kernel)
        key = [(1 if np.isnan(pooled[i]) else 0, -(0.0 if np.isnan(pooled[i]) else pooled[i]), i) for i in middle]
        chosen = sorted(i for _, _, i in sorted(key)[:heavy])
    return list(range(sinks)) + chosen + list(range(length - recent, length))


REFERENCE_ATTENTION = "rk_reference_evicting"


def reference_policy_cache(num_layers, policy):
    """A transformers cache whose layers keep every token and, per batch row
    and KV head, the list of positions an eviction policy keeps, with
    `reference_policy_attention` (register with install_reference_attention)
    computing attention over the kept ones in float64, from the policies'
    definitions (docs/kv.md): H2O sums every query's weights, SnapKV averages
    its window's at prefill, ties and pooling as select_positions."""
    from transformers.cache_utils import Cache, DynamicLayer

    class ReferenceEvictingLayer(DynamicLayer):
        def __init__(self, index):
            super().__init__()
            self.index, self.kept, self.received, self.valid, self.budget = index, None, None, None, None

        def update(self, key_states, value_states, *args, **kwargs):
            super().update(key_states, value_states)
            marker = key_states.new_empty((0,))
            marker._rk_reference = self
            return marker, marker

    return Cache(layers=[ReferenceEvictingLayer(i) for i in range(num_layers)]), policy


def install_reference_attention(policy):
    import torch
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
        layer = key._rk_reference
        keys, values = layer.keys.double(), layer.values.double()
        batch, q_heads, q, dim = query.shape
        heads, total = keys.shape[1], keys.shape[2]
        rep = q_heads // heads
        scaling = dim ** -0.5 if scaling is None else scaling
        first = layer.kept is None
        if first:
            layer.kept = [[[] for _ in range(heads)] for _ in range(batch)]
            layer.received = [[{} for _ in range(heads)] for _ in range(batch)]
            layer.valid = [[] for _ in range(batch)]
            layer.budget = policy.budget_for(layer.index, total)
        new = list(range(total - q, total))
        for b in range(batch):
            last_row = attention_mask[b, 0, -1, -q:] if attention_mask is not None else torch.ones(q, dtype=torch.bool)
            layer.valid[b] += [bool(v) for v in last_row]
            for h in range(heads):
                layer.kept[b][h] += new
                layer.received[b][h].update({p: 0.0 for p in new})
        scoring = policy.needs_scores and (first or not policy.prefill_only)
        window_rows = range(max(q - policy.recent, 0), q) if policy.prefill_only else range(q)
        out = torch.zeros((batch, q, q_heads, dim), dtype=torch.float64)
        for b in range(batch):
            for hq in range(q_heads):
                h = hq // rep
                for i in range(q):
                    visible = [p for p in layer.kept[b][h] if layer.valid[b][p] and p <= total - q + i]
                    if not visible:
                        continue
                    s = keys[b, h, visible] @ query[b, hq, i].double() * scaling
                    w = torch.softmax(s, dim=0)
                    out[b, i, hq] = w @ values[b, h, visible]
                    if scoring and i in window_rows:
                        share = 1.0 / len(window_rows) if policy.prefill_only else 1.0
                        for p, wp in zip(visible, w.tolist()):
                            layer.received[b][h][p] += wp * share
        if first or not policy.prefill_only:
            for b in range(batch):
                for h in range(heads):
                    slots = layer.kept[b][h]
                    if len(slots) <= layer.budget:
                        continue
                    scores = np.array([layer.received[b][h][p] if layer.valid[b][p] else -np.inf for p in slots],
                                      np.float32)
                    keep = select_positions(scores, len(slots), policy.sinks, policy.recent_for(layer.budget),
                                            layer.budget, policy.pooling, policy.kernel)
                    layer.kept[b][h] = [slots[j] for j in keep]
        return out.to(query.dtype), None

    AttentionInterface.register(REFERENCE_ATTENTION, attention)
    AttentionMaskInterface.register(REFERENCE_ATTENTION, sdpa_mask)


def selected_attention(query, keys, values, kind, budget, page_size=16, sentence_starts=None):
    """One decoding step of Quest or SentenceKV in float64: per KV head, the
    segments' scores (Quest: sum_d max(q min, q max) over the page's keys;
    SentenceKV: q . mean key), the best over the head's query heads, chosen
    best first while they fit in `budget` tokens; attention over the chosen
    segments' tokens and every token after the last segment."""
    b, hq, _, d = query.shape
    hkv, held = keys.shape[1], keys.shape[2]
    rep = hq // hkv
    if kind == "quest":  # the page holding the newest token is always read
        starts = list(range(0, ((held - 1) // page_size) * page_size + 1, page_size))
    else:
        starts = list(sentence_starts)
    allowed = np.ones((b, hkv, held), bool)
    for i in range(b):
        for h in range(hkv):
            scores = []
            for j in range(len(starts) - 1):
                seg = keys[i, h, starts[j]:starts[j + 1]].astype(np.float64)
                best = -np.inf
                for r in range(rep):
                    q = query[i, h * rep + r, 0].astype(np.float64)
                    if kind == "quest":
                        s = np.sum(np.maximum(q * seg.min(0), q * seg.max(0)))
                    else:
                        s = q @ seg.mean(0)
                    best = max(best, s)
                scores.append(best)
            left = budget
            keep = np.zeros(held, bool)
            keep[starts[-1]:] = True
            for j in sorted(range(len(scores)), key=lambda j: (-scores[j], j)):
                if starts[j + 1] - starts[j] <= left:
                    keep[starts[j]:starts[j + 1]] = True
                    left -= starts[j + 1] - starts[j]
            allowed[i, h] = keep
    mask = np.where(allowed, 0.0, -np.inf)
    out = np.zeros((b, hq, d))
    for i in range(b):
        for j in range(hq):
            s = keys[i, j // rep].astype(np.float64) @ query[i, j, 0].astype(np.float64) * d ** -0.5 + mask[i, j // rep]
            p = np.exp(s - s.max())
            out[i, j] = (p / p.sum()) @ values[i, j // rep].astype(np.float64)
    return out
