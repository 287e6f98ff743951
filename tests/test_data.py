"""Tests for ragkernels.data: BEIR / MS MARCO readers, TREC run writer, demo."""
import json
import math
import os
import re
import signal
from collections import Counter

import numpy as np
import pytest

import ragkernels as rk
from ragkernels import data as rkd
from ragkernels.data import beir as beir_mod
from tests.reference import data_dir


def read_run(path):
    """Parse a TREC run into a list of (qid, docid, rank, score, tag)."""
    rows = []
    for line in open(path, encoding="utf-8"):
        q, q0, d, r, s, tag = line.split()
        assert q0 == "Q0"
        rows.append((q, d, int(r), float(s), tag))
    return rows


def bm25_ref(texts, query, k1=0.9, b=0.4):
    """BM25 as the demo README states it (Lucene idf, distinct query terms)."""
    tok = lambda s: re.findall(r"[0-9a-z]+", s.lower())  # noqa: E731
    docs = [Counter(tok(t)) for t in texts]
    lens = [sum(c.values()) for c in docs]
    avgdl, n = sum(lens) / len(docs), len(docs)
    scores = []
    for c, dl in zip(docs, lens):
        s = 0.0
        for t in sorted(set(tok(query))):
            if c[t]:
                df = sum(1 for o in docs if o[t])
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * c[t] / (c[t] + k1 * (1 - b + b * dl / avgdl))
        scores.append(s)
    return scores


def make_beir(root, corpus, queries, qrels_lines, split="test"):
    """Write a BEIR folder from raw lines (so malformed ones can be planted)."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(l + "\n" for l in corpus), "utf-8")
    (root / "queries.jsonl").write_text("".join(l + "\n" for l in queries), "utf-8")
    text = "query-id\tcorpus-id\tscore\n" + "".join(l + "\n" for l in qrels_lines)
    (root / "qrels" / f"{split}.tsv").write_text(text, "utf-8")
    return root


def doc(i, title="t", text="x"):
    return json.dumps({"_id": i, "title": title, "text": text}, ensure_ascii=False)


def query(i, text="q"):
    return json.dumps({"_id": i, "text": text}, ensure_ascii=False)


@pytest.fixture
def tiny(tmp_path):
    return make_beir(tmp_path / "tiny", [doc("a"), doc("b"), doc("c")],
                     [query("1"), query("2"), query("3")],
                     ["1\ta\t1", "1\tb\t0", "3\tc\t2"])


# --- demo corpus ----------------------------------------------------------------

def test_load_demo_counts_and_consistency():
    ds = rkd.load_demo()
    assert isinstance(ds, rkd.BeirDataset)
    assert ds.corpus.ids == [f"d{i:02d}" for i in range(1, 61)]
    assert ds.queries.ids == [f"q{i:02d}" for i in range(1, 13)]
    assert len(ds.corpus) == 60 and len(ds.queries) == 12
    assert all(ds.corpus.titles) and all(ds.corpus.texts) and all(ds.queries.texts)
    assert set(ds.qrels) == set(ds.queries.ids)
    corpus = set(ds.corpus.ids)
    for qid, judged in ds.qrels.items():
        assert set(judged) <= corpus, qid
        assert set(judged.values()) <= {0, 1, 2}
        assert sum(g > 0 for g in judged.values()) >= 2, qid
    assert any(0 in j.values() for j in ds.qrels.values())
    assert any(2 in j.values() for j in ds.qrels.values())


def test_demo_path_is_shipped_folder():
    root = rkd.demo_path()
    assert root.is_dir() and root.name == "demo"
    for name in ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv",
                 "run.bm25.trec", "README.md"]:
        assert (root / name).is_file(), name
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 100_000


def test_full_texts_joins_title_with_one_space():
    corpus = rkd.Corpus(["a", "b"], ["Title", ""], ["body", "only body"])
    assert corpus.full_texts() == ["Title body", "only body"]
    ds = rkd.load_demo()
    assert ds.corpus.full_texts()[0] == ds.corpus.titles[0] + " " + ds.corpus.texts[0]


def test_demo_run_is_bm25_top20_with_ties():
    ds = rkd.load_demo()
    rows = read_run(rkd.demo_path() / "run.bm25.trec")
    assert {tag for *_, tag in rows} == {"demo-bm25"}
    full = ds.corpus.full_texts()
    ties = 0
    for qid, text in zip(ds.queries.ids, ds.queries.texts):
        mine = [(d, r, s) for q, d, r, s, _ in rows if q == qid]
        assert [r for _, r, _ in mine] == list(range(1, 21)), qid
        ref = sorted(((-s, d) for s, d in zip(bm25_ref(full, text), ds.corpus.ids)
                      if s > 0))[:20]
        assert [d for d, _, _ in mine] == [d for _, d in ref], qid
        np.testing.assert_allclose([s for *_, s in mine], [-s for s, _ in ref],
                                   rtol=1e-12)
        ties += len(mine) - len({s for *_, s in mine})
    assert ties > 0


def test_demo_run_rewrites_byte_identical(tmp_path):
    rows = read_run(rkd.demo_path() / "run.bm25.trec")
    qids = sorted({q for q, *_ in rows})
    docs = [[d for q, d, *_ in rows if q == qid] for qid in qids]
    scores = [[s for q, _, _, s, _ in rows if q == qid] for qid in qids]
    out = tmp_path / "run.trec"
    rkd.write_trec_run(out, qids, docs, scores, tag="demo-bm25")
    assert out.read_bytes() == (rkd.demo_path() / "run.bm25.trec").read_bytes()


def test_json_fallback_gives_same_dataset(monkeypatch):
    fast = rkd.load_demo()
    monkeypatch.setattr(beir_mod, "_json_loads", json.loads)
    assert rkd.load_demo() == fast


# --- load_beir on real data -------------------------------------------------------

def scifact_dir():
    root = data_dir()
    path = None if root is None else root / "beir" / "scifact"
    if path is None or not (path / "corpus.jsonl").is_file():
        pytest.skip("SciFact not found: set RAGKERNELS_DATA to the shared data "
                    "folder (needs beir/scifact/)")
    return path


def test_load_beir_scifact_official_counts():
    ds = rkd.load_beir(scifact_dir())
    assert len(ds.corpus) == 5183 and len(set(ds.corpus.ids)) == 5183
    assert len(ds.queries) == 300
    assert sum(len(j) for j in ds.qrels.values()) == 339
    assert set(ds.qrels) == set(ds.queries.ids)
    assert ds.corpus.ids[0] == "4983"
    assert ds.corpus.titles[0].startswith("Microstructural development of human")
    corpus = set(ds.corpus.ids)
    assert all(set(j) <= corpus for j in ds.qrels.values())


def test_load_beir_scifact_train_split():
    ds = rkd.load_beir(scifact_dir(), split="train")
    assert len(ds.queries) == 809
    assert sum(len(j) for j in ds.qrels.values()) == 919


# --- load_beir semantics and errors -----------------------------------------------

def test_queries_restricted_to_qrels_in_file_order(tiny):
    ds = rkd.load_beir(tiny)
    assert ds.queries.ids == ["1", "3"]
    assert ds.qrels == {"1": {"a": 1, "b": 0}, "3": {"c": 2}}


def test_unicode_numeric_ids_missing_title_crlf_kept(tmp_path):
    corpus = ['{"_id": 7, "text": "no title"}',
              doc("é—文档/1", title="Ünïcode ✓", text="naïve café \u2028 tab\there")]
    root = make_beir(tmp_path / "u", corpus, [query("κ", "¿qué?")],
                     ["κ\té—文档/1\t1", "κ\t7\t0"])
    crlf = (root / "corpus.jsonl").read_bytes().replace(b"\n", b"\r\n")
    (root / "corpus.jsonl").write_bytes(crlf)
    ds = rkd.load_beir(root)
    assert ds.corpus.ids == ["7", "é—文档/1"]
    assert ds.corpus.titles == ["", "Ünïcode ✓"]
    assert ds.corpus.texts[1] == "naïve café \u2028 tab\there"
    assert ds.queries.ids == ["κ"] and ds.queries.texts == ["¿qué?"]
    assert ds.corpus.full_texts()[0] == "no title"


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file_names_path_and_layout(tiny, name):
    (tiny / name).unlink()
    with pytest.raises(FileNotFoundError) as e:
        rkd.load_beir(tiny)
    assert str(tiny / name) in str(e.value)
    assert "corpus.jsonl, queries.jsonl and qrels/<split>.tsv" in str(e.value)


def test_missing_split_names_it(tiny):
    with pytest.raises(FileNotFoundError, match=r"qrels/dev\.tsv"):
        rkd.load_beir(tiny, split="dev")


@pytest.mark.parametrize("bad,what", [
    ('{"_id": "c", "text": "x"', "malformed JSON"),
    ('["c", "x"]', "expected a JSON object"),
    ('{"title": "t", "text": "x"}', "'_id' must be a non-empty string"),
    ('{"_id": "c", "title": "t"}', "'text' must be a string"),
    ('{"_id": "a", "text": "again"}', "duplicate _id 'a'"),
])
def test_malformed_corpus_line_reports_line_number(tmp_path, bad, what):
    # Line 3 is bad; a blank line 2 must still count.
    corpus = [doc("a"), "", bad]
    root = make_beir(tmp_path / "m", corpus, [query("1")], ["1\ta\t1"])
    with pytest.raises(ValueError) as e:
        rkd.load_beir(root)
    assert str(e.value).startswith(f"{root / 'corpus.jsonl'}:3: ")
    assert what in str(e.value)


def test_invalid_utf8_reports_line_number(tiny):
    path = tiny / "queries.jsonl"
    path.write_bytes(path.read_bytes() + b'{"_id": "4", "text": "\xff"}\n')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:4: not valid UTF-8: byte 0xff at column 23"):
        rkd.load_beir(tiny)


@pytest.mark.parametrize("bad,what", [
    ("1\ta", "expected 3 tab-separated fields"),
    ("1\ta\t1\textra", "expected 3 tab-separated fields"),
    ("1\ta\thigh", "score must be an integer, got 'high'"),
    ("1\t\t1", "empty query-id or corpus-id"),
    ("1\ta\t2", "conflicting scores for ('1', 'a'): 1 and 2"),
])
def test_malformed_qrels_row_reports_line_number(tmp_path, bad, what):
    root = make_beir(tmp_path / "m", [doc("a")], [query("1")], ["1\ta\t1", bad])
    with pytest.raises(ValueError) as e:
        rkd.load_beir(root)
    assert str(e.value).startswith(f"{root / 'qrels' / 'test.tsv'}:3: ")
    assert what in str(e.value)


def test_qrels_query_absent_from_queries(tmp_path):
    root = make_beir(tmp_path / "m", [doc("a")], [query("1")], ["1\ta\t1", "9\ta\t1"])
    with pytest.raises(ValueError, match=r"judges 1 queries absent .*\['9'\]"):
        rkd.load_beir(root)


@pytest.fixture
def no_hang():
    """A hang becomes a failure: SIGALRM interrupts a blocking open() after 20 s."""
    def timeout(signum, frame):
        raise TimeoutError("blocked: the reader opened a FIFO before checking it")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("read,name", [
    (rkd.read_queries, "queries.jsonl"), (rkd.read_queries, "topics.tsv"), (rkd.read_corpus, "corpus.jsonl"),
    (rkd.read_corpus, "collection.tsv"), (rkd.read_trec_topics_tsv, "t.tsv"), (rkd.read_msmarco_collection, "c"),
])
def test_beir_readers_refuse_a_fifo_without_blocking(tmp_path, no_hang, read, name):
    os.mkfifo(tmp_path / name)  # nobody writes to it: a plain open() would block forever
    with pytest.raises(OSError, match=f"{re.escape(str(tmp_path / name))} is not a regular file"):
        read(tmp_path / name)


def test_load_beir_refuses_a_fifo_qrels_without_blocking(tmp_path, no_hang):
    root = make_beir(tmp_path / "m", [doc("a")], [query("1")], ["1\ta\t1"])
    (root / "qrels" / "test.tsv").unlink()
    os.mkfifo(root / "qrels" / "test.tsv")
    with pytest.raises(OSError, match="test.tsv"):
        rkd.load_beir(root)


@pytest.mark.parametrize("content,what", [
    (b"1\ta\t1\n1\tb\xe9\t1\n", r"test.tsv:3: not valid UTF-8: byte 0xe9 at column 4 \(field 2, corpus-id\), "
                                 r"got '1\tb\\xe9\t1'"),
    (b"1\ta\t1\xff\n", r"test.tsv:2: not valid UTF-8: byte 0xff at column 6 \(field 3, score\)"),
])
def test_beir_qrels_reader_names_file_line_and_field_of_non_utf8_bytes(tmp_path, content, what):
    root = make_beir(tmp_path / "m", [doc("a")], [query("1")], [])
    (root / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\n" + content)
    with pytest.raises(rk.FormatError, match=what):
        rkd.load_beir(root)


def test_tsv_topics_reader_names_the_field_of_non_utf8_bytes(tmp_path):
    (tmp_path / "t.tsv").write_bytes(b"1\tok\n2\tcaf\xe9\n")
    with pytest.raises(rk.FormatError, match=r"t.tsv:2: not valid UTF-8: byte 0xe9 at column 6 \(field 2, text\)"):
        rkd.read_trec_topics_tsv(tmp_path / "t.tsv")


def test_qrels_without_header_keeps_first_row(tmp_path):
    root = make_beir(tmp_path / "m", [doc("a")], [query("1")], [])
    (root / "qrels" / "test.tsv").write_text("1\ta\t2\n", "utf-8")
    assert rkd.load_beir(root).qrels == {"1": {"a": 2}}


# --- TSV readers ------------------------------------------------------------------

def test_read_trec_topics_and_collection(tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("1048585\twhat is paula deen's brother\n2\tcafé\twith tab\n\n", "utf-8")
    q = rkd.read_trec_topics_tsv(topics)
    assert q.ids == ["1048585", "2"]
    assert q.texts == ["what is paula deen's brother", "café\twith tab"]
    coll = tmp_path / "collection.tsv"
    coll.write_text("0\tThe presence of communication\r\n7\t\n", "utf-8")
    c = rkd.read_msmarco_collection(coll)
    assert c.ids == ["0", "7"] and c.texts == ["The presence of communication", ""]
    assert c.titles == ["", ""] and c.full_texts() == c.texts


@pytest.mark.parametrize("content,what", [
    ("1\tok\nno tab here\n", "expected 'id<TAB>text'"),
    ("1\tok\n\tempty id\n", "expected 'id<TAB>text'"),
    ("1\tok\n1\tagain\n", "duplicate id '1'"),
])
def test_tsv_reader_errors(tmp_path, content, what):
    path = tmp_path / "t.tsv"
    path.write_text(content, "utf-8")
    for reader in (rkd.read_trec_topics_tsv, rkd.read_msmarco_collection):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: {what}"):
            reader(path)
    with pytest.raises(FileNotFoundError):
        rkd.read_trec_topics_tsv(tmp_path / "absent.tsv")


def test_read_msmarco_shared_files():
    root = data_dir()
    base = None if root is None else root / "msmarco-passage"
    if base is None or not base.is_dir():
        pytest.skip("MS MARCO sample not found: set RAGKERNELS_DATA")
    topics = rkd.read_trec_topics_tsv(base / "trec-dl-2019" / "topics.dl19-passage.tsv")
    assert len(topics) == 43 and topics.ids[0] == "156493"
    coll = rkd.read_msmarco_collection(base / "collection.subset.tsv")
    assert len(coll) == 28606 and len(set(coll.ids)) == 28606


# --- write_trec_run ---------------------------------------------------------------

def test_write_trec_run_round_trip_skips_padding(tmp_path):
    ids = np.array([[2, 0, -1], [1, -1, -1], [-1, -1, -1]], dtype=np.int64)
    scores = np.array([[0.1, 0.1, -np.inf], [3.5e-9, -np.inf, -np.inf],
                       [-np.inf] * 3], dtype=np.float32)
    out = tmp_path / "run.trec"
    rkd.write_trec_run(out, ["q1", "q2", "q3"], ids, scores,
                       corpus_ids=["docA", "docB", "docC"])
    rows = read_run(out)
    assert [(q, d, r, t) for q, d, r, _, t in rows] == [
        ("q1", "docC", 1, "ragkernels"), ("q1", "docA", 2, "ragkernels"),
        ("q2", "docB", 1, "ragkernels")]
    # Exact: the float32 values come back bit for bit.
    np.testing.assert_array_equal(np.float32([s for *_, s, _ in rows]),
                                  np.float32([0.1, 0.1, 3.5e-9]))
    assert os.listdir(tmp_path) == ["run.trec"]


def test_write_trec_run_raw_ids_ragged_lists_and_overwrite(tmp_path):
    out = tmp_path / "run.trec"
    out.write_text("old\n")
    rkd.write_trec_run(out, ["1", "2"], [["7", "x/é"], [42]], [[2.0, 1.0], [0.5]],
                       tag="mine")
    assert out.read_text("utf-8") == ("1 Q0 7 1 2.0 mine\n1 Q0 x/é 2 1.0 mine\n"
                                      "2 Q0 42 1 0.5 mine\n")
    assert os.listdir(tmp_path) == ["run.trec"]


def test_write_trec_run_empty(tmp_path):
    out = tmp_path / "run.trec"
    rkd.write_trec_run(out, [], np.zeros((0, 5), np.int64), np.zeros((0, 5)))
    assert out.read_bytes() == b""


@pytest.mark.parametrize("args,what", [
    ((["q1"], [[1]], [[1.0], [2.0]]), "same number of rows"),
    ((["q1"], [[1, 2]], [[1.0]]), "doc_ids[0] has 2 entries but scores[0] has 1"),
    ((["q 1"], [[1]], [[1.0]]), "query_ids[0] must be non-empty without whitespace"),
    ((["q1"], [["a b"]], [[1.0]]), "without whitespace"),
    ((["q1"], [[1]], [[float("nan")]]), "scores[0] is NaN"),
    ((["q1"], np.array([1]), np.array([1.0])), "doc_ids must be 2-D"),
])
def test_write_trec_run_errors_leave_nothing(tmp_path, args, what):
    out = tmp_path / "run.trec"
    with pytest.raises(ValueError) as e:
        rkd.write_trec_run(out, *args)
    assert what in str(e.value)
    assert os.listdir(tmp_path) == []


def test_write_trec_run_failure_keeps_old_file(tmp_path):
    out = tmp_path / "run.trec"
    out.write_text("old\n")
    with pytest.raises(ValueError, match=r"expected -1 or an int in \[0, 2\)"):
        rkd.write_trec_run(out, ["q"], [[0, 5]], [[1.0, 0.5]], corpus_ids=["a", "b"])
    with pytest.raises(ValueError, match="tag must be non-empty"):
        rkd.write_trec_run(out, ["q"], [[0]], [[1.0]], tag="two words")
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["run.trec"]


def test_write_trec_run_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rkd.write_trec_run(tmp_path / "no" / "run.trec", ["q"], [[0]], [[1.0]])
