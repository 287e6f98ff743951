"""IR evaluation side by side: ragkernels.metrics vs pytrec_eval vs ranx vs ir_measures.

Measures map, ndcg_cut.10, P.10, recall.100, recip_rank (ranx: map, ndcg@10,
precision@10, recall@100, mrr; ir_measures: AP, nDCG@10, P@10, R@100, RR).
Scenarios (inputs from gen_eval_data.py, written once into --workdir):

* ``scifact``, ``cacm`` (a): every BEIR test query, a 1,000-deep run of its
  judged docs plus random corpus docs with random tie-free scores;
  ``dl19``, ``dl20`` (a): the real rep-llama 1,000-deep runs (their scores
  have ties: peers that break ties otherwise than trec_eval may differ).
  Inputs in memory as each library takes them: ours ``evaluate(qrels_dict,
  run_dict)`` (building both inside the timed call), pytrec_eval a
  RelevanceEvaluator built outside the timer + the run dict, ranx prebuilt
  Qrels/Run, ir_measures the two dicts.
* ``synth-files`` (b): 10,000 queries x 1,000 docs read from TREC files, timing
  load + evaluate with each library's own loader.
* ``synth-memory`` (b): the same data in memory, timing evaluate only; ours
  takes compact int arrays (query_ids, doc_ids, values) and builds its
  structures inside the timed call, the peers get their own structures
  prebuilt outside the timer, as in (a).
* ``synth-arrays`` (b): every library starts from the same numpy arrays and
  the timed call includes turning them into what the library takes (dicts
  for pytrec_eval and ir_measures, Qrels/Run for ranx): the same work.

Every (scenario, threads, library) runs in a fresh worker process, which loads
only what its library needs: the first call is timed on its own
(``first_call_s``: ranx compiles with numba; numba's on-disk cache is filled
beforehand, as on a user's second run, and the first call with an empty
cache is reported in the meta), then ``repeat`` warm calls give
median and p99; ``peak_rss_mb`` is the worker's ru_maxrss. Threads are 1 and
all cores, set through RAGKERNELS_NUM_THREADS, NUMBA_NUM_THREADS,
rk.set_num_threads and ranx's ``threads=`` (pytrec_eval and ir_measures are
single-threaded). ``x_faster`` = peer median / ours median. The parent asserts
that ours equals pytrec_eval to 1e-12 and reports the largest difference of
ranx and ir_measures per measure. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_metrics.py

(``--quick``: 1,000 synthetic queries, repeat 3; ``--scenarios a,synth-files``.)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List

from _common import data_dir, machine, peak_rss_mb, time_calls, versions, write_results

MEASURES = ["map", "ndcg_cut.10", "P.10", "recall.100", "recip_rank"]
KEYS = ["map", "ndcg_cut_10", "P_10", "recall_100", "recip_rank"]
RANX = dict(zip(["map", "ndcg@10", "precision@10", "recall@100", "mrr"], KEYS))
IRM = dict(zip(["AP", "nDCG@10", "P@10", "R@100", "RR"], KEYS))
LIBS = ["ragkernels", "pytrec_eval", "ranx", "ir_measures"]
SCENARIOS = {"scifact": "a", "cacm": "a", "dl19": "a", "dl20": "a", "synth-files": "b", "synth-memory": "b",
             "synth-arrays": "b"}
DISTS = {"ragkernels": "ragkernels", "pytrec_eval": "pytrec-eval-terrier", "ranx": "ranx",
         "ir_measures": "ir-measures", "numba": "numba", "numpy": "numpy"}
Means = Dict[str, float]


# ---------------------------------------------------------------- inputs (outside the timer)

def read_qrels(path: str) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = defaultdict(dict)
    with open(path) as f:
        for line in f:
            q, _, d, r = line.split()
            out[q][d] = int(r)
    return dict(out)


def read_run(path: str) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = defaultdict(dict)
    with open(path) as f:
        for line in f:
            q, _, d, _, s, _ = line.split()
            out[q][d] = float(s)
    return dict(out)


def dicts_from_arrays(path):
    """The synthetic .npz as {qid: {"D1234567": value}} qrels and run dicts."""
    import numpy as np

    z = np.load(path) if isinstance(path, str) else path

    def build(qid, did, val):
        bounds = np.flatnonzero(np.diff(qid)) + 1
        out = {}
        for q, d, v in zip(np.split(qid, bounds), np.split(did, bounds), np.split(val, bounds)):
            out[str(q[0])] = dict(zip([f"D{x:07d}" for x in d.tolist()], v.tolist()))
        return out

    return build(z["q_qid"], z["q_did"], z["q_rel"]), build(z["r_qid"], z["r_did"], z["r_score"])


def load_inputs(mode: str, spec: Dict[str, str]):
    if mode == "dicts":
        return read_qrels(spec["qrels"]), read_run(spec["run"])
    return dicts_from_arrays(spec["arrays"])


def peer_inputs(mode: str, spec: Dict[str, str], convert: Callable):
    """A zero-argument callable giving the peer its (qrels, run): prebuilt
    outside the timer, or, in "arrays" mode, converted from the arrays
    inside it (the arrays themselves are loaded outside)."""
    if mode != "arrays":
        built = convert(*load_inputs(mode, spec))
        return lambda: built
    import numpy as np

    z = dict(np.load(spec["arrays"]))
    return lambda: convert(*dicts_from_arrays(z))


# ---------------------------------------------------------------- one callable per library

def ours(mode: str, spec: Dict[str, str], threads: int) -> Callable[[], Means]:
    import numpy as np
    import ragkernels as rk
    from ragkernels.metrics import evaluate

    rk.set_num_threads(threads)
    if mode == "files":
        qrels, run = spec["qrels"], spec["run"]
    elif mode == "dicts":
        qrels, run = load_inputs(mode, spec)
    else:  # memory and arrays: ours takes the arrays as they are
        z = np.load(spec["arrays"])
        qrels = (z["q_qid"], z["q_did"], z["q_rel"])
        run = (z["r_qid"], z["r_did"], z["r_score"])
    def call() -> Means:
        summary = evaluate(qrels, run, MEASURES).summary
        return {k: summary[k] for k in KEYS}
    return call


def pytrec_means(evaluator, run) -> Means:
    per_query = evaluator.evaluate(run)
    n = len(per_query)
    return {k: sum(v[k] for v in per_query.values()) / n for k in KEYS}


def pytrec(mode: str, spec: Dict[str, str], threads: int) -> Callable[[], Means]:
    import pytrec_eval

    if mode == "files":
        def call() -> Means:
            with open(spec["qrels"]) as fq, open(spec["run"]) as fr:
                qrels, run = pytrec_eval.parse_qrel(fq), pytrec_eval.parse_run(fr)
            return pytrec_means(pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES)), run)
        return call
    if mode == "arrays":
        inputs = peer_inputs(mode, spec, lambda q, r: (q, r))

        def from_arrays() -> Means:
            qrels, run = inputs()
            return pytrec_means(pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES)), run)
        return from_arrays
    qrels, run = load_inputs(mode, spec)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES))
    del qrels
    return lambda: pytrec_means(evaluator, run)


def ranx_(mode: str, spec: Dict[str, str], threads: int) -> Callable[[], Means]:
    from ranx import Qrels, Run, evaluate

    def call(qrels, run) -> Means:
        out = evaluate(qrels, run, list(RANX), threads=threads, save_results_in_run=False)
        return {RANX[m]: float(v) for m, v in out.items()}

    if mode == "files":
        return lambda: call(Qrels.from_file(spec["qrels"], kind="trec"), Run.from_file(spec["run"], kind="trec"))
    inputs = peer_inputs(mode, spec, lambda q, r: (Qrels(q), Run(r)))
    return lambda: call(*inputs())


def irm(mode: str, spec: Dict[str, str], threads: int) -> Callable[[], Means]:
    import ir_measures

    measures = [ir_measures.parse_measure(m) for m in IRM]

    def call(qrels, run) -> Means:
        return {IRM[str(m)]: float(v) for m, v in ir_measures.calc_aggregate(measures, qrels, run).items()}

    if mode == "files":
        return lambda: call(ir_measures.read_trec_qrels(spec["qrels"]), ir_measures.read_trec_run(spec["run"]))
    inputs = peer_inputs(mode, spec, lambda q, r: (q, r))
    return lambda: call(*inputs())


MAKERS = {"ragkernels": ours, "pytrec_eval": pytrec, "ranx": ranx_, "ir_measures": irm}


def worker(args: argparse.Namespace) -> None:
    """Time one library on one input; print one JSON line."""
    spec = json.loads(args.spec)
    fn = MAKERS[args.worker](args.mode, spec, args.threads)
    start = time.perf_counter()
    means = fn()
    first = time.perf_counter() - start
    timing = time_calls(fn, args.repeat, warmup=0)
    print(json.dumps({"first_call_s": first, **timing, "peak_rss_mb": peak_rss_mb(), "means": means}))


# ---------------------------------------------------------------- parent

def run_worker(lib: str, mode: str, spec: Dict[str, str], threads: int, repeat: int,
               **extra_env: str) -> Dict[str, object]:
    env = dict(os.environ, RAGKERNELS_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads), **extra_env)
    cmd = [sys.executable, __file__, "--worker", lib, "--mode", mode, "--spec", json.dumps(spec),
           "--threads", str(threads), "--repeat", str(repeat)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} worker failed ({mode}, {threads} threads):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def prime_ranx(workdir: Path) -> float:
    """Fill numba's on-disk cache of ranx, so that every first_call_s finds it warm
    (as on a user's second run); return the first call with an empty cache."""
    import gen_eval_data

    spec = gen_eval_data.beir(workdir, data_dir() / "classic" / "cacm", "cacm")
    with tempfile.TemporaryDirectory() as empty:
        cold = run_worker("ranx", "files", spec, 1, 1, NUMBA_CACHE_DIR=empty)["first_call_s"]
    run_worker("ranx", "files", spec, 1, 1)
    return cold


def compare(results: Dict[str, Dict[str, object]]) -> Dict[str, Dict[str, float]]:
    """Max abs difference of every library's means from ours, per measure."""
    base = results["ragkernels"]["means"]
    return {lib: {k: abs(r["means"][k] - base[k]) for k in KEYS} for lib, r in results.items() if lib != "ragkernels"}


def scenario_inputs(name: str, paths: Dict[str, Dict[str, str]]):
    if name == "synth-files":
        return "files", paths["synth"]
    if name == "synth-memory":
        return "memory", paths["synth"]
    if name == "synth-arrays":
        return "arrays", paths["synth"]
    return "dicts", paths[name]


def pick_scenarios(text: str) -> List[str]:
    names: List[str] = []
    for part in text.split(","):
        names += [s for s, g in SCENARIOS.items() if g == part] if part in ("a", "b") else [part]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenarios {unknown}; choose from a, b, {', '.join(SCENARIOS)}")
    return list(dict.fromkeys(names))



def label(name: str, n_synth: int) -> str:
    return name.replace("synth", f"synth{n_synth // 1000}k") if name.startswith("synth") else name


def main(args: argparse.Namespace) -> None:
    import gen_eval_data

    n_synth = 1000 if args.quick else 10_000
    names = pick_scenarios(args.scenarios)
    datasets = {"synth" if n.startswith("synth") else n for n in names}
    paths = gen_eval_data.prepare(Path(args.workdir), data_dir(), n_synth, sorted(datasets))
    ranx_cold = prime_ranx(Path(args.workdir))
    rows, diffs, failures = [], {}, []
    for name in names:
        mode, spec = scenario_inputs(name, paths)
        repeat = 3 if args.quick else (5 if SCENARIOS[name] == "b" else 20)
        for threads in sorted({1, os.cpu_count() or 1}):
            results = {}
            for lib in LIBS:
                results[lib] = run_worker(lib, mode, spec, threads, repeat)
                print(f"{name} threads={threads} {lib}: first {results[lib]['first_call_s']:.3f}s "
                      f"median {results[lib]['median_s']:.3f}s", flush=True)
            diff = compare(results)
            key = f"{label(name, n_synth)}/threads={threads}"
            diffs[key] = diff
            worst = max(diff["pytrec_eval"].values())
            if worst > 1e-12:
                failures.append(f"{key}: ragkernels vs pytrec_eval differ by {worst:.3g}")
            ours_median = results["ragkernels"]["median_s"]
            for lib, r in results.items():
                rows.append({"scenario": label(name, n_synth), "threads": threads, "library": lib,
                             "first_call_s": r["first_call_s"], "median_s": r["median_s"], "p99_s": r["p99_s"],
                             "peak_rss_mb": r["peak_rss_mb"], "x_faster": r["median_s"] / ours_median})
    columns = ["scenario", "threads", "library", "first_call_s", "median_s", "p99_s", "peak_rss_mb", "x_faster"]
    meta = {"machine": machine(), "versions": versions(DISTS), "measures": MEASURES, "max_abs_diff_vs_ours": diffs,
            "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python " + " ".join(sys.argv),
            "n_synth_queries": n_synth, "quick": args.quick,
            "ranx_first_call_empty_numba_cache_s (cacm, from files)": ranx_cold}
    print(write_results(args.output + ("_quick" if args.quick else ""), rows, columns, meta))
    print_diffs(diffs)
    assert not failures, "\n".join(failures)


def print_diffs(diffs: Dict[str, Dict[str, Dict[str, float]]]) -> None:
    print("max |mean - ragkernels mean| per measure")
    print("| scenario | library | " + " | ".join(KEYS) + " |\n|" + "---|" * (len(KEYS) + 2))
    for key, per_lib in diffs.items():
        for lib, d in per_lib.items():
            print(f"| {key} | {lib} | " + " | ".join(f"{d[k]:.2g}" for k in KEYS) + " |")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 synthetic queries, repeat 3")
    p.add_argument("--scenarios", default="a,b", help="comma list of a, b, " + ", ".join(SCENARIOS))
    p.add_argument("--output", default="bench_metrics", help="results name under benchmarks/results/")
    p.add_argument("--workdir", default="/tmp/ragkernels-bench", help="where generated inputs go")
    p.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["dicts", "files", "memory", "arrays"], help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, default=5, help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    worker(ARGS) if ARGS.worker else main(ARGS)
