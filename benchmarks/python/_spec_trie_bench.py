"""The trie section of bench_spec.py (issue 16): constrained decoding to a set
of allowed strings, ragkernels' CSR trie against transformers'
``PrefixConstrainedLogitsProcessor`` over a Python dict trie, xgrammar and
outlines-core, on SmolLM2's vocabulary (49,152 tokens).

Sets, each at the sizes that exist (``--trie-sizes``, default 10^3, 10^5, 10^6):

- ``msmarco ids``: MS MARCO passage ids written as the model cites them,
  `` [8841823]``: the 28,606 ids of the shared sample, and beyond that
  distinct ids drawn from the collection's range (every integer in
  [0, 8,841,823) is a passage id);
- ``scifact titles``: `` [title]``, 10^3 and all 5,183 SciFact titles;
- ``random``: random token-id sequences of 1 to 16 tokens (no string form:
  ragkernels and the Python trie only).

Per set: build time and bytes; then per step of a walk along allowed
sequences (batch 1, and batch 8 as 8 beams), the median µs of: the
processor call a ``generate`` makes (``rk.hf.TrieConstraint`` against
``PrefixConstrainedLogitsProcessor`` + dict trie, torch float32 scores in,
masked scores out), and the bare ops (ragkernels ``mask_logits`` +
``advance`` on float32 logits; xgrammar ``fill_next_token_bitmask`` +
``apply_token_bitmask_inplace`` + ``accept_token``; outlines-core the
same through its ``Guide``), plus ragkernels' ``next_token_bitmask`` per
row (xgrammar's published figure, 35.7 µs per token, is that op). Every
step's allowed set is compared with the dict trie's: ragkernels must be
identical; the peers compile the strings' text, so they also allow other
tokenizations of it, and the table says how many steps differ.
"""
from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from _common import data_dir, write_results

MSMARCO_IDS = 8_841_823
PREFIX, SUFFIX = " [", "]"


# ---- the allowed sets ---------------------------------------------------------------------

def msmarco_ids(n: int, seed: int = 0) -> List[str]:
    sample = []
    with open(data_dir() / "msmarco-passage" / "collection.subset.tsv", encoding="utf-8") as f:
        for line in f:
            sample.append(int(line.split("\t", 1)[0]))
    if n <= len(sample):
        return [str(i) for i in sample[:n]]
    rng = np.random.default_rng(seed)
    rest = np.setdiff1d(rng.choice(MSMARCO_IDS, size=n + n // 4, replace=False), sample)
    return [str(i) for i in sample] + [str(i) for i in rng.permutation(rest)[:n - len(sample)]]


def scifact_titles(n: int) -> List[str]:
    titles = []
    with open(data_dir() / "beir" / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            titles.append(json.loads(line)["title"])
    return list(dict.fromkeys(titles))[:n]  # distinct, in corpus order


def random_sequences(n: int, vocab: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(1, 17, n))])
    return rng.integers(0, vocab, offsets[-1]).astype(np.int32), offsets


# ---- the baseline: a dict trie behind prefix_allowed_tokens_fn -----------------------------

class DictTrie:
    """What users write for transformers' prefix_allowed_tokens_fn (GENRE's
    trie): nested dicts, the path walked from the root at every call."""

    END = -1

    def __init__(self, sequences: Sequence[Sequence[int]]):
        self.root: Dict[int, Any] = {}
        for seq in sequences:
            node = self.root
            for t in seq:
                node = node.setdefault(t, {})
            node[self.END] = None

    def allowed(self, prefix: Sequence[int], eos: int) -> List[int]:
        node = self.root
        for t in prefix:
            node = node.get(t)
            if node is None:
                return [eos]
        tokens = [t for t in node if t != self.END]
        return tokens + [eos] if self.END in node else tokens


# ---- measuring ------------------------------------------------------------------------------

def walk_rows(sequences: List[List[int]], batch: int, seed: int = 1) -> List[List[int]]:
    """`batch` allowed sequences of the set's most common length (the rows of
    one beam search walk in step)."""
    by_length: Dict[int, List[int]] = {}
    for i, s in enumerate(sequences):
        by_length.setdefault(len(s), []).append(i)
    common = max(by_length.values(), key=len)
    picks = random.Random(seed).sample(common, min(batch, len(common)))
    return [list(sequences[i]) for i in (picks * batch)[:batch]]


def timed_walk(rows: List[List[int]], start: Callable[[], Any], step: Callable[[Any, int], Any],
               repeat: int) -> float:
    """Median µs of one step: `step(state, i)` consumes column i of `rows`;
    every walk starts afresh from `start()`."""
    times = []
    for _ in range(repeat):
        state = start()
        for i in range(len(rows[0])):
            begin = time.perf_counter()
            state = step(state, i)
            times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1e6


def processor_step_us(processor_factory: Callable[[], Any], rows: List[List[int]], prompt: List[int],
                      vocab: int, torch: Any, repeat: int) -> float:
    """Median µs of processor(input_ids, scores) along the walk."""
    scores = torch.randn(len(rows), vocab)
    ids = torch.tensor([prompt + r for r in rows])
    p = len(prompt)

    def step(processor, i):
        processor(ids[:, :p + i], scores)
        return processor
    return timed_walk(rows, processor_factory, step, repeat)


def allowed_sets_of_rk(trie, rows: List[List[int]], eos: int) -> List[List[int]]:
    """Each step's allowed tokens (row 0) from mask_logits, for the identity check."""
    states, out = trie.start(1), []
    for t in rows[0] + [None]:
        logits = np.zeros((1, trie.vocab_size), np.float32)
        trie.mask_logits(states, logits, eos_token_id=eos)
        out.append(np.flatnonzero(np.isfinite(logits[0])).tolist())
        if t is not None:
            states = trie.advance(states, [t])
    return out


# ---- the peers: the same strings compiled as an alternation ---------------------------------

def ebnf_literal(s: str) -> str:
    """A string as an xgrammar EBNF literal (quotes, backslashes, controls escaped)."""
    out = []
    for ch in s:
        if ch in "\\\"":
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def regex_literal(s: str) -> str:
    """A string as a Rust-regex literal (outlines-core): only metacharacters escaped."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$#&-~" else
                   "\\x%02x" % ord(ch) if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in s)


class XGrammarPeer:
    """xgrammar: GrammarCompiler.compile_grammar on ``root ::= "s1" | "s2" | ...``
    (cache off, 2 threads); one GrammarMatcher per row."""

    name = "xgrammar"

    def __init__(self, texts: List[str], tokenizer: Any, info: Any, threads: int):
        import xgrammar as xgr

        self.xgr = xgr
        compiler = xgr.GrammarCompiler(info, max_threads=threads, cache_enabled=False)
        grammar = "root ::= " + " | ".join(ebnf_literal(t) for t in texts) + "\n"
        begin = time.perf_counter()
        self.compiled = compiler.compile_grammar(grammar)
        self.compile_s = time.perf_counter() - begin
        self.bytes = self.compiled.memory_size_bytes
        self.vocab = len(tokenizer)

    def start(self, batch: int) -> Any:
        return [self.xgr.GrammarMatcher(self.compiled) for _ in range(batch)]

    def bitmask(self, batch: int) -> Any:
        return self.xgr.allocate_token_bitmask(batch, self.vocab)

    def fill(self, matchers: Any, bitmask: Any) -> None:
        for row, m in enumerate(matchers):
            m.fill_next_token_bitmask(bitmask, row)

    def apply(self, logits: Any, bitmask: Any) -> None:
        self.xgr.apply_token_bitmask_inplace(logits, bitmask)

    def accept(self, matchers: Any, tokens: Sequence[int]) -> None:
        for m, t in zip(matchers, tokens):
            m.accept_token(t)


class OutlinesPeer:
    """outlines-core: Index over the regex ``(s1|s2|...)`` and SmolLM2's
    vocabulary (built offline from the tokenizer's byte-level pieces); one
    Guide per row, masks written by write_mask_into."""

    name = "outlines-core"

    def __init__(self, texts: List[str], tokenizer: Any, vocabulary: Any):
        import outlines_core

        self.oc = outlines_core
        regex = "(" + "|".join(regex_literal(t) for t in texts) + ")"
        begin = time.perf_counter()
        self.index = outlines_core.Index(regex, vocabulary)
        self.compile_s = time.perf_counter() - begin
        self.bytes = None
        self.words = (len(tokenizer) + 31) // 32

    def start(self, batch: int) -> Any:
        return [self.oc.Guide(self.index) for _ in range(batch)]

    def bitmask(self, batch: int) -> Any:
        return np.zeros((batch, self.words), np.int32)

    def fill(self, guides: Any, bitmask: Any) -> None:
        base, stride = bitmask.ctypes.data, bitmask.strides[0]
        for row, g in enumerate(guides):
            g.write_mask_into(base + row * stride, self.words, 4)

    apply = None  # outlines-core has no logits op of its own

    def accept(self, guides: Any, tokens: Sequence[int]) -> None:
        for g, t in zip(guides, tokens):
            g.advance(t, return_tokens=False)


def outlines_vocabulary(tokenizer: Any) -> Any:
    """outlines_core.Vocabulary from a byte-level BPE tokenizer, offline
    (Vocabulary.from_pretrained downloads): each token's bytes, EOS and the
    special tokens left out, as from_pretrained does."""
    import outlines_core

    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    byte_of = {chr(b): b for b in printable}
    byte_of.update({chr(256 + i): b for i, b in enumerate(b for b in range(256) if b not in printable)})
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    pieces: Dict[bytes, List[int]] = {}
    for piece, token in tokenizer.get_vocab().items():
        if token not in special and token != tokenizer.eos_token_id:
            key = bytes(byte_of[c] for c in piece) if all(c in byte_of for c in piece) else piece.encode()
            pieces.setdefault(key, []).append(token)
    return outlines_core.Vocabulary(tokenizer.eos_token_id, pieces)


def peer_allowed_sets(peer: Any, row: List[int], vocab: int) -> List[List[int]]:
    """Each step's allowed tokens of a peer along `row` (then at its end)."""
    matchers, out = peer.start(1), []
    for t in row + [None]:
        bitmask = peer.bitmask(1)
        peer.fill(matchers, bitmask)
        words = np.asarray(bitmask).view(np.uint8)
        out.append(np.flatnonzero(np.unpackbits(words, bitorder="little")[:vocab]).tolist())
        if t is not None:
            peer.accept(matchers, [t])
    return out


def differing_steps(got: List[List[int]], want: List[List[int]]) -> str:
    """'0', or how many steps differ and by which extra/missing tokens in all."""
    extra = sum(len(set(g) - set(w)) for g, w in zip(got, want))
    missing = sum(len(set(w) - set(g)) for g, w in zip(got, want))
    steps = sum(g != w for g, w in zip(got, want))
    return "0" if steps == 0 else f"{steps} ({extra} extra, {missing} missing tokens)"


# ---- one allowed set -----------------------------------------------------------------------

def bench_set(name: str, sequences: List[List[int]], texts: List[str] | None, tokenizer: Any, rk: Any,
              torch: Any, peer_makers: Dict[str, Callable[[List[str]], Any]], repeat: int
              ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    vocab, eos, n = len(tokenizer), tokenizer.eos_token_id, len(sequences)
    lengths = np.fromiter((len(s) for s in sequences), np.int64, count=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.fromiter((t for s in sequences for t in s), np.int32, count=int(offsets[-1]))
    begin = time.perf_counter()
    trie = rk.spec.Trie.build((values, offsets), vocab_size=vocab)
    rk_s = time.perf_counter() - begin
    begin = time.perf_counter()
    dict_trie = DictTrie(sequences)
    dict_s = time.perf_counter() - begin
    key = {"set": name, "sequences": n}
    builds = [dict(key, system="rk Trie.build", seconds=rk_s, MB=trie.memory_bytes / 2**20, tokens=int(offsets[-1])),
              dict(key, system="dict trie", seconds=dict_s)]
    peers = []
    for peer_name, make in peer_makers.items():
        if texts is None:
            continue
        peer = make(texts)
        peers.append(peer)
        builds.append(dict(key, system=peer_name, seconds=peer.compile_s,
                           MB=peer.bytes / 2**20 if peer.bytes else "", **{"× rk": peer.compile_s / rk_s}))

    steps: List[Dict[str, Any]] = []
    prompt = tokenizer.encode("Cite one:", add_special_tokens=False)
    p = len(prompt)
    for batch in (1, 8):
        rows = walk_rows(sequences, batch)
        at = lambda i: [r[i] for r in rows]  # noqa: E731
        key = {"set": name, "sequences": n, "batch": batch, "steps": len(rows[0])}
        want = [sorted(dict_trie.allowed(rows[0][:i], eos)) for i in range(len(rows[0]) + 1)]
        from transformers import PrefixConstrainedLogitsProcessor
        hf_us = processor_step_us(
            lambda: PrefixConstrainedLogitsProcessor(lambda b, ids: dict_trie.allowed(ids[p:].tolist(), eos), batch),
            rows, prompt, vocab, torch, repeat)
        steps.append(dict(key, system="hf PrefixConstrained + dict trie", **{"processor µs": hf_us,
                                                                             "allowed sets ≠ dict trie": "0"}))
        logits = np.zeros((batch, vocab), np.float32)

        def rk_mask(states, i):
            trie.mask_logits(states, logits, eos_token_id=eos)
            return trie.advance(states, np.array(at(i), np.int32))

        def rk_bitmask(states, i):
            trie.next_token_bitmask(states)
            return trie.advance(states, np.array(at(i), np.int32))
        rk_row = dict(key, system="rk Trie")
        rk_row["bitmask+advance µs"] = timed_walk(rows, lambda: trie.start(batch), rk_bitmask, repeat)
        rk_row["mask logits+advance µs"] = timed_walk(rows, lambda: trie.start(batch), rk_mask, repeat)
        rk_row["processor µs"] = processor_step_us(
            lambda: rk.hf.TrieConstraint(trie, eos_token_id=eos, prompt_length=p), rows, prompt, vocab, torch, repeat)
        rk_row["allowed sets ≠ dict trie"] = differing_steps(allowed_sets_of_rk(trie, rows, eos), want)
        steps.append(rk_row)
        for peer in peers:
            bitmask, torch_logits = peer.bitmask(batch), torch.zeros(batch, vocab)

            def peer_bitmask(matchers, i, peer=peer, bitmask=bitmask):
                peer.fill(matchers, bitmask)
                peer.accept(matchers, at(i))
                return matchers

            def peer_mask(matchers, i, peer=peer, bitmask=bitmask):
                peer.fill(matchers, bitmask)
                peer.apply(torch_logits, bitmask)
                peer.accept(matchers, at(i))
                return matchers
            row = dict(key, system=peer.name)
            row["bitmask+advance µs"] = timed_walk(rows, lambda: peer.start(batch), peer_bitmask, repeat)
            if peer.apply is not None:
                row["mask logits+advance µs"] = timed_walk(rows, lambda: peer.start(batch), peer_mask, repeat)
            row["allowed sets ≠ dict trie"] = differing_steps(peer_allowed_sets(peer, rows[0], vocab), want)
            steps.append(row)
    return builds, steps


def run(tokenizer: Any, rk: Any, torch: Any, sizes: Sequence[int], peer_max: int, threads: int,
        meta: Dict[str, Any], repeat: int = 20) -> None:
    """Every set at every size; the peers up to `peer_max` strings (their
    compile grows past minutes beyond: docs/benchmarks.md)."""
    import xgrammar as xgr

    vocab = len(tokenizer)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab, stop_token_ids=[tokenizer.eos_token_id])
    vocabulary = outlines_vocabulary(tokenizer)
    peer_makers = {"xgrammar": lambda texts: XGrammarPeer(texts, tokenizer, info, threads),
                   "outlines-core": lambda texts: OutlinesPeer(texts, tokenizer, vocabulary)}
    builds, steps = [], []
    for name in ("msmarco ids", "scifact titles", "random"):
        done = set()
        for n in sizes:
            if name == "random":
                values, offsets = random_sequences(n, vocab)
                sequences, texts = [values[offsets[i]:offsets[i + 1]].tolist() for i in range(n)], None
            else:
                strings = msmarco_ids(n) if name == "msmarco ids" else scifact_titles(n)
                if len(strings) in done:
                    continue  # fewer titles than asked: already run at this size
                done.add(len(strings))
                texts = [PREFIX + s + SUFFIX for s in strings]
                sequences = tokenizer(texts, add_special_tokens=False)["input_ids"]
            makers = peer_makers if len(sequences) <= peer_max else {}
            b, st = bench_set(name, sequences, texts, tokenizer, rk, torch, makers, repeat)
            builds += b
            steps += st
            print(*b, *st, sep="\n", flush=True)
    print(write_results("spec_trie_build", builds, ["set", "sequences", "system", "seconds", "× rk", "MB", "tokens"],
                        meta))
    print(write_results("spec_trie_step", steps, ["set", "sequences", "batch", "steps", "system",
                                                   "bitmask+advance µs", "mask logits+advance µs", "processor µs",
                                                   "allowed sets ≠ dict trie"], meta))
