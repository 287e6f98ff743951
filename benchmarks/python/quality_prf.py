"""Effect of pseudo-relevance feedback on retrieval quality, on the shared data.

For BEIR SciFact and CACM: BM25 (Anserini's k1=0.9, b=0.4 over title + text)
against BM25 + RM3 (Anserini's defaults fb_docs=10, fb_terms=10,
original_weight=0.5) and BM25 + Rocchio (Anserini's defaults 10/10, alpha=1,
beta=0.75); dense retrieval (all-MiniLM-L6-v2, normalized, exact inner
product) against dense + vector Rocchio (5 docs, alpha=0.4, beta=0.6) and
average vector PRF (3 docs: the mean of the query and its docs). Runs hold
the top 1000; nDCG@10 and Recall@100 by ragkernels.metrics (trec_eval
semantics). Also: the latency of rm3_search / rocchio_search next to one
plain BM25 search of the same queries. Writes prf_quality.{json,md} to --out
(default benchmarks/results).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/quality_prf.py \
        [--embeddings /tmp/emb] [--k1 0.9 --b 0.4] [--repeat 5] [--out DIR]

--embeddings DIR holds {name}_docs.npy, {name}_queries.npy (float32, one row
per corpus document / queries.jsonl query, in file order) and
{name}_ids.json ({"doc_ids": [...], "query_ids": [...]}), name in {scifact,
cacm}; without it, texts are encoded with ragkernels.hf.Encoder().
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

import ragkernels as rk
from _common import RESULTS, data_dir, machine, time_calls

MEASURES = ["ndcg_cut.10", "recall.100"]
DEPTH = 1000
COLLECTIONS = (("scifact", "beir/scifact"), ("cacm", "classic/cacm"))


def exact_search(queries: np.ndarray, docs: np.ndarray, k: int):
    """Top-k by inner product with rk.dense.FlatIndex (ties to the lower doc number)."""
    return rk.dense.FlatIndex(docs, metric="ip").search(np.ascontiguousarray(queries), k=min(k, docs.shape[0]))


def embeddings(name, corpus, queries, directory):
    if directory is not None:
        d = Path(directory)
        meta = json.loads((d / f"{name}_ids.json").read_text())
        docs = np.load(d / f"{name}_docs.npy")
        all_queries = np.load(d / f"{name}_queries.npy")
        if meta["doc_ids"] != list(corpus.ids):
            raise SystemExit(f"{d}/{name}_ids.json: doc ids do not match the corpus order")
        row = {q: i for i, q in enumerate(meta["query_ids"])}
        return docs, all_queries[[row[q] for q in queries.ids]]
    encoder = rk.hf.Encoder()
    docs = encoder.encode(corpus.full_texts(), show_progress=True)
    return np.asarray(docs, np.float32), np.asarray(encoder.encode(queries.texts), np.float32)


def evaluate(qrels, doc_ids, query_ids, docs):
    run = {q: {doc_ids[d]: float(DEPTH - r) for r, d in enumerate(row) if d >= 0}
           for q, row in zip(query_ids, docs.tolist())}
    return rk.metrics.evaluate(qrels, run, MEASURES).summary


def row(collection, method, summary, **extra):
    return {"collection": collection, "method": method, "nDCG@10": summary["ndcg_cut_10"],
            "R@100": summary["recall_100"], **extra}


def sparse_rows(name, ds, args):
    index = rk.sparse.BM25Index.build(ds.corpus.full_texts(), ids=ds.corpus.ids, k1=args.k1, b=args.b)
    texts, ids = ds.queries.texts, ds.corpus.ids
    start = time.perf_counter()
    rk.prf._forward(index, "quality")  # the one-time forward view, timed apart
    forward_s = time.perf_counter() - start
    runs = {
        "BM25": lambda: index.search(texts, k=DEPTH),
        "BM25 + RM3 (10/10/0.5)": lambda: rk.prf.rm3_search(index, texts, k=DEPTH),
        "BM25 + Rocchio (10/10, 1/0.75)": lambda: rk.prf.rocchio_search(index, texts, k=DEPTH),
    }
    rows, base = [], None
    for method, fn in runs.items():
        docs, _ = fn()
        timing = time_calls(fn, args.repeat)
        base = base or timing["median_s"]
        rows.append(row(name, method, evaluate(ds.qrels, ids, ds.queries.ids, docs),
                        latency_ms=1000 * timing["median_s"], vs_bm25=timing["median_s"] / base))
    rows[0]["forward_view_ms"] = 1000 * forward_s
    return rows


def dense_rows(name, ds, args):
    docs, queries = embeddings(name, ds.corpus, ds.queries, args.embeddings)
    ids = ds.corpus.ids
    first, _ = exact_search(queries, docs, DEPTH)
    rows = [row(name, "dense (MiniLM-L6)", evaluate(ds.qrels, ids, ds.queries.ids, first))]
    for method, kwargs in (("dense + Rocchio (5, 0.4/0.6)", {"fb_docs": 5, "alpha": 0.4, "beta": 0.6}),
                           ("dense + average PRF (3)", {"fb_docs": 3, "alpha": 0.25, "beta": 0.75})):
        expanded = rk.prf.rocchio_dense(queries, docs, first, **kwargs)
        second, _ = exact_search(expanded, docs, DEPTH)
        rows.append(row(name, method, evaluate(ds.qrels, ids, ds.queries.ids, second)))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embeddings", default=None, help="folder of precomputed embeddings (see above)")
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions of each search")
    p.add_argument("--only", choices=[c for c, _ in COLLECTIONS], default=None)
    p.add_argument("--out", default=str(RESULTS), help="folder for prf_quality.{json,md}")
    args = p.parse_args()
    rows = []
    for name, path in COLLECTIONS:
        if args.only and name != args.only:
            continue
        ds = rk.data.load_beir(data_dir() / path)
        rows += sparse_rows(name, ds, args)
        rows += dense_rows(name, ds, args)
        for r in rows:
            if r["collection"] == name:
                print(r, flush=True)
    meta = {"k1": args.k1, "b": args.b, "depth": DEPTH, "threads": rk.get_num_threads(), "machine": machine(),
            "anserini_published": {"scifact BM25 flat nDCG@10": 0.6789, "scifact BM25 flat R@100": 0.9253}}
    print(write_table(Path(args.out), rows, meta))


def write_table(out: Path, rows, meta) -> str:
    columns = ["collection", "method", "nDCG@10", "R@100", "latency_ms", "vs_bm25", "forward_view_ms"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "prf_quality.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                                       for c in columns) + " |")
    table = "\n".join(lines) + "\n"
    (out / "prf_quality.md").write_text(table)
    return table


if __name__ == "__main__":
    main()
