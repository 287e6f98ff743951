"""The prompts of the speculative decoding benchmark (bench_spec.py), built
with ragkernels itself: RAG prompts (SciFact claims and TREC DL 2019 queries,
their BM25 top passages compressed to the answering clues by
``rk.select.compress``) and open-ended prompts where copying does not help,
all in SmolLM2's chat template."""
from __future__ import annotations

from typing import Dict, List

from _common import data_dir

SYSTEM = ("You answer questions from the passages given. Answer in two or three sentences, "
          "reusing the passages' own words.")

OPEN_ENDED = [
    "Write a short poem about the sea at night.",
    "Give three tips for staying focused while studying.",
    "Describe your ideal weekend in a few sentences.",
    "Explain why the sky is blue to a ten-year-old.",
    "Write a friendly email inviting a colleague to lunch.",
    "List five fruits and say what colour each one is.",
    "Tell a very short story about a robot who learns to paint.",
    "What are the benefits of regular exercise?",
    "Suggest a name for a bakery and explain the choice.",
    "Write two sentences about the history of bicycles.",
    "How do you make a cup of tea?",
    "Describe a city you would like to visit and why.",
]


def _rag_user(question: str, clues: List[str], kind: str) -> str:
    passages = "\n".join(f"[{i + 1}] {c}" for i, c in enumerate(clues))
    ask = "Is this claim supported by the passages? Explain." if kind == "claim" else "Answer the question."
    return f"Passages:\n{passages}\n\n{'Claim' if kind == 'claim' else 'Question'}: {question}\n{ask}"


def _clues(rk, index, texts: List[str], questions: List[str], top: int, budget: int) -> List[List[str]]:
    ids, _ = index.search(questions, k=top)
    out = []
    for q, row in zip(questions, ids):
        passages = [texts[i] for i in row if i >= 0]
        context = rk.select.compress(q, passages, budget_tokens=budget, scorer="lexical", order="document")
        by_passage: Dict[int, List[str]] = {}
        for clue in context.sentences:
            by_passage.setdefault(clue.passage, []).append(clue.text)
        out.append([" ".join(s) for _, s in sorted(by_passage.items())])
    return out


def rag_prompts(n_scifact: int, n_dl: int, top: int = 5, budget: int = 180) -> List[Dict[str, object]]:
    """[{"id", "kind", "question", "messages"}]: SciFact test claims first, then DL19 queries."""
    import ragkernels as rk

    root = data_dir()
    out: List[Dict[str, object]] = []
    scifact = rk.data.load_beir(root / "beir" / "scifact")
    texts = scifact.corpus.full_texts()
    index = rk.sparse.BM25Index.build(texts)
    claims = list(scifact.queries.texts[:n_scifact])
    for qid, claim, clues in zip(scifact.queries.ids, claims, _clues(rk, index, texts, claims, top, budget)):
        out.append({"id": f"scifact-{qid}", "kind": "claim", "question": claim,
                     "messages": [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": _rag_user(claim, clues, "claim")}]})
    marco = root / "msmarco-passage"
    collection = rk.data.read_msmarco_collection(marco / "collection.subset.tsv")
    topics = rk.data.read_trec_topics_tsv(marco / "trec-dl-2019" / "topics.dl19-passage.tsv")
    passages = list(collection.full_texts())
    index = rk.sparse.BM25Index.build(passages)
    queries = list(topics.texts[:n_dl])
    for qid, query, clues in zip(topics.ids, queries, _clues(rk, index, passages, queries, top, budget)):
        out.append({"id": f"dl19-{qid}", "kind": "question", "question": query,
                    "messages": [{"role": "system", "content": SYSTEM},
                                 {"role": "user", "content": _rag_user(query, clues, "question")}]})
    return out


def open_prompts(n: int) -> List[Dict[str, object]]:
    return [{"id": f"open-{i}", "kind": "open", "question": p, "messages": [{"role": "user", "content": p}]}
            for i, p in enumerate(OPEN_ENDED[:n])]
