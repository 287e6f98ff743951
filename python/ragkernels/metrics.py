"""IR evaluation with NIST trec_eval's exact semantics.

Every measure of trec_eval's ``all_trec`` set (plus ``judged.k``, Judged@k as
ir_measures defines it) is computed in the C++ core, in parallel over queries,
with the same numbers trec_eval prints and pytrec_eval returns.

Qrels and runs are accepted in three forms:

* pytrec_eval-style dicts: ``{qid: {docid: int}}`` / ``{qid: {docid: float}}``;
* paths of TREC files (qrels ``qid iter docid rel`` or BEIR ``qrels/*.tsv``;
  runs ``qid Q0 docid rank score tag``), parsed in C++;
* compact arrays ``(query_ids, doc_ids, values)`` of equal length, integer
  ids (compared as their decimal strings, exactly as trec_eval would).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Union

import numpy as np

from ragkernels import _core
from ragkernels._checks import check_int

__all__ = [
    "Evaluation",
    "RelevanceEvaluator",
    "evaluate",
    "load_qrels",
    "load_run",
    "supported_measures",
]

QrelsLike = Union[Mapping[str, Mapping[str, int]], str, "os.PathLike[str]", Sequence[Any], _core.Qrels]
RunLike = Union[Mapping[str, Mapping[str, float]], str, "os.PathLike[str]", Sequence[Any], _core.Run]

#: Measure families accepted by ``measures=``, as trec_eval spells them
#: (``judged`` needs its cutoff: ``"judged.10"``).
supported_measures = (
    "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref",
    "recip_rank", "iprec_at_recall", "P", "relstring", "recall", "infAP", "gm_bpref", "Rprec_mult",
    "utility", "11pt_avg", "binG", "G", "ndcg", "ndcg_rel", "Rndcg", "ndcg_cut", "map_cut",
    "relative_P", "success", "set_P", "set_relative_P", "set_recall", "set_map", "set_F",
    "num_nonrel_judged_ret", "rbp", "rbp_resid", "unj", "dcg", "ideal_dcg", "yaap", "judged",
    "all_trec", "official", "set",
)


def load_qrels(source: QrelsLike) -> _core.Qrels:
    """Parse qrels once, to evaluate many runs against them.

    Parameters
    ----------
    source : dict, path, or tuple of three arrays
        ``{qid: {docid: rel}}``; a TREC or BEIR qrels file; or
        ``(query_ids, doc_ids, relevance)`` int32/int64 arrays.

    Returns
    -------
    ragkernels._core.Qrels
        Opaque, reusable judgments.

    Raises
    ------
    TypeError
        Ids not str, relevance not int, or an unsupported source type.
    ValueError
        A duplicate (query, doc) pair; arrays of different lengths.
    ragkernels.FormatError
        A malformed file line, or bytes that are not UTF-8 (the message
        names file, line and field). A BEIR TSV must start with its header
        line ``query-id<TAB>corpus-id<TAB>score``: that line is what tells
        it from TREC qrels, so a headerless one is refused, not guessed.
    OSError
        The file cannot be read, or is not a regular file (a FIFO or a
        device is refused rather than read: it could block forever).
    """
    if isinstance(source, _core.Qrels):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _core.read_qrels(os.fspath(source))
    if isinstance(source, Mapping):
        return _core.qrels_from_dict(source if isinstance(source, dict) else dict(source))
    if isinstance(source, (tuple, list)) and len(source) == 3:
        return _core.qrels_from_arrays(*source)
    raise TypeError(
        "qrels must be a dict {qid: {docid: rel}}, a file path, or a tuple "
        f"(query_ids, doc_ids, relevance), got {type(source).__name__}")


def load_run(source: RunLike) -> _core.Run:
    """Parse a run once, to evaluate it with several settings.

    Parameters
    ----------
    source : dict, path, or tuple of three arrays
        ``{qid: {docid: score}}``; a TREC run file; or
        ``(query_ids, doc_ids, scores)`` with int ids and float scores.

    Returns
    -------
    ragkernels._core.Run

    Raises
    ------
    TypeError, ValueError, ragkernels.FormatError, OSError
        As `load_qrels`; also a NaN score (in a file too) or a doc
        retrieved twice for one query (trec_eval refuses duplicates).
    """
    if isinstance(source, _core.Run):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _core.read_run(os.fspath(source))
    if isinstance(source, Mapping):
        return _core.run_from_dict(source if isinstance(source, dict) else dict(source))
    if isinstance(source, (tuple, list)) and len(source) == 3:
        return _core.run_from_arrays(*source)
    raise TypeError(
        "run must be a dict {qid: {docid: score}}, a file path, or a tuple "
        f"(query_ids, doc_ids, scores), got {type(source).__name__}")


@dataclass(frozen=True)
class Evaluation:
    """Per-query and summary values of one evaluation.

    Attributes
    ----------
    measures : list of str
        Output names as trec_eval prints them (``"ndcg_cut_10"``);
        the text-valued ``runid`` and ``relstring`` are not among them
        (see `to_trec_eval`).
    query_ids : list of str
        Evaluated queries, in trec_eval's ``-q`` order.
    values : ndarray of float64, shape (n_queries, n_measures)
        ``values[i, j]`` is measure j on query i. As in trec_eval and
        pytrec_eval, the per-query ``gm_map``/``gm_bpref`` are logs (their
        summary is the geometric mean) and ``num_q`` is 1.
    summary : dict of str to float
        trec_eval's ``all`` row: means for most measures, sums for the
        counts, the geometric mean for gm_*, ``num_q`` for num_q.
    """

    measures: List[str]
    query_ids: List[str]
    values: np.ndarray
    summary: Dict[str, float]
    _native: Any

    @property
    def per_query(self) -> Dict[str, Dict[str, float]]:
        """``{qid: {measure: value}}``, as pytrec_eval returns it."""
        rows = self.values.tolist()
        return {q: dict(zip(self.measures, row)) for q, row in zip(self.query_ids, rows)}

    def to_trec_eval(self, per_query: bool = False) -> str:
        """The text trec_eval prints for this evaluation (``-q`` adds per-query lines)."""
        return self._native.format_trec_eval(per_query)


def _measure_set(measures: Union[str, Iterable[str], None], op: str) -> _core.MeasureSet:
    """None: trec_eval's official set; a str: one request; [] is refused
    (it used to mean the official set, silently)."""
    if measures is None:
        return _core.parse_measures(["official"])
    if isinstance(measures, str):
        measures = [measures]
    elif not isinstance(measures, Iterable):
        raise TypeError(f"{op}: measures must be a str or an iterable of str, got {type(measures).__name__}")
    measures = list(measures)
    for i, m in enumerate(measures):
        if not isinstance(m, str):
            raise TypeError(f"{op}: measures[{i}] must be str, got {type(m).__name__} {m!r}"[:200])
    if not measures:
        raise ValueError(f'{op}: measures is empty; name at least one ("map", "ndcg_cut.10") '
                         f'or pass None for trec_eval\'s official set')
    return _core.parse_measures(measures)


def evaluate(qrels: QrelsLike, run: RunLike, measures: Union[str, Iterable[str], None] = ("official",), *,
             relevance_level: int = 1, all_queries: bool = False, depth: int | None = None,
             judged_only: bool = False) -> Evaluation:
    """Evaluate a run against qrels with trec_eval's semantics.

    Parameters
    ----------
    qrels : dict, path, tuple of arrays, or Qrels
        See `load_qrels`.
    run : dict, path, tuple of arrays, or Run
        See `load_run`.
    measures : str, iterable of str, or None, default ("official",)
        trec_eval ``-m`` requests: ``"map"``, ``"ndcg_cut.10,100"``,
        ``"P.5"``, ``"all_trec"``; pytrec_eval's ``"ndcg_cut_10"`` too.
        None means the official set; an empty list is refused.
    relevance_level : int, default 1
        Grades >= this count as relevant (trec_eval ``-l``); >= 1.
        trec_eval does not check ``-l``, but every measure assumes grade
        0 (and infAP's -1) is not relevant, so 0 and below are refused.
    all_queries : bool, default False
        Average over every query of the qrels; queries the run lacks
        score as empty rankings (trec_eval ``-c``).
    depth : int, optional
        Only the first `depth` documents of each ranking (``-M``), >= 1.
    judged_only : bool, default False
        Drop unjudged documents before scoring (``-J``).

    Returns
    -------
    Evaluation

    Raises
    ------
    TypeError
        A measure that is not a str, an int argument that is not an int.
    ValueError
        Unknown measure, no measure, ``depth < 1``, ``relevance_level
        < 1``, or invalid inputs (see `load_qrels`, `load_run`).

    Notes
    -----
    Rankings are ordered by score descending, ties by doc id in
    *descending* string order (trec_eval's rule; the rank column of a
    run file is ignored). Only queries present in both run and qrels are
    evaluated unless `all_queries`.

    Examples
    --------
    >>> from ragkernels.metrics import evaluate
    >>> qrels = {"q1": {"d1": 1, "d2": 0}}
    >>> run = {"q1": {"d1": 0.2, "d2": 0.9}}
    >>> evaluate(qrels, run, ["recip_rank", "P.1"]).summary
    {'recip_rank': 0.5, 'P_1': 0.0}
    """
    measure_set = _measure_set(measures, "evaluate")
    relevance_level = check_int(relevance_level, "relevance_level", "evaluate")
    depth = 2**63 - 1 if depth is None else check_int(depth, "depth", "evaluate")
    native = _core.evaluate(load_qrels(qrels), load_run(run), measure_set, relevance_level,
                            all_queries, depth, judged_only)
    names = list(native.measure_names)
    summary = dict(zip(names, native.summary.tolist()))
    return Evaluation(names, list(native.query_ids), native.per_query, summary, native)


class RelevanceEvaluator:
    """Drop-in for ``pytrec_eval.RelevanceEvaluator``.

    Parameters
    ----------
    query_relevance : dict
        ``{qid: {docid: int}}``.
    measures : iterable of str
        As pytrec_eval takes them (``{"map", "ndcg_cut.10"}``).
    relevance_level : int, default 1
        >= 1, as in `evaluate`.
    judged_docs_only_flag : bool, default False

    Examples
    --------
    >>> ev = RelevanceEvaluator({"q1": {"d1": 1}}, {"map"})
    >>> ev.evaluate({"q1": {"d1": 1.0, "d2": 2.0}})
    {'q1': {'map': 0.5}}
    """

    def __init__(self, query_relevance: Mapping[str, Mapping[str, int]], measures: Iterable[str],
                 relevance_level: int = 1, judged_docs_only_flag: bool = False):
        self._qrels = load_qrels(query_relevance)
        if isinstance(measures, str):
            measures = [measures]
        if isinstance(measures, Iterable):
            measures = sorted(set(measures), key=str)  # pytrec_eval takes a set
        self._measures = _measure_set(measures, "RelevanceEvaluator")
        self._relevance_level = check_int(relevance_level, "relevance_level", "RelevanceEvaluator")
        self._judged_only = judged_docs_only_flag

    def evaluate(self, run: Mapping[str, Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
        """``{qid: {measure: value}}`` for queries in both run and qrels."""
        native = _core.evaluate(self._qrels, load_run(run), self._measures, self._relevance_level,
                                False, 2**63 - 1, self._judged_only)
        names = list(native.measure_names)
        return {q: dict(zip(names, row)) for q, row in zip(native.query_ids, native.per_query.tolist())}
