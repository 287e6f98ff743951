"""Retrieval quality of ragkernels' BM25 next to bm25s's, on the shared data.

For each collection: index title + text with the same settings in both
(bm25s tokenization, method="lucene", k1=1.2, b=0.75 by default), retrieve the
top 100 of every judged query, and evaluate both runs with ragkernels.metrics
(nDCG@10, Recall@100). Writes benchmarks/results/sparse_quality.{json,md}.

    python benchmarks/python/quality_sparse.py [--k1 0.9 --b 0.4]
"""
import argparse
import json
from pathlib import Path

import bm25s
import Stemmer

import ragkernels as rk
from _common import data_dir

RESULTS = Path(__file__).resolve().parents[1] / "results"
MEASURES = ["ndcg_cut.10", "recall.100"]


def collections():
    root = data_dir()
    for name in ("beir/scifact", "classic/cacm"):
        ds = rk.data.load_beir(root / name)
        yield name, ds.corpus, ds.queries, ds.qrels
    ms = root / "msmarco-passage"
    corpus = rk.data.read_msmarco_collection(ms / "collection.subset.tsv")
    for name, topics, qrels in (("dl19", "trec-dl-2019/topics.dl19-passage.tsv", "trec-dl-2019/qrels.dl19-passage.txt"),
                                ("dl20", "trec-dl-2020/topics.dl20.tsv", "trec-dl-2020/qrels.dl20-passage.txt"),
                                ("dev-small", "dev-small/queries.dev.small.tsv", "dev-small/qrels.dev.small.txt")):
        yield f"msmarco-sample/{name}", corpus, rk.data.read_trec_topics_tsv(ms / topics), rk.metrics.load_qrels(ms / qrels)


def bm25s_run(corpus, queries, k1, b):
    stem = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index(bm25s.tokenize(corpus.full_texts(), stopwords="en", stemmer=stem, show_progress=False),
                    show_progress=False)
    tokens = bm25s.tokenize(queries.texts, stopwords="en", stemmer=stem, return_ids=False, show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=100, show_progress=False)
    return {q: {corpus.ids[d]: float(s) for d, s in zip(row, srow) if s > 0}
            for q, row, srow in zip(queries.ids, docs, scores)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k1", type=float, default=1.2)
    p.add_argument("--b", type=float, default=0.75)
    args = p.parse_args()
    rows = []
    for name, corpus, queries, qrels in collections():
        index = rk.sparse.BM25Index.build(corpus.full_texts(), ids=corpus.ids, k1=args.k1, b=args.b)
        ours = index.to_run(*index.search(queries.texts, k=100), queries.ids)
        theirs = bm25s_run(corpus, queries, args.k1, args.b)
        a = rk.metrics.evaluate(qrels, ours, MEASURES)
        t = rk.metrics.evaluate(qrels, theirs, MEASURES).summary
        rows.append({"collection": name, "queries": len(a.query_ids),
                     **{f"ragkernels {m}": a.summary[m] for m in ("ndcg_cut_10", "recall_100")},
                     **{f"bm25s {m}": t[m] for m in ("ndcg_cut_10", "recall_100")}})
        print(rows[-1])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sparse_quality.json").write_text(json.dumps({"k1": args.k1, "b": args.b, "rows": rows}, indent=1))
    lines = [f"BM25 lucene k1={args.k1} b={args.b}, title + text, top 100", "",
             "| collection | queries | nDCG@10 ragkernels | nDCG@10 bm25s | R@100 ragkernels | R@100 bm25s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['collection']} | {r['queries']} | {r['ragkernels ndcg_cut_10']:.4f} | "
                     f"{r['bm25s ndcg_cut_10']:.4f} | {r['ragkernels recall_100']:.4f} | {r['bm25s recall_100']:.4f} |")
    (RESULTS / "sparse_quality.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
