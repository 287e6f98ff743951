"""Exact dense search side by side: ragkernels FlatIndex vs faiss IndexFlatIP vs numpy / torch matmul + top-k.

Corpora (inner product, k = 100):

* ``scifact``: all-MiniLM-L6-v2 embeddings of BEIR SciFact (5,183 x 384) and
  its 1,109 queries (made by rk.hf.Encoder, cached in --cache);
* ``sweep``: 200,000 x 384 standard-normal vectors, every batch size
  1, 2, 4, ... 1,024, ours (float32) vs faiss only;
* ``1M-384`` and ``1M-768``: 1,000,000 x 384 / 768 standard-normal vectors,
  batches 1, 16, 256 (and 1,024 on 384), every library, our three dtypes.

Each (corpus, threads) pair sets the threads of every library (1 and all
cores): rk.set_num_threads, faiss.omp_set_num_threads, threadpoolctl for
numpy's BLAS, torch.set_num_threads. faiss gets its best setting: its
bundled OpenBLAS is given its SkylakeX kernels on AVX-512 machines (it
misdetects recent ones), and from 20 queries on it is timed twice, with its
default settings and with ``distance_compute_blas_threshold = 20`` (BLAS from
20 queries, older faiss's default); ``x_vs_faiss`` compares with the faster. Our float32 index scans faiss's own copy of the vectors (a
zero-copy view), so both read the same memory. Rows give the median and p99 of
`repeat` calls after a warm-up call, queries/s, ``x_vs_faiss`` (faiss median
/ ours) and, for single queries, the scan's read rate as a fraction of the
machine's read bandwidth, measured in the same run (streaming numpy reductions
over a 2 GiB array split across the threads). int8 rows report Recall@10 against exact
float32 results. The parent checks that our float32 ids equal faiss's where
scores are not tied. numpy/torch peers materialize the (batch x corpus) score
matrix; they are skipped where it would exceed 4 GiB. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_dense.py

(``--quick``: 100,000-vector corpora and fewer batches.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

import numpy as np

from _common import data_dir, machine, run_isolated, time_calls, versions, write_results

K = 100
FAISS_BLAS = "faiss IndexFlatIP, BLAS from 20 queries"


def read_bandwidth_gbs(threads: int, gib: float = 2.0, repeat: int = 5) -> float:
    """Memory read rate (GB/s): the best of `repeat` passes of two streaming
    reductions (float32 max, uint64 bitwise or) over a `gib` array, split in
    `threads` slices read concurrently (numpy releases the GIL in both)."""
    x = np.ones(int(gib * 2**30) // 8, dtype=np.uint64)
    slices = np.array_split(x, threads)
    kernels = [lambda s: s.view(np.float32).max(), np.bitwise_or.reduce]
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for kernel in kernels:
            for _ in range(repeat):
                start = time.perf_counter()
                list(pool.map(kernel, slices))
                best = min(best, time.perf_counter() - start)
    return x.nbytes / best / 1e9


FAISS_DEFAULT_BLAS_THRESHOLD = None  # faiss's own default, read once before anything changes it


def set_threads(n: int) -> None:
    import faiss
    import torch
    import ragkernels as rk

    rk.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)


def numpy_search(docs: np.ndarray, queries: np.ndarray, k: int):
    scores = queries @ docs.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(scores, part, 1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(top, order, 1)


def recall_at_10(exact: np.ndarray, approx: np.ndarray) -> float:
    return float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(exact, approx)]))


def scifact_vectors(cache: str):
    import ragkernels as rk

    path = os.path.join(cache, "scifact-minilm.npz")
    if os.path.exists(path):
        saved = np.load(path)
        return saved["docs"], saved["queries"]
    ds = rk.data.load_beir(data_dir() / "beir" / "scifact")
    queries = rk.data.read_queries(data_dir() / "beir" / "scifact" / "queries.jsonl")
    encoder = rk.hf.Encoder()
    docs = encoder.encode(ds.corpus.full_texts(), show_progress=True)
    q = encoder.encode(queries.texts, show_progress=True)
    os.makedirs(cache, exist_ok=True)
    np.savez(path, docs=docs, queries=q)
    return docs, q


def bench_corpus(name: str, docs: np.ndarray, queries: np.ndarray, batches: List[int], dtypes: List[str],
                 peers: List[str], thread_counts: List[int], bandwidth: Dict[int, float],
                 repeat: int) -> List[Dict[str, object]]:
    import faiss
    import torch
    from threadpoolctl import threadpool_limits
    import ragkernels as rk

    global FAISS_DEFAULT_BLAS_THRESHOLD
    if FAISS_DEFAULT_BLAS_THRESHOLD is None:
        FAISS_DEFAULT_BLAS_THRESHOLD = faiss.cvar.distance_compute_blas_threshold

    rows: List[Dict[str, object]] = []
    n, dim = docs.shape
    flat = faiss.IndexFlatIP(dim)
    flat.add(docs)
    # Our float32 index scans faiss's own copy of the vectors (a zero-copy view):
    # both read the very same memory, so page placement cannot favour either.
    faiss_vectors = faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim)
    ours = {dt: rk.dense.FlatIndex(faiss_vectors if dt == "float32" else docs, metric="ip", dtype=dt)
            for dt in dtypes}
    docs_t = torch.from_numpy(docs)
    for threads in thread_counts:
        set_threads(threads)
        for batch in batches:
            q = queries[:batch] if batch <= len(queries) else np.resize(queries, (batch, dim))
            q = np.ascontiguousarray(q)
            reps = repeat if batch * n <= 64 * 10**6 else max(3, repeat // 2)
            common = {"corpus": name, "n": n, "dim": dim, "threads": threads, "batch": batch}
            faiss.cvar.distance_compute_blas_threshold = FAISS_DEFAULT_BLAS_THRESHOLD
            f_time = time_calls(lambda: flat.search(q, K), reps)
            f_scores, f_ids = flat.search(q, K)
            timings = {"faiss IndexFlatIP": (f_time, n * dim * 4)}
            if batch >= 20:  # faiss before 1.9 switched to BLAS at 20 queries: its best setting here
                faiss.cvar.distance_compute_blas_threshold = 20
                blas_time = time_calls(lambda: flat.search(q, K), reps)
                timings[FAISS_BLAS] = (blas_time, n * dim * 4)
                rows.append({**common, "library": FAISS_BLAS})
                if blas_time["median_s"] < f_time["median_s"]:
                    f_time = blas_time
            exact_ids = None
            for dt, index in ours.items():
                t = time_calls(lambda: index.search(q, k=K), reps)
                ids, scores = index.search(q, k=K)
                extra = {}
                if dt == "float32":
                    exact_ids = ids
                    tied = np.abs(np.diff(f_scores, axis=1)) > 1e-5
                    untied = np.concatenate([tied, tied[:, -1:]], axis=1)
                    mismatches = int(((ids != f_ids) & untied).sum())
                    max_diff = float(np.abs(scores - f_scores).max())
                    extra = {"id_mismatch_vs_faiss": mismatches, "max_score_diff": max_diff}
                elif exact_ids is not None:
                    extra = {"recall@10": recall_at_10(exact_ids, ids)}
                timings[f"ragkernels {dt}"] = (t, index.nbytes)
                rows.append({**common, "library": f"ragkernels {dt}", **extra})
            score_bytes = batch * n * 4
            if "numpy" in peers and score_bytes <= 4 * 2**30:
                with threadpool_limits(threads):
                    timings["numpy matmul+argpartition"] = (time_calls(lambda: numpy_search(docs, q, K), reps),
                                                            docs.nbytes)
                rows.append({**common, "library": "numpy matmul+argpartition"})
            if "torch" in peers and score_bytes <= 4 * 2**30:
                q_t = torch.from_numpy(q)
                timings["torch matmul+topk"] = (time_calls(lambda: torch.topk(q_t @ docs_t.T, K, dim=1), reps),
                                                docs.nbytes)
                rows.append({**common, "library": "torch matmul+topk"})
            rows.append({**common, "library": "faiss IndexFlatIP"})
            for row in rows[-(len(timings)):]:
                t, nbytes = timings[row["library"]]  # x_vs_faiss: against faiss's faster setting
                row.update({"median_ms": t["median_s"] * 1e3, "p99_ms": t["p99_s"] * 1e3,
                            "queries_per_s": batch / t["median_s"], "index_mib": nbytes / 2**20,
                            "x_vs_faiss": f_time["median_s"] / t["median_s"]})
                if batch == 1:
                    gbs = nbytes / t["median_s"] / 1e9
                    row["scan_gb_s"] = gbs
                    row["fraction_of_bandwidth"] = gbs / bandwidth[threads]
                print({k: row[k] for k in ("corpus", "threads", "batch", "library", "median_ms", "x_vs_faiss")},
                      file=sys.stderr, flush=True)
    return rows


def tune_faiss_openblas() -> str:
    """faiss-cpu 1.15.1 bundles OpenBLAS 0.3.15, which does not recognize recent
    AVX-512 processors (it falls back to its Barcelona kernels, 4x slower):
    give it its SkylakeX kernels where AVX-512 is present. Must run before
    faiss is imported. numpy's newer OpenBLAS detects the same kernels itself."""
    with open("/proc/cpuinfo") as f:
        avx512 = " avx512f " in f.read()
    if avx512 and "OPENBLAS_CORETYPE" not in os.environ:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    return os.environ.get("OPENBLAS_CORETYPE", "auto")


def main() -> None:
    coretype = tune_faiss_openblas()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "ragkernels-bench"))
    parser.add_argument("--corpora", default="scifact,sweep,1M-384,1M-768")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    if args.worker is None:
        # Each corpus runs in a fresh worker process: one corpus's allocations
        # and thread pools cannot slow the next one's libraries.
        bandwidth = {t: read_bandwidth_gbs(t) for t in thread_counts}
        print("read bandwidth GB/s:", bandwidth, flush=True)
        rows = []
        for corpus in args.corpora.split(","):
            cmd = [__file__, "--worker", corpus, "--bandwidth", json.dumps(bandwidth), "--repeat", str(args.repeat),
                   "--cache", args.cache] + (["--quick"] if args.quick else [])
            rows += run_isolated(cmd)["rows"]
        write_all(rows, bandwidth, coretype, args.quick)
        return
    bandwidth = {int(t): v for t, v in json.loads(args.bandwidth).items()}
    rng = np.random.default_rng(0)
    size = 100_000 if args.quick else 1_000_000
    rows: List[Dict[str, object]] = []
    wanted = [args.worker]
    all_dtypes = ["float32", "float16", "int8"]
    if "scifact" in wanted:
        docs, queries = scifact_vectors(args.cache)
        rows += bench_corpus("scifact", docs, queries, [1, 16, 300, 1109], all_dtypes, ["numpy", "torch"],
                             thread_counts, bandwidth, args.repeat)
    if "sweep" in wanted:
        n = 20_000 if args.quick else 200_000
        docs = rng.standard_normal((n, 384), dtype=np.float32)
        queries = rng.standard_normal((1024, 384), dtype=np.float32)
        batches = [1, 4, 16, 64, 256, 1024] if args.quick else [2**i for i in range(11)]
        rows += bench_corpus("sweep", docs, queries, batches, ["float32"], [], thread_counts, bandwidth,
                             args.repeat)
    for dim in (384, 768):
        name = f"1M-{dim}"
        if name not in wanted:
            continue
        docs = rng.standard_normal((size, dim), dtype=np.float32)
        queries = rng.standard_normal((1024, dim), dtype=np.float32)
        batches = [1, 16, 256, 1024] if dim == 384 else [1, 16, 256]
        rows += bench_corpus(f"{size // 1000}k-{dim}", docs, queries, batches, all_dtypes, ["numpy", "torch"],
                             thread_counts, bandwidth, max(3, args.repeat - 2))
        del docs

    print(json.dumps({"rows": rows}))


def write_all(rows: List[Dict[str, object]], bandwidth: Dict[int, float], coretype: str, quick: bool) -> None:
    meta = {
        "machine": machine(),
        "versions": versions({"ragkernels": "ragkernels", "faiss": "faiss-cpu", "numpy": "numpy", "torch": "torch"}),
        "k": K,
        "read_bandwidth_gb_s": bandwidth,
        "faiss_openblas_coretype": coretype,
        "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_dense.py"
                   + (" --quick" if quick else ""),
    }
    columns = ["corpus", "threads", "batch", "library", "median_ms", "p99_ms", "queries_per_s", "x_vs_faiss",
               "scan_gb_s", "fraction_of_bandwidth", "recall@10", "id_mismatch_vs_faiss", "index_mib"]
    print(write_results("dense" + ("-quick" if quick else ""), rows, columns, meta))


if __name__ == "__main__":
    sys.exit(main())
