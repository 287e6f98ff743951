"""Run fusion side by side: ragkernels.fusion vs ranx.fuse.

Scenarios:

* ``synth-N`` (N = 2..5): N runs of 1,000 queries x 1,000 docs. Each
  query has a pool of 1,500 doc ids ("D" + 7 digits, random in an 8.8M
  corpus); each run ranks 1,000 of them with float32-representable scores
  (so the dict and array forms hold the same numbers), many docs shared.
* ``dl19``: the six real MS MARCO DL19 runs (BM25, BM25+RM3, TAS-B, ada2,
  SPLADE++ top-100; RepLLaMA top-1000), 43 queries.
* ``scifact``: BEIR SciFact, 300 test queries, two BM25 runs
  (k1=0.9,b=0.4 and k1=1.5,b=0.75) and a dense all-MiniLM-L6-v2 run
  (``--embeddings DIR``; skipped without it), top-1,000 each.

Methods: rrf (k=60), sum, mnz and wsum (equal weights), all with ranx's
default min-max norm. Systems, each in a fresh worker process:

* ``ranx``: ``ranx.fuse`` on Runs built outside the timer (its best case);
* ``ranx-dicts``: ``ranx.Run(d)`` of every dict + ``ranx.fuse``, i.e. the
  same work as ours from dicts;
* ``ragkernels``: ``rk.fusion.fuse(dicts)`` -> dict, end to end;
* ``ragkernels-arrays`` (synthetic only): ``(ids, scores)`` arrays in and
  out.

``first_call_s`` is each method's first call in the fresh process (ranx:
numba dispatch and compilation, from numba's on-disk cache when it has been
filled by an earlier run -- the meta says whether it was empty); then
``--repeat`` warm calls give median and p99. ``x_faster`` = ranx median /
ours. ``identical`` says whether ours returned exactly ranx's fused run
(same docs in the same order, bit-equal float64 scores), checked in the same
run by digest. Threads: ``--threads`` (default: all cores) for both
(RAGKERNELS_NUM_THREADS, NUMBA_NUM_THREADS). Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_fusion.py \\
        --embeddings /tmp/emb

(``--quick``: 100 x 100 synthetic runs, repeat 3, for checking the script.)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

from _common import data_dir, machine, peak_rss_mb, run_isolated, time_calls, versions, write_results

METHODS = ["rrf", "sum", "mnz", "wsum"]
HERE = Path(__file__).resolve()


# ---------------------------------------------------------------- inputs (outside the timer)

def synth(n_runs: int, n_queries: int, depth: int, seed: int = 0):
    """(dict runs, array runs) holding the same numbers."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pool = int(depth * 1.5)
    corpus = rng.integers(0, 8_800_000, size=(n_queries, pool))
    dicts: List[dict] = []
    arrays = []
    for _ in range(n_runs):
        pick = np.argsort(rng.random((n_queries, pool)), axis=1)[:, :depth]
        ids = np.take_along_axis(corpus, pick, axis=1)
        scores = -np.sort(-rng.normal(size=(n_queries, depth)).astype(np.float32), axis=1)
        # Corpus ids may repeat within a pool: keep the first, pad the rest.
        for q in range(n_queries):
            _, first = np.unique(ids[q], return_index=True)
            dup = np.ones(depth, bool)
            dup[first] = False
            ids[q, dup] = -1
        arrays.append((ids.astype(np.int64), scores))
        run = {}
        for q, (row, srow) in enumerate(zip(ids.tolist(), scores.astype(np.float64).tolist())):
            run[f"q{q:05d}"] = {f"D{d:07d}": s for d, s in zip(row, srow) if d >= 0}
        dicts.append(run)
    return dicts, arrays


def read_trec_run(path) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    with open(path) as f:
        for line in f:
            q, _, d, _, s, _ = line.split()
            out.setdefault(q, {})[d] = float(s)
    return out


def dl19_runs():
    runs = data_dir() / "msmarco-passage" / "runs"
    names = ["bm25.top100", "bm25-rm3.top100", "d-bert-kd-tasb.top100", "open-ai-ada2.top100",
             "splade-p-p-ensemble-distil.top100", "rep-llama.top1000"]
    return [read_trec_run(runs / f"run.dl19-passage.{n}.txt") for n in names]


def scifact_runs(embeddings: str):
    import numpy as np
    import ragkernels as rk

    base = data_dir() / "beir" / "scifact"
    docs = [json.loads(line) for line in open(base / "corpus.jsonl")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(base / "queries.jsonl"))}
    qids = sorted({line.split("\t")[0] for line in open(base / "qrels" / "test.tsv").read().splitlines()[1:]})
    texts = [d["title"] + " " + d["text"] for d in docs]
    ids = [d["_id"] for d in docs]
    runs = []
    for params in ({"k1": 0.9, "b": 0.4}, {"k1": 1.5, "b": 0.75}):
        index = rk.sparse.BM25Index.build(texts, ids=ids, **params)
        d, s = index.search([queries[q] for q in qids], k=1000)
        runs.append(index.to_run(d, s, qids))
    if embeddings:
        emb = Path(embeddings)
        names = json.load(open(emb / "scifact_ids.json"))
        dv, qv = np.load(emb / "scifact_docs.npy"), np.load(emb / "scifact_queries.npy")
        row = {q: i for i, q in enumerate(names["query_ids"])}
        sims = qv[[row[q] for q in qids]] @ dv.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :1000]
        runs.append({q: {names["doc_ids"][d]: float(sims[i, d]) for d in top[i]} for i, q in enumerate(qids)})
    return runs


def load(scenario: str, quick: bool, embeddings: str):
    if scenario.startswith("synth-"):
        n = int(scenario.split("-")[1])
        return synth(n, 100 if quick else 1000, 100 if quick else 1000)
    if scenario == "dl19":
        return dl19_runs(), None
    return scifact_runs(embeddings), None


def digest(fused: Dict[str, Dict[str, float]]) -> str:
    h = hashlib.sha1()
    for q in fused:
        h.update(q.encode())
        for d, s in fused[q].items():
            h.update(f"{d}:{s!r};".encode())
    return h.hexdigest()


def arrays_to_dict(ids, scores) -> Dict[str, Dict[str, float]]:
    return {f"q{q:05d}": {f"D{d:07d}": s for d, s in zip(row, srow) if d >= 0}
            for q, (row, srow) in enumerate(zip(ids.tolist(), scores.tolist()))}


# ---------------------------------------------------------------- worker (one fresh process)

def worker(system: str, scenario: str, quick: bool, repeat: int, embeddings: str) -> None:
    dicts, arrays = load(scenario, quick, embeddings)
    n = len(dicts)
    out = {}
    if system.startswith("ranx"):
        import warnings

        import ranx

        warnings.filterwarnings("ignore")
        prebuilt = [ranx.Run(d) for d in dicts]
    else:
        import ragkernels as rk
    for method in METHODS:
        params = {"weights": [1.0 / n] * n} if method == "wsum" else ({"k": 60} if method == "rrf" else {})
        if system == "ranx":
            def call():
                return ranx.fuse(prebuilt, norm="min-max", method=method, params=params)
        elif system == "ranx-dicts":
            def call():
                return ranx.fuse([ranx.Run(d) for d in dicts], norm="min-max", method=method, params=params)
        elif system == "ragkernels":
            def call():
                return rk.fusion.fuse(dicts, method=method, norm="min-max", params=params)
        else:
            def call():
                return rk.fusion.fuse(arrays, method=method, norm="min-max", params=params)
        start = time.perf_counter()
        result = call()
        first = time.perf_counter() - start
        timing = time_calls(call, repeat=repeat, warmup=0)
        if system.startswith("ranx"):
            result = result.to_dict()
        elif system == "ragkernels-arrays":
            result = arrays_to_dict(*result)
        out[method] = {"first_call_s": first, **timing, "digest": digest(result)}
    print(json.dumps({"results": out, "peak_rss_mb": peak_rss_mb()}))


# ---------------------------------------------------------------- parent

def numba_cache_filled() -> bool:
    import importlib.util

    spec = importlib.util.find_spec("ranx")
    if spec is None or spec.origin is None:
        return False
    return any(Path(spec.origin).parent.rglob("*.nbi"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--scenarios", default="synth-2,synth-3,synth-4,synth-5,dl19,scifact")
    ap.add_argument("--embeddings", default="", help="folder with scifact_{docs,queries}.npy, scifact_ids.json")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scenario", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 10)
    if args.worker:
        worker(args.worker, args.scenario, args.quick, repeat, args.embeddings)
        return
    os.environ["RAGKERNELS_NUM_THREADS"] = str(args.threads)
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    cache_before = numba_cache_filled()
    rows: List[Dict[str, object]] = []
    for scenario in args.scenarios.split(","):
        systems = ["ranx", "ranx-dicts", "ragkernels"] + (["ragkernels-arrays"] if scenario.startswith("synth") else [])
        res = {}
        for system in systems:
            cmd = [str(HERE), "--worker", system, "--scenario", scenario, "--repeat", str(repeat),
                   "--embeddings", args.embeddings] + (["--quick"] if args.quick else [])
            res[system] = run_isolated(cmd)
            print(f"{scenario:10s} {system:18s} done", file=sys.stderr, flush=True)
        for method in METHODS:
            ranx_row = res["ranx"]["results"][method]
            for system in systems:
                r = res[system]["results"][method]
                rows.append({
                    "scenario": scenario, "method": method, "system": system,
                    "median_s": r["median_s"], "p99_s": r["p99_s"], "first_call_s": r["first_call_s"],
                    "x_faster": (ranx_row["median_s"] / r["median_s"]) if system.startswith("ragkernels") else "",
                    "x_faster_vs_ranx_dicts": (res["ranx-dicts"]["results"][method]["median_s"] / r["median_s"])
                    if system.startswith("ragkernels") else "",
                    "identical": r["digest"] == ranx_row["digest"],
                    "peak_rss_mb": res[system]["peak_rss_mb"],
                })
    meta = {"machine": machine(), "threads": args.threads, "repeat": repeat, "quick": args.quick,
            "numba_cache_filled_before": cache_before,
            "versions": versions({"ragkernels": "ragkernels", "ranx": "ranx", "numba": "numba", "numpy": "numpy"}),
            "command": " ".join(sys.argv)}
    cols = ["scenario", "method", "system", "median_s", "p99_s", "first_call_s", "x_faster",
            "x_faster_vs_ranx_dicts", "identical", "peak_rss_mb"]
    print(write_results("fusion-quick" if args.quick else "fusion", rows, cols, meta))


if __name__ == "__main__":
    main()
