"""SPLADE sparse vectors from any Hugging Face masked language model.

Documents always go through the model (SPLADE-max pooling of its MLM
logits). Queries either do too, or, given a ``query_weights`` table, are
*inference-free*: tokenized and looked up, as the OpenSearch ``doc-*``
neural sparse models do. torch and transformers are imported only when a
model is loaded or run, never by ``import ragkernels``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ragkernels._checks import Texts, as_texts, check_positive_int

__all__ = ["SparseEncoder", "SparseVectors"]

_ENCODER_OPTIONS = ("max_length", "batch_size", "device", "query_weights", "threshold")


class SparseVectors(NamedTuple):
    """Sparse rows in CSR form, one per text.

    The exchange type between encoders and ``ragkernels.sparse.ImpactIndex``.

    Attributes
    ----------
    indptr : ndarray of int64, shape (n + 1,)
        Row ``i`` is ``indices[indptr[i]:indptr[i + 1]]``.
    indices : ndarray of int32, shape (nnz,)
        Vocabulary ids, strictly ascending within each row.
    values : ndarray of float32, shape (nnz,)
        Weights, all > 0.
    vocab_size : int
        Width of every row; all ids are below it.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    vocab_size: int

    def to_dicts(self, vocabulary: Optional[Sequence[str]] = None) -> List[Dict[Any, float]]:
        """Return each row as a ``{key: weight}`` dict.

        Parameters
        ----------
        vocabulary : sequence of str, optional
            Token string per id (e.g. ``SparseEncoder.vocabulary``); keys
            are int ids when omitted.

        Returns
        -------
        list of dict
            One dict per row, keys in ascending id order.

        Examples
        --------
        >>> rows = SparseVectors(np.array([0, 2, 3]), np.array([0, 2, 2], np.int32),
        ...                      np.array([0.5, 2.0, 1.0], np.float32), 3)
        >>> rows.to_dicts(["a", "b", "c"])
        [{'a': 0.5, 'c': 2.0}, {'c': 1.0}]
        """
        ids = self.indices.tolist()
        keys = ids if vocabulary is None else [vocabulary[j] for j in ids]
        weights = self.values.tolist()
        bounds = self.indptr.tolist()
        return [dict(zip(keys[a:b], weights[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]


class SparseEncoder:
    """Encode texts as SPLADE vectors with a masked language model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Any ``*ForMaskedLM`` model; put in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer; at most ``model.config.vocab_size`` tokens.
    max_length : int, default 256
        Tokens per text; longer texts are truncated.
    batch_size : int, default 32
        Texts per forward pass.
    device : str or torch.device, optional
        Moves the model there; by default it stays where it is.
    query_weights : array_like of float, shape (vocab_size,), or dict, optional
        Weight per vocabulary id, or ``{token: weight}`` (absent tokens
        weigh 0). When given, queries are encoded without the model.
        Stored as float32; must be finite and >= 0.
    threshold : float, default 0.0
        Weights ``<= threshold`` are dropped from every output row.

    Attributes
    ----------
    vocabulary : list of str
        Token string per id; ids the tokenizer lacks are named ``"[<id>]"``.
    vocab_size : int
        ``model.config.vocab_size``.

    Raises
    ------
    ValueError
        An option out of range; `query_weights` of the wrong shape, NaN,
        inf or negative, or naming a token the tokenizer lacks.

    Notes
    -----
    SPLADE-max (Formal et al., "SPLADE v2", arXiv:2109.10086): for logits
    ``x[i, j]`` of position ``i`` and vocabulary id ``j``,

        w_j = max over non-padding i of log(1 + relu(x[i, j])).

    Inference-free queries (Geng et al., arXiv:2411.04403; the OpenSearch
    ``opensearch-neural-sparse-encoding-doc-*`` models) weigh each distinct
    token ``j`` of the query by ``query_weights[j]``.
    """

    def __init__(self, model, tokenizer, *, max_length: int = 256, batch_size: int = 32,
                 device=None, query_weights=None, threshold: float = 0.0):
        check_positive_int(max_length, "max_length", "SparseEncoder")
        check_positive_int(batch_size, "batch_size", "SparseEncoder")
        if not (isinstance(threshold, numbers.Real) and math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"SparseEncoder: threshold must be finite and >= 0, got {threshold!r}")
        self.vocab_size = int(model.config.vocab_size)
        if len(tokenizer) > self.vocab_size:
            raise ValueError(f"SparseEncoder: tokenizer has {len(tokenizer)} tokens, more than the "
                             f"model's vocab_size {self.vocab_size}")
        self.model = (model if device is None else model.to(device)).eval()
        self.tokenizer = tokenizer
        self.max_length, self.batch_size, self.threshold = max_length, batch_size, float(threshold)
        token_ids = tokenizer.get_vocab()
        self.vocabulary = [f"[{j}]" for j in range(self.vocab_size)]
        for token, j in token_ids.items():
            self.vocabulary[j] = token
        self.query_weights = None if query_weights is None else _weight_table(
            query_weights, token_ids, self.vocab_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs) -> "SparseEncoder":
        """Load a masked LM and its tokenizer by hub name or local path.

        Parameters
        ----------
        name_or_path : str
            Passed to ``AutoModelForMaskedLM`` and ``AutoTokenizer``.
        **kwargs
            ``max_length``, ``batch_size``, ``device``, ``query_weights``
            and ``threshold`` go to the constructor; the rest
            (``local_files_only``, ``revision``, ``cache_dir``, ...) to both
            ``from_pretrained`` calls.

        Returns
        -------
        SparseEncoder
        """
        try:
            from transformers import AutoModelForMaskedLM, AutoTokenizer
        except ImportError as error:
            raise ImportError("SparseEncoder.from_pretrained needs torch and transformers: "
                              "pip install 'ragkernels[hf]'") from error
        options = {name: kwargs.pop(name) for name in _ENCODER_OPTIONS if name in kwargs}
        model = AutoModelForMaskedLM.from_pretrained(name_or_path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        return cls(model, tokenizer, **options)

    def encode_documents(self, texts: Texts, *, show_progress: bool = False) -> SparseVectors:
        """Encode documents with SPLADE-max pooling.

        Parameters
        ----------
        texts : str or sequence of str
            One str gives one row.
        show_progress : bool, default False
            Show a tqdm bar over texts.

        Returns
        -------
        SparseVectors
            One row per text, in input order.

        Raises
        ------
        TypeError
            `texts` is not a str or a sequence of str.

        Notes
        -----
        ``w_j = max_i log(1 + relu(logits[i, j]))`` over the non-padding
        positions ``i``, in float32 under ``torch.inference_mode``. Texts
        are batched in order of token length (less padding) and the rows
        put back in input order; entries with ``w_j <= threshold`` dropped.
        """
        return self._splade(as_texts(texts, "encode_documents"), show_progress)

    def encode_queries(self, texts: Texts, *, show_progress: bool = False) -> SparseVectors:
        """Encode queries, by table look-up when `query_weights` is set.

        Parameters
        ----------
        texts : str or sequence of str
        show_progress : bool, default False

        Returns
        -------
        SparseVectors
            One row per text, in input order.

        Raises
        ------
        TypeError
            `texts` is not a str or a sequence of str.

        Notes
        -----
        With `query_weights` (no model run): the query is tokenized
        without special tokens and truncated to `max_length`; each
        *distinct* token id ``j`` gets ``w_j = query_weights[j]``. A token
        repeated in the query counts once, as in the OpenSearch
        inference-free models (a 0/1 token vector times the table).
        Special tokens, ``[UNK]`` included, and ``w_j <= threshold`` are
        dropped, so an empty query gives an empty row.

        Without `query_weights`: the same SPLADE-max encoding as
        `encode_documents`.
        """
        texts = as_texts(texts, "encode_queries")
        if self.query_weights is None:
            return self._splade(texts, show_progress)
        return self._look_up(texts, show_progress)

    @staticmethod
    def idf_weights(documents: SparseVectors) -> np.ndarray:
        """Build an inference-free query table from document frequencies.

        Parameters
        ----------
        documents : SparseVectors
            Encoded documents (ids distinct within each row).

        Returns
        -------
        ndarray of float32, shape (vocab_size,)
            ``idf_j = log(N / df_j)``, where ``N`` is the number of rows and
            ``df_j`` the number of rows containing id ``j``; 0 where
            ``df_j = 0``. An id in every document gets 0 and so never
            appears in a query.

        Raises
        ------
        TypeError
            `documents` is not a SparseVectors.

        Examples
        --------
        >>> docs = SparseVectors(np.array([0, 2, 3]), np.array([0, 1, 1], np.int32),
        ...                      np.ones(3, np.float32), 3)
        >>> SparseEncoder.idf_weights(docs)  # log(2 / 1), log(2 / 2), unseen
        array([0.6931472, 0.       , 0.       ], dtype=float32)
        """
        if not isinstance(documents, SparseVectors):
            raise TypeError("idf_weights: documents must be SparseVectors, "
                            f"got {type(documents).__name__}")
        n_docs = len(documents.indptr) - 1
        doc_freq = np.bincount(documents.indices, minlength=documents.vocab_size)
        idf = np.zeros(documents.vocab_size, np.float64)
        seen = doc_freq > 0
        idf[seen] = np.log(n_docs / doc_freq[seen])
        return idf.astype(np.float32)

    def _splade(self, texts: List[str], show_progress: bool) -> SparseVectors:
        import torch
        from tqdm.auto import tqdm

        lengths = [len(ids) for ids in self._tokenize(texts)["input_ids"]] if texts else []
        order = np.argsort(np.asarray(lengths, np.int64), kind="stable")
        rows: List[Tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        bar = tqdm(total=len(texts), disable=not show_progress, unit="text")
        with torch.inference_mode(), bar:
            for start in range(0, len(texts), self.batch_size):
                batch = order[start:start + self.batch_size].tolist()
                for i, weights in zip(batch, self._splade_batch([texts[i] for i in batch])):
                    kept = np.flatnonzero(weights > self.threshold)
                    rows[i] = (kept, weights[kept])
                bar.update(len(batch))
        return _from_rows(rows, self.vocab_size)

    def _splade_batch(self, texts: List[str]) -> np.ndarray:
        """Dense SPLADE-max weights, float32 (len(texts), vocab_size)."""
        device = next(self.model.parameters()).device
        inputs = self._tokenize(texts, padding=True, return_tensors="pt").to(device)
        logits = self.model(**inputs).logits.float()
        padding = inputs["attention_mask"].unsqueeze(-1) == 0
        # log(1 + relu(x)) >= 0, so zeroing padding positions cannot raise the
        # max; in place because logits are (batch, length, vocab) large.
        weights = logits.relu_().log1p_().masked_fill_(padding, 0.0).amax(dim=1)
        return weights.cpu().numpy()

    def _look_up(self, texts: List[str], show_progress: bool) -> SparseVectors:
        from tqdm.auto import tqdm

        special = np.asarray(self.tokenizer.all_special_ids, np.int64)
        encoded = self._tokenize(texts, add_special_tokens=False)["input_ids"] if texts else []
        rows = []
        for ids in tqdm(encoded, disable=not show_progress, unit="query"):
            distinct = np.setdiff1d(np.asarray(ids, np.int64), special)  # sorted, unique
            weights = self.query_weights[distinct]
            kept = weights > self.threshold
            rows.append((distinct[kept], weights[kept]))
        return _from_rows(rows, self.vocab_size)

    def _tokenize(self, texts: List[str], **options):
        return self.tokenizer(texts, truncation=True, max_length=self.max_length, **options)


def _weight_table(query_weights, token_ids: Mapping[str, int], vocab_size: int) -> np.ndarray:
    """Validate `query_weights` and return it as float32 (vocab_size,)."""
    if isinstance(query_weights, Mapping):
        table = np.zeros(vocab_size, np.float64)
        for token, weight in query_weights.items():
            if token not in token_ids:
                raise ValueError(f"SparseEncoder: query_weights token {token!r} is not in "
                                 "the tokenizer's vocabulary")
            table[token_ids[token]] = weight
    else:
        table = np.asarray(query_weights, dtype=np.float64)
        if table.shape != (vocab_size,):
            raise ValueError("SparseEncoder: query_weights must have shape (vocab_size,) = "
                             f"({vocab_size},), got {table.shape}")
    if not np.isfinite(table).all():
        raise ValueError("SparseEncoder: query_weights must be finite, got NaN or inf at id "
                         f"{int(np.flatnonzero(~np.isfinite(table))[0])}")
    if (table < 0).any():
        raise ValueError(f"SparseEncoder: query_weights must be >= 0, got {table.min()} "
                         f"at id {int(table.argmin())}")
    return table.astype(np.float32)


def _from_rows(rows: List[Tuple[np.ndarray, np.ndarray]], vocab_size: int) -> SparseVectors:
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(np.asarray([len(ids) for ids, _ in rows], np.int64), out=indptr[1:])
    indices = np.concatenate([np.empty(0, np.int32)] + [ids.astype(np.int32) for ids, _ in rows])
    values = np.concatenate([np.empty(0, np.float32)] + [w.astype(np.float32) for _, w in rows])
    return SparseVectors(indptr, indices, values, vocab_size)
