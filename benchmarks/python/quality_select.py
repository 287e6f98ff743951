"""Clue selection quality on real labels: SciFact claims with rationale sentences.

Data: ../shared/data/qa/scifact-claims (corpus.jsonl: the 5,183 abstracts as
sentence lists; claims_dev.jsonl, the 300 BEIR test claims, and
claims_train.jsonl, 809 claims; only claims with evidence are scored: 188 dev,
505 train). Retrieval: ragkernels BM25 (k1=0.9, b=0.4) over title + abstract,
top 3 abstracts per claim. The candidate clues are the sentences of those
three abstracts, in the corpus's own (gold) segmentation; tokens are counted
with all-MiniLM-L6-v2's WordPiece tokenizer (no special tokens), and the
budget is a fraction of the three abstracts' tokens.

For each method and budget: rationale recall (the claim's gold rationale
sentences kept, over all of them; retrieval misses count as lost, and the
ceiling, the share of rationales inside the top 3, is reported), the same
recall over the rationales inside the top 3 only (``recall_of_retrieved``:
what selection itself loses), the "all rationales kept" rate, and the
fraction of tokens actually kept. Methods:

* ``top-k passages``: the first k abstracts whole (k = 1, 2, 3: three points);
* ``BM25 sentences``: sentences by BM25 against the claim (statistics from the
  candidate sentences), kept in that order while they fit;
* ``dense sentences``: sentences by cosine with the claim (all-MiniLM-L6-v2
  through rk.hf.Encoder), kept in that order while they fit;
* ``ragkernels ...``: ``rk.select.compress`` on the three abstracts (joined
  sentences, split again by our segmenter) with a budget of that fraction of
  their tokens (the same tokenizer), per scorer preset (lexical, lexical with
  the corpus index's IDF, dense, hybrid), hybrid plus an external scorer
  (MaxSim over all-MiniLM-L6-v2's token vectors, through ``external_scorer``
  and rk.rerank.maxsim), hybrid with MMR, and hybrid with
  the knapsack over raw scores (``temperature=None``, the ablation of the
  value model); a gold sentence counts as kept when at least half of its
  characters are in kept clues;
* ``ragkernels hybrid, top-k passages' tokens``: the hybrid preset with, claim
  by claim, the budget the top-k passages whole take (the same tokens, so
  the comparison with ``top-k passages`` is point for point; the fractions
  in the budget rows are averages over claims of a fixed share).

With ``--ablation`` (train only, into quality_select_ablation.*): the hybrid
preset's parts and the value temperature, one changed at a time.

LLMLingua-2-style token dropping is not run: its compressor model is not
available offline. Run:

    python benchmarks/python/quality_select.py            # dev and train
    python benchmarks/python/quality_select.py --splits train --ablation
"""
from __future__ import annotations

import argparse
import json
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from _common import data_dir, machine, versions, write_results

BUDGETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
TOP_PASSAGES = 3


def load_claims(split: str) -> List[dict]:
    """Claims of `split` ("dev" or "train") that have evidence, with their rationale (doc, sentence) pairs."""
    root = data_dir() / "qa" / "scifact-claims"
    claims = []
    for line in open(root / f"claims_{split}.jsonl"):
        claim = json.loads(line)
        rationales = {(str(doc), i) for doc, sets in claim["evidence"].items() for s in sets for i in s["sentences"]}
        if rationales:
            claims.append({"id": claim["id"], "text": claim["claim"], "rationales": rationales})
    return claims


def load_corpus() -> Dict[str, Tuple[str, List[str]]]:
    """{doc id: (title, sentences)}."""
    corpus = {}
    for line in open(data_dir() / "qa" / "scifact-claims" / "corpus.jsonl"):
        doc = json.loads(line)
        corpus[str(doc["doc_id"])] = (doc["title"], doc["abstract"])
    return corpus


class Candidates:
    """The sentences of one claim's top passages: text, (doc, index), passage rank, token count."""

    def __init__(self, claim: dict, docs: Sequence[str], corpus, count_tokens: Callable[[List[str]], np.ndarray]):
        self.claim = claim
        self.keys = [(doc, i) for doc in docs for i in range(len(corpus[doc][1]))]
        self.texts = [corpus[doc][1][i] for doc, i in self.keys]
        self.passage = np.array([docs.index(doc) for doc, _ in self.keys])
        self.tokens = count_tokens(self.texts)
        self.total_tokens = int(self.tokens.sum())

    def outcome(self, kept: Sequence[int]) -> Dict[str, float]:
        """Rationale recall, all-kept flag and kept token fraction of a kept set (candidate indices)."""
        found = {self.keys[i] for i in kept} & self.claim["rationales"]
        reachable = set(self.keys) & self.claim["rationales"]
        recall = len(found) / len(self.claim["rationales"])
        return {"recall": recall, "all_kept": float(recall == 1.0),
                "recall_retrieved": len(found) / len(reachable) if reachable else float("nan"),
                "kept_fraction": float(self.tokens[list(kept)].sum()) / max(self.total_tokens, 1)}


def fill_in_order(order: Sequence[int], tokens: np.ndarray, budget: float) -> List[int]:
    """Sentences taken in `order` while they fit the budget (a sentence that does not fit is skipped)."""
    kept, used = [], 0
    for i in order:
        if used + tokens[i] <= budget:
            kept.append(int(i))
            used += int(tokens[i])
    return kept


def bm25_order(cands: Candidates) -> np.ndarray:
    import ragkernels as rk

    index = rk.sparse.BM25Index.build(cands.texts, k1=0.9, b=0.4, show_progress=False)
    ids, scores = index.search([cands.claim["text"]], k=len(cands.texts))
    ranked = [int(i) for i in ids[0] if i >= 0]
    return np.array(ranked + [i for i in range(len(cands.texts)) if i not in set(ranked)], dtype=np.int64)


def dense_order(cands: Candidates, embed: Callable[[List[str]], np.ndarray]) -> np.ndarray:
    vectors = embed(cands.texts)
    query = embed([cands.claim["text"]])[0]
    return np.argsort(-(vectors @ query), kind="stable")


RAGKERNELS_METHODS = {
    "ragkernels lexical": dict(scorer="lexical"),
    "ragkernels lexical, corpus IDF": dict(scorer="lexical", index="corpus"),
    "ragkernels dense": dict(scorer="dense"),
    "ragkernels hybrid": dict(scorer="hybrid"),
    "ragkernels hybrid + MaxSim (external)": dict(scorer="hybrid", external_scorer="maxsim"),
    "ragkernels hybrid + MMR 0.7": dict(scorer="hybrid", mmr_lambda=0.7),
    "ragkernels hybrid, raw-score knapsack": dict(scorer="hybrid", temperature=None),
}
HYBRID = {"lexical": 1.0, "dense": 1.0, "passage_dense": 1.0, "passage": 0.5}
ABLATION_METHODS = {
    "hybrid": dict(weights=HYBRID),
    "hybrid without passage_dense": dict(weights={**HYBRID, "passage_dense": 0.0}),
    "hybrid without passage prior": dict(weights={**HYBRID, "passage": 0.0}),
    "lexical + dense only": dict(weights={"lexical": 1.0, "dense": 1.0}),
    "hybrid + position prior 0.5": dict(weights={**HYBRID, "position": 0.5}),
    "hybrid, corpus IDF": dict(weights=HYBRID, index="corpus"),
    **{f"hybrid, temperature {t}": dict(weights=HYBRID, temperature=t) for t in (0.01, 0.02, 0.1, 0.3, None)},
}


def compress_kept(cands: Candidates, corpus, docs: Sequence[str], budget: int, tokenizer, encoder,
                  options: dict) -> List[int]:
    """Candidate indices (gold sentences) kept by rk.select.compress on the joined abstracts: a gold
    sentence counts as kept when at least half of its characters lie in kept clues (our segmenter's
    boundaries differ from the gold ones at about 2 % of breaks)."""
    import ragkernels as rk

    passages = [" ".join(corpus[doc][1]) for doc in docs]
    ctx = rk.select.compress(cands.claim["text"], passages, budget_tokens=max(budget, 1), tokenizer=tokenizer,
                             encoder=encoder, order="document", **options)
    covered = [np.zeros(len(p) + 1, bool) for p in passages]
    for clue in ctx.sentences:
        covered[clue.passage][clue.start:clue.end] = True
    kept = []
    for i, (doc, j) in enumerate(cands.keys):
        p = docs.index(doc)
        start = sum(len(t) + 1 for t in corpus[doc][1][:j])
        span = covered[p][start:start + len(corpus[doc][1][j])]
        if span.size and span.mean() >= 0.5:
            kept.append(i)
    return kept


def evaluate(split: str, args) -> List[Dict[str, object]]:
    import ragkernels as rk
    from transformers import AutoTokenizer
    from ragkernels.hf.encoder import _model_dir

    corpus = load_corpus()
    doc_ids = list(corpus)
    index = rk.sparse.BM25Index.build([(t + " " + " ".join(s)).strip() for t, s in corpus.values()], ids=doc_ids,
                                      k1=0.9, b=0.4)
    claims = load_claims(split)[:args.limit or None]
    ids, _ = index.search([c["text"] for c in claims], k=TOP_PASSAGES)
    tokenizer = AutoTokenizer.from_pretrained(str(_model_dir(None)))

    def count_tokens(texts: List[str]) -> np.ndarray:
        return np.array([len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]], dtype=np.int64)

    encoder = rk.hf.Encoder()
    maxsim = MaxSimScorer(encoder)
    cache: Dict[str, np.ndarray] = {}

    def embed(texts: List[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, encoder.encode(missing)))
        return np.stack([cache[t] for t in texts])

    candidates = [Candidates(c, [doc_ids[i] for i in row if i >= 0], corpus, count_tokens)
                  for c, row in zip(claims, ids)]
    ceiling = float(np.mean([c.outcome(range(len(c.texts)))["recall"] for c in candidates]))
    orders = {"BM25 sentences": [bm25_order(c) for c in candidates],
              "dense sentences": [dense_order(c, embed) for c in candidates]}
    rows = []
    def ours(options: dict, budgets: Sequence[int]) -> List[Dict[str, float]]:
        """compress's outcome on every claim, claim i under budgets[i] tokens."""
        opts = {**options, "index": index} if options.get("index") == "corpus" else options
        opts = {**opts, "external_scorer": maxsim} if opts.get("external_scorer") == "maxsim" else opts
        return [c.outcome(compress_kept(c, corpus, [doc_ids[i] for i in row if i >= 0], budget, tokenizer,
                                        CachedEncoder(embed), opts))
                for c, row, budget in zip(candidates, ids, budgets)]

    if args.ablation:
        return [summary(split, name, budget, ours(options, [int(budget * c.total_tokens) for c in candidates]),
                        ceiling)
                for name, options in ABLATION_METHODS.items() for budget in (0.1, 0.2, 0.3, 0.4)]
    for k in range(1, TOP_PASSAGES + 1):
        outcomes = [c.outcome(np.flatnonzero(c.passage < k)) for c in candidates]
        rows.append(summary(split, f"top-{k} passages", None, outcomes, ceiling))
    for k in range(1, TOP_PASSAGES):  # the same tokens, claim by claim, as the top-k passages whole
        budgets = [int(c.tokens[c.passage < k].sum()) for c in candidates]
        rows.append(summary(split, f"ragkernels hybrid, top-{k} passages' tokens", None,
                            ours(RAGKERNELS_METHODS["ragkernels hybrid"], budgets), ceiling))
    for name, per_claim in orders.items():
        for budget in BUDGETS:
            outcomes = [c.outcome(fill_in_order(o, c.tokens, budget * c.total_tokens))
                        for c, o in zip(candidates, per_claim)]
            rows.append(summary(split, name, budget, outcomes, ceiling))
    for name, options in RAGKERNELS_METHODS.items():
        for budget in BUDGETS:
            rows.append(summary(split, name, budget, ours(options, [int(budget * c.total_tokens) for c in candidates]),
                                ceiling))
    return rows


class MaxSimScorer:
    """``external_scorer`` for compress: MaxSim of the query's and each sentence's
    token vectors (rk.hf.Encoder.encode_tokens, cached by text; rk.rerank.maxsim)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.cache: Dict[str, np.ndarray] = {}

    def tokens(self, texts: List[str]) -> List[np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            vectors, offsets = self.encoder.encode_tokens(missing)
            self.cache.update((t, vectors[offsets[i]:offsets[i + 1]]) for i, t in enumerate(missing))
        return [self.cache[t] for t in texts]

    def __call__(self, query: str, sentences: List[str]) -> np.ndarray:
        import ragkernels as rk

        matrices = self.tokens(sentences)
        offsets = np.concatenate([[0], np.cumsum([len(m) for m in matrices])]).astype(np.int64)
        return rk.rerank.maxsim(self.tokens([query])[0], np.concatenate(matrices), offsets)


class CachedEncoder:
    """rk.hf.Encoder's `encode` through the script's cache (the same vectors for every method)."""

    def __init__(self, embed):
        self.encode = embed


def summary(split, method, budget, outcomes, ceiling) -> Dict[str, object]:
    return {"split": split, "method": method, "budget": budget, "claims": len(outcomes),
            "rationale_recall": round(float(np.mean([o["recall"] for o in outcomes])), 4),
            "all_kept": round(float(np.mean([o["all_kept"] for o in outcomes])), 4),
            "recall_of_retrieved": round(float(np.nanmean([o["recall_retrieved"] for o in outcomes])), 4),
            "kept_fraction": round(float(np.mean([o["kept_fraction"] for o in outcomes])), 4),
            "retrieval_ceiling": round(ceiling, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", default="dev,train")
    ap.add_argument("--limit", type=int, default=0, help="first N claims of each split (checking the script)")
    ap.add_argument("--ablation", action="store_true", help="the hybrid preset's parts and temperatures instead")
    args = ap.parse_args()
    rows = [row for split in args.splits.split(",") for row in evaluate(split, args)]
    columns = ["split", "method", "budget", "claims", "rationale_recall", "recall_of_retrieved", "all_kept",
               "kept_fraction", "retrieval_ceiling"]
    meta = {"machine": machine(), "versions": versions({"ragkernels": "ragkernels"}), "top_passages": TOP_PASSAGES,
            "tokenizer": "all-MiniLM-L6-v2 WordPiece"}
    print(write_results("quality_select_ablation" if args.ablation else "quality_select", rows, columns, meta))


if __name__ == "__main__":
    main()
