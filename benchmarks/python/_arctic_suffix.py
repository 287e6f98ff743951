"""arctic-inference's SuffixDecoding cache as a timed peer for bench_spec.py.

arctic-inference is not a dependency: ``bash benchmarks/python/build_arctic_suffix.sh``
downloads its sdist and builds only ``arctic_inference.suffix_decoding._C`` into a
cache folder outside the repository (default
``~/.cache/ragkernels/arctic-suffix/site-<version>-py<X.Y>``; ``ARCTIC_SUFFIX_SITE``
names another). This module puts that folder on ``sys.path`` when asked to, so it
imports whether or not arctic is built; :func:`load` raises :class:`ArcticNotBuilt`
when it is not.

How arctic's own code drives the cache (arctic-inference 0.3.0,
``arctic_inference/vllm/model_runner.py`` and ``suffix_decoding/simulator.py``)::

    cache = SuffixDecodingCache(max_tree_depth=64, max_cached_requests=100000)
    cache.start_request(req_id, prompt_token_ids)     # per-request tree over the prompt
    cache.add_active_response(req_id, sampled_ids)    # every step: local tree + global tree
    draft = cache.speculate(req_id, pattern,          # pattern: last max_tree_depth tokens
                            max_spec_tokens=min(128, room),      # vLLM's MAX_SPEC_LEN
                            max_spec_factor=1.0, max_spec_offset=0.0,
                            min_token_prob=0.1)       # use_tree_spec=False (its default)
    cache.stop_request(req_id)                        # drops the prompt tree, keeps the response
    cache.evict_cached_response(req_id)               # FIFO beyond max_cached_requests

``speculate`` runs the native ``SuffixTree.speculate`` twice, on the request's own
tree (prompt + its response so far) and on the global tree of all cached responses,
and keeps the draft with the higher score (sum of the path/tree probabilities). The
native call tries every match length 1 .. len(context) - 1 of the context's suffix
and drafts at most ``min(max_spec_tokens, max_spec_factor * match_len +
max_spec_offset)`` tokens from each, so one call costs O(depth^2) in the worst case.
"""
from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ARCTIC_VERSION = os.environ.get("ARCTIC_VERSION", "0.3.0")
BUILD_SCRIPT = "benchmarks/python/build_arctic_suffix.sh"


class ArcticNotBuilt(ImportError):
    """arctic-inference's SuffixDecoding extension is not built (or not importable)."""


def default_site() -> Path:
    """The folder build_arctic_suffix.sh prints for this Python (it may not exist)."""
    env = os.environ.get("ARCTIC_SUFFIX_SITE")
    if env:
        return Path(env)
    cache = os.environ.get("ARCTIC_SUFFIX_CACHE")
    if cache:
        root = Path(cache)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "ragkernels" / "arctic-suffix"
    return root / f"site-{ARCTIC_VERSION}-py{sys.version_info[0]}.{sys.version_info[1]}"


def load(site: Optional[os.PathLike] = None):
    """Import arctic's suffix decoding: returns (SuffixDecodingCache, SuffixTree, where).

    ``SuffixDecodingCache`` is arctic's Python wrapper (``suffix_decoding/cache.py``,
    numpy only, no vLLM or torch); ``SuffixTree`` is the nanobind class under it.
    """
    path = Path(site) if site is not None else default_site()
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))
    try:
        from arctic_inference.suffix_decoding import SuffixDecodingCache
        from arctic_inference.suffix_decoding._C import SuffixTree
    except ImportError as e:  # not built, or built for another Python
        raise ArcticNotBuilt(
            f"arctic-inference's SuffixDecoding module is not importable from {path} "
            f"({e}); run `bash {BUILD_SCRIPT}` (it builds arctic-inference "
            f"{ARCTIC_VERSION}'s csrc/suffix_decoding outside the repository and prints "
            f"the folder), or set ARCTIC_SUFFIX_SITE to the folder it printed") from e
    import arctic_inference
    return SuffixDecodingCache, SuffixTree, str(Path(arctic_inference.__file__).parent.parent)


def available(site: Optional[os.PathLike] = None) -> bool:
    try:
        load(site)
        return True
    except ArcticNotBuilt:
        return False


Query = Tuple  # (prompt_index, context_tail) or (prompt_index, context_tail, append_first)


def time_speculate(prompts: Sequence[Sequence[int]],
                   responses: Sequence[Sequence[int]],
                   queries: Sequence[Query],
                   *,
                   max_tree_depth: int = 64,
                   max_spec_tokens: Optional[int] = None,
                   max_spec_factor: float = 1.0,
                   max_spec_offset: float = 0.0,
                   min_token_prob: float = 0.1,
                   use_tree_spec: bool = False,
                   max_cached_requests: int = -1,
                   mode: str = "wrapper",
                   context_type: str = "list",
                   repeat: int = 1,
                   warmup: int = 1,
                   site: Optional[os.PathLike] = None) -> Dict[str, object]:
    """Time arctic's speculate call on each query; perf_counter_ns around the call only.

    Setup (untimed): every earlier response goes into the global tree the way arctic
    caches a finished request (``start_request(id, [])``, ``add_active_response(id,
    response)``, ``stop_request(id)``); then every prompt is started as an active
    request (``start_request(("prompt", i), prompt)``), so a query on prompt i sees
    that prompt's tree plus all earlier responses.

    queries: ``(prompt_index, context_tail)``, or ``(prompt_index, context_tail,
    append)`` where the tokens ``append`` are first added with ``add_active_response``
    (untimed), as arctic does with each step's accepted tokens. The tail is cut to its
    last ``max_tree_depth`` tokens and converted (``context_type`` "list", as vLLM
    passes it, or "ndarray": int32, arctic's zero-copy overload) before timing;
    arctic's own wrapper would cut it to the same length.

    mode: "wrapper" times ``SuffixDecodingCache.speculate`` (two native speculate
    calls, the score comparison and the conversion of the draft to Python lists);
    "native" times the two ``_C.SuffixTree.speculate`` calls and the same comparison,
    reading the trees out of the same cache (no Python dataclass built).

    max_spec_tokens: None means ``max_tree_depth`` (what arctic's simulator does; its
    wrapper's own None default is broken in 0.3.0: it reads a missing ``max_depth``).

    Returns median/p99/mean microseconds per call over all ``repeat`` x len(queries)
    timed calls (``warmup`` untimed calls per query first; the GC is off while timing),
    and per query the drafted tokens, their parents (a chain is 0..n-2 after -1), the
    match length and the score of the first call.
    """
    if mode not in ("wrapper", "native"):
        raise ValueError("mode must be 'wrapper' or 'native'")
    if context_type not in ("list", "ndarray"):
        raise ValueError("context_type must be 'list' or 'ndarray'")
    SuffixDecodingCache, SuffixTree, where = load(site)
    import numpy as np

    spec_tokens = int(max_tree_depth if max_spec_tokens is None else max_spec_tokens)
    t0 = time.perf_counter()
    cache = SuffixDecodingCache(max_tree_depth=max_tree_depth,
                                max_cached_requests=max_cached_requests)
    for j, resp in enumerate(responses):
        rid = ("response", j)
        cache.start_request(rid, [])
        cache.add_active_response(rid, [int(t) for t in resp])
        cache.stop_request(rid)
    for i, prompt in enumerate(prompts):
        cache.start_request(("prompt", i), [int(t) for t in prompt])
    setup_s = time.perf_counter() - t0

    def convert(ctx):
        ctx = [int(t) for t in ctx][-max_tree_depth:]
        return np.asarray(ctx, dtype=np.int32) if context_type == "ndarray" else ctx

    if mode == "wrapper":
        spec = cache.speculate
        def call(rid, ctx):
            return spec(rid, ctx, spec_tokens, max_spec_factor, max_spec_offset,
                        min_token_prob, use_tree_spec)
    else:
        native = SuffixTree.speculate_ndarray if context_type == "ndarray" else SuffixTree.speculate
        global_tree = cache._global_tree
        local_trees = cache._local_trees
        def call(rid, ctx):
            d1 = native(local_trees[rid], ctx, spec_tokens, max_spec_factor,
                        max_spec_offset, min_token_prob, use_tree_spec)
            d2 = native(global_tree, ctx, spec_tokens, max_spec_factor,
                        max_spec_offset, min_token_prob, use_tree_spec)
            return d1 if d1.score >= d2.score else d2

    times_ns: List[int] = []
    drafts: List[List[int]] = []
    parents: List[List[int]] = []
    match_lens: List[int] = []
    scores: List[float] = []
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for q in queries:
            rid = ("prompt", int(q[0]))
            if len(q) > 2 and len(q[2]):
                cache.add_active_response(rid, [int(t) for t in q[2]])
            ctx = convert(q[1])
            for _ in range(warmup):
                call(rid, ctx)
            first = None
            for _ in range(max(1, repeat)):
                t = clock()
                d = call(rid, ctx)
                times_ns.append(clock() - t)
                if first is None:
                    first = d
            drafts.append(list(first.token_ids))
            parents.append(list(first.parents))
            match_lens.append(int(first.match_len))
            scores.append(float(first.score))
    finally:
        if gc_was_enabled:
            gc.enable()

    us = sorted(t / 1e3 for t in times_ns)
    p99 = us[min(len(us) - 1, int(round(0.99 * (len(us) - 1))))] if us else float("nan")
    return {
        "mode": ("wrapper: arctic_inference.suffix_decoding.SuffixDecodingCache.speculate"
                 if mode == "wrapper" else
                 "native: arctic_inference.suffix_decoding._C.SuffixTree.speculate"
                 " (request tree + global tree)"),
        "arctic_version": ARCTIC_VERSION,
        "site": where,
        "params": dict(max_tree_depth=max_tree_depth, max_spec_tokens=spec_tokens,
                       max_spec_factor=max_spec_factor, max_spec_offset=max_spec_offset,
                       min_token_prob=min_token_prob, use_tree_spec=use_tree_spec,
                       max_cached_requests=max_cached_requests, context_type=context_type,
                       repeat=repeat, warmup=warmup),
        "setup_s": setup_s,
        "calls": len(us),
        "median_us": statistics.median(us) if us else float("nan"),
        "p99_us": p99,
        "mean_us": statistics.fmean(us) if us else float("nan"),
        "times_us": [t / 1e3 for t in times_ns],
        "drafts": drafts,
        "parents": parents,
        "match_len": match_lens,
        "score": scores,
    }


def synthetic_case(prompt_len: int = 4096, n_responses: int = 50, response_len: int = 200,
                   vocab: int = 49152, n_queries: int = 500, tail: int = 256,
                   span: Tuple[int, int] = (8, 64), copy_frac: float = 0.5, seed: int = 0):
    """A prompt of random tokens with repeated spans, earlier responses that copy spans
    of it (and of each other), and queries whose context tails end in such copies.

    Returns (prompts, responses, queries) for :func:`time_speculate`.
    """
    import random
    rng = random.Random(seed)

    def seq(n: int, sources: List[List[int]], self_copy: bool = False) -> List[int]:
        out: List[int] = []
        while len(out) < n:
            pool = sources + ([out] if self_copy and len(out) > span[1] else [])
            if pool and rng.random() < copy_frac:
                src = rng.choice(pool)
                k = rng.randint(*span)
                s = rng.randrange(max(1, len(src) - k))
                out.extend(src[s:s + k])
            else:
                out.extend(rng.randrange(vocab) for _ in range(rng.randint(*span)))
        return out[:n]

    prompt = seq(prompt_len, [], self_copy=True)  # spans repeated within the prompt
    responses: List[List[int]] = []
    for _ in range(n_responses):
        responses.append(seq(response_len, [prompt] + responses[-5:]))
    queries = []
    for _ in range(n_queries):
        gen = seq(rng.randint(1, tail), [prompt] + responses)
        queries.append((0, (prompt + gen)[-tail:]))
    return [prompt], responses, queries


if __name__ == "__main__":  # python benchmarks/python/_arctic_suffix.py
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--depth", type=int, default=64)
    ap.add_argument("--tree", action="store_true")
    args = ap.parse_args()
    prompts, responses, queries = synthetic_case(n_queries=args.queries)
    for mode in ("wrapper", "native"):
        for ctype in ("list", "ndarray"):
            r = time_speculate(prompts, responses, queries, max_tree_depth=args.depth,
                               use_tree_spec=args.tree, mode=mode, context_type=ctype,
                               repeat=args.repeat)
            n = [len(d) for d in r["drafts"]]
            print(f"{mode:8s} {ctype:8s} median {r['median_us']:7.2f} us  p99 {r['p99_us']:7.2f} us"
                  f"  mean {r['mean_us']:7.2f} us  | setup {r['setup_s'] * 1e3:.0f} ms,"
                  f" mean draft {statistics.fmean(n):.1f} tok,"
                  f" mean match {statistics.fmean(r['match_len']):.1f}")
