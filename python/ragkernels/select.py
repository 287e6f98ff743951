"""Clue selection: score candidate sentences, rerank with MMR, truncate.

The compiled steps of issue 7 (CompSelect-style extract -> rerank ->
truncate), on numeric arrays: the N candidate sentences of a query come as
term-id lists (for BM25 and term-vector MMR), embeddings, positions and
token counts. Every op takes one query, or a batch through ``groups``:
``groups`` (Q + 1,) offsets, query g owning sentences
``[groups[g], groups[g+1])`` of the concatenated arrays; batches run in
parallel, without the GIL, and give the same result for any thread count.
`select_clues` runs the whole pipeline for a batch in one call.

Term-id lists are given as a sequence of int sequences, or as a `Ragged`
pair (values, offsets) to pass flat arrays without a copy. Integer input
is converted to int64 (lossless); float scores to float64 (lossless from
float32); embeddings must be float32 and C-contiguous.
"""
from __future__ import annotations

import math
import numbers
import re
import weakref
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ragkernels import _core
from ragkernels._checks import as_texts, check_int
from ragkernels.text import Analyzer, SentenceSpans, split_sentences

__all__ = ["Clue", "Context", "Ragged", "SCORERS", "SCORER_PRESETS", "TEMPERATURE", "TokenCounter", "bm25",
           "combine_scores", "compress", "cosine", "mmr", "position_prior", "select_clues", "term_ids", "truncate"]

#: Scorer names of `select_clues`'s weights, in the core's column order.
SCORERS: Tuple[str, ...] = ("lexical", "dense", "position", "passage", "external", "passage_dense")

#: Default `temperature` of the truncation values (see `select_clues`).
TEMPERATURE = 0.05

#: Default cap on the knapsack DP table (items * (capacity + 1) cells).
MAX_DP_CELLS = 20_000_000


class Ragged(NamedTuple):
    """Lists stored flat: list i is ``values[offsets[i]:offsets[i+1]]``."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int]]) -> "Ragged":
        """Flatten int sequences into (values, offsets), both int64."""
        arrays = [_ints(x, f"lists[{i}]") for i, x in enumerate(lists)]
        lengths = np.array([a.size for a in arrays], np.int64)
        offsets = np.zeros(len(arrays) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        return cls(values.astype(np.int64, copy=False), offsets)


def _ints(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.size == 0 and a.dtype.kind not in "iu":
        return np.zeros(a.shape, np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got {a.dtype}")
    if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values above 2**63 - 1")
    return np.ascontiguousarray(a, dtype=np.int64)


def _floats(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _ragged(x: Any, name: str) -> Ragged:
    if isinstance(x, Ragged):
        return Ragged(_ints(x.values, f"{name}.values"), _ints(x.offsets, f"{name}.offsets"))
    if isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
        raise TypeError(f"{name} must be a sequence of int sequences or a Ragged, got {type(x).__name__}")
    return Ragged.from_lists(x)


def _groups(groups: Any, n: int) -> np.ndarray:
    return np.array([0, n], np.int64) if groups is None else _ints(groups, "groups")


def _opt_int(value: Any, name: str, op: str, minimum: int = 1) -> Optional[int]:
    """None, or an int in [minimum, 2**63 - 1] (issue 14: 2**63 reached the
    core as pybind11's "Unable to cast")."""
    return None if value is None else check_int(value, name, op, minimum=minimum)


def _split(values: np.ndarray, offsets: np.ndarray) -> List[np.ndarray]:
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def term_ids(token_lists: Sequence[Sequence[str]], vocabulary: Optional[Dict[str, int]] = None,
             ) -> Tuple[Ragged, Dict[str, int]]:
    """Map token lists to term ids.

    Parameters
    ----------
    token_lists : sequence of sequence of str
        E.g. ``rk.text.Analyzer().tokenize(texts)``.
    vocabulary : dict of str to int, optional
        A fixed map: unknown tokens get -1 (they count in a sentence's
        length, never match). None: a new vocabulary grows over the lists,
        ids in order of first occurrence. (From texts, in the core:
        ``Analyzer.term_ids`` grows one, ``BM25Index.term_ids`` uses the
        index's.)

    Returns
    -------
    ids : Ragged
        int64 term ids per list.
    vocabulary : dict of str to int
        The map used (the grown one when none was given).

    Examples
    --------
    >>> ids, vocab = term_ids([["cat", "sat"], ["cat"]])
    >>> ids.values, ids.offsets
    (array([0, 1, 0]), array([0, 2, 3]))
    """
    grow = vocabulary is None
    vocab: Dict[str, int] = {} if grow else vocabulary
    flat: List[int] = []
    offsets = [0]
    for tokens in token_lists:
        for t in tokens:
            i = vocab.get(t)
            if i is None and grow:
                i = vocab[t] = len(vocab)
            flat.append(-1 if i is None else i)
        offsets.append(len(flat))
    return Ragged(np.array(flat, np.int64), np.array(offsets, np.int64)), vocab


def bm25(query_terms: Any, sentence_terms: Any, *, k1: float = 1.5, b: float = 0.75, df: Any = None,
         num_docs: Optional[float] = None, avgdl: Optional[float] = None, groups: Any = None) -> np.ndarray:
    """Lucene BM25 of each sentence against its query.

    Parameters
    ----------
    query_terms : sequence of int, or (with `groups`) Q of them / Ragged
        Query term ids; negative ids are skipped; a repeated id counts
        once per occurrence (as ``rk.sparse.BM25Index``).
    sentence_terms : sequence of int sequences, or Ragged
        Term ids of the N (or S) sentences; negative ids (unknown terms)
        count in the length only.
    k1, b : float, default 1.5 and 0.75
        bm25s's defaults, as ``rk.sparse.BM25Index``; k1 >= 0, b in [0, 1].
    df : array of int, optional
        Documents per term id (e.g. ``index.document_frequencies()``;
        ids beyond it have df 0), with `num_docs` (>= 1) and optionally
        `avgdl` (> 0; None: the mean length of each query's sentences).
        None: statistics of the query's own sentences.
    groups : array of int, shape (Q + 1,), optional
        Batch offsets (module docstring); None: one query.

    Returns
    -------
    ndarray of float64, shape (N,)

    Raises
    ------
    TypeError
        Non-integer ids.
    ValueError
        Bad offsets, k1 or b out of range, df without num_docs/avgdl.

    Notes
    -----
    score = sum_t idf(t) tf / (tf + k1 (1 - b + b dl / avgdl)),
    idf(t) = log(1 + (N - df + 0.5) / (df + 0.5)) (Lucene >= 8; Kamphuis
    et al., ECIR 2020).

    Examples
    --------
    >>> s = bm25([1], [[1, 2], [2, 3], [1, 1, 4]])
    >>> s.round(4)
    array([0.2009, 0.    , 0.246 ])
    """
    s = _ragged(sentence_terms, "sentence_terms")
    if groups is None:
        q = Ragged(_ints(query_terms, "query_terms").reshape(-1), None)
        q = Ragged(q.values, np.array([0, q.values.size], np.int64))
    else:
        q = _ragged(query_terms, "query_terms")
    return _core.select_bm25(q.values, q.offsets, s.values, s.offsets, _groups(groups, len(s.offsets) - 1),
                             float(k1), float(b), None if df is None else _ints(df, "df"),
                             num_docs, avgdl)


def cosine(query_embeddings: Any, sentence_embeddings: Any, *, groups: Any = None) -> np.ndarray:
    """Cosine of each sentence embedding with its query's.

    Parameters
    ----------
    query_embeddings : ndarray of float32, shape (d,) or, with `groups`, (Q, d)
    sentence_embeddings : ndarray of float32, shape (N, d)
    groups : array of int, shape (Q + 1,), optional

    Returns
    -------
    ndarray of float64, shape (N,)
        Clamped to [-1, 1]; 0 where a vector is zero.

    Raises
    ------
    TypeError
        Embeddings not float32.
    ValueError
        Shapes that disagree, NaN or infinity.

    Examples
    --------
    >>> cosine(np.array([1, 0], np.float32), np.array([[2, 0], [0, 1]], np.float32))
    array([1., 0.])
    """
    q = np.asarray(query_embeddings)
    if groups is None:
        q = q.reshape(1, -1) if q.ndim == 1 else q
    s = np.asarray(sentence_embeddings)
    return _core.select_cosine(q, s, _groups(groups, s.shape[0] if s.ndim == 2 else 0))


def position_prior(positions: Any) -> np.ndarray:
    """The prior ``1 / (1 + position)`` of each sentence.

    Parameters
    ----------
    positions : array of int, shape (N,)
        >= 0: a sentence's position in its passage, or its passage's rank.

    Returns
    -------
    ndarray of float64, shape (N,)

    Examples
    --------
    >>> position_prior([0, 1, 3])
    array([1.  , 0.5 , 0.25])
    """
    return _core.select_position_prior(_ints(positions, "positions"))


def combine_scores(scores: Any, weights: Any, *, normalization: str = "min-max", groups: Any = None) -> np.ndarray:
    """Weighted mean of per-query normalized score columns.

    Parameters
    ----------
    scores : array of float, shape (K, N)
        One row per scorer (e.g. `bm25`, `cosine`, `position_prior`, a
        cross-encoder's scores); finite where the weight is > 0.
    weights : array of float, shape (K,)
        >= 0, not all 0; a column of weight 0 is ignored.
    normalization : {"min-max", "max"}, default "min-max"
        "min-max": (x - min) / (max - min), a constant column gives 0.
        "max": x / max when max > 0, else 0 -- for scores >= 0 (BM25,
        priors): keeps each score's ratio to the best, so only true
        zeros map to 0.
    groups : array of int, shape (Q + 1,), optional

    Returns
    -------
    ndarray of float64, shape (N,)
        In [0, 1] (under "max": for scores >= 0).

    Raises
    ------
    ValueError
        Negative or all-zero weights, NaN scores, mismatched shapes.

    Notes
    -----
    rel(s) = sum_k w_k n_k(s) / sum_k w_k, with n_k the normalized column
    k; min and max over the query's sentences.

    Examples
    --------
    >>> combine_scores([[1.0, 3.0, 2.0], [0.0, 0.0, 1.0]], [1.0, 1.0])
    array([0.  , 0.5 , 0.75])
    """
    m = _floats(scores, "scores")
    if m.ndim == 1:
        m = m.reshape(1, -1)
    return _core.select_combine(m, _floats(weights, "weights").reshape(-1),
                                _groups(groups, m.shape[1] if m.ndim == 2 else 0), normalization)


def mmr(relevance: Any, embeddings: Any = None, *, sentence_terms: Any = None, mmr_lambda: float = 0.7,
        k: Optional[int] = None, groups: Any = None):
    """Maximal marginal relevance order, exact greedy.

    Parameters
    ----------
    relevance : array of float, shape (N,)
        Finite, e.g. `combine_scores`'s output (in [0, 1], commensurate
        with cosines).
    embeddings : ndarray of float32, shape (N, d), optional
        Similarity = their cosine. Exactly one of `embeddings` and
        `sentence_terms`.
    sentence_terms : sequence of int sequences, or Ragged, optional
        Similarity = cosine of the term-frequency vectors.
    mmr_lambda : float, default 0.7
        In [0, 1]; 1 sorts by relevance.
    k : int, optional
        Picks per query (>= 1); default all.
    groups : array of int, shape (Q + 1,), optional

    Returns
    -------
    order : ndarray of int64, shape (min(k, N),)
        Candidate indices, first pick first (with `groups`: a list, one
        array per query, indices local to the query).
    gains : ndarray of float64
        The MMR score of each pick when picked (a list with `groups`).

    Raises
    ------
    ValueError
        mmr_lambda outside [0, 1], k < 1, embeddings whose count does not
        match, NaN relevance or embeddings, both or neither similarity.

    Notes
    -----
    pick = argmax_i lambda rel(i) - (1 - lambda) max_{j picked} sim(i, j),
    the max over no pick being 0; ties to the lower index. Carbonell &
    Goldstein, SIGIR 1998. Evaluated lazily (exact, see csrc/select/mmr.h).

    Examples
    --------
    >>> e = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    >>> mmr([1.0, 0.9, 0.5], e, mmr_lambda=0.5)[0]
    array([0, 2, 1])
    """
    rel = _floats(relevance, "relevance").reshape(-1)
    g = _groups(groups, rel.size)
    n_max = int(np.max(np.diff(g))) if g.size > 1 else 0
    k = max(n_max, 1) if k is None else check_int(k, "k", "mmr")
    t = None if sentence_terms is None else _ragged(sentence_terms, "sentence_terms")
    order, gains, offsets = _core.select_mmr(rel, embeddings, None if t is None else t.values,
                                             None if t is None else t.offsets, g, float(mmr_lambda), int(k))
    if groups is None:
        return order, gains
    return _split(order, offsets), _split(gains, offsets)


def truncate(ranked: Any, values: Any, token_counts: Any, *, budget: Optional[int] = None,
             sufficiency: Optional[float] = None, order: str = "rank", max_dp_cells: int = MAX_DP_CELLS,
             groups: Any = None):
    """Keep the smallest sufficient prefix, then the best set under a budget.

    Parameters
    ----------
    ranked : array of int, shape (n,) or, with `groups`, a list of Q arrays
        Distinct candidate indices (local to the query), best first, e.g.
        `mmr`'s order.
    values : array of float, same shape as `ranked`
        >= 0 and finite: each rank's worth (e.g. MMR gains clamped at 0).
        All 0: each rank counts 1.
    token_counts : array of int, shape (N,)
        Tokens of every candidate, >= 0.
    budget : int, optional
        Token budget, >= 1; None: no budget.
    sufficiency : float, optional
        In (0, 1]: keep the smallest prefix whose cumulative value reaches
        this fraction of the total; None: the whole list.
    order : {"rank", "document"}
        Output in rank order, or ascending candidate index (document
        order when candidates are laid out by passage, then position).
    max_dp_cells : int, default 20,000,000
        Exact knapsack DP when items * (capacity + 1) <= this, greedy by
        value per token otherwise.
    groups : array of int, shape (Q + 1,), optional

    Returns
    -------
    ndarray of int64
        Chosen candidates (a list of arrays with `groups`).

    Raises
    ------
    ValueError
        budget < 1, sufficiency outside (0, 1], negative token counts or
        values, repeated or out-of-range ranked indices.

    Notes
    -----
    See csrc/select/truncate.h: 0/1 knapsack maximizing total value under
    the budget (items of value 0 never chosen; ties keep the better rank).

    Examples
    --------
    >>> truncate([2, 0, 1], [0.6, 0.3, 0.1], [5, 3, 4], budget=8)
    array([2, 1])
    >>> truncate([2, 0, 1], [0.6, 0.3, 0.1], [5, 3, 4], sufficiency=0.5)
    array([2])
    """
    tokens = _ints(token_counts, "token_counts").reshape(-1)
    if groups is None:
        r = _ints(ranked, "ranked").reshape(-1)
        v = _floats(values, "values").reshape(-1)
        offs = np.array([0, r.size], np.int64)
    else:
        rr = _ragged(ranked, "ranked")
        r, offs = rr.values, rr.offsets
        v = np.concatenate([_floats(x, f"values[{i}]").reshape(-1) for i, x in enumerate(values)]) \
            if len(values) else np.zeros(0)
    selected, offsets = _core.select_truncate(r, v, offs, tokens, _groups(groups, tokens.size),
                                              _opt_int(budget, "budget", "truncate"), sufficiency, order,
                                              check_int(max_dp_cells, "max_dp_cells", "truncate", minimum=0))
    return selected if groups is None else _split(selected, offsets)


def _temperature(temperature: Any, op: str) -> float:
    """A valid temperature as a float; None -> 0.0 (the core's "raw gains")."""
    if temperature is None:
        return 0.0
    value = float("nan")
    if isinstance(temperature, numbers.Real) and not isinstance(temperature, (bool, np.bool_)):
        try:
            value = float(temperature)
        except OverflowError:
            value = float("inf")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{op}: temperature must be a finite number > 0 or None, got {temperature!r}")
    return value


class SelectedClues(NamedTuple):
    """`select_clues`'s result."""

    relevance: np.ndarray  #: float64 (S,): combined score of every sentence
    selected: List[np.ndarray]  #: per query, chosen sentence indices (local)


def select_clues(groups: Any, *, query_terms: Any = None, sentence_terms: Any = None,
                 query_embeddings: Any = None, sentence_embeddings: Any = None, positions: Any = None,
                 passage_ranks: Any = None, external: Any = None, token_counts: Any = None,
                 weights: Optional[Dict[str, float]] = None, normalization: str = "min-max", k1: float = 1.5,
                 b: float = 0.75, df: Any = None, num_docs: Optional[float] = None, avgdl: Optional[float] = None,
                 mmr_lambda: float = 1.0, max_picks: Optional[int] = None,
                 temperature: Optional[float] = TEMPERATURE, similarity: str = "dense",
                 budget: Optional[int] = None, sufficiency: Optional[float] = None, order: str = "rank",
                 max_dp_cells: int = MAX_DP_CELLS) -> SelectedClues:
    """Score, rerank and truncate the clues of a batch of queries at once.

    One compiled call, queries in parallel, no GIL: per query, the scorers
    of positive weight (`bm25`, `cosine`, `position_prior` of `positions`
    and of `passage_ranks`, `external`, and ``passage_dense``: the cosine
    of the query with the sum of the embeddings of the sentence's passage,
    the sentences sharing its `passage_ranks` value), `combine_scores`,
    `mmr` (stopping at the first pick of gain <= 0 or after `max_picks`),
    then `truncate` with each pick's value ``exp((gain / best gain - 1) /
    temperature)`` (the raw gain without a temperature). If no pick has a
    positive gain, the MMR order, each rank worth 1.

    Parameters
    ----------
    groups : array of int, shape (Q + 1,)
        Query g owns sentences ``[groups[g], groups[g+1])``.
    query_terms, sentence_terms : Q and S int sequences, or Ragged
        For the lexical scorer and ``similarity="terms"``.
    query_embeddings : ndarray of float32, shape (Q, d), optional
    sentence_embeddings : ndarray of float32, shape (S, d), optional
        For the dense scorer and ``similarity="dense"``.
    positions, passage_ranks : array of int, shape (S,), optional
        >= 0, for the position and passage priors; `passage_ranks` also
        says which sentences share a passage (``passage_dense``).
    external : array of float, shape (S,), optional
        E.g. cross-encoder scores.
    token_counts : array of int, shape (S,), optional
        >= 0; required with a budget.
    weights : dict of str to float, optional
        By `SCORERS` name, >= 0; default ``{"lexical": 1.0}``.
    normalization : {"min-max", "max"}, default "min-max"
        Per-query normalization of each scorer, as in `combine_scores`.
    k1, b, df, num_docs, avgdl
        As in `bm25`.
    mmr_lambda : float, default 1.0
        In [0, 1]; 1: no MMR.
    max_picks : int, optional
        >= 1: MMR ranks at most this many clues per query (the pool that
        sufficiency and the budget choose from). MMR costs O(N d) per
        pick, so this bounds the latency; None: until the gain is <= 0.
    temperature : float or None, default 0.05
        > 0: the values the budget and sufficiency work on are
        ``exp((gain / best gain - 1) / temperature)`` (at least the
        smallest normal float64), probability-like and relative to the
        best (a clue whose gain is 5% below the best's is worth 1/e of
        it): the knapsack then keeps the set most likely to hold the
        answer instead of many short weak clues, and sufficiency is a
        nucleus cut. None: the gains themselves.
    similarity : {"dense", "terms"}
    budget, sufficiency, order, max_dp_cells
        As in `truncate`.

    Returns
    -------
    SelectedClues
        ``relevance`` (S,) float64 and ``selected``, a list of Q int64
        arrays of local sentence indices.

    Raises
    ------
    TypeError, ValueError
        As each step; an array a positive weight needs is missing.

    Examples
    --------
    >>> r = select_clues([0, 3], query_terms=[[7]],
    ...                  sentence_terms=[[7, 1], [2], [7]],
    ...                  token_counts=[4, 2, 3], budget=5)
    >>> r.selected[0]
    array([2])
    """
    w = {"lexical": 1.0} if weights is None else dict(weights)
    t = _temperature(temperature, "select_clues")
    unknown = set(w) - set(SCORERS)
    if unknown:
        raise ValueError(f"weights: unknown scorer(s) {sorted(unknown)}; expected names in {SCORERS}")
    wv = np.array([float(w.get(name, 0.0)) for name in SCORERS], np.float64)
    q = None if query_terms is None else _ragged(query_terms, "query_terms")
    s = None if sentence_terms is None else _ragged(sentence_terms, "sentence_terms")
    opt_ints = {name: None if x is None else _ints(x, name).reshape(-1) for name, x in
                (("positions", positions), ("passage_ranks", passage_ranks), ("token_counts", token_counts))}
    relevance, selected, offsets = _core.select_clues(
        _ints(groups, "groups"), None if q is None else q.values, None if q is None else q.offsets,
        None if s is None else s.values, None if s is None else s.offsets, query_embeddings, sentence_embeddings,
        opt_ints["positions"], opt_ints["passage_ranks"],
        None if external is None else _floats(external, "external").reshape(-1), opt_ints["token_counts"], wv,
        normalization, float(k1), float(b), None if df is None else _ints(df, "df"), num_docs, avgdl, float(mmr_lambda),
        _opt_int(max_picks, "max_picks", "select_clues"), t, similarity, _opt_int(budget, "budget", "select_clues"),
        sufficiency, order, check_int(max_dp_cells, "max_dp_cells", "select_clues", minimum=0))
    return SelectedClues(relevance, _split(selected, offsets))

# ---- the pipeline: extract -> rerank -> truncate ----------------------------

#: `compress`'s scorers by name (weights by `SCORERS` name). The passage
#: prior (retriever's rank) and the passage-level cosine lift the sentences
#: of the passages that match as a whole; docs/benchmarks.md measures each
#: preset on SciFact's rationale sentences.
SCORER_PRESETS = {"lexical": {"lexical": 1.0, "passage": 0.5},
                  "dense": {"dense": 1.0, "passage_dense": 1.0, "passage": 0.5},
                  "hybrid": {"lexical": 1.0, "dense": 1.0, "passage_dense": 1.0, "passage": 0.5}}


class Clue(NamedTuple):
    """One kept sentence, with what a citation needs."""

    passage: int  #: index of its passage among the query's passages
    sentence: int  #: index of the sentence (or window, see `compress`) in its passage
    start: int  #: code-point span of the sentence in its passage
    end: int
    text: str
    score: float  #: combined relevance in [0, 1]
    tokens: int


class Context(NamedTuple):
    """`compress`'s result for one query."""

    text: str  #: the kept sentences (see `compress`'s `order`)
    sentences: List[Clue]
    kept_tokens: int
    original_tokens: int  #: tokens of every sentence of the passages


class TokenCounter:
    """Tokens per text: a Hugging Face tokenizer (batched, no special tokens,
    cached by text) or, without one, whitespace-separated words."""

    def __init__(self, tokenizer: Any = None, cache_size: int = 200_000):
        self.tokenizer = tokenizer
        self.cache_size = cache_size
        self._cache: Dict[str, int] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self.tokenizer is None:
            return np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            ids = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            self._cache.update(zip(missing, map(len, ids)))
        return np.fromiter((self._cache[t] for t in texts), dtype=np.int64, count=len(texts))


_COUNTERS: "weakref.WeakKeyDictionary[Any, TokenCounter]" = weakref.WeakKeyDictionary()
_ENCODER: List[Any] = []


def _counter(tokenizer: Any) -> TokenCounter:
    if tokenizer is None:
        return TokenCounter()
    try:
        return _COUNTERS.setdefault(tokenizer, TokenCounter(tokenizer))
    except TypeError:  # not weak-referenceable: no cache across calls
        return TokenCounter(tokenizer)


def compress(query: Union[str, Sequence[str]], passages: Sequence, *, budget_tokens: Optional[int] = None,
             tokenizer: Any = None, scorer: str = "hybrid", weights: Optional[Dict[str, float]] = None,
             encoder: Any = None, mmr_lambda: float = 1.0, sufficiency: Optional[float] = None,
             order: str = "document", external_scorer: Any = None, max_picks: Optional[int] = 64,
             temperature: Optional[float] = TEMPERATURE, index: Any = None, k1: float = 1.5, b: float = 0.75):
    """Compress retrieved passages to the clues that answer the query:
    extract sentences, score and rerank them, keep the smallest sufficient set.

    Parameters
    ----------
    query : str, or sequence of str
        One query, or a batch (then `passages` holds one list per query and
        the result is a list).
    passages : sequence of str (or, for a batch, sequence of sequences of str)
        The retrieved passages, best first (their rank feeds the passage prior).
    budget_tokens : int, optional
        Keep at most this many tokens (>= 1): a 0/1 knapsack over the ranked
        clues (exact when small, greedy by value per token otherwise; the
        values are set by `temperature`). A sentence longer than the budget
        is first cut into windows of whole words that fit it, each a clue
        of its own, so it can still be kept in part (only a single word
        longer than the budget cannot).
    tokenizer : Hugging Face tokenizer, optional
        Counts tokens (batched, cached); without one, whitespace words.
    scorer : {"hybrid", "lexical", "dense"}, default "hybrid"
        `SCORER_PRESETS`: "lexical" is BM25 of each sentence against the
        query plus the passage prior (passages are taken as best first);
        "dense" the cosine of sentence and query embeddings, plus the
        cosine of the query with the sentence's whole passage and the
        passage prior; "hybrid" all of them. `weights` (by `SCORERS` name:
        lexical, dense, position, passage, external, passage_dense)
        overrides it.
    encoder : ragkernels.hf.Encoder, optional
        For the dense scorers (dense, passage_dense) and MMR; default
        all-MiniLM-L6-v2 (loaded once).
    mmr_lambda : float, default 1.0
        Maximal marginal relevance, in [0, 1]; 1 ranks by relevance alone.
    sufficiency : float, optional
        In (0, 1]: keep the smallest prefix of the ranked clues whose
        cumulative value (see `temperature`) reaches this share of the total
        (with a budget: then the budget).
    order : {"document", "rank"}, default "document"
        Kept sentences in their passages' order (passages best first), or
        best clue first.
    external_scorer : callable, optional
        ``external_scorer(query, sentences) -> scores`` (e.g. a cross-encoder's
        ``predict`` over the pairs), mixed in with weight 1 unless `weights` says.
    max_picks : int or None, default 64
        Clues ranked per query before truncation (MMR costs O(N d) per pick,
        so this bounds the latency); None ranks all.
    temperature : float or None, default 0.05
        Clue values for the budget and sufficiency, as in `select_clues`.
    index : ragkernels.sparse.BM25Index, optional
        Corpus statistics for the lexical scorer: the index's analyzer,
        vocabulary and document frequencies give the IDF (length
        normalization uses the mean length of each query's candidate
        sentences; `k1` and `b` are compress's own). None: statistics of
        each query's candidate sentences.
    k1, b : float
        BM25 parameters of the lexical scorer (the project's defaults).

    Returns
    -------
    Context, or a list of them for a batch
        ``text``, ``sentences`` (Clue: passage, sentence, span, text,
        score, tokens), ``kept_tokens``, ``original_tokens``.
    """
    single = isinstance(query, str)
    if single:
        queries, passage_lists = [query], [as_texts(passages, "compress", "passages", allow_str=False)]
    else:
        queries, passage_lists = as_texts(query, "compress", "query", allow_str=False), list(passages)
        if len(passage_lists) != len(queries):
            raise ValueError(f"compress: {len(queries)} queries but {len(passage_lists)} passage lists")
        passage_lists = [as_texts(p, "compress", f"passages[{i}]", allow_str=False)
                         for i, p in enumerate(passage_lists)]
    budget_tokens = _opt_int(budget_tokens, "budget_tokens", "compress")
    max_picks = _opt_int(max_picks, "max_picks", "compress")
    if order not in ("document", "rank"):
        raise ValueError(f'compress: order must be "document" or "rank", got {order!r}')
    _temperature(temperature, "compress")
    if weights is None:
        if scorer not in SCORER_PRESETS:
            raise ValueError(f"compress: scorer must be one of {sorted(SCORER_PRESETS)}, got {scorer!r}")
        weights = SCORER_PRESETS[scorer]
    weights = dict(weights)  # the caller's dict stays as it was
    if external_scorer is not None:
        weights.setdefault("external", 1.0)
    if index is not None:
        from ragkernels.sparse import BM25Index

        if not isinstance(index, BM25Index):
            raise TypeError(f"compress: index must be a ragkernels.sparse.BM25Index, got {type(index).__name__}")

    # Extract: every passage of every query segmented in one parallel call.
    flat_passages = [p for plist in passage_lists for p in plist]
    spans = split_sentences(flat_passages)
    sentences = [s for per_passage in spans.strings(flat_passages) for s in per_passage]
    counter = _counter(tokenizer)
    tokens = counter(sentences)
    if budget_tokens is not None and len(tokens) and tokens.max() > budget_tokens:
        spans, sentences, tokens = _split_overlong(spans, flat_passages, sentences, tokens, budget_tokens, counter)
    passage_of = spans.text_ids()
    passage_start = np.concatenate([[0], np.cumsum([len(p) for p in passage_lists])]).astype(np.int64)
    groups = spans.offsets[passage_start]
    positions = np.arange(len(sentences), dtype=np.int64) - spans.offsets[passage_of]
    query_of_passage = np.repeat(np.arange(len(queries)), [len(p) for p in passage_lists])
    passage_ranks = passage_of - passage_start[query_of_passage[passage_of]] if len(sentences) else passage_of

    arrays: Dict[str, Any] = {}
    dense = weights.get("dense", 0) > 0 or weights.get("passage_dense", 0) > 0
    if weights.get("lexical", 0) > 0 or (mmr_lambda < 1 and not dense):
        arrays.update(_lexical_arrays(sentences, queries, index))
    if dense:
        model = encoder if encoder is not None else _default_encoder()
        arrays["sentence_embeddings"] = np.ascontiguousarray(model.encode(sentences), dtype=np.float32)
        arrays["query_embeddings"] = np.ascontiguousarray(model.encode(queries), dtype=np.float32)
    if external_scorer is not None:
        arrays["external"] = np.concatenate([
            np.asarray(external_scorer(q, sentences[groups[g]:groups[g + 1]]), np.float64).reshape(-1)
            for g, q in enumerate(queries)]) if sentences else np.zeros(0)
    # Rerank and truncate: one compiled call for the whole batch.
    result = select_clues(groups, positions=positions, passage_ranks=passage_ranks, token_counts=tokens,
                          weights=weights, k1=k1, b=b, mmr_lambda=mmr_lambda, max_picks=max_picks,
                          temperature=temperature,
                          similarity="dense" if dense else "terms", budget=budget_tokens,
                          sufficiency=sufficiency, order=order, **arrays)
    contexts = []
    for g in range(len(queries)):
        first = int(groups[g])
        clues = [Clue(int(passage_ranks[first + i]), int(positions[first + i]),
                      int(spans.spans[first + i, 0]), int(spans.spans[first + i, 1]), sentences[first + i],
                      float(result.relevance[first + i]), int(tokens[first + i]))
                 for i in result.selected[g].tolist()]
        contexts.append(Context(_join(clues, order), clues, sum(c.tokens for c in clues),
                                int(tokens[first:groups[g + 1]].sum())))
    return contexts[0] if single else contexts


def _windows(passage: str, start: int, end: int, words: int) -> List[Tuple[int, int]]:
    """Spans of consecutive runs of `words` whitespace-separated words of
    passage[start:end], in the passage's code points."""
    bounds = [m.span() for m in re.finditer(r"\S+", passage[start:end])]
    return [(start + bounds[i][0], start + bounds[min(i + words, len(bounds)) - 1][1])
            for i in range(0, len(bounds), words)]


def _split_overlong(spans: SentenceSpans, passages: List[str], sentences: List[str], tokens: np.ndarray,
                    budget: int, counter: TokenCounter) -> Tuple[SentenceSpans, List[str], np.ndarray]:
    """Sentences of more tokens than the budget cut into windows of whole
    words that fit it (issue 14: a 250,000-word passage without punctuation
    gave an empty context). With a tokenizer a window of `budget` words may
    still be too long: its sentence is cut again with half the words, down
    to one word a window (a single word over the budget stays as it is)."""
    passage_of = spans.text_ids()
    pieces: Dict[int, Tuple[List[Tuple[int, int]], List[str], np.ndarray]] = {}
    for i in np.flatnonzero(tokens > budget).tolist():
        passage, (start, end) = passages[passage_of[i]], spans.spans[i].tolist()
        words = budget
        while True:
            cuts = _windows(passage, start, end, words)
            texts = [passage[a:b] for a, b in cuts]
            counts = counter(texts)
            if counts.max() <= budget or words == 1:
                break
            words = max(1, words // 2)
        pieces[i] = (cuts, texts, counts)
    rows, out_sentences, out_tokens = [], [], []
    per_passage = np.zeros(len(passages), np.int64)
    for i, row in enumerate(spans.spans.tolist()):
        cuts, texts, counts = pieces.get(i, ([tuple(row)], [sentences[i]], tokens[i:i + 1]))
        rows += cuts
        out_sentences += texts
        out_tokens.append(counts)
        per_passage[passage_of[i]] += len(cuts)
    offsets = np.concatenate([[0], np.cumsum(per_passage)]).astype(np.int64)
    return (SentenceSpans(np.array(rows, np.int64).reshape(-1, 2), offsets), out_sentences,
            np.concatenate(out_tokens).astype(np.int64))


_DOCUMENT_FREQUENCIES: "weakref.WeakKeyDictionary[Any, np.ndarray]" = weakref.WeakKeyDictionary()


def _lexical_arrays(sentences: List[str], queries: List[str], index: Any) -> Dict[str, Any]:
    """Term ids of the sentences and queries; with `index`, its analysis and
    document frequencies. The ids are renumbered to the terms of this call,
    so df is as long as the batch's vocabulary, not the corpus's (checked
    and copied on every call)."""
    stats: Dict[str, Any] = {}
    if index is None:
        values, offsets, _ = Analyzer().term_ids(sentences + queries)
    else:
        df = _DOCUMENT_FREQUENCIES.get(index)
        if df is None:
            df = _DOCUMENT_FREQUENCIES[index] = index.document_frequencies().astype(np.int64)
        values, offsets = index.term_ids(sentences + queries)
        known = values >= 0
        terms, local = np.unique(values[known], return_inverse=True)
        values[known] = local
        stats = {"df": df[terms], "num_docs": index.num_docs}  # avgdl: each query's sentences
    n = len(sentences)
    return {"sentence_terms": Ragged(values[:offsets[n]], offsets[:n + 1]),
            "query_terms": Ragged(values[offsets[n]:], offsets[n:] - offsets[n]), **stats}


def _join(clues: List[Clue], order: str) -> str:
    """Kept sentences as one text: in document order, sentences of a passage
    joined by a space and passages by a blank line; in rank order one per line."""
    if order == "rank":
        return "\n".join(c.text for c in clues)
    parts: List[str] = []
    for i, clue in enumerate(clues):
        if i:
            parts.append(" " if clue.passage == clues[i - 1].passage else "\n\n")
        parts.append(clue.text)
    return "".join(parts)


def _default_encoder() -> Any:
    if not _ENCODER:
        from ragkernels.hf import Encoder

        _ENCODER.append(Encoder())
    return _ENCODER[0]
