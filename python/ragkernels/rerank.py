"""Second-stage reranking ops: late-interaction MaxSim, exact-term matching,
and the sliding-window bookkeeping of listwise LLM reranking.

Every op scores the *candidates* a first stage returned: an int array of
document numbers per query, ``-1`` marking an empty slot (first-stage lists
of different lengths). Scores come back in candidate order; with ``k`` the
ops also select the best ``k`` per query (higher score first, ties to the
earlier candidate, NaN last, ``-1`` / ``-inf`` padding).

    >>> import numpy as np, ragkernels as rk
    >>> docs = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=np.float32)
    >>> offsets = np.array([0, 2, 3, 4])          # doc 0: 2 tokens, docs 1 and 2: one each
    >>> query = np.array([[1, 0], [0, 1]], dtype=np.float32)
    >>> rk.rerank.maxsim(query, docs, offsets)
    array([2., 2., 1.], dtype=float32)
"""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import numpy as np

from ragkernels import _backend, _core
from ragkernels._ops import topk

__all__ = []


def _check_int(value: Any, op: str, name: str) -> int:
    """`value` as an int; bools and non-integers raise TypeError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    return int(value)


def _int64_array(values: Any, op: str, name: str) -> np.ndarray:
    """`values` as int64 without changing a value: int64 arrays pass as they
    are (views, no copy); other integer arrays and lists are widened."""
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        return values
    if hasattr(values, "__dlpack__") and not isinstance(values, np.ndarray):
        values = np.from_dlpack(values)  # CPU tensors of other frameworks, no copy
    array = np.asarray(values)
    if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
        raise TypeError(f"{op}: {name} must hold integers, got {array.dtype} with shape {array.shape}")
    if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{op}: {name} holds values past int64")
    return array.astype(np.int64, copy=False)


# ---- MaxSim (late interaction) ----------------------------------------------

__all__ += ["maxsim", "quantize_tokens"]


def maxsim(queries: Any, documents: Any, doc_offsets: Any, candidates: Any = None, *,
           query_mask: Any = None, query_offsets: Any = None, scales: Any = None,
           k: Optional[int] = None):
    """Late-interaction (ColBERT) scores: for each query and candidate document,
    the sum over query tokens of the largest dot product with a document token.

    The Lq x Ld similarity matrix is never materialized: tiles of dot products
    are folded into per-token maxima in registers (AVX-512 / AVX2 / SSE2 kernels
    picked at run time), in parallel over (query, candidate) pairs with the GIL
    released. CUDA tensors run on the GPU (``ragkernels._cuda``).

    Parameters
    ----------
    queries : array of float32 (or float16, widened)
        One query as ``(Lq, dim)``; a padded batch ``(Q, Lq, dim)`` (see
        `query_mask`); or ragged ``(Tq, dim)`` with `query_offsets`.
    documents : array of float32, float16 or int8, shape (T, dim)
        Every document's token vectors, stacked without padding.
    doc_offsets : array of int64, shape (N + 1,)
        Document i owns rows ``doc_offsets[i]:doc_offsets[i + 1]``; starts at 0,
        ends at T, never decreases (empty documents allowed).
    candidates : int array, shape (Q, C), or (C,) for one query; optional
        Document numbers to score, ``-1`` for an empty slot. Default: every
        document for every query.
    query_mask : bool array, shape (Q, Lq), optional
        For padded queries: True marks a real token (any pattern).
    query_offsets : int64 array, shape (Q + 1,), optional
        For ragged queries, as `doc_offsets`.
    scales : float32 array, shape (T,)
        Required for int8 documents: token j stands for ``scales[j] * documents[j]``
        (see `quantize_tokens`).
    k : int, optional
        Also select the best ``k`` candidates per query.

    Returns
    -------
    scores : float32 array, shape (Q, C) (or (C,) for one 2-D query)
        Without `k`. An empty slot or a document with no tokens scores -inf; a
        query with no tokens scores 0; a NaN in a dot product makes the score NaN.
    (ids, scores) : with `k`
        Document numbers (from `candidates`) and scores, best first, shape
        (Q, k) (or (k,)); ties keep candidate order, NaN ranks last, -1 / -inf pad.

    Raises
    ------
    ValueError
        Dimension mismatch, offsets not starting at 0 / decreasing / not ending
        at the row count, candidates out of range, a mask of the wrong shape,
        int8 without scales, k < 1.
    TypeError
        Wrong dtypes (documents must be float32, float16 or int8; offsets and
        candidates integers).

    Notes
    -----
    Float32 arithmetic: each dot product is one fused multiply-add chain in
    dimension order, maxima are added in token order. A score depends only on
    its query and document, never on the batch, the candidate list or the
    thread count.
    """
    if _backend.device_of(queries) == "cuda":
        return _maxsim_cuda(queries, documents, doc_offsets, candidates, query_mask, query_offsets, scales, k)
    single = np.ndim(queries) == 2 and query_offsets is None
    flat, offsets = _ragged_queries(queries, query_mask, query_offsets)
    doc_offsets = _int64_array(doc_offsets, "maxsim", "doc_offsets")
    cand = _candidates(candidates, len(offsets) - 1, max(doc_offsets.shape[0] - 1, 0) if doc_offsets.ndim else 0)
    scores = _core.maxsim(flat, offsets, documents, doc_offsets, scales, cand)
    return _finish(scores, cand, k, single)


def quantize_tokens(tokens: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Token vectors as int8 with one float32 scale per token, for `maxsim`.

    Symmetric per-token quantization (the rule of ``rk.dense.FlatIndex``'s
    int8 storage): ``tokens[j] ~ scales[j] * q[j]``, a quarter of float32's bytes.

    >>> import numpy as np, ragkernels as rk
    >>> q, s = rk.rerank.quantize_tokens(np.array([[0.5, -1.0]], dtype=np.float32))
    >>> q, s
    (array([[  64, -127]], dtype=int8), array([0.00787402], dtype=float32))
    """
    prepared = _core.dense_prepare(tokens, "ip", "int8")
    return prepared["vectors"], prepared["scales"]


def _ragged_queries(queries: Any, query_mask: Any, query_offsets: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(Tq, dim) float32 tokens and (Q + 1,) offsets from any accepted query form."""
    array = np.asarray(queries)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    if query_offsets is not None:
        if query_mask is not None:
            raise ValueError("maxsim: pass query_mask (padded queries) or query_offsets (ragged), not both")
        return array, _int64_array(query_offsets, "maxsim", "query_offsets")
    if array.ndim == 2:
        if query_mask is not None:
            raise ValueError("maxsim: query_mask needs padded queries of shape (Q, Lq, dim)")
        return array, np.array([0, len(array)], dtype=np.int64)
    if array.ndim != 3:
        raise ValueError(f"maxsim: queries must be (Lq, dim), (Q, Lq, dim) or ragged (Tq, dim) with "
                         f"query_offsets; got shape {array.shape}")
    num, length = array.shape[:2]
    if query_mask is None:
        # The width named, not -1: a batch of zero-token queries has no rows to infer it from.
        offsets = np.arange(num + 1, dtype=np.int64) * length
        return array.reshape(num * length, array.shape[2]), offsets
    mask = np.asarray(query_mask)
    if mask.shape != (num, length):
        raise ValueError(f"maxsim: query_mask must have shape {(num, length)} (one flag per query token), "
                         f"got {mask.shape}")
    mask = mask.astype(bool, copy=False)
    offsets = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return np.ascontiguousarray(array[mask]), offsets


def _candidates(candidates: Any, num_queries: int, num_docs: int) -> np.ndarray:
    """(Q, C) int64 candidates; every document (a broadcast view, no copy) when None."""
    if candidates is None:
        return np.broadcast_to(np.arange(num_docs, dtype=np.int64), (num_queries, num_docs))
    array = _int64_array(candidates, "maxsim", "candidates")
    if any(stride < 0 for stride in array.strides):  # a reversed view: candidate lists are small, copy
        array = array.copy()
    if array.ndim == 1 and num_queries == 1:
        return array[None, :]
    if array.ndim != 2 or array.shape[0] != num_queries:
        raise ValueError(f"maxsim: candidates must have shape ({num_queries}, C) (one row per query), "
                         f"got {array.shape}")
    return array


def _finish(scores: Any, candidates: Any, k: Optional[int], single: bool, op: str = "maxsim"):
    """(Q, C) scores as returned, or the top-k of each row as document numbers
    (shared by every rerank op: ties keep candidate order, NaN last, -1 / -inf pad)."""
    if k is None:
        return scores[0] if single else scores
    k = _check_int(k, op, "k")
    if k < 1:
        raise ValueError(f"{op}: k must be >= 1, got {k}")
    positions, top = topk(scores, int(k))
    ids = _take_ids(candidates, positions)
    return (ids[0], top[0]) if single else (ids, top)


def _take_ids(candidates: Any, positions: Any):
    """candidates[q, positions[q, j]], -1 where a position is -1 (k > C)."""
    if _backend.device_of(positions) == "cuda":
        import torch
        ids = torch.gather(candidates, 1, positions.clamp(min=0))
        return torch.where(positions < 0, torch.full_like(ids, -1), ids)
    if candidates.shape[1] == 0:
        return np.full(positions.shape, -1, dtype=np.int64)
    ids = np.take_along_axis(candidates, np.maximum(positions, 0), axis=1)
    return np.where(positions < 0, -1, ids)


def _maxsim_cuda(queries, documents, doc_offsets, candidates, query_mask, query_offsets, scales, k):
    """`maxsim` for torch CUDA tensors: the same forms, converted with torch ops."""
    import torch

    device = queries.device
    single = queries.dim() == 2 and query_offsets is None
    if queries.dtype == torch.float16:
        queries = queries.float()
    if query_offsets is not None:
        flat, offsets = queries, torch.as_tensor(query_offsets, device=device, dtype=torch.int64)
    elif queries.dim() == 2:
        flat, offsets = queries, torch.tensor([0, queries.shape[0]], device=device, dtype=torch.int64)
    elif queries.dim() == 3:
        num, length = queries.shape[:2]
        mask = (torch.ones((num, length), dtype=torch.bool, device=device) if query_mask is None
                else torch.as_tensor(query_mask, device=device).bool())
        if mask.shape != (num, length):
            raise ValueError(f"maxsim: query_mask must have shape {(num, length)}, got {tuple(mask.shape)}")
        flat = queries[mask].contiguous()
        offsets = torch.nn.functional.pad(mask.sum(1).cumsum(0), (1, 0)).to(torch.int64)
    else:
        raise ValueError(f"maxsim: queries must be (Lq, dim), (Q, Lq, dim) or ragged (Tq, dim) with "
                         f"query_offsets; got shape {tuple(queries.shape)}")
    doc_offsets = torch.as_tensor(doc_offsets, device=device, dtype=torch.int64)
    num_queries = offsets.shape[0] - 1
    if candidates is None:
        cand = torch.arange(doc_offsets.shape[0] - 1, device=device).expand(num_queries, -1).contiguous()
    else:
        cand = torch.as_tensor(candidates, device=device).to(torch.int64)
        cand = cand[None, :] if cand.dim() == 1 and num_queries == 1 else cand
    cuda = _backend.cuda_module("maxsim")
    scores = _backend.as_framework_tensors(
        queries, cuda.maxsim(flat.contiguous(), offsets, documents, doc_offsets, scales, cand.contiguous()))
    return _finish(scores, cand, k, single)


# ---- exact-term matching (TILDEv2-style) ------------------------------------

__all__ += ["TermMatchIndex", "term_match"]

_TERM_MATCH_KIND = "term-match-index"


class TermMatchIndex:
    """Per-document (term id, weight) lists for exact-term-match reranking.

    A forward index in the manner of TILDEv2 (Zhuang & Zuccon, 2021): a
    model gives each document a weight per term (token id) offline, and a
    query is scored against a candidate by adding the weights of the
    query's terms that the document holds (see `term_match`). Build one with
    `from_arrays` (a model's output) or `from_bm25` (BM25 term scores, for
    baselines and tests); `save` and `load` keep it in a file.

    Document d's terms are ``terms[offsets[d]:offsets[d + 1]]``, strictly
    ascending, with their float32 `weights`; term ids lie in
    ``[0, vocab_size)``.

    Examples
    --------
    >>> import numpy as np, ragkernels as rk
    >>> index = rk.rerank.TermMatchIndex.from_arrays(
    ...     np.array([7, 2, 7, 5]), np.array([0.5, 1.0, 2.0, 3.0], np.float32),
    ...     np.array([0, 3, 4]))
    >>> index.terms, index.weights       # doc 0 keeps term 7's larger weight
    (array([2, 7, 5], dtype=uint32), array([1., 2., 3.], dtype=float32))
    """

    def __init__(self, core: "_core.TermMatchIndex") -> None:
        if not isinstance(core, _core.TermMatchIndex):
            raise TypeError("TermMatchIndex: build one with TermMatchIndex.from_arrays, from_bm25 or load")
        self._core = core

    @classmethod
    def from_arrays(cls, term_ids: Any, weights: Any, offsets: Any, *,
                    vocab_size: Optional[int] = None) -> "TermMatchIndex":
        """Index ragged per-document term lists.

        Parameters
        ----------
        term_ids : ndarray of int32 or int64, shape (P,)
            Every document's term ids, concatenated; each in
            ``[0, vocab_size)`` (and below 2**32). Any order within a
            document; a term repeated in a document keeps its largest
            weight (TILDEv2's rule for a token that occurs twice).
        weights : ndarray of float32, shape (P,)
            The weight of each entry of `term_ids`; finite (NaN or inf
            raises). float64 is refused, not cast: ``.astype(np.float32)``.
        offsets : ndarray of int64, shape (N + 1,)
            Document d is ``term_ids[offsets[d]:offsets[d + 1]]``: starts at
            0, never decreases (empty documents allowed), ends at P.
        vocab_size : int, optional
            Size of the term id space (e.g. the tokenizer's vocabulary);
            default ``1 + max(term_ids)``; at most 2**32.

        Returns
        -------
        TermMatchIndex
            Holds a sorted copy of the lists: the inputs (numpy or CPU
            DLPack tensors, read in place) may change afterwards.

        Raises
        ------
        TypeError
            A wrong dtype.
        ValueError
            Not 1-D, lengths that disagree, bad offsets, a negative or too
            large term id, a non-finite weight; the message names the first
            bad position.
        """
        vocab_size = None if vocab_size is None else _check_int(vocab_size, "TermMatchIndex.from_arrays", "vocab_size")
        return cls(_core.TermMatchIndex.from_arrays(term_ids, weights, offsets, vocab_size))

    @classmethod
    def from_bm25(cls, bm25_index: Any) -> "TermMatchIndex":
        """The BM25 term scores of every document of a `BM25Index`.

        The weight of term t in document d is the float32 score the BM25
        index stores for that posting (for ``"bm25l"`` and ``"bm25+"``,
        minus the term's score in a document without it, as the index
        stores it: a per-query constant that does not change a ranking).
        Term ids are the index's term numbers (``bm25_index.vocabulary``
        order); `vocab_size` is its number of terms. So `term_match` of a
        query's distinct terms gives the document's BM25 score, up to the
        float32 rounding of the sum.

        Parameters
        ----------
        bm25_index : ragkernels.sparse.BM25Index

        Raises
        ------
        TypeError
            Not a `BM25Index`.
        """
        from ragkernels.sparse import BM25Index

        if not isinstance(bm25_index, BM25Index):
            raise TypeError(f"TermMatchIndex.from_bm25: bm25_index must be a ragkernels.sparse.BM25Index, "
                            f"got {type(bm25_index).__name__}")
        return cls(_core.TermMatchIndex.from_bm25(bm25_index._core))

    @classmethod
    def load(cls, path: Any, *, verify: bool = True) -> "TermMatchIndex":
        """Map an index written by `save` (the arrays are read from the file).

        With `verify` (default) the checksums are checked and every
        posting is validated (terms ascending and in the vocabulary,
        weights finite); ``verify=False`` skips those reads for a large
        trusted file, yet still checks every size and offset, so that no
        file can make a later call read out of bounds.

        Raises
        ------
        ragkernels.FormatError
            Truncated, corrupt, crafted or of another kind or version.
        OSError
            The file cannot be opened.
        """

        return cls(_core.TermMatchIndex.load(os.fspath(path), bool(verify)))

    def save(self, path: Any) -> None:
        """Write the index atomically (docs/formats.md, kind "term-match-index")."""

        self._core.save(os.fspath(path))

    @property
    def num_docs(self) -> int:
        return int(self._core.num_docs)

    @property
    def num_postings(self) -> int:
        """Stored (document, term) pairs."""
        return int(self._core.num_postings)

    @property
    def vocab_size(self) -> int:
        return int(self._core.vocab_size)

    @property
    def offsets(self) -> np.ndarray:
        """int64 (num_docs + 1,), read-only."""
        return self._core.offsets

    @property
    def terms(self) -> np.ndarray:
        """uint32 (num_postings,), ascending within each document, read-only."""
        return self._core.terms

    @property
    def weights(self) -> np.ndarray:
        """float32 (num_postings,), read-only."""
        return self._core.weights

    def __len__(self) -> int:
        return self.num_docs

    def __repr__(self) -> str:
        return (f"TermMatchIndex(num_docs={self.num_docs}, num_postings={self.num_postings}, "
                f"vocab_size={self.vocab_size})")


def term_match(query_term_ids: Any, index: TermMatchIndex, candidates: Any, *, k: Optional[int] = None):
    """Exact-term-match scores of candidate documents (TILDEv2-style).

    ``score(q, d)`` is the sum, over the distinct terms of q, of the
    weight of the term in d (0 when d does not hold it). Only the query's
    token ids are needed at query time: no model runs.

    Parameters
    ----------
    query_term_ids : int32 or int64 array, or list of them
        One query as a 1-D array; a batch as a list of 1-D arrays (or of
        lists of ints, such as a tokenizer's ``input_ids``), or as a 2-D
        array padded with -1. Hugging Face padding becomes -1 with
        ``np.where(enc["attention_mask"], enc["input_ids"], -1)``; tokenize
        with ``add_special_tokens=False`` unless the documents' weights
        include [CLS]/[SEP]. A term repeated in a query counts once; an
        id >= ``index.vocab_size`` adds 0 (it is in no document); other
        negative ids than -1 raise. A list or tuple is always a batch.
    index : TermMatchIndex
    candidates : int32 or int64 array, shape (Q, C), or (C,) for one query
        Document numbers to score, -1 for an empty slot (first-stage
        lists of different lengths). Read in place (numpy or CPU DLPack).
    k : int, optional
        Also select the best ``k`` (>= 1) candidates per query.

    Returns
    -------
    scores : float32 array, shape (Q, C), or (C,) for one query
        Without `k`, in candidate order; -inf in empty slots.
    (ids, scores) : with `k`
        int64 document numbers (from `candidates`) and their float32
        scores, best first, shape (Q, k) or (k,); ties go to the earlier
        candidate; -1 / -inf pad when k > C (empty slots rank last).

    Raises
    ------
    TypeError
        Non-integer query ids or candidates, `index` not a
        `TermMatchIndex`, `k` not an int.
    ValueError
        Wrong ranks, a row count that differs from the number of queries,
        a negative query id other than -1, a candidate outside
        ``[0, index.num_docs)`` other than -1, ``k < 1``.

    Notes
    -----
    The terms of a pair are summed in ascending term id, in float64, and
    rounded once to float32: a score depends only on its query and
    document, not on the batch, the candidate's place or
    ``ragkernels.set_num_threads``. A sum beyond float32's range becomes
    +-inf. Each query term is binary-searched in the document's sorted
    terms after the previous match: O(|q| log |d|) per pair, run in
    parallel over all (query, candidate) pairs with the GIL released.

    Examples
    --------
    >>> import numpy as np, ragkernels as rk
    >>> index = rk.rerank.TermMatchIndex.from_arrays(
    ...     np.array([2, 7, 5, 7]), np.array([1.0, 2.0, 3.0, 0.5], np.float32),
    ...     np.array([0, 2, 4]))
    >>> rk.rerank.term_match(np.array([7, 2, 7]), index, np.array([1, 0, -1]))
    array([ 0.5,  3. , -inf], dtype=float32)
    >>> rk.rerank.term_match([np.array([5]), np.array([2, 9])], index,
    ...                      np.array([[0, 1], [1, 0]]), k=1)
    (array([[1],
           [0]]), array([[3.],
           [1.]], dtype=float32))
    """
    if not isinstance(index, TermMatchIndex):
        raise TypeError(f"term_match: index must be a ragkernels.rerank.TermMatchIndex, got {type(index).__name__}")
    if k is not None:
        _check_int(k, "term_match", "k")
    if isinstance(query_term_ids, (list, tuple)):
        query_term_ids = [_tm_query(q, i) for i, q in enumerate(query_term_ids)]
    scores = _core.term_match(query_term_ids, index._core, candidates)
    if k is None:
        return scores
    candidates = _int64_array(candidates, "term_match", "candidates")
    single = scores.ndim == 1
    return _finish(scores[None] if single else scores, candidates[None] if single else candidates, k, single,
                   "term_match")


def _tm_query(query: Any, i: int) -> Any:
    """A query given as a list of ints (a tokenizer's output) as an int64
    array; arrays and tensors pass untouched (the core reads them in place)."""
    if not isinstance(query, (list, tuple)):
        return query
    for j, item in enumerate(query):
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"term_match: query_term_ids[{i}][{j}] must be an int, got {type(item).__name__}")
    try:
        return np.array(query, dtype=np.int64).reshape(-1)
    except OverflowError:
        raise ValueError(f"term_match: query_term_ids[{i}] holds an id beyond int64") from None


# ---- sliding windows of listwise reranking ----------------------------------

__all__ += ["sliding_window_order", "sliding_windows"]


def sliding_windows(n, window: int = 20, stride: int = 10) -> np.ndarray:
    """Windows of listwise reranking, in the order they are processed.

    A listwise reranker sees at most `window` passages per prompt; a
    longer list is reranked window by window from its back to its front,
    each window overlapping the next by ``window - stride`` items, so
    that good passages bubble towards the top.

    Parameters
    ----------
    n : int, or array_like of int, shape (n_queries,)
        Length of the list, or of every query's list (a batch).
    window : int, default 20
        Items per window, >= 1.
    stride : int, default 10
        Shift between consecutive windows, ``1 <= stride <= window``.

    Returns
    -------
    ndarray of int64, shape (n_windows, 2), or (n_steps, n_queries, 2)
        ``(start, end)`` pairs: window k covers positions
        ``[start, end)`` of the current ranking. For a batch, step k
        holds the k-th window of every query, and ``(0, 0)`` (an empty
        window) for a query that has no k-th window; n_steps is the
        count of the longest list.

    Raises
    ------
    ValueError
        `n` < 0, `window` < 1, `stride` < 1 or `stride` > `window` (a
        larger stride would leave items that no window sees).
    TypeError
        `n` is not an int or an array of integers.

    Notes
    -----
    ``end_k = n - k * stride`` and ``start_k = max(end_k - window, 0)``
    for k = 0, 1, ..., stopping after the first window that starts at 0:
    RankLLM's ``sliding_windows`` schedule (castorini/rank_llm), except
    that RankLLM runs no window when ``n == window - stride``. RankGPT's
    original loop (Sun et al., EMNLP 2023) differs where
    ``(n - window) % stride != 0``: it never reranks the first items.
    ``n <= window`` gives the single window ``(0, n)``; ``n == 0`` none.

    Examples
    --------
    >>> sliding_windows(37, window=10, stride=4)[[0, 1, -2, -1]]
    array([[27, 37],
           [23, 33],
           [ 3, 13],
           [ 0,  9]])
    >>> sliding_windows(5, window=20, stride=10)
    array([[0, 5]])
    >>> sliding_windows([3, 25], window=20, stride=10)  # 2 steps, 2 queries
    array([[[ 0,  3],
            [ 5, 25]],
    <BLANKLINE>
           [[ 0,  0],
            [ 0, 15]]])
    """
    window, stride = _check_int(window, "sliding_windows", "window"), _check_int(stride, "sliding_windows", "stride")
    if np.ndim(n) == 0:
        return _core.sliding_windows(_check_int(n, "sliding_windows", "n"), window, stride)
    lengths = _int64_array(n, "sliding_windows", "n")
    return _core.sliding_window_schedule(lengths, window, stride)


def sliding_window_order(orders, windows, scores) -> np.ndarray:
    """Reorder one window of every query's ranking by the model's scores.

    One step of batched listwise reranking: for each query q, the items
    at positions ``windows[q, 0] .. windows[q, 1] - 1`` of ``orders[q]``
    are sorted by ``scores[q]`` (best first); the rest of the row stays.
    Between two steps the caller runs the model on the next windows
    (from `sliding_windows`) of the new orders.

    Parameters
    ----------
    orders : ndarray of int64 (or another integer type), shape (n_queries, n)
        Current ranking of each query: a permutation of the positions
        ``0 .. n_q - 1`` of its candidates, best first, followed by -1
        pads when the query has ``n_q < n`` candidates. A 1-D array is
        one query.
    windows : array_like of int, shape (n_queries, 2)
        ``(start, end)`` per query, ``0 <= start <= end <= n_q``;
        ``start == end`` leaves the row as it is. Shape (2,) with 1-D
        `orders`.
    scores : ndarray of float32 or float64, shape (n_queries, w)
        ``scores[q, i]`` scores the item at position ``start + i`` of
        ``orders[q]`` (e.g. the logit of the label of the i-th passage in
        the prompt); higher is better. ``w`` must be at least every
        window's width; columns past a window's width are ignored. NaN
        allowed. Shape (w,) with 1-D `orders`.

    Returns
    -------
    ndarray of int64, shape of `orders`
        A new array (the input is not modified): the orders with each
        window reordered. Pads stay where they were.

    Raises
    ------
    TypeError
        `orders` or `windows` not integer, `scores` not float32/float64.
    ValueError
        A row of `orders` is not a permutation followed by -1 pads, a
        window is out of ``[0, n_q]`` or wider than `scores`, or the
        numbers of rows disagree.

    Notes
    -----
    Inside a window: higher score first; equal scores keep their current
    relative order (a stable sort, so the first-stage order breaks ties);
    NaN scores go last, in their current order. Results do not depend on
    ``ragkernels.set_num_threads``. For a generated permutation ``perm``
    (best first) of a window of width w, scores ``w - rank`` give the same
    order: ``scores[perm] = np.arange(w, 0, -1)``.

    Examples
    --------
    >>> order = np.array([4, 0, 3, 1, 2])
    >>> sliding_window_order(order, (1, 4), np.array([0.1, 0.9, 0.5]))
    array([4, 3, 1, 0, 2])
    >>> sliding_window_order(order, (0, 3), np.array([1.0, np.nan, 1.0]))
    array([4, 3, 0, 1, 2])
    """
    single = np.ndim(orders) == 1
    orders = _int64_array(orders, "sliding_window_order", "orders")
    windows = _int64_array(windows, "sliding_window_order", "windows")
    if single:
        if windows.shape != (2,) or np.ndim(scores) != 1:
            raise ValueError("sliding_window_order: with 1-D orders, windows must be one (start, end) "
                             f"pair and scores 1-D, got windows of shape {windows.shape} and scores "
                             f"of shape {np.shape(scores)}")
        orders, windows, scores = orders[None, :], windows[None, :], np.asarray(scores)[None, :]
    out = _core.sliding_window_order(orders, windows, scores)
    return out[0] if single else out
