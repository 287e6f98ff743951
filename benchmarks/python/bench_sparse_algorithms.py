"""ragkernels' four BM25 query algorithms side by side, on the benchmark corpora.

All four return identical results (tests/test_sparse.py); this measures their
batch queries/s on one thread at k = 10 and 1000, from pre-tokenized queries,
with the inputs bench_sparse.py prepares (and caches in its workdir).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_sparse_algorithms.py \\
        [--corpora msmarco,gen-100k,gen-1m] [--query-limit 1000]
"""
import argparse
import pickle
import time
from pathlib import Path

import numpy as np

import ragkernels as rk
from _common import machine, write_results
from bench_sparse import B, K1, prepare

ALGORITHMS = ("taat", "maxscore", "exhaustive", "bmw")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", default="msmarco,gen-100k,gen-1m")
    p.add_argument("--query-limit", type=int, default=1000)
    p.add_argument("--workdir", default="/tmp/ragkernels-bench/sparse")
    args = p.parse_args()
    rk.set_num_threads(1)
    rows = []
    for name in args.corpora.split(","):
        with open(prepare(name, Path(args.workdir), args.query_limit), "rb") as f:
            inputs = pickle.load(f)
        index = rk.sparse.BM25Index.build(inputs["tokens"], k1=K1, b=B)
        queries = next(iter(inputs["queries"].values()))["tokens"]
        del inputs
        for k in (10, 1000):
            expected = None
            for algorithm in ALGORITHMS:
                result = index.search(queries, k=k, algorithm=algorithm)  # warm-up, and the check below
                if expected is None:
                    expected = result
                assert np.array_equal(result[0], expected[0]) and np.array_equal(result[1], expected[1])
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    index.search(queries, k=k, algorithm=algorithm)
                    times.append(time.perf_counter() - start)
                rows.append({"corpus": name, "n_docs": index.num_docs, "k": k, "algorithm": algorithm,
                             "qps": len(queries) / float(np.median(times))})
                print(rows[-1], flush=True)
    write_results("sparse_algorithms", rows, ["corpus", "n_docs", "k", "algorithm", "qps"],
                  {"machine": machine(), "threads": 1, "query_limit": args.query_limit})


if __name__ == "__main__":
    main()
