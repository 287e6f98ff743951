"""A short fuzz run of every target of fuzz/targets.py, on every CI run.

Each target runs for a few seconds (``RK_FUZZ_TEST_SECONDS``, default 2)
under atheris, from seeds made of the shipped data; any crash, hang,
out-of-memory or finding (docs/fuzzing.md) fails the test, which prints
each finding and how to reproduce it. Locally a missing atheris skips;
under CI (``CI`` set) it fails, so CI never silently stops fuzzing. The
long runs are documented in docs/fuzzing.md. The first tests check the
harness itself (no atheris needed): the oracle, the checksum fix-up.
"""
import json
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest

import ragkernels as rk
from fuzz import container, harness
from fuzz.checks import Finding, rejection_problem
from fuzz.targets import TARGETS, Target

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("RK_FUZZ_TEST_SECONDS", "2"))


def _fake(load) -> Target:
    return Target("fake", "input.txt", load, dict)


@pytest.mark.parametrize("exc,ok", [
    (lambda p: rk.FormatError(f"{p}: bad magic"), True),
    (lambda p: ValueError(f"{p}:3: expected 4 fields"), True),
    (lambda p: FileNotFoundError(2, "No such file", str(p)), True),
    (lambda p: ValueError("expected 4 fields"), False),  # no file named
    (lambda p: UnicodeDecodeError("utf-8", b"\xff", 0, 1, f"{p}"), False),  # bare, even naming it
    (lambda p: KeyError("vectors"), False),
    (lambda p: MemoryError(), False),
])
def test_fuzz_oracle_sorts_rejections(tmp_path, exc, ok):
    def load(path, work):
        raise exc(path)

    harness.prepare(_fake(load), tmp_path)
    found = harness.one_input(_fake(load), b"x", tmp_path)
    assert (found is None) == ok, found


def test_fuzz_oracle_reports_a_broken_check_with_a_stable_signature(tmp_path):
    def check(result):
        raise Finding(f"search: taat disagrees with exhaustive -- query {result!r}")

    target = Target("fake", "input.txt", lambda p, w: p.read_bytes(), dict, check)
    a = harness.one_input(target, b"one", tmp_path)
    b = harness.one_input(target, b"two", tmp_path)
    assert a.stage == "check" and a.signature == b.signature and "disagrees" in a.signature
    assert rejection_problem(RuntimeError("x"), ["f"]) == "unexpected RuntimeError"


def test_fuzz_xxh64_matches_the_core(tmp_path):
    # The pure-Python XXH64 (used when the xxhash package is absent) against
    # the checksum the core writes for the same payload.
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 4, 7, 8, 31, 32, 33, 100, 1000):
        payload = rng.integers(0, 256, n, dtype=np.uint8)
        path = tmp_path / "a.rk"
        rk.save_arrays(path, {"p": payload})
        stored = int.from_bytes(path.read_bytes()[128 + 56:128 + 64], "little")
        assert container._xxh64_py(payload.tobytes()) == stored == container.xxh64(payload.tobytes())


def test_fuzz_fixed_checksums_reach_the_loader(tmp_path):
    # Field-level mutations keep the container valid: most mutated files
    # pass the checksums and are refused (or accepted) by the loader itself.
    path = tmp_path / "a.rk"
    rk.save_arrays(path, {"x": np.arange(5, dtype=np.int32), "y": np.ones(3, np.float64)}, kind="k")
    data = path.read_bytes()
    assert container.serialize(container.parse(data)) == data
    rng, messages = random.Random(0), []
    for _ in range(200):
        path.write_bytes(container.mutate(data, rng, lambda b, n: b[::-1]))
        try:
            rk.load_arrays(path)
        except ValueError as e:
            messages.append(str(e))
    assert not any("checksum mismatch" in m for m in messages), messages[:3]
    corrupt = bytearray(data)
    corrupt[-1] ^= 1
    path.write_bytes(container.fix_checksums(bytes(corrupt)))
    rk.load_arrays(path)


def _atheris_or_skip():
    try:
        import atheris  # noqa: F401
    except ImportError:
        message = "atheris not installed (pip install atheris==3.0.0; it is in the [test] extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _describe(findings: pathlib.Path, target: str) -> str:
    lines = []
    for info_path in sorted((findings / target).glob("*/info.json")):
        info = json.loads(info_path.read_text())
        lines.append(f"- [{info['stage']}] {info['problem']}\n  {info['exception']}: {info['message'][:300]}\n"
                     f"  input: {info_path.parent / info['input']}\n"
                     f"  python -m fuzz.run --target {target} --reproduce {info_path.parent / info['input']}")
    for log in sorted((findings / target / "artifacts").glob("died-*/log.txt")):
        lines.append(f"- the child died:\n{log.read_text()[-2000:]}")
    return "\n".join(lines)


@pytest.mark.parametrize("target", [t.name for t in TARGETS])
def test_fuzz_target_short_run(tmp_path, target):
    _atheris_or_skip()
    findings = tmp_path / "findings"
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "--target", target, "--seconds", str(SECONDS), "--timeout", "20",
         "--cache", str(tmp_path / "cache"), "--findings", str(findings), "--summary", str(tmp_path / "s.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120 + 10 * SECONDS)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}\n{_describe(findings, target)}"
    summary = json.loads((tmp_path / "s.json").read_text())[0]
    assert summary["execs"] > 0, proc.stdout


def test_fuzz_runner_reports_crash_hang_and_finding(tmp_path):
    # RK_FUZZ_SELFTEST adds a target with planted bugs: the runner must
    # survive the crash and the hang, count all three, keep their inputs
    # and exit non-zero.
    _atheris_or_skip()
    findings = tmp_path / "findings"
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "--target", "selftest", "--seconds", "12", "--timeout", "1",
         "--cache", str(tmp_path / "cache"), "--findings", str(findings), "--summary", str(tmp_path / "s.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "RK_FUZZ_SELFTEST": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())[0]
    assert summary["crashes"] >= 1 and summary["hangs"] >= 1 and summary["findings"] == 1, summary
    artifacts = sorted(p.name.split("-")[0] for p in (findings / "selftest" / "artifacts").iterdir())
    assert {"crash", "timeout", "died"} <= set(artifacts), artifacts
    info = json.loads(next((findings / "selftest").glob("*/info.json")).read_text())
    assert info["exception"] == "KeyError" and (findings / "selftest" / info["signature"] is not None)
