"""Run the fuzz targets of fuzz/targets.py under atheris (libFuzzer).

    python -m fuzz.run --list
    python -m fuzz.run --target bm25_fixed --seconds 60
    python -m fuzz.run --all --runs 100000 --findings /tmp/fuzz-findings
    python -m fuzz.run --target flat_fixed --reproduce /tmp/fuzz-findings/flat_fixed/<id>/input.rk
    python -m fuzz.run --target trec_run --minimize --findings /tmp/fuzz-findings
    python -m fuzz.run --target bm25 --seconds 60 -- -use_value_profile=1   (after --: libFuzzer flags)

Each target runs in a child process (a crash or a hang ends the child, not
the runner; the runner restarts it for the time left, a few times). The
runner prints one summary line per target and exits 1 on any crash, hang
or finding; findings keep their smallest input and an info.json under
``--findings/<target>/<id>/``, libFuzzer's crash-/timeout-/oom- files go
under ``--findings/<target>/artifacts/``. docs/fuzzing.md says more.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_RESTARTS = 5


def default_cache() -> pathlib.Path:
    return pathlib.Path(os.environ.get("RK_FUZZ_CACHE") or pathlib.Path(tempfile.gettempdir()) / "ragkernels-fuzz")


def work_root() -> pathlib.Path:
    """tmpfs when there is one: every execution writes its input file."""
    shm = pathlib.Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else pathlib.Path(tempfile.gettempdir())
    return pathlib.Path(tempfile.mkdtemp(prefix="rk-fuzz-", dir=base))


# --- the child: one target under atheris ------------------------------------------------------

def child_main(args: argparse.Namespace, libfuzzer: List[str]) -> None:
    import random

    import atheris

    with atheris.instrument_imports(include=["ragkernels"]):
        import ragkernels  # noqa: F401 - imported here so that its Python code is instrumented
    from fuzz import container, harness
    from fuzz.targets import BY_NAME

    target = BY_NAME[args.child]
    leaves, feedback = harness.make_feedback()
    for leaf in leaves:
        atheris.instrument_func(leaf)
    work = pathlib.Path(args.work)
    harness.prepare(target, work)
    recorder = harness.Recorder(target, pathlib.Path(args.findings))
    stats = {"execs": 0, "start": time.monotonic()}
    stats_path = pathlib.Path(args.stats)
    last = [time.monotonic()]

    def test_one_input(data: bytes) -> None:
        stats["execs"] += 1
        found = harness.one_input(target, data, work, feedback)
        if found is not None:
            recorder.record(found, data)
        now = time.monotonic()
        if now - last[0] > 1:
            last[0] = now
            recorder.flush()
            stats_path.write_text(json.dumps({"execs": stats["execs"], "seconds": now - stats["start"]}))

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.75:
            out = container.mutate(data, rng, atheris.Mutate)
            if out is not None and len(out) <= max_size:
                return out
        return container.fix_checksums(atheris.Mutate(data, max_size))

    extra = {"custom_mutator": custom_mutator} if target.fix_checksums else {}
    atheris.Setup([sys.argv[0]] + libfuzzer, test_one_input, **extra)
    atheris.Fuzz()


# --- the parent -------------------------------------------------------------------------------

_STAT = re.compile(r"stat::(\w+):\s+(\d+)")
_DONE = re.compile(r"Done \d+ runs in (\d+) second")


def _write_seeds(target, folder: pathlib.Path) -> int:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    largest = 0
    for name, data in target.seeds().items():
        (folder / name.replace("/", "_")).write_bytes(data)
        largest = max(largest, len(data))
    return largest


def _count_findings(folder: pathlib.Path) -> List[pathlib.Path]:
    return sorted(p.parent for p in folder.glob("*/info.json")) if folder.is_dir() else []


def fuzz_target(target, args: argparse.Namespace) -> dict:
    """Fuzz one target for --seconds or --runs; returns its summary."""
    cache = pathlib.Path(args.cache)
    seeds_dir = cache / "seeds" / target.name
    corpus_dir = cache / "corpus" / target.name
    if args.fresh and corpus_dir.exists():
        shutil.rmtree(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    largest = _write_seeds(target, seeds_dir)
    findings = pathlib.Path(args.findings)
    artifacts = findings / target.name / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(_count_findings(findings / target.name))
    before_artifacts = set(artifacts.iterdir())
    work = work_root()
    log_path = findings / target.name / "last-run.log"
    total = {"target": target.name, "execs": 0, "seconds": 0.0, "fuzz_seconds": 0.0, "crashes": 0, "hangs": 0,
             "ooms": 0, "restarts": 0}
    started, wall_start = time.monotonic(), time.time()
    try:
        for attempt in range(MAX_RESTARTS + 1):
            left_s = args.seconds - (time.monotonic() - started) if args.seconds else None
            left_runs = args.runs - total["execs"] if args.runs else None
            if attempt and ((left_s is not None and left_s < 1) or (left_runs is not None and left_runs <= 0)):
                break
            stats_path = work / "stats.json"
            stats_path.unlink(missing_ok=True)
            budget = [f"-max_total_time={max(1, round(left_s))}"] if left_s is not None else [f"-runs={left_runs}"]
            libfuzzer = [str(corpus_dir), str(seeds_dir), *budget, f"-timeout={args.timeout}",
                         f"-rss_limit_mb={args.rss_limit_mb}", f"-max_len={max(4096, 2 * largest)}",
                         f"-artifact_prefix={artifacts}/", "-print_final_stats=1", "-keep_seed=1", *args.libfuzzer]
            cmd = [sys.executable, "-m", "fuzz.run", "--child", target.name, "--work", str(work / "files"),
                   "--findings", str(findings), "--stats", str(stats_path), "--", *libfuzzer]
            with open(log_path, "w") as log:
                proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            text = log_path.read_text(errors="replace")
            stats = dict((k, int(v)) for k, v in _STAT.findall(text))
            mine = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            execs = stats.get("number_of_executed_units", mine.get("execs", 0))
            done = _DONE.search(text)
            total["execs"] += execs
            total["fuzz_seconds"] += max(int(done.group(1)) if done else 0, mine.get("seconds", 0))
            if proc.returncode == 0:
                break
            total["restarts"] += 1
            if "ERROR: libFuzzer: timeout" in text:
                total["hangs"] += 1
            elif "out-of-memory" in text:
                total["ooms"] += 1
            else:
                total["crashes"] += 1
            _keep_crash_log(findings / target.name, text, work / "files" / target.file, attempt)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total["seconds"] = round(time.monotonic() - started, 1)
    # Executions per second of fuzzing proper (libFuzzer's whole seconds, or
    # the child's own clock when it died), not counting start-up.
    total["fuzz_seconds"] = round(total["fuzz_seconds"], 1)
    total["exec_per_s"] = round(total["execs"] / (total["fuzz_seconds"] or total["seconds"] or 1), 1)
    found = _count_findings(findings / target.name)
    # A finding hit in this run had its info.json rewritten during it.
    total["findings"] = sum(1 for p in found if (p / "info.json").stat().st_mtime >= wall_start - 1)
    total["new_findings"] = sum(1 for p in found if p not in before)
    total["new_artifacts"] = sorted(str(p) for p in set(artifacts.iterdir()) - before_artifacts)
    return total


def _keep_crash_log(folder: pathlib.Path, text: str, current: pathlib.Path, attempt: int) -> None:
    """Save the child's output and the file it was reading when it died."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    crash = folder / "artifacts" / f"died-{stamp}-{attempt}"
    crash.mkdir(parents=True, exist_ok=True)
    (crash / "log.txt").write_text(text[-20000:])
    if current.exists():
        shutil.copy(current, crash / ("input" + (current.suffix or ".bin")))


def summary_line(s: dict) -> str:
    return (f"{s['target']:<20} {s['execs']:>9} execs in {s['seconds']:>6.1f} s ({s['exec_per_s']:>7.1f}/s)  "
            f"crashes {s['crashes']}  hangs {s['hangs']}  ooms {s['ooms']}  findings {s['findings']} "
            f"({s['new_findings']} new)")


def reproduce(target, files: List[str]) -> int:
    import faulthandler

    from fuzz import harness
    faulthandler.enable()
    work = work_root()
    bad = 0
    try:
        harness.prepare(target, work)
        for name in files:
            found = harness.one_input(target, pathlib.Path(name).read_bytes(), work)
            if found is None:
                print(f"{name}: no finding")
            else:
                bad += 1
                print(f"{name}: FINDING [{found.stage}] {found.problem}\n  signature: {found.signature}\n"
                      f"  {found.exception}: {found.message}\n{found.traceback}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


def minimize_findings(target, findings: pathlib.Path, budget_s: float) -> None:
    from fuzz import harness
    work = work_root()
    try:
        harness.prepare(target, work)
        for folder in _count_findings(findings / target.name):
            info = json.loads((folder / "info.json").read_text())
            path = folder / info["input"]
            data = path.read_bytes()
            found = harness.one_input(target, data, work)
            if found is None or found.signature != info["signature"]:
                print(f"{folder}: does not reproduce ({'fixed?' if found is None else found.signature})")
                continue
            small = harness.minimize(target, data, work, info["signature"], budget_s)
            if len(small) < len(data):
                path.write_bytes(harness.materialize(target, small))
                info["size"] = len(small)
                (folder / "info.json").write_text(json.dumps(info, indent=1))
            print(f"{folder}: {len(data)} -> {len(small)} bytes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: Optional[List[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    libfuzzer: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, libfuzzer = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", action="append", default=[], metavar="NAME", help="a target (repeatable)")
    p.add_argument("--all", action="store_true", help="every target, one after the other")
    p.add_argument("--list", action="store_true", help="list the targets")
    p.add_argument("--seconds", type=float, default=None, help="time per target")
    p.add_argument("--runs", type=int, default=None, help="executions per target")
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a hang")
    p.add_argument("--rss-limit-mb", type=int, default=2048, help="memory that makes an input an OOM finding")
    p.add_argument("--findings", default=None, help="where findings go (default: <cache>/findings)")
    p.add_argument("--cache", default=str(default_cache()), help="seeds and the grown corpus ($RK_FUZZ_CACHE)")
    p.add_argument("--fresh", action="store_true", help="forget the corpus grown by earlier runs")
    p.add_argument("--summary", default=None, help="also write the summaries as JSON to this file")
    p.add_argument("--reproduce", nargs="+", metavar="FILE", help="run these inputs once, in process")
    p.add_argument("--minimize", action="store_true", help="shrink the saved inputs of the target's findings")
    p.add_argument("--minimize-seconds", type=float, default=30.0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--stats", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.libfuzzer = libfuzzer
    if args.findings is None:
        args.findings = str(pathlib.Path(args.cache) / "findings")
    return p, args, libfuzzer


def main(argv: Optional[List[str]] = None) -> int:
    parser, args, libfuzzer = parse_args(argv)
    if args.child:
        child_main(args, libfuzzer)
        return 0
    from fuzz.targets import BY_NAME, TARGETS
    if args.list:
        for t in TARGETS:
            print(f"{t.name:<20} {t.about}")
        return 0
    unknown = [n for n in args.target if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; --list shows them")
    chosen = list(TARGETS) if args.all else [BY_NAME[n] for n in args.target]
    if not chosen:
        parser.error("name a --target or give --all")
    if args.reproduce:
        if len(chosen) != 1:
            parser.error("--reproduce needs exactly one --target")
        return reproduce(chosen[0], args.reproduce)
    if args.minimize:
        for t in chosen:
            minimize_findings(t, pathlib.Path(args.findings), args.minimize_seconds)
        return 0
    if args.seconds is None and args.runs is None:
        parser.error("give --seconds or --runs")
    summaries = []
    for t in chosen:
        s = fuzz_target(t, args)
        summaries.append(s)
        print(summary_line(s), flush=True)
        for a in s["new_artifacts"]:
            print(f"    artifact: {a}", flush=True)
    if args.summary:
        pathlib.Path(args.summary).write_text(json.dumps(summaries, indent=1))
    bad = sum(s["crashes"] + s["hangs"] + s["ooms"] + s["findings"] for s in summaries)
    if bad:
        print(f"FAIL: findings under {args.findings}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
