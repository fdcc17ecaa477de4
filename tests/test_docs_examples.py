"""The Python examples of README.md and docs/*.md run, so the documentation cannot drift from the code.

Convention (also in docs/index.md, "Contributing to these pages"):

* Every fenced block whose info string is ``python`` runs. The blocks of one page run in page order, in one
  namespace (a later block may use what an earlier one defined), in a fresh temporary working directory,
  with ``numpy.random.seed(0)`` and ``random.seed(0)`` and matplotlib's ``Agg`` backend.
* ``<!-- skip-example: why -->`` on the line before a block's opening fence (blank lines allowed between):
  the block is shown, not run. Blocks in any other language (bash, text, ...) never run.
* ``<!-- example-setup`` ... ``-->``: an HTML comment holding Python code, invisible on the page, that runs
  just before the next ``python`` block (to define what a short snippet takes for granted).
* ``<!-- example-output -->`` followed by a ``text`` block, right after a ``python`` block: the text must
  equal what that block printed (trailing spaces and blank lines at the ends ignored). Regenerate these
  blocks with ``python tests/test_docs_examples.py --write [PAGE ...]``; never type them by hand.

A failure names the page, the block number (1-based, python blocks only) and the line of its opening fence.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import sys
import tempfile
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
SKIP = re.compile(r"^\s*<!--\s*skip-example\b.*-->\s*$")
OUTPUT = re.compile(r"^\s*<!--\s*example-output\s*-->\s*$")
SETUP_START = re.compile(r"^\s*<!--\s*example-setup\b")


@dataclass
class Block:
    """One ``python`` block of a page and what goes with it."""

    number: int  # 1-based among the page's python blocks
    line: int  # 1-based line of the opening fence
    code: str
    skip: bool = False
    setup: str = ""  # hidden code run before the block
    output: str | None = None  # expected printed output (an example-output text block), if any
    output_lines: tuple[int, int] | None = None  # 0-based [start, end) of the output block's content lines


def _close_fence(lines, start, fence):
    """Index of the line closing the fence opened at ``start`` (or len(lines) if none)."""
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
            return j
    return len(lines)


def _dedent(lines, indent):
    return textwrap.dedent("\n".join(lines)) if indent else "\n".join(lines)


def parse(text: str) -> list[Block]:
    """The page's python blocks, with their skip marks, hidden set-up code and expected outputs."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending_setup: list[str] = []
    skip_next = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if SKIP.match(line):
            skip_next = True
            i += 1
            continue
        if SETUP_START.match(line):
            body = []
            rest = SETUP_START.sub("", line, count=1)
            j = i
            while True:
                if "-->" in rest:
                    body.append(rest.split("-->", 1)[0])
                    break
                body.append(rest)
                j += 1
                if j >= len(lines):
                    raise ValueError(f"line {i + 1}: example-setup comment is never closed with -->")
                rest = lines[j]
            pending_setup.append(textwrap.dedent("\n".join(body)).strip("\n"))
            i = j + 1
            continue
        m = FENCE.match(line)
        if m is None:
            if line.strip():
                skip_next = False  # a mark applies only to the block right after it
            i += 1
            continue
        end = _close_fence(lines, i, m["fence"])
        content = lines[i + 1:end]
        if m["info"] == "python":
            block = Block(number=len(blocks) + 1, line=i + 1, code=_dedent(content, m["indent"]),
                          skip=skip_next, setup="\n\n".join(pending_setup))
            pending_setup = []
            blocks.append(block)
            # an expected output: <!-- example-output --> then a text block, after blank lines only
            k = end + 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            if k < len(lines) and OUTPUT.match(lines[k]):
                k += 1
                while k < len(lines) and not lines[k].strip():
                    k += 1
                om = FENCE.match(lines[k]) if k < len(lines) else None
                if om is None or om["info"] != "text":
                    raise ValueError(f"line {k + 1}: <!-- example-output --> must be followed by a ```text block")
                oend = _close_fence(lines, k, om["fence"])
                block.output = _dedent(lines[k + 1:oend], om["indent"])
                block.output_lines = (k + 1, oend)
                end = oend
        skip_next = False
        i = end + 1
    if pending_setup:
        raise ValueError("an example-setup comment is not followed by a python block")
    return blocks


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def run_page(page: Path, workdir: Path) -> list[tuple[Block, str]]:
    """Run the page's python blocks in one namespace inside ``workdir``; returns (block, printed) pairs.

    Raises AssertionError naming the page and block on any exception.
    """
    import matplotlib

    matplotlib.use("Agg")
    name = page.relative_to(ROOT).as_posix()
    blocks = parse(page.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__docs_example__"}
    np.random.seed(0)
    random.seed(0)
    results = []
    old = Path.cwd()
    os.chdir(workdir)
    try:
        for block in blocks:
            if block.skip:
                continue
            where = f"{name}, python block {block.number} (line {block.line})"
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    if block.setup:
                        exec(compile(block.setup, f"<{where}, example-setup>", "exec"), namespace)
                    exec(compile(block.code, f"<{where}>", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - any failure of an example is reported the same way
                tb = traceback.format_exc(limit=-3)
                raise AssertionError(f"{where} failed: {type(exc).__name__}: {exc}\n{tb}") from exc
            results.append((block, out.getvalue()))
    finally:
        os.chdir(old)
        import matplotlib.pyplot as plt

        plt.close("all")
    return results


def pages_with_python():
    return [p for p in PAGES if "```python" in p.read_text(encoding="utf-8")]


@pytest.mark.parametrize("page", pages_with_python(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples_run(page, tmp_path):
    name = page.relative_to(ROOT).as_posix()
    for block, printed in run_page(page, tmp_path):
        if block.output is not None:
            assert _normalise(printed) == _normalise(block.output), (
                f"{name}, python block {block.number} (line {block.line}): printed output differs from the "
                f"example-output block below it; if the change is intended, rerun "
                f"`python tests/test_docs_examples.py --write {name}`.\n--- printed:\n{printed}\n--- on the page:\n"
                f"{block.output}")


def test_the_tutorial_is_executed_and_checked():
    """The tutorial's blocks all run (none skipped) and its printed numbers are checked."""
    blocks = parse((ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5 and not any(b.skip for b in blocks)
    assert sum(b.output is not None for b in blocks) >= 3


def test_parser_marks_skips_setups_and_outputs():
    page = textwrap.dedent("""\
        # page
        ```python
        a = 1
        ```
        <!-- skip-example: needs a GPU -->

        ```python
        raise RuntimeError("never runs")
        ```
        <!-- example-setup
        b = a + 1
        -->
        ```python
        print(a + b)
        ```

        <!-- example-output -->
        ```text
        3
        ```
        ```bash
        echo not python
        ```
        <!-- skip-example: only for the next block -->
        text in between cancels the mark
        ```python
        c = 3
        ```
        """)
    blocks = parse(page)
    assert [b.number for b in blocks] == [1, 2, 3, 4]
    assert [b.skip for b in blocks] == [False, True, False, False]
    assert blocks[2].setup == "b = a + 1" and blocks[2].output == "3"
    assert blocks[0].output is None and blocks[3].code == "c = 3"


def test_a_failing_or_drifting_example_is_reported_with_page_and_block(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "bad.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nx = undefined_name\n```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(AssertionError, match=r"docs/bad\.md, python block 2 \(line 5\) failed: NameError"):
        run_page(page, work)
    page.write_text("```python\nprint(2)\n```\n<!-- example-output -->\n```text\n3\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="printed output differs"):
        test_page_examples_run(page, work)


def write_outputs(pages) -> None:
    """Rewrite each page's example-output blocks with what its blocks print now."""
    for page in pages:
        with tempfile.TemporaryDirectory() as work:
            results = run_page(page, Path(work))
        lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
        changed = 0
        for block, printed in reversed(results):  # from the bottom, so earlier line numbers stay valid
            if block.output_lines is None:
                continue
            start, end = block.output_lines
            new = [line + "\n" for line in printed.rstrip("\n").splitlines()]
            if lines[start:end] != new:
                lines[start:end] = new
                changed += 1
        if changed:
            page.write_text("".join(lines), encoding="utf-8")
        print(f"{page.relative_to(ROOT)}: {changed} output block(s) rewritten")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "--write":
        sys.exit("usage: python tests/test_docs_examples.py --write [PAGE ...]  (rewrites example-output blocks)")
    chosen = [Path(a).resolve() for a in args[1:]] or pages_with_python()
    write_outputs(chosen)
