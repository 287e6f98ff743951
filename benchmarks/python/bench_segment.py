"""Sentence segmentation side by side: ragkernels.text.split_sentences vs
pysbd, syntok and blingfire, for accuracy and speed.

Data: the SciFact abstracts of ``qa/scifact-claims/corpus.jsonl`` (5,183
abstracts, each stored as a list of sentences). Each abstract is joined
with one space and re-split; a gold boundary is the offset where a gold
sentence's first non-space character lies (the first sentence excluded).
A system's boundaries are the starts of its sentences after the first,
past leading whitespace, in code points. Precision, recall and F1 are
micro-averaged over all boundaries.

The gold itself was made by a tool, not by people, and it breaks at
non-sentence points: after "+/-" (``"51 +/-" | "10.7 years"``) and inside
dot leaders of two tables of contents (``"." | "." | ...``). A second set
of rows (``gold=clean``) scores only the abstracts without such breaks.

Speed: the whole corpus, single thread (``rk.set_num_threads(1)``), each
system's native output (ragkernels: spans arrays; pysbd: strings, its
fastest mode; syntok: token lists; blingfire: text + offsets), median of
``--repeat`` calls (one call for pysbd, which takes minutes), reported as
gold sentences per second. ragkernels also runs with all threads. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_segment.py
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, Set, Tuple

from _common import data_dir, machine, time_calls, versions, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.reference


def load_gold() -> Tuple[List[str], List[Set[int]], List[bool]]:
    """(texts, gold boundaries per text, whether the gold of each text is clean)."""
    texts, gold, clean = [], [], []
    with open(data_dir() / "qa" / "scifact-claims" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            sentences = json.loads(line)["abstract"]
            text, pos, bounds = " ".join(sentences), 0, set()
            for i, s in enumerate(sentences):
                if i > 0:
                    bounds.add(pos + len(s) - len(s.lstrip()))
                pos += len(s) + 1
            texts.append(text)
            gold.append(bounds)
            clean.append(not any(s.rstrip().endswith("+/-") or not s.strip(". ") for s in sentences[:-1]))
    return texts, gold, clean


def first_visible(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


# ---------------------------------------------------------------- systems: texts -> boundaries per text

def run_ragkernels(texts):
    import ragkernels as rk

    return rk.text.split_sentences(texts)


def bounds_ragkernels(texts, out) -> List[Set[int]]:
    return [{a for a, _ in out.of(i)[1:].tolist()} for i in range(len(texts))]


def run_pysbd(texts):
    import pysbd

    seg = pysbd.Segmenter(language="en", clean=False)
    return [seg.segment(t) for t in texts]


def bounds_by_search(texts, out) -> List[Set[int]]:
    """Sentence starts of systems that return strings, found in order."""
    result = []
    for text, sents in zip(texts, out):
        pos, starts = 0, []
        for s in sents:
            s = s.strip()
            if not s:
                continue
            at = text.find(s, pos)
            if at < 0:  # the system changed the text: skip this sentence
                continue
            starts.append(at)
            pos = at + len(s)
        result.append(set(starts[1:]))
    return result


def run_syntok(texts):
    import syntok.segmenter as segmenter

    return [[sentence[0].offset for paragraph in segmenter.analyze(t) for sentence in paragraph] for t in texts]


def bounds_syntok(texts, out) -> List[Set[int]]:
    return [{first_visible(t, s) for s in starts[1:]} for t, starts in zip(texts, out)]


def run_blingfire(texts):
    import blingfire

    return [blingfire.text_to_sentences_and_offsets(t)[1] for t in texts]


def bounds_blingfire(texts, out) -> List[Set[int]]:
    return [{first_visible(t, a) for a, _ in offs[1:]} for t, offs in zip(texts, out)]


def run_reference(texts):
    from tests.reference.segment import split_sentences_ref

    return [split_sentences_ref(t) for t in texts]


def bounds_reference(texts, out) -> List[Set[int]]:
    return [{a for a, _ in spans[1:]} for spans in out]


SYSTEMS: Dict[str, Tuple[Callable, Callable, str]] = {
    "ragkernels": (run_ragkernels, bounds_ragkernels, "ragkernels"),
    "pysbd": (run_pysbd, bounds_by_search, "pysbd"),
    "syntok": (run_syntok, bounds_syntok, "syntok"),
    "blingfire": (run_blingfire, bounds_blingfire, "blingfire"),
    "ragkernels-python-reference": (run_reference, bounds_reference, "ragkernels"),
}


def score(pred: List[Set[int]], gold: List[Set[int]], keep: List[bool]) -> Dict[str, float]:
    tp = fp = fn = 0
    for p, g, k in zip(pred, gold, keep):
        if k:
            tp += len(p & g)
            fp += len(p - g)
            fn += len(g - p)
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f1": f1, "false_breaks": fp, "missed_breaks": fn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], help="systems to leave out")
    args = parser.parse_args()
    import ragkernels as rk

    texts, gold, clean = load_gold()
    n_gold_sentences = sum(len(g) + 1 for g in gold)
    everything = [True] * len(texts)
    rows = []
    for name, (run, bounds, _) in SYSTEMS.items():
        if name in args.skip:
            continue
        rk.set_num_threads(1)
        repeat = 1 if name in ("pysbd", "syntok", "ragkernels-python-reference") else args.repeat
        out = run(texts)
        timing = time_calls(lambda run=run: run(texts), repeat=repeat, warmup=0)
        pred = bounds(texts, out)
        for gold_name, keep in (("all", everything), ("clean", clean)):
            row = {"system": name, "gold": gold_name, "threads": 1, **score(pred, gold, keep)}
            if gold_name == "all":
                row.update(seconds=timing["median_s"], sentences_per_s=n_gold_sentences / timing["median_s"])
            rows.append(row)
        print(json.dumps(rows[-2]), flush=True)
    threads = os.cpu_count() or 1
    rk.set_num_threads(threads)
    timing = time_calls(lambda: run_ragkernels(texts), repeat=args.repeat)
    rows.append({"system": "ragkernels", "gold": "all", "threads": threads, "seconds": timing["median_s"],
                 "sentences_per_s": n_gold_sentences / timing["median_s"]})
    ours = next(r["seconds"] for r in rows if r["system"] == "ragkernels" and r["threads"] == 1)
    for row in rows:
        if "seconds" in row:
            row["x_slower_than_ragkernels"] = row["seconds"] / ours
    meta = {
        "texts": len(texts), "gold_sentences": n_gold_sentences,
        "gold_boundaries": sum(len(g) for g in gold),
        "clean_texts": sum(clean), "clean_boundaries": sum(len(g) for g, k in zip(gold, clean) if k),
        "versions": versions({n: d for n, (_, _, d) in SYSTEMS.items()}), "machine": machine(),
        "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/python/bench_segment.py",
    }
    columns = ["system", "gold", "threads", "precision", "recall", "f1", "false_breaks", "missed_breaks",
               "seconds", "sentences_per_s", "x_slower_than_ragkernels"]
    print(write_results("segment", rows, columns, meta))


if __name__ == "__main__":
    main()
