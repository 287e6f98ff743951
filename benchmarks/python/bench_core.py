"""Top-k side by side: ragkernels.topk vs numpy argpartition + sort vs torch.topk.

Same float32 matrices, same thread count (1, then all cores), results checked
identical (ids and scores; ties are broken by lower index by all three on
tie-free data, so the data is tie-free). Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_core.py
"""
from __future__ import annotations

import os

import numpy as np

import ragkernels as rk
from _common import machine, time_calls, write_results

SHAPES = [(1024, 1000, 10), (1024, 1000, 100), (64, 100_000, 10), (64, 100_000, 1000), (16, 1_000_000, 100)]


def numpy_topk(scores: np.ndarray, k: int):
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def main() -> None:
    import torch

    rng = np.random.default_rng(0)
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        rk.set_num_threads(threads)
        torch.set_num_threads(threads)
        for n_rows, n, k in SHAPES:
            scores = rng.permutation(n_rows * n).astype(np.float32).reshape(n_rows, n) / (n_rows * n)
            t = torch.from_numpy(scores)
            ours = rk.topk(scores, k)
            ref = numpy_topk(scores, k)
            tv, ti = torch.topk(t, k, dim=1)
            assert np.array_equal(ours[0], ref[0]) and np.array_equal(ours[0], ti.numpy())
            repeat = 20 if n_rows * n <= 2_000_000 else 7
            r = time_calls(lambda: rk.topk(scores, k), repeat)
            npy = time_calls(lambda: numpy_topk(scores, k), repeat) if threads == 1 else None
            tor = time_calls(lambda: torch.topk(t, k, dim=1), repeat)
            row = {"threads": threads, "shape": f"{n_rows}x{n}", "k": k,
                   "ragkernels_ms": r["median_s"] * 1e3, "ragkernels_p99_ms": r["p99_s"] * 1e3,
                   "torch_ms": tor["median_s"] * 1e3, "x_vs_torch": tor["median_s"] / r["median_s"]}
            if npy:
                row.update(numpy_ms=npy["median_s"] * 1e3, x_vs_numpy=npy["median_s"] / r["median_s"])
            rows.append(row)
            print(row, flush=True)
    cols = ["threads", "shape", "k", "ragkernels_ms", "ragkernels_p99_ms", "numpy_ms", "x_vs_numpy", "torch_ms",
            "x_vs_torch"]
    meta = machine()
    meta["torch"] = torch.__version__
    print(write_results("bench_core", rows, cols, meta))


if __name__ == "__main__":
    main()
