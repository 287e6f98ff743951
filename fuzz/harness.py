"""One fuzz input through one target, and the record of what went wrong.

Used in the atheris child (fuzz/run.py), by ``--reproduce`` and
``--minimize``, and by tests/test_fuzz.py. Imports ragkernels lazily, so
that the child can import it under atheris's coverage instrumentation.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import time
import traceback
from dataclasses import dataclass
from typing import Dict, Optional


@dataclass
class Outcome:
    """A finding: where it happened, what is wrong, and a stable signature."""
    stage: str  # "load", "check" (after the loader accepted the file) or "after"
    problem: str
    exception: str
    message: str
    traceback: str
    signature: str


def _coarse(text: str, work: str) -> str:
    """A rejection message down to which check made it: no path, no values."""
    text = re.sub(r"['\"].*", "…", text.replace(work, "<work>"), flags=re.S)
    return re.sub(r"0x[0-9a-fA-F]+|[0-9a-fA-F]*\d[0-9a-fA-F]*", "N", text)[:80]


def _normalize(text: str, work: str) -> str:
    text = text.replace(work, "<work>")
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]|\{[^}]*\}", "…", text)
    text = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    return text[:90]


def _location(tb) -> str:
    """The innermost frame inside ragkernels (else the innermost one)."""
    frames = traceback.extract_tb(tb)
    inside = [f for f in frames if "ragkernels" in f.filename] or frames
    if not inside:
        return "?"
    f = inside[-1]
    return f"{pathlib.Path(f.filename).name}:{f.name}"


def input_path(target, work: pathlib.Path) -> pathlib.Path:
    return work / target.file


def names_for(target, work: pathlib.Path):
    """Strings one of which an error message must contain: the input file,
    or for a folder reader (load_beir) the folder."""
    path = input_path(target, work)
    if "/" in target.file:
        return [str(work / target.file.split("/")[0])]
    return [str(path)]


def prepare(target, work: pathlib.Path) -> None:
    """Create the work folder and write the target's partner files."""
    work.mkdir(parents=True, exist_ok=True)
    input_path(target, work).parent.mkdir(parents=True, exist_ok=True)
    for rel, data in (target.aux() if target.aux else {}).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)


def materialize(target, data: bytes) -> bytes:
    """The bytes the loader reads for fuzz input `data`."""
    if target.fix_checksums:
        from fuzz.container import fix_checksums
        return fix_checksums(data)
    return data


def one_input(target, data: bytes, work: pathlib.Path, feedback=None) -> Optional[Outcome]:
    """Write `data` where the target reads it, call the loader and the checks;
    None when all is well. `feedback(key)` hears what became of the input
    (which check refused it, or the shape of what was loaded)."""
    from fuzz.checks import Finding, rejection_problem

    path = input_path(target, work)
    path.write_bytes(materialize(target, data))
    names = names_for(target, work)
    outcome = None
    stage = "load"
    try:
        result = target.load(path, work)
        stage = "check"
        if feedback is not None:
            feedback("ok|" + shape_key(result))
        if target.check is not None:
            target.check(result)
        del result
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: B036 - SystemExit, MemoryError ... are findings too
        if stage == "load":
            problem = rejection_problem(e, names)
        elif isinstance(e, Finding):
            problem = str(e)
        else:
            problem = f"{type(e).__name__} raised by a file the loader accepted"
        if problem is not None:
            outcome = _outcome(stage, problem, e, str(work))
        if feedback is not None:
            feedback(outcome.signature if outcome else f"{stage}|{type(e).__name__}|{_coarse(str(e), str(work))}")
    if target.after is not None and outcome is None:
        try:
            target.after(path, work)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B036
            problem = rejection_problem(e, names)
            if problem is not None:
                outcome = _outcome("after", problem, e, str(work))
    return outcome


def _bits(match) -> str:
    return f"#{int(match.group()).bit_length()}"


def shape_key(obj) -> str:
    """What was loaded, coarsely: its repr with every number replaced by
    its bit length (a dict of arrays: names, dtypes, sizes)."""
    if isinstance(obj, dict):
        text = ",".join(f"{k}:{getattr(v, 'dtype', '')}:{getattr(v, 'size', 0)}" for k, v in sorted(obj.items()))
    else:
        text = repr(obj)
        if len(text) > 300:
            text = f"{type(obj).__name__}:{len(obj) if hasattr(obj, '__len__') else ''}"
    return re.sub(r"\d+", _bits, text)[:300]


def make_feedback(bits: int = 10, leaf_bits: int = 4):
    """A function of a string that runs one of 2**bits code paths, one per
    hash bucket: under atheris's instrumentation each distinct outcome of an
    input (a rejection message, a loaded shape) is new coverage, so that
    libFuzzer keeps inputs which reach new checks of the compiled loaders,
    which it cannot see. Returns the functions to instrument and the
    feedback function (small functions: atheris instruments a big one
    slowly)."""
    import zlib

    lines = ["def _leaf(h):"]

    def emit(depth: int, indent: str) -> None:
        if depth == leaf_bits:
            lines.append(indent + "return h")
            return
        lines.append(indent + f"if h & {1 << depth}:")
        emit(depth + 1, indent + "    ")
        lines.append(indent + "else:")
        emit(depth + 1, indent + "    ")

    emit(0, "    ")
    leaves = []
    for i in range(1 << (bits - leaf_bits)):
        namespace: dict = {}
        # One code object per group (its own name), so each gets its own counters.
        exec(compile("\n".join(lines), f"<fuzz-feedback-{i}>", "exec"), namespace)  # noqa: S102 - generated above
        leaves.append(namespace["_leaf"])
    mask, low = (1 << bits) - 1, (1 << leaf_bits) - 1

    def feedback(key: str) -> None:
        h = zlib.crc32(key.encode("utf-8", "replace")) & mask
        leaves[h >> leaf_bits](h & low)

    return leaves, feedback


def _outcome(stage: str, problem: str, e: BaseException, work: str) -> Outcome:
    from fuzz.checks import Finding

    message = str(e)
    key = problem.split(" -- ")[0] if isinstance(e, Finding) else f"{problem}|{type(e).__name__}|{message}"
    signature = f"{stage}|{_normalize(key, work)}|{_location(e.__traceback__)}"
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return Outcome(stage, problem, type(e).__name__, message[:2000], tb.replace(work, "<work>")[-6000:], signature)


class Recorder:
    """Keeps the smallest input of each distinct finding under
    ``findings/<target>/<signature hash>/`` with an ``info.json``."""

    def __init__(self, target, findings: pathlib.Path):
        self.target = target
        self.root = findings / target.name
        self.seen: Dict[str, dict] = {}
        self.dirty = False
        self.last_flush = time.monotonic()

    def record(self, outcome: Outcome, data: bytes) -> None:
        key = hashlib.sha1(outcome.signature.encode()).hexdigest()[:12]
        info = self.seen.get(key)
        written = materialize(self.target, data)
        if info is None:
            info = {"target": self.target.name, "signature": outcome.signature, "count": 0,
                    "first_seen": time.strftime("%Y-%m-%d %H:%M:%S")}
            self.seen[key] = info
        info["count"] += 1
        if "size" not in info or len(written) < info["size"]:
            folder = self.root / key
            folder.mkdir(parents=True, exist_ok=True)
            name = "input" + (pathlib.PurePath(self.target.file).suffix or ".bin")
            (folder / name).write_bytes(written)
            info.update(size=len(written), input=name, stage=outcome.stage, problem=outcome.problem,
                        exception=outcome.exception, message=outcome.message, traceback=outcome.traceback)
            self.flush(force=True)
        else:
            self.dirty = True
            self.flush()

    def flush(self, force: bool = False) -> None:
        if not (force or (self.dirty and time.monotonic() - self.last_flush > 2)):
            return
        for key, info in self.seen.items():
            folder = self.root / key
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "info.json.tmp"
            tmp.write_text(json.dumps(info, indent=1))
            os.replace(tmp, folder / "info.json")
        self.dirty = False
        self.last_flush = time.monotonic()


def _minimize_sections(target, data: bytes, work: pathlib.Path, signature: str, deadline: float) -> bytes:
    """Drop whole sections, then trailing elements of each, while the same
    finding stays (byte chunks would break the container's layout)."""
    from fuzz import container

    def same(candidate: bytes) -> bool:
        found = one_input(target, candidate, work)
        return found is not None and found.signature == signature

    best = container.parse(data)
    if best is None:
        return data
    i = 0
    while i < len(best.sections) and time.monotonic() < deadline:
        trial = container.Container(best.kind, best.sections[:i] + best.sections[i + 1:], best.version,
                                    best.endian, best.flags)
        if same(container.serialize(trial)):
            best = trial
        else:
            i += 1
    for s in best.sections:
        size = container.DTYPES.get(s.dtype, ("", "", 1))[2]
        cut = len(s.payload) // size // 2
        while cut >= 1 and time.monotonic() < deadline:
            keep = s.payload
            s.payload = keep[:len(keep) - cut * size]
            if not same(container.serialize(best)):
                s.payload = keep
                cut //= 2
    return container.serialize(best)


def minimize(target, data: bytes, work: pathlib.Path, signature: str, budget_s: float = 30.0) -> bytes:
    """Drop chunks of `data` (halving their size) while the same finding
    stays; for a container, whole sections and elements first. Gives up
    after `budget_s` seconds."""
    deadline = time.monotonic() + budget_s
    best = data
    if target.fix_checksums:
        best = _minimize_sections(target, best, work, signature, deadline)
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, shrunk = 0, False
        while i < len(best) and time.monotonic() < deadline:
            candidate = best[:i] + best[i + chunk:]
            found = one_input(target, candidate, work)
            if found is not None and found.signature == signature:
                best, shrunk = candidate, True
            else:
                i += chunk
        if not shrunk:
            chunk //= 2
    return best
