"""A transformers KV cache that stores keys and values quantized (ragkernels.kv).

``CompressedCache`` is a ``transformers.Cache`` of ``CompressedLayer`` layers
(the 5.x layer API). Each layer holds the KIVI layout: the older tokens
quantized (keys per channel over blocks of ``group_size`` tokens, values per
token over groups of ``group_size`` channels) and the newest ``residual``
tokens or more at full precision.

When tokens move: an update appends its tokens to the residual, then
quantizes, in whole blocks of ``group_size``, the oldest residual tokens that
came from *earlier* updates, as long as ``residual`` tokens stay at full
precision. So a forward pass always sees its own tokens at full precision (the
prompt attends to itself unquantized) and everything older as stored; what
``update`` returns is exactly the cache's content, dequantized, which is also
what the fused decode attention reads packed.

Rollback is exact (``ragkernels.hf.cache`` protocol): ``crop`` drops the last
tokens, cutting into quantized blocks if it must (a block then keeps fewer
tokens, each with its codes unchanged), and ``compact`` keeps any positions;
kept tokens keep their exact stored values. So speculative decoding runs on
top of a compressed cache.

``enable_fused_attention(model)`` makes decoding steps (one query token)
attend over the packed codes directly (``ragkernels.kv.decode_attention``)
instead of a dequantized copy; every other forward falls back to SDPA.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import torch
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

from ragkernels import kv
from ragkernels._checks import check_int

FUSED_ATTENTION = "ragkernels_kv"
Bits = Union[None, int, Sequence[Optional[int]]]


class CompressedLayer(CacheLayerMixin):
    """One attention layer's quantized KV (see the module docstring).

    ``key_bits``/``value_bits`` None keep that layer at full precision (then
    it behaves exactly as transformers' ``DynamicLayer``).
    """

    is_sliding = False
    is_croppable = True

    def __init__(self, key_bits: Optional[int], value_bits: Optional[int], group_size: int, residual: int,
                 config: Any = None):
        super().__init__()
        if (key_bits is None) != (value_bits is None):
            raise ValueError("CompressedLayer: key_bits and value_bits are both set or both None")
        self.key_bits, self.value_bits = key_bits, value_bits
        self.group_size, self.residual = group_size, residual
        self._config = config  # read for the attention implementation (fused decode attention)
        self.quantized_keys: Optional[kv.QuantizedKeys] = None
        self.quantized_values: Optional[kv.QuantizedValues] = None

    # -- transformers' layer API ----------------------------------------------------------------
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        if self.device.type != "cpu":
            raise ValueError(f"CompressedCache: the CPU kernels need CPU states, got {self.device}")
        batch, heads, _, dim = key_states.shape
        self.head_dim = dim
        self.keys = key_states.new_zeros((batch, heads, 0, dim))      # the full-precision residual
        self.values = value_states.new_zeros((batch, heads, 0, value_states.shape[-1]))
        if self.compressed:
            self.quantized_keys = _empty_keys(batch, heads, dim, self.key_bits)
            self.quantized_values = _empty_values(batch, heads, value_states.shape[-1], self.value_bits,
                                                  self.group_size)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        earlier = self.keys.shape[-2]
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        if not self.compressed:
            return self.keys, self.values
        self._flush(earlier)
        if key_states.shape[-2] == 1 and getattr(self._config, "_attn_implementation", None) == FUSED_ATTENTION:
            return self._markers()
        return self.dequantized()

    def get_mask_sizes(self, query_length: int) -> tuple:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        if not self.is_initialized:
            return 0
        return self.quantized_tokens + self.keys.shape[-2]

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.keys = self.values = None
        self.quantized_keys = self.quantized_values = None
        self.is_initialized = False

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop: a negative count of tokens to remove, as transformers 5.x passes it; "
                             f"got {tokens_to_remove}")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        drop = min(-tokens_to_remove, self.get_seq_length())
        from_residual = min(drop, self.keys.shape[-2])
        self.keys = self.keys[..., : self.keys.shape[-2] - from_residual, :]
        self.values = self.values[..., : self.values.shape[-2] - from_residual, :]
        if drop > from_residual:
            self._truncate_quantized(self.quantized_tokens - (drop - from_residual))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._map_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._map_batch(lambda t: t[indices.to(t.device)].contiguous())

    def offload(self):  # the packed arrays are CPU memory already
        pass

    def prefetch(self):
        pass

    # -- ragkernels ----------------------------------------------------------------------------
    @property
    def compressed(self) -> bool:
        return self.key_bits is not None

    @property
    def quantized_tokens(self) -> int:
        return 0 if self.quantized_keys is None else self.quantized_keys.codes.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held: codes, every scale, minimum and block offset, and the residual."""
        if not self.is_initialized:
            return 0
        held = self.keys.nbytes + self.values.nbytes
        if self.compressed:
            held += kv.nbytes(self.quantized_keys) + kv.nbytes(self.quantized_values)
        return held

    def dequantized(self):
        """(keys, values) of every cached token in the model's dtype: the
        quantized ones dequantized, then the residual."""
        quantized = self.quantized_tokens
        if quantized == 0:
            return self.keys, self.values
        batch, heads, residual, dim = self.keys.shape
        keys = self.keys.new_empty((batch, heads, quantized + residual, dim))
        values = self.values.new_empty((batch, heads, quantized + residual, self.values.shape[-1]))
        kv.dequantize_keys(self.quantized_keys, out=keys[:, :, :quantized])
        kv.dequantize_values(self.quantized_values, self.values.shape[-1], out=values[:, :, :quantized])
        keys[:, :, quantized:] = self.keys
        values[:, :, quantized:] = self.values
        return keys, values

    def decode_attention(self, query: torch.Tensor, attention_mask: Optional[torch.Tensor],
                         scaling: Optional[float]) -> torch.Tensor:
        """Attention of one query token per head over this layer, read packed:
        float32 [batch, q_heads, head_dim]."""
        mask = None
        if attention_mask is not None:
            row = attention_mask[:, 0, -1, :]  # [batch, kv_length]
            mask = (torch.where(row, 0.0, float("-inf")) if row.dtype == torch.bool else row).float()
        return kv.decode_attention(query, self.quantized_keys, self.quantized_values, self.keys, self.values,
                                   mask=mask, scaling=scaling)

    def compact(self, keep: torch.Tensor) -> None:
        """Keep positions ``keep`` ([batch, n] or per head [batch, heads, n]),
        in that order (the ragkernels.hf.cache rollback protocol).

        Kept quantized tokens keep their codes where they stay an increasing
        run at the front of every stream; any other kept quantized token moves
        to the residual as its dequantized value (still exactly what attention
        saw)."""
        batch, heads = self.keys.shape[:2]
        keep = keep.to(torch.int64)
        if keep.ndim == 2:
            keep = keep[:, None, :].expand(batch, heads, keep.shape[-1])
        if not self.compressed or self.quantized_tokens == 0:
            self.keys, self.values = _gather(self.keys, keep), _gather(self.values, keep)
            return
        quantized = self.quantized_tokens
        run = _quantized_run(keep, quantized)  # per stream, the kept tokens that stay quantized
        stay = int(run.min())
        if stay < int(run.max()) or stay < int((keep < quantized).sum(-1).max()):
            # some quantized token must move: read every token from the dequantized view
            keys, values = self.dequantized()
            self._keep_quantized(keep[..., :stay])
            self.keys, self.values = _gather(keys, keep[..., stay:]), _gather(values, keep[..., stay:])
            return
        self._keep_quantized(keep[..., :stay])
        self.keys = _gather(self.keys, keep[..., stay:] - quantized)
        self.values = _gather(self.values, keep[..., stay:] - quantized)

    # -- internals ------------------------------------------------------------------------------
    def _flush(self, earlier: int) -> None:
        """Quantizes whole blocks of the oldest residual tokens that came from
        earlier updates, keeping at least `residual` at full precision."""
        movable = min(earlier, self.keys.shape[-2] - self.residual)
        blocks = movable // self.group_size if movable > 0 else 0
        if blocks == 0:
            return
        count = blocks * self.group_size
        keys = kv.quantize_keys(self.keys[:, :, :count], self.key_bits, self.group_size)
        values = kv.quantize_values(self.values[:, :, :count], self.value_bits, self.group_size)
        self.quantized_keys = _append_keys(self.quantized_keys, keys)
        self.quantized_values = _append_values(self.quantized_values, values)
        self.keys = self.keys[:, :, count:].contiguous()
        self.values = self.values[:, :, count:].contiguous()

    def _markers(self):
        """Empty key/value tensors that tell the fused attention which layer to read."""
        batch, heads = self.keys.shape[:2]
        keys = self.keys.new_empty((batch, heads, 0, self.keys.shape[-1]))
        keys._rk_compressed_layer = self
        return keys, self.values.new_empty((batch, heads, 0, self.values.shape[-1]))

    def _truncate_quantized(self, tokens: int) -> None:
        k, v = self.quantized_keys, self.quantized_values
        offsets = k.offsets.clamp(max=tokens)
        blocks = int((offsets[..., :-1] < tokens).sum(-1).max()) if tokens else 0  # drop blocks now empty everywhere
        self.quantized_keys = kv.QuantizedKeys(k.codes[:, :, :tokens].contiguous(), k.scale[:, :, :blocks].contiguous(),
                                               k.minimum[:, :, :blocks].contiguous(),
                                               offsets[..., : blocks + 1].contiguous(), k.bits)
        self.quantized_values = kv.QuantizedValues(*(a[:, :, :tokens].contiguous() for a in v[:3]), v.bits,
                                                   v.group_size)

    def _keep_quantized(self, keep: torch.Tensor) -> None:
        """Keeps, per stream, the quantized tokens `keep` (increasing, < quantized)."""
        k, v = self.quantized_keys, self.quantized_values
        # block j's new start: how many kept tokens precede its old start
        offsets = torch.searchsorted(keep.contiguous(), k.offsets.to(torch.int64)).to(torch.int32)
        used = (offsets[..., 1:] > offsets[..., :-1]).flatten(0, 1).any(0)  # blocks some stream still holds
        offsets = torch.cat([offsets[..., :1], offsets[..., 1:][..., used]], -1)
        self.quantized_keys = kv.QuantizedKeys(_gather(k.codes, keep), k.scale[:, :, used].contiguous(),
                                               k.minimum[:, :, used].contiguous(), offsets.contiguous(), k.bits)
        self.quantized_values = kv.QuantizedValues(*(_gather(a, keep) for a in v[:3]), v.bits, v.group_size)

    def _map_batch(self, fn) -> None:
        self.keys, self.values = fn(self.keys), fn(self.values)
        if self.compressed:
            k, v = self.quantized_keys, self.quantized_values
            self.quantized_keys = kv.QuantizedKeys(*(fn(a) for a in k[:4]), k.bits)
            self.quantized_values = kv.QuantizedValues(*(fn(a) for a in v[:3]), v.bits, v.group_size)


class CompressedCache(Cache):
    """A transformers cache whose layers store KV quantized (``CompressedLayer``).

    Parameters
    ----------
    config : transformers.PretrainedConfig
        The model's config (its text config is used).
    key_bits, value_bits : int, list or None
        2, 3, 4 or 8; a list gives one per layer (None in it keeps that layer
        at full precision); None keeps every layer at full precision.
        ``value_bits`` defaults to ``key_bits``.
    group_size : int
        Tokens per key block, channels per value group.
    residual : int
        Recent tokens kept at full precision (at least; up to
        ``residual + group_size - 1`` between flushes).

    Examples
    --------
    >>> cache = rk.hf.CompressedCache(model.config, key_bits=2, group_size=32, residual=128)  # doctest: +SKIP
    >>> out = model.generate(input_ids, past_key_values=cache, max_new_tokens=64)             # doctest: +SKIP
    >>> cache.nbytes                                                                          # doctest: +SKIP
    """

    def __init__(self, config: Any, key_bits: Bits = 4, value_bits: Bits = None, group_size: int = 32,
                 residual: int = 128):
        op = "CompressedCache"
        text_config = config.get_text_config(decoder=True)
        layers = text_config.num_hidden_layers
        group_size = check_int(group_size, "group_size", op)
        residual = check_int(residual, "residual", op, minimum=0)
        key_bits = _per_layer(key_bits, layers, "key_bits")
        value_bits = key_bits if value_bits is None else _per_layer(value_bits, layers, "value_bits")
        for i, (k, v) in enumerate(zip(key_bits, value_bits)):
            if (k is None) != (v is None):
                raise ValueError(f"{op}: layer {i} has key_bits {k} and value_bits {v}; both set or both None")
        super().__init__(layers=[CompressedLayer(k, v, group_size, residual, text_config)
                                 for k, v in zip(key_bits, value_bits)])

    @property
    def nbytes(self) -> int:
        """Bytes held by every layer, every scale, minimum and residual included."""
        return sum(layer.nbytes for layer in self.layers)

    def compact(self, keep: Any) -> None:
        """Keep positions ``keep`` of every layer ([batch, n], or [batch, heads, n] per head)."""
        for layer in self.layers:
            if layer.is_initialized:
                layer.compact(torch.as_tensor(keep))


def enable_fused_attention(model: Any) -> None:
    """Decode steps of ``model`` attend over a CompressedCache's packed codes.

    Registers the ``"ragkernels_kv"`` attention implementation (SDPA for
    every forward that is not a one-token step over a compressed layer) and
    switches ``model`` to it.
    """
    AttentionInterface.register(FUSED_ATTENTION, _fused_attention)
    AttentionMaskInterface.register(FUSED_ATTENTION, sdpa_mask)
    model.set_attn_implementation(FUSED_ATTENTION)


def _fused_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    layer = getattr(key, "_rk_compressed_layer", None)
    if layer is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    out = layer.decode_attention(query, attention_mask, scaling)  # [batch, heads, dim]
    return out.to(query.dtype)[:, None], None  # [batch, 1, heads, dim], as SDPA's is transposed


def _per_layer(bits: Bits, layers: int, name: str) -> List[Optional[int]]:
    op = "CompressedCache"
    if bits is None or isinstance(bits, int):
        bits = [bits] * layers
    bits = list(bits)
    if len(bits) != layers:
        raise ValueError(f"{op}: {name} needs one entry per layer ({layers}), got {len(bits)}")
    for b in bits:
        if b is not None and (isinstance(b, bool) or b not in kv.SUPPORTED_BITS):
            raise ValueError(f"{op}: {name} must be one of {kv.SUPPORTED_BITS} or None, got {b!r}")
    return bits


def _empty_keys(batch: int, heads: int, dim: int, bits: int) -> kv.QuantizedKeys:
    return kv.QuantizedKeys(torch.zeros((batch, heads, 0, kv.packed_bytes(dim, bits)), dtype=torch.uint8),
                            torch.zeros((batch, heads, 0, dim), dtype=torch.float16),
                            torch.zeros((batch, heads, 0, dim), dtype=torch.float16),
                            torch.zeros((batch, heads, 1), dtype=torch.int32), bits)


def _empty_values(batch: int, heads: int, dim: int, bits: int, group: int) -> kv.QuantizedValues:
    groups = -(-dim // group)
    return kv.QuantizedValues(torch.zeros((batch, heads, 0, kv.packed_bytes(dim, bits)), dtype=torch.uint8),
                              torch.zeros((batch, heads, 0, groups), dtype=torch.float16),
                              torch.zeros((batch, heads, 0, groups), dtype=torch.float16), bits, group)


def _append_keys(old: kv.QuantizedKeys, new: kv.QuantizedKeys) -> kv.QuantizedKeys:
    start = old.offsets[..., -1:]
    return kv.QuantizedKeys(torch.cat([old.codes, new.codes], 2), torch.cat([old.scale, new.scale], 2),
                            torch.cat([old.minimum, new.minimum], 2),
                            torch.cat([old.offsets, new.offsets[..., 1:] + start], 2), old.bits)


def _append_values(old: kv.QuantizedValues, new: kv.QuantizedValues) -> kv.QuantizedValues:
    return kv.QuantizedValues(*(torch.cat([a, b], 2) for a, b in zip(old[:3], new[:3])), old.bits, old.group_size)


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor [batch, heads, tokens, x] at index [batch, heads, n] along tokens."""
    index = index.to(tensor.device)
    return torch.gather(tensor, 2, index[..., None].expand(*index.shape, tensor.shape[-1])).contiguous()


def _quantized_run(keep: torch.Tensor, quantized: int) -> torch.Tensor:
    """Per stream, the length of keep's leading run of increasing positions < quantized."""
    inside = keep < quantized
    increasing = torch.ones_like(inside)
    increasing[..., 1:] = keep[..., 1:] > keep[..., :-1]
    good = (inside & increasing).to(torch.int64)
    return good.cumprod(-1).sum(-1)
