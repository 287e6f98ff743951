"""The ``ragkernels`` command.

``ragkernels index CORPUS INDEX`` builds a BM25 index of a BEIR or MS MARCO
corpus; ``ragkernels search INDEX QUERIES RUN`` writes the top-k of each query
as a TREC run. ``ragkernels eval QRELS RUN`` prints what trec_eval prints
(``-q``, ``-c``, ``-l``, ``-M``, ``-J``, ``-m`` spelled as trec_eval spells
them, e.g. ``-m ndcg_cut.10 -l2 -M100``), or JSON with ``--json``.
``ragkernels demo`` runs the main job on the small corpus shipped inside the
package: BM25 and dense retrieval (all-MiniLM-L6-v2, the ``[hf]`` extra), their
reciprocal-rank fusion, a late-interaction (MaxSim) rerank of the fused list
over the same model's token vectors, the evaluation of all four, and the
compressed context (clue selection) of the first query's top passages.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import List, Optional

from ragkernels import __version__, data, metrics, sparse
from ragkernels._core import FormatError, set_num_threads
from ragkernels.text import Analyzer


def _eval_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("eval", help="evaluate a TREC run against qrels (trec_eval-compatible output)")
    p.add_argument("qrels", help="TREC qrels file (qid iter docid rel) or BEIR qrels .tsv")
    p.add_argument("run", help="TREC run file (qid Q0 docid rank score tag)")
    p.add_argument("-m", dest="measures", action="append", default=None,
                   help="measure as trec_eval spells it (repeatable), e.g. ndcg_cut.10, all_trec; default: official")
    p.add_argument("-q", dest="per_query", action="store_true", help="also print per-query values")
    p.add_argument("-c", dest="all_queries", action="store_true",
                   help="average over all queries in qrels (missing queries count as empty rankings)")
    p.add_argument("-l", dest="relevance_level", type=int, default=1, help="relevance threshold (default 1)")
    p.add_argument("-M", dest="depth", type=int, default=None, help="only the first M docs of each ranking")
    p.add_argument("-J", dest="judged_only", action="store_true", help="drop unjudged documents")
    p.add_argument("--json", action="store_true", help="print JSON {summary, per_query} instead")


def _run_eval(args: argparse.Namespace) -> int:
    result = metrics.evaluate(args.qrels, args.run, args.measures or ["official"],
                              relevance_level=args.relevance_level, all_queries=args.all_queries,
                              depth=args.depth, judged_only=args.judged_only)
    if args.json:
        out = {"summary": result.summary}
        if args.per_query:
            out["per_query"] = result.per_query
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(result.to_trec_eval(per_query=args.per_query))
    return 0


def _index_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("index", help="build a BM25 index of a corpus")
    p.add_argument("corpus", help="BEIR folder or corpus.jsonl, or MS MARCO collection .tsv")
    p.add_argument("index", help="index file to write")
    p.add_argument("--method", default="lucene", choices=sparse.METHODS, help="BM25 variant (default lucene)")
    p.add_argument("--k1", type=float, default=1.5, help="default 1.5 (bm25s's)")
    p.add_argument("--b", type=float, default=0.75, help="default 0.75")
    p.add_argument("--delta", type=float, default=0.5, help="bm25l/bm25+ only; default 0.5")
    p.add_argument("--no-stem", action="store_true", help="do not stem (default: Snowball English)")
    p.add_argument("--no-stopwords", action="store_true", help="keep stopwords (default: drop bm25s's English list)")
    p.add_argument("--drop-numbers", action="store_true", help="drop tokens made only of digits")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _search_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("search", help="search an index and write a TREC run")
    p.add_argument("index", help="index file written by 'ragkernels index'")
    p.add_argument("queries", help="BEIR queries.jsonl or qid<TAB>text topics .tsv")
    p.add_argument("run", help="TREC run file to write")
    p.add_argument("-k", type=int, default=1000, help="results per query (default 1000)")
    p.add_argument("--algorithm", default="taat", choices=sparse.ALGORITHMS, help="default taat")
    p.add_argument("--tag", default="ragkernels", help="run tag, the sixth column")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_index(args: argparse.Namespace) -> int:
    if args.threads:
        set_num_threads(args.threads)
    corpus = data.read_corpus(args.corpus)
    analyzer = Analyzer(stemmer=None if args.no_stem else "english", stopwords=None if args.no_stopwords else "en",
                        keep_numbers=not args.drop_numbers)
    start = time.perf_counter()
    index = sparse.BM25Index.build(corpus.full_texts(), ids=corpus.ids, method=args.method, k1=args.k1, b=args.b,
                                   delta=args.delta, analyzer=analyzer, show_progress=not args.quiet)
    index.save(args.index)
    print(f"indexed {index.num_docs} documents, {index.num_terms} terms in {time.perf_counter() - start:.2f} s "
          f"-> {args.index}", file=sys.stderr)
    return 0


def _run_search(args: argparse.Namespace) -> int:
    if args.threads:
        set_num_threads(args.threads)
    index = sparse.BM25Index.load(args.index)
    queries = data.read_queries(args.queries)
    start = time.perf_counter()
    docs, scores = index.search(queries.texts, k=args.k, algorithm=args.algorithm, show_progress=not args.quiet)
    elapsed = time.perf_counter() - start
    data.write_trec_run(args.run, queries.ids, docs, scores, tag=args.tag, corpus_ids=index.doc_ids)
    print(f"searched {len(queries)} queries in {elapsed:.3f} s -> {args.run}", file=sys.stderr)
    return 0


DEMO_MEASURES = ["ndcg_cut.10", "recall.10,100", "map", "recip_rank", "P.5"]


def _run_demo(args: argparse.Namespace) -> int:
    from ragkernels import dense, fusion, hf

    demo = data.load_demo()
    texts, queries = demo.corpus.full_texts(), demo.queries
    print(f"ragkernels {__version__}: BM25 + dense + RRF + MaxSim over the demo corpus shipped in the package "
          f"({data.demo_path()})")
    start = time.perf_counter()
    bm25 = sparse.BM25Index.build(texts, ids=demo.corpus.ids)
    bm25_run = bm25.to_run(*bm25.search(queries.texts, k=100), queries.ids)
    bm25_s = time.perf_counter() - start
    print(f"BM25: indexed {bm25.num_docs} documents ({bm25.num_terms} terms) and searched {len(queries)} queries "
          f"in {bm25_s * 1000:.1f} ms")

    start = time.perf_counter()
    encoder = hf.Encoder()
    flat = dense.FlatIndex(encoder.encode(texts), metric="cosine", ids=demo.corpus.ids)
    dense_run = flat.to_run(*flat.search(encoder.encode(queries.texts), k=100), queries.ids)
    print(f"dense: encoded {len(texts)} documents and {len(queries)} queries ({encoder.dim}-d, {encoder.path}) and "
          f"searched them in {time.perf_counter() - start:.2f} s, model load included")

    start = time.perf_counter()
    fused = fusion.fuse([bm25_run, dense_run], method="rrf", k=60)
    print(f"RRF (k = 60) of the two runs in {(time.perf_counter() - start) * 1000:.2f} ms")

    start = time.perf_counter()
    reranked = _maxsim_rerank(encoder, texts, demo.corpus.ids, queries, fused)
    print(f"MaxSim rerank of the fused lists over token vectors in {time.perf_counter() - start:.2f} s, "
          f"encoding included")

    runs = {"BM25": bm25_run, "dense": dense_run, "RRF": fused, "+MaxSim": reranked}
    results = {name: metrics.evaluate(demo.qrels, run, DEMO_MEASURES) for name, run in runs.items()}
    print("\nevaluated against the demo qrels (trec_eval's measures):\n")
    print(f"{'measure':<14}" + "".join(f"{name:>9}" for name in runs))
    for measure in results["BM25"].measures:
        print(f"{measure:<14}" + "".join(f"{results[name].summary[measure]:>9.4f}" for name in runs))
    before, after = results["RRF"].summary["ndcg_cut_10"], results["+MaxSim"].summary["ndcg_cut_10"]
    print(f"\nnDCG@10 of the fused list: {before:.4f} -> {after:.4f} after the MaxSim rerank ({after - before:+.4f})")
    _print_compressed(encoder, demo, reranked)
    if args.per_query:
        print("\nper query, RRF + MaxSim:\n")
        sys.stdout.write(results["+MaxSim"].to_trec_eval(per_query=True))
    return 0


def _print_compressed(encoder, demo, run, top: int = 3, budget: int = 64) -> None:
    """The clue selection step for the first query: its top passages cut to the
    sentences that carry the answer, under a token budget."""
    from ragkernels import select

    query_id, query = demo.queries.ids[0], demo.queries.texts[0]
    row = {doc: i for i, doc in enumerate(demo.corpus.ids)}
    best = sorted(run[query_id].items(), key=lambda kv: -kv[1])[:top]
    passages = [demo.corpus.texts[row[doc]] for doc, _ in best]
    start = time.perf_counter()
    ctx = select.compress(query, passages, budget_tokens=budget, tokenizer=encoder.tokenizer, scorer="hybrid",
                          encoder=encoder, mmr_lambda=0.7)
    print(f"\ncompressed context for {query_id} ({query!r}), top {top} passages, budget {budget} tokens, "
          f"in {(time.perf_counter() - start) * 1000:.1f} ms:\n")
    print(ctx.text)
    print(f"\nkept {ctx.kept_tokens} of {ctx.original_tokens} tokens "
          f"({100 * (1 - ctx.kept_tokens / max(ctx.original_tokens, 1)):.0f}% saved), "
          f"{len(ctx.sentences)} sentence{'' if len(ctx.sentences) == 1 else 's'}: " + ", ".join(f"[{best[c.passage][0]}:{c.sentence}]" for c in ctx.sentences))


def _maxsim_rerank(encoder, texts, doc_ids, queries, run):
    """The run's candidates of each query rescored by MaxSim over the encoder's token vectors."""
    import numpy as np

    from ragkernels import rerank

    doc_tokens, doc_offsets = encoder.encode_tokens(texts)
    query_tokens, query_offsets = encoder.encode_tokens(queries.texts)
    row = {doc: i for i, doc in enumerate(doc_ids)}
    depth = max(len(run.get(q, {})) for q in queries.ids)
    candidates = np.full((len(queries), depth), -1, dtype=np.int64)
    for i, q in enumerate(queries.ids):
        candidates[i, :len(run.get(q, {}))] = [row[doc] for doc in run.get(q, {})]
    scores = rerank.maxsim(query_tokens, doc_tokens, doc_offsets, candidates, query_offsets=query_offsets)
    return {q: {doc_ids[c]: float(s) for c, s in zip(candidates[i], scores[i]) if c >= 0}
            for i, q in enumerate(queries.ids)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ragkernels", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ragkernels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _index_parser(sub)
    _search_parser(sub)
    _eval_parser(sub)
    demo = sub.add_parser("demo", help="run the main job on the demo corpus shipped in the package")
    demo.add_argument("-q", dest="per_query", action="store_true", help="also print the fused run's per-query values")
    args = parser.parse_args(argv)
    try:
        commands = {"index": _run_index, "search": _run_search, "eval": _run_eval, "demo": _run_demo}
        return commands[args.command](args)
    except (OSError, ValueError, TypeError, FormatError, ImportError) as err:
        print(f"ragkernels {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
