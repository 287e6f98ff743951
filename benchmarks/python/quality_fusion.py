"""Retrieval quality of hybrid fusion: nDCG@10 of BM25, dense, and their fusions.

Datasets: BEIR SciFact (test: 300 queries; train: 809 queries for weight
search) and CACM (64 queries, 52 judged; no training split). Runs, top
``--depth`` (default 100) per query:

* ``bm25``: ragkernels.sparse.BM25Index (Lucene BM25, k1=0.9, b=0.4, title +
  text), the anserini BEIR "flat" setting;
* ``dense``: all-MiniLM-L6-v2, exact inner-product top-k (rk.dense.FlatIndex) over
  normalized vectors from ``--embeddings DIR`` ({name}_docs.npy,
  {name}_queries.npy, {name}_ids.json) or, without it, encoded here with
  ``ragkernels.hf.Encoder``.

Rows: each run alone; every fusion method of ragkernels.fusion with ranx's
default min-max norm (weighted ones with equal weights; gmnz gamma=1,
rbc phi=0.9); ``wsum`` and ``rrf`` with parameters searched on SciFact train
by ``optimize_fusion`` (nDCG@10; CACM uses the SciFact-trained values: a
transfer, it has no training split); and ``wsum`` with per-query adaptive
weights from ``idf_weights`` (sparse weight rises with the query's mean
normalized IDF), with the default range [0.2, 0.8] and with (low, high)
searched on SciFact train. nDCG@10 is trec_eval's ndcg_cut.10 (rk.metrics).
Run:

    python benchmarks/python/quality_fusion.py --embeddings /tmp/emb

(``--quick``: the first 60 queries of each split, for checking the script.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from _common import data_dir, machine, read_beir_qrels, versions, write_results

DATASETS = {"scifact": "beir/scifact", "cacm": "classic/cacm"}
FIXED = {"gmnz": {"gamma": 1.0}, "rbc": {"phi": 0.9}}


def dense_vectors(name: str, base: Path, docs: List[dict], queries: Dict[str, str], emb: str):
    """(doc ids, doc vectors, {query id: row}, query vectors)."""
    if emb:
        ids = json.load(open(Path(emb) / f"{name}_ids.json"))
        return (ids["doc_ids"], np.load(Path(emb) / f"{name}_docs.npy"),
                {q: i for i, q in enumerate(ids["query_ids"])}, np.load(Path(emb) / f"{name}_queries.npy"))
    import ragkernels as rk

    encoder = rk.hf.Encoder()
    dv = encoder.encode([(d.get("title", "") + " " + d["text"]).strip() for d in docs])
    qids = list(queries)
    qv = encoder.encode([queries[q] for q in qids])
    return [d["_id"] for d in docs], np.asarray(dv, np.float32), {q: i for i, q in enumerate(qids)}, \
        np.asarray(qv, np.float32)


def dense_run(qids, doc_ids, dv, qrow, qv, depth):
    import ragkernels as rk

    index = rk.dense.FlatIndex(dv, metric="ip", ids=doc_ids)
    ids, scores = index.search(np.ascontiguousarray(qv[[qrow[q] for q in qids]]), k=depth)
    return index.to_run(ids, scores, qids)


def load(name: str, args) -> Dict[str, object]:
    import ragkernels as rk

    base = data_dir() / DATASETS[name]
    docs = [json.loads(line) for line in open(base / "corpus.jsonl")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(base / "queries.jsonl"))}
    index = rk.sparse.BM25Index.build([(d.get("title", "") + " " + d["text"]).strip() for d in docs],
                                      ids=[d["_id"] for d in docs], k1=0.9, b=0.4)
    vectors = dense_vectors(name, base, docs, queries, args.embeddings)
    splits = {}
    for split in ("test", "train"):
        path = base / "qrels" / f"{split}.tsv"
        if not path.is_file():
            continue
        qrels = read_beir_qrels(path)
        qids = sorted(q for q in queries if q in qrels)  # judged queries only
        if args.quick:
            qids = qids[:60]
        d, s = index.search([queries[q] for q in qids], k=args.depth)
        bm25 = index.to_run(d, s, qids)
        dense = dense_run(qids, *vectors, args.depth)
        splits[split] = {"qrels": qrels, "qids": qids, "runs": [bm25, dense],
                         "queries": {q: queries[q] for q in qids}}
    return {"index": index, "splits": splits}


def ndcg10(qrels, run) -> float:
    import ragkernels as rk

    return float(rk.metrics.evaluate(qrels, run, "ndcg_cut.10").summary["ndcg_cut_10"])


def tune_idf_range(index, train, step=0.1):
    """(low, high) of idf_weights maximizing train nDCG@10, low <= high."""
    import ragkernels as rk

    grid = [round(x, 1) for x in np.arange(0, 1 + step / 2, step)]
    best, best_score = (0.2, 0.8), -1.0
    df_cache = None
    for low in grid:
        for high in grid:
            if high < low:
                continue
            if df_cache is None:
                df_cache = dict(zip(index.vocabulary, index.document_frequencies().tolist()))
            w = rk.fusion.idf_weights(index, train["queries"], low=low, high=high, df=df_cache)
            score = ndcg10(train["qrels"], rk.fusion.fuse(train["runs"], method="wsum", weights=w))
            if score >= best_score:
                best, best_score = (low, high), score
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embeddings", default="", help="folder of precomputed embeddings (see the docstring)")
    ap.add_argument("--datasets", default="scifact,cacm")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import ragkernels as rk

    data = {name: load(name, args) for name in args.datasets.split(",")}
    trained: Dict[str, object] = {}
    if "scifact" in data and "train" in data["scifact"]["splits"]:
        train = data["scifact"]["splits"]["train"]
        t0 = time.perf_counter()
        trained["wsum"] = rk.fusion.optimize_fusion(train["qrels"], train["runs"], method="wsum", metric="ndcg@10")
        trained["rrf"] = rk.fusion.optimize_fusion(train["qrels"], train["runs"], method="rrf", metric="ndcg@10")
        trained["idf"] = tune_idf_range(data["scifact"]["index"], train)
        trained["search_s"] = time.perf_counter() - t0
    rows = []
    for name, d in data.items():
        test = d["splits"]["test"]
        qrels, runs = test["qrels"], test["runs"]
        rows.append({"dataset": name, "system": "bm25", "ndcg@10": ndcg10(qrels, runs[0])})
        rows.append({"dataset": name, "system": "dense", "ndcg@10": ndcg10(qrels, runs[1])})
        for method in rk.fusion.METHODS:
            params = dict(FIXED.get(method, {}))
            if method in ("wsum", "wmnz", "mixed", "wrrf", "w_bordafuse"):
                params["weights"] = [0.5, 0.5]
            fused = rk.fusion.fuse(runs, method=method, params=params)
            rows.append({"dataset": name, "system": f"{method} (min-max)", "params": json.dumps(params),
                         "ndcg@10": ndcg10(qrels, fused)})
        for method in ("wsum", "rrf"):
            if method in trained:
                fused = rk.fusion.fuse(runs, method=method, params=trained[method])
                rows.append({"dataset": name, "system": f"{method}, tuned on SciFact train",
                             "params": json.dumps(trained[method]), "ndcg@10": ndcg10(qrels, fused)})
        ranges = [(0.2, 0.8, "default range")]
        if "idf" in trained:
            ranges.append((*trained["idf"], "range tuned on SciFact train"))
        for low, high, what in ranges:
            w = rk.fusion.idf_weights(d["index"], test["queries"], low=low, high=high)
            fused = rk.fusion.fuse(runs, method="wsum", weights=w)
            rows.append({"dataset": name, "system": f"wsum, adaptive IDF weights ({what})",
                         "params": json.dumps({"low": low, "high": high}), "ndcg@10": ndcg10(qrels, fused)})
    meta = {"machine": machine(), "depth": args.depth, "quick": args.quick, "trained": trained,
            "embeddings": args.embeddings or "rk.hf.Encoder", "command": " ".join(sys.argv),
            "versions": versions({"ragkernels": "ragkernels", "numpy": "numpy"})}
    print(write_results("quality_fusion-quick" if args.quick else "quality_fusion", rows,
                        ["dataset", "system", "params", "ndcg@10"], meta))


if __name__ == "__main__":
    main()
