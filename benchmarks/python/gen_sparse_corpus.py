"""Seeded generator of a BEIR-format corpus for the sparse retrieval benchmarks.

The shared data holds real corpora of a few thousand documents; BM25 engines
are only told apart at hundreds of thousands to millions. This script samples
a corpus of any size whose statistics are taken from the real text in
``shared/data`` (MS MARCO passage sample + SciFact + CACM):

* **Words** are surface words (whitespace-split, case and punctuation kept, so
  that the analyzer under test does its real work). A token is drawn from the
  empirical unigram distribution of the real text with probability
  ``1 - tail_mass``; otherwise from a Zipf tail of unseen ranks
  ``r > V0`` (``P(R > x) = (x / V0) ** -(s - 1)``), spelled as made-up
  syllable words. ``tail_mass`` is the Good-Turing estimate (share of hapax
  tokens) and ``s = 1 / beta``, beta being the Heaps exponent measured on the
  real text (about 0.63), so the vocabulary keeps growing with N as in real
  text (Heaps' law) instead of saturating at the sample's vocabulary.
* **Topicality**: a share ``topic_mix`` of each document's tokens is copied
  from one real "seed" document (random positions), so that words co-occur as
  in real documents; without it every query term would be independent of the
  others, which makes BM25 pruning look unrealistically easy or hard.
* **Lengths** are drawn from the empirical histogram of MS MARCO passage
  lengths (in surface words).
* **Queries** are the real MS MARCO dev-small queries (6,980), whose words
  are in the same vocabulary.

Documents are i.i.d. and sampled in fixed chunks, each from its own seeded
stream, so the first N documents of a larger corpus are exactly the N-document
corpus of the same seed. Output (never inside the repository)::

    /tmp/ragkernels-bench/sparse-gen/seed<S>/corpus.jsonl   {"_id","title","text"}
    /tmp/ragkernels-bench/sparse-gen/seed<S>/queries.jsonl  {"_id","text"}
    /tmp/ragkernels-bench/sparse-gen/seed<S>/meta.json      parameters + statistics

Run (1M documents take about a minute on one core)::

    python benchmarks/python/gen_sparse_corpus.py --docs 1000000 --seed 0
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from _common import data_dir

DEFAULT_ROOT = Path("/tmp/ragkernels-bench/sparse-gen")
CHUNK_DOCS = 50_000
FORMAT_VERSION = 1
# Made-up words of the Zipf tail: consonant-vowel syllables, so that they look
# like words to a tokenizer and a stemmer (and are kept by \w\w+).
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
SYLLABLES = np.array([c + v for c in CONSONANTS for v in VOWELS], dtype=object)


@dataclass
class WordModel:
    """Everything the sampler needs, fitted once from the real text."""

    words: np.ndarray           # object [V0], surface words by decreasing count
    cdf: np.ndarray             # float64 [V0], cumulative empirical probability
    tail_mass: float            # probability of drawing an unseen (tail) word
    zipf_s: float               # exponent of the rank-frequency tail
    lengths: np.ndarray         # int64, MS MARCO passage lengths to sample from
    seed_tokens: np.ndarray     # int64, word ids of the real docs, concatenated
    seed_offsets: np.ndarray    # int64 [n_seed + 1], doc boundaries in seed_tokens
    source_tokens: int


def read_real_texts(root: Path) -> Tuple[List[str], List[str]]:
    """MS MARCO passages, and all real texts (MS MARCO + SciFact + CACM)."""
    with open(root / "msmarco-passage" / "collection.subset.tsv", encoding="utf-8") as f:
        msmarco = [line.rstrip("\n").split("\t", 1)[1] for line in f]
    beir = []
    for name in ("beir/scifact", "classic/cacm"):
        with open(root / name / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                beir.append(f"{doc.get('title', '')} {doc['text']}".strip())
    return msmarco, msmarco + beir


def heaps_exponent(docs: List[List[str]]) -> float:
    """Heaps' exponent beta of the real text: slope of log(vocabulary) against
    log(tokens) over the last halvings of a shuffled token stream."""
    order = np.random.default_rng(0).permutation(len(docs))
    stream = [w for i in order for w in docs[i]]
    sizes = [len(stream) // 8, len(stream) // 4, len(stream) // 2, len(stream)]
    seen: set = set()
    vocab, done = [], 0
    for n in sizes:
        seen.update(stream[done:n])
        vocab.append(len(seen))
        done = n
    return float(np.polyfit(np.log(sizes), np.log(vocab), 1)[0])


def fit(root: Path) -> WordModel:
    """Fit the word, tail and length model to the real corpora under root."""
    msmarco, texts = read_real_texts(root)
    docs = [t.split() for t in texts]
    counts = Counter(w for doc in docs for w in doc)
    words = sorted(counts, key=lambda w: (-counts[w], w))  # deterministic order
    word_id = {w: i for i, w in enumerate(words)}
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    total = freq.sum()
    seed_docs = [doc for doc in docs if doc]
    return WordModel(
        words=np.array(words, dtype=object),
        cdf=np.cumsum(freq) / total,
        tail_mass=float((freq == 1).sum() / total),
        # A Zipf law of exponent s gives a Heaps law of exponent 1 / s.
        zipf_s=float(np.clip(1.0 / heaps_exponent(docs), 1.05, 3.0)),
        lengths=np.array([max(1, len(t.split())) for t in msmarco], dtype=np.int64),
        seed_tokens=np.array([word_id[w] for doc in seed_docs for w in doc], dtype=np.int64),
        seed_offsets=np.cumsum([0] + [len(doc) for doc in seed_docs], dtype=np.int64),
        source_tokens=int(total),
    )


def sample_word_ids(model: WordModel, n_docs: int, topic_mix: float,
                    rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Word ids of n_docs documents, concatenated, and their offsets.
    Ids below V0 are empirical words; id V0 + j is the tail rank V0 + j + 1."""
    lengths = rng.choice(model.lengths, size=n_docs)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    v0 = len(model.words)
    ids = np.searchsorted(model.cdf, rng.random(n) * model.cdf[-1], side="right")
    from_tail = rng.random(n) < model.tail_mass
    # Inverse CDF of the Pareto tail; the cap only guards float overflow.
    u = 1.0 - rng.random(int(from_tail.sum()))
    ranks = np.minimum(v0 * u ** (-1.0 / (model.zipf_s - 1.0)), 2.0 ** 50)
    ids[from_tail] = v0 + (ranks - v0).astype(np.int64)
    topical = rng.random(n) < topic_mix
    n_seed = len(model.seed_offsets) - 1
    doc_of_token = np.repeat(np.arange(n_docs), lengths)
    seed_doc = rng.integers(0, n_seed, size=n_docs)[doc_of_token[topical]]
    start, stop = model.seed_offsets[seed_doc], model.seed_offsets[seed_doc + 1]
    ids[topical] = model.seed_tokens[start + (rng.random(len(seed_doc)) * (stop - start)).astype(np.int64)]
    return ids, offsets


def tail_words(ranks: np.ndarray) -> np.ndarray:
    """Spell tail ranks as distinct syllable words ("bakotu")."""
    base = len(SYLLABLES)
    out = SYLLABLES[ranks % base] + SYLLABLES[(ranks // base) % base]
    rest = ranks // (base * base)
    while rest.any():
        more = rest > 0
        out[more] = out[more] + SYLLABLES[rest[more] % base]
        rest = rest // base
    return out


def spell(model: WordModel, ids: np.ndarray) -> np.ndarray:
    """Surface strings of word ids (empirical words, then tail words)."""
    v0 = len(model.words)
    tail = ids >= v0
    tail_ids, inverse = np.unique(ids[tail], return_inverse=True)
    table = np.concatenate([model.words, tail_words(tail_ids)])
    local = ids.copy()
    local[tail] = v0 + inverse
    return table[local]


def write_chunk(f, model: WordModel, first: int, count: int, seed: int, topic_mix: float) -> set:
    """Sample chunk number first // CHUNK_DOCS and write its first count docs;
    return the set of its word ids (for the vocabulary statistics)."""
    rng = np.random.default_rng([seed, first // CHUNK_DOCS])
    ids, offsets = sample_word_ids(model, CHUNK_DOCS, topic_mix, rng)
    ids, offsets = ids[:offsets[count]], offsets[:count + 1]
    words = spell(model, ids).tolist()
    lines = []
    for i in range(count):
        text = " ".join(words[offsets[i]:offsets[i + 1]])
        lines.append(json.dumps({"_id": f"G{first + i:08d}", "title": "", "text": text}, ensure_ascii=False))
    f.write("\n".join(lines) + "\n")
    return set(np.unique(ids).tolist())


def write_queries(root: Path, out: Path) -> int:
    with open(root / "msmarco-passage" / "dev-small" / "queries.dev.small.tsv", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    with open(out, "w", encoding="utf-8") as f:
        for qid, text in rows:
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    return len(rows)


def generate(n_docs: int, seed: int = 0, topic_mix: float = 0.3, out_root: Path = DEFAULT_ROOT,
             verbose: bool = True) -> Path:
    """Write (or reuse) the generated corpus; return its folder.

    Parameters
    ----------
    n_docs : int
        Number of documents (>= 1).
    seed : int
        Seed; the same seed gives the same documents, and a smaller n_docs
        gives a prefix of a larger one.
    topic_mix : float
        Share of each document's tokens copied from one real seed document.
    out_root : Path
        Parent folder; the corpus goes to ``out_root / f"seed{seed}"``.
    verbose : bool
        Print the statistics when done.

    Returns
    -------
    Path
        Folder holding corpus.jsonl, queries.jsonl and meta.json. An existing
        corpus of the same seed and topic_mix with at least n_docs documents
        is reused (read its first n_docs lines).
    """
    if n_docs < 1:
        raise ValueError(f"n_docs must be >= 1, got {n_docs}")
    if not 0.0 <= topic_mix <= 1.0:
        raise ValueError(f"topic_mix must be in [0, 1], got {topic_mix}")
    out = Path(out_root) / f"seed{seed}"
    meta_path = out / "meta.json"
    params = {"format_version": FORMAT_VERSION, "seed": seed, "topic_mix": topic_mix, "chunk_docs": CHUNK_DOCS}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["params"] == params and meta["n_docs"] >= n_docs:
            return out
    start = time.perf_counter()
    root = data_dir()
    model = fit(root)
    out.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)  # an interrupted run must not look complete
    vocab: set = set()
    heaps: Dict[int, int] = {}
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for first in range(0, n_docs, CHUNK_DOCS):
            vocab |= write_chunk(f, model, first, min(CHUNK_DOCS, n_docs - first), seed, topic_mix)
            heaps[min(first + CHUNK_DOCS, n_docs)] = len(vocab)
    n_queries = write_queries(root, out / "queries.jsonl")
    meta = {"params": params, "n_docs": n_docs, "n_queries": n_queries,
            "model": {"empirical_vocabulary": len(model.words), "source_tokens": model.source_tokens,
                      "tail_mass": model.tail_mass, "zipf_s": model.zipf_s,
                      "mean_length": float(model.lengths.mean())},
            "surface_vocabulary_by_n_docs": heaps, "seconds": time.perf_counter() - start}
    meta_path.write_text(json.dumps(meta, indent=1))
    if verbose:
        print(json.dumps(meta, indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=1_000_000, help="number of documents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--topic-mix", type=float, default=0.3, help="share of tokens copied from a real seed doc")
    p.add_argument("--out", type=Path, default=DEFAULT_ROOT, help="parent folder of seed<S>/")
    args = p.parse_args()
    print(generate(args.docs, args.seed, args.topic_mix, args.out))


if __name__ == "__main__":
    main()
