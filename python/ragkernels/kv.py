"""KV-cache compression: low-bit quantization of key/value states and fused decode attention.

Key/value states are 4-D ``[batch, heads, tokens, head_dim]`` arrays: numpy
float32/float16, or CPU torch tensors of float32, float16 or bfloat16, read in
place (transposed views included). What comes back is of the input's kind
(torch in, torch out), viewing the compiled core's memory without a copy.

Quantization is KIVI's asymmetric min-max: keys per channel over blocks of
``group_size`` tokens, values per token over groups of ``group_size``
channels (a shorter last group when ``group_size`` does not divide the head
dimension), scale and minimum stored as float16; every value comes back within
half a scale step (docs/kv.md). ``ragkernels.hf.CompressedCache`` is the
transformers cache built on these ops.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from ragkernels import _core
from ragkernels._checks import check_int

SUPPORTED_BITS = (2, 3, 4, 8)


class QuantizedKeys(NamedTuple):
    """Keys quantized per channel, in blocks of tokens.

    ``codes`` uint8 ``[batch, heads, tokens, packed_bytes(head_dim, bits)]``;
    ``scale`` and ``minimum`` float16 ``[batch, heads, blocks, head_dim]``;
    ``offsets`` int32 ``[batch, heads, blocks + 1]``: block ``j`` of a stream
    holds its tokens ``offsets[j]:offsets[j + 1]`` (fewer than ``group_size``
    once a cache was cropped or compacted).
    """
    codes: Any
    scale: Any
    minimum: Any
    offsets: Any
    bits: int


class QuantizedValues(NamedTuple):
    """Values quantized per token, in groups of ``group_size`` channels.

    ``codes`` uint8 ``[batch, heads, tokens, packed_bytes(head_dim, bits)]``;
    ``scale`` and ``minimum`` float16 ``[batch, heads, tokens, groups]``.
    """
    codes: Any
    scale: Any
    minimum: Any
    bits: int
    group_size: int


def packed_bytes(count: int, bits: int) -> int:
    """Bytes of one packed row of ``count`` codes (3-bit rows are a 2-bit and a 1-bit plane)."""
    bits = _check_bits(bits, "packed_bytes")
    if bits == 3:
        return (count + 3) // 4 + (count + 7) // 8
    return (count * bits + 7) // 8


def quantize_keys(keys: Any, bits: int, group_size: int) -> QuantizedKeys:
    """Quantizes ``keys`` per channel in blocks of ``group_size`` tokens (the last block may be shorter).

    Examples
    --------
    >>> import numpy as np
    >>> keys = np.arange(32, dtype=np.float32).reshape(1, 1, 4, 8)   # [batch, heads, tokens, dim]
    >>> packed = quantize_keys(keys, bits=2, group_size=4)
    >>> packed.codes.shape, packed.scale.shape                       # 8 codes of 2 bits: 2 bytes a token
    ((1, 1, 4, 2), (1, 1, 1, 8))
    >>> bool(np.all(np.abs(dequantize_keys(packed) - keys) <= packed.scale.astype(np.float32) / 2))
    True
    """
    op = "quantize_keys"
    bits, group_size = _check_bits(bits, op), check_int(group_size, "group_size", op)
    cuda = _cuda_op(keys, op, "kv_quantize_keys")
    if cuda:
        return QuantizedKeys(*cuda(keys, bits, group_size), bits)
    array, bfloat16, torch_like = _state(keys, op, "keys")
    codes, scale, minimum = _core.kv_quantize_keys(array, bits, group_size, bfloat16)
    batch, heads, tokens = array.shape[:3]
    blocks = scale.shape[2]
    starts = np.minimum(np.arange(blocks + 1, dtype=np.int32) * group_size, tokens).astype(np.int32)
    offsets = np.ascontiguousarray(np.broadcast_to(starts, (batch, heads, blocks + 1)))
    return QuantizedKeys(*_like(torch_like, codes, scale, minimum, offsets), bits)


def quantize_values(values: Any, bits: int, group_size: int) -> QuantizedValues:
    """Quantizes ``values`` per token in groups of ``group_size`` channels."""
    op = "quantize_values"
    bits, group_size = _check_bits(bits, op), check_int(group_size, "group_size", op)
    cuda = _cuda_op(values, op, "kv_quantize_values")
    if cuda:
        return QuantizedValues(*cuda(values, bits, group_size), bits, group_size)
    array, bfloat16, torch_like = _state(values, op, "values")
    codes, scale, minimum = _core.kv_quantize_values(array, bits, group_size, bfloat16)
    return QuantizedValues(*_like(torch_like, codes, scale, minimum), bits, group_size)


def dequantize_keys(keys: QuantizedKeys, out: Any = None) -> Any:
    """The keys' dequantized values, written into ``out`` (a 4-D float array or
    tensor) or a new float32 array of the codes' kind."""
    codes, scale, minimum, offsets = (_packed(a) for a in keys[:4])
    dim = scale.shape[3]
    out = _output(out, keys.codes, (*codes.shape[:3], dim))
    target, bfloat16, _ = _state(out, "dequantize_keys", "out")
    _core.kv_dequantize_keys(codes, scale, minimum, offsets, keys.bits, target, bfloat16)
    return out


def dequantize_values(values: QuantizedValues, head_dim: int, out: Any = None) -> Any:
    """The values' dequantized values (``head_dim`` channels), into ``out`` or a new float32 array."""
    codes, scale, minimum = (_packed(a) for a in values[:3])
    out = _output(out, values.codes, (*codes.shape[:3], check_int(head_dim, "head_dim", "dequantize_values")))
    target, bfloat16, _ = _state(out, "dequantize_values", "out")
    _core.kv_dequantize_values(codes, scale, minimum, values.bits, values.group_size, target, bfloat16)
    return out


def decode_attention(query: Any, keys: QuantizedKeys, values: QuantizedValues, residual_keys: Any,
                     residual_values: Any, mask: Any = None, scaling: Optional[float] = None) -> Any:
    """Attention of one query token per head over a quantized cache, read packed.

    ``query`` ``[batch, q_heads, 1, head_dim]`` attends to the quantized tokens
    then to ``residual_keys``/``residual_values`` ``[batch, kv_heads, r, head_dim]``
    (full precision, the same dtype as ``query``); ``q_heads`` is a multiple of
    ``kv_heads`` (grouped-query attention). ``mask``: an additive float32
    mask (``-inf`` hides a position) or a boolean one (True attends),
    ``[batch, tokens]`` or per KV head ``[batch, kv_heads, tokens]``, or None.
    ``scaling`` defaults to ``head_dim ** -0.5``. Returns float32
    ``[batch, q_heads, head_dim]``; a row whose every position is masked gets
    zeros, as torch's SDPA does.
    """
    op = "decode_attention"
    cuda = _cuda_op(query, op, "kv_decode_attention")
    if cuda:
        if mask is not None and _is_torch(query):
            import torch
            mask = torch.as_tensor(mask, device=query.device)
            if mask.dtype == torch.bool:  # True: attend
                mask = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(~mask, -np.inf)
            mask = mask.to(torch.float32).contiguous()
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        return cuda(query, *keys[:4], keys.bits, *values[:3], values.bits, values.group_size, residual_keys,
                    residual_values, mask, float(scaling))
    q, bfloat16, torch_like = _state(query, op, "query")
    rk, rk_bf16, _ = _state(residual_keys, op, "residual_keys")
    rv, rv_bf16, _ = _state(residual_values, op, "residual_values")
    if rk.dtype != q.dtype or rv.dtype != q.dtype or rk_bf16 != bfloat16 or rv_bf16 != bfloat16:
        raise TypeError(f"{op}: query, residual_keys and residual_values must share one dtype")
    if scaling is None:
        scaling = q.shape[3] ** -0.5
    if mask is not None:
        mask = _packed(mask)
        if mask.dtype == np.bool_:  # True: attend
            mask = np.where(mask, np.float32(0), np.float32(-np.inf))
        mask = np.ascontiguousarray(mask, dtype=np.float32)
    out = _core.kv_decode_attention(q, *(_packed(a) for a in keys[:4]), keys.bits,
                                    *(_packed(a) for a in values[:3]), values.bits, values.group_size,
                                    rk, rv, mask, float(scaling), bfloat16)
    return _like(torch_like, out)[0]


class Policy:
    """An eviction policy: which cached positions a layer keeps (see the subclasses).

    ``budget``: positions kept per layer and head; an int, a float in (0, 1)
    (that share of the prompt, fixed at prefill), or a list with one per
    layer. The kept positions are the first ``sinks``, the last ``recent``
    and the best of the others by the policy's score (``select``).
    """

    sinks = 0
    recent = 0
    pooling = "none"
    kernel = 1
    needs_scores = True      # attention weights of the queries (H2O, SnapKV)
    prefill_only = False     # SnapKV compresses the prompt once

    def __init__(self, budget: Any):
        self.budget = budget
        op = type(self).__name__
        for b in (budget if isinstance(budget, (list, tuple)) else [budget]):
            if isinstance(b, float):
                if not 0.0 < b < 1.0:
                    raise ValueError(f"{op}: a float budget is a share of the prompt in (0, 1), got {b}")
            else:
                check_int(b, "budget", op)

    def budget_for(self, layer: int, prompt_length: int) -> int:
        """Positions kept by `layer` (at least sinks + recent, checked)."""
        b = self.budget[layer] if isinstance(self.budget, (list, tuple)) else self.budget
        if isinstance(b, float):
            b = max(int(b * prompt_length), self.sinks + (self.recent or 0), 1)
        if b < self.sinks + self.recent_for(b):
            raise ValueError(f"{type(self).__name__}: budget {b} < sinks + window "
                             f"({self.sinks} + {self.recent_for(b)})")
        return b

    def recent_for(self, budget: int) -> int:
        return self.recent

    def select(self, scores: Any, length: int, budget: int, streams: int) -> np.ndarray:
        """Kept positions, int32 [streams, min(budget, length)], increasing.
        ``scores``: float32 [streams, length] (None for StreamingLLM)."""
        if scores is not None:
            scores = np.ascontiguousarray(_packed(scores), dtype=np.float32).reshape(streams, length)
        return _core.kv_select_positions(scores, streams, length, self.sinks, self.recent_for(budget), budget,
                                         self.pooling, self.kernel)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class StreamingLLM(Policy):
    """Attention sinks + a recent window (Xiao et al., 2023): keeps the first
    ``sinks`` and the last ``window`` positions; budget = sinks + window."""

    needs_scores = False

    def __init__(self, sinks: int = 4, window: int = 1020):
        self.sinks = check_int(sinks, "sinks", "StreamingLLM", minimum=0)
        self.recent = check_int(window, "window", "StreamingLLM", minimum=1)
        super().__init__(self.sinks + self.recent)


class H2O(Policy):
    """Heavy hitters (Zhang et al., 2023): keeps the ``recent`` last positions
    (half the budget by default) and, of the others, those with the largest
    attention received so far (summed over every query and the KV head's
    query heads)."""

    def __init__(self, budget: Any, recent: Optional[int] = None):
        self.recent = None if recent is None else check_int(recent, "recent", "H2O")
        super().__init__(budget)

    def recent_for(self, budget: int) -> int:
        """``recent``, or half the budget when not given (the paper's split)."""
        return max(1, budget // 2) if self.recent is None else self.recent


class SnapKV(Policy):
    """Observation-window voting at prefill (Li et al., 2024): the last
    ``window`` prompt tokens' attention to each earlier position (averaged
    over the window, summed over the KV head's query heads), pooled over ``kernel``
    neighbours among the positions before the window (average pooling with
    kernel 5 and window 32, the original's defaults), picks the positions kept
    besides the window itself."""

    prefill_only = True

    def __init__(self, budget: Any, window: int = 32, kernel: int = 5, pooling: str = "avg"):
        self.recent = check_int(window, "window", "SnapKV")
        self.kernel = check_int(kernel, "kernel", "SnapKV")
        if self.kernel % 2 == 0:
            raise ValueError(f"SnapKV: the pooling kernel must be odd (centred on each position), got {kernel}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"SnapKV: pooling must be 'max' or 'avg', got {pooling!r}")
        self.pooling = pooling
        super().__init__(budget)


class Quest:
    """Query-aware page selection (Tang et al., 2024): the cached keys are cut
    into pages of ``page_size`` tokens with per-channel minimum and maximum;
    at each decoding step the query's upper bound on a page's scores,
    sum_d max(q_d min_d, q_d max_d), ranks the pages, and attention reads the
    best ``budget // page_size`` pages plus the last, partial one. The whole
    cache is kept: another query may pick other pages."""

    def __init__(self, budget: int, page_size: int = 16):
        self.page_size = check_int(page_size, "page_size", "Quest")
        self.budget = check_int(budget, "budget", "Quest", minimum=self.page_size)

    def __repr__(self) -> str:
        return f"Quest(budget={self.budget}, page_size={self.page_size})"


class SentenceKV:
    """Sentence-level selection (after SentenceKV, Zhu et al., 2025): the
    prompt's keys are mean-pooled per sentence (``sentence_starts``); at each
    decoding step the sentences whose pooled key scores highest against the
    query, as many as fit in ``budget`` tokens, are attended, with every token
    after the last sentence. The whole cache is kept."""

    def __init__(self, budget: int):
        self.budget = check_int(budget, "budget", "SentenceKV")

    def __repr__(self) -> str:
        return f"SentenceKV(budget={self.budget})"


def page_bounds(keys: Any, page_size: int) -> Tuple[Any, Any]:
    """Quest's page bounds: float32 (minimum, maximum) ``[batch, heads, pages, dim]``
    of keys ``[batch, heads, tokens, dim]`` over whole pages (a partial last page is left out)."""
    page_size = check_int(page_size, "page_size", "page_bounds")
    array, bfloat16, torch_like = _state(keys, "page_bounds", "keys")
    pages = array.shape[2] // page_size
    starts = np.arange(pages + 1, dtype=np.int64) * page_size
    return _like(torch_like, *_core.kv_segment_summaries(array, starts, "minmax", bfloat16))


def segment_means(keys: Any, starts: Any) -> Any:
    """Mean key of each segment ``[starts[j], starts[j + 1])``: float32 ``[batch, heads, segments, dim]``."""
    array, bfloat16, torch_like = _state(keys, "segment_means", "keys")
    starts = np.ascontiguousarray(_packed(starts), dtype=np.int64)
    return _like(torch_like, _core.kv_segment_summaries(array, starts, "mean", bfloat16)[0])[0]


def choose_segments(scores: Any, lengths: Any, budget: int) -> np.ndarray:
    """Segments to attend, per stream: best score first (ties: the earlier
    segment), each taken when its tokens still fit in ``budget`` (so a long
    segment is skipped for shorter ones after it). ``scores`` float
    ``[streams, segments]`` (NaN ranks last), ``lengths`` int ``[segments]``;
    returns bool ``[streams, segments]``."""
    scores = np.asarray(_packed(scores), dtype=np.float64)
    lengths = np.asarray(_packed(lengths), dtype=np.int64)
    chosen = np.zeros(scores.shape, dtype=bool)
    keyed = np.where(np.isnan(scores), -np.inf, scores)
    for row in range(scores.shape[0]):
        left = budget
        for j in np.lexsort((np.arange(scores.shape[1]), np.isnan(scores[row]), -keyed[row])):
            if lengths[j] <= left:
                chosen[row, j] = True
                left -= lengths[j]
    return chosen


def encode(cache: Any, file: Any = None) -> Optional[bytes]:
    """A ``ragkernels.hf.CompressedCache`` as a KV bitstream (docs/formats.md):
    versioned, checksummed per section, codes entropy coded where that is
    smaller; bytes, or written layer by layer to a binary ``file``."""
    from ragkernels.hf.compressed_cache import encode as encode_cache
    return encode_cache(cache, file)


def decode(source: Any, config: Any) -> Any:
    """The ``ragkernels.hf.CompressedCache`` a KV bitstream holds (bytes or a
    binary file read layer by layer), for the model of ``config``: bit for bit
    what was encoded. ValueError for a stream of another model config;
    ragkernels.FormatError when truncated, corrupt or of a newer version."""
    from ragkernels.hf.compressed_cache import decode as decode_cache
    return decode_cache(source, config)


def calibrate_bits(model: Any, calibration_ids: Any, budget_bits: float = 3.25, **kwargs: Any) -> Any:
    """Per-layer (key bits, value bits) under a mean-bits budget, KVTuner-style
    (``ragkernels.hf.calibrate``): a ``BitPlan`` whose ``key_bits`` and
    ``value_bits`` go to ``rk.hf.CompressedCache``."""
    from ragkernels.hf.calibrate import calibrate_bits as run
    return run(model, calibration_ids, budget_bits, **kwargs)


def nbytes(packed: Any) -> int:
    """Bytes held by a QuantizedKeys or QuantizedValues, every scale, minimum and offset included."""
    return int(sum(_packed(a).nbytes for a in packed if not isinstance(a, int)))


def _check_bits(bits: Any, op: str) -> int:
    bits = check_int(bits, "bits", op)
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"{op}: bits must be one of {SUPPORTED_BITS}, got {bits}")
    return bits


def _cuda_op(x: Any, op: str, name: str) -> Any:
    """For a CUDA tensor ``x``: a function running ``ragkernels._cuda.<name>``
    on its (detached) arguments and returning tensors of ``x``'s framework;
    None for anything else (the CPU path)."""
    from ragkernels import _backend
    if _backend.device_of(x) != "cuda":
        return None
    fn = getattr(_backend.cuda_module(op), name)
    return lambda *args: _backend.as_framework_tensors(x, fn(*(a.detach() if _is_torch(a) else a for a in args)))


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _state(x: Any, op: str, name: str) -> Tuple[np.ndarray, bool, bool]:
    """A key/value state as (numpy view, is bfloat16, came from torch)."""
    if _is_torch(x):
        import torch
        if x.device.type != "cpu":
            raise ValueError(f"{op}: {name} is on {x.device}; the KV kernels read CPU tensors")
        x = x.detach()
        if x.dtype == torch.bfloat16:
            return x.view(torch.int16).numpy(), True, True
        if x.dtype not in (torch.float32, torch.float16):
            raise TypeError(f"{op}: {name} must be float32, float16 or bfloat16, got {x.dtype}")
        return x.numpy(), False, True
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    return x, False, False


def _packed(x: Any) -> np.ndarray:
    return x.detach().numpy() if _is_torch(x) else np.asarray(x)


def _like(torch_like: bool, *arrays: np.ndarray) -> tuple:
    if not torch_like:
        return arrays
    import torch
    return tuple(torch.from_numpy(a) for a in arrays)


def _output(out: Any, template: Any, shape: tuple) -> Any:
    if out is not None:
        return out
    if _is_torch(template):
        import torch
        return torch.empty(shape, dtype=torch.float32)
    return np.empty(shape, dtype=np.float32)
