"""The retrieval datastore of REST and its drafter.

A :class:`Datastore` indexes a tokenized corpus (e.g. the passages a BM25
index retrieves, tokenized with the generating model's tokenizer) with a
suffix array; a :class:`RetrievalDrafter` proposes, at each step of a
sequence, the most frequent continuations in the corpus of the longest
suffix of the sequence found there, as a :class:`~ragkernels.spec.TokenTree`
(He et al., "REST: Retrieval-Based Speculative Decoding", NAACL 2024,
arXiv 2311.08252). Datastores are saved in the core file format
(docs/formats.md, kind ``spec-datastore``) and loaded memory-mapped.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from ragkernels import _core
from ragkernels._checks import check_int
from ragkernels._progress import ProgressBar
from ragkernels.spec import TokenTree

_BATCH = 8192  # sequences per call into the builder (one progress step each)
_MAX_VOCAB = 2**31


def _as_ids(values: Any, op: str, name: str) -> Any:
    """Token ids for the compiled core: int32/int64 numpy arrays and other
    DLPack tensors as they are (the core checks dtype, rank and device),
    any other integer input as int64 (a lossless cast)."""
    if isinstance(values, np.ndarray):
        if values.dtype in (np.int32, np.int64):
            return values
    elif hasattr(values, "__dlpack__"):
        return values
    array = np.asarray(values)
    if array.size == 0 and array.dtype == np.float64:  # np.asarray([]) is float64
        return array.astype(np.int64)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{op}: {name} must hold integer token ids, got {array.dtype}")
    if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        bad = int(np.flatnonzero(array > np.iinfo(np.int64).max)[0])
        raise ValueError(f"{op}: {name}[{bad}] = {array[bad]} is not a token id (< 2^31)")
    return array.astype(np.int64)


def _flatten(batch: List[Any], first: int) -> Tuple[np.ndarray, np.ndarray]:
    """One batch of sequences as (ids, offsets): ids int32 when every
    sequence is int32, else int64; errors name ``sequences[i]``."""
    op = "Datastore.build"
    arrays = []
    for i, seq in enumerate(batch):
        name = f"sequences[{first + i}]"
        if not isinstance(seq, np.ndarray) and hasattr(seq, "__dlpack__"):
            seq = np.from_dlpack(seq)  # a CPU tensor, viewed in place
        array = _as_ids(seq, op, name)
        if array.ndim != 1:
            hint = " (pass a list of sequences, e.g. [tokens])" if array.ndim == 0 else ""
            raise ValueError(f"{op}: {name} must be 1-D, got shape {array.shape}{hint}")
        if array.dtype not in (np.int32, np.int64):
            raise TypeError(f"{op}: {name} must hold integer token ids, got {array.dtype}")
        arrays.append(array)
    offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([a.size for a in arrays], out=offsets[1:])
    dtype = np.int32 if all(a.dtype == np.int32 for a in arrays) else np.int64
    ids = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
    return ids, offsets


def _batches(sequences: Iterable[Any]):
    batch: List[Any] = []
    for seq in sequences:
        batch.append(seq)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Match(NamedTuple):
    """The longest suffix of a context found in a datastore.

    ``length``: its number of tokens (0 when even the last token is absent).
    ``start``, ``stop``: its occurrences are ``suffix_array[start:stop]``
    (the position of the occurrence's last token in ``text``).
    """

    length: int
    start: int
    stop: int


class Datastore:
    """A tokenized corpus indexed for retrieval drafting (REST).

    The sequences are stored one after the other in `text`, each followed by
    a separator ``-1``, and `suffix_array` orders the positions of every
    token by the text that ends there, read backwards to the start of its
    sequence (the suffix array of the reversed sequences): the occurrences of
    any run of tokens are then one slice of it, and the longest suffix of a
    sequence that occurs is found by one narrowing binary search, newest
    token first. No match crosses a sequence boundary. Read-only once built
    or loaded: drafters on several threads share one datastore.

    Build one with `build`, keep it with `save` and `load`.

    Examples
    --------
    >>> ds = Datastore.build([[5, 6, 7], [6, 7, 8]])
    >>> len(ds), ds.num_tokens, ds.text.tolist()
    (2, 6, [5, 6, 7, -1, 6, 7, 8, -1])
    >>> ds.longest_match([1, 6, 7])          # "6 7" occurs twice
    Match(length=2, start=3, stop=5)
    """

    def __init__(self, core: "_core.SpecDatastore") -> None:
        if not isinstance(core, _core.SpecDatastore):
            raise TypeError("Datastore: build one with Datastore.build or Datastore.load")
        self._core = core

    @classmethod
    def build(cls, sequences: Iterable[Any], *, vocab_size: Optional[int] = None,
              show_progress: bool = False) -> "Datastore":
        """Index tokenized sequences.

        Parameters
        ----------
        sequences : iterable of 1-D integer arrays or lists of int
            Token ids, e.g. ``tokenizer(passages)["input_ids"]``; numpy
            arrays, lists, CPU tensors. Each id is >= 0 (and < 2**31). Empty
            sequences are kept (they count in `num_sequences`).
        vocab_size : int, optional
            The tokenizer's vocabulary size: ids must then be below it, and
            drafters check the ids of their prompts against it.
        show_progress : bool, default False
            A progress bar over the sequences (the sort at the end is part
            of the last step).

        Returns
        -------
        Datastore

        Raises
        ------
        TypeError
            A sequence that does not hold integers.
        ValueError
            No token at all (an empty datastore cannot draft), a sequence
            that is not 1-D, a negative id, an id >= vocab_size; more than
            2**31 - 2 tokens + sequences. The message names ``sequences[i][j]``.

        Notes
        -----
        The sort is SA-IS (Nong, Zhang & Chan, 2011): linear time whatever
        the repetitions: 5 million tokens in 0.6 to 1 s on one core.
        """
        op = "Datastore.build"
        if isinstance(sequences, (str, bytes)):
            raise TypeError(f"{op}: sequences must be an iterable of token id sequences, got {type(sequences).__name__}")
        vocab = -1 if vocab_size is None else check_int(vocab_size, "vocab_size", op, maximum=_MAX_VOCAB)
        builder = _core.SpecDatastoreBuilder(vocab)
        total = len(sequences) if hasattr(sequences, "__len__") else None
        with ProgressBar(total, show_progress, "Datastore", unit="seq") as bar:
            first = 0
            for batch in _batches(sequences):
                builder.add(*_flatten(batch, first))
                first += len(batch)
                bar.update(len(batch))
            core = builder.finish()  # the sort: the bar's final line is drawn after it
        return cls(core)

    @classmethod
    def load(cls, path: Any, *, verify: bool = True) -> "Datastore":
        """Map a datastore written by `save` (the arrays are read in place).

        With `verify` (default) the checksums are checked, every id and
        separator is read, and the suffix array is proved to be exactly the
        sorted one (a linear pass, about 50 ns per token; docs/formats.md).
        ``verify=False`` skips those reads for a large trusted file, yet
        still checks every size, so that drafting never reads outside the
        arrays nor proposes an id outside ``[0, vocab_size)``.

        Raises
        ------
        ragkernels.FormatError
            Empty, truncated, corrupt or crafted; of another kind or a newer
            version; a datastore with no tokens. The message starts with the
            path and names the section.
        OSError
            The file cannot be opened.
        """
        return cls(_core.SpecDatastore.load(os.fspath(path), bool(verify)))

    def save(self, path: Any) -> None:
        """Write the datastore atomically (docs/formats.md, kind "spec-datastore")."""
        self._core.save(os.fspath(path))

    @property
    def num_tokens(self) -> int:
        return int(self._core.num_tokens)

    @property
    def num_sequences(self) -> int:
        return int(self._core.num_sequences)

    @property
    def vocab_size(self) -> Optional[int]:
        """int or None: the vocabulary size given to `build` (ids are below it)."""
        return self._core.vocab_size

    @property
    def text(self) -> np.ndarray:
        """int32 (num_tokens + num_sequences,), read-only: the sequences, each
        followed by -1."""
        return self._core.text

    @property
    def suffix_array(self) -> np.ndarray:
        """int32 (num_tokens,), read-only: positions in `text` of every token,
        ordered by the text ending there read backwards (to the start of its
        sequence; a shorter one first; equal ones by position)."""
        return self._core.suffix_array

    def longest_match(self, context: Any, max_match: int = 16) -> Match:
        """The longest suffix of `context` (at most `max_match` tokens) that
        occurs in the datastore, and where.

        Parameters
        ----------
        context : 1-D integer array
            A sequence, its newest token last; ids checked as the drafter
            checks them.
        max_match : int, default 16

        Returns
        -------
        Match
            ``(length, start, stop)``; ``suffix_array[start:stop]`` are the
            positions of the last token of each occurrence.
        """
        op = "Datastore.longest_match"
        max_match = check_int(max_match, "max_match", op, maximum=2**31 - 1)
        return Match(*self._core.longest_match(_as_ids(context, op, "context"), max_match))

    def __len__(self) -> int:
        return self.num_sequences

    def __repr__(self) -> str:
        return (f"Datastore(num_sequences={self.num_sequences}, num_tokens={self.num_tokens}, "
                f"vocab_size={self.vocab_size})")


class RetrievalSession:
    """One sequence drafted from a datastore; made by `RetrievalDrafter.start`.

    Keeps only the last `max_match` tokens of the sequence: a draft costs the
    same whatever the sequence's length. Calls on one session are serialized;
    give each thread its own sessions.
    """

    __slots__ = ("_core", "_finished")

    def __init__(self, core: "_core.RetrievalSession") -> None:
        self._core = core
        self._finished = False

    def _check_open(self, op: str) -> None:
        if self._finished:
            raise ValueError(f"{op}: the session is finished; start a new one")

    def extend(self, tokens: Any) -> None:
        """Append the tokens accepted since (1-D integer array)."""
        op = "RetrievalSession.extend"
        self._check_open(op)
        self._core.extend(_as_ids(tokens, op, "tokens"), op, "tokens")

    def draft(self, max_nodes: int) -> TokenTree:
        """A tree of at most `max_nodes` drafted tokens rooted at the
        sequence's last token (root only when `max_nodes` is 0 or nothing
        matches). One compiled call; the GIL is released.

        Raises
        ------
        ValueError
            `max_nodes` < 0; the sequence is empty (there is no root token).
        """
        op = "RetrievalSession.draft"
        self._check_open(op)
        max_nodes = check_int(max_nodes, "max_nodes", op, minimum=0)
        return TokenTree._wrap(self._core.draft(max_nodes))

    def finish(self) -> None:
        """End of the request: nothing is recorded (the datastore is fixed);
        later `extend` and `draft` calls raise ValueError."""
        self._finished = True

    def __len__(self) -> int:
        """Tokens of the sequence so far (prompt + extensions)."""
        return self.length

    @property
    def length(self) -> int:
        """Tokens of the sequence so far (prompt + extensions)."""
        return int(self._core.length)

    @property
    def match_length(self) -> int:
        """Tokens of the suffix the last `draft` matched (0: none)."""
        return int(self._core.match_length)

    @property
    def match_count(self) -> int:
        """Occurrences of that suffix in the datastore."""
        return int(self._core.match_count)


class RetrievalDrafter:
    """Drafts continuations from a datastore (REST, arXiv 2311.08252).

    At each draft, the longest suffix of the sequence (up to `max_match`
    tokens, and at least `min_match`) that occurs in the datastore is found;
    the continuations of its occurrences (up to `max_depth` tokens each, to
    the end of their sequence) are counted and merged into a trie; a node's
    weight is the fraction of the counted occurrences that continue with its
    path (its empirical probability); the `max_nodes` nodes of largest
    weight form the draft.

    Parameters
    ----------
    datastore : Datastore
    max_match : int, default 16
        Longest suffix of the sequence searched.
    min_match : int, default 1
        A shorter longest match drafts nothing.
    max_depth : int, default 16
        Continuation tokens read per occurrence: the deepest draft.
    max_candidates : int, default 64
        Occurrences counted: all of them when there are fewer, else this
        many spread evenly over the suffix array's slice (deterministic).
    min_weight : float, default 0.0
        Nodes whose weight is lower are not drafted.

    Notes
    -----
    Cost of a draft: O(max_match log N) for the match (N tokens in the
    datastore) plus O(max_candidates max_depth log max_candidates) for the
    tree, in one compiled call; nothing depends on the sequence's length.
    Ties between equal weights: the shallower node, then the smaller path;
    nodes come out depth first, children best-first (weight, then token).

    Examples
    --------
    >>> ds = Datastore.build([[1, 2, 3, 4], [1, 2, 3, 5], [2, 3, 4, 6]])
    >>> session = RetrievalDrafter(ds).start(np.array([9, 2, 3]))
    >>> tree = session.draft(max_nodes=3)
    >>> tree.tokens.tolist(), tree.parents.tolist()
    ([3, 4, 6, 5], [-1, 0, 1, 0])
    >>> [round(float(w), 3) for w in tree.weights]     # path frequencies
    [1.0, 0.667, 0.333, 0.333]
    """

    def __init__(self, datastore: Datastore, *, max_match: int = 16, min_match: int = 1, max_depth: int = 16,
                 max_candidates: int = 64, min_weight: float = 0.0) -> None:
        op = "RetrievalDrafter"
        if not isinstance(datastore, Datastore):
            raise TypeError(f"{op}: datastore must be a ragkernels.spec.Datastore, got {type(datastore).__name__}")
        self.datastore = datastore
        self.max_match = check_int(max_match, "max_match", op, maximum=2**31 - 1)
        self.min_match = check_int(min_match, "min_match", op, maximum=self.max_match)
        self.max_depth = check_int(max_depth, "max_depth", op, maximum=2**31 - 1)
        self.max_candidates = check_int(max_candidates, "max_candidates", op, maximum=2**20)
        if isinstance(min_weight, (bool, np.bool_)) or not isinstance(min_weight, (int, float, np.floating, np.integer)):
            raise TypeError(f"{op}: min_weight must be a number, got {type(min_weight).__name__}")
        if not 0.0 <= float(min_weight) <= 1.0:
            raise ValueError(f"{op}: min_weight must be in [0, 1], got {min_weight!r}")
        self.min_weight = float(min_weight)
        self._params = (self.max_match, self.min_match, self.max_depth, self.max_candidates, self.min_weight)
        # The compiled checks (e.g. max_candidates * max_depth), now rather than at start.
        _core.RetrievalSession(datastore._core, *self._params)

    @property
    def vocab_size(self) -> Optional[int]:
        """The datastore's vocabulary size (None when not given): prompt and
        token ids outside ``[0, vocab_size)`` raise ValueError."""
        return self.datastore.vocab_size

    def start(self, prompt: Any) -> RetrievalSession:
        """A session for one sequence that starts with `prompt` (1-D integer array)."""
        op = "RetrievalDrafter.start"
        core = _core.RetrievalSession(self.datastore._core, *self._params)
        core.extend(_as_ids(prompt, op, "prompt"), op, "prompt")
        return RetrievalSession(core)

    def __repr__(self) -> str:
        return (f"RetrievalDrafter({self.datastore!r}, max_match={self.max_match}, min_match={self.min_match}, "
                f"max_depth={self.max_depth}, max_candidates={self.max_candidates}, min_weight={self.min_weight})")
