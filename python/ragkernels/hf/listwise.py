"""Listwise passage reranking with a causal language model.

Two ways to read a ranking out of one prompt that lists a window of
passages, each behind a label (``[A] ...``, ``[B] ...``):

* ``method="logits"`` (FIRST: Reddy et al., "FIRST: Faster Improved
  Listwise Reranking with Single Token Decoding", arXiv:2406.15657): one
  forward pass; the logits of the label tokens at the first answer
  position order the window.
* ``method="generate"`` (RankGPT: Sun et al., EMNLP 2023; RankZephyr): the
  model writes the permutation (``[B] > [A] > [C]``), which is parsed by
  `parse_permutation`.

Lists longer than a window are reranked by windows slid from the back to
the front (``ragkernels.rerank.sliding_windows``); a batch of queries
advances window by window, one batched model call per step, the
bookkeeping done by ``ragkernels.rerank.sliding_window_order``. torch and
transformers are imported only when a model runs, never by ``import
ragkernels``.
"""
from __future__ import annotations

import inspect
import re
import string
from collections.abc import Iterable, Mapping
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ragkernels._checks import check_positive_int

__all__ = ["ListwiseReranker", "parse_permutation", "DEFAULT_LABELS", "DEFAULT_SYSTEM_PROMPT"]

#: A..Z then a..z: FIRST's alphabetical identifiers.
DEFAULT_LABELS = tuple(string.ascii_uppercase + string.ascii_lowercase)
#: RankZephyr's and FIRST's system message.
DEFAULT_SYSTEM_PROMPT = ("You are RankLLM, an intelligent assistant that can rank passages based on "
                         "their relevancy to the query.")
_METHODS = ("logits", "generate")
_ALNUM_RUN = re.compile(r"[^\W_]+")


def parse_permutation(text: str, labels: Sequence[str], *, repair: bool = False) -> np.ndarray:
    """Parse a generated ranking such as ``"[2] > [1] > [3]"``.

    Parameters
    ----------
    text : str
        The model's answer: labels separated by ``>``, each optionally in
        square brackets; whitespace around items is ignored.
    labels : sequence of str
        The labels of the window, in prompt order (label i is passage i).
    repair : bool, default False
        False: the answer must list every label exactly once and nothing
        else. True: RankGPT's repair (``receive_permutation``): take the
        labels in the order they occur as alphanumeric runs of `text`,
        drop repeats and unknown words, append the missing labels in
        prompt order. Never raises on a malformed answer.

    Returns
    -------
    ndarray of int64, shape (len(labels),)
        Window positions, best first.

    Raises
    ------
    ValueError
        Strict mode: no label at all, an unknown item, a repeated label,
        or missing labels; the message names them.

    Examples
    --------
    >>> parse_permutation("[2] > [1] > [3]", ["1", "2", "3"])
    array([1, 0, 2])
    >>> parse_permutation("B > C > A", "ABC")
    array([1, 2, 0])
    >>> parse_permutation("[C] > [C] > junk", "ABC", repair=True)
    array([2, 0, 1])
    """
    labels = [str(label) for label in labels]
    position = {label: i for i, label in enumerate(labels)}
    if repair:
        found = [position[w] for w in _ALNUM_RUN.findall(text) if w in position]
        ranked = list(dict.fromkeys(found))
        seen = set(ranked)
        return np.array(ranked + [i for i in range(len(labels)) if i not in seen], np.int64)
    items = [_strip_item(item) for item in text.split(">")]
    if not any(item in position for item in items):
        raise ValueError(f"parse_permutation: no labels in the output {text!r}; expected e.g. "
                         f"{' > '.join(f'[{x}]' for x in labels[:3])}")
    first_at = {}
    for i, item in enumerate(items):
        if item not in position:
            raise ValueError(f"parse_permutation: unknown label {item!r} (item {i}) in {text!r}; "
                             f"labels are {labels}")
        if item in first_at:
            raise ValueError(f"parse_permutation: label {item!r} repeats (items {first_at[item]} "
                             f"and {i}) in {text!r}")
        first_at[item] = i
    missing = [label for label in labels if label not in first_at]
    if missing:
        raise ValueError(f"parse_permutation: labels {missing} are missing from {text!r}")
    return np.array([position[item] for item in items], np.int64)


def _strip_item(item: str) -> str:
    item = item.strip()
    if item.startswith("[") and item.endswith("]"):
        item = item[1:-1].strip()
    return item


class ListwiseReranker:
    """Rerank passages listwise with a causal LM, FIRST- or RankGPT-style.

    Parameters
    ----------
    causal_lm : transformers.PreTrainedModel
        A model with a language-modelling head that can generate (e.g.
        ``LlamaForCausalLM``); put in eval mode. It stays on its device,
        and inputs are sent there.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer. It is not modified: prompts are left-padded here,
        with ``pad_token_id``, else ``eos_token_id``, else 0 (padding is
        masked out, so the id does not matter).
    labels : sequence of str, optional
        Passage identifiers in prompt order, alphanumeric and distinct.
        Default `DEFAULT_LABELS` (A..Z, a..z). For ``method="logits"``
        each label used must be one token (see Notes).
    window : int, default 20
        Passages per prompt; at most ``len(labels)``.
    stride : int, default 10
        Shift between windows, ``1 <= stride <= window``.
    method : {"logits", "generate"}, default "logits"
        Default of `rerank`.
    batch_size : int, default 8
        Prompts per forward pass (or per ``generate`` call).
    max_passage_tokens : int or None, default 100
        Each passage is cut to this many tokens before it enters a
        prompt; None keeps passages whole.
    system_prompt : str, default DEFAULT_SYSTEM_PROMPT
    answer_prefix : str, default "["
        Text appended after the prompt, as the start of the answer: with
        ``"["`` the next token is the first label, as FIRST reads it.
    use_chat_template : bool, optional
        Default: whether the tokenizer has a chat template.

    Attributes
    ----------
    labels : tuple of str
    device : torch.device
        Where the model is.

    Raises
    ------
    TypeError
        `causal_lm` has no LM head or cannot generate (e.g. a
        ``BertModel``), or `tokenizer` is not a tokenizer.
    ValueError
        An option out of range, invalid labels, or (``method="logits"``)
        a label of the first `window` that is not a single token.

    Notes
    -----
    The prompt is RankZephyr's and FIRST's: a system message, then the
    query, the window's passages as ``[label] text`` lines (whitespace
    runs, newlines included, collapsed to one space), the query again
    and the instruction to answer ``[] > []``. With a chat template
    it is rendered by ``apply_chat_template(..., add_generation_prompt=
    True)`` (the system message folded into the user turn when the
    template refuses a system role) and tokenized without special tokens;
    without one it is ``system + "\\n\\n" + user + "\\nRanking: "`` and
    tokenized with them. `answer_prefix` follows in both cases.

    The token of label ``x`` is the token that follows the prefix's tokens
    in the encoding of ``answer_prefix + x`` (so sentencepiece's
    word-initial ``"▁A"`` is not taken for the ``"A"`` after ``"["``),
    else the encoding of ``x`` alone; either must be exactly one token,
    and the tokens of distinct labels must differ.

    ``method="logits"`` scores label i of a window by the logit of its
    token at the last prompt position; `ragkernels.rerank.
    sliding_window_order` sorts by it (stable: ties keep the current
    order). ``method="generate"`` decodes greedily up to the length of a
    full answer and parses it with `parse_permutation`. Batches are
    left-padded with an attention mask and matching position ids, so a
    prompt's result does not depend on the other prompts of its batch
    beyond float rounding.

    Examples
    --------
    >>> lw = ListwiseReranker(model, tokenizer)  # doctest: +SKIP
    >>> lw.rerank("what do cats eat", passages, window=20, stride=10)  # doctest: +SKIP
    array([3, 0, 7, ...])
    """

    def __init__(self, causal_lm, tokenizer, *, labels: Optional[Sequence[str]] = None,
                 window: int = 20, stride: int = 10, method: str = "logits", batch_size: int = 8,
                 max_passage_tokens: Optional[int] = 100,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, answer_prefix: str = "[",
                 use_chat_template: Optional[bool] = None):
        _check_causal_lm(causal_lm)
        if not callable(tokenizer) or not hasattr(tokenizer, "encode"):
            raise TypeError("ListwiseReranker: tokenizer must be a transformers tokenizer, got "
                            f"{type(tokenizer).__name__}")
        self.labels = _check_labels(DEFAULT_LABELS if labels is None else labels)
        for name, value in (("window", window), ("stride", stride), ("batch_size", batch_size)):
            check_positive_int(value, name, "ListwiseReranker")
        if max_passage_tokens is not None:
            check_positive_int(max_passage_tokens, "max_passage_tokens", "ListwiseReranker")
        _check_method(method)
        for name, value in (("system_prompt", system_prompt), ("answer_prefix", answer_prefix)):
            if not isinstance(value, str):
                raise TypeError(f"ListwiseReranker: {name} must be str, got {type(value).__name__}")
        self.model = causal_lm.eval()
        self.tokenizer = tokenizer
        self.window, self.stride, self.method = window, stride, method
        self.batch_size, self.max_passage_tokens = batch_size, max_passage_tokens
        self.system_prompt, self.answer_prefix = system_prompt, answer_prefix
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.use_chat_template = has_template if use_chat_template is None else bool(use_chat_template)
        if self.use_chat_template and not has_template:
            raise ValueError("ListwiseReranker: use_chat_template=True but the tokenizer has no chat template")
        self._label_id_cache: dict = {}
        self._check_window(window, stride)
        if method == "logits":
            self.label_token_ids(window)

    @property
    def device(self):
        """The torch device of the model's parameters (inputs go there)."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return (f"ListwiseReranker({type(self.model).__name__}, window={self.window}, "
                f"stride={self.stride}, method={self.method!r}, device='{self.device}')")

    # ---- prompts ------------------------------------------------------------------------------

    def prompt(self, query: str, passages: Sequence[str]) -> str:
        """The text fed to the model for one window, answer prefix included.

        Parameters
        ----------
        query : str
        passages : sequence of str
            The window's passages in prompt order (already truncated:
            this method does not cut them).

        Returns
        -------
        str
        """
        n = len(passages)
        if n > len(self.labels):
            raise ValueError(f"ListwiseReranker: {n} passages in one prompt but only "
                             f"{len(self.labels)} labels")
        labels = self.labels[:n]
        example = " > ".join(f"[{x}]" for x in labels[:2])
        listed = "".join(f"[{x}] {' '.join(p.split())}\n" for x, p in zip(labels, passages))
        user = (f"I will provide you with {n} passages, each indicated by an identifier []. "
                f"Rank the passages based on their relevance to the search query: {query}.\n\n"
                f"{listed}\nSearch Query: {query}.\nRank the {n} passages above based on their "
                "relevance to the search query. All the passages should be included and listed "
                "using identifiers, in descending order of relevance. The output format should be "
                f"[] > [], e.g., {example}. Only respond with the ranking results, do not say any "
                "word or explain.")
        if not self.use_chat_template:
            return f"{self.system_prompt}\n\n{user}\nRanking: {self.answer_prefix}"
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]
        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # templates without a system role raise (jinja2 TemplateError)
            folded = [{"role": "user", "content": f"{self.system_prompt}\n\n{user}"}]
            text = self.tokenizer.apply_chat_template(folded, tokenize=False, add_generation_prompt=True)
        return text + self.answer_prefix

    def label_token_ids(self, n: int) -> np.ndarray:
        """Token ids of the first `n` labels (see Notes of the class).

        Returns
        -------
        ndarray of int64, shape (n,)

        Raises
        ------
        ValueError
            A label is not one token, or two labels share a token.
        """
        if n > len(self.labels):
            raise ValueError(f"ListwiseReranker: window {n} exceeds the {len(self.labels)} labels")
        ids = [self._label_id(label) for label in self.labels[:n]]
        if len(set(ids)) < len(ids):
            first = {}
            for label, token in zip(self.labels, ids):
                if token in first:
                    raise ValueError(f"ListwiseReranker: labels {first[token]!r} and {label!r} encode "
                                     f"to the same token {token}; pass distinct labels")
                first[token] = label
        return np.array(ids, np.int64)

    def _label_id(self, label: str) -> int:
        if label not in self._label_id_cache:
            encode = lambda text: list(self.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
            prefix, joined = encode(self.answer_prefix), encode(self.answer_prefix + label)
            if joined[:len(prefix)] == prefix and len(joined) == len(prefix) + 1:
                self._label_id_cache[label] = int(joined[-1])
            else:
                alone = encode(label)
                if len(alone) != 1:
                    raise ValueError(
                        f"ListwiseReranker: label {label!r} encodes to {len(alone)} tokens {alone} with "
                        "this tokenizer; method='logits' needs single-token labels (pass labels=...)")
                self._label_id_cache[label] = int(alone[0])
        return self._label_id_cache[label]

    # ---- reranking ----------------------------------------------------------------------------

    def rerank(self, query: str, passages, *, window: Optional[int] = None,
               stride: Optional[int] = None, method: Optional[str] = None, repair: bool = False,
               show_progress: bool = False) -> np.ndarray:
        """Rerank one query's passages.

        Parameters
        ----------
        query : str
        passages : sequence of str (or BEIR mappings / (title, text) pairs)
            First-stage order: it breaks ties and decides the windows.
        window, stride : int, optional
            Override the constructor's.
        method : {"logits", "generate"}, optional
            Overrides the constructor's.
        repair : bool, default False
            ``method="generate"``: repair malformed answers the RankGPT
            way instead of raising (`parse_permutation`).
        show_progress : bool, default False
            A tqdm bar over windows.

        Returns
        -------
        ndarray of int64, shape (len(passages),)
            Indices into `passages`, best first.

        Raises
        ------
        ValueError
            Bad options; a malformed generated answer when not `repair`.
        """
        return self.rerank_batch([query], [passages], window=window, stride=stride, method=method,
                                 repair=repair, show_progress=show_progress)[0]

    def rerank_batch(self, queries: Sequence[str], passages: Sequence, *, window: Optional[int] = None,
                     stride: Optional[int] = None, method: Optional[str] = None, repair: bool = False,
                     show_progress: bool = False) -> List[np.ndarray]:
        """Rerank several queries together, one batched model call per step.

        Parameters
        ----------
        queries : sequence of str
        passages : sequence of sequences of str
            ``passages[q]`` are query q's candidates; lengths may differ.
        window, stride, method, repair, show_progress
            As in `rerank`.

        Returns
        -------
        list of ndarray of int64
            Per query, indices into ``passages[q]``, best first.

        Raises
        ------
        TypeError
            A query is not str, or a passage list holds something other
            than passages.
        ValueError
            Bad options, different numbers of queries and lists, or
            (``method="generate"``, not `repair`) a malformed answer.
        """
        from ragkernels.rerank import sliding_window_order, sliding_windows

        window = self.window if window is None else window
        stride = self.stride if stride is None else stride
        method = self.method if method is None else method
        _check_method(method)
        self._check_window(window, stride)
        queries, lists = self._check_batch(queries, passages)
        lengths = [len(p) for p in lists]
        orders = np.full((len(lists), max(lengths, default=0)), -1, np.int64)
        for q, n in enumerate(lengths):
            orders[q, :n] = np.arange(n)
        schedule = sliding_windows(np.array(lengths, np.int64), window, stride)
        from tqdm.auto import tqdm

        with tqdm(total=int((schedule[..., 1] > schedule[..., 0]).sum()), unit="window",
                  disable=not show_progress) as bar:
            for step in schedule:
                active = np.flatnonzero(step[:, 1] > step[:, 0])
                windows = [[lists[q][i] for i in orders[q, step[q, 0]:step[q, 1]]] for q in active]
                scores = np.full((len(lists), window), np.nan, np.float32)
                found = self.window_scores([queries[q] for q in active], windows, method=method,
                                           repair=repair, truncate=False)
                for q, row in zip(active, found):
                    scores[q, :len(row)] = row
                orders = sliding_window_order(orders, step, scores)
                bar.update(len(active))
        return [orders[q, :n].copy() for q, n in enumerate(lengths)]

    def window_scores(self, queries, windows, *, method: Optional[str] = None, repair: bool = False,
                      truncate: bool = True) -> List[np.ndarray]:
        """Scores of the passages of one prompt per (query, window).

        Parameters
        ----------
        queries : str or sequence of str
        windows : sequence of str, or sequence of sequences of str
            One window per query (a single query takes one window).
        method : {"logits", "generate"}, optional
        repair : bool, default False
        truncate : bool, default True
            Cut passages to ``max_passage_tokens`` first.

        Returns
        -------
        ndarray of float32, or list of them
            Per window, one score per passage, higher is better:
            label-token logits (``"logits"``), or ``w - rank`` in the
            parsed permutation (``"generate"``).

        Raises
        ------
        TypeError, ValueError
            As `rerank_batch`; also a window longer than the labels.
        """
        single = isinstance(queries, str)
        queries, windows = ([queries], [windows]) if single else (list(queries), list(windows))
        method = self.method if method is None else method
        _check_method(method)
        if len(queries) != len(windows):
            raise ValueError(f"ListwiseReranker: {len(queries)} queries but {len(windows)} windows")
        windows = [_as_passages(w, f"windows[{i}]") for i, w in enumerate(windows)]
        if truncate:
            windows = [self._truncate(w) for w in windows]
        prompts = [self.prompt(q, w) for q, w in zip(queries, windows)]
        widths = [len(w) for w in windows]
        score = self._logit_scores if method == "logits" else self._generated_scores
        out = score(prompts, widths, repair) if prompts else []
        return out[0] if single else out

    def generate(self, query: str, passages: Sequence[str]) -> str:
        """The model's raw answer for one window (answer prefix included),
        as ``method="generate"`` parses it."""
        passages = self._truncate(_as_passages(passages, "passages"))
        return self._generate([self.prompt(query, passages)], [len(passages)])[0]

    # ---- model calls --------------------------------------------------------------------------

    def _logit_scores(self, prompts: List[str], widths: List[int], repair: bool) -> List[np.ndarray]:
        import torch

        ids = torch.as_tensor(self.label_token_ids(max(widths)), device=self.device)
        out: List[Optional[np.ndarray]] = [None] * len(prompts)
        keep = _logits_to_keep_argument(self.model)
        takes_positions = "position_ids" in inspect.signature(self.model.forward).parameters
        for rows, batch in self._batches(prompts):
            if not takes_positions:
                batch.pop("position_ids")
            with torch.inference_mode():
                logits = self.model(**batch, **keep).logits[:, -1, :]
                picked = logits.index_select(-1, ids).float().cpu().numpy()
            for row, values in zip(rows, picked):
                out[row] = values[:widths[row]].copy()
        return out

    def _generated_scores(self, prompts: List[str], widths: List[int], repair: bool) -> List[np.ndarray]:
        texts = self._generate(prompts, widths)
        out = []
        for text, w in zip(texts, widths):
            try:
                perm = parse_permutation(text, self.labels[:w], repair=repair)
            except ValueError as error:
                raise ValueError(f"ListwiseReranker: malformed generated ranking (pass repair=True to "
                                 f"repair it RankGPT's way): {error}") from error
            scores = np.empty(w, np.float32)
            scores[perm] = np.arange(w, 0, -1, dtype=np.float32)
            out.append(scores)
        return out

    def _generate(self, prompts: List[str], widths: List[int]) -> List[str]:
        import torch

        texts: List[Optional[str]] = [None] * len(prompts)
        stop = _eos_ids(self.model, self.tokenizer)
        for rows, batch in self._batches(prompts):
            longest = max(widths[r] for r in rows)
            answer = " > ".join(f"[{x}]" for x in self.labels[:longest])
            budget = len(self.tokenizer.encode(answer, add_special_tokens=False)) + 2
            batch.pop("position_ids", None)  # generate derives them from the mask
            with torch.inference_mode():
                out = self.model.generate(**batch, max_new_tokens=budget, do_sample=False,
                                          pad_token_id=self._pad_id())
            new = out[:, batch["input_ids"].shape[1]:].cpu().tolist()
            for row, tokens in zip(rows, new):
                cut = next((i for i, t in enumerate(tokens) if t in stop), len(tokens))
                texts[row] = self.answer_prefix + self.tokenizer.decode(tokens[:cut], skip_special_tokens=True)
        return texts

    def _batches(self, prompts: List[str]):
        """(rows, model inputs) per batch, longest prompts first, left-padded."""
        import torch

        special = not self.use_chat_template
        encoded = self.tokenizer(prompts, add_special_tokens=special)["input_ids"]
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        pad = self._pad_id()
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encoded[r]) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, width - len(encoded[r]):] = torch.as_tensor(encoded[r])
                mask[i, width - len(encoded[r]):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            batch = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
            yield rows, {k: v.to(self.device) for k, v in batch.items()}

    def _pad_id(self) -> int:
        for token in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if token is not None:
                return int(token)
        return 0

    def _truncate(self, passages: List[str]) -> List[str]:
        if self.max_passage_tokens is None or not passages:
            return passages
        tokens = self.tokenizer(passages, add_special_tokens=False)["input_ids"]
        return [p if len(t) <= self.max_passage_tokens else
                self.tokenizer.decode(t[:self.max_passage_tokens], skip_special_tokens=True)
                for p, t in zip(passages, tokens)]

    # ---- checks -------------------------------------------------------------------------------

    def _check_window(self, window, stride) -> None:
        check_positive_int(window, "window", "ListwiseReranker")
        check_positive_int(stride, "stride", "ListwiseReranker")
        if stride > window:
            raise ValueError(f"ListwiseReranker: stride ({stride}) must be <= window ({window})")
        if window > len(self.labels):
            raise ValueError(f"ListwiseReranker: window {window} exceeds the {len(self.labels)} labels; "
                             "pass more labels or a smaller window")

    def _check_batch(self, queries, passages) -> Tuple[List[str], List[List[str]]]:
        if isinstance(queries, str) or not isinstance(queries, Iterable):
            raise TypeError("ListwiseReranker: queries must be a sequence of str")
        queries = list(queries)
        for i, q in enumerate(queries):
            if not isinstance(q, str):
                raise TypeError(f"ListwiseReranker: queries[{i}] must be str, got {type(q).__name__}")
        if isinstance(passages, str) or not isinstance(passages, Iterable):
            raise TypeError("ListwiseReranker: passages must be a sequence of lists of passages")
        lists = [self._truncate(_as_passages(p, f"passages[{i}]")) for i, p in enumerate(passages)]
        if len(lists) != len(queries):
            raise ValueError(f"ListwiseReranker: {len(queries)} queries but {len(lists)} passage lists")
        return queries, lists


def _as_passages(passages, name: str) -> List[str]:
    from ragkernels.hf.encoder import document_text

    if isinstance(passages, (str, bytes)) or not isinstance(passages, Iterable):
        raise TypeError(f"ListwiseReranker: {name} must be a sequence of passages, got "
                        f"{type(passages).__name__}")
    out = []
    for i, p in enumerate(passages):
        if isinstance(p, (Mapping, tuple)):
            p = document_text(p)
        if not isinstance(p, str):
            raise TypeError(f"ListwiseReranker: {name}[{i}] must be str, a mapping with 'text' or a "
                            f"(title, text) pair, got {type(p).__name__}")
        out.append(p)
    return out


def _check_causal_lm(model) -> None:
    head = getattr(model, "get_output_embeddings", None)
    can_generate = getattr(model, "can_generate", None)
    if head is None or head() is None or can_generate is None or not can_generate():
        raise TypeError(f"ListwiseReranker: causal_lm must be a causal language model with an LM head "
                        f"(e.g. AutoModelForCausalLM), got {type(model).__name__}")


def _check_labels(labels) -> Tuple[str, ...]:
    if isinstance(labels, str):
        labels = list(labels)
    labels = tuple(labels)
    if not labels:
        raise ValueError("ListwiseReranker: labels must not be empty")
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.isalnum():
            raise ValueError(f"ListwiseReranker: labels[{i}] = {label!r} must be a non-empty "
                             "alphanumeric str")
    if len(set(labels)) < len(labels):
        raise ValueError("ListwiseReranker: labels must be distinct")
    return labels


def _check_method(method) -> None:
    if method not in _METHODS:
        raise ValueError(f"ListwiseReranker: method must be one of {_METHODS}, got {method!r}")


def _logits_to_keep_argument(model) -> dict:
    """Ask for the last position's logits only where the model supports it
    (a (batch, length, vocab) float tensor is GBs for long prompts)."""
    params = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return {name: 1}
    return {}


def _eos_ids(model, tokenizer) -> set:
    ids = set()
    config = getattr(model, "generation_config", None)
    for token in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(token, int):
            ids.add(token)
        elif token is not None:
            ids.update(int(t) for t in token)
    return ids
