"""The ``ragkernels`` command.

``ragkernels eval QRELS RUN`` prints what trec_eval prints (``-q``, ``-c``,
``-l``, ``-M``, ``-J``, ``-m`` spelled as trec_eval spells them, e.g.
``-m ndcg_cut.10 -l2 -M100``), or JSON with ``--json``. ``ragkernels demo``
runs the main job on the small corpus shipped inside the package.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from ragkernels import __version__, metrics
from ragkernels._core import FormatError


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


def _run_demo(args: argparse.Namespace) -> int:
    from ragkernels import data

    demo = data.demo_path()
    print(f"ragkernels {__version__}: evaluating the shipped demo run {demo / 'run.bm25.trec'}")
    print(f"against {demo / 'qrels' / 'test.tsv'}\n")
    result = metrics.evaluate(demo / "qrels" / "test.tsv", demo / "run.bm25.trec",
                              ["ndcg_cut.10", "recall.10,20", "map", "recip_rank", "P.5"])
    sys.stdout.write(result.to_trec_eval(per_query=args.per_query))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ragkernels", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ragkernels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _eval_parser(sub)
    demo = sub.add_parser("demo", help="run the main job on the demo corpus shipped in the package")
    demo.add_argument("-q", dest="per_query", action="store_true", help="also print per-query values")
    args = parser.parse_args(argv)
    try:
        return {"eval": _run_eval, "demo": _run_demo}[args.command](args)
    except (OSError, ValueError, TypeError, FormatError) as err:
        print(f"ragkernels {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
