"""Readers and writers for BEIR, MS MARCO and TREC files.

A BEIR dataset is a folder holding ``corpus.jsonl`` (one JSON object per
line: ``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``)
and ``qrels/<split>.tsv`` (header ``query-id<TAB>corpus-id<TAB>score``).
Ids and texts are kept exactly as stored (Unicode included); files are read
as UTF-8. Errors in a file name its path and 1-based line number
(`ragkernels.FormatError`, a ValueError); only regular files are read (a
FIFO or a device raises OSError instead of blocking).
"""
from __future__ import annotations

import json
import numbers
import os
import pathlib
import stat
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import BinaryIO, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ragkernels._core import FormatError

try:  # orjson is optional; it parses BEIR corpora several times faster.
    import orjson as _orjson

    _json_loads = _orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _json_loads = json.loads

__all__ = [
    "BeirDataset",
    "Corpus",
    "Queries",
    "demo_path",
    "load_beir",
    "load_demo",
    "read_corpus",
    "read_msmarco_collection",
    "read_queries",
    "read_trec_topics_tsv",
    "write_trec_run",
]

PathLike = Union[str, "os.PathLike[str]"]
Qrels = Dict[str, Dict[str, int]]
_QRELS_HEADER = ["query-id", "corpus-id", "score"]


@dataclass(frozen=True)
class Corpus:
    """Documents as three parallel lists, in file order.

    Attributes
    ----------
    ids : list of str
        Document ids, unique.
    titles : list of str
        Titles; ``""`` where a document has none.
    texts : list of str
        Bodies.
    """

    ids: List[str]
    titles: List[str]
    texts: List[str]

    def __len__(self) -> int:
        return len(self.ids)

    def full_texts(self) -> List[str]:
        """Return ``title + " " + text``, or ``text`` alone when untitled.

        Returns
        -------
        list of str
            One string per document, the usual BEIR input to retrievers.
        """
        return [f"{t} {x}" if t else x for t, x in zip(self.titles, self.texts)]


@dataclass(frozen=True)
class Queries:
    """Queries as two parallel lists, in file order.

    Attributes
    ----------
    ids : list of str
        Query ids, unique.
    texts : list of str
        Query texts.
    """

    ids: List[str]
    texts: List[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR dataset.

    Attributes
    ----------
    corpus : Corpus
        Every document of ``corpus.jsonl``.
    queries : Queries
        The queries of ``queries.jsonl`` that appear in the split's qrels,
        in ``queries.jsonl`` order.
    qrels : dict of str to dict of str to int
        ``{query_id: {doc_id: grade}}``, pytrec_eval style.
    """

    corpus: Corpus
    queries: Queries
    qrels: Qrels


def _fail(path: pathlib.Path, line: int, what: str) -> FormatError:
    return FormatError(f"{path}:{line}: {what}")


def _open_regular(path: pathlib.Path) -> BinaryIO:
    """`path` opened for reading, refused unless it is a regular file."""
    # O_NONBLOCK: a plain open() of a FIFO nobody writes to blocks forever
    # before anything can be checked (issue 14); a regular file ignores it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
            raise OSError(f"{path} is {what}; the readers need a file")
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _need_file(path: pathlib.Path, root: pathlib.Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"load_beir: {path} not found; a BEIR dataset folder ({root}) "
            "must hold corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
        )


def _utf8_error(path: pathlib.Path, n: int, raw: bytes, e: UnicodeDecodeError,
                fields: Optional[Sequence[str]]) -> FormatError:
    """Names the byte, its column and (tab-separated files) its field."""
    where = f"byte 0x{raw[e.start]:02x} at column {e.start + 1}"
    if fields is not None:
        i = raw[:e.start].count(b"\t")
        where += f" (field {i + 1}, {fields[i] if i < len(fields) else 'past the last field'})"
    shown = raw.rstrip(b"\r\n")[:200].decode("utf-8", "backslashreplace")
    return _fail(path, n, f"not valid UTF-8: {where}, got '{shown}'")


def _lines(path: pathlib.Path, fields: Optional[Sequence[str]] = None) -> Iterator[Tuple[int, str]]:
    """Yield (1-based line number, line without its newline), skipping blanks.
    `fields` names the columns of a tab-separated file, for messages."""
    # Binary + per-line decode: exact line numbers for bad UTF-8, and only
    # "\n" ends a line (a stray "\r" or U+2028 inside a text stays put).
    with _open_regular(path) as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise _utf8_error(path, n, raw, e, fields) from None
            if line.strip():
                yield n, line


def _id_field(obj: dict, key: str, path: pathlib.Path, n: int) -> str:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a few converted datasets store numeric ids
    if not isinstance(value, str) or not value:
        raise _fail(path, n, f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _str_field(obj: dict, key: str, path: pathlib.Path, n: int) -> str:
    value = obj.get(key)
    if key == "title" and value is None:
        return ""  # BEIR titles are optional
    if not isinstance(value, str):
        raise _fail(path, n, f"{key!r} must be a string, got {value!r}")
    return value


def _read_jsonl(path: pathlib.Path, fields: Sequence[str]) -> Tuple[List[str], ...]:
    """Read ``_id`` plus `fields` of every line (``title`` may be absent)."""
    cols: Tuple[List[str], ...] = tuple([] for _ in range(len(fields) + 1))
    seen = set()
    for n, line in _lines(path):
        try:
            obj = _json_loads(line)
        except ValueError as e:
            raise _fail(path, n, f"malformed JSON ({e})") from None
        if not isinstance(obj, dict):
            raise _fail(path, n, f"expected a JSON object, got {type(obj).__name__}")
        id_ = _id_field(obj, "_id", path, n)
        if id_ in seen:
            raise _fail(path, n, f"duplicate _id {id_!r}")
        seen.add(id_)
        cols[0].append(id_)
        for col, key in zip(cols[1:], fields):
            col.append(_str_field(obj, key, path, n))
    return cols


def _read_qrels_tsv(path: pathlib.Path) -> Qrels:
    qrels: Qrels = {}
    for n, line in _lines(path, _QRELS_HEADER):
        row = line.split("\t")
        if n == 1 and [c.strip() for c in row] == _QRELS_HEADER:
            continue
        if len(row) != 3:
            raise _fail(path, n, f"expected 3 tab-separated fields "
                                 f"(query-id, corpus-id, score), got {len(row)}")
        qid, did, score = (c.strip() for c in row)
        if not qid or not did:
            raise _fail(path, n, "empty query-id or corpus-id")
        try:
            grade = int(score)
        except ValueError:
            raise _fail(path, n, f"score must be an integer, got {score!r}") from None
        judged = qrels.setdefault(qid, {})
        if judged.get(did, grade) != grade:
            raise _fail(path, n, f"conflicting scores for ({qid!r}, {did!r}): "
                                 f"{judged[did]} and {grade}")
        judged[did] = grade
    return qrels


def load_beir(path: PathLike, split: str = "test") -> BeirDataset:
    """Load one split of a BEIR-format dataset folder.

    Parameters
    ----------
    path : str or os.PathLike
        Folder holding ``corpus.jsonl``, ``queries.jsonl`` and
        ``qrels/<split>.tsv``.
    split : str, default "test"
        Qrels file to read; only the queries it judges are returned.

    Returns
    -------
    BeirDataset
        Corpus, evaluation queries and qrels.

    Raises
    ------
    FileNotFoundError
        One of the three files is missing.
    OSError
        A file is not a regular file (a FIFO, a device).
    ragkernels.FormatError
        A ValueError: a malformed line or bytes that are not UTF-8
        (``"<path>:<line>: <what>"``), a duplicate id, or qrels naming a
        query absent from ``queries.jsonl``. A qrels TSV may omit its
        header line here (the file is known to be BEIR's).

    Examples
    --------
    >>> ds = load_beir(demo_path())
    >>> len(ds.corpus), len(ds.queries)
    (60, 12)
    """
    root = pathlib.Path(path)
    files = [root / "corpus.jsonl", root / "queries.jsonl",
             root / "qrels" / f"{split}.tsv"]
    for f in files:
        _need_file(f, root)
    corpus = Corpus(*_read_jsonl(files[0], ("title", "text")))
    qids, qtexts = _read_jsonl(files[1], ("text",))
    qrels = _read_qrels_tsv(files[2])
    keep = [i for i, q in enumerate(qids) if q in qrels]
    if len(keep) != len(qrels):
        missing = sorted(set(qrels) - set(qids))
        raise FormatError(f"load_beir: {files[2]} judges {len(missing)} queries "
                         f"absent from {files[1]}, e.g. {missing[:3]}")
    queries = Queries([qids[i] for i in keep], [qtexts[i] for i in keep])
    return BeirDataset(corpus, queries, qrels)


def _read_id_text_tsv(path: PathLike) -> Tuple[List[str], List[str]]:
    """Read ``id<TAB>text`` lines; text may itself contain tabs."""
    path = pathlib.Path(path)
    ids: List[str] = []
    texts: List[str] = []
    seen = set()
    for n, line in _lines(path, ("id", "text")):
        id_, tab, text = line.partition("\t")
        if not tab or not id_.strip():
            raise _fail(path, n, "expected 'id<TAB>text'")
        id_ = id_.strip()
        if id_ in seen:
            raise _fail(path, n, f"duplicate id {id_!r}")
        seen.add(id_)
        ids.append(id_)
        texts.append(text)
    return ids, texts


def read_trec_topics_tsv(path: PathLike) -> Queries:
    """Read ``qid<TAB>text`` topics, as MS MARCO and TREC DL ship them.

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 file, one query per line; blank lines are skipped.

    Returns
    -------
    Queries
        In file order.

    Raises
    ------
    FileNotFoundError
        `path` does not exist.
    ValueError
        A line without a tab, an empty or a duplicate id.
    """
    return Queries(*_read_id_text_tsv(path))


def read_msmarco_collection(path: PathLike) -> Corpus:
    """Read an MS MARCO ``collection.tsv`` (``pid<TAB>passage``).

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 file, one passage per line; blank lines are skipped.

    Returns
    -------
    Corpus
        In file order, every title ``""``.

    Raises
    ------
    FileNotFoundError
        `path` does not exist.
    ValueError
        A line without a tab, an empty or a duplicate pid.
    """
    ids, texts = _read_id_text_tsv(path)
    return Corpus(ids, [""] * len(ids), texts)


def read_corpus(path: PathLike) -> Corpus:
    """Read a corpus in whichever format `path` names.

    Parameters
    ----------
    path : str or os.PathLike
        A BEIR folder (its ``corpus.jsonl``), a BEIR ``.jsonl`` corpus, or an
        MS MARCO ``collection.tsv`` (``pid<TAB>passage``).

    Returns
    -------
    Corpus

    Raises
    ------
    FileNotFoundError, ValueError
        As `load_beir` and `read_msmarco_collection`.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
        _need_file(path, path.parent)
    if path.suffix == ".tsv":
        return read_msmarco_collection(path)
    return Corpus(*_read_jsonl(path, ("title", "text")))


def read_queries(path: PathLike) -> Queries:
    """Read queries: a BEIR ``queries.jsonl``, or ``qid<TAB>text`` topics (``.tsv``).

    Returns
    -------
    Queries
        Every query of the file, in file order.
    """
    path = pathlib.Path(path)
    if path.suffix == ".tsv":
        return read_trec_topics_tsv(path)
    return Queries(*_read_jsonl(path, ("text",)))


def _check_token(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"write_trec_run: {what} must be non-empty without "
                         f"whitespace, got {value!r}")
    return value


def _row(x, name: str, i: int) -> list:
    row = x.tolist() if hasattr(x, "tolist") else x
    if not isinstance(row, (list, tuple)):
        raise ValueError(f"write_trec_run: {name} must be 2-D (one row per "
                         f"query), but {name}[{i}] is {row!r}")
    return row


def _doc_name(d, corpus_ids, i: int) -> str:
    if corpus_ids is not None:
        if not isinstance(d, numbers.Integral) or not 0 <= d < len(corpus_ids):
            raise ValueError(f"write_trec_run: doc_ids[{i}] has {d!r}, expected "
                             f"-1 or an int in [0, {len(corpus_ids)})")
        d = corpus_ids[d]
    return _check_token(str(d), f"a doc id in doc_ids[{i}]")


def _run_lines(query_ids, doc_ids, scores, tag, corpus_ids) -> Iterator[str]:
    """Yield the lines of one query at a time (see write_trec_run)."""
    if not (len(query_ids) == len(doc_ids) == len(scores)):
        raise ValueError(f"write_trec_run: query_ids, doc_ids and scores need "
                         f"the same number of rows, got {len(query_ids)}, "
                         f"{len(doc_ids)} and {len(scores)}")
    for i, qid in enumerate(query_ids):
        qid = _check_token(str(qid), f"query_ids[{i}]")
        ids_row = _row(doc_ids[i], "doc_ids", i)
        sc_row = _row(scores[i], "scores", i)
        if len(ids_row) != len(sc_row):
            raise ValueError(f"write_trec_run: doc_ids[{i}] has {len(ids_row)} "
                             f"entries but scores[{i}] has {len(sc_row)}")
        out = []
        for d, s in zip(ids_row, sc_row):
            if isinstance(d, numbers.Integral) and d == -1:
                continue  # padding, the package-wide convention
            did, s = _doc_name(d, corpus_ids, i), float(s)
            if s != s:
                raise ValueError(f"write_trec_run: scores[{i}] is NaN for doc {did!r}")
            # repr() is the shortest string that parses back to the same
            # double, so trec_eval sees exactly our scores (and ties).
            out.append(f"{qid} Q0 {did} {len(out) + 1} {s!r} {tag}\n")
        yield "".join(out)


def write_trec_run(path: PathLike, query_ids: Sequence, doc_ids, scores,
                   tag: str = "ragkernels", *,
                   corpus_ids: Optional[Sequence[str]] = None) -> None:
    """Write a TREC run file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its folder must exist. Replaced only once complete.
    query_ids : sequence of str, length n_queries
    doc_ids : array-like, shape (n_queries, depth)
        Per query, best first: int row numbers into `corpus_ids`, or doc
        ids themselves. Entries equal to -1 are padding and are skipped.
        Rows may differ in length when given as lists.
    scores : array-like of float, shape (n_queries, depth)
        Matching `doc_ids`; written with full precision.
    tag : str, default "ragkernels"
        Run name, the sixth column.
    corpus_ids : sequence of str, optional
        Maps an int in `doc_ids` to its doc id, e.g. ``corpus.ids``.

    Raises
    ------
    ValueError
        Row counts or lengths differ, a NaN score, or an id or the tag is
        empty or contains whitespace. No file is left behind.

    Notes
    -----
    Lines are ``qid Q0 docid rank score tag``; ranks start at 1 and count
    written (non-padding) entries. trec_eval re-sorts by score, so ties are
    broken by its rule, not by the order given here.
    """
    path = pathlib.Path(path)
    tag = _check_token(tag, "tag")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"write_trec_run: folder {path.parent} does not exist")
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    # os.open with 0o666 lets the umask set the final mode, unlike mkstemp.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as f:
            for chunk in _run_lines(query_ids, doc_ids, scores, tag, corpus_ids):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def demo_path() -> pathlib.Path:
    """Return the folder of the demo corpus shipped in the package.

    Returns
    -------
    pathlib.Path
        A BEIR-format folder: 60 documents, 12 queries, graded qrels, and
        ``run.bm25.trec``, a BM25 run over it (see its README.md).
    """
    root = resources.files(__package__) / "demo"
    path = pathlib.Path(str(root))
    if not path.is_dir():  # e.g. the package was imported from a zip file
        raise RuntimeError(f"demo_path: the demo corpus is not on the file "
                           f"system ({root!r}); install the package unzipped")
    return path


def load_demo() -> BeirDataset:
    """Load the shipped demo corpus (test split).

    Returns
    -------
    BeirDataset
        60 documents, 12 queries, graded 0/1/2 qrels.

    Examples
    --------
    >>> ds = load_demo()
    >>> ds.queries.ids[0], len(ds.qrels["q01"]) > 1
    ('q01', True)
    """
    return load_beir(demo_path(), split="test")
