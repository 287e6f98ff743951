"""Speculative drafting: compiled drafters, token trees and lossless verification.

A drafter proposes, for each sequence being generated, a tree of likely
continuations (:class:`TokenTree`); one forward pass of the target model scores
every node, and :func:`verify_greedy` or :func:`verify_sampling` keeps the
longest path the target agrees with, plus one token of the target's own. The
output is exactly what the target alone would produce.
``ragkernels.hf.speculative_generate`` runs the loop for transformers models;
docs/spec.md describes the design.

Node 0 of a :class:`TokenTree` is the root: the last token of the sequence so
far, whose KV the model has not cached yet; one forward pass over all nodes
(with :meth:`TokenTree.attention_mask` and :meth:`TokenTree.position_ids`)
gives the target's output after every node's path.

The drafters (:class:`PromptLookupDrafter`, :class:`SuffixDrafter`,
:class:`RetrievalDrafter` over a :class:`Datastore`) live in
``ragkernels._spec_drafters`` and ``ragkernels._spec_datastore`` and are
re-exported here: ``rk.spec.X`` is their one spelling.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from ragkernels import _core
from ragkernels._checks import check_int

_MASK_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64",
                np.dtype(np.float16): "float16", np.dtype(np.bool_): "bool"}


class Accepted(NamedTuple):
    """What a verification keeps.

    ``nodes``: the accepted path as node indices, from the root (``nodes[0] == 0``).
    ``tokens``: the tokens to append to the sequence: those of ``nodes[1:]``, then
    the target's own token after the last accepted node (so always at least one).
    """

    nodes: np.ndarray
    tokens: np.ndarray


def _int_array(values: Any, name: str, op: str, dtype: type) -> np.ndarray:
    """`values` as a 1-D array of `dtype` without a silent cast: TypeError for a
    non-integer array, ValueError for a value `dtype` cannot hold."""
    array = np.asarray(values)
    if array.size == 0 and array.dtype == np.float64:  # np.asarray([]) is float64
        array = array.astype(dtype)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{op}: {name} must hold integers, got {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{op}: {name} must be 1-D, got shape {array.shape}")
    if array.dtype != dtype:
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            bad = int(np.flatnonzero((array < info.min) | (array > info.max))[0])
            raise ValueError(f"{op}: {name}[{bad}] = {array[bad]} does not fit {np.dtype(dtype).name}")
        array = array.astype(dtype)
    return array


class TokenTree:
    """A draft token tree; node 0 is the root (the sequence's last token).

    Parameters
    ----------
    tokens, parents:
        One entry per node, the root first: ``parents[0] == -1`` and
        ``0 <= parents[i] < i`` (a parent comes before its child); siblings hold
        distinct tokens; token ids are >= 0.
    weights:
        The drafter's estimate of the probability that the target produces each
        node's whole path: in [0, 1], 1 at the root, never larger than the
        parent's. ``None`` means 1 everywhere (no preference).

    Drafters make trees in compiled code; the arrays are viewed in place
    (read-only numpy arrays, no copy).

    Example
    -------
    >>> tree = TokenTree([7, 1, 2, 3], [-1, 0, 0, 1])   # 7 -> {1 -> 3, 2}
    >>> tree.depths.tolist()
    [0, 1, 1, 2]
    """

    __slots__ = ("_tree",)

    def __init__(self, tokens: Sequence[int], parents: Sequence[int], weights: Optional[Sequence[float]] = None):
        tokens = _int_array(tokens, "tokens", "TokenTree", np.int32)
        parents = _int_array(parents, "parents", "TokenTree", np.int32)
        if weights is None:
            weights = np.ones(len(tokens), np.float32)
        weights = np.asarray(weights)
        if not np.issubdtype(weights.dtype, np.floating) and not np.issubdtype(weights.dtype, np.integer):
            raise TypeError(f"TokenTree: weights must hold numbers, got {weights.dtype}")
        self._tree = _core.TokenTree(tokens, parents, weights.astype(np.float32, copy=False))

    @classmethod
    def _wrap(cls, tree: "_core.TokenTree") -> "TokenTree":
        """A TokenTree around one the compiled core made (no copy, no re-check)."""
        self = cls.__new__(cls)
        self._tree = tree
        return self

    @property
    def tokens(self) -> np.ndarray:
        """int32 (n,): each node's token, the root's first."""
        return self._tree.tokens

    @property
    def parents(self) -> np.ndarray:
        """int32 (n,): each node's parent index, -1 for the root."""
        return self._tree.parents

    @property
    def weights(self) -> np.ndarray:
        """float32 (n,): the drafter's probability estimate of each node's path."""
        return self._tree.weights

    @property
    def depths(self) -> np.ndarray:
        """int32 (n,): each node's depth, the root's 0."""
        return self._tree.depths()

    @property
    def draft_size(self) -> int:
        """The number of drafted nodes (every node but the root)."""
        return len(self._tree) - 1

    def __len__(self) -> int:
        return len(self._tree)

    def __repr__(self) -> str:
        return f"TokenTree(root={int(self.tokens[0])}, draft_size={self.draft_size})"

    def attention_mask(self, past_length: int, dtype: Any = np.float32) -> np.ndarray:
        """The additive attention mask of a forward over every node after
        ``past_length`` cached positions: shape (n, past_length + n), 0 where
        row i may attend (every past position, i's ancestors and i itself) and
        the dtype's lowest finite value elsewhere (``bool``: True where allowed).

        Pass the model's dtype (float32, float64, float16); for bfloat16 make a
        float32 mask and convert it (float32's lowest value is finite in
        bfloat16). An additive float mask, not a boolean one, is what
        transformers' eager attention reads correctly.
        """
        past_length = check_int(past_length, "past_length", "attention_mask", minimum=0)
        name = _MASK_DTYPES.get(np.dtype(dtype))
        if name is None:
            raise TypeError(f"attention_mask: dtype must be float32, float64, float16 or bool, got {np.dtype(dtype)}")
        return self._tree.attention_mask(past_length, name)

    def position_ids(self, past_length: int) -> np.ndarray:
        """int64 (n,): each node's position, ``past_length + depth``."""
        past_length = check_int(past_length, "past_length", "position_ids", minimum=0)
        return self._tree.depths().astype(np.int64) + past_length


def _core_tree(tree: Any, op: str, name: str = "tree") -> "_core.TokenTree":
    if not isinstance(tree, TokenTree):
        raise TypeError(f"{op}: {name} must be a ragkernels.spec.TokenTree, got {type(tree).__name__}")
    return tree._tree


def merge(trees: Sequence[TokenTree], budget: int) -> TokenTree:
    """One tree from several drafts of the same sequence (same root token).

    A path found by several trees appears once, with the largest of their
    weights. Over ``budget`` drafted nodes, the ``budget`` of highest weight are
    kept (ties: shallower first); since weights never grow down a path the kept
    nodes form a tree. Nodes come out depth-first, children best-first (weight,
    then token id), so a single chain keeps its order.
    """
    op = "merge"
    if isinstance(trees, TokenTree):
        raise TypeError(f"{op}: trees must be a sequence of TokenTree, got one TokenTree; pass [tree]")
    core_trees = [_core_tree(t, op, f"trees[{i}]") for i, t in enumerate(trees)]
    if not core_trees:
        raise ValueError(f"{op}: trees is empty; give at least one tree")
    budget = check_int(budget, "budget", op, minimum=0)
    return TokenTree._wrap(_core.spec_merge(core_trees, budget))


def verify_greedy(tree: TokenTree, argmax: Any) -> Accepted:
    """Greedy verification: the longest path from the root along which every
    drafted token equals the target's argmax at its parent, and the target's
    argmax after that path.

    ``argmax``: the target model's argmax token after each node's path, one per
    node (a numpy array or a CPU tensor of integers).
    """
    core_tree = _core_tree(tree, "verify_greedy")
    if hasattr(argmax, "detach"):  # a torch tensor: view it through DLPack
        argmax = np.from_dlpack(argmax.detach())
    argmax = _int_array(argmax, "argmax", "verify_greedy", np.int64)
    return Accepted(*_core.spec_verify_greedy(core_tree, argmax))


def verify_sampling(tree: TokenTree, probs: Any, seed: int) -> Accepted:
    """Sampling verification that keeps the target's distribution exactly.

    At each node, the children are tried best-first: a child is accepted with
    probability r(token) / sum(r), r being the target's distribution there with
    the tokens of the children already rejected removed; if all are rejected a
    token is drawn from r (SpecInfer's multi-branch rejection sampling, for
    drafts that are not themselves sampled). Each emitted token is therefore
    distributed exactly as the target's distribution after its prefix.

    ``probs``: float32 (n, vocab), the target's (processed: temperature, top-k,
    top-p...) probabilities after each node; rows need not be normalized.
    ``seed``: the uniforms come from SplitMix64 seeded with it (draw one per
    step from your own generator): the same seed gives the same result on every
    machine.
    """
    core_tree = _core_tree(tree, "verify_sampling")
    if hasattr(probs, "detach"):
        probs = np.from_dlpack(probs.detach())
    seed = check_int(seed, "seed", "verify_sampling", minimum=0, maximum=2**64 - 1)
    return Accepted(*_core.spec_verify_sampling(core_tree, probs, seed))


# The drafters build on TokenTree above, so they are imported after it.
from ragkernels._spec_datastore import Datastore, Match, RetrievalDrafter, RetrievalSession  # noqa: E402
from ragkernels._spec_drafters import (PromptLookupDrafter, PromptLookupSession, SuffixDrafter,  # noqa: E402
                                       SuffixSession, VocabBridge, VocabBridgeSession, token_bytes)
from ragkernels._spec_trie import Trie  # noqa: E402

__all__ = ["Accepted", "Datastore", "Match", "PromptLookupDrafter", "PromptLookupSession", "RetrievalDrafter",
           "RetrievalSession", "SuffixDrafter", "SuffixSession", "TokenTree", "Trie", "VocabBridge",
           "VocabBridgeSession", "merge", "token_bytes", "verify_greedy", "verify_sampling"]
