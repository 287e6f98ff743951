"""Plots of the benchmark results for docs/benchmarks.md.

Reads benchmarks/results/bench_metrics*.json, bench_core.json, sparse.json,
dense.json, fusion.json and quality_select.json (written by the bench_* and
quality_* scripts) and writes PNGs to docs/img/. Run:

    python benchmarks/python/plot_results.py
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "img"
LIBS = ["ragkernels", "pytrec_eval", "ranx", "ir_measures"]


def load_rows(*names: str):
    rows = []
    for name in names:
        path = RESULTS / f"{name}.json"
        if path.exists():
            rows += json.loads(path.read_text())["rows"]
    return rows


def plot_metrics() -> Path:
    rows = [r for r in load_rows("bench_metrics", "bench_metrics_arrays") if r["scenario"].startswith("synth")]
    scenarios = sorted({r["scenario"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, threads in zip(axes, (1, 2)):
        width = 0.2
        for i, lib in enumerate(LIBS):
            values = [next((r["median_s"] for r in rows if r["scenario"] == s and r["threads"] == threads
                            and r["library"] == lib), 0.0) for s in scenarios]
            ax.bar([x + i * width for x in range(len(scenarios))], values, width, label=lib)
        ax.set_xticks([x + 1.5 * width for x in range(len(scenarios))])
        ax.set_xticklabels([s.replace("synth10k-", "") for s in scenarios])
        ax.set_yscale("log")
        ax.set_title(f"10 M-line run, {threads} thread{'s' if threads > 1 else ''}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("median seconds (log scale, lower is better)")
    axes[1].legend()
    fig.tight_layout()
    path = OUT / "bench_metrics.png"
    fig.savefig(path, dpi=110)
    return path


def plot_topk() -> Path:
    rows = [r for r in load_rows("bench_core") if r["threads"] == 1]
    labels = [f"{r['shape']}\nk={r['k']}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.27
    for i, (key, name) in enumerate([("ragkernels_ms", "ragkernels"), ("numpy_ms", "numpy"), ("torch_ms", "torch")]):
        ax.bar([x + i * width for x in range(len(rows))], [r.get(key, 0.0) for r in rows], width, label=name)
    ax.set_xticks([x + width for x in range(len(rows))])
    ax.set_xticklabels(labels)
    ax.set_ylabel("median ms, 1 thread (lower is better)")
    ax.set_title("top-k over rows of float32")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = OUT / "bench_topk.png"
    fig.savefig(path, dpi=110)
    return path


SPARSE_SYSTEMS = {"ragkernels": "o-", "bm25s": "s--", "pisa": "^-.", "rank_bm25": "x:"}


def plot_sparse() -> Optional[Path]:
    """Batch queries/s (k=10, pre-tokenized queries) against corpus size, every
    corpus measured (MS MARCO ones with the dev-small queries), one panel per
    thread count; None without sparse.json."""
    rows = [r for r in load_rows("sparse") if r["queries"] in ("dev-small", "test", "all")
            and r["k"] == 10 and r["input"] == "tokens" and r.get("batch_qps")]
    if not rows:
        return None
    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], threads):
        for system, style in SPARSE_SYSTEMS.items():
            points = sorted((r["n_docs"], r["batch_qps"]) for r in rows if r["system"] == system and r["threads"] == t)
            if points:
                ax.plot(*zip(*points), style, label=system)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("documents (CACM, SciFact, MS MARCO sample, generated)")
        ax.set_title(f"BM25 top-10, batch, {t} thread{'s' if t > 1 else ''}")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("queries/s, batch (higher is better)")
    axes[0][-1].legend()
    fig.tight_layout()
    path = OUT / "sparse_qps.png"
    fig.savefig(path, dpi=110)
    return path


def plot_dense() -> Optional[Path]:
    """Queries/s against batch size on the 200k x 384 sweep: ragkernels
    float32 vs faiss (default and BLAS-from-20 settings), one panel per thread
    count; None without dense.json."""
    rows = [r for r in load_rows("dense") if r["corpus"] == "sweep"]
    if not rows:
        return None
    threads = sorted({r["threads"] for r in rows})
    styles = {"ragkernels float32": "o-", "faiss IndexFlatIP": "s--", "faiss IndexFlatIP, BLAS from 20 queries": "^:"}
    fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], threads):
        for lib, style in styles.items():
            points = sorted((r["batch"], r["queries_per_s"]) for r in rows if r["library"] == lib and r["threads"] == t)
            if points:
                ax.plot(*zip(*points), style, label=lib)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("queries per call (200,000 x 384 float32, k = 100)")
        ax.set_title(f"exact inner product, {t} thread{'s' if t > 1 else ''}")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("queries/s (higher is better)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path = OUT / "dense_qps.png"
    fig.savefig(path, dpi=110)
    return path


def plot_fusion() -> Optional[Path]:
    """Median seconds per method on 3 runs of 1,000 x 1,000: ranx (prebuilt
    Runs, and from dicts) vs ragkernels (dicts, arrays); None without fusion.json."""
    rows = [r for r in load_rows("fusion") if r["scenario"] == "synth-3"]
    if not rows:
        return None
    methods = list(dict.fromkeys(r["method"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(methods) * len(systems) / 2), 4))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        values = [next((r["median_s"] for r in rows if r["method"] == m and r["system"] == system), 0.0)
                  for m in methods]
        ax.bar([x + i * width for x in range(len(methods))], values, width, label=system)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(methods))])
    ax.set_xticklabels(methods, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("median seconds (log scale, lower is better)")
    ax.set_title("fusing 3 runs of 1,000 queries x 1,000 docs")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = OUT / "fusion.png"
    fig.savefig(path, dpi=110)
    return path


def plot_select() -> Optional[Path]:
    """Rationale recall and all-kept rate against the kept token fraction,
    per method, for each split; None without quality_select.json."""
    rows = load_rows("quality_select")
    if not rows:
        return None
    splits = list(dict.fromkeys(r["split"] for r in rows))
    fig, axes = plt.subplots(2, len(splits), figsize=(6.5 * len(splits), 9), squeeze=False)
    for col, split in enumerate(splits):
        mine = [r for r in rows if r["split"] == split]
        for row, metric in enumerate(("rationale_recall", "all_kept")):
            ax = axes[row][col]
            series = {}  # the single-point rows (whole passages, their token counts) joined into one series each
            for r in mine:
                name = r["method"]
                if name.endswith("passages") or name.endswith("passages' tokens"):
                    name = ("top-k passages whole (k = 1, 2, 3)" if name.endswith("passages")
                            else "ragkernels hybrid, the top-k passages' tokens claim by claim")
                series.setdefault(name, []).append((r["kept_fraction"], r[metric]))
            colors = iter(plt.get_cmap("tab10").colors)
            for name, points in series.items():
                points.sort()
                style = dict(color="black", linestyle="--", marker="s") if name.startswith("top-k") else \
                    dict(color="red", linestyle="none", marker="*", markersize=10) if "claim by claim" in name else \
                    dict(color=next(colors), linestyle="-" if name.startswith("ragkernels") else ":", marker="o")
                style.setdefault("markersize", 3)
                ax.plot([p[0] for p in points], [p[1] for p in points], label=name,
                        linewidth=2.5 if name == "ragkernels hybrid" else 1, **style)
            if metric == "rationale_recall":
                ax.axhline(mine[0]["retrieval_ceiling"], color="grey", linewidth=0.8, linestyle=":")
            ax.axvline(0.3, color="grey", linewidth=0.8, linestyle=":")
            ax.set_xlabel("fraction of the top-3 passages' tokens kept")
            ax.set_ylabel(metric.replace("_", " "))
            ax.set_title(f"SciFact {split} ({mine[0]['claims']} claims): {metric.replace('_', ' ')}")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = OUT / "select_quality.png"
    fig.savefig(path, dpi=100)
    return path


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    print(plot_metrics(), plot_topk(), plot_sparse() or "sparse.json not found: no sparse_qps.png",
          plot_dense() or "dense.json not found: no dense_qps.png",
          plot_fusion() or "fusion.json not found: no fusion.png",
          plot_select() or "quality_select.json not found: no select_quality.png")
