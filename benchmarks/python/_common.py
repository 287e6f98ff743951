"""Shared helpers of the side-by-side benchmarks: timing, memory, machine
facts, and writing results as JSON plus a markdown table."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

RESULTS = Path(__file__).resolve().parents[1] / "results"


def data_dir() -> Path:
    """The shared data folder (RAGKERNELS_DATA or ../shared/data beside the repo)."""
    env = os.environ.get("RAGKERNELS_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    if not path.is_dir():
        sys.exit(f"benchmark data not found at {path}; set RAGKERNELS_DATA")
    return path


def read_beir_qrels(path: Path) -> Dict[str, Dict[str, int]]:
    """A BEIR qrels .tsv (header line, then query-id, corpus-id, score) as {qid: {doc: rel}}."""
    out: Dict[str, Dict[str, int]] = {}
    for line in Path(path).read_text().splitlines()[1:]:
        q, d, r = line.split("\t")
        out.setdefault(q, {})[d] = int(r)
    return out


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 1) -> Dict[str, float]:
    """Median and p99 wall seconds of `repeat` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return {"median_s": statistics.median(times), "p99_s": p99, "min_s": times[0], "repeat": repeat}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_isolated(module_args: List[str]) -> Dict[str, object]:
    """Run `python <script> <args>` in a fresh process and parse its JSON line.

    Used where a row must include the first call in a fresh process or the
    process's own peak memory.
    """
    out = subprocess.run([sys.executable, *module_args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def versions(dists: Dict[str, str]) -> Dict[str, str]:
    """{name: installed version} of each distribution in {name: distribution}."""
    out = {}
    for name, dist in dists.items():
        try:
            out[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> Dict[str, object]:
    info: Dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                        for d in threadpool_info()]
    except ImportError:
        pass
    return info


def write_results(name: str, rows: List[Dict[str, object]], columns: List[str], meta: Dict[str, object]) -> str:
    """Write benchmarks/results/<name>.json and .md; return the markdown table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(table)
    return table
