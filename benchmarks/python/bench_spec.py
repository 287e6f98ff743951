"""Speculative decoding with SmolLM2-135M-Instruct: ragkernels' drafters and
loop against plain greedy and transformers' prompt lookup, one run.

Prompts (benchmarks/python/_spec_prompts.py): SciFact test claims and TREC DL
2019 queries with their BM25 top 5 passages compressed by
``rk.select.compress`` (lexical, 180 words), asking for an answer from the
passages; and open-ended prompts where copying does not help. All in
SmolLM2's chat template, greedy, ``--max-new-tokens`` each.

Systems, batch 1, prompt-major order (every system runs prompt i before any
runs prompt i + 1, so a drift of the machine's load hits all alike):

- ``greedy``: ``model.generate(do_sample=False)``, the reference output;
- ``hf prompt lookup``: ``generate(prompt_lookup_num_tokens=10)``;
- ``rk prompt lookup``: ``PromptLookupDrafter`` chains, a fixed 8-token
  draft and the adaptive length;
- ``rk suffix``: ``SuffixDrafter`` trees (earlier answers of the run
  accumulate in it, as in a serving process), adaptive;
- ``rk retrieval``: ``RetrievalDrafter`` over a datastore of SciFact + CACM +
  the MS MARCO sample tokenized with SmolLM2's tokenizer (about 5M tokens),
  adaptive;
- ``... in another vocabulary``: the retrieval drafter over the same corpora
  tokenized with a 16k byte-level BPE trained on them, and a suffix drafter
  in that vocabulary, both through ``VocabBridge`` (the cross-vocabulary
  case: a drafter built for another model's tokenizer).

One drafter object per system for the whole run, as a serving process
keeps one: suffix drafters accumulate the answers, the adaptive policy its
calibration.

Per system: forwards per generated token (a forward hook counts the model's
calls, prefill included), mean accepted tokens per step, drafter µs per
draft call, end-to-end tokens/s (sum of tokens / sum of seconds) and the
number of outputs identical to greedy. Batch 8: plain batched greedy
against ragkernels' batched loop on the first 8 RAG prompts (left padding;
3 rounds interleaved, median time),
rows compared with the batched greedy rows.

Drafter cost per call on the same contexts (each RAG prompt and its greedy
answer, the earlier answers in the global tree): our ``SuffixDrafter``
against arctic-inference's SuffixDecoding cache when built
(``bash benchmarks/python/build_arctic_suffix.sh``), plus every drafter on a
4,096-token request context. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_spec.py

(``--parts batch1,batch8,costs`` by default; costs replays the greedy
answers batch1 saved.)
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from _common import RESULTS, machine, versions, write_results
from _spec_prompts import open_prompts, rag_prompts

CACHE = Path.home() / ".cache" / "ragkernels" / "bench"


def corpus_texts(rk):
    """SciFact + CACM + the MS MARCO sample, as texts."""
    from _common import data_dir

    root = data_dir()
    corpora = [rk.data.read_corpus(root / "beir" / "scifact" / "corpus.jsonl"),
               rk.data.read_corpus(root / "classic" / "cacm" / "corpus.jsonl"),
               rk.data.read_msmarco_collection(root / "msmarco-passage" / "collection.subset.tsv")]
    return [t for c in corpora for t in c.full_texts()]


def corpus_datastore(tokenizer, rk, name="smollm2"):
    """The datastore of the shared corpora in `tokenizer`'s ids, built once and cached."""
    path = CACHE / f"datastore-{name}.rkds"
    if path.is_file():
        return rk.spec.Datastore.load(path)
    ids = tokenizer(corpus_texts(rk), add_special_tokens=False)["input_ids"]
    store = rk.spec.Datastore.build(ids, vocab_size=len(tokenizer), show_progress=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    store.save(path)
    return store


def bridged_retrieval_drafter(tokenizer, rk):
    """The retrieval drafter over the corpora in the other tokenizer's ids, bridged to `tokenizer`."""
    other = other_tokenizer(rk)
    store = corpus_datastore(other, rk, name="other-bpe-16384")
    return rk.spec.VocabBridge.from_tokenizers(rk.spec.RetrievalDrafter(store), other, tokenizer)


def other_tokenizer(rk, vocab_size=16384):
    """A byte-level BPE tokenizer trained on the shared corpora, the drafter
    side of the cross-vocabulary systems (another model's tokenizer would do;
    none ships offline). Trained once and cached."""
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    path = CACHE / f"other-bpe-{vocab_size}.json"
    if not path.is_file():
        tok = tokenizers.Tokenizer(tokenizers.models.BPE())
        tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tokenizers.decoders.ByteLevel()
        trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"],
                                                 initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(corpus_texts(rk), trainer)
        CACHE.mkdir(parents=True, exist_ok=True)
        tok.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<eos>")


class ForwardCounter:
    """Counts the model's forward calls (a hook on the top module)."""

    def __init__(self, model):
        self.calls = 0
        model.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


def encode(tokenizer, messages, torch):
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    return out["input_ids"]


def run_batch1(model, tokenizer, prompts, systems: Dict[str, Callable], counter, max_new_tokens, torch):
    """{system: [per prompt: tokens, seconds, forwards, accepted, drafter_us, output]}"""
    results: Dict[str, List[Dict[str, object]]] = {name: [] for name in systems}
    for i, prompt in enumerate(prompts):
        ids = encode(tokenizer, prompt["messages"], torch)
        for name, generate in systems.items():
            counter.calls = 0
            start = time.perf_counter()
            out, stats = generate(ids)
            seconds = time.perf_counter() - start
            new = out[0, ids.shape[1]:].tolist()
            row = {"prompt": prompt["id"], "kind": prompt["kind"], "tokens": len(new), "seconds": seconds,
                   "forwards": counter.calls, "output": new}
            if stats is not None:
                row["accepted"] = [a for r in stats.rows for a in r.accepted]
                row["drafter_us"] = [u for r in stats.rows for u in r.drafter_us]
            results[name].append(row)
        print(f"  prompt {i + 1}/{len(prompts)} {prompt['id']}: "
              + ", ".join(f"{n} {results[n][-1]['tokens'] / results[n][-1]['seconds']:.1f} tok/s" for n in systems),
              flush=True)
    return results


def summarize(results, kinds, reference="greedy"):
    rows = []
    base_tps = None
    for name, per_prompt in results.items():
        sel = [r for r in per_prompt if r["kind"] in kinds]
        ref = {r["prompt"]: r["output"] for r in results[reference] if r["kind"] in kinds}
        tokens = sum(r["tokens"] for r in sel)
        seconds = sum(r["seconds"] for r in sel)
        forwards = sum(r["forwards"] for r in sel)
        accepted = [a for r in sel for a in r.get("accepted", [])]
        drafter = [u for r in sel for u in r.get("drafter_us", [])]
        tps = tokens / seconds
        base_tps = tps if name == reference else base_tps
        rows.append({"system": name, "prompts": len(sel), "tokens": tokens,
                     "forwards/token": forwards / tokens,
                     "accepted/step": float(np.mean(accepted)) if accepted else float("nan"),
                     "drafter µs/call (median)": float(np.median(drafter)) if drafter else float("nan"),
                     "tokens/s": tps,
                     "identical to greedy": f"{sum(r['output'] == ref[r['prompt']] for r in sel)}/{len(sel)}"})
    for row in rows:
        row["× greedy"] = row["tokens/s"] / base_tps
    return rows


def run_batch8(model, tokenizer, prompts, rk, torch, max_new_tokens, drafter_factory, rounds=3):
    """Plain batched greedy and each drafter on one left-padded batch,
    `rounds` times interleaved (greedy, drafter 1, drafter 2, greedy, ...):
    the median seconds per system, so a drift of the machine hits all alike."""
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=False) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    eos = model.generation_config.eos_token_id

    def count(seqs):
        n = 0
        for row in seqs[:, batch["input_ids"].shape[1]:].tolist():
            n += next((i + 1 for i, t in enumerate(row) if t == eos), len(row))
        return n

    def greedy():
        return model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens), None

    def speculative(factory):
        def run():
            out = rk.hf.speculative_generate(model, batch["input_ids"], factory(), max_new_tokens=max_new_tokens,
                                             attention_mask=batch["attention_mask"], draft="adaptive")
            return out.sequences, out.spec_stats
        return run

    systems = {"greedy, batch 8": greedy}
    systems.update({f"{name}, batch 8": speculative(factory) for name, factory in drafter_factory.items()})
    seconds = {name: [] for name in systems}
    outputs = {}
    for _ in range(rounds):
        for name, run in systems.items():
            start = time.perf_counter()
            outputs[name] = run()
            seconds[name].append(time.perf_counter() - start)
    plain = outputs["greedy, batch 8"][0]
    rows = []
    for name in systems:
        sequences, stats = outputs[name]
        row = {"system": name, "tokens": count(sequences), "seconds (median)": statistics.median(seconds[name]),
               "rounds": rounds}
        if stats is not None:
            same = sum(torch.equal(a, b) for a, b in zip(sequences, plain))
            row.update({"rows identical to batched greedy": f"{same}/{len(prompts)}",
                        "accepted/step": stats.mean_accepted})
        row["tokens/s"] = row["tokens"] / row["seconds (median)"]
        rows.append(row)
    for r in rows:
        r["× greedy"] = r["tokens/s"] / rows[0]["tokens/s"]
    return rows


def drafter_costs(rk, prompts_ids, answers, max_depth=32):
    """Median/p99 µs per draft call of our drafters (compiled call timed from
    Python, so including the binding) on each RAG prompt + greedy answer, the
    earlier answers in the suffix drafter's global tree; and arctic's
    speculate on the same contexts when built."""
    import _arctic_suffix as arctic

    rows = []
    suffix = rk.spec.SuffixDrafter(max_depth=max_depth)
    times = []
    queries = []
    for i, (prompt, answer) in enumerate(zip(prompts_ids, answers)):
        session = suffix.start(prompt)
        for t in range(len(answer)):
            start = time.perf_counter_ns()
            session.draft(max_depth)
            times.append((time.perf_counter_ns() - start) / 1e3)
            session.extend(answer[t:t + 1])
            queries.append((i, list(prompt) + answer[:t], answer[t - 1:t] if t else []))
        session.finish()  # the answer joins the global tree, as in serving
    rows.append({"drafter": f"rk SuffixDrafter (depth {max_depth})", "calls": len(times),
                 "median µs": statistics.median(times), "p99 µs": float(np.percentile(times, 99))})
    if arctic.available():
        for depth in (max_depth, 64):
            # arctic's global tree holds the earlier answers: time prompt i's queries
            # with answers 0..i-1 cached, one prompt at a time.
            arctic_times = []
            for i, prompt in enumerate(prompts_ids):
                qs = [(0, q[1], q[2]) for q in queries if q[0] == i]
                res = arctic.time_speculate([prompt], answers[:i], qs, max_tree_depth=depth,
                                            max_spec_tokens=max_depth, warmup=0)
                arctic_times.extend(res["times_us"])
            rows.append({"drafter": f"arctic-inference SuffixDecodingCache (depth {depth})", "calls": len(arctic_times),
                         "median µs": statistics.median(arctic_times),
                         "p99 µs": float(np.percentile(arctic_times, 99))})
    return rows


def long_context_costs(rk, prompts_ids, store, bridged_retrieval, calls=2000):
    """Drafters on one 4,096-token request context (RAG prompts concatenated):
    µs per draft call, each after extending by one token."""
    context = np.concatenate([np.asarray(p) for p in prompts_ids])
    while len(context) < 4096 + calls:
        context = np.concatenate([context, context])
    prompt, tail = context[:4096], context[4096:4096 + calls]
    out = []
    for name, drafter in [("rk PromptLookupDrafter", rk.spec.PromptLookupDrafter(max_depth=16)),
                          ("rk SuffixDrafter", rk.spec.SuffixDrafter(max_depth=32)),
                          ("rk RetrievalDrafter (5M-token datastore)", rk.spec.RetrievalDrafter(store)),
                          ("rk RetrievalDrafter in another vocabulary (VocabBridge)", bridged_retrieval)]:
        session = drafter.start(prompt)
        times = []
        for t in tail:
            start = time.perf_counter_ns()
            session.draft(32)
            times.append((time.perf_counter_ns() - start) / 1e3)
            session.extend(np.array([t]))
        out.append({"drafter": name, "context tokens": 4096, "calls": calls, "median µs": statistics.median(times),
                    "p99 µs": float(np.percentile(times, 99))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scifact", type=int, default=8)
    ap.add_argument("--dl", type=int, default=8)
    ap.add_argument("--open", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="batch1,batch8,costs",
                    help="comma-separated: batch1, batch8, costs (replays the greedy answers batch1 saved), "
                         "trie (constrained decoding: _spec_trie_bench.py)")
    ap.add_argument("--trie-sizes", default="1000,100000,1000000", help="allowed-set sizes of the trie part")
    ap.add_argument("--peer-max", type=int, default=100_000,
                    help="largest set compiled by xgrammar and outlines-core in the trie part")
    args = ap.parse_args()

    import torch

    import ragkernels as rk
    from ragkernels.hf.smollm2 import load_smollm2

    torch.set_num_threads(args.threads)
    rk.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    if not parts <= {"batch1", "batch8", "costs", "trie"}:
        ap.error(f"--parts: any of batch1, batch8, costs, trie, got {args.parts}")
    model, tokenizer = load_smollm2()
    prompts = rag_prompts(args.scifact, args.dl) + open_prompts(args.open)
    meta = {"machine": machine(), "threads": args.threads, "max_new_tokens": args.max_new_tokens,
            "versions": versions({"torch": "torch", "transformers": "transformers", "ragkernels": "ragkernels",
                                  "xgrammar": "xgrammar", "outlines-core": "outlines_core"}),
            "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_spec.py "
                       f"--parts {args.parts}"}
    if "trie" in parts:
        from _spec_trie_bench import run as run_trie
        run_trie(tokenizer, rk, torch, [int(n) for n in args.trie_sizes.split(",")], args.peer_max, args.threads,
                 dict(meta, command=meta["command"] + f" --trie-sizes {args.trie_sizes} --peer-max {args.peer_max}"))
    if "batch1" in parts:
        batch1(model, tokenizer, prompts, rk, torch, args.max_new_tokens, meta)
    if "costs" in parts:
        costs(tokenizer, prompts, rk, torch, meta)
    if "batch8" in parts:
        rag = [p for p in prompts if p["kind"] != "open"][:8]
        rows = run_batch8(model, tokenizer, rag, rk, torch, args.max_new_tokens, {
            "rk prompt lookup, adaptive": lambda: rk.spec.PromptLookupDrafter(max_depth=16),
            "rk suffix tree, adaptive": lambda: rk.spec.SuffixDrafter(max_depth=32)})  # fresh: no answers seen
        print("Batch 8\n" + write_results("spec_batch8", rows, ["system", "tokens", "rounds", "seconds (median)",
                                                                "tokens/s", "× greedy", "accepted/step",
                                                                "rows identical to batched greedy"], meta))


def batch1(model, tokenizer, prompts, rk, torch, n, meta) -> None:
    """Every system prompt by prompt, then the drafter costs on the same contexts."""
    counter = ForwardCounter(model)
    store = corpus_datastore(tokenizer, rk)
    other = other_tokenizer(rk)
    # One drafter object per system, as a serving process keeps one: the suffix
    # drafters accumulate the answers, the adaptive policy its calibration.
    lookup = rk.spec.PromptLookupDrafter(max_depth=16)
    suffix = rk.spec.SuffixDrafter(max_depth=32)
    suffix4 = rk.spec.SuffixDrafter(max_depth=32, max_spec_factor=4.0, min_probability=0.2)
    retrieval = rk.spec.RetrievalDrafter(store)
    bridged_retrieval = bridged_retrieval_drafter(tokenizer, rk)
    bridged_suffix = rk.spec.VocabBridge.from_tokenizers(
        rk.spec.SuffixDrafter(max_depth=32, max_spec_factor=4.0, min_probability=0.2), other, tokenizer)

    def greedy(ids):
        return model.generate(ids, do_sample=False, max_new_tokens=n), None

    def hf_lookup(ids):
        return model.generate(ids, do_sample=False, max_new_tokens=n, prompt_lookup_num_tokens=10), None

    def rk_loop(drafter, draft, tree=True):
        def run(ids):
            out = rk.hf.speculative_generate(model, ids, drafter, max_new_tokens=n, draft=draft, tree=tree)
            return out.sequences, out.spec_stats
        return run

    systems = {
        "greedy": greedy,
        "hf prompt lookup (10)": hf_lookup,
        "rk prompt lookup, chain 8": rk_loop(rk.spec.PromptLookupDrafter(max_depth=16), 8, tree=False),
        "rk prompt lookup, adaptive": rk_loop(lookup, "adaptive", tree=False),
        "rk suffix tree, adaptive": rk_loop(suffix, "adaptive"),
        "rk suffix tree (factor 4, floor 0.2), adaptive": rk_loop(suffix4, "adaptive"),
        "rk retrieval tree, adaptive": rk_loop(retrieval, "adaptive"),
        "rk retrieval tree in another vocabulary (VocabBridge), adaptive": rk_loop(bridged_retrieval, "adaptive"),
        "rk suffix tree (factor 4, floor 0.2) in another vocabulary (VocabBridge), adaptive":
            rk_loop(bridged_suffix, "adaptive"),
    }
    greedy(encode(tokenizer, prompts[0]["messages"], torch))  # warm-up
    print(f"batch 1: {len(prompts)} prompts x {len(systems)} systems", flush=True)
    results = run_batch1(model, tokenizer, prompts, systems, counter, n, torch)
    cols = ["system", "prompts", "tokens", "forwards/token", "accepted/step", "drafter µs/call (median)", "tokens/s",
            "× greedy", "identical to greedy"]
    print("\nRAG prompts\n" + write_results("spec_rag", summarize(results, {"claim", "question"}), cols, meta))
    print("Open-ended prompts\n" + write_results("spec_open", summarize(results, {"open"}), cols, meta))
    (RESULTS / "spec_outputs.json").write_text(json.dumps(results))


def costs(tokenizer, prompts, rk, torch, meta) -> None:
    """The drafters' cost per call, replaying the RAG prompts' greedy answers
    (saved by batch1)."""
    results = json.loads((RESULTS / "spec_outputs.json").read_text())
    store = corpus_datastore(tokenizer, rk)
    bridged_retrieval = bridged_retrieval_drafter(tokenizer, rk)
    rag_prompts_ids = [encode(tokenizer, p["messages"], torch)[0].tolist() for p in prompts if p["kind"] != "open"]
    answers = [r["output"] for r in results["greedy"] if r["kind"] != "open"]
    print("Drafter cost, same contexts\n" + write_results("spec_drafter_cost",
                                                          drafter_costs(rk, rag_prompts_ids, answers),
                                                          ["drafter", "calls", "median µs", "p99 µs"], meta))
    print("Drafter cost, 4k-token context\n" + write_results(
        "spec_long_context", long_context_costs(rk, rag_prompts_ids, store, bridged_retrieval),
        ["drafter", "context tokens", "calls", "median µs", "p99 µs"], meta))


if __name__ == "__main__":
    main()
