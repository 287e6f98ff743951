"""BM25 retrieval side by side: ragkernels.sparse vs bm25s vs PISA vs rank_bm25.

Corpora: ``scifact`` (BEIR test queries), ``cacm`` (64 queries), ``msmarco``
(the 28,606-passage sample; queries dev-small, DL19, DL20) and ``gen-<N>``
(the first N documents of gen_sparse_corpus.py's seeded corpus, e.g.
``gen-100k``, ``gen-1m``; queries MS MARCO dev-small). Documents are
``title + " " + text``.

Every system gets the same tokens: the corpus and the queries are tokenized
once, outside every timer, by bm25s's documented pipeline (lowercase, regex
``\\w\\w+``, English stopwords, Snowball English via PyStemmer), which
``ragkernels.text.Analyzer`` reproduces (the worker reports the share of
documents on which both agree). BM25 is ``method="lucene"``, k1=1.2, b=0.75.

* ragkernels: ``BM25Index.build`` / ``search(...)`` with its default algorithm (batch,
  all threads through ``rk.set_num_threads``).
* bm25s: ``backend="numba"``, ``retrieve(..., n_threads=T)``, its fastest
  documented path (numba compiles on the first query, in the warm-up).
* PISA (pyterrier-pisa): indexes the same tokens (stemmer and stopwords off;
  tokens its ASCII tokenizer would split are renamed to a bijective ASCII
  alias, so its vocabulary is ours), block_simdbp, block-max WAND, threads=T,
  queries weighted by their term counts as in bm25s. Its build includes
  ``prepare_index`` (compression + block-max data). Queries go through
  pyterrier-pisa's engine binding ``_pisathon.retrieve`` exactly as
  ``PisaRetrieve.transform`` calls it, without wrapping results in a pandas
  DataFrame; pretokenised queries are given as its {term: count} dicts.
  PISA scores with Robertson's idf (``log((N-df+.5)/(df+.5))``), so its top 10
  is compared with ragkernels and bm25s built with ``method="robertson"``.
  Its "text" query input is the raw query through PISA's own tokenizer and
  porter2 stemmer (not exactly our tokens: ASCII only).
* rank_bm25 (BM25Okapi): pure Python, so only on corpora of at most 30,000
  documents, one thread, the first 200 queries, one query per call
  (``get_scores`` + argsort); no text input.

Measured per corpus x system x threads T (1 and all cores): index build time
from tokens and from text (tokenization included), docs/s, size on disk
(``save``; for PISA the files its retrieval reads), peak RSS of the build
(each system in a fresh worker process holding the inputs; the peak counter
is reset before each build; ``build_mem_mb`` = peak - RSS before it).
Queries at k=10 and k=1000, from pre-tokenized queries (``tokens``) and from
query text (``text``, tokenization timed): **batch** = all queries in one
call, queries/s from the median of up to ``--repeat`` calls that fit in
``--budget`` seconds; **single** = one query per call over the first
``--single`` queries, p50/p99 latency. ``x_faster`` = peer time / ragkernels
time (above 1: ragkernels is faster). Correctness: the share of queries whose
top-10 document sets are identical, where documents tied (within 1e-5
relative) with a list's 10th score may be swapped for each other; and
ragkernels' results at 1 and all threads, bitwise. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_sparse.py

(``--quick``: scifact and gen-20k, 50 queries a set, for a smoke run;
``--corpora scifact,gen-1m``; ``--threads 1,all``; ``--systems bm25s,pisa``.)
Tokenized inputs are cached in ``--workdir`` (delete it after changing the
data or the generator); set BENCH_TMP to put PISA's index files elsewhere
than the system temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from _common import data_dir, machine, peak_rss_mb, run_isolated, time_calls, versions, write_results

METHOD, K1, B = "lucene", 1.2, 0.75
SYSTEMS = ["ragkernels", "bm25s", "pisa", "rank_bm25"]
DISTS = {"ragkernels": "ragkernels", "bm25s": "bm25s", "numba": "numba", "PyStemmer": "PyStemmer",
         "pyterrier-pisa": "pyterrier-pisa", "python-terrier": "python-terrier", "rank_bm25": "rank-bm25",
         "numpy": "numpy"}
RANK_BM25_MAX_DOCS, RANK_BM25_MAX_QUERIES = 30_000, 200
TIE_RTOL, MIN_SCORE = 1e-5, 1e-4
Hits = Tuple[np.ndarray, np.ndarray]  # doc rows int64 [nq, k] (-1 padded), scores float32 [nq, k]


# ---------------------------------------------------------------- inputs (parent, outside every timer)

def read_jsonl(path: Path) -> List[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_tsv(path: Path) -> Tuple[List[str], List[str]]:
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    return [r[0] for r in rows], [r[1] for r in rows]


def beir_corpus(folder: Path, limit: Optional[int] = None) -> Tuple[List[str], List[str]]:
    ids, texts = [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(ids) == limit:
                break
            doc = json.loads(line)
            ids.append(str(doc["_id"]))
            texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
    return ids, texts


def beir_queries(folder: Path, qrels: Optional[str] = None) -> Tuple[List[str], List[str]]:
    queries = read_jsonl(folder / "queries.jsonl")
    if qrels:
        with open(folder / qrels) as f:
            judged = {line.split("\t")[0] for line in f.readlines()[1:]}
        queries = [q for q in queries if q["_id"] in judged]
    return [q["_id"] for q in queries], [q["text"] for q in queries]


def parse_size(text: str) -> int:
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def load_corpus(name: str) -> Tuple[List[str], List[str], Dict[str, Tuple[List[str], List[str]]]]:
    """Doc ids, doc texts and named query sets {set: (qids, texts)}."""
    root = data_dir()
    if name == "scifact":
        folder = root / "beir" / "scifact"
        return (*beir_corpus(folder), {"test": beir_queries(folder, "qrels/test.tsv")})
    if name == "cacm":
        folder = root / "classic" / "cacm"
        return (*beir_corpus(folder), {"all": beir_queries(folder)})
    ms = root / "msmarco-passage"
    if name == "msmarco":
        ids, texts = read_tsv(ms / "collection.subset.tsv")
        return ids, texts, {"dev-small": read_tsv(ms / "dev-small" / "queries.dev.small.tsv"),
                            "dl19": read_tsv(ms / "trec-dl-2019" / "topics.dl19-passage.tsv"),
                            "dl20": read_tsv(ms / "trec-dl-2020" / "topics.dl20.tsv")}
    if name.startswith("gen-"):
        import gen_sparse_corpus

        n_docs = parse_size(name[4:])
        folder = gen_sparse_corpus.generate(n_docs, verbose=False)
        return (*beir_corpus(folder, n_docs), {"dev-small": beir_queries(folder)})
    sys.exit(f"unknown corpus {name!r}; choose from scifact, cacm, msmarco, gen-<N> (gen-100k, gen-1m)")


def bm25s_tokens(texts: Sequence[str]) -> List[List[str]]:
    """bm25s's documented tokenization; bm25s keeps an empty document as
    [""], which every system here takes as no token at all."""
    import bm25s
    import Stemmer

    out = bm25s.tokenize(list(texts), stopwords="en", stemmer=Stemmer.Stemmer("english"),
                         return_ids=False, show_progress=False)
    return [[t for t in doc if t] for doc in out]


def prepare(name: str, workdir: Path, max_queries: Optional[int]) -> Path:
    """Tokenize a corpus and its queries once; pickle them for the workers."""
    path = workdir / f"{name}{'-q' + str(max_queries) if max_queries else ''}.pkl"
    if path.exists():
        return path
    start = time.perf_counter()
    doc_ids, texts, query_sets = load_corpus(name)
    bad = [d for d in doc_ids if not d or any(c.isspace() for c in d)]
    if bad:
        sys.exit(f"{name}: doc ids with whitespace cannot be given to PISA: {bad[:3]}")
    sets = {}
    for set_name, (qids, qtexts) in query_sets.items():
        qids, qtexts = qids[:max_queries], qtexts[:max_queries]
        sets[set_name] = {"ids": qids, "texts": qtexts, "tokens": bm25s_tokens(qtexts)}
    inputs = {"name": name, "doc_ids": doc_ids, "texts": texts, "tokens": bm25s_tokens(texts), "queries": sets}
    workdir.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as f:
        pickle.dump(inputs, f, protocol=pickle.HIGHEST_PROTOCOL)
    path.with_suffix(".tmp").rename(path)
    print(f"{name}: {len(doc_ids)} docs tokenized in {time.perf_counter() - start:.1f}s", flush=True)
    return path


# ---------------------------------------------------------------- one adapter per system (worker side)

def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS counter (VmHWM) at the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: VmHWM below falls back to the process peak


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since reset_peak_rss) in MiB."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024.0
    except (OSError, StopIteration):
        return peak_rss_mb()


def dir_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


class Ragkernels:
    def __init__(self, inputs: dict):
        import ragkernels as rk
        import ragkernels.sparse  # noqa: F401 (fails early while the area is not built)

        self.rk = rk
        self.doc_ids = inputs["doc_ids"]

    def set_threads(self, threads: int) -> None:
        self.rk.set_num_threads(threads)

    def build(self, docs, method: str = METHOD):
        return self.rk.sparse.BM25Index.build(docs, ids=self.doc_ids, method=method, k1=K1, b=B,
                                              show_progress=False)

    def save(self, index, folder: Path) -> float:
        index.save(str(folder / "index.rk"))
        return dir_mb(folder)

    def search(self, index, queries, k: int, threads: int) -> Hits:
        return index.search(queries, k=k)  # the default algorithm (term-at-a-time)

    def analyzer_agreement(self, texts: Sequence[str], tokens: Sequence[List[str]]) -> float:
        ours = self.rk.text.Analyzer().tokenize(list(texts))
        return sum(a == b for a, b in zip(ours, tokens)) / max(1, len(tokens))


class Bm25s:
    def __init__(self, inputs: dict):
        import bm25s
        import Stemmer

        self.bm25s, self.stemmer = bm25s, Stemmer.Stemmer("english")

    def set_threads(self, threads: int) -> None:
        pass  # retrieve(n_threads=T) sets numba's threads; indexing is single-threaded

    def tokenize(self, texts):
        return self.bm25s.tokenize(list(texts), stopwords="en", stemmer=self.stemmer, show_progress=False)

    def build(self, docs, method: str = METHOD):
        # Creating the retriever is free: numba compiles on the first retrieve.
        retriever = self.bm25s.BM25(method=method, k1=K1, b=B, backend="numba")
        if docs and isinstance(docs[0], str):
            docs = self.tokenize(docs)
        retriever.index(docs, show_progress=False)
        return retriever

    def save(self, index, folder: Path) -> float:
        index.save(str(folder / "bm25s"), show_progress=False)
        return dir_mb(folder)

    def search(self, index, queries, k: int, threads: int) -> Hits:
        if queries and isinstance(queries[0], str):
            queries = self.tokenize(queries)
        # bm25s parallelises across queries only: one query goes to its serial
        # path, whose latency the parallel one can only add thread wake-ups to.
        n_threads = threads if len(queries) > 1 else 1
        docs, scores = index.retrieve(queries, k=k, n_threads=n_threads, show_progress=False)
        return docs.astype(np.int64), scores


class Pisa:
    """PISA through pyterrier-pisa, on our tokens (see the module docstring)."""

    def __init__(self, inputs: dict):
        import pyterrier_pisa
        from pyterrier_pisa import _pisathon

        self.pp, self.engine = pyterrier_pisa, _pisathon
        self.row_of = {d: i for i, d in enumerate(inputs["doc_ids"])}
        self.doc_ids = inputs["doc_ids"]
        self.alias: Dict[str, str] = {}
        self.threads = 1
        self.folder: Optional[Path] = None

    def set_threads(self, threads: int) -> None:
        self.threads = threads

    def safe(self, term: str) -> str:
        """The term, or a bijective ASCII alias where PISA's tokenizer would
        change it (non-ASCII letters, underscores)."""
        if term not in self.alias:
            keep = self.engine.tokenize(term, "") == [term]
            self.alias[term] = term if keep else "zzx" + term.encode("utf-8").hex()
        return self.alias[term]

    def doc_lines(self, tokens: Sequence[List[str]]) -> List[dict]:
        return [{"docno": d, "text": " ".join(map(self.safe, toks))} for d, toks in zip(self.doc_ids, tokens)]

    def query_dicts(self, tokens: Sequence[List[str]]) -> List[Tuple[int, Dict[str, float]]]:
        return [(i, {self.safe(t): float(c) for t, c in Counter(q).items()}) for i, q in enumerate(tokens)]

    def build(self, lines: List[dict], method: str = "robertson"):
        self.folder = Path(tempfile.mkdtemp(prefix="pisa-", dir=os.environ.get("BENCH_TMP")))
        index = self.pp.PisaIndex(str(self.folder / "index"), stemmer="none", stops="none", threads=self.threads)
        index.indexer(mode="overwrite").index(iter(lines))
        return self.context(index)

    def context(self, index):
        """The retrieval context; creating the first one compresses the index
        and computes its block-max data (part of the build)."""
        retriever = index.bm25(k1=K1, b=B, threads=self.threads, query_algorithm="block_max_wand",
                               query_weighted=True, toks_scale=1.0)
        return retriever._ctxt

    def text_context(self):
        index = self.pp.PisaIndex(str(self.folder / "index"), stemmer="porter2", stops="none", threads=self.threads)
        return self.context(index)

    def save(self, ctxt, folder: Path) -> float:
        """Size of what retrieval reads: the compressed index, its block-max
        data and the two lexicons (not the forward index and the uncompressed
        inverted lists that indexing leaves beside them)."""
        index = self.folder / "index"
        files = [*index.glob("bm25.*"), index / "fwd.termlex", index / "fwd.doclex"]
        return sum(dir_mb(f) for f in files)

    def search(self, ctxt, queries, k: int, threads: int):
        pretok = bool(queries) and isinstance(queries[0], tuple)
        inp = queries if pretok else list(enumerate(queries))
        size = len(inp) * k
        qidx, docnos = np.empty(size, dtype=np.int32), np.empty(size, dtype=object)
        ranks, scores = np.empty(size, dtype=np.int32), np.empty(size, dtype=np.float32)
        n = self.engine.retrieve(ctxt, "block_max_wand", inp, k=k, threads=threads, query_weighted=1,
                                 pretokenised=pretok, result_qidxs=qidx, result_docnos=docnos,
                                 result_ranks=ranks, result_scores=scores)
        return qidx[:n], docnos[:n], ranks[:n], scores[:n]

    def as_hits(self, raw, n_queries: int, k: int) -> Hits:
        qidx, docnos, ranks, scores = raw
        rows, out = np.full((n_queries, k), -1, np.int64), np.zeros((n_queries, k), np.float32)
        rows[qidx, ranks] = [self.row_of[d] for d in docnos]
        out[qidx, ranks] = scores
        return rows, out

    def cleanup(self) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class RankBm25:
    def __init__(self, inputs: dict):
        from rank_bm25 import BM25Okapi

        self.okapi = BM25Okapi

    def set_threads(self, threads: int) -> None:
        pass

    def build(self, docs, method: str = METHOD):
        return self.okapi(docs, k1=K1, b=B)

    def search(self, index, queries, k: int, threads: int) -> Hits:
        rows = np.empty((len(queries), k), np.int64)
        scores = np.empty((len(queries), k), np.float32)
        for i, q in enumerate(queries):
            s = index.get_scores(q)
            rows[i] = np.argsort(s)[::-1][:k]
            scores[i] = s[rows[i]]
        return rows, scores


ADAPTERS = {"ragkernels": Ragkernels, "bm25s": Bm25s, "pisa": Pisa, "rank_bm25": RankBm25}


# ---------------------------------------------------------------- worker: one system, one corpus, every T

def doc_inputs(system: str, adapter, inputs: dict) -> Dict[str, object]:
    """What each build takes, prepared outside the timer: tokens, text."""
    if system == "pisa":
        return {"tokens": adapter.doc_lines(inputs["tokens"])}
    if system == "rank_bm25":
        return {"tokens": inputs["tokens"]}
    return {"tokens": inputs["tokens"], "text": inputs["texts"]}


def query_kinds(system: str) -> Tuple[str, ...]:
    return ("tokens",) if system == "rank_bm25" else ("tokens", "text")


def query_input(system: str, adapter, query_set: dict, kind: str, limit: Optional[int]) -> list:
    """The queries of one set as the system takes them (prepared outside the timer)."""
    if kind == "text":
        return query_set["texts"][:limit]
    tokens = query_set["tokens"][:limit]
    return adapter.query_dicts(tokens) if system == "pisa" else tokens


def measure(search, queries: list, k: int, batch: bool, repeat: int, budget_s: float,
            single: int) -> Dict[str, object]:
    """Batch throughput (all queries in one call, repeated within budget_s)
    and single-query latency (one query per call over the first `single`)."""
    prefix = queries[:20]
    search(prefix, k)  # warm-up: numba compilation, page cache, allocator
    row: Dict[str, object] = {}
    if batch:
        start = time.perf_counter()
        search(prefix, k)
        estimate = (time.perf_counter() - start) * len(queries) / max(1, len(prefix))
        reps = int(min(repeat, max(1, budget_s // max(estimate, 1e-9))))
        warmup = 1 if estimate * (reps + 1) <= budget_s else 0  # a warm full batch when affordable
        timing = time_calls(lambda: search(queries, k), reps, warmup=warmup)
        row.update(batch_qps=len(queries) / timing["median_s"], batch_s=timing["median_s"],
                   batch_p99_s=timing["p99_s"], batch_repeat=reps)
    search(queries[:1], k)  # one query may take another code path (bm25s: its serial one)
    latencies = []
    for q in queries[:single]:
        start = time.perf_counter()
        search([q], k)
        latencies.append(time.perf_counter() - start)
    lat = np.sort(np.array(latencies))
    row.update(single_qps=len(lat) / lat.sum(), single_s=float(lat.mean()), p50_ms=1e3 * float(np.median(lat)),
               p99_ms=1e3 * float(lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]),
               single_n=len(lat))
    return row


def top10(system: str, adapter, index, queries: list, threads: int) -> Hits:
    raw = adapter.search(index, queries, 10, threads)
    return adapter.as_hits(raw, len(queries), 10) if system == "pisa" else raw


def build_timed(adapter, docs, kind: str, threads: int, n_docs: int):
    """One build with its time and memory; returns (index, build row)."""
    before = rss_mb("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    index = adapter.build(docs)
    seconds = time.perf_counter() - start
    peak = rss_mb("VmHWM")
    row = {"threads": threads, "input": kind, "build_s": seconds, "docs_per_s": n_docs / seconds,
           "peak_rss_mb": peak, "build_mem_mb": peak - before}
    if kind == "tokens" and hasattr(adapter, "save"):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
            row["disk_mb"] = adapter.save(index, Path(folder))
    return index, row


def query_rows_of(system: str, adapter, index, kind: str, inputs: dict, threads: int, args,
                  hits: Dict[str, np.ndarray]) -> List[dict]:
    """Every query set at every k, with queries of one input kind."""
    if system == "pisa" and kind == "text":
        index = adapter.text_context()
    rows = []
    for set_name, query_set in inputs["queries"].items():
        queries = query_input(system, adapter, query_set, kind, args.query_limit)
        for k in args.k:
            row = measure(lambda q, kk: adapter.search(index, q, kk, threads), queries, k,
                          system != "rank_bm25", args.repeat, args.budget, args.single)
            rows.append({"queries": set_name, "n_queries": len(queries), "threads": threads, "k": k,
                         "input": kind, **row})
        if kind == "tokens":
            method = "robertson" if system == "pisa" else METHOD
            hits.update(pack_hits(f"{set_name}__{method}__{threads}", top10(system, adapter, index, queries, threads)))
    return rows


def run_threads(system: str, adapter, inputs: dict, threads: int, args, hits: Dict[str, np.ndarray]):
    """Builds and queries at one thread count; returns (build rows, query rows).

    Text queries go to the index built from text (ragkernels keeps its
    analyzer there), token queries to the one built from tokens; one index
    lives at a time, so each build's peak memory is its own. PISA has only
    the index built from tokens, which serves both."""
    adapter.set_threads(threads)
    builds = doc_inputs(system, adapter, inputs)
    serves = {"text": ["text"], "tokens": ["tokens"]} if "text" in builds else {"tokens": ["tokens", "text"]}
    build_rows, query_rows = [], []
    for kind, docs in builds.items():
        index, row = build_timed(adapter, docs, kind, threads, len(inputs["doc_ids"]))
        build_rows.append(row)
        for query_kind in set(serves[kind]) & set(query_kinds(system)):
            query_rows += query_rows_of(system, adapter, index, query_kind, inputs, threads, args, hits)
        del index
    if system == "pisa":
        adapter.cleanup()
    return build_rows, query_rows


def pack_hits(key: str, result: Hits) -> Dict[str, np.ndarray]:
    return {key + "__rows": np.asarray(result[0], np.int64), key + "__scores": np.asarray(result[1], np.float32)}


def robertson_hits(system: str, adapter, inputs: dict, args) -> Dict[str, np.ndarray]:
    """Top 10 with Robertson's idf, PISA's formula, for the comparison with PISA."""
    if system not in ("ragkernels", "bm25s"):
        return {}
    index = adapter.build(inputs["tokens"], method="robertson")
    out = {}
    for set_name, query_set in inputs["queries"].items():
        queries = query_set["tokens"][:args.query_limit]
        out.update(pack_hits(f"{set_name}__robertson__{args.threads[-1]}",
                             top10(system, adapter, index, queries, args.threads[-1])))
    return out


def worker(args: argparse.Namespace) -> None:
    """Run one system on one corpus at every thread count; print one JSON line."""
    with open(args.inputs, "rb") as f:
        inputs = pickle.load(f)
    adapter = ADAPTERS[args.worker](inputs)
    hits: Dict[str, np.ndarray] = {}
    builds, queries = [], []
    for threads in args.threads:
        b, q = run_threads(args.worker, adapter, inputs, threads, args, hits)
        builds += b
        queries += q
    hits.update(robertson_hits(args.worker, adapter, inputs, args))
    np.savez(args.hits, **hits)
    extra = {}
    if args.worker == "ragkernels":
        extra["analyzer_agreement"] = adapter.analyzer_agreement(inputs["texts"], inputs["tokens"])
        extra["version"] = adapter.rk.__version__  # the build the worker imported (PYTHONPATH)
    print(json.dumps({"build": builds, "queries": queries, **extra}))


# ---------------------------------------------------------------- parent: correctness

def positive(rows: np.ndarray, scores: np.ndarray) -> Dict[int, float]:
    """A top-10 list as {doc row: score}, without padding and without
    documents that match no query term (bm25s pads with score-0 documents)."""
    keep = (rows >= 0) & (scores > MIN_SCORE)
    return dict(zip(rows[keep].tolist(), scores[keep].tolist()))


def same_top(a: Dict[int, float], b: Dict[int, float]) -> bool:
    """Equal sets, except for documents tied with their own list's last score."""
    if len(a) != len(b):
        return False
    for mine, other in ((a, b), (b, a)):
        if not mine:
            continue
        floor = min(mine.values())
        for doc in mine.keys() - other.keys():
            if mine[doc] > floor + TIE_RTOL * abs(floor):
                return False
    return True


def compare(hits_a: Dict[str, np.ndarray], hits_b: Dict[str, np.ndarray], key: str) -> Optional[Dict[str, float]]:
    if key + "__rows" not in hits_a or key + "__rows" not in hits_b:
        return None
    lists_a = [positive(r, s) for r, s in zip(hits_a[key + "__rows"], hits_a[key + "__scores"])]
    lists_b = [positive(r, s) for r, s in zip(hits_b[key + "__rows"], hits_b[key + "__scores"])]
    same = [same_top(a, b) for a, b in zip(lists_a, lists_b)]
    overlap = [len(a.keys() & b.keys()) / max(1, len(a), len(b)) for a, b in zip(lists_a, lists_b)]
    return {"n_queries": len(same), "top10_identical": float(np.mean(same)), "top10_overlap": float(np.mean(overlap))}


PAIRS = [("ragkernels", "bm25s", METHOD), ("ragkernels", "pisa", "robertson"), ("bm25s", "pisa", "robertson")]


def correctness(corpus: str, sets: List[str], hits: Dict[str, Dict[str, np.ndarray]], threads: List[int]) -> List[dict]:
    rows = []
    for set_name in sets:
        for a, b, method in PAIRS:
            for t in threads:
                result = compare(hits.get(a, {}), hits.get(b, {}), f"{set_name}__{method}__{t}")
                if result:
                    rows.append({"corpus": corpus, "queries": set_name, "pair": f"{a} vs {b} ({method})",
                                 "threads": t, **result})
        ours = hits.get("ragkernels", {})
        if len(threads) > 1 and all(f"{set_name}__{METHOD}__{t}__rows" in ours for t in threads):
            keys = [f"{set_name}__{METHOD}__{t}" for t in threads]
            same = all(np.array_equal(ours[keys[0] + s], ours[k + s]) for k in keys[1:] for s in ("__rows", "__scores"))
            rows.append({"corpus": corpus, "queries": set_name, "pair": "ragkernels threads "
                         + " vs ".join(map(str, threads)) + " (bitwise)", "threads": threads[-1],
                         "n_queries": len(ours[keys[0] + "__rows"]), "top10_identical": float(same)})
    return rows


# ---------------------------------------------------------------- parent: runs and tables

def run_system(system: str, corpus: str, inputs: Path, threads: List[int], args) -> Optional[dict]:
    hits = Path(args.workdir) / f"hits-{corpus}-{system}.npz"
    limit = args.query_limit
    if system == "rank_bm25":
        limit = min(limit or RANK_BM25_MAX_QUERIES, RANK_BM25_MAX_QUERIES)
    cmd = [__file__, "--worker", system, "--inputs", str(inputs), "--hits", str(hits),
           "--threads", ",".join(map(str, threads)), "--k", ",".join(map(str, args.k)),
           "--repeat", str(args.repeat), "--budget", str(args.budget), "--single", str(args.single)]
    if limit:
        cmd += ["--query-limit", str(limit)]
    try:
        result = run_isolated(cmd)
    except subprocess.CalledProcessError as error:
        print(f"{corpus} {system}: worker failed\n{error.stderr[-2000:]}", file=sys.stderr, flush=True)
        return {"error": error.stderr.strip().splitlines()[-1] if error.stderr.strip() else "failed"}
    result["hits"] = dict(np.load(hits))
    return result


def add_ratios(rows: List[dict], key: Sequence[str], time_field: str) -> None:
    """x_faster = peer time / ragkernels time on the same key."""
    ours = {tuple(r[c] for c in key): r[time_field] for r in rows
            if r["system"] == "ragkernels" and r.get(time_field)}
    for r in rows:
        base = ours.get(tuple(r[c] for c in key))
        if base and r.get(time_field) and "x_faster" not in r:
            r["x_faster"] = r[time_field] / base


def markdown(rows: List[dict], columns: List[str]) -> str:
    """The table layout of _common.write_results, for the extra tables."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"



def applicable(system: str, n_docs: int, threads: List[int]) -> List[int]:
    """Thread counts a system runs at (rank_bm25: small corpora, one thread)."""
    if system == "rank_bm25":
        return [1] if n_docs <= RANK_BM25_MAX_DOCS else []
    return threads


def bench_corpus(corpus: str, args, threads: List[int], meta: dict):
    inputs = prepare(corpus, Path(args.workdir), args.query_limit)
    with open(inputs, "rb") as f:
        info = pickle.load(f)
    n_docs, sets = len(info["doc_ids"]), list(info["queries"])
    del info
    builds, queries, hits = [], [], {}
    for system in args.systems:
        system_threads = applicable(system, n_docs, threads)
        if not system_threads:
            continue
        start = time.perf_counter()
        result = run_system(system, corpus, inputs, system_threads, args)
        if "error" in result:
            meta["errors"][f"{corpus}/{system}"] = result["error"]
            continue
        print(f"{corpus} {system}: {time.perf_counter() - start:.0f}s", flush=True)
        hits[system] = result.pop("hits")
        base = {"corpus": corpus, "n_docs": n_docs, "system": system}
        builds += [{**base, **r} for r in result["build"]]
        queries += [{**base, **r} for r in result["queries"]]
        if "analyzer_agreement" in result:
            meta["analyzer_agreement_with_bm25s"][corpus] = result["analyzer_agreement"]
            meta["versions"]["ragkernels"] = result["version"]
    return builds, queries, correctness(corpus, sets, hits, threads)


BUILD_COLUMNS = ["corpus", "n_docs", "system", "threads", "input", "build_s", "docs_per_s", "disk_mb",
                 "peak_rss_mb", "build_mem_mb", "x_faster"]
QUERY_COLUMNS = ["corpus", "queries", "n_queries", "system", "threads", "k", "input", "batch_qps", "batch_s",
                 "batch_p99_s", "single_qps", "p50_ms", "p99_ms", "x_faster"]
CHECK_COLUMNS = ["corpus", "queries", "pair", "threads", "n_queries", "top10_identical", "top10_overlap"]


def main(args: argparse.Namespace) -> None:
    threads = sorted({(os.cpu_count() or 1) if t == "all" else int(t) for t in args.threads.split(",")})
    meta = {"machine": machine(), "versions": versions(DISTS), "bm25": {"method": METHOD, "k1": K1, "b": B},
            "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python " + " ".join(sys.argv),
            "quick": args.quick, "errors": {}, "analyzer_agreement_with_bm25s": {},
            "query_limit": args.query_limit, "single_sample": args.single, "repeat": args.repeat,
            "rank_bm25": f"corpora <= {RANK_BM25_MAX_DOCS} docs, first {RANK_BM25_MAX_QUERIES} queries, 1 thread"}
    builds, queries, checks = [], [], []
    for corpus in args.corpora:
        b, q, c = bench_corpus(corpus, args, threads, meta)
        builds, queries, checks = builds + b, queries + q, checks + c
    add_ratios(builds, ["corpus", "threads", "input"], "build_s")
    query_key = ["corpus", "queries", "threads", "k", "input"]
    add_ratios(queries, query_key, "batch_s")
    # rank_bm25 has no batch call: its ratio compares mean single-query times.
    add_ratios([r for r in queries if r["system"] in ("ragkernels", "rank_bm25")], query_key, "single_s")
    meta.update(build=builds, correctness=checks)
    name = args.output + ("_quick" if args.quick else "")
    table = write_results(name, queries, QUERY_COLUMNS, meta)
    cpu = f"{meta['machine'].get('cpu', '?')}, {meta['machine']['cpus']} cores"
    text = (f"`{meta['command']}` on {cpu}. BM25 {METHOD}, k1={K1}, b={B}; same tokens for all systems "
            "(PISA's `text` queries: its own tokenizer + porter2). batch = all queries in one call; "
            "single = one query per call. x_faster = peer time / ragkernels time.\n\n"
            "## Index build\n\n" + markdown(builds, BUILD_COLUMNS) + "\n## Queries\n\n" + table
            + "\n## Top-10 agreement\n\n" + markdown(checks, CHECK_COLUMNS)
            + "\nShare of documents that ragkernels.text.Analyzer tokenizes exactly as bm25s: "
            + json.dumps(meta["analyzer_agreement_with_bm25s"])
            + "\n\nVersions: " + json.dumps(meta["versions"]) + "\n")
    (Path(__file__).resolve().parents[1] / "results" / f"{name}.md").write_text(text)
    print(text)
    if meta["errors"]:
        print("errors:", json.dumps(meta["errors"], indent=1))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: scifact, gen-20k, 50 queries a set")
    p.add_argument("--corpora", help="comma list (default: scifact,cacm,msmarco,gen-100k,gen-300k,gen-1m)")
    p.add_argument("--threads", default="1,all", help="comma list of thread counts, 'all' = every core")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma list of " + ", ".join(SYSTEMS))
    p.add_argument("--output", default="sparse", help="results name under benchmarks/results/")
    p.add_argument("--workdir", default="/tmp/ragkernels-bench/sparse", help="tokenized inputs and top-10 lists")
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    p.add_argument("--hits", help=argparse.SUPPRESS)
    p.add_argument("--k", default="10,1000", help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, help="batch repetitions at most (default 5, quick 2)")
    p.add_argument("--budget", type=float, help="seconds of batch repetitions per measurement (default 60)")
    p.add_argument("--single", type=int, help="queries timed one per call (default 1000, quick 20)")
    p.add_argument("--query-limit", type=int, help="first N queries of each set (default all, quick 50)")
    args = p.parse_args()
    quick = args.quick
    args.corpora = (args.corpora or ("scifact,gen-20k" if quick else
                                     "scifact,cacm,msmarco,gen-100k,gen-300k,gen-1m")).split(",")
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {SYSTEMS}")
    args.k = [int(k) for k in args.k.split(",")]
    args.repeat = args.repeat or (2 if quick else 5)
    args.budget = args.budget or (2.0 if quick else 60.0)
    args.single = args.single or (20 if quick else 1000)
    args.query_limit = args.query_limit or (50 if quick else None)
    if args.worker:
        args.threads = [int(t) for t in args.threads.split(",")]
    return args


if __name__ == "__main__":
    ARGS = parse_args()
    worker(ARGS) if ARGS.worker else main(ARGS)
