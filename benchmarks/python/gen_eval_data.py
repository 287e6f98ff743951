"""Evaluation inputs of bench_metrics.py, written once into a work dir (cached).

* ``scifact``, ``cacm``: every BEIR test query of the shared data with a
  1,000-deep run made of its judged docs plus random other corpus docs, with
  random tie-free scores (seed 0), since no retriever exists yet;
* ``dl19``, ``dl20``: the real 1,000-deep rep-llama runs and their qrels;
* ``synth``: N queries x 1,000 docs ("D1234567" ids; 150 judged docs per query,
  grades 0-3, 75 of them retrieved; tie-free scores) as TREC files plus an
  ``.npz`` of the same data as int arrays (query ids, doc ids, values).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List

import numpy as np

DEPTH = 1000
N_DOCS = 8_841_823  # MS MARCO passage-sized id space
JUDGED_RET, JUDGED_UNRET = 75, 75


def _distinct(rng: np.random.Generator, n_rows: int, k: int, high: int) -> np.ndarray:
    """k distinct ints in [0, high) per row, in random order."""
    ids = np.sort(rng.integers(0, high - k, size=(n_rows, k)), axis=1) + np.arange(k)
    return rng.permuted(ids, axis=1)


def _write_run(path: Path, qids: List[str], docs: List[List[str]], scores: np.ndarray) -> None:
    """TREC run, each query's docs in descending score order (scores sorted per row)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for qid, row, sc in zip(qids, docs, scores.tolist()):
            f.write("".join(f"{qid} Q0 {d} {r} {s:.6f} bench\n" for r, (d, s) in enumerate(zip(row, sc), 1)))
    tmp.rename(path)


def _write_qrels(path: Path, qrels: Dict[str, Dict[str, int]]) -> None:
    with open(path, "w") as f:
        for qid, docs in qrels.items():
            f.write("".join(f"{qid} 0 {d} {r}\n" for d, r in docs.items()))


def _desc_scores(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Tie-free scores s/1e6 (exact through '%.6f'), descending per row."""
    s = np.sort(rng.integers(0, 10**6 - DEPTH, size=(n_rows, DEPTH)), axis=1) + np.arange(DEPTH)
    return s[:, ::-1] / 1e6


def beir(workdir: Path, src: Path, name: str) -> Dict[str, str]:
    """Qrels (TREC copy of qrels/test.tsv) and a random 1,000-deep run of every test query."""
    qrels_path, run_path = workdir / f"{name}.qrels", workdir / f"{name}.run"
    if not run_path.exists():
        qrels: Dict[str, Dict[str, int]] = {}
        with open(src / "qrels" / "test.tsv") as f:
            next(f)
            for line in f:
                q, d, r = line.split("\t")
                qrels.setdefault(q, {})[d] = int(r)
        with open(src / "corpus.jsonl") as f:
            corpus = np.array([json.loads(line)["_id"] for line in f])
        rng = np.random.default_rng(0)
        qids = sorted(qrels)
        docs = []
        for q in qids:
            judged = list(qrels[q])
            others = corpus[rng.permutation(len(corpus))]
            others = [d for d in others[: DEPTH + len(judged)].tolist() if d not in qrels[q]]
            docs.append(list(rng.permutation(judged + others[: DEPTH - len(judged)])))
        _write_qrels(qrels_path, qrels)
        _write_run(run_path, qids, docs, _desc_scores(rng, len(qids)))
    return {"qrels": str(qrels_path), "run": str(run_path)}


def synth(workdir: Path, n_queries: int) -> Dict[str, str]:
    """n_queries x 1,000 synthetic run, its qrels, and the same as int arrays."""
    stem = workdir / f"synth{n_queries}"
    paths = {"qrels": f"{stem}.qrels", "run": f"{stem}.run", "arrays": f"{stem}.npz"}
    if Path(paths["run"]).exists():
        return paths
    rng = np.random.default_rng(0)
    ids = _distinct(rng, n_queries, DEPTH + JUDGED_UNRET, N_DOCS)
    ret, unret = ids[:, :DEPTH], ids[:, DEPTH:]
    pick = rng.permuted(np.tile(np.arange(DEPTH), (n_queries, 1)), axis=1)[:, :JUDGED_RET]
    judged = np.concatenate([np.take_along_axis(ret, pick, axis=1), unret], axis=1)
    grades = rng.integers(0, 4, size=judged.shape, dtype=np.int32)
    scores = _desc_scores(rng, n_queries)
    qid = np.arange(1, n_queries + 1, dtype=np.int64)
    np.savez(paths["arrays"], q_qid=np.repeat(qid, judged.shape[1]), q_did=judged.ravel(), q_rel=grades.ravel(),
             r_qid=np.repeat(qid, DEPTH), r_did=ret.ravel(), r_score=scores.ravel())
    with open(paths["qrels"], "w") as f:
        for q, row, g in zip(qid.tolist(), judged.tolist(), grades.tolist()):
            f.write("".join(f"{q} 0 D{d:07d} {r}\n" for d, r in zip(row, g)))
    docs = [[f"D{d:07d}" for d in row] for row in ret.tolist()]
    _write_run(Path(paths["run"]), [str(q) for q in qid.tolist()], docs, scores)
    return paths


def prepare(workdir: Path, data: Path, n_synth: int, names: Iterable[str]) -> Dict[str, Dict[str, str]]:
    """Input paths of the named datasets, generating what is missing."""
    workdir.mkdir(parents=True, exist_ok=True)
    ms = data / "msmarco-passage"
    makers = {"scifact": lambda: beir(workdir, data / "beir" / "scifact", "scifact"),
              "cacm": lambda: beir(workdir, data / "classic" / "cacm", "cacm"),
              "synth": lambda: synth(workdir, n_synth)}
    for year in ("19", "20"):
        makers[f"dl{year}"] = lambda y=year: {
            "qrels": str(ms / f"trec-dl-20{y}" / f"qrels.dl{y}-passage.txt"),
            "run": str(ms / "runs" / f"run.dl{y}-passage.rep-llama.top1000.txt")}
    return {name: makers[name]() for name in names}
