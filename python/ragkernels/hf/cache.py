"""Roll a transformers KV cache back after speculative verification.

A forward pass over a draft (a chain or a token tree) appends one cached
position per drafted token; verification keeps only some of them. A chain
keeps a prefix of the draft, so `crop` (keep the first ``length``
positions) is enough; a tree keeps one root-to-node path whose nodes are
scattered through the draft, so `compact` keeps arbitrary positions, row
by row, in a given order. transformers has ``Cache.crop`` but nothing like
`compact`.

The rollback interface
----------------------
Both functions work layer by layer on a ``transformers.Cache`` (its
``layers``), so that every cache ragkernels ships can be rolled back:

* a plain ``DynamicLayer`` (what ``generate`` makes for decoder-only models
  without a sliding window) is handled here, on its ``keys`` / ``values``
  tensors of shape (batch, kv_heads, seq_len, head_dim);
* any other layer takes part by implementing the `RollbackLayer` protocol:
  transformers' own ``crop(tokens_to_remove)`` (a negative count, exact:
  ``is_croppable`` True) and ``compact(keep)`` with the semantics of
  `compact` below. The compressed and evicting caches of the KV issue
  implement it;
* a cache object that is not made of layers may implement ``compact(keep)``
  and ``crop(tokens_to_remove)`` itself (then it is called directly).

Any other layer (sliding-window, quantized, linear-attention, indexed
layers) is refused with a TypeError naming its class, rather than rolled
back wrongly: transformers' ``QuantizedCache`` keeps a residual buffer that
``crop`` does not shorten, so its length is wrong after a rollback.

Both functions modify the cache in place and check afterwards that every
initialized layer holds exactly the requested number of positions.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["RollbackLayer", "compact", "crop", "supports_rollback"]


@runtime_checkable
class RollbackLayer(Protocol):
    """What a cache layer implements to be rolled back by `crop` and
    `compact` (the compressed caches of ragkernels do).

    Attributes
    ----------
    is_croppable : bool
        True: ``crop`` restores exactly the state of a shorter sequence.

    Methods
    -------
    get_seq_length() -> int
        Positions held (the same for every batch row).
    crop(tokens_to_remove: int) -> None
        transformers' convention: a count <= 0; drop that many last
        positions.
    compact(keep: torch.Tensor) -> None
        `keep` is int64 of shape (batch, n_keep): afterwards position j of
        row b holds what position ``keep[b, j]`` held before, and the
        layer holds n_keep positions.
    """

    is_croppable: bool

    def get_seq_length(self) -> int: ...

    def crop(self, tokens_to_remove: int) -> None: ...

    def compact(self, keep: Any) -> None: ...


def _is_plain_dynamic(layer) -> bool:
    from transformers.cache_utils import DynamicLayer

    return type(layer) is DynamicLayer


def _layer_kind(layer) -> str:
    if _is_plain_dynamic(layer):
        return "dynamic"
    if callable(getattr(layer, "compact", None)) and getattr(layer, "is_croppable", False):
        return "protocol"
    return ""


def supports_rollback(cache) -> bool:
    """Whether `crop` and `compact` can roll `cache` back exactly.

    True for a ``DynamicCache`` of plain ``DynamicLayer`` layers and for
    caches whose layers (or the cache itself) implement `RollbackLayer`.
    """
    if _cache_level(cache):
        return True
    layers = getattr(cache, "layers", None)
    return layers is not None and all(_layer_kind(layer) for layer in layers)


def _cache_level(cache) -> bool:
    return getattr(cache, "layers", None) is None and callable(getattr(cache, "compact", None))


def _layers(cache, op: str):
    """The initialized layers of `cache`, each checked for rollback support."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"{op}: cache must be a transformers Cache (with .layers) or implement "
                        f"compact/crop, got {type(cache).__name__}")
    out = []
    for i, layer in enumerate(layers):
        kind = _layer_kind(layer)
        if not kind:
            raise TypeError(f"{op}: cache.layers[{i}] is a {type(layer).__name__}, which cannot be rolled back "
                            f"exactly; a plain DynamicLayer or a layer implementing "
                            f"ragkernels.hf.cache.RollbackLayer (crop + compact) is needed")
        if getattr(layer, "is_initialized", True) and layer.get_seq_length() > 0:
            out.append((i, layer, kind))
    return out


def _seq_length(cache) -> int:
    return int(cache.get_seq_length())


def crop(cache, length: int) -> None:
    """Keep the first `length` positions of every row of `cache`.

    Parameters
    ----------
    cache : transformers.Cache
        Modified in place (see the module docstring for the layers
        supported).
    length : int
        0 <= length <= the number of positions held.

    Raises
    ------
    TypeError
        A layer that cannot be rolled back exactly.
    ValueError
        `length` out of range.

    Examples
    --------
    >>> import torch
    >>> from transformers import DynamicCache
    >>> cache = DynamicCache()
    >>> _ = cache.update(torch.arange(6.0).view(1, 1, 6, 1), torch.zeros(1, 1, 6, 1), 0)
    >>> crop(cache, 4)
    >>> cache.layers[0].keys.flatten().tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    from ragkernels._checks import check_int

    length = check_int(length, "length", "crop", minimum=0)
    if _cache_level(cache):
        held = _seq_length(cache)
        if length > held:
            raise ValueError(f"crop: length must be <= the {held} positions the cache holds, got {length}")
        cache.crop(length - held)
        return
    for i, layer, _ in _layers(cache, "crop"):
        held = layer.get_seq_length()
        if length > held:
            raise ValueError(f"crop: length must be <= the {held} positions the cache holds, got {length}")
        layer.crop(length - held)
        if layer.get_seq_length() != length:  # an invariant of the layer, not a caller mistake
            raise RuntimeError(f"crop: cache.layers[{i}] ({type(layer).__name__}) holds "
                               f"{layer.get_seq_length()} positions after crop({length - held}), not {length}")


def _as_keep(keep, batch: int, held: int, op: str):
    """`keep` as an int64 tensor of shape (batch, n_keep), checked."""
    import torch

    if not isinstance(keep, torch.Tensor):
        keep = torch.as_tensor(keep)
    if keep.dtype == torch.bool or keep.is_floating_point() or keep.is_complex():
        raise TypeError(f"{op}: keep must hold integers, got {keep.dtype}")
    if keep.ndim == 1:
        keep = keep.unsqueeze(0).expand(batch, -1)
    if keep.ndim != 2 or keep.shape[0] != batch:
        raise ValueError(f"{op}: keep must have shape (n_keep,) or ({batch}, n_keep), got {tuple(keep.shape)}")
    keep = keep.to(torch.int64)
    if keep.numel() and (int(keep.min()) < 0 or int(keep.max()) >= held):
        raise ValueError(f"{op}: keep must index the {held} cached positions, got values in "
                         f"[{int(keep.min())}, {int(keep.max())}]")
    return keep


def _first_moved(keep) -> int:
    """The first column j where some row keeps a position other than j:
    the positions before it stay where they are (no copy)."""
    import torch

    n = keep.shape[1]
    same = (keep == torch.arange(n, device=keep.device)).all(dim=0)
    moved = torch.nonzero(~same)
    return int(moved[0]) if moved.numel() else n


def compact(cache, keep) -> None:
    """Keep only the given positions of each row of `cache`, in order.

    Parameters
    ----------
    cache : transformers.Cache
        Modified in place (see the module docstring for the layers
        supported).
    keep : torch.Tensor or array-like of int, shape (n_keep,) or (batch, n_keep)
        The positions to keep: afterwards position j of row b holds what
        position ``keep[b, j]`` held (a 1-D `keep` applies to every row).
        A position may repeat (padding for a row that keeps fewer).

    Raises
    ------
    TypeError
        A layer that cannot be rolled back exactly, or a non-integer
        `keep`.
    ValueError
        `keep` of the wrong shape or outside the cached positions.

    Notes
    -----
    Only columns from the first one where some row's position moves are
    copied (``keep[:, :j] == arange(j)`` stays in place), so keeping a long
    prefix plus a few accepted tree nodes costs O(batch * nodes), not
    O(sequence length). A plain ``DynamicLayer``'s tensors are written in
    place.

    Examples
    --------
    >>> import torch
    >>> from transformers import DynamicCache
    >>> cache = DynamicCache()
    >>> _ = cache.update(torch.arange(12.0).view(2, 1, 6, 1), torch.zeros(2, 1, 6, 1), 0)
    >>> compact(cache, [[0, 1, 2, 4], [0, 1, 3, 3]])  # the prefix, then each row's path
    >>> cache.layers[0].keys[:, 0, :, 0].tolist()
    [[0.0, 1.0, 2.0, 4.0], [6.0, 7.0, 9.0, 9.0]]
    """
    if _cache_level(cache):
        cache.compact(keep)
        return
    layers = _layers(cache, "compact")
    if not layers:
        raise ValueError("compact: the cache holds no positions")
    held = layers[0][1].get_seq_length()
    batch = next((layer.keys.shape[0] for _, layer, kind in layers if kind == "dynamic"), None)
    if batch is None:  # only protocol layers: they check the batch themselves
        shape = getattr(keep, "shape", None) or np.shape(keep)
        batch = shape[0] if len(shape) == 2 else 1
    keep = _as_keep(keep, batch, held, "compact")
    start = _first_moved(keep)
    for i, layer, kind in layers:
        if layer.get_seq_length() != held or (kind == "dynamic" and layer.keys.shape[0] != batch):
            raise ValueError(f"compact: cache.layers[{i}] holds {layer.get_seq_length()} positions, unlike "
                             f"layer {layers[0][0]} (batch {batch}, {held} positions)")
        if kind == "protocol":
            layer.compact(keep)
        else:
            layer.keys = _compact_tensor(layer.keys, keep, start)
            layer.values = _compact_tensor(layer.values, keep, start)
        if layer.get_seq_length() != keep.shape[1]:
            raise RuntimeError(f"compact: cache.layers[{i}] ({type(layer).__name__}) holds "
                               f"{layer.get_seq_length()} positions after compact, not {keep.shape[1]}")


def _compact_tensor(tensor, keep, start: int):
    """`tensor` (batch, ..., seq, dim) with row b's sequence axis gathered at
    keep[b]; columns before `start` are already in place."""
    import torch

    n_keep = keep.shape[1]
    if start == n_keep:
        return tensor[..., :n_keep, :]
    tail = keep[:, start:].to(tensor.device)
    if bool((tail == tail[:1]).all()):  # the same positions in every row: one index_select
        moved = tensor.index_select(-2, tail[0])
    else:
        shape = [tail.shape[0]] + [1] * (tensor.ndim - 3) + [tail.shape[1], 1]
        index = tail.view(shape).expand(*tensor.shape[:-2], tail.shape[1], tensor.shape[-1])
        moved = torch.gather(tensor, tensor.ndim - 2, index)
    if n_keep <= tensor.shape[-2]:
        tensor[..., start:n_keep, :] = moved  # `moved` is a copy, so overlapping positions are safe
        return tensor[..., :n_keep, :]
    return torch.cat([tensor[..., :start, :], moved], dim=-2)
