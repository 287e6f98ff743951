"""Seed inputs for every fuzz target, made at run time.

Text seeds are the demo corpus shipped in the package plus small slices of
``../shared/data`` (``$RAGKERNELS_DATA``; skipped when absent): trec_eval's
own test files, BEIR SciFact and CACM, MS MARCO topics, runs and passages.
Binary seeds are indexes built from the demo corpus and saved with each
loader's own ``save`` (every BM25 method, impact indexes, dense indexes of
every dtype and metric, term-match indexes, plain arrays of every dtype).
Nothing is copied into the repository: `write_seeds` writes them into a
cache folder (fuzz/run.py), together with the fixed partner files a target
evaluates its input against (``aux``).
"""
from __future__ import annotations

import itertools
import json
import os
import pathlib
import random
import tempfile
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

import ragkernels as rk

Seeds = Dict[str, bytes]


def data_dir() -> Optional[pathlib.Path]:
    """``$RAGKERNELS_DATA`` or ``<repo>/../shared/data``; None when absent."""
    env = os.environ.get("RAGKERNELS_DATA")
    path = pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


def _head(rel: str, lines: int) -> Optional[bytes]:
    """The first `lines` lines of a shared data file, or None."""
    root = data_dir()
    if root is None or not (root / rel).is_file():
        return None
    with open(root / rel, "rb") as f:
        return b"".join(itertools.islice(f, lines))


def _demo(name: str) -> bytes:
    return (rk.data.demo_path() / name).read_bytes()


def _slices(spec: Iterable[Tuple[str, str, int]]) -> Seeds:
    out = {}
    for key, rel, lines in spec:
        data = _head(rel, lines)
        if data:
            out[key] = data
    return out


# --- text formats -----------------------------------------------------------------------------

QRELS_FILES = [
    ("demo-qrels.tsv", "demo:qrels/test.tsv", 0),
    ("trec-eval-qrels", "trec_eval-parity/qrels.test", 300),
    ("trec-eval-rel-level", "trec_eval-parity/qrels.rel_level", 120),
    ("scifact-test.tsv", "beir/scifact/qrels/test.tsv", 60),
    ("scifact-test.trec", "beir/scifact/qrels/test.trec.txt", 60),
    ("cacm-test.trec", "classic/cacm/qrels/test.trec.txt", 80),
    ("dl19-qrels", "msmarco-passage/trec-dl-2019/qrels.dl19-passage.txt", 150),
]
RUN_FILES = [
    ("demo-run", "demo:run.bm25.trec", 0),
    ("trec-eval-results", "trec_eval-parity/results.test", 300),
    ("trec-eval-trunc", "trec_eval-parity/results.trunc", 120),
    ("cacm-bm25", "classic/cacm/run.cacm.bm25.anserini.txt", 120),
    ("dl19-bm25", "msmarco-passage/runs/run.dl19-passage.bm25.top100.txt", 150),
]


def _text_files(spec) -> Seeds:
    out = {}
    for key, rel, lines in spec:
        if rel.startswith("demo:"):
            out[key] = _demo(rel[5:])
        else:
            out.update(_slices([(key, rel, lines)]))
    return out


def _rows(data: bytes) -> List[List[str]]:
    rows = []
    for line in data.decode("utf-8").splitlines():
        cols = line.split()
        if cols and cols[0] != "query-id":
            rows.append(cols)
    return rows


def trec_partners() -> Tuple[bytes, bytes]:
    """(qrels, run) files that judge and rank the queries of every run and
    qrels seed, so that a fuzzed file is evaluated, not only parsed."""
    rng = random.Random(0)
    judged: Dict[Tuple[str, str], int] = {}
    for data in _text_files(QRELS_FILES).values():
        for qid, *_, doc, rel in (r for r in _rows(data) if len(r) in (3, 4)):
            judged.setdefault((qid, doc), int(rel))
    ranked: Dict[Tuple[str, str], float] = {}
    for data in _text_files(RUN_FILES).values():
        for r in _rows(data):
            judged.setdefault((r[0], r[2]), rng.choice((0, 0, 1, 2)))
    for qid, doc in judged:
        ranked.setdefault((qid, doc), round(rng.uniform(-5, 30), 4))
    qrels = "".join(f"{q} 0 {d} {r}\n" for (q, d), r in judged.items())
    run = "".join(f"{q} Q0 {d} 0 {s} partner\n" for (q, d), s in ranked.items())
    return qrels.encode(), run.encode()


EDGE_QRELS = {
    "edge-tabs": b"q1\t0\td1\t1\nq1\t0\td2\t0\nq2\t0\td1\t3\n",
    "edge-beir-noheader": b"q1\td1\t1\nq2\td2\t2\n",
    "edge-negative": b"q1 0 d1 -1\nq1 0 d2 2\n",
    "edge-crlf": b"q1 0 d1 1\r\nq1 0 d2 1\r\n",
}
EDGE_RUNS = {
    "edge-sci": b"q1 Q0 d1 1 1e10 t\nq1 Q0 d2 2 -1E-3 t\nq2 Q0 d1 1 0 t\n",
    "edge-ties": b"q1 Q0 d1 1 1 t\nq1 Q0 d2 1 1 t\nq1 Q0 d3 1 1 t\n",
    "edge-tabs": b"q1\tQ0\td1\t1\t0.5\ttag\n",
}


def qrels_seeds() -> Seeds:
    return {**_text_files(QRELS_FILES), **EDGE_QRELS}


def run_seeds() -> Seeds:
    return {**_text_files(RUN_FILES), **EDGE_RUNS}


def corpus_seeds() -> Seeds:
    out = {"demo-corpus.jsonl": _demo("corpus.jsonl")}
    out.update(_slices([("scifact-corpus.jsonl", "beir/scifact/corpus.jsonl", 12),
                        ("cacm-corpus.jsonl", "classic/cacm/corpus.jsonl", 25)]))
    out["edge.jsonl"] = (b'{"_id": 1, "text": "numeric id, no title"}\n'
                         b'{"_id": "d\\u00e9", "title": null, "text": "caf\\u00e9 \\u2028 na\\u00efve", "m": {}}\n'
                         b'\n{"_id": "d3", "title": "t", "text": ""}\r\n')
    return out


def queries_seeds() -> Seeds:
    out = {"demo-queries.jsonl": _demo("queries.jsonl")}
    out.update(_slices([("scifact-queries.jsonl", "beir/scifact/queries.jsonl", 20),
                        ("cacm-queries.jsonl", "classic/cacm/queries.jsonl", 20)]))
    out["edge.jsonl"] = b'{"_id": 7, "text": "q"}\n{"_id": "q\\u00e9", "text": "\\ud83d\\ude00 emoji"}\n'
    return out


def topics_seeds() -> Seeds:
    out = _slices([("dl19-topics.tsv", "msmarco-passage/trec-dl-2019/topics.dl19-passage.tsv", 43),
                   ("dev-small.tsv", "msmarco-passage/dev-small/queries.dev.small.tsv", 40)])
    out["edge.tsv"] = b"1\twhat\tis a tab\n 2 \t  padded\n\n3\t\n"
    return out


def collection_seeds() -> Seeds:
    out = _slices([("collection.tsv", "msmarco-passage/collection.subset.tsv", 25)])
    out["demo.tsv"] = "".join(f"{i}\t{t}\n" for i, t in zip(rk.data.load_demo().corpus.ids,
                                                             rk.data.load_demo().corpus.texts)).encode()
    return out


def beir_qrels_seeds() -> Seeds:
    return {k: v for k, v in qrels_seeds().items() if k.endswith(".tsv") or k.startswith("edge")}


def beir_partners() -> Tuple[bytes, bytes]:
    """(corpus.jsonl, queries.jsonl) naming every query and doc of the qrels seeds."""
    qids, docs = set(), set()
    for data in beir_qrels_seeds().values():
        for r in _rows(data):
            if len(r) >= 3:
                qids.add(r[0])
                docs.add(r[-2])
    corpus = b"".join(json.dumps({"_id": d, "title": "", "text": f"document {d}"}).encode() + b"\n"
                      for d in sorted(docs))
    queries = b"".join(json.dumps({"_id": q, "text": f"query {q}"}).encode() + b"\n" for q in sorted(qids))
    return corpus, queries


# --- binary formats ---------------------------------------------------------------------------

def _saved(save) -> bytes:
    with tempfile.TemporaryDirectory(prefix="rk-seed-") as tmp:
        path = os.path.join(tmp, "seed.rk")
        save(path)
        with open(path, "rb") as f:
            return f.read()


def _demo_texts() -> Tuple[List[str], List[str]]:
    corpus = rk.data.load_demo().corpus
    return corpus.full_texts(), corpus.ids


def bm25_seeds() -> Seeds:
    texts, ids = _demo_texts()
    tiny = ["a cat sat", "dogs and cats", "a dog", "cat cat cat"]
    out = {}
    for method in rk.sparse.METHODS:
        out[f"demo-{method}"] = _saved(rk.sparse.BM25Index.build(texts, ids=ids, method=method).save)
    out["tiny-noids"] = _saved(rk.sparse.BM25Index.build(tiny).save)
    out["tiny-analyzer"] = _saved(rk.sparse.BM25Index.build(
        tiny, ids=["a", "b", "c", "d"], k1=0.9, b=0.4,
        analyzer=rk.text.Analyzer(lowercase=False, stopwords=None, stemmer=None, keep_numbers=False)).save)
    out["tiny-tokens"] = _saved(rk.sparse.BM25Index.build([t.split() for t in tiny], method="bm25l").save)
    out["tiny-token-ids"] = _saved(rk.sparse.BM25Index.build([[1, 5, 2], [5], [0, 0, 9]], ids=["x", "y", "z"]).save)
    # Three copies of the demo corpus: common terms get df > 128, so several blocks.
    out["demo-x3-blocks"] = _saved(rk.sparse.BM25Index.build(texts * 3).save)
    return out


def impact_seeds() -> Seeds:
    out = {
        "str-8bit": _saved(rk.sparse.ImpactIndex.build(
            [{"cat": 1.5, "sat": 0.5}, {"dog": 2.0, "cat": 0.25}, {"emu": 9.0}], ids=["a", "b", "c"]).save),
        "ids-raw": _saved(rk.sparse.ImpactIndex.build([{1: 3, 4: 1}, {4: 7}, {0: 1, 9: 2}], bits=None).save),
        "ids-vocab-4bit": _saved(rk.sparse.ImpactIndex.build(
            [{0: 0.5, 2: 1.0}, {1: 2.0}], vocabulary=["zero", "one", "two"], bits=4).save),
    }
    rng = np.random.default_rng(0)
    vectors = [{int(t): float(w) for t, w in zip(rng.choice(40, 6, replace=False), rng.uniform(0.1, 3, 6))}
               for _ in range(300)]  # 300 docs over 40 terms: several blocks per term
    out["ids-blocks"] = _saved(rk.sparse.ImpactIndex.build(vectors, bits=8).save)
    return out


def flat_seeds() -> Seeds:
    rng = np.random.default_rng(0)
    out = {}
    for (n, dim), metric, dtype in itertools.product([(1, 1), (5, 3), (37, 8)], rk.dense.METRICS,
                                                      rk.dense.DTYPES):
        vectors = rng.standard_normal((n, dim)).astype(np.float16 if dtype == "float16" else np.float32)
        ids = [f"d{i}" for i in range(n)] if n != 37 else None
        index = rk.dense.FlatIndex(vectors, metric=metric, dtype=dtype, ids=ids)
        out[f"n{n}-d{dim}-{metric}-{dtype}"] = _saved(index.save)
    return out


def term_match_seeds() -> Seeds:
    texts, _ = _demo_texts()
    out = {"from-bm25-demo": _saved(rk.rerank.TermMatchIndex.from_bm25(rk.sparse.BM25Index.build(texts)).save)}
    out["tiny"] = _saved(rk.rerank.TermMatchIndex.from_arrays(
        np.array([2, 7, 5, 7]), np.array([1.0, 2.0, 3.0, 0.5], np.float32), np.array([0, 2, 4])).save)
    out["empty-doc"] = _saved(rk.rerank.TermMatchIndex.from_arrays(
        np.array([0, 3], np.int64), np.array([1.0, -2.5], np.float32), np.array([0, 0, 2, 2]),
        vocab_size=2**32).save)
    return out


def datastore_seeds() -> Seeds:
    """Retrieval datastores (rk.spec.Datastore): demo texts as word ids, and
    the edges: huge ids (no token table), a one-token vocabulary, repeats,
    empty sequences."""
    from ragkernels.spec import Datastore

    texts, _ = _demo_texts()
    words: Dict[str, int] = {}
    seqs = [[words.setdefault(w, len(words)) for w in t.lower().split()] for t in texts[:15]]
    out = {"demo-words": _saved(Datastore.build(seqs).save),
           "demo-words-vocab": _saved(Datastore.build(seqs[:5], vocab_size=len(words) + 3).save)}
    out["tiny"] = _saved(Datastore.build([[1, 2, 3, 4], [1, 2, 3, 5], [2, 3, 4, 6]], vocab_size=7).save)
    out["huge-ids"] = _saved(Datastore.build([[2**31 - 1, 0, 2**31 - 1], [5, 2**31 - 1]]).save)
    out["one-token-vocab"] = _saved(Datastore.build([[0, 0, 0], [0]], vocab_size=1).save)
    out["repeats-empties"] = _saved(Datastore.build([[], [7] * 40, [], [7, 8, 7, 8]]).save)
    return out


def trie_seeds() -> Seeds:
    """Constrained-decoding tries (rk.spec.Trie): demo texts as word ids, and
    the edges: a prefix of another, one-token sequences, the largest id."""
    from ragkernels.spec import Trie

    texts, _ = _demo_texts()
    words: Dict[str, int] = {}
    seqs = [[words.setdefault(w, len(words)) for w in t.lower().split()[:8]] for t in texts[:20]]
    return {"demo-words": _saved(Trie.build(seqs).save),
            "tiny": _saved(Trie.build([[1, 2, 3], [1, 2], [4]], vocab_size=6).save),
            "one-token": _saved(Trie.build([[0], [1], [2]], vocab_size=3).save),
            "huge-ids": _saved(Trie.build([[2**31 - 1, 0], [5]], vocab_size=2**31).save)}


def arrays_seeds() -> Seeds:
    out = {}
    dtypes = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
              np.float16, np.float32, np.float64]
    out["every-dtype"] = _saved(lambda p: rk.save_arrays(
        p, {f"a_{np.dtype(t).name}": np.arange(5).astype(t) for t in dtypes}, kind="fuzz"))
    out["empty-sections"] = _saved(lambda p: rk.save_arrays(
        p, {"e": np.zeros(0, np.float32), "x" * 32: np.ones(3, np.int64)}))
    out["no-sections"] = _saved(lambda p: rk.save_arrays(p, {}))
    # One of each index kind: load_arrays reads every container.
    for group in (bm25_seeds, impact_seeds, flat_seeds, term_match_seeds):
        name, data = min(group().items(), key=lambda kv: len(kv[1]))
        out[f"{group.__name__}-{name}"] = data
    return out
