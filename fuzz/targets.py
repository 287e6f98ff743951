"""The table of fuzz targets: every parser and loader of ragkernels.

Each `Target` writes the fuzz input to a file (``work/<file>``),
calls one public loader on it, and, when the loader accepts the file,
checks what came back (fuzz/checks.py). A binary loader is listed once with
`binary(...)`, which makes two targets: ``<name>`` fuzzes the raw bytes
(the container checks: magic, sizes, checksums), ``<name>_fixed`` rewrites
every checksum before loading and mutates the file field by field
(fuzz/container.py), so that inputs reach the loader's own validation.

Adding a loader is one line in `TARGETS`, e.g.::

    *binary("ivf", lambda p, work: rk.dense.IVFIndex.load(p), seeds.ivf_seeds, checks.check_ivf),
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

import ragkernels as rk
from fuzz import checks, kv_stream, seeds

Loader = Callable[[pathlib.Path, pathlib.Path], Any]


@dataclass(frozen=True)
class Target:
    name: str
    file: str  # where the input is written, relative to the work folder (readers look at the name)
    load: Loader  # load(path, work): the call under test; work holds the partner files too
    seeds: Callable[[], seeds.Seeds]
    check: Optional[Callable[[Any], None]] = None  # on what `load` returned; raises checks.Finding
    fix_checksums: bool = False  # binary container: fix checksums, mutate structurally
    aux: Optional[Callable[[], Dict[str, bytes]]] = None  # partner files (paths relative to work), written once
    after: Optional[Loader] = None  # a second call made whatever `load` did (crashes only)
    about: str = ""


def binary(name: str, load: Loader, make_seeds, check=None, after=None, about: str = "") -> Tuple[Target, Target]:
    """A binary loader as two targets: raw bytes, and checksums fixed."""
    return (Target(name, "input.rk", load, make_seeds, check, False, None, None, about + " (raw bytes)"),
            Target(name + "_fixed", "input.rk", load, make_seeds, check, True, None, after,
                   about + " (checksums fixed, field-level mutation)"))


# --- the calls --------------------------------------------------------------------------------

def _qrels(path, work):
    return rk.metrics.evaluate(str(path), str(work / "partner.run"), "all_trec")


def _run(path, work):
    return rk.metrics.evaluate(str(work / "partner.qrels"), str(path), "all_trec")


def _corpus(path, work):
    corpus = rk.data.read_corpus(path)
    checks.check_texts(corpus.ids, corpus.full_texts())
    return corpus


def _queries(path, work):
    queries = rk.data.read_queries(path)
    checks.check_texts(queries.ids, queries.texts)
    return queries


def _topics(path, work):
    queries = rk.data.read_trec_topics_tsv(path)
    checks.check_texts(queries.ids, queries.texts)
    return queries


def _collection(path, work):
    corpus = rk.data.read_msmarco_collection(path)
    checks.check_texts(corpus.ids, corpus.texts)
    return corpus


def _beir_folder(path, work):
    # load_beir reads a folder: the input is its qrels/test.tsv, beside fixed
    # corpus.jsonl and queries.jsonl that name every query and doc of the seeds.
    return rk.data.load_beir(path.parent.parent)


def _index_texts(corpus) -> None:
    """Pipeline stage: the analyzer on texts straight from a file."""
    if not len(corpus):
        return
    try:
        index = rk.sparse.BM25Index.build(corpus.full_texts(), ids=corpus.ids)
    except ValueError as e:
        # build may refuse a text the reader keeps (a lone surrogate from a
        # JSON escape), with a ValueError naming the document; not UnicodeError.
        if isinstance(e, UnicodeError):
            raise
        return
    checks.check_sparse(index, "search of an index built from the file")


_DEMO_INDEX = []


def _search_queries(queries) -> None:
    """Pipeline stage: query texts from a file through the demo index."""
    if not _DEMO_INDEX:
        demo = rk.data.load_demo().corpus
        _DEMO_INDEX.append(rk.sparse.BM25Index.build(demo.full_texts(), ids=demo.ids))
    index = _DEMO_INDEX[0]
    if len(queries):
        found = {a: index.search(queries.texts[:20], k=5, algorithm=a) for a in checks.ALGORITHMS}
        for a in checks.ALGORITHMS[1:]:
            if not checks._same(found[a], found["exhaustive"]):
                raise checks.Finding(f"demo index: {a} disagrees with exhaustive on queries from the file -- "
                                     f"{queries.texts[:20]!r}")


def _datastore_contexts(ds) -> list:
    """Contexts to draft from: windows of the datastore's own text (so that
    matches are found), a token it may lack, the largest id."""
    limit = 2**31 if ds.vocab_size is None else ds.vocab_size
    tokens = [t for t in ds.text.tolist() if 0 <= t < limit]  # (unverified files may hold others)
    out = [tokens[max(0, i - 5):i + 1] for i in range(0, min(len(tokens), 200), 23)]
    out += [[0], [2**31 - 1 if ds.vocab_size is None else ds.vocab_size - 1], tokens[-3:] or [0]]
    return [c for c in out if c]


def _occurs(text: list, pattern: list) -> bool:
    """Whether `pattern` occurs in `text` (it holds no separator, so no
    occurrence spans two sequences)."""
    n = len(pattern)
    return any(text[i:i + n] == pattern for i in range(len(text) - n + 1))


def _check_drafts(ds, verified: bool) -> None:
    from ragkernels.spec import RetrievalDrafter
    from ragkernels.spec import TokenTree

    limit = 2**31 if ds.vocab_size is None else ds.vocab_size
    text = ds.text.tolist()
    for context in _datastore_contexts(ds):
        session = RetrievalDrafter(ds, max_candidates=8, max_depth=4).start(np.array(context, np.int64))
        tree = session.draft(12)
        TokenTree(tree.tokens, tree.parents, tree.weights)  # a valid tree for the verifiers
        tokens, parents = tree.tokens.tolist(), tree.parents.tolist()
        if tokens[0] != context[-1] or any(not 0 <= t < limit for t in tokens):
            raise checks.Finding(f"datastore draft: root or ids out of range -- {tokens} for {context}")
        if not verified:
            continue
        length = session.match_length
        if length and not _occurs(text, context[-length:]):
            raise checks.Finding(f"datastore: a match that is not in the text -- {context[-length:]}")
        if length < min(16, len(context)) and _occurs(text, context[-length - 1:]):
            raise checks.Finding(f"datastore: a longer match was missed -- {context[-length - 1:]}")
        for i in range(1, len(tokens)):
            path, node = [], i
            while node > 0:
                path.append(tokens[node])
                node = parents[node]
            if not _occurs(text, context[-length:] + path[::-1]):
                raise checks.Finding(f"datastore: a drafted path that never follows the match -- {path[::-1]}")


def _check_datastore(ds) -> None:
    """What a verified load promises: the layout, ids in range, the sorted
    array (against a plain sort when small), the token table, and drafts that
    are continuations of the longest match."""
    text, sa, table = ds.text.tolist(), ds.suffix_array.tolist(), ds._core.token_start.tolist()
    limit = 2**31 if ds.vocab_size is None else ds.vocab_size
    if len(text) != ds.num_tokens + ds.num_sequences or text[-1] != -1 or text.count(-1) != ds.num_sequences:
        raise checks.Finding("datastore text: layout does not match num_tokens / num_sequences")
    if any(t != -1 and not 0 <= t < limit for t in text):
        raise checks.Finding("datastore text: an id outside [0, vocab_size)")
    if len(sa) <= 3000:
        def backward(e):
            out = []
            while e >= 0 and text[e] >= 0:
                out.append(text[e])
                e -= 1
            return out
        expected = sorted((e for e, t in enumerate(text) if t >= 0), key=lambda e: (backward(e), e))
        if sa != expected:
            raise checks.Finding("datastore: the suffix array is not the sorted one")
    if table and any(not table[text[e]] <= r < table[text[e] + 1] for r, e in enumerate(sa)):
        raise checks.Finding("datastore: token_start does not match the suffix array")
    _check_drafts(ds, verified=True)


def _datastore_unverified(path, work) -> None:
    """After load(verify=False): drafts may be wrong, never out of bounds or out of vocabulary."""
    from ragkernels.spec import Datastore

    _check_drafts(Datastore.load(path, verify=False), verified=False)


def _load_datastore(path, work):
    from ragkernels.spec import Datastore

    return Datastore.load(path)


def _trie_sequences(trie) -> list:
    """Every allowed sequence, read back from the arrays (depth first)."""
    row_ptr, tokens, child, terminal = (a.tolist() for a in (trie.row_ptr, trie.tokens, trie.child, trie.terminal))
    out, stack = [], [(0, [])]
    while stack:
        node, path = stack.pop()
        if terminal[node]:
            out.append(path)
        for e in range(row_ptr[node], row_ptr[node + 1]):
            stack.append((child[e], path + [tokens[e]]))
    return out


def _load_trie(path, work):
    from ragkernels.spec import Trie

    return Trie.load(path)


def _check_trie(trie) -> None:
    """A verified trie is the one build makes from its own sequences."""
    from ragkernels.spec import Trie

    rebuilt = Trie.build(_trie_sequences(trie), vocab_size=trie.vocab_size)
    for name in ("row_ptr", "tokens", "child", "terminal"):
        if getattr(rebuilt, name).tolist() != getattr(trie, name).tolist():
            raise checks.Finding(f"trie: '{name}' differs from the trie of its own sequences")


def _trie_unverified(path, work) -> None:
    """After load(verify=False): steps may be wrong, never out of bounds."""
    from ragkernels.spec import Trie

    trie = Trie.load(path, verify=False)
    states = trie.start(4)
    for step in range(6):
        trie.next_token_bitmask(states)
        trie.is_terminal(states)
        tokens = [(7 * step + 13 * r) % trie.vocab_size for r in range(4)]
        states = trie.advance(states, tokens)
        if not ((states >= -1) & (states < trie.num_nodes)).all():
            raise checks.Finding(f"trie: a state out of range after an unverified load -- {states.tolist()}")


TARGETS: Tuple[Target, ...] = (
    Target("trec_qrels", "input.qrels", _qrels, seeds.qrels_seeds, checks.check_evaluation,
           aux=lambda: {"partner.run": seeds.trec_partners()[1]},
           about="TREC/BEIR qrels file: rk.metrics.evaluate(qrels_path, run_path, 'all_trec')"),
    Target("trec_run", "input.run", _run, seeds.run_seeds, checks.check_evaluation,
           aux=lambda: {"partner.qrels": seeds.trec_partners()[0]},
           about="TREC run file: rk.metrics.evaluate(qrels_path, run_path, 'all_trec')"),
    Target("beir_corpus", "corpus.jsonl", _corpus, seeds.corpus_seeds, _index_texts,
           about="corpus.jsonl: rk.data.read_corpus, then BM25Index.build on its texts"),
    Target("beir_queries", "queries.jsonl", _queries, seeds.queries_seeds, _search_queries,
           about="queries.jsonl: rk.data.read_queries, then a search of its texts"),
    Target("beir_qrels", "dataset/qrels/test.tsv", _beir_folder, seeds.beir_qrels_seeds,
           aux=lambda: dict(zip(("dataset/corpus.jsonl", "dataset/queries.jsonl"), seeds.beir_partners())),
           about="qrels/test.tsv: rk.data.load_beir(folder)"),
    Target("topics_tsv", "topics.tsv", _topics, seeds.topics_seeds, _search_queries,
           about="qid<TAB>text topics: rk.data.read_trec_topics_tsv"),
    Target("msmarco_collection", "collection.tsv", _collection, seeds.collection_seeds,
           about="pid<TAB>passage: rk.data.read_msmarco_collection"),
    *binary("arrays", lambda p, work: rk.load_arrays(p), seeds.arrays_seeds, checks.touch_arrays,
            about="any container: rk.load_arrays"),
    *binary("bm25", lambda p, work: rk.sparse.BM25Index.load(p), seeds.bm25_seeds, checks.check_sparse,
            about="rk.sparse.BM25Index.load, then every search algorithm against exhaustive"),
    *binary("impact", lambda p, work: rk.sparse.ImpactIndex.load(p), seeds.impact_seeds, checks.check_sparse,
            about="rk.sparse.ImpactIndex.load, then every search algorithm against exhaustive"),
    *binary("flat", lambda p, work: rk.dense.FlatIndex.load(p), seeds.flat_seeds, checks.check_flat,
            about="rk.dense.FlatIndex.load, then search against float64 scores"),
    *binary("term_match", lambda p, work: rk.rerank.TermMatchIndex.load(p), seeds.term_match_seeds,
            checks.check_term_match,
            after=lambda p, work: checks.run_term_match_unverified(rk.rerank.TermMatchIndex.load(p, verify=False)),
            about="rk.rerank.TermMatchIndex.load, then term_match against a float64 reference"),
    *binary("datastore", _load_datastore, seeds.datastore_seeds, _check_datastore, after=_datastore_unverified,
            about="rk.spec.Datastore.load, then the sorted array and drafts against brute force"),
    *binary("trie", _load_trie, seeds.trie_seeds, _check_trie, after=_trie_unverified,
            about="rk.spec.Trie.load, then the arrays against the trie rebuilt from its own sequences"),
    # Not the container format: the stream's own checksums are recomputed by the loader instead.
    Target("kv_stream", "input.kv", kv_stream.load, kv_stream.seeds, kv_stream.check,
           about="rk.kv.decode, then every layer dequantized and attended (raw bytes)"),
    Target("kv_stream_fixed", "input.kv", kv_stream.load_resealed, kv_stream.seeds, kv_stream.check,
           about="rk.kv.decode of the input with its checksums recomputed: the field checks"),
)



def _selftest(path, work):
    """A target with planted bugs, to test the runner itself (RK_FUZZ_SELFTEST=1):
    an input starting with B breaks a check; the first one starting with C
    crashes the process, the first with @ hangs (one bit from the seeds)."""
    data = path.read_bytes()[:1]
    if data == b"B":
        raise KeyError("planted")
    marker = work / f"selftest-{data.hex()}"
    if data in (b"C", b"@") and not marker.exists():
        marker.touch()
        if data == b"C":
            import ctypes
            ctypes.string_at(0)  # SIGSEGV
        while True:
            pass
    return data


if os.environ.get("RK_FUZZ_SELFTEST"):
    TARGETS += (Target("selftest", "input.bin", _selftest, lambda: {"seed": b"A", "bug": b"B"}, about="planted bugs"),)

BY_NAME: Dict[str, Target] = {t.name: t for t in TARGETS}
