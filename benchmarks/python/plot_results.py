"""Plots of the benchmark results for docs/benchmarks.md.

Reads benchmarks/results/bench_metrics*.json, bench_core.json, sparse.json,
dense.json, fusion.json, quality_select.json and spec_rag/spec_open.json (written by the bench_* and
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


FUSION_SYSTEMS = {"ranx": "ranx (prebuilt Runs)", "ranx-dicts": "ranx (from dicts)",
                  "ragkernels": "ragkernels (dicts)", "ragkernels-arrays": "ragkernels (arrays)"}


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def plot_fusion() -> Optional[Path]:
    """Median seconds per method on 3 runs of 1,000 x 1,000: ranx (prebuilt
    Runs, and from dicts) vs ragkernels (dicts, arrays); None without fusion.json.
    The legend sits above the axes and each bar carries its value, so no bar
    is hidden."""
    rows = [r for r in load_rows("fusion") if r["scenario"] == "synth-3"]
    if not rows:
        return None
    methods = list(dict.fromkeys(r["method"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    with plt.rc_context({"font.size": 12}):
        fig, ax = plt.subplots(figsize=(max(10, 2.9 * len(methods)), 5.2))
        width = 0.8 / len(systems)
        for i, system in enumerate(systems):
            values = [next((r["median_s"] for r in rows if r["method"] == m and r["system"] == system), 0.0)
                      for m in methods]
            bars = ax.bar([x + i * width for x in range(len(methods))], values, width,
                          label=FUSION_SYSTEMS.get(system, system))
            ax.bar_label(bars, labels=[_seconds(v) if v else "" for v in values], fontsize=9, padding=2)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(methods))])
        ax.set_xticklabels(methods)
        ax.set_xlabel("fusion method")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * 2.5)  # room for the value labels
        ax.set_ylabel("median seconds (log scale, lower is better)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(systems), frameon=False,
                  fontsize=11)
        ax.set_title("fusing 3 runs of 1,000 queries x 1,000 docs", pad=34)
        fig.tight_layout()
        path = OUT / "fusion.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path


# Clue selection: one row of panels per comparison, at most five curves each;
# "ragkernels hybrid" (the default preset) is in every row as the reference,
# drawn first, wide and pale, so curves that follow it stay visible; a method
# keeps its colour across rows.
SELECT_GROUPS = [
    ("against baselines", ["top-k passages whole (k = 1, 2, 3)", "hybrid, the top-k passages' tokens",
                           "BM25 sentences", "dense sentences", "ragkernels hybrid"]),
    ("ragkernels scorers", ["ragkernels lexical", "ragkernels lexical, corpus IDF", "ragkernels dense",
                            "ragkernels hybrid"]),
    ("hybrid variants", ["ragkernels hybrid + MaxSim (external)", "ragkernels hybrid + MMR 0.7",
                         "ragkernels hybrid, raw-score knapsack", "ragkernels hybrid"]),
]
SELECT_STYLE = {
    "top-k passages whole (k = 1, 2, 3)": dict(color="black", linestyle="--", marker="s"),
    "hybrid, the top-k passages' tokens": dict(color="red", linestyle="none", marker="*", markersize=13),
    "BM25 sentences": dict(color="tab:blue", linestyle=":", marker="o"),
    "dense sentences": dict(color="tab:orange", linestyle=":", marker="o"),
    "ragkernels lexical": dict(color="tab:green", marker="o"),
    "ragkernels lexical, corpus IDF": dict(color="tab:olive", marker="^"),
    "ragkernels dense": dict(color="tab:purple", marker="v"),
    "ragkernels hybrid": dict(color="tab:brown", marker="o", linewidth=4, alpha=0.5, zorder=1),
    "ragkernels hybrid + MaxSim (external)": dict(color="tab:pink", marker="^"),
    "ragkernels hybrid + MMR 0.7": dict(color="tab:gray", marker="v"),
    "ragkernels hybrid, raw-score knapsack": dict(color="tab:cyan", marker="D"),
}


def _select_series(rows):
    """{method: [(kept_fraction, row)]}, the single-point rows (whole
    passages, their token counts) joined into one series each."""
    series = {}
    for r in rows:
        name = r["method"]
        if name.endswith("passages"):
            name = "top-k passages whole (k = 1, 2, 3)"
        elif name.endswith("passages' tokens"):
            name = "hybrid, the top-k passages' tokens"
        series.setdefault(name, []).append((r["kept_fraction"], r))
    return {name: sorted(points, key=lambda p: p[0]) for name, points in series.items()}


def plot_select() -> Optional[Path]:
    """Rationale recall and all-kept rate against the kept token fraction,
    per split, as small multiples (see SELECT_GROUPS); None without
    quality_select.json."""
    rows = load_rows("quality_select")
    if not rows:
        return None
    splits = list(dict.fromkeys(r["split"] for r in rows))
    columns = [(split, metric) for split in splits for metric in ("rationale_recall", "all_kept")]
    with plt.rc_context({"font.size": 11}):
        fig, axes = plt.subplots(len(SELECT_GROUPS), len(columns), figsize=(4.2 * len(columns) + 3.6, 12.5),
                                 squeeze=False, sharex=True)
        for col, (split, metric) in enumerate(columns):
            mine = [r for r in rows if r["split"] == split]
            series = _select_series(mine)
            values = [r[metric] for points in series.values() for _, r in points]
            for row, (group, names) in enumerate(SELECT_GROUPS):
                ax = axes[row][col]
                for name in sorted(names, key=lambda n: n != "ragkernels hybrid"):  # the reference underneath
                    if name not in series:
                        continue
                    style = {"linestyle": "-", "linewidth": 1.6, "markersize": 5, **SELECT_STYLE.get(name, {})}
                    points = series[name]
                    ax.plot([p[0] for p in points], [p[1][metric] for p in points], label=name, **style)
                if metric == "rationale_recall":
                    ax.axhline(mine[0]["retrieval_ceiling"], color="grey", linewidth=0.9, linestyle=":")
                ax.axvline(0.3, color="grey", linewidth=0.9, linestyle=":")
                ax.set_ylim(min(values) - 0.03, max(values) + 0.03)
                ax.grid(alpha=0.3)
                if row == 0:
                    ax.set_title(f"SciFact {split} ({mine[0]['claims']} claims)\n{metric.replace('_', ' ')}")
                if row == len(SELECT_GROUPS) - 1:
                    ax.set_xlabel("fraction of the top-3\npassages' tokens kept")
                if col == 0:
                    ax.set_ylabel(f"{group}\n\n{'rationale recall' if metric == 'rationale_recall' else 'all kept'}")
                else:
                    ax.set_ylabel(metric.replace("_", " "))
        for row, _ in enumerate(SELECT_GROUPS):
            handles, labels = axes[row][-1].get_legend_handles_labels()
            axes[row][-1].legend(handles, labels, loc="center left", bbox_to_anchor=(1.04, 0.5), frameon=False,
                                 fontsize=10.5)
        fig.suptitle("clue selection on SciFact: rationale sentences kept against tokens kept "
                     "(dotted: 30% of the tokens; retrieval ceiling)", fontsize=13)
        fig.tight_layout()
        path = OUT / "select_quality.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return path


def plot_spec() -> Optional[Path]:
    """Tokens/s per system on the RAG and the open-ended prompts, batch 1."""
    rag, open_ = load_rows("spec_rag"), load_rows("spec_open")
    if not rag or not open_:
        return None
    systems = [r["system"] for r in rag]
    fig, ax = plt.subplots(figsize=(12, 1.5 + 0.55 * len(systems)))
    width = 0.38
    for i, (rows, label) in enumerate([(rag, "RAG prompts (SciFact, DL19)"), (open_, "open-ended prompts")]):
        values = [next(r["tokens/s"] for r in rows if r["system"] == s) for s in systems]
        bars = ax.barh([y + i * width for y in range(len(systems))], values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=9)
    ax.set_yticks([y + width / 2 for y in range(len(systems))])
    ax.set_yticklabels(systems)
    ax.invert_yaxis()
    ax.set_xlabel("tokens/s, SmolLM2-135M-Instruct, greedy, batch 1, 2 threads (higher is better)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)  # below: hides no bar
    ax.set_xlim(0, max(r["tokens/s"] for r in rag + open_) * 1.12)
    fig.tight_layout()
    path = OUT / "spec_tokens_per_s.png"
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    print(plot_metrics(), plot_topk(), plot_sparse() or "sparse.json not found: no sparse_qps.png",
          plot_dense() or "dense.json not found: no dense_qps.png",
          plot_fusion() or "fusion.json not found: no fusion.png",
          plot_select() or "quality_select.json not found: no select_quality.png",
          plot_spec() or "spec_rag.json not found: no spec_tokens_per_s.png")
