"""Sparse retrieval: BM25 and learned-sparse (impact) inverted indexes.

Both indexes keep postings in compressed blocks of 128 documents with the
largest score of each block, and answer queries term-at-a-time into a dense
accumulator, or document-at-a-time with exhaustive evaluation, MaxScore or
Block-Max WAND. All four return exactly the exhaustive top-k: the same
documents, the same float32 scores, ties broken by lower document number.

`BM25Index` scores as bm25s does (its five variants, its float32 scores) and,
built from texts, tokenizes them with `ragkernels.text.Analyzer` exactly as
``bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"))``.
`ImpactIndex` stores integer impacts of learned-sparse document vectors
(SPLADE, uniCOIL, inference-free encoders) and scores a query by the weighted
dot product.

Results are ``(docs, scores)``: int64 document numbers (rows of the corpus as
given to ``build``; ``-1`` pads a row when fewer than k documents contain a
query term) and float32 scores, shape ``(n_queries, k)``, best first. Only
documents that contain at least one query term are ranked.
"""
from __future__ import annotations

import itertools
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ragkernels import _core
from ragkernels._checks import check_int
from ragkernels._progress import ProgressBar
from ragkernels.text import Analyzer

__all__ = ["BM25Index", "ImpactIndex", "ALGORITHMS", "METHODS"]

ALGORITHMS = ("taat", "maxscore", "bmw", "exhaustive")
METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
_BATCH = 8192  # documents or queries per call into the core: the progress bar's step

PathLike = Union[str, "os.PathLike[str]"]
Results = Tuple[np.ndarray, np.ndarray]


def _progress(total: Optional[int], show: bool, desc: str) -> ProgressBar:
    return ProgressBar(total, show, desc, unit="doc" if desc == "Index" else "query")


def _batches(items: Iterable, size: int = _BATCH) -> Iterable[list]:
    it = iter(items)
    while True:
        batch = list(itertools.islice(it, size))
        if not batch:
            return
        yield batch


def _kind(item: Any, what: str) -> str:
    """'text', 'tokens', 'ids' or 'weights' for one document or query."""
    if isinstance(item, str):
        return "text"
    if isinstance(item, Mapping):
        return "weights"
    if isinstance(item, np.ndarray):
        if item.ndim != 1 or item.dtype.kind not in "iu":
            raise TypeError(f"{what}: token id arrays must be 1-D integer arrays, got {item.dtype} with shape {item.shape}")
        return "ids"
    if isinstance(item, (list, tuple)):
        # The first element decides; the core checks every token (and names a bad one).
        if not item or isinstance(item[0], str):
            return "tokens"
        if isinstance(item[0], (int, np.integer)) and not isinstance(item[0], bool):
            return "ids"
    raise TypeError(f"{what}: expected str (a text), a list of str (tokens), a list or array of int (token ids) "
                    f"or a dict (term weights), got {type(item).__name__}")


def _check_same_kind(batch: list, kind: str, what: str, start: int) -> None:
    for i, item in enumerate(batch):
        name = f"{what}[{start + i}]"
        item_kind = _kind(item, name)
        if item_kind != kind and not (kind in ("tokens", "ids") and len(item) == 0):
            raise TypeError(f"{name} is a {item_kind} but the first one is a {kind}; do not mix input kinds")


def _flatten_ids(batch: Sequence) -> Tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(batch) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in batch], out=offsets[1:])
    ids = np.concatenate([np.asarray(t, dtype=np.int64) for t in batch]) if offsets[-1] else np.zeros(0, np.int64)
    return ids, offsets


def _flatten_weights(batch: Sequence[Mapping], what: str) -> Tuple[list, np.ndarray, np.ndarray]:
    keys: list = []
    weights: list = []
    offsets = np.zeros(len(batch) + 1, dtype=np.int64)
    for i, d in enumerate(batch):
        keys.extend(d.keys())
        weights.extend(d.values())
        offsets[i + 1] = len(keys)
    w = np.asarray(weights, dtype=np.float32)
    if w.size and (not np.all(np.isfinite(w)) or np.any(w < 0)):
        raise ValueError(f"{what}: weights must be finite and >= 0")
    return keys, offsets, w


def _csr_arrays(rows) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int64 indices, int64 indptr, float32 weights) of CSR rows; weights checked."""
    values = getattr(rows, "values", None)
    if values is None or callable(values):
        values = rows.data
    indices = np.ascontiguousarray(rows.indices, dtype=np.int64)
    indptr = np.ascontiguousarray(rows.indptr, dtype=np.int64)
    weights = np.ascontiguousarray(values, dtype=np.float32)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and >= 0")
    return indices, indptr, weights


def _check_real(value: Any, name: str) -> float:
    """A real number as float; a str such as "1.2" is refused, not parsed."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"build: {name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS and algorithm != "block_max_wand":
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm


def _check_ids(ids: Optional[Sequence], n: int) -> List[str]:
    if ids is None:
        return []
    ids = list(ids)
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for {n} documents")
    bad = next((i for i, x in enumerate(ids) if not isinstance(x, str)), None)
    if bad is not None:
        raise TypeError(f"ids[{bad}] must be str, got {type(ids[bad]).__name__}")
    if len(set(ids)) != len(ids):
        seen: set = set()
        first = next(x for x in ids if x in seen or seen.add(x))
        raise ValueError(f"ids must be unique; {first!r} appears more than once")
    return ids


class _SparseIndex:
    """What both indexes share: search, save/load, ids."""

    _scoring = ""

    def __init__(self, core: "_core.SparseIndex") -> None:
        if core.scoring != self._scoring:
            raise ValueError(f"this file holds a {core.scoring} index; load it with the matching class")
        self._core = core
        self._doc_ids: Optional[List[str]] = None

    @property
    def num_docs(self) -> int:
        """int: documents in the index."""
        return self._core.num_docs

    @property
    def num_terms(self) -> int:
        """int: terms in the vocabulary."""
        return self._core.num_terms

    @property
    def num_postings(self) -> int:
        """int: (term, document) pairs stored."""
        return self._core.num_postings

    @property
    def doc_ids(self) -> List[str]:
        """list of str: the ids given to ``build`` (empty when none were)."""
        if self._doc_ids is None:
            self._doc_ids = self._core.doc_ids()
        return self._doc_ids

    @property
    def vocabulary(self) -> List[str]:
        """list of str: term strings by term id (empty for an integer vocabulary)."""
        return self._core.terms()

    def document_frequencies(self) -> np.ndarray:
        """uint32 array: documents holding each term, by term id (as `vocabulary`)."""
        return self._core.document_frequencies()

    def term_ids(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Analyze texts as the documents were and map each term to its id.

        Parameters
        ----------
        texts : sequence of str

        Returns
        -------
        values : ndarray of int64
            Term ids of every text, concatenated; -1 for a term the index
            does not hold.
        offsets : ndarray of int64, shape (len(texts) + 1,)
            Text i's ids are ``values[offsets[i]:offsets[i + 1]]``.

        Raises
        ------
        ValueError
            The index was built from tokens or ids, not texts.
        TypeError
            An item of `texts` is not str.

        Examples
        --------
        >>> from ragkernels.sparse import BM25Index
        >>> index = BM25Index.build(["cats sat", "dogs ran"])
        >>> values, offsets = index.term_ids(["a cat ran", "birds"])
        >>> [index.vocabulary[i] if i >= 0 else None for i in values], offsets.tolist()
        (['cat', 'ran', None], [0, 2, 3])
        """
        if isinstance(texts, str):
            raise TypeError("term_ids: texts must be a sequence of str, not one str: wrap it in a list")
        return self._core.text_term_ids(texts if isinstance(texts, list) else list(texts))

    def save(self, path: PathLike) -> None:
        """Write the index to `path` atomically (a temporary file, fsynced, then renamed)."""
        self._core.save(os.fspath(path))

    @classmethod
    def load(cls, path: PathLike, *, verify: bool = True):
        """Open an index saved with `save`, memory-mapped.

        Parameters
        ----------
        path : str or os.PathLike
        verify : bool, default True
            Check every section's checksum (reads the file once). The
            structure (sizes, offsets, block contents) is always checked.

        Raises
        ------
        ragkernels.FormatError
            The file is truncated, corrupt, of a future version or not an index of this kind.
        OSError
            The file cannot be read.
        """
        return cls(_core.SparseIndex.load(os.fspath(path), verify))

    def search(self, queries, *, k: int = 10, algorithm: str = "taat", show_progress: bool = False) -> Results:
        """Top-k documents of each query, in parallel over queries.

        Parameters
        ----------
        queries : str, sequence of queries, or CSR rows
            Each query is a text (indexes built from texts), a list of token
            strings, a list/array of token ids (integer vocabularies), or a
            dict ``{term: weight}`` (weights >= 0). Unknown terms are dropped;
            a term repeated in a query counts once per occurrence. CSR rows
            (``indptr``, ``indices``, ``values``/``data``, e.g.
            ``SparseEncoder.encode_queries``) are weighted term ids.
        k : int, default 10
            Results per query, >= 1; capped at the number of documents, so
            the output has ``min(k, num_docs)`` columns. A query that
            matches fewer documents gets padded rows.
        algorithm : {"taat", "maxscore", "bmw", "exhaustive"}
            Term-at-a-time into a dense accumulator (the default: the
            fastest in docs/benchmarks.md), MaxScore, Block-Max WAND, or
            exhaustive document-at-a-time evaluation; all four return the
            same documents and scores.
        show_progress : bool
            A tqdm bar over query batches.

        Returns
        -------
        docs : numpy.ndarray of int64, shape (n_queries, min(k, num_docs))
            Document numbers, best first; -1 pads.
        scores : numpy.ndarray of float32, shape (n_queries, min(k, num_docs))
            Their scores; -inf pads.
        """
        # Capped at the corpus: k=10**9 on a small index must not allocate 10**9 slots.
        k = min(check_int(k, "k", "search"), max(self.num_docs, 1))
        algorithm = _check_algorithm(algorithm)
        if hasattr(queries, "indptr"):  # CSR rows of (term id, weight), e.g. SparseEncoder.encode_queries
            ids, offsets, weights = _csr_arrays(queries)
            return self._core.search_ids(ids, offsets, weights, k, algorithm)
        if isinstance(queries, (str, Mapping)):
            queries = [queries]
        queries = list(queries)
        if not queries:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        kind = _kind(queries[0], "queries[0]")
        _check_same_kind(queries, kind, "queries", 0)
        docs, scores, first = [], [], 0
        with _progress(len(queries), show_progress, "Search") as bar:
            for batch in _batches(queries):
                d, s = self._search_batch(batch, kind, k, algorithm, first)
                first += len(batch)
                docs.append(d)
                scores.append(s)
                bar.update(len(batch))
        if len(docs) == 1:
            return docs[0], scores[0]
        return np.concatenate(docs), np.concatenate(scores)

    def _search_batch(self, batch: list, kind: str, k: int, algorithm: str, first: int) -> Results:
        if kind == "text":
            return self._core.search_texts(batch, k, algorithm, first)
        if kind == "tokens":
            return self._core.search_token_lists(batch, k, algorithm, first)
        if kind == "ids":
            ids, offsets = _flatten_ids(batch)
            return self._core.search_ids(ids, offsets, None, k, algorithm)
        keys, offsets, weights = _flatten_weights(batch, "queries")
        if keys and all(isinstance(t, str) for t in keys):
            return self._core.search_weighted_tokens(keys, offsets, weights, k, algorithm)
        if all(isinstance(t, (int, np.integer)) for t in keys):
            return self._core.search_ids(np.asarray(keys, dtype=np.int64), offsets, weights, k, algorithm)
        raise TypeError("queries: dict keys must be all str or all int")

    def to_run(self, docs: np.ndarray, scores: np.ndarray, query_ids: Sequence[str]) -> Dict[str, Dict[str, float]]:
        """``{query id: {doc id: score}}`` from `search` results, for ``ragkernels.metrics.evaluate``.

        Raises
        ------
        ValueError
            The index has no doc ids, the shapes disagree, or `docs` holds a
            number outside ``[-1, num_docs)`` (-1 marks an empty slot).
        """
        if not self.doc_ids:
            raise ValueError("to_run needs the doc ids: build the index with ids=")
        docs, scores = np.asarray(docs), np.asarray(scores)
        if docs.ndim != 2 or docs.shape != scores.shape or docs.dtype.kind not in "iu":
            raise ValueError(f"to_run: docs and scores must be 2-D of one shape, docs integer; got docs "
                             f"{docs.dtype} {docs.shape} and scores {scores.dtype} {scores.shape}")
        if len(query_ids) != len(docs):
            raise ValueError(f"to_run: got {len(query_ids)} query ids for {len(docs)} result rows")
        bad = np.argwhere((docs < -1) | (docs >= self.num_docs))
        if len(bad):
            row, col = bad[0]
            raise ValueError(f"to_run: docs[{row}, {col}] = {docs[row, col]} is not a document of this index "
                             f"(expected -1 or 0..{self.num_docs - 1})")
        ids = self.doc_ids
        return {str(q): {ids[d]: float(s) for d, s in zip(row, srow) if d >= 0}
                for q, row, srow in zip(query_ids, docs.tolist(), scores.tolist())}


class BM25Index(_SparseIndex):
    """A BM25 inverted index with bm25s's scores.

    Examples
    --------
    >>> import ragkernels as rk
    >>> index = rk.sparse.BM25Index.build(["a cat sat", "dogs and cats", "a dog"], ids=["d1", "d2", "d3"])
    >>> docs, scores = index.search(["cats"], k=2)
    >>> [index.doc_ids[d] for d in docs[0]]
    ['d1', 'd2']
    """

    _scoring = "bm25"

    @classmethod
    def build(cls, documents: Iterable, *, ids: Optional[Sequence[str]] = None, method: str = "lucene",
              k1: float = 1.5, b: float = 0.75, delta: float = 0.5, analyzer: Optional[Analyzer] = None,
              show_progress: bool = False) -> "BM25Index":
        """Index documents, in parallel over all threads.

        Parameters
        ----------
        documents : iterable
            Texts (str), tokenized with `analyzer`; or token lists (list of
            str), indexed as given; or token ids (lists or 1-D int arrays,
            e.g. from a Hugging Face tokenizer), the id being the term. All
            documents must be of one kind. An iterator is consumed in batches.
        ids : sequence of str, optional
            External document ids, one per document (``doc_ids``, ``to_run``).
        method : {"robertson", "lucene", "atire", "bm25l", "bm25+"}
            bm25s's BM25 variants (Kamphuis et al., ECIR 2020); defaults,
            like k1, b and delta, are bm25s's.
        k1, b, delta : float
            k1 >= 0, 0 <= b <= 1; delta >= 0 is used by bm25l and bm25+.
        analyzer : ragkernels.text.Analyzer, optional
            For texts; default ``Analyzer()``, bm25s's default pipeline with the
            English stopwords and Snowball English stemmer. Saved with the index.
        show_progress : bool
            A tqdm bar over document batches.

        Returns
        -------
        BM25Index

        Raises
        ------
        TypeError
            A document of another kind than the first, or not a text, token list or id list.
        ValueError
            Bad parameters, ids of the wrong length, negative token ids.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if isinstance(documents, str):
            raise TypeError("documents must be an iterable of documents, not one str")
        builder, kind = None, None
        total = len(documents) if hasattr(documents, "__len__") else None
        with _progress(total, show_progress, "Index") as bar:
            for batch in _batches(documents):
                if builder is None:
                    kind = _kind(batch[0], "documents[0]")
                    if kind == "weights":
                        raise TypeError("documents: a BM25 index takes texts or tokens; use ImpactIndex for weights")
                    config = (analyzer or Analyzer()).config if kind == "text" else None
                    builder = _core.IndexBuilder.bm25(config, "ids" if kind == "ids" else "strings")
                start = builder.num_docs
                _check_same_kind(batch, kind, "documents", start)
                if kind == "text":
                    builder.add_texts(batch)
                elif kind == "tokens":
                    builder.add_token_lists(batch)
                else:
                    ids_flat, offsets = _flatten_ids(batch)
                    builder.add_ids(ids_flat, offsets, None)
                bar.update(len(batch))
        if builder is None:
            raise ValueError("documents is empty: an index needs at least one document")
        doc_ids = _check_ids(ids, builder.num_docs)
        params = [_check_real(value, name) for name, value in (("k1", k1), ("b", b), ("delta", delta))]
        return cls(builder.finish_bm25(method, *params, doc_ids))

    @property
    def method(self) -> str:
        """str: the BM25 variant."""
        return self._core.method

    @property
    def params(self) -> Dict[str, float]:
        """dict: ``k1``, ``b``, ``delta`` and the average document length."""
        c = self._core
        return {"k1": c.k1, "b": c.b, "delta": c.delta, "avg_doc_length": c.avg_doc_length}

    @property
    def analyzer(self) -> Optional[Analyzer]:
        """ragkernels.text.Analyzer or None: how texts were tokenized (None for token input)."""
        config = self._core.analyzer_config
        return None if config is None else Analyzer(**config)

    def __repr__(self) -> str:
        return (f"BM25Index(num_docs={self.num_docs}, num_terms={self.num_terms}, method={self.method!r}, "
                f"k1={self._core.k1}, b={self._core.b})")


class ImpactIndex(_SparseIndex):
    """A learned-sparse index of integer impacts, scored by weighted dot product.

    Document weights are quantized as Anserini and PISA store impacts:
    ``impact = max(1, round(w * (2**bits - 1) / max_w))`` over the corpus's
    largest weight ``max_w`` (``bits=None`` keeps integer weights as they
    are). A query term of weight ``q`` adds ``q * impact`` to a document's
    score, so scores are in impact units: ``max_w / (2**bits - 1)`` times the
    dot product of the unquantized vectors, up to quantization.

    Examples
    --------
    >>> import ragkernels as rk
    >>> index = rk.sparse.ImpactIndex.build([{"cat": 1.5, "sat": 0.5}, {"dog": 2.0, "cat": 0.25}])
    >>> docs, scores = index.search([{"cat": 1.0}], k=2)
    >>> docs.tolist(), scores.tolist()
    ([[0, 1]], [[191.0, 32.0]])
    """

    _scoring = "impact"

    @classmethod
    def build(cls, vectors, *, ids: Optional[Sequence[str]] = None, vocabulary: Optional[Sequence[str]] = None,
              bits: Optional[int] = 8, show_progress: bool = False) -> "ImpactIndex":
        """Index learned-sparse document vectors.

        Parameters
        ----------
        vectors : CSR rows or iterable of dict
            Either an object with ``indptr``, ``indices`` and ``values`` (or
            ``data``) arrays, one row per document with vocabulary ids as
            columns (``ragkernels.hf.SparseVectors``, ``scipy.sparse.csr_matrix``),
            or dicts ``{term: weight}`` keyed by str or by int id. Weights are
            converted to float32; they must be finite and >= 0 (0 is dropped).
        ids : sequence of str, optional
            External document ids.
        vocabulary : sequence of str, optional
            Names of the integer ids (e.g. ``SparseEncoder.vocabulary``), so
            that queries may be given as ``{token: weight}`` too.
        bits : int or None, default 8
            Quantization bits (1..16), or None for weights that already are
            integer impacts >= 1.
        show_progress : bool
            A tqdm bar over document batches.

        Returns
        -------
        ImpactIndex
        """
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16):
            raise ValueError(f"bits must be an int in 1..16 or None, got {bits!r}")
        if hasattr(vectors, "indptr"):
            return cls._build_csr(vectors, ids, vocabulary, bits)
        builder, str_keys = None, None
        total = len(vectors) if hasattr(vectors, "__len__") else None
        with _progress(total, show_progress, "Index") as bar:
            for batch in _batches(vectors):
                start = 0 if builder is None else builder.num_docs
                _check_same_kind(batch, "weights", "vectors", start)
                keys, offsets, weights = _flatten_weights(batch, "vectors")
                if builder is None and keys:
                    str_keys = isinstance(keys[0], str)
                    builder = _core.IndexBuilder.impact("strings" if str_keys else "ids")
                elif builder is None:
                    continue
                if str_keys:
                    if not all(isinstance(t, str) for t in keys):
                        raise TypeError("vectors: dict keys must be all str or all int")
                    builder.add_tokens(keys, offsets, weights)
                else:
                    builder.add_ids(np.asarray(keys, dtype=np.int64), offsets, weights)
                bar.update(len(batch))
        if builder is None:
            raise ValueError("vectors holds no weight: an index needs at least one term")
        doc_ids = _check_ids(ids, builder.num_docs)
        names = [] if vocabulary is None or str_keys else list(vocabulary)
        return cls(builder.finish_impact(0 if bits is None else bits, doc_ids, 0, names))

    @classmethod
    def _build_csr(cls, vectors, ids, vocabulary, bits) -> "ImpactIndex":
        indices, indptr, weights = _csr_arrays(vectors)
        num_terms = int(getattr(vectors, "vocab_size", 0) or (vectors.shape[1] if hasattr(vectors, "shape") else 0))
        builder = _core.IndexBuilder.impact("ids")
        builder.add_ids(indices, indptr, weights)
        doc_ids = _check_ids(ids, builder.num_docs)
        names = [] if vocabulary is None else list(vocabulary)
        return cls(builder.finish_impact(0 if bits is None else bits, doc_ids, num_terms, names))

    @property
    def bits(self) -> Optional[int]:
        """int or None: quantization bits (None: integer impacts given)."""
        return self._core.impact_bits or None

    @property
    def scale(self) -> float:
        """float: impact = round(weight * scale)."""
        return self._core.impact_scale

    def __repr__(self) -> str:
        return f"ImpactIndex(num_docs={self.num_docs}, num_terms={self.num_terms}, bits={self.bits})"
