"""Clue selection latency: the compiled pipeline vs its plain-Python reference.

Data: the first ``--queries`` SciFact dev claims (qa/scifact-claims), each with
its BM25 top 100 abstracts (ragkernels BM25 over title + abstract), split into
sentences by ``rk.text.split_sentences`` (about 1,000 sentences per claim).
Model forward passes are excluded: the dense scorer reads fixed random unit
vectors (384 dims) standing in for sentence embeddings. Per query, the
"hybrid" preset of ``rk.select.compress``: lexical BM25 (statistics of the
query's sentences) 1 + dense cosine 1 + passage-level cosine 1 + passage
prior 0.5, MMR (lambda 0.7) over the embeddings, up to ``max_picks`` = 64
ranked, values at temperature 0.05, then sufficiency 0.9 and a 256-token
budget (token counts: words).

Rows: ``rk.select.select_clues`` for one query (1 thread), for the whole batch
(1 and 2 threads, per query), the Python reference (tests/reference/select.py,
the same algorithm in plain Python) on the first few queries, and
``rk.select.compress`` end to end with the lexical scorer (segmentation,
analysis, token counting and selection; per query). Run:

    python benchmarks/python/bench_select.py
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from _common import data_dir, machine, time_calls, versions, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.reference
WEIGHTS = {"lexical": 1.0, "dense": 1.0, "passage_dense": 1.0, "passage": 0.5}
CONFIG = dict(weights=WEIGHTS, mmr_lambda=0.7, budget=256, sufficiency=0.9, order="document", max_picks=64)


def load(num_queries: int):
    """(claims, passages per claim, flat sentences, groups, term ids, query term ids)."""
    import ragkernels as rk

    root = data_dir() / "qa" / "scifact-claims"
    corpus = [json.loads(line) for line in open(root / "corpus.jsonl")]
    texts = [" ".join(d["abstract"]) for d in corpus]
    claims = [json.loads(line)["claim"] for line in open(root / "claims_dev.jsonl")][:num_queries]
    index = rk.sparse.BM25Index.build([d["title"] + " " + t for d, t in zip(corpus, texts)])
    ids, _ = index.search(claims, k=100)
    passages = [[texts[i] for i in row if i >= 0] for row in ids]
    flat = [p for plist in passages for p in plist]
    spans = rk.text.split_sentences(flat)
    sentences = [s for per in spans.strings(flat) for s in per]
    starts = np.concatenate([[0], np.cumsum([len(p) for p in passages])])
    groups = spans.offsets[starts]
    terms, _ = rk.select.term_ids(rk.text.Analyzer().tokenize(sentences + claims))
    n = len(sentences)
    sentence_terms = rk.select.Ragged(terms.values[:terms.offsets[n]], terms.offsets[:n + 1])
    query_terms = rk.select.Ragged(terms.values[terms.offsets[n]:], terms.offsets[n:] - terms.offsets[n])
    passage_ranks = spans.text_ids() - starts[np.repeat(np.arange(len(passages)), np.diff(groups))]
    return claims, passages, sentences, groups, sentence_terms, query_terms, passage_ranks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=32)
    ap.add_argument("--reference-queries", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    import ragkernels as rk
    from tests.reference import select as ref

    claims, passages, sentences, groups, sentence_terms, query_terms, passage_ranks = load(args.queries)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(sentences), 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    qemb = rng.standard_normal((len(claims), 384)).astype(np.float32)
    tokens = np.array([len(s.split()) for s in sentences], np.int64)
    inputs = dict(groups=groups, query_terms=query_terms, sentence_terms=sentence_terms, query_embeddings=qemb,
                  sentence_embeddings=emb, token_counts=tokens, passage_ranks=passage_ranks)
    per_query = np.diff(groups)
    rows: List[Dict[str, object]] = []

    def one(g: int):
        lo, hi = int(groups[g]), int(groups[g + 1])
        sub = rk.select.Ragged(sentence_terms.values[sentence_terms.offsets[lo]:sentence_terms.offsets[hi]],
                               sentence_terms.offsets[lo:hi + 1] - sentence_terms.offsets[lo])
        q = rk.select.Ragged(query_terms.values[query_terms.offsets[g]:query_terms.offsets[g + 1]],
                             query_terms.offsets[g:g + 2] - query_terms.offsets[g])
        return dict(groups=[0, hi - lo], query_terms=q, sentence_terms=sub, query_embeddings=qemb[g:g + 1],
                    sentence_embeddings=emb[lo:hi], token_counts=tokens[lo:hi], passage_ranks=passage_ranks[lo:hi])

    rk.set_num_threads(1)
    singles = [one(g) for g in range(len(claims))]
    medians = [time_calls(lambda: rk.select.select_clues(**s, **CONFIG), args.repeat)["median_s"] for s in singles]
    ours_ms = 1e3 * float(np.median(medians))
    rows.append({"what": "select_clues, one query", "threads": 1, "ms_per_query": ours_ms,
                 "sentences_per_query": float(per_query.mean())})
    for threads in (1, 2):
        rk.set_num_threads(threads)
        t = time_calls(lambda: rk.select.select_clues(**inputs, **CONFIG), max(3, args.repeat // 4))["median_s"]
        rows.append({"what": f"select_clues, batch of {len(claims)}", "threads": threads,
                     "ms_per_query": 1e3 * t / len(claims), "sentences_per_query": float(per_query.mean())})
    rk.set_num_threads(1)
    ref_ms, same = [], []
    for g in range(min(args.reference_queries, len(claims))):
        s = singles[g]
        terms = [s["sentence_terms"].values[a:b].tolist() for a, b in zip(s["sentence_terms"].offsets[:-1],
                                                                          s["sentence_terms"].offsets[1:])]
        start = time.perf_counter()
        _, chosen = ref.select_clues_ref(s["query_terms"].values.tolist(), terms, s["query_embeddings"][0],
                                         s["sentence_embeddings"], passage_ranks=s["passage_ranks"].tolist(),
                                         token_counts=s["token_counts"].tolist(),
                                         weights=[WEIGHTS.get(name, 0.0) for name in rk.select.SCORERS],
                                         mmr_lambda=0.7, budget=256, sufficiency=0.9, order="document",
                                         max_picks=64)
        ref_ms.append(1e3 * (time.perf_counter() - start))
        same.append(list(chosen) == rk.select.select_clues(**s, **CONFIG).selected[0].tolist())
    rows.append({"what": "Python reference, one query", "threads": 1, "ms_per_query": float(np.median(ref_ms)),
                 "sentences_per_query": float(per_query[:len(ref_ms)].mean()),
                 "ours_x_faster": round(float(np.median(ref_ms)) / ours_ms, 1), "same_selection": all(same)})
    t = time_calls(lambda: [rk.select.compress(c, p, budget_tokens=256, scorer="lexical", sufficiency=0.9)
                            for c, p in zip(claims, passages)], 3)["median_s"]
    rows.append({"what": "compress end to end (lexical)", "threads": 1, "ms_per_query": 1e3 * t / len(claims),
                 "sentences_per_query": float(per_query.mean())})
    for row in rows:
        print(row)
    meta = {"machine": machine(), "versions": versions({"ragkernels": "ragkernels"}), "config": repr(CONFIG)}
    print(write_results("select", rows, ["what", "threads", "sentences_per_query", "ms_per_query", "ours_x_faster",
                                         "same_selection"], meta))


if __name__ == "__main__":
    main()
