"""Speculative decoding for transformers causal LMs: drafts from a compiled
drafter, verified losslessly by one forward pass per step (issue 15).

Each step, every sequence of the batch asks its drafter session for a token
tree rooted at its last token (``ragkernels.spec.TokenTree``); the target
model runs the root and all drafted nodes in one forward pass, with the
tree's additive attention mask (0 / the dtype's lowest value: boolean masks
are read wrongly by transformers' eager attention) and position ids
``past + depth``; ``verify_greedy`` (argmax of the processed logits) or
``verify_sampling`` (the processed distributions, a seed drawn from torch's
generator) keeps the longest path the target agrees with plus one token of
its own, and the KV cache is compacted to that path
(``ragkernels.hf.cache.compact``; a crop when the path is a prefix).
The first token comes from the prefill, exactly as in ``generate``.

Stopping is exact: the accepted tokens are appended one at a time against
the stopping criteria, so an EOS inside a draft ends the sequence there
(nothing after it is emitted), and ``max_length`` is never passed (drafts
are also pruned to the depth that can still be used). Rows that finish get
``pad_token_id`` as in ``generate``; the streamer receives the same calls as
under ``generate`` (the prompt, one column of the batch per position, then
``end()``).

Batches (ragged acceptance)
---------------------------
One cache for the batch, and a boolean validity mask over its slots, row by
row (left padding starts it). Every row's tree is padded to the batch's
largest (padding nodes attend only to themselves and are never kept); after
verification row b keeps its a_b accepted nodes, the batch keeps
A = max a_b new slots, and the A - a_b unused slots of row b become holes,
masked out like padding. Positions are per row (the count of the row's
real tokens), so holes change nothing but the amount of masked attention.
Only the new slots are copied (O(batch * A) per step). When the holes that
all rows share exceed a quarter of the cache, the cache is repacked once
(each row's valid slots right-aligned, one gather) so it stays within a
constant factor of the longest row. Finished rows leave the batch
(``Cache.batch_select_indices``). Why one cache: a batched forward is the
point of batching, per-row caches would need per-row forwards, and padded
holes keep compaction local (no O(length) shift per step).

Adaptive draft length (goodput, SmartSpec: Liu et al., arXiv 2406.14066)
------------------------------------------------------------------------
Each step every row drafts with the node budget ``max_nodes``; then one
budget k (nodes per row, 0 = plain decoding) is chosen for the batch and
each tree is cut to its k best-weighted nodes (``ragkernels.spec.merge``,
prefix-closed). The choice maximizes the expected goodput

    G(k) = sum_b E_b(k) / t(B * (k + 1)),
    E_b(k) = 1 + sum over row b's k best nodes i of P_i,
    P_i = P_parent(i) * min(1, c[depth_i] * w_i / w_parent(i)),

where w_i is the drafter's weight of node i (its estimate that the target
produces the path to i), so w_i / w_parent(i) is its probability given its
parent, and c[d] calibrates the drafter at depth d:
c[d] = (A[d] + C) / (W[d] + 1), A[d] the accepted nodes and W[d] the
summed conditional probabilities of the nodes *tested* at depth d (those
whose parent was accepted: a node under a rejected one says nothing about
the drafter), both decayed by 0.95 per step, and C = (sum A + 1) /
(sum W + 1) the same over all depths. So c starts at 1 (trust the
drafter), follows the observed acceptance, and drifts back
towards 1 while speculation is off (exploration: a probe every few dozen
plain steps). t(x) is the time of a step whose forward covers x tokens
(drafting, forward, verification, rollback; weights decayed by 0.95 per
step; a time over 3x the current estimate is capped there, as a stall of
the machine). Plain steps (x = B) are estimated apart, by their decayed
mean: on a CPU a one-token forward is a matrix-vector product and two
tokens already a matrix-matrix one that also packs the weights (about 2x
the time for SmolLM2-135M on two cores), so no line fits both; the first
step is plain (when no plain step was measured yet), and the estimate
follows every plain step chosen later. Steps with drafts: a straight line a + b * x by ridge
regression towards the prior slope of t(x) proportional to x + 63 (a
64-token forward costs twice a 1-token one), the prior weighing as much as
data spread over +-2.8 tokens: measured sizes that vary decide the slope,
a single size leaves the prior's (before any draft is measured, the prior
scaled to the plain step). k = 0 wins when no draft is expected to pay for its
cost; ties go to the smaller k.

Both estimates outlive the call: t(x) is kept per model and batch size, c
per drafter object (weak references, for the life of the process), so a
second request starts from what the first measured rather than from the
priors (on a CPU the prior underestimates a draft's cost by half). The
choice follows measured times, so sampling under "adaptive" is not
reproducible from a torch seed alone (an int `draft` is).

transformers' ``custom_generate``
---------------------------------
``model.generate(..., custom_generate=callable)`` (transformers 5, tested
with 5.25) prepares the inputs, generation config, logits processors,
stopping criteria and cache as for any decoding mode, then calls
``callable(model, input_ids, logits_processor=..., stopping_criteria=...,
generation_config=..., **model_kwargs)`` with ``attention_mask`` (None
when it is all ones), ``position_ids``, ``cache``, ``use_cache`` and
``logits_to_keep``, and returns what the callable returns. Other keyword
arguments of ``generate`` reach the callable only when its signature
names them and the ``_sample`` loop's does not; so ``streamer`` never
arrives (transformers 5.25 puts the prompt into it and drops it): pass
``spec_streamer=`` instead, as ``speculative_generate`` does.
"""
from __future__ import annotations

import dataclasses
import inspect
import time
import weakref
from typing import Any, Dict, List, Optional

import numpy as np

from ragkernels._checks import check_int

__all__ = ["RowStats", "SpecStats", "SpeculativeDecoding", "SpeculativeOutput", "speculative_decoding",
           "speculative_generate"]

@dataclasses.dataclass
class RowStats:
    """One sequence's record, one entry per decoding step it took part in
    (the prefill excluded).

    ``accepted``: tokens appended (accepted draft + the target's own);
    ``draft_sizes``: drafted nodes forwarded; ``drafter_us``: microseconds
    in ``session.draft``; ``verify_us``: microseconds of verification
    (logits processing, ``verify_greedy`` / ``verify_sampling``).
    """

    accepted: List[int] = dataclasses.field(default_factory=list)
    draft_sizes: List[int] = dataclasses.field(default_factory=list)
    drafter_us: List[float] = dataclasses.field(default_factory=list)
    verify_us: List[float] = dataclasses.field(default_factory=list)

    @property
    def forwards(self) -> int:
        """Forward passes this row took part in, the prefill included."""
        return 1 + len(self.accepted)

    @property
    def mean_accepted(self) -> float:
        """Tokens per decoding step (1.0 is plain decoding)."""
        return float(np.mean(self.accepted)) if self.accepted else 0.0


@dataclasses.dataclass
class SpecStats:
    """What a speculative generation did.

    ``rows``: a `RowStats` per sequence; ``forward_us``: microseconds of each
    batched decoding forward pass; ``prefill_us``: the prefill's.
    """

    rows: List[RowStats]
    forward_us: List[float] = dataclasses.field(default_factory=list)
    prefill_us: float = 0.0

    @property
    def forwards(self) -> int:
        """Batched forward passes, the prefill included."""
        return 1 + len(self.forward_us)

    @property
    def mean_accepted(self) -> float:
        """Tokens per row-step over all rows."""
        steps = sum(len(r.accepted) for r in self.rows)
        return sum(sum(r.accepted) for r in self.rows) / steps if steps else 0.0

    @property
    def mean_drafter_us(self) -> float:
        """Microseconds per ``session.draft`` call."""
        calls = [us for r in self.rows for us in r.drafter_us]
        return float(np.mean(calls)) if calls else 0.0


@dataclasses.dataclass
class SpeculativeOutput:
    """``sequences``: int64 (batch, prompt width + new tokens), as
    ``generate`` returns them (rows that ended early padded with
    ``pad_token_id``); ``spec_stats``: a `SpecStats`. Scores, logits and
    attentions are not collected."""

    sequences: Any
    spec_stats: SpecStats


def _check_draft(draft, op: str) -> Optional[int]:
    if isinstance(draft, str):
        if draft != "adaptive":
            raise ValueError(f"{op}: draft must be 'adaptive' or an int >= 0, got {draft!r}")
        return None
    return check_int(draft, "draft", op, minimum=0)


def _check_drafter(drafter, op: str) -> None:
    if drafter is not None and not callable(getattr(drafter, "start", None)):
        raise TypeError(f"{op}: drafter must have a start(prompt) method returning a session "
                        f"(e.g. ragkernels.spec.SuffixDrafter), got {type(drafter).__name__}")


class SpeculativeDecoding:
    """A decoding loop for ``model.generate(custom_generate=...)``.

    Made by `speculative_decoding`; calling it runs one generation. The
    signature is the one ``generate`` calls (see the module docstring);
    ``spec_streamer`` replaces ``streamer``, which ``generate`` does not
    hand to a callable.

    Attributes
    ----------
    drafter, draft, tree, max_nodes
        As given to `speculative_decoding`.
    last_stats : SpecStats or None
        The `SpecStats` of the last call.
    """

    def __init__(self, drafter, draft="adaptive", tree: bool = True, max_nodes: int = 32,
                 op: str = "speculative_decoding"):
        _check_drafter(drafter, op)
        self.op = op
        self.drafter = drafter
        self.draft = draft
        self._fixed = _check_draft(draft, op)
        if not isinstance(tree, (bool, np.bool_)):
            raise TypeError(f"{op}: tree must be a bool, got {type(tree).__name__}")
        self.tree = bool(tree)
        self.max_nodes = check_int(max_nodes, "max_nodes", op, minimum=1, maximum=4096)
        self.last_stats: Optional[SpecStats] = None

    def __repr__(self) -> str:
        return (f"SpeculativeDecoding(drafter={type(self.drafter).__name__}, draft={self.draft!r}, "
                f"tree={self.tree}, max_nodes={self.max_nodes})")

    def __call__(self, model, input_ids, logits_processor=None, stopping_criteria=None, generation_config=None,
                 spec_streamer=None, streamer=None, **model_kwargs) -> SpeculativeOutput:
        if generation_config is None:
            raise TypeError(f"{self.op}: call through model.generate(custom_generate=...) or "
                            "ragkernels.hf.speculative_generate, which prepare generation_config")
        if getattr(generation_config, "num_beams", 1) not in (None, 1):
            raise ValueError(f"{self.op}: num_beams must be 1, got {generation_config.num_beams}")
        out = _run(self, model, input_ids, logits_processor, stopping_criteria, generation_config,
                  streamer=spec_streamer if spec_streamer is not None else streamer,
                  put_prompt=spec_streamer is not None, model_kwargs=model_kwargs)
        self.last_stats = out.spec_stats
        return out


def speculative_decoding(drafter, *, draft="adaptive", tree: bool = True, max_nodes: int = 32) -> SpeculativeDecoding:
    """A ``custom_generate`` callable that decodes speculatively.

    Parameters
    ----------
    drafter : object with ``start(prompt) -> session``, or None
        A ``ragkernels.spec`` drafter (``PromptLookupDrafter``,
        ``SuffixDrafter``, ``RetrievalDrafter``) or any object with that
        interface; one session per batch row. None: plain decoding by this
        loop (for comparisons).
    draft : "adaptive" or int, default "adaptive"
        "adaptive": the node budget per step that maximizes expected
        tokens per second (module docstring), 0 included. An int: that
        many drafted nodes per row and step (0: plain decoding).
    tree : bool, default True
        False keeps only each draft's best chain (the first child at each
        node).
    max_nodes : int, default 32
        The drafter's node budget per row and step under "adaptive".

    Returns
    -------
    SpeculativeDecoding
        Pass it as ``custom_generate`` to ``model.generate``; that call
        returns a `SpeculativeOutput`.

    Raises
    ------
    ValueError
        `draft` not "adaptive" nor an int >= 0, `max_nodes` < 1.
    TypeError
        `drafter` has no ``start`` method, `tree` not a bool.

    Examples
    --------
    >>> import ragkernels as rk
    >>> speculative_decoding(rk.spec.SuffixDrafter(), draft=8, tree=False)
    SpeculativeDecoding(drafter=SuffixDrafter, draft=8, tree=False, max_nodes=32)

    Then ``model.generate(ids, custom_generate=decoding,
    max_new_tokens=64).spec_stats`` holds the statistics.
    """
    return SpeculativeDecoding(drafter, draft=draft, tree=tree, max_nodes=max_nodes)


def speculative_generate(model, input_ids, drafter, max_new_tokens: Optional[int] = None, *, draft="adaptive",
                         tree: bool = True, max_nodes: int = 32, do_sample: Optional[bool] = None,
                         temperature: Optional[float] = None, top_k: Optional[int] = None,
                         top_p: Optional[float] = None, generation_config=None, streamer=None,
                         stopping_criteria=None, logits_processor=None, eos_token_id=None, pad_token_id=None,
                         attention_mask=None, **kwargs) -> SpeculativeOutput:
    """Generate with speculative decoding; the same output as ``generate``.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A decoder-only causal LM (Llama and GPT-2 families tested) with a
        KV cache that can be rolled back (``DynamicCache``;
        `ragkernels.hf.cache`), under eager or sdpa attention.
    input_ids : torch.LongTensor, shape (batch, prompt_len)
        Left-padded when the prompts differ in length (with
        `attention_mask`).
    drafter : drafter or None
        See `speculative_decoding`.
    max_new_tokens : int, optional
        Never exceeded, whatever the drafts' length.
    draft, tree, max_nodes
        See `speculative_decoding`.
    do_sample, temperature, top_k, top_p, generation_config,
    stopping_criteria, logits_processor, eos_token_id, pad_token_id,
    attention_mask, **kwargs
        As for ``model.generate`` (only the arguments given are passed on).
    streamer : transformers streamer, optional
        Receives what ``generate`` would give it.

    Returns
    -------
    SpeculativeOutput
        ``sequences`` (as ``generate``'s) and ``spec_stats``.

    Notes
    -----
    Greedy output equals ``model.generate(do_sample=False)`` token for
    token, up to the last bits of float arithmetic: a forward over several
    tokens rounds differently from one-token steps, which can flip an
    argmax where the top two logits are within about 1e-5 (see
    tests/test_hf_spec.py). Sampling draws each token from exactly the
    distribution ``generate`` samples from (SpecInfer's multi-branch
    rejection sampling), though not the same tokens for a given seed.
    The design (batches, adaptive length) is in the module docstring.

    Examples
    --------
    A tiny random Llama, and prompt lookup as the drafter:

    >>> import torch, transformers
    >>> import ragkernels as rk
    >>> _ = torch.manual_seed(0)
    >>> config = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=1, num_attention_heads=2, pad_token_id=0, eos_token_id=1)
    >>> model = transformers.LlamaForCausalLM(config).eval()
    >>> ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7]])
    >>> out = speculative_generate(model, ids, rk.spec.PromptLookupDrafter(), max_new_tokens=12)
    >>> plain = model.generate(ids, do_sample=False, max_new_tokens=12)
    >>> torch.equal(out.sequences, plain)
    True
    >>> out.spec_stats.forwards <= 13
    True
    """
    decoding = SpeculativeDecoding(drafter, draft=draft, tree=tree, max_nodes=max_nodes, op="speculative_generate")
    if "custom_generate" not in inspect.signature(model.generate).parameters:
        raise TypeError("speculative_generate: model.generate has no custom_generate hook; this needs "
                        "transformers 5 (a PreTrainedModel with GenerationMixin)")
    given = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                 top_p=top_p, generation_config=generation_config, stopping_criteria=stopping_criteria,
                 logits_processor=logits_processor, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                 attention_mask=attention_mask)
    given = {k: v for k, v in given.items() if v is not None}
    if streamer is not None:
        given["spec_streamer"] = streamer
    return model.generate(input_ids, custom_generate=decoding, **given, **kwargs)


# ---- trees ------------------------------------------------------------------------------------

def _root_only(token: int):
    from ragkernels.spec import TokenTree

    return TokenTree(np.array([token], np.int32), np.array([-1], np.int32))


def _subtree(tree, keep: np.ndarray):
    """The nodes `keep` (ascending, prefix-closed, 0 first) of `tree`."""
    from ragkernels.spec import TokenTree

    remap = np.full(len(tree), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    parents = tree.parents[keep].astype(np.int64)
    parents = np.where(parents >= 0, remap[np.maximum(parents, 0)], -1)
    return TokenTree(tree.tokens[keep], parents.astype(np.int32), tree.weights[keep])


def _chain(tree):
    """The best chain of `tree`: from the root, each node's first child
    (children are stored best first)."""
    parents = tree.parents
    keep = [0]
    for i in range(1, len(parents)):
        if parents[i] == keep[-1]:
            keep.append(i)
    return tree if len(keep) == len(parents) else _subtree(tree, np.array(keep))


def _prune_depth(tree, max_depth: int):
    """`tree` without the nodes deeper than `max_depth` (they could only
    add tokens past max_length)."""
    depths = tree.depths
    if int(depths.max()) <= max_depth:
        return tree
    return _subtree(tree, np.flatnonzero(depths <= max_depth))


# ---- draft length policies --------------------------------------------------------------------

class _FixedPolicy:
    """A fixed node budget per row and step."""

    def __init__(self, nodes: int):
        self.nodes = nodes

    def budget(self) -> int:
        return self.nodes

    def choose(self, trees, batch: int) -> int:
        return self.nodes

    def observe(self, trees, paths, tokens: int, seconds: float) -> None:
        pass


class _ForwardCost:
    """t(x): seconds of a step whose forward covers x tokens (module docstring).

    Plain steps (one token per row) are estimated apart from steps with
    drafts: on a CPU a one-token forward is a matrix-vector product that reads
    every weight once, while two tokens already make a matrix-matrix product
    that also packs the weights (about 2x the time for SmolLM2-135M on two
    cores), so no straight line fits both. Plain: a decayed mean. Drafts:
    a + b * x by ridge regression towards the prior slope.
    """

    decay = 0.95
    prior_weight = 8.0  # the prior slope counts as much as data spread over +-2.8 tokens
    outlier = 3.0  # a measurement is capped at 3x the current estimate (a stall, not the model)

    def __init__(self):
        self.sums = np.zeros(5)  # drafts: weight, x, x^2, t, x*t
        self.plain = np.zeros(2)  # plain steps: weight, t

    def add(self, x: float, seconds: float, plain: bool) -> None:
        if plain:
            if self.plain[0] > 0:
                seconds = min(seconds, self.outlier * self.plain[1] / self.plain[0])
            self.plain = self.plain * self.decay + np.array([1.0, seconds])
            return
        if self.sums[0] > 0:
            seconds = min(seconds, self.outlier * float(self._line(np.array([x]))[0]))
        self.sums = self.sums * self.decay + np.array([1.0, x, x * x, seconds, x * seconds])

    @property
    def plain_weight(self) -> float:
        """How much recent evidence the plain estimate has (1 = one step just now)."""
        return float(self.plain[0])

    def _line(self, x: np.ndarray) -> np.ndarray:
        w, sx, sxx, st, sxt = self.sums
        mean_x, mean_t = sx / w, st / w
        prior = mean_t / (mean_x + 63.0)  # t proportional to x + 63, through the mean
        ridge = self.prior_weight * w
        slope = (sxt - sx * mean_t + ridge * prior) / (sxx - sx * mean_x + ridge)
        slope = max(slope, 0.0)  # costs do not fall with more tokens
        return max(mean_t - slope * mean_x, 1e-9) + slope * x

    def __call__(self, x: np.ndarray, batch: int) -> np.ndarray:
        plain = self.plain[1] / self.plain[0] if self.plain[0] > 0 else None
        if self.sums[0] > 0:
            drafts = self._line(x)
        else:  # no draft measured yet: the prior, scaled to the plain step when known
            drafts = (x + 63.0) * ((plain / (batch + 63.0)) if plain is not None else 1.0)
        if plain is None:
            plain = float(drafts[0]) if self.sums[0] > 0 else batch + 63.0
        return np.where(x <= batch, plain, drafts)


class _GoodputPolicy:
    """The budget k maximizing sum_b E_b(k) / t(B * (k + 1)) (module
    docstring)."""

    depths = 65
    decay = 0.95
    prior = 1.0  # pseudo-observations of full acceptance per depth

    def __init__(self, max_nodes: int, cost: Optional[_ForwardCost] = None, acceptance=None):
        self.max_nodes = max_nodes
        self.cost = cost if cost is not None else _ForwardCost()
        # Updated in place: the arrays may be the drafter's, shared across calls (_learned).
        self.accepted, self.predicted = acceptance if acceptance is not None else self.new_acceptance()

    @classmethod
    def new_acceptance(cls):
        """(accepted, predicted) per depth, nothing observed."""
        return np.zeros(cls.depths), np.zeros(cls.depths)

    def budget(self) -> int:
        return self.max_nodes

    def calibration(self, depths: np.ndarray) -> np.ndarray:
        """c[d]: observed over predicted acceptance of the nodes tested at
        each depth, shrunk towards the all-depth ratio, itself shrunk
        towards 1."""
        overall = (self.accepted.sum() + self.prior) / (self.predicted.sum() + self.prior)
        d = np.minimum(depths, self.depths - 1)
        return (self.accepted[d] + self.prior * overall) / (self.predicted[d] + self.prior)

    @staticmethod
    def _conditional(tree) -> np.ndarray:
        """Each node's weight over its parent's: the drafter's probability of
        the node given that its parent was accepted (the root's entry is 1)."""
        weights = tree.weights.astype(np.float64)
        parents = tree.parents
        q = np.ones(len(weights))
        parent_w = weights[parents[1:]]
        q[1:] = np.divide(weights[1:], parent_w, out=np.zeros(len(weights) - 1), where=parent_w > 0)
        return q

    def expected_gain(self, tree) -> np.ndarray:
        """E(k) - 1 for k = 1..draft_size: the calibrated path probabilities
        of the best k nodes (each node's conditional probability times c at
        its depth, capped at 1, multiplied down the path; best first, then
        shallower: a prefix-closed set, as merge keeps)."""
        q, depths, parents = self._conditional(tree), tree.depths, tree.parents
        p = np.minimum(1.0, self.calibration(depths) * q)
        path = np.ones(len(q))
        for i in range(1, len(q)):  # parents come first
            path[i] = path[parents[i]] * p[i]
        order = np.lexsort((depths[1:], -path[1:]))
        return np.cumsum(path[1:][order])

    def choose(self, trees, batch: int) -> int:
        kmax = max(t.draft_size for t in trees)
        if kmax == 0:
            return 0
        gain = np.zeros(kmax + 1)
        for tree in trees:
            if tree.draft_size:
                g = self.expected_gain(tree)
                gain[1:len(g) + 1] += g
                gain[len(g) + 1:] += g[-1]
        if self.cost.plain_weight == 0:
            return 0  # measure a plain step first
        k = np.arange(kmax + 1)
        goodput = (batch + gain) / self.cost(batch * (k + 1.0), batch)
        return int(np.argmax(goodput))  # the first maximum: ties go to the smaller k

    def observe(self, trees, paths, tokens: int, seconds: float) -> None:
        """Only nodes whose parent was accepted were tested: a node under a
        rejected one says nothing about the drafter."""
        self.accepted *= self.decay
        self.predicted *= self.decay
        for tree, path in zip(trees, paths):
            if not tree.draft_size:
                continue
            on_path = np.zeros(len(tree), bool)
            on_path[np.asarray(path)] = True
            tested = np.flatnonzero(on_path[tree.parents[1:]]) + 1
            d = np.minimum(tree.depths[tested], self.depths - 1)
            np.add.at(self.predicted, d, self._conditional(tree)[tested])
            np.add.at(self.accepted, d, on_path[tested].astype(np.float64))
        self.cost.add(float(tokens), seconds, plain=all(t.draft_size == 0 for t in trees))


# What earlier generations in this process measured: a forward's cost belongs to the model (per
# batch size), a drafter's calibration to the drafter; weak keys, so nothing outlives its owner.
_MODEL_COSTS: "weakref.WeakKeyDictionary[Any, Dict[int, _ForwardCost]]" = weakref.WeakKeyDictionary()
_DRAFTER_ACCEPTANCE: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _learned(table, owner, make):
    """``table[owner]``, made on first use; a fresh ``make()`` each call
    when ``owner`` takes no weak reference (then nothing carries over)."""
    try:
        return table.setdefault(owner, make())
    except TypeError:
        return make()


def _adaptive_policy(model, drafter, max_nodes: int, batch: int) -> _GoodputPolicy:
    """A goodput policy that starts from what earlier calls with the same
    model and drafter learned, instead of the priors (module docstring)."""
    costs = _learned(_MODEL_COSTS, model, dict)
    cost = costs.setdefault(batch, _ForwardCost())
    acceptance = (_learned(_DRAFTER_ACCEPTANCE, drafter, _GoodputPolicy.new_acceptance)
                  if drafter is not None else None)
    return _GoodputPolicy(max_nodes, cost, acceptance)


# ---- the loop -------------------------------------------------------------------------------

def _run(dec: SpeculativeDecoding, model, input_ids, logits_processor, stopping_criteria, generation_config,
         streamer, put_prompt: bool, model_kwargs: Dict[str, Any]) -> SpeculativeOutput:
    loop = _Loop(dec, model, input_ids, logits_processor, stopping_criteria, generation_config, streamer,
                 model_kwargs)
    if streamer is not None and put_prompt:
        streamer.put(input_ids.cpu())
    loop.prefill(model_kwargs)
    while loop.rows:
        loop.step()
    return loop.finish()


# Logits processors that read only the scores (not input_ids): one call for all nodes.
_SCORE_ONLY = ("TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper",
               "TypicalLogitsWarper", "EpsilonLogitsWarper", "EtaLogitsWarper")


class _Loop:
    """The state of one speculative generation (module docstring)."""

    repack_min = 32  # repack when the holes all rows share exceed both of these
    repack_fraction = 0.25

    def __init__(self, dec, model, input_ids, logits_processor, stopping_criteria, generation_config, streamer,
                 model_kwargs):
        import torch
        from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria

        self.model, self.dec, self.streamer, self.op = model, dec, streamer, dec.op
        if input_ids.ndim != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"{self.op}: input_ids must have shape (batch, prompt_len >= 1), got "
                             f"{tuple(input_ids.shape)}")
        self._check_model(logits_processor)
        self.device = input_ids.device
        self.lp = logits_processor if logits_processor is not None else []
        self.sc = stopping_criteria if stopping_criteria is not None else []
        self.do_sample = bool(generation_config.do_sample)
        lengths = [generation_config.max_length] + [c.max_length for c in self.sc if isinstance(c, MaxLengthCriteria)]
        self.max_length = min(int(n) for n in lengths if n is not None)
        self.has_eos = any(hasattr(c, "eos_token_id") for c in self.sc)
        self.eos = set()
        for c in self.sc:
            if isinstance(c, EosTokenCriteria):
                self.eos.update(int(e) for e in torch.as_tensor(c.eos_token_id).flatten().tolist())
        self.generic = any(type(c) not in (MaxLengthCriteria, EosTokenCriteria) for c in self.sc)
        pad = generation_config.pad_token_id
        if pad is None and generation_config.eos_token_id is not None:
            pad = torch.as_tensor(generation_config.eos_token_id).flatten()[0]
        self.pad = int(pad) if pad is not None else (min(self.eos) if self.eos else 0)
        self.batch, self.width = input_ids.shape
        self.prefix = input_ids.tolist()
        mask = model_kwargs.get("attention_mask")
        self.valid = (mask.bool() if mask is not None else
                      torch.ones(input_ids.shape, dtype=torch.bool, device=self.device))
        self.n_real = self.valid.sum(1).tolist()
        self.policy = (_adaptive_policy(model, dec.drafter, dec.max_nodes, self.batch) if dec._fixed is None
                       else _FixedPolicy(dec._fixed))
        self.stats = SpecStats(rows=[RowStats() for _ in range(self.batch)])
        self.stopped: List[Optional[int]] = [None] * self.batch
        self.done = [False] * self.batch
        self.final: Optional[int] = None
        self.emitted = 0
        self.rows = list(range(self.batch))
        self.sessions = None
        if dec.drafter is not None:
            valid = self.valid.cpu().numpy()
            self.sessions = [dec.drafter.start(np.asarray(input_ids[b].cpu().numpy()[valid[b]], np.int32))
                             for b in range(self.batch)]
        self.cache_key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def _check_model(self, logits_processor) -> None:
        attention = str(getattr(self.model.config, "_attn_implementation", None) or "")
        drafting = self.dec.drafter is not None and self.dec._fixed != 0
        if drafting and ("flash" in attention or "flex" in attention):
            raise ValueError(f"{self.op}: the model's attention implementation {attention!r} ignores the tree's "
                             "attention mask; load it with attn_implementation='sdpa' or 'eager'")
        for p in logits_processor or []:
            if type(p).__name__ == "PrefixConstrainedLogitsProcessor":  # reads the row's index in the batch
                raise ValueError(f"{self.op}: prefix_allowed_tokens_fn is not supported (its processor reads "
                                 "each row's index in the batch, which verification regroups)")

    # -- prefill --------------------------------------------------------------------------------
    def prefill(self, model_kwargs) -> None:
        import torch
        from transformers import DynamicCache

        from ragkernels.hf.cache import supports_rollback

        cache = model_kwargs.get("cache", model_kwargs.get("past_key_values"))
        if cache is None:
            cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))
            model_kwargs = {**model_kwargs, self.cache_key: cache, "use_cache": True}
        if cache.get_seq_length() != 0:
            raise ValueError(f"{self.op}: the cache must be empty at the start (got {cache.get_seq_length()} "
                             "positions); continuing from a filled cache is not supported")
        if getattr(cache, "layers", None) and not supports_rollback(cache):
            kinds = sorted({type(layer).__name__ for layer in cache.layers})
            raise TypeError(f"{self.op}: the model's cache ({type(cache).__name__} of {kinds}) cannot be rolled back "
                            "exactly; speculative decoding needs a DynamicCache without sliding windows")
        input_ids = torch.tensor(self.prefix, device=self.device)
        inputs = self.model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **model_kwargs)
        start = time.perf_counter()
        out = self.model(**inputs, return_dict=True)
        self.stats.prefill_us = (time.perf_counter() - start) * 1e6
        returned = [out[key] for key in ("cache", "past_key_values") if key in out.keys()]
        self.cache = returned[0] if returned and returned[0] is not None else cache
        if not supports_rollback(self.cache):
            kinds = sorted({type(layer).__name__ for layer in self.cache.layers})
            raise TypeError(f"{self.op}: the model's cache ({type(self.cache).__name__} of {kinds}) cannot be rolled "
                            "back exactly; speculative decoding needs a DynamicCache without sliding windows")
        logits = out.logits[:, -1].to(dtype=torch.float32)
        self.vocab = out.logits.shape[-1]
        self._check_drafter_vocab()
        scores = self.lp(input_ids, logits) if len(self.lp) else logits
        if self.do_sample:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        for b, token in enumerate(tokens.tolist()):
            self._accept(b, [token])
        self._settle()
        self._drop_done()
        self._stream()

    def _check_drafter_vocab(self) -> None:
        size = getattr(self.dec.drafter, "vocab_size", None)
        if size is not None and int(size) > self.vocab:
            raise ValueError(f"{self.op}: drafter.vocab_size is {int(size)} but the model has {self.vocab} logits: "
                             "a drafter built for another tokenizer?")

    # -- one step -------------------------------------------------------------------------------
    def step(self) -> None:
        import torch

        rows = self.rows
        step_start = time.perf_counter()
        trees = [self._draft(b) for b in rows]
        k = self.policy.choose(trees, len(rows))
        trees = [self._cut(t, k) for t in trees]
        width = max(len(t) for t in trees)
        ids, pos, mask = self._inputs(trees, width)
        start = time.perf_counter()
        out = self.model(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=True, return_dict=True,
                         **{self.cache_key: self.cache})
        seconds = time.perf_counter() - start
        self.stats.forward_us.append(seconds * 1e6)
        logits = out.logits.to(dtype=torch.float32)
        paths, kept = self._verify(rows, trees, logits)
        self._settle()
        self._rollback(rows, kept)
        self.policy.observe(trees, paths, len(rows) * width, time.perf_counter() - step_start)
        self._stream()

    def _draft(self, b: int):
        row = self.stats.rows[b]
        last = self.prefix[b][-1]
        budget = self.policy.budget()
        if self.sessions is None or budget == 0:
            row.drafter_us.append(0.0)
            return _root_only(last)
        start = time.perf_counter()
        tree = self.sessions[b].draft(budget)
        row.drafter_us.append((time.perf_counter() - start) * 1e6)
        self._check_tree(tree, last)
        limit = self._room(b) - 1  # the deepest node that can still add a token
        if tree.draft_size and not self.dec.tree:
            tree = _chain(tree)
        if tree.draft_size and limit < int(tree.depths.max()):
            tree = _prune_depth(tree, max(limit, 0))
        return tree

    def _check_tree(self, tree, last: int) -> None:
        from ragkernels.spec import TokenTree

        if not isinstance(tree, TokenTree):
            raise TypeError(f"{self.op}: drafter session.draft must return a ragkernels.spec.TokenTree, "
                            f"got {type(tree).__name__}")
        tokens = tree.tokens
        if int(tokens[0]) != last:
            raise ValueError(f"{self.op}: drafter session.draft returned a tree rooted at token {int(tokens[0])}, "
                             f"but the sequence ends with {last}")
        if int(tokens.max()) >= self.vocab:
            raise ValueError(f"{self.op}: drafter proposed token {int(tokens.max())}, outside the model's "
                             f"{self.vocab} logits")

    def _cut(self, tree, k: int):
        from ragkernels.spec import merge

        return tree if tree.draft_size <= k else merge([tree], k)

    def _room(self, b: int) -> int:
        """Tokens row b may still append."""
        room = self.max_length - len(self.prefix[b])
        if self.final is not None:
            room = min(room, self.width + self.final - len(self.prefix[b]))
        return room

    def _inputs(self, trees, width: int):
        """input_ids, position_ids and attention mask of the batched forward."""
        import torch

        batch, past = len(trees), self.valid.shape[1]
        ids = np.empty((batch, width), np.int64)
        pos = np.empty((batch, width), np.int64)
        for j, (b, tree) in enumerate(zip(self.rows, trees)):
            n = len(tree)
            ids[j, :n], ids[j, n:] = tree.tokens, tree.tokens[0]
            pos[j, :n], pos[j, n:] = self.n_real[b] + tree.depths, self.n_real[b]
        ids, pos = torch.from_numpy(ids).to(self.device), torch.from_numpy(pos).to(self.device)
        if width == 1:  # plain decoding: the 2-D padding mask, as generate passes it
            if bool(self.valid.all()):
                return ids, pos, None
            ones = torch.ones((batch, 1), dtype=torch.long, device=self.device)
            return ids, pos, torch.cat([self.valid.long(), ones], dim=1)
        allowed = np.zeros((batch, 1, width, past + width), np.bool_)
        allowed[:, 0, :, :past] = self.valid.cpu().numpy()[:, None, :]
        pad = np.arange(width)
        for j, tree in enumerate(trees):
            n = len(tree)
            allowed[j, 0, :n, past:past + n] = tree.attention_mask(0, np.bool_)
            allowed[j, 0, pad[n:], past + pad[n:]] = True  # padding nodes see only themselves
        dtype = self.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=self.device)
        mask.masked_fill_(~torch.from_numpy(allowed).to(self.device), torch.finfo(dtype).min)
        return ids, pos, mask

    def _verify(self, rows, trees, logits):
        """Verify every row; append its tokens. Returns the accepted paths
        and the nodes whose KV each row keeps."""
        import torch

        from ragkernels.spec import verify_greedy, verify_sampling

        start = time.perf_counter()
        scores = self._process(rows, trees, logits)
        if self.do_sample:
            probs = torch.softmax(scores, dim=-1).cpu()
        else:
            argmax = scores.argmax(dim=-1).cpu()
        shared_us = (time.perf_counter() - start) * 1e6 / len(rows)
        paths, kept = [], []
        for j, (b, tree) in enumerate(zip(rows, trees)):
            start = time.perf_counter()
            n = len(tree)
            if self.do_sample:
                seed = int(torch.randint(0, 2**63 - 1, (1,)))
                accepted = verify_sampling(tree, probs[j, :n], seed)
            else:
                accepted = verify_greedy(tree, argmax[j, :n])
            row = self.stats.rows[b]
            row.verify_us.append(shared_us + (time.perf_counter() - start) * 1e6)
            count = self._accept(b, accepted.tokens.tolist())
            row.accepted.append(count)
            row.draft_sizes.append(tree.draft_size)
            paths.append(accepted.nodes)
            kept.append(accepted.nodes[:count])
        return paths, kept

    def _process(self, rows, trees, logits):
        """The logits processors at every node, each seeing its own path."""
        import torch

        if not len(self.lp):
            return logits
        batch, width, vocab = logits.shape
        if all(type(p).__name__ in _SCORE_ONLY for p in self.lp):
            flat = logits.reshape(batch * width, vocab)
            dummy = torch.zeros((flat.shape[0], 1), dtype=torch.long, device=logits.device)
            return self.lp(dummy, flat).reshape(batch, width, vocab)
        groups: Dict[int, list] = {}
        for j, (b, tree) in enumerate(zip(rows, trees)):
            paths = _paths(tree)
            for i, path in enumerate(paths):
                seq = self.prefix[b] + path
                groups.setdefault(len(seq), []).append((j, i, seq))
        out = logits.clone()
        for items in groups.values():
            js = torch.tensor([it[0] for it in items], device=logits.device)
            nodes = torch.tensor([it[1] for it in items], device=logits.device)
            ids = torch.tensor([it[2] for it in items], device=logits.device)
            out[js, nodes] = self.lp(ids, logits[js, nodes])
        return out

    # -- stopping -------------------------------------------------------------------------------
    def _accept(self, b: int, tokens: List[int]) -> int:
        """Append the first of `tokens` that generate would emit; return
        how many."""
        import torch

        seq = self.prefix[b]
        count = min(len(tokens), self._room(b))
        stop = count == self.max_length - len(seq)
        if self.stopped[b] is None:
            if self.eos:
                hit = next((i for i in range(count) if tokens[i] in self.eos), None)
                if hit is not None:
                    count, stop = hit + 1, True
            if self.generic:
                for m in range(1, count + 1):
                    ids = torch.tensor([seq + tokens[:m]], device=self.device)
                    if bool(self.sc(ids, None)[0]):
                        count, stop = m, True
                        break
        seq.extend(tokens[:count])
        if self.sessions is not None and count:
            self.sessions[b].extend(np.asarray(tokens[:count], np.int32))
        if stop and self.stopped[b] is None:
            self.stopped[b] = len(seq) - self.width
        return count

    def _settle(self) -> None:
        """Mark finished rows. With an EOS criterion a stopped row is done
        (generate pads it); without one generate keeps decoding it until
        every row has stopped, so it runs to the last row's stop."""
        if self.final is None and not self.has_eos and all(s is not None for s in self.stopped):
            self.final = max(self.stopped)
        for b in self.rows:
            if self.stopped[b] is None:
                continue
            if self.has_eos or self._room(b) <= 0:
                self.done[b] = True

    # -- cache ----------------------------------------------------------------------------------
    def _drop_done(self, kept=None):
        """Remove finished rows from the batch (and from `kept`)."""
        import torch

        keep = [j for j, b in enumerate(self.rows) if not self.done[b]]
        if len(keep) < len(self.rows):
            if keep:
                index = torch.tensor(keep, device=self.device)
                self.cache.batch_select_indices(index)
                self.valid = self.valid[index]
                if kept is not None:
                    kept = [kept[j] for j in keep]
            self.rows = [self.rows[j] for j in keep]
        return kept

    def _rollback(self, rows, kept) -> None:
        """Keep each row's accepted nodes in the cache (module docstring)."""
        import torch

        from ragkernels.hf.cache import compact, crop

        for b, nodes in zip(rows, kept):
            self.n_real[b] += len(nodes)
        kept = self._drop_done(kept)
        if not self.rows:
            return
        past = self.valid.shape[1]
        most = max(len(nodes) for nodes in kept)
        if all(len(nodes) == most and int(nodes[-1]) == most - 1 for nodes in kept):
            crop(self.cache, past + most)  # every row kept the same prefix of its nodes (a chain)
            ones = torch.ones((len(kept), most), dtype=torch.bool, device=self.device)
            self.valid = torch.cat([self.valid, ones], dim=1)
            return self._repack()
        tail = np.full((len(kept), most), past, np.int64)
        valid = np.zeros((len(kept), most), np.bool_)
        for j, nodes in enumerate(kept):
            tail[j, :len(nodes)] = past + nodes
            valid[j, :len(nodes)] = True
        head = torch.arange(past, device=self.device).expand(len(kept), past)
        compact(self.cache, torch.cat([head, torch.from_numpy(tail).to(self.device)], dim=1))
        self.valid = torch.cat([self.valid, torch.from_numpy(valid).to(self.device)], dim=1)
        self._repack()

    def _repack(self) -> None:
        """Squeeze out the holes all rows share once they pass a quarter of
        the cache: each row's valid slots right-aligned."""
        import torch

        from ragkernels.hf.cache import compact

        past = self.valid.shape[1]
        counts = self.valid.sum(dim=1)
        longest = int(counts.max())
        if past - longest <= max(self.repack_min, past * self.repack_fraction):
            return
        order = torch.argsort((~self.valid).to(torch.int8), dim=1, descending=True, stable=True)
        keep = order[:, past - longest:]  # holes first, then the valid slots in order: keep the last `longest`
        compact(self.cache, keep)
        self.valid = torch.arange(longest, device=self.device) >= (longest - counts)[:, None]

    # -- output ---------------------------------------------------------------------------------
    def _stream(self, end: Optional[int] = None) -> None:
        import torch

        if self.streamer is None:
            return
        if end is None:
            lengths = [len(self.prefix[b]) - self.width for b in range(self.batch)
                       if not (self.done[b] and self.has_eos)]
            end = min(lengths) if lengths else max(len(p) - self.width for p in self.prefix)
            if self.final is not None:
                end = min(end, self.final)
        for col in range(self.emitted, end):
            at = self.width + col
            self.streamer.put(torch.tensor([p[at] if at < len(p) else self.pad for p in self.prefix]))
        self.emitted = max(self.emitted, end)

    def finish(self) -> SpeculativeOutput:
        import torch

        new = self.final if self.final is not None else max(len(p) - self.width for p in self.prefix)
        self._stream(end=new)
        if self.streamer is not None:
            self.streamer.end()
        total = self.width + new
        sequences = torch.tensor([p[:total] + [self.pad] * (total - len(p)) for p in self.prefix],
                                 dtype=torch.long, device=self.device)
        if self.sessions is not None:
            for session in self.sessions:
                session.finish()
        return SpeculativeOutput(sequences=sequences, spec_stats=self.stats)


def _paths(tree) -> List[List[int]]:
    """Each node's drafted tokens from the root (exclusive) down to it."""
    tokens, parents = tree.tokens.tolist(), tree.parents.tolist()
    paths: List[List[int]] = [[]]
    for i in range(1, len(tokens)):
        paths.append(paths[parents[i]] + [tokens[i]])
    return paths
