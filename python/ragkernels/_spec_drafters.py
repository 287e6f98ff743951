"""Compiled drafters: prompt lookup and SuffixDecoding's suffix tree.

A drafter makes one session per request (``drafter.start(prompt)``); the
generation loop appends the tokens it accepts (``session.extend``), asks for
a draft before each forward pass (``session.draft(max_nodes)``, a
:class:`~ragkernels.spec.TokenTree` rooted at the sequence's last token) and
ends the request with ``session.finish()``. Each ``draft`` is one compiled
call that releases the GIL; nothing runs in Python per node.

- :class:`PromptLookupDrafter` copies what followed the longest earlier
  occurrence of the sequence's end in the request itself (prompt, extra
  context, accepted tokens), found with a suffix automaton extended as
  tokens come: O(1) amortized per token, O(draft) per draft.
- :class:`SuffixDrafter` (SuffixDecoding, Oliaro et al., arXiv 2411.04975)
  counts continuations in a suffix tree over earlier answers and added texts
  (shared by every session, bounded, oldest evicted first) and in one over
  the request, and proposes a tree of the most frequent ones.
- :class:`VocabBridge` lets any of them (or a retrieval drafter) draft for a
  model with another tokenizer, through the bytes both spell.

Token ids are 1-D int32 or int64 arrays (numpy, or any CPU DLPack tensor;
lists are taken too); an id below 0, or at or above ``vocab_size`` when
the drafter has one, raises ValueError naming the argument.
"""
from __future__ import annotations

import json
import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ragkernels import _core
from ragkernels._checks import check_int
from ragkernels.spec import TokenTree, _core_tree

__all__ = ["PromptLookupDrafter", "PromptLookupSession", "SuffixDrafter", "SuffixSession", "VocabBridge",
           "VocabBridgeSession", "token_bytes"]

_INT32_MAX = 2**31 - 1


def _tokens(values: Any) -> Any:
    """Lists and tuples as arrays (an empty one as int64); arrays and DLPack
    tensors as they are: the compiled side checks dtype, rank and range."""
    if isinstance(values, (list, tuple, range)):
        array = np.asarray(values)
        return array.astype(np.int64) if array.size == 0 else array
    return values


def _context(context: Any) -> Any:
    """None, one piece (an array, a tensor or a list of ints) or a list of
    pieces, as the compiled side takes them."""
    if context is None or not isinstance(context, (list, tuple)):
        return context
    if all(isinstance(t, numbers.Integral) for t in context):
        return [_tokens(context)] if context else []
    return [_tokens(piece) for piece in context]


def _vocab(vocab_size: Any, op: str) -> int:
    return -1 if vocab_size is None else check_int(vocab_size, "vocab_size", op, maximum=_INT32_MAX + 1)


def _number(value: Any, name: str, op: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{op}: {name} must be finite, got {value!r}")
    return float(value)


class _Session:
    """One request of a drafter (made by its ``start``)."""

    __slots__ = ("_core", "_vocab_size")

    def __init__(self, core: Any, vocab_size: int):
        self._core = core
        self._vocab_size = vocab_size

    def extend(self, tokens: Any) -> None:
        """Append accepted tokens (1-D ids)."""
        self._core.extend(_tokens(tokens), self._vocab_size)

    def draft(self, max_nodes: int) -> TokenTree:
        """A tree of at most ``max_nodes`` drafted tokens rooted at the
        sequence's last token (0: a root-only tree).

        Raises ValueError when the sequence is empty or ``max_nodes < 0``.
        """
        max_nodes = check_int(max_nodes, "max_nodes", "draft", minimum=0)
        return TokenTree._wrap(self._core.draft(max_nodes))

    def finish(self) -> None:
        """End the request; later calls raise."""
        self._core.finish()

    def __len__(self) -> int:
        """Tokens of the sequence: prompt plus accepted (context excluded)."""
        return self._core.size


class PromptLookupSession(_Session):
    """One request of a :class:`PromptLookupDrafter`: ``extend`` is O(1)
    amortized per token, ``draft`` a chain of at most ``min(max_nodes,
    max_depth)`` tokens in O(draft), ``finish`` frees the automaton."""

    __slots__ = ()

    @property
    def match_length(self) -> int:
        """Length of the longest suffix of the text that occurred before."""
        return self._core.match_length

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the session's automaton."""
        return self._core.memory_bytes


class PromptLookupDrafter:
    """Draft by copying what followed an earlier occurrence of the sequence's end.

    Per request, an online suffix automaton over the context pieces, the
    prompt and every accepted token finds the longest suffix of the sequence
    that occurred before; the draft is the chain of tokens that followed its
    first occurrence (transformers' ``prompt_lookup_num_tokens`` without
    the per-step rescan of the prompt, and without a cap on the match).

    Parameters
    ----------
    max_depth : int, default 16
        Longest draft, in tokens.
    min_match : int, default 2
        Shortest matched suffix that drafts anything (one repeated token
        is weak evidence: frequent tokens repeat everywhere).
    vocab_size : int, optional
        Token ids must be below it (ValueError otherwise).

    Notes
    -----
    Complexity: ``start`` O(prompt + context), ``extend`` O(1) amortized
    per token (expected: transitions are hashed, so ids may be any int32),
    ``draft`` O(draft length). Memory: about 120 bytes per token (a
    million-token context: 120 MB, built in about a second).

    The occurrence copied is the first one: a state's first end position is
    fixed when the automaton creates it, while the most recent one would
    have to be updated on every ancestor of each new state (O(n) per token
    on a run of one token). When the copy reaches the present (overlapping
    occurrences, ``a a a a``), it continues with the tokens it drafted, as
    an LZ77 overlapping copy does, so a period repeats. It stops at the end
    of a context piece (pieces are matched separately).

    Weights: the k-th drafted token has weight ``(L + 1) / (L + 1 + k)``
    for a match of L tokens, Laplace's rule of succession applied token by
    token (after L tokens that repeated the earlier occurrence, the next one
    does with probability (L + 1) / (L + 2), and each accepted token makes
    the match one longer).

    Examples
    --------
    >>> drafter = PromptLookupDrafter(max_depth=4)
    >>> session = drafter.start([5, 6, 7, 8, 9, 5, 6])
    >>> tree = session.draft(8)
    >>> tree.tokens.tolist(), tree.parents.tolist()
    ([6, 7, 8, 9, 5], [-1, 0, 1, 2, 3])
    >>> session.extend([7, 8])
    >>> session.draft(2).tokens.tolist()
    [8, 9, 5]
    """

    def __init__(self, max_depth: int = 16, min_match: int = 2, *, vocab_size: Optional[int] = None):
        op = "PromptLookupDrafter"
        self.max_depth = check_int(max_depth, "max_depth", op, maximum=_INT32_MAX)
        self.min_match = check_int(min_match, "min_match", op, maximum=_INT32_MAX)
        self.vocab_size = None if vocab_size is None else _vocab(vocab_size, op)

    def start(self, prompt: Any, context: Any = None) -> PromptLookupSession:
        """A session for one request.

        Parameters
        ----------
        prompt : 1-D int32 or int64 array (or list)
            The request's tokens so far; may be empty (then ``extend``
            before the first ``draft``).
        context : array, list of arrays, optional
            Extra text to copy from (e.g. retrieved passages), each piece
            matched on its own.
        """
        vocab = -1 if self.vocab_size is None else self.vocab_size
        core = _core.SpecPromptLookupSession(_tokens(prompt), _context(context), self.max_depth, self.min_match, vocab)
        return PromptLookupSession(core, vocab)

    def __repr__(self) -> str:
        return f"PromptLookupDrafter(max_depth={self.max_depth}, min_match={self.min_match})"


class SuffixSession(_Session):
    """One request of a :class:`SuffixDrafter`: ``extend`` is O(max_depth)
    per token; ``finish`` (once) makes the accepted tokens an answer of the
    drafter, evicting the oldest beyond its limits."""

    __slots__ = ()

    @property
    def request_num_nodes(self) -> int:
        """Nodes of the request's own suffix tree."""
        return self._core.request_num_nodes


class SuffixDrafter:
    """Draft the most frequent continuations from earlier answers (SuffixDecoding).

    A suffix tree counts every substring of up to ``max_depth`` tokens of
    the earlier answers (added by ``session.finish()``) and of texts given
    with :meth:`add` (e.g. tokenized passages); each session has one more
    over its context and its own sequence. A draft finds, in each tree, the
    longest suffix of the sequence (at most ``max_match`` tokens) that was
    seen followed by something, then grows a tree of continuations
    best-first by empirical probability ``count(path) / count(match)``,
    dropping nodes under ``min_probability``, up to
    ``min(max_nodes, floor(max_spec_factor * match length))`` nodes. The
    tree with the higher expected number of accepted tokens (the sum of its
    weights) is returned; a tie goes to the request's.

    Parameters
    ----------
    max_depth : int, default 32
        Depth of the suffix trees: a match and its continuation together
        span at most this many tokens.
    max_match : int, optional
        Longest suffix matched; default ``max_depth // 2``, which leaves as
        many tokens for the draft.
    max_spec_factor : float, default 1.0
        Draft size at most this times the match length (a longer match is
        stronger evidence; SuffixDecoding's ``MAX_SPEC = alpha * p``).
    min_probability : float, default 0.1
        Nodes whose path probability falls below it are not drafted.
    max_answers : int, optional
        Answers and added texts kept; beyond it the oldest are evicted.
    max_tokens : int, default 2**20
        Their total tokens kept, likewise (a longer text is not kept).
    vocab_size : int, optional
        Token ids must be below it (ValueError otherwise).

    Notes
    -----
    Complexity: ``add`` and ``finish`` O(length * max_depth) under an
    exclusive lock; ``extend`` O(max_depth) per token; ``draft``
    O(max_match**2) to match (in practice a few tokens per try) plus
    O(nodes * (1 / min_probability + log nodes)) to grow (a node with many
    children keeps them in count order, so only those above the floor are
    read), under a shared lock: sessions draft in parallel (from several
    threads) while others finish. Memory: O(tokens kept), about 170 bytes
    per token (the default budget, 2**20 tokens, is about 180 MB at most):
    a path seen once is stored as a pointer into its text, not node by
    node; eviction frees the nodes and gives the memory back (the tree
    left equals one built from the kept texts).

    The request's own sequence enters its tree ``max_depth`` tokens late,
    so the sequence's end never matches itself.

    Examples
    --------
    >>> drafter = SuffixDrafter(max_depth=8)
    >>> drafter.add([1, 2, 3, 4, 5])
    >>> drafter.add([1, 2, 3, 9])
    >>> tree = drafter.start([7, 1, 2, 3]).draft(8)   # 1 2 3 -> 4 or 9
    >>> tree.tokens.tolist(), tree.parents.tolist()
    ([3, 4, 9, 5], [-1, 0, 0, 1])
    >>> tree.weights.tolist()
    [1.0, 0.5, 0.5, 0.5]
    """

    def __init__(self, max_depth: int = 32, *, max_match: Optional[int] = None, max_spec_factor: float = 1.0,
                 min_probability: float = 0.1, max_answers: Optional[int] = None,
                 max_tokens: Optional[int] = 2**20, vocab_size: Optional[int] = None):
        op = "SuffixDrafter"
        self.max_depth = check_int(max_depth, "max_depth", op, minimum=2, maximum=2**20)
        self.max_match = self.max_depth // 2 if max_match is None else check_int(max_match, "max_match", op)
        self.max_spec_factor = _number(max_spec_factor, "max_spec_factor", op)
        self.min_probability = _number(min_probability, "min_probability", op)
        self.max_answers = None if max_answers is None else check_int(max_answers, "max_answers", op, minimum=0)
        self.max_tokens = None if max_tokens is None else check_int(max_tokens, "max_tokens", op, minimum=0)
        self.vocab_size = None if vocab_size is None else _vocab(vocab_size, op)
        self._core = _core.SpecSuffixDrafter(
            self.max_depth, self.max_match, self.max_spec_factor, self.min_probability,
            -1 if self.max_answers is None else self.max_answers, -1 if self.max_tokens is None else self.max_tokens)

    @property
    def _vocab(self) -> int:
        return -1 if self.vocab_size is None else self.vocab_size

    def add(self, tokens: Any) -> None:
        """Add a text (1-D ids) to the shared tree, like a finished answer.

        O(length * max_depth); the oldest texts beyond ``max_answers`` or
        ``max_tokens`` are evicted first. An empty text is ignored.
        """
        self._core.add(_tokens(tokens), self._vocab)

    def start(self, prompt: Any, context: Any = None) -> SuffixSession:
        """A session for one request.

        Parameters
        ----------
        prompt : 1-D int32 or int64 array (or list)
            The request's tokens so far; may be empty.
        context : array, list of arrays, optional
            Extra texts for this request only, each indexed on its own.
        """
        core = _core.SpecSuffixSession(self._core, _tokens(prompt), _context(context), self._vocab)
        return SuffixSession(core, self._vocab)

    @property
    def num_answers(self) -> int:
        """Answers and added texts in the shared tree."""
        return self._core.num_answers

    @property
    def num_tokens(self) -> int:
        """Their tokens."""
        return self._core.num_tokens

    @property
    def num_nodes(self) -> int:
        """Nodes of the shared tree (root, branchings, and one per path seen once)."""
        return self._core.num_nodes

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the shared tree and its texts."""
        return self._core.memory_bytes

    def export_trie(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every path of the shared tree, for inspection: ``(tokens,
        parents, counts)``, breadth-first with children by token, node 0
        the root (token -1, count = suffixes indexed). O(paths)."""
        return self._core.export_trie()

    def __repr__(self) -> str:
        return (f"SuffixDrafter(max_depth={self.max_depth}, max_match={self.max_match}, "
                f"num_answers={self.num_answers}, num_nodes={self.num_nodes})")


class VocabBridgeSession:
    """One request of a :class:`VocabBridge`: the drafter's session sees the
    target's accepted text re-tokenized word by word; drafts come back in
    target ids."""

    __slots__ = ("_core", "_inner", "_target_size")

    def __init__(self, core: Any, inner: Any, target_size: int):
        self._core, self._inner, self._target_size = core, inner, target_size

    def extend(self, tokens: Any) -> None:
        """Append accepted target tokens (1-D ids): O(their bytes)."""
        committed = self._core.extend(_tokens(tokens), self._target_size)
        if len(committed):
            self._inner.extend(committed)

    def draft(self, max_nodes: int) -> TokenTree:
        """The drafter's tree of at most ``2 * max_nodes + len(pending)``
        nodes (its paths spell the pending bytes first, and tokens of the two
        vocabularies differ in length) mapped to target ids and cut to the
        ``max_nodes`` best (:func:`~ragkernels.spec.merge`), rooted at the
        last target token.

        Raises ValueError when the sequence is empty or ``max_nodes < 0``.
        """
        max_nodes = check_int(max_nodes, "max_nodes", "draft", minimum=0)
        if len(self) and self._core.num_committed and max_nodes:
            budget = 2 * max_nodes + len(self._core.pending)
            drafted = _core_tree(self._inner.draft(budget), "draft", "the drafter's tree")
        else:  # nothing committed yet: the drafter has no sequence to continue
            drafted = TokenTree([0], [-1])._tree
        return TokenTree._wrap(self._core.map(drafted, max_nodes))

    def finish(self) -> None:
        """Commit the last pending bytes and end the drafter's session."""
        rest = self._core.flush()
        if len(rest):
            self._inner.extend(rest)
        self._inner.finish()

    @property
    def pending(self) -> bytes:
        """The target's bytes not yet handed to the drafter (the last word)."""
        return self._core.pending

    def __len__(self) -> int:
        """Target tokens of the sequence: prompt plus accepted."""
        return self._core.size


class VocabBridge:
    """Draft for a model whose tokenizer differs from the drafter's.

    Wraps any drafter (a :class:`SuffixDrafter` over answers of another
    model, a :class:`~ragkernels.spec.RetrievalDrafter` over a corpus
    tokenized for another model, ...) and translates through bytes, the
    idea of OmniDraft (Ramakrishnan et al., arXiv 2507.02659) without its
    learned n-gram table: each vocabulary is given as the bytes of every
    token id, and text crosses by greedy longest match over a byte trie of
    the receiving vocabulary (compiled, O(bytes), no Python per token). The
    target's accepted text reaches the drafter word by word (up to the last
    whitespace, where tokenizers split alike), so the drafter sees each word
    tokenized whole; the drafter's tree is kept where it agrees with the
    pending last word, and what goes past it becomes target tokens (a last
    token that more bytes could have lengthened is left out).

    Greedy matching is not always the tokenizer's own tokenization (BPE
    merges in its own order): a mismatch costs an accepted token, never
    correctness, since verification keeps only what the model produces.

    Parameters
    ----------
    drafter : a drafter (``start(prompt[, context])`` -> session)
        Working in the drafter vocabulary's ids.
    drafter_vocab, target_vocab : sequence of bytes
        The bytes of every token id (``b""`` for a token never to be
        produced, e.g. a special token); :func:`token_bytes` makes them from
        a Hugging Face tokenizer.

    Examples
    --------
    >>> target_vocab = [b"a", b"b", b" ", b"ab", b" ab"]
    >>> drafter_vocab = [b"a", b"b", b" ", b"ba"]
    >>> inner = SuffixDrafter(max_depth=8, max_spec_factor=4)
    >>> inner.add([0, 3, 2, 0, 3, 2, 0, 3])             # "aba aba aba"
    >>> bridge = VocabBridge(inner, drafter_vocab, target_vocab)
    >>> session = bridge.start([3, 0, 2, 3])            # "aba ab" in target ids
    >>> session.pending                                 # the drafter has "aba" = [0, 3]
    b' ab'
    >>> tree = session.draft(4)                         # it drafts " aba aba": "a", " ab" follow
    >>> tree.tokens.tolist(), tree.parents.tolist()     # (a last "a" could still become "ab": left out)
    ([3, 0, 4], [-1, 0, 1])
    """

    def __init__(self, drafter: Any, drafter_vocab: Sequence[bytes], target_vocab: Sequence[bytes]):
        op = "VocabBridge"
        if not callable(getattr(drafter, "start", None)):
            raise TypeError(f"{op}: drafter must have a start(prompt) method returning a session, "
                            f"got {type(drafter).__name__}")
        self.drafter = drafter
        self._core = _core.SpecVocabBridge(list(drafter_vocab), list(target_vocab))
        inner_vocab = getattr(drafter, "vocab_size", None)
        if inner_vocab is not None and inner_vocab < self._core.drafter_size:
            raise ValueError(f"{op}: drafter_vocab has {self._core.drafter_size} tokens but the drafter takes ids "
                             f"below {inner_vocab}; is drafter_vocab the drafter's tokenizer?")

    @classmethod
    def from_tokenizers(cls, drafter: Any, drafter_tokenizer: Any, target_tokenizer: Any) -> "VocabBridge":
        """The bridge between two Hugging Face tokenizers (see :func:`token_bytes`)."""
        return cls(drafter, token_bytes(drafter_tokenizer), token_bytes(target_tokenizer))

    @property
    def vocab_size(self) -> int:
        """Target ids must be below it."""
        return self._core.target_size

    def start(self, prompt: Any, context: Any = None) -> VocabBridgeSession:
        """A session for one request; ``prompt`` and ``context`` in target ids
        (context goes to the drafter re-tokenized, when given)."""
        core = _core.SpecBridgeSession(self._core)
        committed = core.extend(_tokens(prompt), self.vocab_size)
        if context is None:
            inner = self.drafter.start(committed)
        else:
            pieces = _context(context)
            pieces = [pieces] if not isinstance(pieces, list) else pieces
            inner = self.drafter.start(committed, context=[self.to_drafter(piece) for piece in pieces])
        return VocabBridgeSession(core, inner, self.vocab_size)

    def to_drafter(self, tokens: Any) -> np.ndarray:
        """Target ids (1-D) as the drafter's (int32), e.g. to ``add`` a text
        tokenized for the target to a drafter of the other vocabulary."""
        return self._core.to_drafter(_tokens(tokens))

    @property
    def memory_bytes(self) -> int:
        """Bytes of both vocabularies and their tries."""
        return self._core.memory_bytes

    def __repr__(self) -> str:
        return (f"VocabBridge({self.drafter!r}, drafter_vocab={self._core.drafter_size} tokens, "
                f"target_vocab={self._core.target_size} tokens)")


def _byte_level_alphabet() -> dict:
    """GPT-2's printable stand-in character of every byte, inverted."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _decoder_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"token_bytes: needs a fast Hugging Face tokenizer (backend_tokenizer), "
                        f"got {type(tokenizer).__name__}")
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    kinds = {d.get("type") for d in decoder.get("decoders", [decoder])}
    if "ByteLevel" in kinds:
        return "byte-level"
    if "Metaspace" in kinds or "ByteFallback" in kinds:
        return "sentencepiece"
    raise ValueError(f"token_bytes: the tokenizer's decoder {sorted(k for k in kinds if k)} is neither byte-level "
                     "BPE nor SentencePiece; its tokens do not spell their text's bytes")


def token_bytes(tokenizer: Any) -> List[bytes]:
    """The bytes every id of a Hugging Face tokenizer spells, for
    :class:`VocabBridge`: byte-level BPE (GPT-2, Llama 3, SmolLM2, Qwen) and
    SentencePiece (``▁`` for a space, ``<0xNN>`` byte tokens). Special
    tokens spell ``b""`` (never drafted); other added tokens their UTF-8.

    Raises ValueError for a tokenizer whose tokens are not its text's bytes
    (WordPiece, which lowercases and marks word pieces)."""
    kind = _decoder_kind(tokenizer)
    size = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    added = set(tokenizer.get_added_vocab().values())
    alphabet = _byte_level_alphabet() if kind == "byte-level" else None
    pieces = []
    for i, token in enumerate(tokens):
        if token is None or i in special:
            pieces.append(b"")
        elif i in added:
            pieces.append(token.encode("utf-8"))
        elif alphabet is not None:
            pieces.append(bytes(alphabet[c] for c in token) if all(c in alphabet for c in token)
                          else token.encode("utf-8"))
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            pieces.append(bytes([int(token[3:5], 16)]))
        else:
            pieces.append(token.replace("\u2581", " ").encode("utf-8"))
    return pieces
