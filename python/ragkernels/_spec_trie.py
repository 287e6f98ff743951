"""A trie of allowed token-id sequences in CSR form, for constrained decoding.

Generative retrieval and cited answers need a model to emit only valid
strings (a document id, a title, a citation). :class:`Trie` holds the allowed
token sequences flattened to CSR ("Vectorizing the Trie", arXiv 2602.22647)
and steps a batch of decoder states in compiled code: the allowed next
tokens as a bitmask, the states after the chosen tokens, whether a state
ends an allowed sequence. A state is a node id; the root is 0 and -1 the
dead state (no allowed sequence continues what was emitted).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ragkernels import _backend, _core
from ragkernels._checks import check_int

__all__ = ["Trie"]

_INT32_MAX = 2**31 - 1


def _flatten(sequences: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(values int64, offsets int64) from id sequences or a (values, offsets) pair of arrays.

    Only a tuple of two numpy arrays is the pair: a tuple of two lists is
    two sequences (([5, 6, 7], [0, 3]) must not silently become one)."""
    if isinstance(sequences, tuple) and len(sequences) == 2 and all(isinstance(a, np.ndarray) for a in sequences):
        values, offsets = (np.asarray(a) for a in sequences)
        for name, a in (("values", values), ("offsets", offsets)):
            if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
                raise TypeError(f"Trie.build: {name} must be a 1-D integer array, got {a.dtype} with shape {a.shape}")
        return values.astype(np.int64, copy=False), offsets.astype(np.int64, copy=False)
    if isinstance(sequences, np.ndarray):
        raise TypeError("Trie.build: sequences must be a list of id sequences or a (values, offsets) pair, "
                        "got an array; pass list(array) for one sequence per row")
    rows = [np.asarray(s) if not isinstance(s, np.ndarray) else s for s in sequences]
    for i, row in enumerate(rows):
        if row.ndim != 1 or not (np.issubdtype(row.dtype, np.integer) or row.size == 0):
            raise TypeError(f"Trie.build: sequences[{i}] must be a 1-D sequence of token ids, got {row.dtype} "
                            f"with shape {row.shape}")
    lengths = np.fromiter((len(r) for r in rows), np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = (np.concatenate([r.astype(np.int64, copy=False) for r in rows]) if rows
              else np.zeros(0, np.int64))
    return values, offsets


def _int32(values: np.ndarray, name: str, op: str) -> np.ndarray:
    if values.size and (values.min() < -(2**31) or values.max() > _INT32_MAX):
        bad = int(np.flatnonzero((values < -(2**31)) | (values > _INT32_MAX))[0])
        raise ValueError(f"{op}: {name}[{bad}] = {values[bad]} does not fit a token id (int32)")
    return np.ascontiguousarray(values, dtype=np.int32)


def _ids(values: Any, name: str, op: str) -> np.ndarray:
    """A 1-D int32 array of ids or states from an int array, a list, or a CPU DLPack tensor."""
    if type(values) is np.ndarray and values.dtype == np.int32 and values.ndim == 1:
        return np.ascontiguousarray(values)  # each step's own arrays: nothing to convert or range-check
    if hasattr(values, "__dlpack__") and not isinstance(values, np.ndarray):
        values = np.from_dlpack(values)
    array = np.asarray(values)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{op}: {name} must be a 1-D integer array, got {array.dtype} with shape {array.shape}")
    return _int32(array, name, op)


class Trie:
    """The allowed token-id sequences, as a CSR prefix tree.

    Build with :meth:`build`. Nodes are numbered depth-first from the root
    (0); node v's children are ``tokens[row_ptr[v]:row_ptr[v + 1]]`` (in
    increasing order) leading to ``child[...]``; ``terminal[v]`` marks the
    end of an allowed sequence (which may be a prefix of another).

    Examples
    --------
    >>> trie = Trie.build([[5, 6], [5, 7, 8], [9]], vocab_size=10)
    >>> states = trie.start(2)                       # two rows at the root
    >>> trie.allowed(states[:1])                     # bitmask rows as token lists
    [[5, 9]]
    >>> states = trie.advance(states, [5, 9])
    >>> trie.is_terminal(states).tolist()
    [False, True]
    >>> trie.advance(states, [7, 3]).tolist()        # 9 then 3: dead
    [3, -1]
    """

    __slots__ = ("_core", "_device_masks")

    def __init__(self, core: "_core.SpecTrie"):
        self._core = core
        self._device_masks: Dict[int, Any] = {}  # CUDA device -> its copy of the arrays the mask reads

    @classmethod
    def build(cls, sequences: Union[Iterable[Sequence[int]], Tuple[Any, Any]], *,
              vocab_size: Optional[int] = None) -> "Trie":
        """A trie of `sequences`.

        Parameters
        ----------
        sequences : token-id sequences, or a ``(values, offsets)`` tuple of two
            1-D int numpy arrays (sequence i is ``values[offsets[i]:offsets[i + 1]]``;
            a tuple of two lists is two sequences). Each non-empty; duplicates
            are kept once.
        vocab_size : int, optional
            Token ids must be below it; the bitmask has ``ceil(vocab_size / 32)``
            words per row. Default: the largest id + 1 (pass the model's
            vocabulary size for masks as wide as its logits).

        Raises ValueError for an empty set, an empty sequence or an id
        outside ``[0, vocab_size)``, naming it. Sorting runs on
        ``ragkernels.set_num_threads`` threads; the GIL is released.
        """
        values, offsets = _flatten(sequences)
        if vocab_size is None:
            vocab_size = int(values.max()) + 1 if values.size and values.max() >= 0 else 1
        vocab_size = check_int(vocab_size, "vocab_size", "Trie.build", maximum=_INT32_MAX + 1)
        values = _int32(values, "values", "Trie.build")
        return cls(_core.SpecTrie(values, np.ascontiguousarray(offsets), vocab_size))

    @classmethod
    def from_strings(cls, strings: Iterable[str], tokenizer: Any, *, prefix: str = "", suffix: str = "",
                     vocab_size: Optional[int] = None) -> "Trie":
        """A trie of ``prefix + s + suffix`` for each string, tokenized by a
        Hugging Face ``tokenizer`` without special tokens (as the model would
        write it where the prefix starts: mind a leading space after text).

        ``vocab_size`` defaults to ``len(tokenizer)``, the width of the
        model's logits for most models (pass the config's when it pads).
        """
        texts = []
        for i, s in enumerate(strings):
            if not isinstance(s, str):
                raise TypeError(f"Trie.from_strings: strings[{i}] must be a str, got {type(s).__name__}")
            texts.append(f"{prefix}{s}{suffix}")
        if not texts:
            raise ValueError("Trie.from_strings: strings is empty; a trie needs at least one allowed sequence")
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return cls.build(ids, vocab_size=len(tokenizer) if vocab_size is None else vocab_size)

    @classmethod
    def load(cls, path: Any, *, verify: bool = True) -> "Trie":
        """Map a trie written by :meth:`save` (the arrays are read in place).

        Always checks what keeps every step in bounds (sizes, ``row_ptr``
        within the edges, tokens in the vocabulary, children in range);
        ``verify`` (default) also checks the checksums and proves the arrays
        are the trie :meth:`build` makes (depth-first numbering, sorted
        children, every leaf terminal, the sequence count): one pass.

        Raises ragkernels.FormatError naming the file and what is wrong;
        OSError when it cannot be read.
        """
        return cls(_core.SpecTrie.load(os.fspath(path), bool(verify)))

    def save(self, path: Any) -> None:
        """Write the trie atomically (docs/formats.md, kind "spec-trie")."""
        self._core.save(os.fspath(path))

    # -- sizes and arrays --------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    @property
    def num_nodes(self) -> int:
        return self._core.num_nodes

    @property
    def num_sequences(self) -> int:
        """Distinct allowed sequences."""
        return self._core.num_sequences

    @property
    def memory_bytes(self) -> int:
        return self._core.memory_bytes

    @property
    def row_ptr(self) -> np.ndarray:
        """int64 (num_nodes + 1,), read-only."""
        return self._core.row_ptr

    @property
    def tokens(self) -> np.ndarray:
        """int32 (edges,), read-only: each edge's token, increasing within a node."""
        return self._core.tokens

    @property
    def child(self) -> np.ndarray:
        """int32 (edges,), read-only: the node each edge leads to."""
        return self._core.child

    @property
    def terminal(self) -> np.ndarray:
        """uint8 (num_nodes,), read-only: 1 where an allowed sequence ends."""
        return self._core.terminal

    # -- steps ---------------------------------------------------------------------------------
    def start(self, batch: int) -> np.ndarray:
        """int32 (batch,): every row at the root."""
        return np.zeros(check_int(batch, "batch", "start", minimum=0), np.int32)

    def next_token_bitmask(self, states: Any) -> np.ndarray:
        """int32 (batch, ceil(vocab_size / 32)): bit ``t % 32`` of word ``t // 32``
        set when token t continues an allowed sequence from the row's state
        (xgrammar's layout); a dead row (-1) allows nothing."""
        return self._core.next_token_bitmask(_ids(states, "states", "next_token_bitmask"))

    def allowed(self, states: Any) -> List[List[int]]:
        """The allowed next tokens of each row, as lists (for inspection)."""
        bits = np.unpackbits(self.next_token_bitmask(states).view(np.uint8), axis=1, bitorder="little")
        return [np.flatnonzero(row[:self.vocab_size]).tolist() for row in bits]

    def advance(self, states: Any, tokens: Any) -> np.ndarray:
        """int32 (batch,): each row's state after its token (-1 when the token
        leaves the trie, and from -1)."""
        return self._core.advance(_ids(states, "states", "advance"), _ids(tokens, "tokens", "advance"))

    def is_terminal(self, states: Any) -> np.ndarray:
        """bool (batch,): whether each row has emitted a whole allowed sequence."""
        return self._core.is_terminal(_ids(states, "states", "is_terminal"))

    def mask_logits(self, states: Any, logits: Any, *, eos_token_id: Optional[int] = None, out: Any = None) -> Any:
        """Apply the trie's additive mask to `logits` in place (or write the
        masked copy to `out`) and return the array written.

        Every logit of a token that may not follow the row's state (and of
        every column at or past ``vocab_size``) becomes ``-inf``; allowed
        logits keep their exact bits (no arithmetic is done, NaN stays NaN).

        Parameters
        ----------
        states : int array (batch,)
        logits : (batch, width) float32 or float16 numpy array, or a tensor
            of float32, float16 or bfloat16 (torch, through DLPack); columns
            contiguous, ``width >= vocab_size``. A CUDA tensor is masked on
            its device (the trie's arrays are copied there once).
        eos_token_id : int, optional
            Allowed too after a whole sequence, and the only token of a dead
            row. Without it, a row that allows nothing (dead, or at the end
            of a sequence no other continues) is left as it is.
        out : array like `logits`, optional (CPU)
            Receives the masked copy, written in one pass (cheaper than a copy
            then the mask); `logits` is then only read. Must not overlap it.

        Raises ValueError when the logits are narrower than the vocabulary,
        have another row count, or `eos_token_id` is outside them; TypeError
        for another dtype or layout. The GIL is released.
        """
        states = _ids(states, "states", "mask_logits")
        eos = -1 if eos_token_id is None else check_int(eos_token_id, "eos_token_id", "mask_logits", minimum=0)
        if type(logits) is not np.ndarray and _backend.device_of(logits) == "cuda":
            if out is not None:
                raise ValueError("mask_logits: out= is for CPU arrays; on a GPU, mask a copy in place")
            self._device_mask(logits.__dlpack_device__()[1]).mask_logits(states, logits, eos)
            return logits
        self._core.mask_logits(states, logits, eos, out)
        return logits if out is None else out

    def _device_mask(self, device: int) -> Any:
        """The arrays the mask reads, copied to `device` once (cuda/spec/trie_mask.cuh)."""
        if device not in self._device_masks:
            cuda = _backend.cuda_module("mask_logits")
            self._device_masks[device] = cuda.TrieMask(self.row_ptr, self.tokens, self.terminal, self.vocab_size,
                                                       device)
        return self._device_masks[device]

    def __len__(self) -> int:
        return self.num_sequences

    def __repr__(self) -> str:
        return f"Trie(num_sequences={self.num_sequences}, num_nodes={self.num_nodes}, vocab_size={self.vocab_size})"
