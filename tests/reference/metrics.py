"""NIST trec_eval 10.0 in plain Python: slow, obvious, float64.

The oracle for ``ragkernels.metrics``. Semantics (and the order of float
operations, so values agree to ~1e-12) follow usnistgov/trec_eval 10.0:
form_res_rels.c for the ranking, m_<name>.c for each measure, meas_*.c
for averaging, and trec_eval's printf formats for ``format_trec_eval``.

Ranking: score descending, ties by docno descending (strcmp, trec_eval's
comp_sim_docno). A retrieved doc absent from the qrels is NONPOOL (-1); one
judged < 0 is UNJUDGED (-2). ``rel >= relevance_level`` is relevant.
Queries: those in the qrels (sorted by qid) that also have results, or every
qrels query when ``all_queries`` (trec_eval -c; a missing one gets
trec_eval's one-doc bogus ranking). Summary: the mean over those queries,
except num_* (sums), num_q (count), gm_* (geometric mean), runid.

Known trec_eval quirks kept on purpose: ndcg_cut uses raw judgments as
gains; Rprec_mult still rounds with (long)(x + 0.9) while iprec_at_recall
and 11pt_avg use lround (v10); gain levels are ordered by a comparator
that truncates gain differences to int; rbp normalises gains to [0, 1]
when any lies outside (its C min/max are uninitialised; the real min/max
reproduce the NIST expected outputs). Not provided: prefs/qrels_jg
measures, -N (utility uses N = 0), -Z.
"""
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cmp_to_key

NONPOOL = -1
UNJUDGED = -2
MIN_GEO_MEAN = 1e-5
INFAP_EPSILON = 1e-5
BOGUS_DOC = "ceci_nest_pas_un_docno"  # trec_eval -c's stand-in ranking

# ---------------------------------------------------------------- input --

_FLOAT = re.compile(r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
                    r"|inf(?:inity)?|nan)", re.I)
_INT = re.compile(r"\s*[+-]?\d+")


def _atof(text):
    """C atof: the longest numeric prefix, 0.0 if none."""
    m = _FLOAT.match(text)
    return float(m.group()) if m else 0.0


def _atol(text):
    """C atol: the longest integer prefix, 0 if none."""
    m = _INT.match(text)
    return int(m.group()) if m else 0


def _content_lines(path):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip() and not line.startswith("#"):
                yield lineno, line.split()


def _insert(table, qid, docno, value, path, lineno):
    q = table.setdefault(qid, {})
    if docno in q:
        raise ValueError(f"{path}:{lineno}: duplicate docno {docno!r} "
                         f"for query {qid!r}")
    q[docno] = value


def read_qrels(path):
    """Read TREC ``qid iter docno rel`` or BEIR ``query-id corpus-id score``.

    Returns {qid: {docno: rel}}; a repeated (qid, docno) is a ValueError.
    """
    qrels = {}
    for lineno, fields in _content_lines(path):
        if lineno == 1 and fields[:2] == ["query-id", "corpus-id"]:
            continue  # BEIR TSV header
        if len(fields) == 3:  # BEIR row
            qid, docno, rel = fields
        elif len(fields) == 4:
            qid, _, docno, rel = fields
        else:
            raise ValueError(f"{path}:{lineno}: expected 4 fields (TREC) or "
                             f"3 (BEIR), got {len(fields)}")
        _insert(qrels, qid, docno, _atol(rel), path, lineno)
    return qrels


def read_run(path):
    """Read TREC ``qid Q0 docno rank score tag`` lines (rank is ignored).

    Returns ({qid: {docno: score}}, runid). As in trec_eval the runid is
    the tag of the *last* line (files normally use one tag throughout).
    """
    run, runid = {}, ""
    for lineno, fields in _content_lines(path):
        if len(fields) < 6:
            raise ValueError(f"{path}:{lineno}: expected 6 fields, "
                             f"got {len(fields)}")
        qid, _, docno, _, score, runid = fields[:6]
        _insert(run, qid, docno, _atof(score), path, lineno)
    return run, runid


# -------------------------------------------------------------- ranking --

@dataclass
class Ranking:
    """One query, as trec_eval's RES_RELS sees it."""
    rels: list        # judgment of each retrieved doc, best first
    rel_levels: list  # rel_levels[g] = number of qrels judged g >= 0
    level: int        # relevance_level
    qrels: dict       # the raw judgments, for judged.k
    run: dict         # the docs kept after max_docs / judged_only, for judged.k

    @property
    def num_ret(self):
        return len(self.rels)

    @property
    def num_rel(self):
        return sum(self.rel_levels[self.level:] if self.level > 0
                   else self.rel_levels)

    @property
    def num_rel_ret(self):
        return sum(1 for r in self.rels if r >= 0 and r >= self.level)

    def hits(self, k):
        """Relevant docs among the first k retrieved."""
        return sum(1 for r in self.rels[:k] if r >= self.level)


def rank(qrels_q, run_q, level=1, judged_only=False, max_docs=None):
    """Sort, truncate to max_docs, then (judged_only) drop unjudged docs."""
    ordered = sorted(run_q.items(), key=lambda t: (t[1], t[0]), reverse=True)
    rels, kept = [], {}
    for docno, score in ordered[:None if max_docs is None else max(max_docs, 0)]:
        rel = qrels_q.get(docno, NONPOOL)
        rel = rel if docno not in qrels_q or rel >= 0 else UNJUDGED
        if judged_only and rel < 0:
            continue
        rels.append(rel)
        kept[docno] = score
    counts = Counter(r for r in qrels_q.values() if r >= 0)
    rel_levels = [counts[g] for g in range(max(counts, default=-1) + 1)]
    return Ranking(rels, rel_levels, level, qrels_q, kept)


def _div(a, b):
    """a / b with C's IEEE result (nan, +-inf) for b == 0."""
    if b:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _ordered_sum(values):
    """Left-to-right float sum, as C accumulates (sum() may compensate)."""
    total = 0.0
    for v in values:
        total += v
    return total


def _log(x):
    """C log: -inf at 0, nan below."""
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _lround(x):
    """C lround: nearest integer, halves away from zero."""
    f = math.floor(abs(x))
    return int(math.copysign(f + (abs(x) - f >= 0.5), x))


def _prec_sum(rk, k=None):
    """Sum of precision at each relevant doc within the first k."""
    total, hits = 0.0, 0
    for i, r in enumerate(rk.rels[:k]):
        if r >= rk.level:
            hits += 1
            total += hits / (i + 1)
    return total


def _dcg_prefix(gains):
    """out[k] = sum_{i<k, g_i != 0} g_i / log2(i + 2), summed in order."""
    out, total = [0.0], 0.0
    for i, g in enumerate(gains):
        if g != 0:
            total += g / math.log2(i + 2.0)
        out.append(total)
    return out


def _gain_table(rk, pairs):
    """trec_eval setup_gains: [level, gain, count] sorted by gain.

    Gain = level unless a ``level=gain`` pair overrides it. The sort
    comparator is trec_eval's (int)(g1 - g2), kept for parity.
    """
    table = [[int(n), g, 0] for n, g in pairs or ()
             if re.fullmatch(r"[+-]?\d+", n)]
    for level, count in enumerate(rk.rel_levels):
        row = next((t for t in table if t[0] == level), None)
        if row:
            row[2] = count
        else:
            table.append([level, float(level), count])
    return sorted(table, key=cmp_to_key(lambda a, b: int(a[1] - b[1])))


def _gain(table, rel):
    return next((g for level, g, _ in table if level == rel), 0.0)


def _ideal_gains(table):
    """Positive gains best first: the ideal ranking's gain sequence."""
    out = []
    for _, gain, count in reversed(table):
        if count and gain <= 0:
            break
        out += [gain] * count
    return out


# ------------------------------------------------------------- measures --
# Each takes (Ranking, params); cutoff measures return one value per cutoff.

def num_q(rk, _):
    """Queries averaged over: 1 per query."""
    return 1


def num_ret(rk, _):
    """Retrieved docs (after max_docs / judged_only)."""
    return rk.num_ret


def num_rel(rk, _):
    """Judged docs with rel >= relevance_level."""
    return rk.num_rel


def num_rel_ret(rk, _):
    """Relevant retrieved docs."""
    return rk.num_rel_ret


def map_(rk, _):
    """AP = sum_{rel d} P@rank(d) / R  (Buckley & Voorhees 2005)."""
    hits = rk.hits(None)
    return _prec_sum(rk) / rk.num_rel if hits else 0.0


def gm_map(rk, _):
    """log(max(AP, 1e-5)); the summary is exp(mean), a geometric mean."""
    return math.log(max(map_(rk, None), MIN_GEO_MEAN))


def rprec(rk, _):
    """P@R: relevant among the first R retrieved / R."""
    n = min(rk.num_ret, rk.num_rel)
    return rk.hits(n) / rk.num_rel if n else 0.0


def bpref(rk, _):
    """sum_{rel d} (1 - min(#nonrel above d, R) / min(N, R)) / R.

    Unjudged docs are skipped; N = judged nonrelevant (Buckley & Voorhees,
    SIGIR 2004).
    """
    big_r = rk.num_rel
    big_n = sum(rk.rel_levels[:max(rk.level, 0)])
    total, nonrel = 0.0, 0
    for r in rk.rels:
        if r in (NONPOOL, UNJUDGED):
            continue
        if 0 <= r < rk.level:
            nonrel += 1
        elif nonrel:
            total += 1.0 - min(nonrel, big_r) / min(big_n, big_r)
        else:
            total += 1.0
    return total / big_r if big_r else total


def recip_rank(rk, _):
    """1 / rank of the first relevant doc, 0 if none."""
    first = next((i for i, r in enumerate(rk.rels) if r >= rk.level), None)
    return 0.0 if first is None else 1.0 / (first + 1)


def _iprec(rk, cut):
    """Interpolated precision at `cut` relevant docs: max P@j over ranks
    j >= rank of the cut-th relevant doc (0 if fewer retrieved)."""
    precs, rel_ranks, hits = [], [], 0
    for j, r in enumerate(rk.rels, 1):
        if r >= rk.level:
            hits += 1
            rel_ranks.append(j)
        precs.append(hits / j)
    if cut > len(rel_ranks):
        return 0.0
    if not rel_ranks:
        return _div(0.0, rk.num_ret)
    return max(precs[rel_ranks[max(cut, 1) - 1] - 1:])


def iprec_at_recall(rk, recalls):
    """Interpolated precision at recall r: _iprec(lround(r * R))."""
    return [_iprec(rk, _lround(p * rk.num_rel)) for p in recalls]


def precision(rk, cutoffs):
    """P@k = relevant in the first k / k (missing docs count nonrelevant)."""
    return [rk.hits(k) / k for k in cutoffs]


def relstring(rk, params):
    """First N judgments as text: 0-9, '>' above 9, '-' nonpool,
    '.' unjudged, '<' other negatives."""
    def char(r):
        if r > 9:
            return ">"
        if r >= 0:
            return str(r)
        return {NONPOOL: "-", UNJUDGED: "."}.get(r, "<")
    return "".join(char(r) for r in rk.rels[:max(int(params[0]), 0)])


def recall(rk, cutoffs):
    """R@k = relevant in the first k / R (0 when R = 0)."""
    big_r = rk.num_rel
    return [rk.hits(k) / big_r if big_r else 0.0 for k in cutoffs]


def inf_ap(rk, _):
    """infAP (Yilmaz & Aslam, CIKM 2006): at relevant rank k > 1 add
    1/k + ((k-1)/k) * (judged+unj above)/(k-1) * (rel+eps)/(rel+non+2eps)."""
    total, rel, nonrel, pooled = 0.0, 0, 0, 0
    for j, r in enumerate(rk.rels):
        if r == NONPOOL:
            continue
        if r == UNJUDGED:
            pooled += 1
        elif 0 <= r < rk.level:
            nonrel += 1
        else:
            rel += 1
            if j == 0:
                total += 1.0
            else:
                fj = float(j)
                total += (1.0 / (fj + 1.0) + (fj / (fj + 1.0))
                          * ((rel - 1 + nonrel + pooled) / fj)
                          * ((rel - 1 + INFAP_EPSILON)
                             / (rel - 1 + nonrel + 2 * INFAP_EPSILON)))
    return total / rk.num_rel if rk.num_rel else total


def gm_bpref(rk, _):
    """log(max(bpref, 1e-5)); summary is the geometric mean."""
    return math.log(max(bpref(rk, None), MIN_GEO_MEAN))


def rprec_mult(rk, mults):
    """P@(m * R), the cutoff rounded as (long)(m * R + 0.9)."""
    out = []
    for m in mults:
        k = int(m * rk.num_rel + 0.9)
        out.append(rk.hits(min(k, rk.num_ret)) / k if k > 0 else 0.0)
    return out


def utility(rk, p):
    """p1 * relret + p2 * nonrelret + p3 * relnotret + p4 * rest (N = 0)."""
    if len(p) != 4:
        raise ValueError(f"utility: needs 4 coefficients, got {len(p)}")
    ret, rel, relret = rk.num_ret, rk.num_rel, rk.num_rel_ret
    return (p[0] * relret + p[1] * (ret - relret) + p[2] * (rel - relret)
            + p[3] * (0 + relret - ret - rel))


def pt11_avg(rk, recalls):
    """Mean of interpolated precision at the given recall points."""
    if list(recalls) != sorted(recalls):
        raise ValueError("11pt_avg: recall points must be ascending")
    total = 0.0
    for p in reversed(recalls):  # trec_eval sums from the last point
        cut = _lround(p * rk.num_rel)
        if cut <= rk.num_rel_ret:
            total += _iprec(rk, cut)
    return total / len(recalls)


def bin_g(rk, _):
    """binG = sum_{rel d} 1 / log2(2 + nonrel above d) / R."""
    total, hits = 0.0, 0
    for i, r in enumerate(rk.rels):
        if r >= rk.level:
            hits += 1
            total += 1.0 / math.log2(float(3 + i - hits))
    return total / rk.num_rel if hits else 0.0


def g_measure(rk, pairs):
    """G: sum gain(d_i) / log2(2 + cost_i - gained_i) / ideal total gain.

    cost_i sums max(ideal gain at j, 1) for j <= i; gained_i sums actual
    gains (Buckley's experimental measure, trec_eval m_G.c).
    """
    table = _gain_table(rk, pairs)
    ideal = _ideal_gains(table)
    total, cost, gained = 0.0, 0.0, 0.0
    for i, r in enumerate(rk.rels):
        g = _gain(table, r)
        gained += g
        cost += ideal[i] if i < len(ideal) and ideal[i] >= 1.0 else 1.0
        if g != 0:
            total += g / math.log2(2 + cost - gained)
    sum_ideal = _ordered_sum(ideal)
    return total / sum_ideal if sum_ideal > 0.0 else 0.0


def _dcgs(rk, pairs):
    table = _gain_table(rk, pairs)
    gains = [_gain(table, r) for r in rk.rels]
    return _dcg_prefix(gains), _dcg_prefix(_ideal_gains(table)), gains


def dcg(rk, pairs):
    """DCG = sum gain_i / log2(i + 1), 1-based ranks."""
    return _dcgs(rk, pairs)[0][-1]


def ideal_dcg(rk, pairs):
    """DCG of the ideal ranking built from the judgments."""
    return _dcgs(rk, pairs)[1][-1]


def ndcg(rk, pairs):
    """DCG / ideal DCG over the full ranking (Jarvelin & Kekalainen 2002)."""
    rdcg, idcg, _ = _dcgs(rk, pairs)
    return rdcg[-1] / idcg[-1] if idcg[-1] > 0.0 else 0.0


def ndcg_rel(rk, pairs):
    """nDCG averaged at each positive-gain doc; an unretrieved one counts
    DCG(end) / IDCG(all)."""
    rdcg, idcg, gains = _dcgs(rk, pairs)
    n_ideal = len(idcg) - 1
    total, found = 0.0, 0
    for i, g in enumerate(gains):
        if g > 0:
            total += _div(rdcg[i + 1], idcg[min(i + 1, n_ideal)])
            found += 1
    total += _div(float(n_ideal - found) * rdcg[-1], idcg[-1])
    return _div(total, n_ideal) if total > 0.0 else 0.0


def rndcg(rk, pairs):
    """Mean nDCG@k over the R-level boundaries k where the ideal gain
    changes (and at num_ret if it lies beyond all of them)."""
    if rk.num_rel == 0:
        return 0.0
    rdcg, idcg, _ = _dcgs(rk, pairs)
    ideal = _ideal_gains(_gain_table(rk, pairs))
    n, n_ret = len(ideal), rk.num_ret
    ks = [k for k in range(1, n + 1) if k == n or ideal[k] != ideal[k - 1]]
    vals = [rdcg[min(k, n_ret)] / idcg[k] for k in ks]
    if n and n + 1 < n_ret:  # trec_eval's extra point at num_ret
        vals.append(rdcg[-1] / idcg[-1])
    return _div(_ordered_sum(vals), len(vals))


def ndcg_cut(rk, cutoffs):
    """nDCG@k with gain = raw judgment; ideal from all judgments > 0."""
    ideal = [float(g) for g in range(len(rk.rel_levels) - 1, 0, -1)
             for _ in range(rk.rel_levels[g])]
    rdcg = _dcg_prefix([float(r) if r > 0 else 0.0 for r in rk.rels])
    idcg = _dcg_prefix(ideal)
    out = []
    for k in cutoffs:
        num, den = rdcg[min(k, rk.num_ret)], idcg[min(k, len(ideal))]
        out.append(num / den if den > 0.0 else num)
    return out


def map_cut(rk, cutoffs):
    """AP@k: precision sum at relevant docs within the first k / R."""
    big_r = rk.num_rel
    return [_prec_sum(rk, k) / big_r if big_r else 0.0 for k in cutoffs]


def relative_p(rk, cutoffs):
    """relevant in the first k / min(k, R)."""
    big_r = rk.num_rel
    return [rk.hits(k) / min(k, big_r) if big_r else 0.0 for k in cutoffs]


def success(rk, cutoffs):
    """1 if a relevant doc is in the first k."""
    return [1.0 if rk.hits(k) else 0.0 for k in cutoffs]


def set_p(rk, _):
    """relret / ret."""
    return rk.num_rel_ret / rk.num_ret if rk.num_ret else 0.0


def set_relative_p(rk, _):
    """relret / min(ret, R)."""
    ok = rk.num_ret and rk.num_rel
    return rk.num_rel_ret / min(rk.num_ret, rk.num_rel) if ok else 0.0


def set_recall(rk, _):
    """relret / R."""
    return rk.num_rel_ret / rk.num_rel if rk.num_rel else 0.0


def set_map(rk, _):
    """relret**2 / (ret * R)."""
    relret, ok = float(rk.num_rel_ret), rk.num_ret and rk.num_rel
    return relret * relret / (float(rk.num_ret) * rk.num_rel) if ok else 0.0


def set_f(rk, params):
    """(x + 1) P R / (x P + R), van Rijsbergen's F with x = params[0]."""
    if not rk.num_rel_ret:
        return 0.0
    p = rk.num_rel_ret / rk.num_ret
    r = rk.num_rel_ret / rk.num_rel
    x = params[0]
    return (x + 1.0) * p * r / (x * p + r)


def num_nonrel_judged_ret(rk, _):
    """Retrieved docs judged nonrelevant."""
    judged = sum(1 for r in rk.rels if r not in (NONPOOL, UNJUDGED))
    return judged - rk.num_rel_ret


def yaap(rk, _):
    """log((1 + S) / (1 + R - S)), S = AP's precision sum (Robertson 2012)."""
    s = _prec_sum(rk)
    return _log((1.0 + s) / (1.0 + rk.num_rel - s))


def _persistence(pairs):
    return next((v for n, v in reversed(pairs or ()) if n == "p"), 0.9)


def rbp(rk, pairs):
    """(1 - p) sum_i gain_i p^(i-1), gains rescaled to [0, 1] if needed
    (Moffat & Zobel, TOIS 2008); p = 0.9 unless ``p=`` is given."""
    p, table = _persistence(pairs), _gain_table(rk, pairs)
    lo, hi = min(t[1] for t in table), max(t[1] for t in table)
    if lo < 0 or hi > 1:
        for t in table:
            t[1] = (t[1] - lo) / (hi - lo)
    total, weight = 0.0, 1.0
    for r in rk.rels:
        g = _gain(table, r)
        if g != 0:
            total += g * weight
        weight *= p
    return (1.0 - p) * total


def rbp_resid(rk, pairs):
    """RBP's residual: p^n + (1 - p) sum_{unjudged i} p^(i-1)."""
    p, total, weight, unjudged = _persistence(pairs), 0.0, 1.0, 0
    for r in rk.rels:
        if r < 0:
            unjudged += 1
            total += weight
        weight *= p
    return weight + (1 - p) * total if unjudged else 0.0


def unj(rk, cutoffs):
    """Unjudged (nonpool or pooled-unjudged) in the first k / k."""
    return [sum(1 for r in rk.rels[:k] if r in (NONPOOL, UNJUDGED)) / k
            for k in cutoffs]


def judged(rk, cutoffs):
    """ir_measures Judged@k: docs in the qrels among the first k / min(k, n).

    Orders the docs that -M/-J keep by (-score, docno ascending), as
    ir_measures orders a run (not trec_eval's tie rule).
    """
    docs = [d for d, _ in sorted(rk.run.items(), key=lambda t: (-t[1], t[0]))]
    out = []
    for k in cutoffs or [len(docs)]:
        top = docs[:k]
        out.append(_div(sum(d in rk.qrels for d in top), min(k, len(top))))
    return out


# ------------------------------------------------------------- registry --

@dataclass(frozen=True)
class Spec:
    name: str
    calc: object
    kind: str = "none"   # none | long_cuts | double_cuts | doubles | pairs
    default: tuple = ()
    summary: str = "mean"  # mean | sum | gm | count | num_rel | runid | none


_CUTS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
_RECALLS = tuple(i / 10 for i in range(11))
# trec_eval's measures.c order, which is also the output order.
SPECS = {s.name: s for s in [
    Spec("runid", None, summary="runid"),
    Spec("num_q", num_q, summary="count"),
    Spec("num_ret", num_ret, summary="sum"),
    Spec("num_rel", num_rel, summary="num_rel"),
    Spec("num_rel_ret", num_rel_ret, summary="sum"),
    Spec("map", map_),
    Spec("gm_map", gm_map, summary="gm"),
    Spec("Rprec", rprec),
    Spec("bpref", bpref),
    Spec("recip_rank", recip_rank),
    Spec("iprec_at_recall", iprec_at_recall, "double_cuts", _RECALLS),
    Spec("P", precision, "long_cuts", _CUTS),
    Spec("relstring", relstring, "doubles", (10.0,), summary="none"),
    Spec("recall", recall, "long_cuts", _CUTS),
    Spec("infAP", inf_ap),
    Spec("gm_bpref", gm_bpref, summary="gm"),
    Spec("Rprec_mult", rprec_mult, "double_cuts",
         tuple(i / 10 for i in range(2, 21, 2))),
    Spec("utility", utility, "doubles", (1.0, -1.0, 0.0, 0.0)),
    Spec("11pt_avg", pt11_avg, "doubles", _RECALLS),
    Spec("binG", bin_g),
    Spec("G", g_measure, "pairs"),
    Spec("dcg", dcg, "pairs"),
    Spec("ideal_dcg", ideal_dcg, "pairs"),
    Spec("ndcg", ndcg, "pairs"),
    Spec("ndcg_rel", ndcg_rel, "pairs"),
    Spec("Rndcg", rndcg, "pairs"),
    Spec("ndcg_cut", ndcg_cut, "long_cuts", _CUTS),
    Spec("map_cut", map_cut, "long_cuts", _CUTS),
    Spec("relative_P", relative_p, "long_cuts", _CUTS),
    Spec("success", success, "long_cuts", (1, 5, 10)),
    Spec("set_P", set_p),
    Spec("set_relative_P", set_relative_p),
    Spec("set_recall", set_recall),
    Spec("set_map", set_map),
    Spec("set_F", set_f, "doubles", (1.0,)),
    Spec("num_nonrel_judged_ret", num_nonrel_judged_ret, summary="sum"),
    Spec("yaap", yaap),
    Spec("rbp", rbp, "pairs"),
    Spec("rbp_resid", rbp_resid, "pairs"),
    Spec("unj", unj, "long_cuts", (5, 10, 20)),
    Spec("judged", judged, "long_cuts"),  # ir_measures Judged, not trec_eval
]}
NICKNAMES = {
    "official": "runid num_q num_ret num_rel num_rel_ret map gm_map Rprec "
                "bpref recip_rank iprec_at_recall P".split(),
    "all_trec": "runid num_q num_ret num_rel num_rel_ret map gm_map Rprec "
                "bpref recip_rank iprec_at_recall P relstring recall unj rbp "
                "rbp_resid infAP gm_bpref utility 11pt_avg ndcg relative_P "
                "Rprec_mult success map_cut ndcg_cut ndcg_rel Rndcg binG G "
                "set_P set_recall set_relative_P set_map set_F "
                "num_nonrel_judged_ret".split(),
    "set": "runid num_q num_ret num_rel num_rel_ret utility set_P set_recall "
           "set_relative_P set_map set_F".split(),
}
INT_NAMES = {"num_q", "num_ret", "num_rel", "num_rel_ret",
             "num_nonrel_judged_ret"}
SUMMARY_ONLY = {"num_q", "gm_map", "gm_bpref"}  # not printed per query


def _parse_params(spec, raw):
    """Parse trec_eval -m parameters; returns (values, output names)."""
    if raw is None:
        values = spec.default
    elif spec.kind == "pairs":
        parts = [p.split("=") for p in raw.split(",")]
        if any(len(p) != 2 for p in parts):
            raise ValueError(f"{spec.name}: malformed pair parameters {raw!r}")
        values = tuple((n, _atof(v)) for n, v in parts)
    elif spec.kind in ("long_cuts", "double_cuts"):
        conv = _atol if spec.kind == "long_cuts" else _atof
        values = tuple(sorted(conv(p) for p in raw.split(",")))
        if len(set(values)) != len(values):
            raise ValueError(f"{spec.name}: duplicate cutoffs in {raw!r}")
        if spec.kind == "long_cuts" and values[0] <= 0:
            raise ValueError(f"{spec.name}: cutoffs must be > 0, got {raw!r}")
    else:
        values = tuple(_atof(p) for p in raw.split(","))
    if spec.kind == "long_cuts" and values:
        names = [f"{spec.name}_{c}" for c in values]
    elif spec.kind == "double_cuts":
        names = [f"{spec.name}_{c:3.2f}" for c in values]
    else:
        names = [spec.name if raw is None else f"{spec.name}_{raw}"]
    return values, names


def parse_measures(measures):
    """trec_eval -m syntax -> [(Spec, params, names)] in output order.

    ``name.params`` gives parameters (the first given for a name wins);
    nicknames expand; nothing means "official".
    """
    marked, args = set(), []
    for text in measures or ["official"]:
        name, dot, raw = text.partition(".")
        if dot and not raw:
            raise ValueError(f"measure {text!r}: empty parameters")
        if dot:
            args.append((name, raw))
        for n in NICKNAMES.get(name, [name]):
            if n not in SPECS:
                raise ValueError(f"unknown measure {n!r}")
            marked.add(n)
    chosen = []
    for spec in SPECS.values():
        if spec.name in marked:
            raw = next((r for n, r in args if n == spec.name), None)
            chosen.append((spec, *_parse_params(spec, raw)))
    return chosen


# ----------------------------------------------------------- evaluation --

def _evaluate_query(chosen, rk):
    values = {}
    for spec, params, names in chosen:
        if spec.calc is None:
            continue
        result = spec.calc(rk, params)
        values.update(zip(names, result if isinstance(result, list)
                          else [result]))
    return values


def _clear_bogus(values):
    """trec_eval -c resets these for a query with no results."""
    for name in values:
        if name in ("num_ret", "utility", "rbp_resid") or name[:3] == "unj":
            values[name] = 0
        elif name == "relstring":
            values[name] = ""


def _summarize(chosen, per_query, qrels, all_queries, runid):
    n, summary = len(per_query), {}
    for spec, _, names in chosen:
        if spec.summary == "runid":
            summary["runid"] = runid
        for name in names if spec.summary not in ("runid", "none") else []:
            total = _ordered_sum(v[name] for v in per_query.values())
            if spec.summary == "mean":
                total /= n
            elif spec.summary == "gm":
                total = math.exp(total / n)
            elif spec.summary == "count":
                total = n
            elif spec.summary == "num_rel" and all_queries:
                # trec_eval -c recounts from all qrels, with rel > 0
                total = sum(1 for q in qrels.values() for r in q.values()
                            if r > 0)
            summary[name] = total
    return summary


def evaluate_ref(qrels, run, measures, *, relevance_level=1,
                 judged_only=False, max_docs=None, all_queries=False,
                 runid=""):
    """Evaluate `run` against `qrels` exactly as trec_eval 10.0 does.

    Parameters mirror trec_eval: measures (-m, list of specs),
    relevance_level (-l), judged_only (-J), max_docs (-M), all_queries
    (-c), runid (printed by "runid"). Returns (per_query, summary):
    {qid: {name: value}} for evaluated queries in qid order (gm_* hold
    log values, relstring a str) and {name: value} ("runid" a str).
    """
    chosen = parse_measures(measures)
    per_query = {}
    for qid in sorted(q for q, judged_q in qrels.items() if judged_q):
        missing = qid not in run
        if missing and not all_queries:
            continue
        docs = {BOGUS_DOC: 1.0} if missing else run[qid]
        rk = rank(qrels[qid], docs, relevance_level, judged_only, max_docs)
        per_query[qid] = _evaluate_query(chosen, rk)
        if missing:
            _clear_bogus(per_query[qid])
    if not per_query:
        raise ValueError("evaluate_ref: no queries with both results and "
                         "relevance info")
    return per_query, _summarize(chosen, per_query, qrels, all_queries, runid)


def _format_value(name, value, per_query):
    if isinstance(value, str):
        return f"'{value}'" if per_query else value
    if name in INT_NAMES:
        return str(int(value))
    return f"{value:6.4f}"


def format_trec_eval(per_query, summary, per_query_output):
    """trec_eval's stdout: ``%-22s\\t%s\\t%6.4f`` lines, per-query (with -q)
    then "all"; counts print as integers, relstring in quotes."""
    lines = []
    if per_query_output:
        for qid, values in per_query.items():
            lines += [f"{name:<22}\t{qid}\t{_format_value(name, v, True)}"
                      for name, v in values.items()
                      if name not in SUMMARY_ONLY]
    lines += [f"{name:<22}\tall\t{_format_value(name, v, False)}"
              for name, v in summary.items()]
    return "".join(line + "\n" for line in lines)
