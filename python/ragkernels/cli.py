"""The ``ragkernels`` command: index, search, evaluate, and a demo.

Every subcommand exits 0 on success and 2 on a usage or input error, after
one line ``ragkernels <command>: error: <what>`` on stderr; a traceback means
a bug. Paths to write are checked before any work starts.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Callable, List, Optional, Tuple

from ragkernels import __version__, data, metrics, sparse
from ragkernels._checks import INT64_MAX, check_int
from ragkernels._core import FormatError, set_num_threads
from ragkernels.text import Analyzer

INT32_MAX = 2**31 - 1
DESCRIPTION = """\
Fast, exact retrieval and evaluation from the shell, on BEIR and MS MARCO
files: build a BM25 index of a corpus, search it into a TREC run, evaluate a
run as trec_eval does, or run the whole pipeline on the demo corpus shipped in
the package. Each command has its own --help."""

EPILOG = """\
examples (scifact/ is a BEIR folder: corpus.jsonl, queries.jsonl, qrels/):
  ragkernels index scifact/ scifact.rkidx
  ragkernels search scifact.rkidx scifact/queries.jsonl run.trec -k 100
  ragkernels eval scifact/qrels/test.tsv run.trec -m ndcg_cut.10 -m recall.100
  ragkernels demo

exit status: 0 on success, 2 on a usage or input error (one line on stderr)."""


def _int_option(name: str, minimum: int, maximum: int, hint: str = "") -> Callable[[str], int]:
    """An argparse type: an int in [minimum, maximum], else a usage error
    that names the option, the range and the value given."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
        try:
            return check_int(value, name, "ragkernels", minimum=minimum, maximum=maximum)
        except ValueError:
            upper = {INT64_MAX: "2**63 - 1", INT32_MAX: "2**31 - 1"}.get(maximum, str(maximum))
            raise argparse.ArgumentTypeError(f"must be an int in [{minimum}, {upper}], got {value}{hint}") from None
    parse.__name__ = "int"
    return parse


_THREADS = _int_option("--threads", 1, INT32_MAX, " (leave it out to use every core)")


def _tag(text: str) -> str:
    """The run tag, refused before the search rather than when the run is written."""
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"must be non-empty without whitespace (it is one column), got {text!r}")
    return text


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_THREADS, default=None, metavar="N",
                   help="threads, N >= 1 (default: every core); results do not depend on it")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (a bar is drawn only when stderr is a terminal)")


def _subparser(sub, name: str, summary: str, description: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description, epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _index_parser(sub) -> None:
    p = _subparser(sub, "index", "build a BM25 index of a corpus and save it to one file",
                   "Build a BM25 index of a corpus and save it as one checksummed file (loaded\n"
                   "with mmap by 'ragkernels search' and rk.sparse.BM25Index.load). Texts are\n"
                   "title + text, tokenized exactly as bm25s tokenizes them (English stopwords\n"
                   "and Snowball stemmer by default).",
                   "ragkernels index scifact/ scifact.rkidx --k1 1.2 --b 0.75")
    p.add_argument("corpus", help="BEIR folder or corpus.jsonl, or MS MARCO collection .tsv (pid<TAB>passage)")
    p.add_argument("index", help="index file to write (replaced atomically if it exists)")
    p.add_argument("--method", default="lucene", choices=sparse.METHODS, help="BM25 variant (default lucene)")
    p.add_argument("--k1", type=float, default=1.5, help="term-frequency saturation (default 1.5, bm25s's)")
    p.add_argument("--b", type=float, default=0.75, help="length normalization (default 0.75)")
    p.add_argument("--delta", type=float, default=0.5, help="bm25l and bm25+ only (default 0.5)")
    p.add_argument("--no-stem", action="store_true", help="do not stem (default: Snowball English)")
    p.add_argument("--no-stopwords", action="store_true", help="keep stopwords (default: drop bm25s's English list)")
    p.add_argument("--drop-numbers", action="store_true", help="drop tokens made only of digits")
    _add_common(p)


def _search_parser(sub) -> None:
    p = _subparser(sub, "search", "search an index with a query file and write a TREC run",
                   "Search an index written by 'ragkernels index' with every query of a file and\n"
                   "write the top k of each as a TREC run (qid Q0 docid rank score tag). Every\n"
                   "algorithm returns the same exact top k; pruning only skips work.",
                   "ragkernels search scifact.rkidx scifact/queries.jsonl run.trec -k 100")
    p.add_argument("index", help="index file written by 'ragkernels index'")
    p.add_argument("queries", help="BEIR queries.jsonl, or qid<TAB>text topics .tsv")
    p.add_argument("run", help="TREC run file to write (replaced atomically if it exists)")
    p.add_argument("-k", type=_int_option("-k", 1, INT64_MAX), default=1000,
                   help="results per query, >= 1 (default 1000; at most the documents there are)")
    p.add_argument("--algorithm", default="taat", choices=sparse.ALGORITHMS,
                   help="taat: term at a time (default), maxscore: MaxScore, bmw: Block-Max WAND, "
                        "exhaustive: score every document; all give the same results")
    p.add_argument("--tag", type=_tag, default="ragkernels", help="run tag, the sixth column (default ragkernels)")
    _add_common(p)


def _eval_parser(sub) -> None:
    p = _subparser(sub, "eval", "evaluate a TREC run against qrels, printing what trec_eval prints",
                   "Evaluate a TREC run against qrels and print what trec_eval prints (the same\n"
                   "measures, options and numbers), or JSON with --json. Options are spelled as\n"
                   "trec_eval spells them: -m ndcg_cut.10 -l2 -M100.",
                   "ragkernels eval scifact/qrels/test.tsv run.trec -m ndcg_cut.10 -m map -q")
    p.add_argument("qrels", help="TREC qrels file (qid iter docid rel) or BEIR qrels .tsv")
    p.add_argument("run", help="TREC run file (qid Q0 docid rank score tag)")
    p.add_argument("-m", dest="measures", action="append", default=None, metavar="MEASURE",
                   help="measure as trec_eval spells it, repeatable: ndcg_cut.10, recall.10,100, map, "
                        "all_trec ... (default: official)")
    p.add_argument("-q", dest="per_query", action="store_true", help="also print per-query values")
    p.add_argument("-c", dest="all_queries", action="store_true",
                   help="average over all queries in qrels (missing queries count as empty rankings)")
    p.add_argument("-l", dest="relevance_level", type=_int_option("-l", 1, INT32_MAX), default=1, metavar="LEVEL",
                   help="a judgment >= LEVEL counts as relevant (default 1)")
    p.add_argument("-M", dest="depth", type=_int_option("-M", 1, INT64_MAX), default=None, metavar="DEPTH",
                   help="only the first DEPTH docs of each ranking")
    p.add_argument("-J", dest="judged_only", action="store_true", help="drop unjudged documents")
    p.add_argument("--json", action="store_true", help="print JSON {summary, per_query} instead")


def _demo_parser(sub) -> None:
    p = _subparser(sub, "demo", "BM25, dense, fusion, MaxSim rerank, evaluation and clue selection on "
                   "the 60-document demo corpus shipped in the package (needs the [hf] extra)",
                   "Retrieve the 60-document demo corpus shipped in the package three ways (BM25;\n"
                   "dense: all-MiniLM-L6-v2 embeddings and exact cosine search; their reciprocal-\n"
                   "rank fusion), rerank the fused list with MaxSim over the same model's token\n"
                   "vectors, evaluate the four runs against the graded qrels, and compress the\n"
                   "first query's top passages to the sentences that answer it. Needs the [hf]\n"
                   "extra; runs offline.",
                   "ragkernels demo -q")
    p.add_argument("-q", dest="per_query", action="store_true",
                   help="also print per-query values of the final run (RRF + MaxSim rerank)")


def _check_output(path: str, what: str, example: str) -> None:
    """Refuse an output path that cannot be written, before any work is done
    (the file itself is written to a temporary name and renamed at the end)."""
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder; give a file name, e.g. {os.path.join(path, example)}")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path!r}: folder {folder!r} is not writable")


def _progress(args: argparse.Namespace) -> bool:
    # tqdm redraws a line with carriage returns; in a log or a pipe every redraw
    # stays, and the last update and close() both print the 100% line. Like
    # tqdm's own disable=None, draw a bar only on a terminal.
    return not args.quiet and sys.stderr.isatty()


def _run_index(args: argparse.Namespace) -> int:
    _check_output(args.index, "index", "index.rkidx")
    if args.threads is not None:
        set_num_threads(args.threads)
    corpus = data.read_corpus(args.corpus)
    analyzer = Analyzer(stemmer=None if args.no_stem else "english", stopwords=None if args.no_stopwords else "en",
                        keep_numbers=not args.drop_numbers)
    start = time.perf_counter()
    index = sparse.BM25Index.build(corpus.full_texts(), ids=corpus.ids, method=args.method, k1=args.k1, b=args.b,
                                   delta=args.delta, analyzer=analyzer, show_progress=_progress(args))
    index.save(args.index)
    print(f"indexed {index.num_docs} documents, {index.num_terms} terms in {time.perf_counter() - start:.2f} s "
          f"-> {args.index}", file=sys.stderr)
    return 0


def _run_search(args: argparse.Namespace) -> int:
    _check_output(args.run, "run file", "run.trec")
    if args.threads is not None:
        set_num_threads(args.threads)
    index = sparse.BM25Index.load(args.index)
    queries = data.read_queries(args.queries)
    start = time.perf_counter()
    docs, scores = index.search(queries.texts, k=args.k, algorithm=args.algorithm, show_progress=_progress(args))
    elapsed = time.perf_counter() - start
    data.write_trec_run(args.run, queries.ids, docs, scores, tag=args.tag, corpus_ids=index.doc_ids)
    print(f"searched {len(queries)} queries in {elapsed:.3f} s -> {args.run}", file=sys.stderr)
    return 0


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
    print(f"BM25: indexed {bm25.num_docs} documents ({bm25.num_terms} terms) and searched {len(queries)} queries "
          f"in {(time.perf_counter() - start) * 1000:.1f} ms")

    start = time.perf_counter()
    encoder = _quiet_encoder(hf)
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
    query, context = _print_compressed(encoder, demo, reranked)
    _print_answer(query, context)
    if args.per_query:
        print("\nper query, RRF + MaxSim:\n")
        sys.stdout.write(results["+MaxSim"].to_trec_eval(per_query=True))
    return 0


@contextlib.contextmanager
def _quiet_transformers():
    """No transformers "Loading weights" bar, which would land in the middle
    of the demo's report."""
    try:
        from transformers.utils import logging
    except ImportError:  # the loader says which extra is missing
        yield
        return
    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def _quiet_encoder(hf):
    with _quiet_transformers():
        return hf.Encoder()


def _print_compressed(encoder, demo, run, top: int = 3, budget: int = 64) -> Tuple[str, str]:
    """The clue selection step for the first query: its top passages cut to the
    sentences that carry the answer, under a token budget. Returns the query and the context kept."""
    from ragkernels import select

    query_id, query = demo.queries.ids[0], demo.queries.texts[0]
    row = {doc: i for i, doc in enumerate(demo.corpus.ids)}
    best = sorted(run[query_id].items(), key=lambda kv: -kv[1])[:top]
    passages = [demo.corpus.texts[row[doc]] for doc, _ in best]
    # Timed: the compress call alone, the model loaded and warm. Most of it is
    # the model embedding the sentences (scorer="hybrid"), so it depends on
    # the machine and its load far more than the compiled selection does.
    start = time.perf_counter()
    ctx = select.compress(query, passages, budget_tokens=budget, tokenizer=encoder.tokenizer, scorer="hybrid",
                          encoder=encoder, mmr_lambda=0.7)
    elapsed = time.perf_counter() - start
    print(f"\ncompressed context for {query_id} ({query!r}), top {top} passages, budget {budget} tokens, "
          f"in {elapsed * 1000:.1f} ms (the rk.select.compress call alone, model already loaded):\n")
    print(ctx.text)
    print(f"\nkept {ctx.kept_tokens} of {ctx.original_tokens} tokens "
          f"({100 * (1 - ctx.kept_tokens / max(ctx.original_tokens, 1)):.0f}% saved), "
          f"{len(ctx.sentences)} sentence{'' if len(ctx.sentences) == 1 else 's'}: "
          + ", ".join(f"[{best[c.passage][0]}:{c.sentence}]" for c in ctx.sentences))
    return query, ctx.text


def _print_answer(query: str, context: str, max_new_tokens: int = 64) -> None:
    """The query answered from the compressed context by SmolLM2-135M-Instruct,
    greedy, plain and with speculative decoding (the drafts copy from the
    context in the prompt): the same answer, and how much faster."""
    from ragkernels import hf, spec
    from ragkernels.hf.smollm2 import load_smollm2

    print("\nanswer from the compressed context, SmolLM2-135M-Instruct, greedy, plain and speculative:\n")
    try:
        with _quiet_transformers():
            model, tokenizer = load_smollm2()
    except ModuleNotFoundError as missing:
        print(f"(skipped: {missing})")
        return
    messages = [{"role": "system", "content": "Answer the question from the context, in one sentence."},
                {"role": "user", "content": f"Context: {context}\n\nQuestion: {query}"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    model.generate(ids, do_sample=False, max_new_tokens=4)  # warm-up: first-call costs are not decoding
    start = time.perf_counter()
    plain = model.generate(ids, do_sample=False, max_new_tokens=max_new_tokens)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    fast = hf.speculative_generate(model, ids, spec.PromptLookupDrafter(), max_new_tokens=max_new_tokens)
    fast_s = time.perf_counter() - start
    new = plain.shape[1] - ids.shape[1]
    print(tokenizer.decode(fast.sequences[0, ids.shape[1]:], skip_special_tokens=True).strip())
    stats = fast.spec_stats
    print(f"\n{new} tokens: plain {plain_s:.2f} s ({new / plain_s:.1f} tokens/s, {new} forwards); speculative "
          f"{fast_s:.2f} s ({new / fast_s:.1f} tokens/s, {stats.forwards} forwards, "
          f"{stats.mean_accepted:.2f} tokens per step); same output: "
          f"{'yes' if fast.sequences.tolist() == plain.tolist() else 'no'}")


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


def build_parser() -> argparse.ArgumentParser:
    """The ``ragkernels`` argument parser (its help is the command's manual)."""
    parser = argparse.ArgumentParser(prog="ragkernels", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ragkernels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    _index_parser(sub)
    _search_parser(sub)
    _eval_parser(sub)
    _demo_parser(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """An error as one line: the file and the reason for an OSError, any
    message's lines joined, long ones cut."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.filename}: {err.strerror}"
    elif isinstance(err, MemoryError):
        text = f"out of memory{': ' + str(err) if str(err) else ''} (a smaller -k or fewer queries per call?)"
    else:
        text = str(err) or type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``ragkernels`` command; return its exit status (0 or 2)."""
    args = build_parser().parse_args(argv)
    commands = {"index": _run_index, "search": _run_search, "eval": _run_eval, "demo": _run_demo}
    try:
        return commands[args.command](args)
    # Caller mistakes (bad files, bad values, a missing extra) are one line;
    # anything else is a bug and keeps its traceback.
    except (OSError, ValueError, TypeError, OverflowError, MemoryError, FormatError, ImportError) as err:
        print(f"ragkernels {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ragkernels {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
