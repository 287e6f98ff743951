"""Pseudo-relevance feedback: RM3 and Rocchio for BM25, Rocchio for vectors.

Feedback assumes the top documents of a first-stage search are relevant and
rewrites the query from them. Over a `ragkernels.sparse.BM25Index`:

- `rm3` estimates a relevance model from the feedback documents and mixes
  it with the query (Lavrenko & Croft, SIGIR 2001), exactly as Anserini's
  ``Rm3Reranker`` (defaults ``fbDocs=10, fbTerms=10,
  originalQueryWeight=0.5``);
- `rocchio` adds the mean of the feedback documents' normalized term
  vectors to the query (Rocchio, 1971), as Anserini's ``RocchioReranker``
  (``topFbDocs=10, topFbTerms=10, alpha=1, beta=0.75``).

Both return weighted queries, ``{term: weight}`` dicts that
``BM25Index.search`` takes; `rm3_search` and `rocchio_search` run
search -> expand -> search in one call. Feedback reads the terms of
documents, which an inverted index does not keep: the first call on an index
transposes its postings into a document -> (term, tf) view (one pass over the
postings, 8 bytes each), cached for as long as the index lives.

Over dense vectors, `rocchio_dense` is vector PRF (Li et al., TOIS 2023):
``alpha * q + beta * mean(top feedback doc vectors)``, renormalized.
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ragkernels import _core
from ragkernels.sparse import BM25Index

__all__ = ["rm3", "rm3_search", "rocchio", "rocchio_search", "rocchio_dense"]

Results = Tuple[np.ndarray, np.ndarray]
WeightedQuery = Dict[str, float]

_FORWARD: "weakref.WeakKeyDictionary[BM25Index, Any]" = weakref.WeakKeyDictionary()


def _forward(index: Any, op: str):
    """The cached document -> (term, tf) view of `index`, built on first use."""
    if not isinstance(index, BM25Index):
        raise TypeError(f"{op}: index must be a ragkernels.sparse.BM25Index, got {type(index).__name__}")
    forward = _FORWARD.get(index)
    if forward is None:
        forward = _FORWARD[index] = _core.PrfForwardIndex(index._core)
    return forward


def _check_int(value: Any, name: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    return int(value)


def _check_float(value: Any, name: str, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    return float(value)


def _queries(queries: Any, op: str) -> Tuple[list, bool]:
    """(queries as a list, whether they are texts); texts or token lists only."""
    if isinstance(queries, str):
        return [queries], True
    if isinstance(queries, Mapping) or not isinstance(queries, Sequence) and not hasattr(queries, "__iter__"):
        raise TypeError(f"{op}: queries must be a str, a sequence of str or a sequence of token lists, "
                        f"got {type(queries).__name__}")
    queries = list(queries)
    texts = not queries or isinstance(queries[0], str)
    for i, q in enumerate(queries):
        if isinstance(q, str) != texts or isinstance(q, Mapping):
            raise TypeError(f"{op}: queries[{i}] must be {'a str' if texts else 'a list of str'} like queries[0], "
                            f"got {type(q).__name__}")
    return queries, texts


def _first_stage(index: BM25Index, queries: list, results: Optional[Results], depth: int, op: str) -> Results:
    if results is None:
        if not queries or index.num_terms == 0:  # nothing to match (an index of empty documents)
            return np.full((len(queries), depth), -1, np.int64), np.full((len(queries), depth), -np.inf, np.float32)
        return index.search(queries, k=depth)
    if not isinstance(results, (tuple, list)) or len(results) != 2:
        raise TypeError(f"{op}: results must be a (docs, scores) pair as BM25Index.search returns")
    return results[0], results[1]


def rm3(index: BM25Index, queries, *, fb_docs: int = 10, fb_terms: int = 10, original_weight: float = 0.5,
        max_df_ratio: float = 0.1, filter_terms: bool = True,
        results: Optional[Results] = None) -> List[WeightedQuery]:
    """Expand queries with RM3, as Anserini's Rm3Reranker does.

    Parameters
    ----------
    index : ragkernels.sparse.BM25Index
        Built from texts or token lists (a string vocabulary).
    queries : str or sequence of str or sequence of list of str
        Texts (analyzed with the index's analyzer) or token lists.
    fb_docs : int, default 10
        Feedback documents: the top `fb_docs` hits of each query, >= 1
        (fewer when fewer documents match).
    fb_terms : int, default 10
        Terms kept per feedback document and in the relevance model, >= 1.
    original_weight : float, default 0.5
        Weight of the original query in [0, 1]; 1 - it goes to the model.
    max_df_ratio : float, default 0.1
        Terms in more than this fraction of the documents are no feedback
        terms (Anserini's stopword heuristic), in [0, 1].
    filter_terms : bool, default True
        Keep only feedback terms of 2..20 characters in ``[a-z0-9]+``, as
        Anserini does; False (pyserini's ``filter_terms=False``) drops that
        test, for other scripts, and keeps the df test.
    results : (docs, scores), optional
        The first-stage ``index.search(queries, k=...)`` if already run:
        int64 and float32 arrays of shape (n_queries, depth), -1 pads.
        Default: searched here with ``k=fb_docs``.

    Returns
    -------
    list of dict
        One ``{term: weight}`` per query, heaviest first, weights > 0,
        summing to 1 at most (less when query tokens are not in the index
        or no feedback term passes the filters): the query for
        ``index.search``.

    Raises
    ------
    TypeError
        Not a BM25Index, queries of a wrong kind, results of a wrong dtype.
    ValueError
        fb_docs or fb_terms < 1, original_weight or max_df_ratio outside
        [0, 1], results of a wrong shape or with ids outside the index.

    Notes
    -----
    Per query, with feedback docs d_i scored s_i: each doc's vector holds
    the tf of its terms of 2..20 characters in ``[a-z0-9]+`` with
    ``df / num_docs <= max_df_ratio``, pruned to its `fb_terms` largest;
    ``rm(t) = sum_i tf_i(t) / |d_i|_1 * s_i``, pruned to `fb_terms` terms
    and L1-normalized; the result is ``w * q(t) + (1 - w) * rm(t)``, q the
    query's token counts over its length. Float steps follow Anserini's
    Java; ties in pruning go to the lower term id (Anserini: hash order).
    Texts are analyzed with the index's analyzer (bm25s's by default:
    English stopwords, Snowball stemmer), not Lucene's.

    Examples
    --------
    >>> import ragkernels as rk
    >>> docs = [["cat", "purr"], ["cat", "purr", "purr"], ["dog", "bark"],
    ...         ["fish"], ["bird"], ["cow"], ["pig"], ["hen"], ["owl"], ["ant"]]
    >>> index = rk.sparse.BM25Index.build(docs)
    >>> q = rk.prf.rm3(index, [["cat"]], fb_docs=2, fb_terms=2, max_df_ratio=0.5)
    >>> {t: round(w, 4) for t, w in q[0].items()}
    {'cat': 0.7133, 'purr': 0.2867}
    """
    op = "rm3"
    forward = _forward(index, op)
    queries, texts = _queries(queries, op)
    fb_docs = _check_int(fb_docs, "fb_docs", op)
    fb_terms = _check_int(fb_terms, "fb_terms", op)
    original_weight = _check_float(original_weight, "original_weight", op)
    max_df_ratio = _check_float(max_df_ratio, "max_df_ratio", op)
    if not isinstance(filter_terms, (bool, np.bool_)):
        raise TypeError(f"{op}: filter_terms must be a bool, got {type(filter_terms).__name__}")
    docs, scores = _first_stage(index, queries, results, max(fb_docs, 1), op)
    return _core.prf_rm3(forward, queries, texts, docs, scores, fb_docs, fb_terms, original_weight, max_df_ratio,
                         bool(filter_terms))


def rm3_search(index: BM25Index, queries, *, k: int = 1000, fb_docs: int = 10, fb_terms: int = 10,
               original_weight: float = 0.5, max_df_ratio: float = 0.1, filter_terms: bool = True,
               algorithm: str = "taat") -> Results:
    """Search, expand with `rm3`, search again with the expanded queries.

    Parameters are those of `rm3` and of ``BM25Index.search`` (`k`,
    `algorithm`); the first search fetches the `fb_docs` feedback docs.

    Returns
    -------
    docs : numpy.ndarray of int64, shape (n_queries, k)
        Best first; -1 pads.
    scores : numpy.ndarray of float32, shape (n_queries, k)
        Scores of the expanded query; -inf pads.

    Examples
    --------
    >>> import ragkernels as rk
    >>> docs = [["cat", "purr"], ["cat", "purr", "purr"], ["purr", "rumble"],
    ...         ["fish"], ["bird"], ["cow"], ["pig"], ["hen"], ["owl"], ["ant"]]
    >>> index = rk.sparse.BM25Index.build(docs)
    >>> rk.prf.rm3_search(index, [["cat"]], k=3, fb_docs=2, max_df_ratio=0.5)[0]
    array([[0, 1, 2]])
    """
    expanded = rm3(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, original_weight=original_weight,
                   max_df_ratio=max_df_ratio, filter_terms=filter_terms)
    return _search(index, expanded, k, algorithm)


def _search(index: BM25Index, expanded: List[WeightedQuery], k: int, algorithm: str) -> Results:
    if not expanded:
        k = _check_int(k, "k", "search")
        return np.zeros((0, max(k, 1)), np.int64), np.zeros((0, max(k, 1)), np.float32)
    return index.search(expanded, k=k, algorithm=algorithm)


def rocchio(index: BM25Index, queries, *, fb_docs: int = 10, fb_terms: int = 10, alpha: float = 1.0,
            beta: float = 0.75, max_df_ratio: float = 0.1, results: Optional[Results] = None) -> List[WeightedQuery]:
    """Expand queries with Rocchio feedback, as Anserini's RocchioReranker does.

    Parameters
    ----------
    index : ragkernels.sparse.BM25Index
        Built from texts or token lists (a string vocabulary).
    queries : str or sequence of str or sequence of list of str
        Texts (analyzed with the index's analyzer) or token lists.
    fb_docs : int, default 10
        Feedback documents per query, >= 1.
    fb_terms : int, default 10
        Terms kept in the mean feedback vector, >= 1.
    alpha, beta : float, default 1.0 and 0.75
        Weights of the query and of the feedback vector, finite, >= 0.
    max_df_ratio : float, default 0.1
        Terms in more than this fraction of the documents are no feedback
        terms, in [0, 1].
    results : (docs, scores), optional
        The first-stage search, as in `rm3` (scores are not used).

    Returns
    -------
    list of dict
        One ``{term: weight}`` per query, heaviest first, weights > 0.

    Raises
    ------
    TypeError
        Not a BM25Index, queries of a wrong kind, results of a wrong dtype.
    ValueError
        fb_docs or fb_terms < 1, alpha or beta negative or not finite,
        max_df_ratio outside [0, 1], feedback ids outside the index.

    Notes
    -----
    ``q'(t) = alpha * q(t) + beta * mean(t)``, q the query's token counts
    over their L2 norm; ``mean(t) = sum_i tf_i(t) / |d_i|_2 / n`` over the
    n feedback docs, each doc vector holding the tf of its terms of 2..20
    characters with ``df / num_docs <= max_df_ratio``, pruned to `fb_terms`
    terms and L2-normalized. Raw tf (not BM25 weights) as in Anserini: the
    second search applies idf itself. No negative feedback (Anserini's
    default). Ties in pruning go to the lower term id.

    Examples
    --------
    >>> import ragkernels as rk
    >>> docs = [["cat", "purr"], ["cat", "purr", "purr"], ["dog", "bark"],
    ...         ["fish"], ["bird"], ["cow"], ["pig"], ["hen"], ["owl"], ["ant"]]
    >>> index = rk.sparse.BM25Index.build(docs)
    >>> q = rk.prf.rocchio(index, [["cat"]], fb_docs=2, fb_terms=2, max_df_ratio=0.5)
    >>> {t: round(w, 4) for t, w in q[0].items()}
    {'cat': 1.4385, 'purr': 0.6084}
    """
    op = "rocchio"
    forward = _forward(index, op)
    queries, texts = _queries(queries, op)
    fb_docs = _check_int(fb_docs, "fb_docs", op)
    fb_terms = _check_int(fb_terms, "fb_terms", op)
    alpha = _check_float(alpha, "alpha", op)
    beta = _check_float(beta, "beta", op)
    max_df_ratio = _check_float(max_df_ratio, "max_df_ratio", op)
    docs, _ = _first_stage(index, queries, results, max(fb_docs, 1), op)
    return _core.prf_rocchio(forward, queries, texts, docs, fb_docs, fb_terms, alpha, beta, max_df_ratio)


def rocchio_search(index: BM25Index, queries, *, k: int = 1000, fb_docs: int = 10, fb_terms: int = 10,
                   alpha: float = 1.0, beta: float = 0.75, max_df_ratio: float = 0.1,
                   algorithm: str = "taat") -> Results:
    """Search, expand with `rocchio`, search again; returns ``(docs, scores)``.

    Parameters are those of `rocchio` and of ``BM25Index.search``.

    Examples
    --------
    >>> import ragkernels as rk
    >>> docs = [["cat", "purr"], ["cat", "purr", "purr"], ["purr", "rumble"],
    ...         ["fish"], ["bird"], ["cow"], ["pig"], ["hen"], ["owl"], ["ant"]]
    >>> index = rk.sparse.BM25Index.build(docs)
    >>> rk.prf.rocchio_search(index, [["cat"]], k=3, fb_docs=2, max_df_ratio=0.5)[0]
    array([[0, 1, 2]])
    """
    expanded = rocchio(index, queries, fb_docs=fb_docs, fb_terms=fb_terms, alpha=alpha, beta=beta,
                       max_df_ratio=max_df_ratio)
    return _search(index, expanded, k, algorithm)


def rocchio_dense(queries, doc_vectors, feedback_ids, *, fb_docs: int = 5, alpha: float = 0.4, beta: float = 0.6,
                  normalize: bool = True) -> np.ndarray:
    """Move query embeddings towards their top documents' (vector PRF).

    Parameters
    ----------
    queries : ndarray of float32, shape (n_queries, dim)
        Query embeddings (numpy or any CPU DLPack tensor; read in place,
        any positive strides).
    doc_vectors : ndarray of float32, shape (n_docs, dim)
        Document embeddings, rows numbered as the ids of `feedback_ids`.
    feedback_ids : ndarray of int64, shape (n_queries, depth)
        A first-stage run, best first, -1 pads (e.g. a dense index's
        search ids); the first `fb_docs` columns are read.
    fb_docs : int, default 5
        Feedback documents per query, >= 1.
    alpha, beta : float, default 0.4 and 0.6
        Weights of the query and of the mean feedback vector, finite, >= 0.
    normalize : bool, default True
        Scale each output to unit L2 norm (for cosine / inner product on
        normalized embeddings); a zero vector stays zero.

    Returns
    -------
    ndarray of float32, shape (n_queries, dim)

    Raises
    ------
    TypeError
        An argument of a wrong dtype or not an array.
    ValueError
        Dimensions or row counts that disagree, negative strides, ids
        outside [-1, n_docs), NaN or inf in a query or in a feedback doc
        vector, fb_docs < 1, alpha or beta negative or not finite.

    Notes
    -----
    ``q' = alpha * q + beta * mean_j d_j`` over the feedback docs d_j of the
    query (ids >= 0 among the first `fb_docs`); a query without any keeps
    ``alpha * q``. Summed in float64. Li, Mourad, Zhuang, Koopman & Zuccon,
    TOIS 2023 (pyserini's "Rocchio PRF 5 A0.4 B0.6" are the defaults).

    Examples
    --------
    >>> import numpy as np, ragkernels as rk
    >>> q = np.array([[1.0, 0.0]], np.float32)
    >>> d = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    >>> rk.prf.rocchio_dense(q, d, np.array([[0, -1]]), alpha=1.0, beta=1.0, normalize=False)
    array([[1., 1.]], dtype=float32)
    """
    op = "rocchio_dense"
    fb_docs = _check_int(fb_docs, "fb_docs", op)
    alpha = _check_float(alpha, "alpha", op)
    beta = _check_float(beta, "beta", op)
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"{op}: normalize must be a bool, got {type(normalize).__name__}")
    return _core.prf_rocchio_dense(queries, doc_vectors, feedback_ids, fb_docs, alpha, beta, bool(normalize))
