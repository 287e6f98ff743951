"""A process killed (SIGKILL) in the middle of a save never leaves a partial file.

Every writer of the package (BM25Index.save, FlatIndex.save,
TermMatchIndex.save, rk.save_arrays, rk.data.write_trec_run) writes a
temporary file, fsyncs it and renames it over the target (DESIGN.md,
Persistence). Here a forked child saves three versions of an object in turn
over the same path, reporting each completed save through a pipe, and is
SIGKILLed at a seeded random time; the target must then be, byte for byte,
the version of the last completed save or of the one in flight, and load.
A killed writer cannot remove its temporary file: the only other names left
in the folder must be recognisable temporary names, never the target's.

Issue 14 (crash safety). Forking after the objects are built keeps each trial
at a few tens of milliseconds (no interpreter start, no index build per kill).
"""
import os
import re
import select
import signal
import time
import warnings

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.dense import FlatIndex
from ragkernels.rerank import TermMatchIndex
from ragkernels.sparse import BM25Index

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

TRIALS = 12  # kills per writer
VERSIONS = 3  # cycled, so "the old or the new one" excludes the version before the old one
# Temporary names: csrc/core/file_format.cpp ("<name>.tmp.<pid>.<hex>") and
# data/beir.py write_trec_run (".<name>.<hex>.tmp").
TEMP_NAMES = (r"{name}\.tmp\.\d+\.[0-9a-f]+", r"\.{name}\.[0-9a-f]+\.tmp")


CORPUS_IDS = [f"d{i}" for i in range(20000)]


def _docs(rng, n_docs, n_words=40, vocab=5000):
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    tokens = words[rng.integers(0, vocab, (n_docs, n_words))]
    return [" ".join(row) for row in tokens]


def _bm25(rng):
    n = 20000
    return BM25Index.build(_docs(rng, n), ids=[f"d{i}" for i in range(n)])


def _flat(rng):
    n = 20000
    return FlatIndex(rng.standard_normal((n, 128), dtype=np.float32), ids=[f"d{i}" for i in range(n)])


def _term_match(rng):
    offsets = np.arange(0, 20001 * 30, 30, dtype=np.int64)
    return TermMatchIndex.from_arrays(rng.integers(0, 30000, offsets[-1]),
                                      rng.random(offsets[-1], dtype=np.float32), offsets)


def _arrays(rng):
    return {"vectors": rng.standard_normal(1_000_000), "ids": rng.integers(0, 2**40, 250_000)}


def _run(rng):
    n_queries, depth = 20, 500
    ids = np.argsort(rng.random((n_queries, len(CORPUS_IDS))), axis=1)[:, :depth]  # no doc twice
    scores = -np.sort(-rng.random((n_queries, depth)), axis=1)
    return [f"q{i}" for i in range(n_queries)], ids, scores


# writer name -> (make(rng) -> object, save(object, path), load(path))
WRITERS = {
    "bm25_index": (_bm25, lambda obj, path: obj.save(path), lambda path: BM25Index.load(path)),
    "flat_index": (_flat, lambda obj, path: obj.save(path), lambda path: FlatIndex.load(path)),
    "term_match_index": (_term_match, lambda obj, path: obj.save(path), lambda path: TermMatchIndex.load(path)),
    "save_arrays": (_arrays, lambda obj, path: rk.save_arrays(path, obj), lambda path: rk.load_arrays(path)),
    "trec_run": (_run, lambda obj, path: rk.data.write_trec_run(path, *obj, corpus_ids=CORPUS_IDS),
                 lambda path: rk.metrics.load_run(path)),
}


def _save_forever(save, objects, first, dest, report_fd):
    """The child: save version first, first+1, ... (mod VERSIONS) until killed;
    one byte on `report_fd` after each completed save. Never returns."""
    code = 0
    try:
        for j in range(1 << 30):
            save(objects[(first + j) % VERSIONS], dest)
            os.write(report_fd, b".")
    except BaseException:  # a save that raises fails the test through the exit code
        code = 3
    finally:
        os._exit(code)


def _fork_saver(save, objects, first, dest):
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():  # Python >= 3.12 warns on fork with threads; the child only saves
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _save_forever(save, objects, first, dest, write_fd)
    os.close(write_fd)
    return pid, read_fd


def _completed_saves(read_fd):
    done = 0
    while select.select([read_fd], [], [], 0)[0]:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        done += len(chunk)
    os.close(read_fd)
    return done


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_sigkill_during_save_leaves_old_or_new_file(tmp_path, writer):
    make, save, load = WRITERS[writer]
    rng = np.random.default_rng(14)
    objects = [make(rng) for _ in range(VERSIONS)]
    # Reference bytes of each version; saves are deterministic.
    durations = []
    expected = []
    for v, obj in enumerate(objects):
        ref = tmp_path / f"ref{v}"
        start = time.perf_counter()
        save(obj, ref)
        durations.append(time.perf_counter() - start)
        expected.append(ref.read_bytes())
    assert len(set(expected)) == VERSIONS
    one_save = float(np.median(durations))

    folder = tmp_path / "out"
    folder.mkdir()
    dest = folder / "target"
    save(objects[0], dest)
    current = 0
    temp_name = re.compile("|".join(t.format(name=re.escape(dest.name)) for t in TEMP_NAMES))
    killed_mid_save = 0
    for trial in range(TRIALS):
        # Kill points spread over the first few saves, seeded: the first
        # trials hit the first save, later ones any later save.
        delay = rng.uniform(0.0, (1 + trial % 4) * one_save)
        first = (current + 1) % VERSIONS
        pid, read_fd = _fork_saver(save, objects, first, dest)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        done = _completed_saves(read_fd)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
            f"{writer}: the saving child ended on its own (status {status}) before the kill")

        allowed = {(current + done) % VERSIONS, (current + done + 1) % VERSIONS}
        data = dest.read_bytes()
        matches = [v for v in range(VERSIONS) if data == expected[v]]
        assert matches, (f"{writer}, trial {trial}: {dest.name} holds {len(data)} bytes equal to no saved "
                         f"version (killed after {delay * 1e3:.1f} ms, {done} saves completed)")
        assert matches[0] in allowed, (f"{writer}, trial {trial}: {dest.name} holds version {matches[0]}, "
                                       f"expected one of {sorted(allowed)} after {done} completed saves")
        load(dest)  # and it opens, checksums verified

        leftovers = sorted(p.name for p in folder.iterdir() if p.name != dest.name)
        strays = [name for name in leftovers if not temp_name.fullmatch(name)]
        assert not strays, f"{writer}: unexpected files beside {dest.name}: {strays}"
        killed_mid_save += bool(leftovers)
        for name in leftovers:
            (folder / name).unlink()
        current = matches[0]
    # The test means something only if some kills landed while a temporary
    # file was open (most do: the child does nothing but save).
    assert killed_mid_save > 0, f"{writer}: no kill landed inside a save in {TRIALS} trials"
