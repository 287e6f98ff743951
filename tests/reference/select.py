"""Plain Python clue selection (issue 7 §2-3): the oracle of ragkernels.select
and the "Python version" bench_select.py times. One query at a time, lists
and floats (float64), loops written out; no numpy tricks."""
import math
import sys


def bm25_ref(query_terms, sentence_terms, k1=1.5, b=0.75, df=None, num_docs=None, avgdl=None):
    """Lucene BM25 of each sentence (a list of term ids) against the query."""
    sentences = [list(s) for s in sentence_terms]
    distinct = sorted({t for t in query_terms if t >= 0})
    if df is None:
        num_docs = float(len(sentences))
        total = 0.0
        for s in sentences:
            total += float(len(s))
        avgdl = total / num_docs if sentences else 0.0
        doc_freq = {t: float(sum(1 for s in sentences if t in s)) for t in distinct}
    else:
        doc_freq = {t: float(df[t]) if t < len(df) else 0.0 for t in distinct}
        if avgdl is None:  # the mean length of the query's sentences
            total = 0.0
            for s in sentences:
                total += float(len(s))
            avgdl = total / len(sentences) if sentences else 0.0
    idf = {t: math.log(1.0 + (num_docs - doc_freq[t] + 0.5) / (doc_freq[t] + 0.5)) for t in distinct}
    scores = []
    for s in sentences:
        dl = float(len(s))
        score = 0.0
        for t in query_terms:
            if t < 0:
                continue
            tf = float(s.count(t))
            if tf == 0:
                continue
            score += idf[t] * tf / (tf + k1 * (1 - b + b * dl / avgdl))
        scores.append(score)
    return scores


def dot_ref(x, y):
    return sum(float(a) * float(b) for a, b in zip(x, y))


def cosine_ref(x, y):
    """Cosine clamped to [-1, 1]; 0 when a vector is zero."""
    nx, ny = math.sqrt(dot_ref(x, x)), math.sqrt(dot_ref(y, y))
    if nx == 0 or ny == 0:
        return 0.0
    return min(1.0, max(-1.0, dot_ref(x, y) / (nx * ny)))


def passage_cosine_ref(query, sentence_embeddings, passages):
    """Cosine of the query with the sum of the embeddings of each sentence's
    passage (the sentences with the same passage id), sums in row order."""
    sums = {}
    for e, p in zip(sentence_embeddings, passages):
        acc = sums.setdefault(int(p), [0.0] * len(e))
        for j, x in enumerate(e):
            acc[j] += float(x)
    value = {}
    for p, acc in sums.items():
        d = qq = ss = 0.0
        for q, x in zip(query, acc):
            d += float(q) * x
            qq += float(q) * float(q)
            ss += x * x
        nq, ns = math.sqrt(qq), math.sqrt(ss)
        value[p] = 0.0 if nq == 0 or ns == 0 else min(1.0, max(-1.0, d / (nq * ns)))
    return [value[int(p)] for p in passages]


def term_cosine_ref(a, b):
    """Cosine of term-frequency vectors (negative ids ignored)."""
    ta, tb = {}, {}
    for t in a:
        if t >= 0:
            ta[t] = ta.get(t, 0) + 1
    for t in b:
        if t >= 0:
            tb[t] = tb.get(t, 0) + 1
    na = math.sqrt(sum(v * v for v in ta.values()))
    nb = math.sqrt(sum(v * v for v in tb.values()))
    if na == 0 or nb == 0:
        return 0.0
    acc = 0.0
    for t in sorted(ta):
        if t in tb:
            acc += float(ta[t]) * float(tb[t])
    return min(1.0, acc / (na * nb))


def position_prior_ref(positions):
    return [1.0 / (1.0 + float(p)) for p in positions]


def combine_ref(columns, weights, normalization="min-max"):
    """Per-query min-max (or max) of each weighted column, weighted mean."""
    n = len(columns[0]) if columns else 0
    out = [0.0] * n
    total = 0.0
    for col, w in zip(columns, weights):
        if not w > 0 or col is None:
            continue
        total += w
        lo, hi = min(col), max(col)
        if normalization == "max":
            if hi > 0:
                for i in range(n):
                    out[i] += w * (col[i] / hi)
            continue
        if hi == lo:
            continue
        for i in range(n):
            out[i] += w * ((col[i] - lo) / (hi - lo))
    if total > 0:
        out = [v / total for v in out]
    return out


def mmr_ref(relevance, sim, lam, k=None, stop_at_nonpositive=False):
    """Eager greedy MMR: (order, gains); sim(i, j) a similarity function.

    Each candidate keeps its max similarity to the picks, updated with the
    newest pick only (O(n) similarities per step)."""
    n = len(relevance)
    k = n if k is None else min(k, n)
    order, gains = [], []
    remaining = list(range(n))
    max_sim = [0.0] * n
    while len(order) < k:
        if order:
            last = order[-1]
            for i in remaining:
                s = sim(i, last)
                max_sim[i] = s if len(order) == 1 else max(max_sim[i], s)
        best, best_score = None, None
        for i in remaining:
            score = lam * relevance[i] - (1 - lam) * max_sim[i]
            if best is None or score > best_score:
                best, best_score = i, score
        if stop_at_nonpositive and not best_score > 0:
            break
        order.append(best)
        gains.append(best_score)
        remaining.remove(best)
    return order, gains


def knapsack_dp_ref(values, tokens, budget):
    """0/1 knapsack by DP over capacities; take an item only on a strict gain."""
    n = len(values)
    budget = min(budget, sum(tokens))
    best = [0.0] * (budget + 1)
    take = [[False] * (budget + 1) for _ in range(n)]
    for it in range(n):
        c = tokens[it]
        for w in range(budget, c - 1, -1):
            cand = best[w - c] + values[it]
            if cand > best[w]:
                best[w] = cand
                take[it][w] = True
    chosen, w = [], budget
    for it in range(n - 1, -1, -1):
        if take[it][w]:
            chosen.append(it)
            w -= tokens[it]
    return sorted(chosen)


def knapsack_greedy_ref(values, tokens, budget):
    """By value per token, higher first (0 tokens first), ties to the lower item."""
    ratio = [math.inf if c == 0 else v / c for v, c in zip(values, tokens)]
    by_ratio = sorted(range(len(values)), key=lambda i: (-ratio[i], i))
    chosen, used = [], 0
    for it in by_ratio:
        if used + tokens[it] <= budget:
            used += tokens[it]
            chosen.append(it)
    return sorted(chosen)


def knapsack_brute_ref(values, tokens, budget):
    """The best total value over all subsets (small n only)."""
    n, best = len(values), 0.0
    for mask in range(1 << n):
        cost = sum(tokens[i] for i in range(n) if mask >> i & 1)
        if cost <= budget:
            best = max(best, sum(values[i] for i in range(n) if mask >> i & 1))
    return best


def truncate_ref(ranked, values, tokens, budget=None, sufficiency=None, order="rank",
                 max_dp_cells=20_000_000):
    """Sufficiency prefix, then knapsack under the budget (see truncate.h)."""
    n = len(ranked)
    total = 0.0
    for v in values:
        total += v
    uniform = not total > 0
    vals = [1.0] * n if uniform else list(values)
    if uniform:
        total = float(n)
    kept = n
    if sufficiency is not None:
        target, cum, kept = sufficiency * total, 0.0, 0
        while kept < n:
            cum += vals[kept]
            kept += 1
            if cum >= target:
                break
    if budget is None:
        ranks = list(range(kept))
    else:
        items = [t for t in range(kept) if vals[t] > 0 and tokens[ranked[t]] <= budget]
        iv = [vals[t] for t in items]
        ic = [tokens[ranked[t]] for t in items]
        capacity = min(budget, sum(ic))
        solve = knapsack_dp_ref if len(items) * (capacity + 1) <= max_dp_cells else knapsack_greedy_ref
        picked = solve(iv, ic, budget)
        used = sum(ic[i] for i in picked)
        for i in range(len(items)):  # room the float sums left (see truncate.h)
            if i not in picked and ic[i] <= budget - used:
                picked.append(i)
                used += ic[i]
        ranks = [items[i] for i in sorted(picked)]
    chosen = [ranked[t] for t in ranks]
    return sorted(chosen) if order == "document" else chosen


def select_clues_ref(query_terms=None, sentence_terms=None, query_embedding=None, sentence_embeddings=None,
                     positions=None, passage_ranks=None, external=None, token_counts=None,
                     weights=(1, 0, 0, 0, 0, 0), normalization="min-max", k1=1.5, b=0.75, df=None, num_docs=None,
                     avgdl=None, mmr_lambda=1.0, max_picks=None, temperature=0.05, similarity="dense", budget=None,
                     sufficiency=None, order="rank", max_dp_cells=20_000_000):
    """The fused pipeline for one query: (relevance, selected)."""
    for arr in (token_counts, sentence_terms, sentence_embeddings, positions, passage_ranks, external):
        if arr is not None:
            n = len(arr)
            break
    if n == 0:
        return [], []
    columns = [None] * 6
    if weights[0] > 0:
        columns[0] = bm25_ref(query_terms, sentence_terms, k1, b, df, num_docs, avgdl)
    if weights[1] > 0:
        columns[1] = [cosine_ref(query_embedding, s) for s in sentence_embeddings]
    if weights[2] > 0:
        columns[2] = position_prior_ref(positions)
    if weights[3] > 0:
        columns[3] = position_prior_ref(passage_ranks)
    if weights[4] > 0:
        columns[4] = [float(x) for x in external]
    if weights[5] > 0:
        columns[5] = passage_cosine_ref(query_embedding, sentence_embeddings, passage_ranks)
    rel = combine_ref([c if c is not None else [0.0] * n for c in columns],
                      [w if c is not None else 0 for w, c in zip(weights, columns)], normalization)
    if similarity == "dense":
        norms = [math.sqrt(dot_ref(e, e)) for e in sentence_embeddings]

        def sim(i, j):
            if norms[i] == 0 or norms[j] == 0:
                return 0.0
            c = dot_ref(sentence_embeddings[i], sentence_embeddings[j]) / (norms[i] * norms[j])
            return min(1.0, max(-1.0, c))
    else:
        def sim(i, j):
            return term_cosine_ref(sentence_terms[i], sentence_terms[j])
    # Picks until the first gain <= 0 (no later gain would be positive).
    ranked, values = mmr_ref(rel, sim, mmr_lambda, max_picks, stop_at_nonpositive=True)
    if not ranked:
        ranked = mmr_ref(rel, sim, mmr_lambda, max_picks)[0]
        values = [0.0] * len(ranked)
    elif temperature is not None:
        best = max(values)
        values = [max(math.exp((v / best - 1) / temperature), sys.float_info.min) for v in values]
    tokens = list(token_counts) if token_counts is not None else [0] * n
    return rel, truncate_ref(ranked, values, tokens, budget, sufficiency, order, max_dp_cells)
