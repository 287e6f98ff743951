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

import itertools
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

from ragkernels import _core, kv
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
                 config: Any = None, policy: Optional[kv.Policy] = None, layer_idx: int = 0,
                 selection: Any = None):
        super().__init__()
        if (key_bits is None) != (value_bits is None):
            raise ValueError("CompressedLayer: key_bits and value_bits are both set or both None")
        self.key_bits, self.value_bits = key_bits, value_bits
        self.group_size, self.residual = group_size, residual
        self._config = config  # read for the attention implementation (fused decode attention)
        self.policy, self.layer_idx, self.selection = policy, layer_idx, selection
        self.sentence_starts = None  # SentenceKV: token starts of the prompt's sentences, and its end
        self._summaries = None       # Quest page bounds / SentenceKV sentence keys, computed once per content
        self.quantized_keys: Optional[kv.QuantizedKeys] = None
        self.quantized_values: Optional[kv.QuantizedValues] = None
        self.length = 0        # tokens seen (positions), evicted ones included
        self.valid = None      # policy layers: bool [batch, heads, held], False at padding
        self.positions = None  # policy layers: int64 [batch, heads, held], each slot's position
        self.attention = None  # H2O: float32 [batch, heads, held], attention received so far
        self.budget = None     # policy layers: positions kept, fixed at prefill
        self._tail = 0         # trailing held slots known to be the last `_tail` tokens seen

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
        if self.policy is not None:
            self.valid = torch.zeros((batch, heads, 0), dtype=torch.bool)
            self.positions = torch.zeros((batch, heads, 0), dtype=torch.int64)
            self.attention = torch.zeros((batch, heads, 0), dtype=torch.float32)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        fused = getattr(self._config, "_attn_implementation", None) == FUSED_ATTENTION
        reader = self.policy if self.policy is not None else self.selection
        if reader is not None and not fused:
            raise ValueError(f"CompressedCache: {type(reader).__name__} runs in the ragkernels attention "
                             "implementation (it masks per head and may read the queries); call "
                             "ragkernels.hf.enable_fused_attention(model) first")
        earlier = self.keys.shape[-2]
        new = key_states.shape[-2]
        self.length += new
        self._tail += new
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        if self.compressed:
            self._flush(earlier)
        if self.policy is not None or (fused and new == 1 and (self.compressed or self.selection is not None)):
            return self._markers()
        return self.dequantized()

    def get_mask_sizes(self, query_length: int) -> tuple:
        """(kv_length, kv_offset): the held positions plus the query's, the
        evicted ones counted in the offset so causal masks see every held
        position (a policy layer masks padding itself, see attend)."""
        held = self.held
        return held + query_length, self.length - held

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.keys = self.values = None
        self.quantized_keys = self.quantized_values = None
        self.valid = self.positions = self.attention = self.budget = None
        self.sentence_starts = self._summaries = None
        self.length = self._tail = 0
        self.is_initialized = False

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop: a negative count of tokens to remove, as transformers 5.x passes it; "
                             f"got {tokens_to_remove}")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        drop = min(-tokens_to_remove, self.held)
        self._summaries = None
        if self.held != self.length and drop > self._tail:
            raise ValueError(f"crop: only the last {self._tail} positions held are the last tokens seen "
                             f"(older ones were evicted around them); cannot remove {drop}")
        self.length -= drop
        self._tail = max(self._tail - drop, 0)
        from_residual = min(drop, self.keys.shape[-2])
        self.keys = self.keys[..., : self.keys.shape[-2] - from_residual, :]
        self.values = self.values[..., : self.values.shape[-2] - from_residual, :]
        if drop > from_residual:
            self._truncate_quantized(self.quantized_tokens - (drop - from_residual))
        if self.policy is not None:
            self.valid, self.positions, self.attention = (t[..., : self.held] for t in
                                                          (self.valid, self.positions, self.attention))

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
    def held(self) -> int:
        """Positions held (fewer than get_seq_length() once a policy evicted some)."""
        return self.quantized_tokens + self.keys.shape[-2] if self.is_initialized else 0

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

    def compact(self, keep: torch.Tensor) -> None:
        """Keep positions ``keep`` ([batch, n] or per head [batch, heads, n]),
        in that order (the ragkernels.hf.cache rollback protocol): the others
        leave the sequence, as a crop would.

        Kept quantized tokens keep their codes where they stay an increasing
        run at the front of every stream; any other kept quantized token moves
        to the residual as its dequantized value (still exactly what attention
        saw)."""
        held = self.held
        self._keep_slots(keep)
        self.length -= held - self.held
        self._tail = self.held if self.held == self.length else 0

    def attend(self, query: torch.Tensor, attention_mask: Optional[torch.Tensor], scaling: float) -> torch.Tensor:
        """Attention of this forward's queries over the layer (the tokens just
        added included); then the policy evicts. [batch, q, q_heads, dim]."""
        if self.selection is not None:  # a decode step reading the selected pages or sentences
            return self._attend_selected(query, attention_mask, scaling)
        if self.policy is None:  # a fused decode step
            return self.decode_attention(query, attention_mask, scaling).to(query.dtype)[:, None]
        q = query.shape[2]
        self._append_validity(attention_mask, q)
        allowed = self._allowed(q)  # [batch, heads, q, held]
        needs_weights = self.policy.needs_scores and not (self.policy.prefill_only and self.budget is not None)
        if q == 1 and self.compressed and not needs_weights:
            mask = torch.where(allowed[:, :, 0], 0.0, float("-inf"))
            out = kv.decode_attention(query, self.quantized_keys, self.quantized_values, self.keys, self.values,
                                      mask=mask, scaling=scaling)
            out = out.to(query.dtype)[:, None]
        else:
            keys, values = self.dequantized()
            window = self.policy.recent if self.policy.prefill_only else 0  # SnapKV's observation window
            out, scores = _attention(query, keys, values, allowed, scaling, needs_weights, window)
            if scores is not None:
                self._score(scores)
        self._evict()
        return out

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

    # -- internals ------------------------------------------------------------------------------
    def _restore(self, arrays: list, head: dict, info: dict, dtype: torch.dtype) -> None:
        """This layer's state from a decoded KV stream chunk (decode)."""
        self.key_bits, self.value_bits = head["key_bits"] or None, head["value_bits"] or None
        residual = [torch.from_numpy(a) for a in arrays[7:]]
        if dtype == torch.bfloat16:
            residual = [t.view(torch.bfloat16) for t in residual]
        self.keys, self.values = residual
        self.dtype, self.device, self.head_dim = dtype, torch.device("cpu"), info["head_dim"]
        if self.compressed:
            self.quantized_keys = kv.QuantizedKeys(*(torch.from_numpy(a) for a in arrays[:4]), self.key_bits)
            self.quantized_values = kv.QuantizedValues(*(torch.from_numpy(a) for a in arrays[4:7]), self.value_bits,
                                                       self.group_size)
        self.length = info["length"]
        self._tail = self.held
        self.is_initialized = True

    def _keep_slots(self, keep: torch.Tensor) -> None:
        """Keeps held slots ``keep`` ([batch, n] or [batch, heads, n]), in that order."""
        self._summaries = None
        self.sentence_starts = None  # the prompt's sentences no longer sit where they did
        batch, heads = self.keys.shape[:2]
        keep = keep.to(torch.int64)
        if keep.ndim == 2:
            keep = keep[:, None, :].expand(batch, heads, keep.shape[-1])
        if self.policy is not None:
            self.valid, self.positions, self.attention = (torch.gather(t, 2, keep) for t in
                                                          (self.valid, self.positions, self.attention))
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

    def _append_validity(self, attention_mask: Optional[torch.Tensor], q: int) -> None:
        """Whether each of this forward's tokens is real (not padding), from the
        mask's last row: the newest query sees every real new token."""
        batch, heads = self.keys.shape[:2]
        if attention_mask is None:
            new = torch.ones((batch, q), dtype=torch.bool)
        else:
            row = attention_mask[:, 0, -1, -q:]
            new = row if row.dtype == torch.bool else row == 0
            new = new.expand(batch, q)
        self.valid = torch.cat([self.valid, new[:, None, :].expand(batch, heads, q)], dim=2)
        added = torch.arange(self.length - q, self.length).expand(batch, heads, q)
        self.positions = torch.cat([self.positions, added], dim=2)
        self.attention = torch.cat([self.attention, self.attention.new_zeros((batch, heads, q))], dim=2)

    def _allowed(self, q: int) -> torch.Tensor:
        """[batch, heads, q, held]: held slot j is visible to query i when it is
        real and, for this forward's own tokens, not after i."""
        held = self.held
        slot = torch.arange(held)
        causal = slot[None, :] < (held - q + 1 + torch.arange(q))[:, None]  # [q, held]
        return self.valid[:, :, None, :] & causal

    def _score(self, scores: torch.Tensor) -> None:
        """Adds this forward's attention weights ([batch, heads, held], summed
        over queries and the head's query heads) to what each slot received."""
        if self.policy.prefill_only:
            self.attention = scores  # SnapKV: the window's vote, once
        else:
            self.attention += scores

    def _evict(self) -> None:
        if self.budget is None:
            self.budget = self.policy.budget_for(self.layer_idx, self.length)
            if self.policy.prefill_only:
                self._select()
                return
        if not self.policy.prefill_only:
            self._select()

    def _select(self) -> None:
        held = self.held
        if held <= self.budget:
            return
        batch, heads = self.keys.shape[:2]
        scores = None
        if self.policy.needs_scores:
            # padding slots rank last (under average pooling they count 0: -inf would spread to real neighbours)
            floor = 0.0 if self.policy.pooling == "avg" else float("-inf")
            scores = torch.where(self.valid, self.attention, floor).reshape(batch * heads, held)
        keep = self.policy.select(scores, held, self.budget, batch * heads)
        self._keep_slots(torch.from_numpy(keep).view(batch, heads, -1))
        self._tail = min(self._tail, self.policy.recent_for(self.budget))

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

    def _attend_selected(self, query: torch.Tensor, attention_mask: Optional[torch.Tensor],
                         scaling: float) -> torch.Tensor:
        """Attention of one query token over the pages (Quest) or sentences
        (SentenceKV) it ranks best, plus the tokens after them."""
        keys, values = self.dequantized()
        held, batch, heads = keys.shape[2], keys.shape[0], keys.shape[1]
        starts = self._segment_starts(held)
        allowed = torch.ones((batch, heads, 1, held), dtype=torch.bool)
        if len(starts) > 1:
            key = (len(starts), self.quantized_tokens)  # a flush changes the stored values
            if self._summaries is None or self._summaries[0] != key:
                if isinstance(self.selection, kv.Quest):
                    kind = kv.page_bounds(keys[:, :, : int(starts[-1])], self.selection.page_size)
                else:
                    kind = (kv.segment_means(keys, starts),)
                self._summaries = (key, kind)
            scores = _segment_scores(query, self._summaries[1], heads)  # [batch, heads, segments]
            lengths = np.diff(starts)
            chosen = kv.choose_segments(scores.reshape(batch * heads, -1), lengths, self.selection.budget)
            token_segment = np.repeat(np.arange(len(lengths)), lengths)
            picked = torch.from_numpy(chosen.reshape(batch, heads, -1)[..., token_segment])
            allowed[..., : int(starts[-1])] = picked[:, :, None, :]
        if attention_mask is not None:
            row = attention_mask[:, 0, -1, :]
            allowed &= (row if row.dtype == torch.bool else row == 0)[:, None, None, :]
        out, _ = _attention(query, keys, values, allowed, scaling, False, 0)
        return out

    def _segment_starts(self, held: int) -> np.ndarray:
        """Token starts of the segments selection ranks, and the end of the last one."""
        if isinstance(self.selection, kv.Quest):
            pages = (held - 1) // self.selection.page_size  # the page of the newest token is always read
            return np.arange(pages + 1, dtype=np.int64) * self.selection.page_size
        if self.sentence_starts is None:
            return np.zeros(1, dtype=np.int64)
        return self.sentence_starts

    def _map_batch(self, fn) -> None:
        self._summaries = None
        self.keys, self.values = fn(self.keys), fn(self.values)
        if self.policy is not None:
            self.valid, self.positions, self.attention = fn(self.valid), fn(self.positions), fn(self.attention)
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
        Recent tokens kept at full precision, at least (an update quantizes
        whole blocks of ``group_size`` tokens from earlier updates only, so
        the residual also holds the current update's tokens).

    Examples
    --------
    >>> cache = rk.hf.CompressedCache(model.config, key_bits=2, group_size=32, residual=128)  # doctest: +SKIP
    >>> out = model.generate(input_ids, cache=cache, max_new_tokens=64)                       # doctest: +SKIP
    >>> cache.nbytes                                                                          # doctest: +SKIP
    """

    def __init__(self, config: Any, key_bits: Bits = 4, value_bits: Bits = None, group_size: int = 32,
                 residual: int = 128, policy: Optional[kv.Policy] = None, selection: Any = None):
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
        if policy is not None and not isinstance(policy, kv.Policy):
            raise TypeError(f"{op}: policy must be a ragkernels.kv policy (StreamingLLM, H2O, SnapKV), "
                            f"got {type(policy).__name__}")
        if policy is not None and isinstance(policy.budget, (list, tuple)) and len(policy.budget) != layers:
            raise ValueError(f"{op}: the policy's budget needs one entry per layer ({layers}), "
                             f"got {len(policy.budget)}")
        if selection is not None and not isinstance(selection, (kv.Quest, kv.SentenceKV)):
            raise TypeError(f"{op}: selection must be ragkernels.kv.Quest or SentenceKV, got "
                            f"{type(selection).__name__}")
        if selection is not None and policy is not None:
            raise ValueError(f"{op}: an eviction policy and a selection do not combine (selection reads the "
                             "whole cache, which eviction shrinks)")
        super().__init__(layers=[CompressedLayer(k, v, group_size, residual, text_config, policy, i, selection)
                                 for i, (k, v) in enumerate(zip(key_bits, value_bits))])

    def set_sentences(self, starts: Any) -> None:
        """SentenceKV: the token starts of the prompt's sentences followed by
        the prompt's end (``sentence_starts``); shared by the batch's rows."""
        starts = np.asarray(starts, dtype=np.int64)
        if starts.ndim != 1 or len(starts) < 1 or starts[0] != 0 or np.any(np.diff(starts) <= 0):
            raise ValueError("set_sentences: starts must begin at 0 and increase (sentence starts, then the end)")
        for layer in self.layers:
            layer.sentence_starts, layer._summaries = starts, None

    @property
    def nbytes(self) -> int:
        """Bytes held by every layer, every scale, minimum and residual included."""
        return sum(layer.nbytes for layer in self.layers)

    def compact(self, keep: Any) -> None:
        """Keep positions ``keep`` of every layer ([batch, n], or [batch, heads, n] per head); the
        others leave the sequence (the ragkernels.hf.cache rollback protocol)."""
        for layer in self.layers:
            if layer.is_initialized:
                layer.compact(torch.as_tensor(keep))


_DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
_HEADER_BYTES = 64
_LAYER_HEAD_BYTES = 56


def encode(cache: CompressedCache, file: Any = None) -> Optional[bytes]:
    """The cache as a KV bitstream (docs/formats.md): returned as bytes, or
    written layer by layer to a binary ``file``."""
    op = "encode"
    if not isinstance(cache, CompressedCache):
        raise TypeError(f"{op}: a ragkernels.hf.CompressedCache is needed, got {type(cache).__name__}")
    layers = cache.layers
    if not all(layer.is_initialized for layer in layers):
        raise ValueError(f"{op}: the cache is empty (run a forward pass with it first)")
    if any(layer.policy is not None for layer in layers):
        raise ValueError(f"{op}: caches with an eviction policy are not encoded (their slots' positions are not "
                         "part of the KV stream format)")
    first = layers[0]
    batch, heads, _, dim = first.keys.shape
    dtypes = {layer.keys.dtype for layer in layers}
    if len(dtypes) != 1 or first.keys.dtype not in _DTYPE_CODES:
        raise TypeError(f"{op}: the layers' states must share one dtype of float32, float16 or bfloat16, got {dtypes}")
    header = _core.kv_encode_header(len(layers), batch, heads, dim, first.values.shape[-1], first.group_size,
                                    first.residual, _DTYPE_CODES[first.keys.dtype], first.length)
    chunks = itertools.chain([header], (_encode_layer(header, i, layer) for i, layer in enumerate(layers)))
    if file is None:
        return b"".join(chunks)
    for chunk in chunks:  # one layer in memory at a time
        file.write(chunk)
    return None


def decode(source: Any, config: Any) -> CompressedCache:
    """A CompressedCache from a KV bitstream (bytes, or a binary file read
    layer by layer), for the model of ``config``: ValueError when the stream
    was made for another model (layers, KV heads or head dimension differ),
    FormatError when it is truncated, corrupt or of a newer format."""
    name = getattr(source, "name", None)
    try:
        return _decode(_reader(source), config)
    except ValueError as error:  # FormatError included: name the file it came from
        if isinstance(name, str):
            raise type(error)(f"{name}: {error}") from None
        raise


def _decode(read, config: Any) -> CompressedCache:
    header = read(_HEADER_BYTES)
    info = _core.kv_decode_header(header)
    text = config.get_text_config(decoder=True)
    expected = {"layers": text.num_hidden_layers,
                "kv_heads": getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
                "head_dim": getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads}
    for name, value in expected.items():
        if info[name] != value:
            raise ValueError(f"decode: the KV stream was made for another model config ({name} {info[name]}, "
                             f"this model has {value})")
    cache = CompressedCache(config, key_bits=None, group_size=info["group_size"], residual=info["residual"])
    dtype = next(d for d, code in _DTYPE_CODES.items() if code == info["dtype"])
    for i, layer in enumerate(cache.layers):
        head = read(_LAYER_HEAD_BYTES)
        size = _core.kv_layer_head(header, head, i)["chunk_bytes"]
        chunk = head + read(size - _LAYER_HEAD_BYTES)
        layer._restore(_core.kv_decode_layer(header, chunk, i), _core.kv_layer_head(header, chunk, i), info, dtype)
    rest = read(1, exact=False)
    if rest:
        raise rk_format_error("decode: bytes follow the last layer of the KV stream")
    return cache


def _encode_layer(header: bytes, index: int, layer: CompressedLayer) -> bytes:
    residual = [kv._state(t.contiguous(), "encode", "residual")[0] for t in (layer.keys, layer.values)]
    if layer.compressed:
        k, v = layer.quantized_keys, layer.quantized_values
        arrays = [kv._packed(a) for a in (*k[:4], *v[:3])] + residual
        blocks = k.scale.shape[2]
    else:
        arrays, blocks = [None] * 7 + residual, 0
    return _core.kv_encode_layer(header, index, layer.key_bits or 0, layer.value_bits or 0,
                                 layer.quantized_tokens, layer.keys.shape[2], blocks, arrays)


def _reader(source: Any):
    """read(n) over bytes or a binary file; FormatError when fewer than n remain."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view, at = memoryview(source).cast("B"), [0]

        def read(n: int, exact: bool = True) -> bytes:
            out = bytes(view[at[0]: at[0] + n])
            at[0] += len(out)
            if exact and len(out) != n:
                raise rk_format_error("decode: the KV stream is truncated")
            return out
        return read
    if not callable(getattr(source, "read", None)):
        raise TypeError(f"decode: source must be bytes or a binary file, got {type(source).__name__}")

    def read_file(n: int, exact: bool = True) -> bytes:
        # in pieces: a corrupt size must not make one huge read
        parts, left = [], n
        while left > 0:
            piece = source.read(min(left, 1 << 26))
            if not isinstance(piece, bytes):
                raise TypeError("decode: the file must be opened in binary mode")
            if not piece:
                break
            parts.append(piece)
            left -= len(piece)
        out = b"".join(parts)
        if exact and len(out) != n:
            raise rk_format_error("decode: the KV stream is truncated")
        return out
    return read_file


def rk_format_error(message: str) -> Exception:
    return _core.FormatError(message)


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
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return layer.attend(query, attention_mask, scaling), None  # [batch, q, heads, dim], as SDPA's is transposed


def _attention(query, keys, values, allowed, scaling: float, weights: bool, window: int):
    """Attention over dequantized keys/values with a per-head boolean mask.
    Returns (output [batch, q, q_heads, dim], weights or None): the weights
    each held slot received, summed over the queries (the last `window` ones
    only when `window` > 0, SnapKV) and over each KV head's query heads."""
    batch, q_heads, q, dim = query.shape
    heads = keys.shape[1]
    rep = q_heads // heads
    k = keys.repeat_interleave(rep, 1)
    v = values.repeat_interleave(rep, 1)
    mask = allowed.repeat_interleave(rep, 1)
    out = torch.nn.functional.scaled_dot_product_attention(query, k, v, attn_mask=mask, scale=scaling)
    out = torch.where(mask.any(-1, keepdim=True), out, 0.0)  # a query that sees nothing (padding): zeros
    if not weights:
        return out.transpose(1, 2), None
    rows = slice(max(q - window, 0), q) if window else slice(0, q)
    received = torch.zeros((batch, q_heads, keys.shape[2]), dtype=torch.float32)
    for start in range(rows.start, rows.stop, 256):  # chunks of queries: never a q x held matrix at once
        stop = min(start + 256, rows.stop)
        s = torch.matmul(query[:, :, start:stop].float(), k.float().transpose(-1, -2)) * scaling
        s = s.masked_fill(~mask[:, :, start:stop], float("-inf"))
        p = torch.softmax(s, dim=-1)
        p = torch.where(mask[:, :, start:stop].any(-1, keepdim=True), p, 0.0)  # padding queries vote for nothing
        received += p.sum(2)
    if window:
        received /= rows.stop - rows.start
    return out.transpose(1, 2), received.view(batch, heads, rep, -1).sum(2)


def _segment_scores(query: torch.Tensor, summaries: tuple, heads: int) -> np.ndarray:
    """[batch, kv heads, segments] float64: each query head's score of every
    segment (Quest: the upper bound from page minimum and maximum; SentenceKV:
    the dot product with the sentence's mean key), the best over the query
    heads sharing a KV head."""
    q = query[:, :, 0].double().numpy()  # [batch, q_heads, dim]
    rep = q.shape[1] // heads
    q = q.reshape(q.shape[0], heads, rep, q.shape[2])
    if len(summaries) == 2:
        low, high = (np.asarray(a, dtype=np.float64)[:, :, None] for a in summaries)  # [b, h, 1, segments, dim]
        qq = q[:, :, :, None, :]
        scores = np.maximum(qq * low, qq * high).sum(-1)
    else:
        scores = np.einsum("bhrd,bhsd->bhrs", q, np.asarray(summaries[0], dtype=np.float64))
    return scores.max(axis=2)


def sentence_starts(tokenizer: Any, input_ids: Any) -> np.ndarray:
    """Token starts of the sentences of a prompt (``rk.text.split_sentences``
    on its decoded text), then its length: what ``CompressedCache.set_sentences``
    takes. ``input_ids``: one prompt's ids (1-D, or [1, n])."""
    from ragkernels import text as rk_text

    ids = torch.as_tensor(input_ids).reshape(-1).tolist()
    ends = [len(tokenizer.decode(ids[:i])) for i in range(len(ids) + 1)]  # characters before each token
    spans = rk_text.split_sentences(tokenizer.decode(ids))
    starts = sorted({int(np.searchsorted(ends, start, side="right")) - 1 for start, _ in spans} | {0})
    return np.array([s for s in starts if s < len(ids)] + [len(ids)], dtype=np.int64)


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
