"""The fenced examples of README.md and docs/usage.md run as written, as a wheel user runs them.

Every ```python and ```bash block of those pages is run verbatim in a fresh venv that holds
only the built wheel (``[cpu]``) and ``torch==2.13.0``, from an empty directory: the blocks of
one page in order, in one shared directory (a later block may use files an earlier one made),
bash blocks with ``bash -e`` and the venv's bin first on PATH (as if activated), python blocks
with the venv's python. Nothing from the checkout is importable there, so an example that
needs ``models/`` or an import it does not write fails here.

A block that cannot run there (``make`` targets, the install lines the fixture did itself) is
skipped only when the Markdown says so on the line right before its fence::

    <!-- not-run: reason -->

The wheel is dist/'s one manylinux wheel (copied first, since a concurrent ``make wheel``
replaces it), built by scripts/build_wheel.sh when there is none.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from _wheel import make_venv, pip, venv_env, wheel_copy

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "usage.md"]
DIST = ROOT / "dist"
WHEEL_GLOB = "onnx_smoothl1-*-py3-none-manylinux_*_x86_64.whl"
#: Fence languages that are run, and with what.
RUNNERS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
MARKER = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
FENCE_OPEN = re.compile(r"^```(?P<lang>[\w+-]*)")
INSTALL_TIMEOUT = 900
BLOCK_TIMEOUT = 600
TAIL = 3000


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str  # "python" or "bash"
    code: str
    not_run: str | None  # the marker's reason

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{self.lang}"


def parse_blocks(text: str, page: str) -> list[Block]:
    """The runnable fenced blocks of ``text`` (python / bash and aliases), in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{i + 1}: unclosed code fence")
        lang = RUNNERS.get(m["lang"].lower())
        if lang is not None:
            marker = MARKER.match(lines[i - 1]) if i > 0 else None
            blocks.append(Block(page, i + 1, lang, "\n".join(lines[i + 1:end]) + "\n",
                                marker["reason"] if marker else None))
        i = end + 1
    return blocks


def _page_blocks() -> list[Block]:
    return [b for p in PAGES for b in parse_blocks(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]


BLOCKS = _page_blocks()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no pip) with the wheel's [cpu] install and torch==2.13.0, nothing else."""
    tmp = tmp_path_factory.mktemp("readme_venv")
    wheel = wheel_copy(tmp)
    env_dir = make_venv(tmp / "venv")
    proc = pip(env_dir, "install", "-q", "--no-compile", "-c", ROOT / "constraints.txt", f"{wheel}[cpu]",
               "torch==2.13.0", cwd=tmp, timeout=INSTALL_TIMEOUT)
    assert proc.returncode == 0, f"installing {wheel.name} failed:\n{proc.stdout[-TAIL:]}\n{proc.stderr[-TAIL:]}"
    return env_dir


def _env(venv: Path) -> dict[str, str]:
    return {**venv_env(venv), "PYTHONDONTWRITEBYTECODE": "1"}


def run_block(block: Block, venv: Path, cwd: Path, timeout: int = BLOCK_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``block`` verbatim in ``cwd`` with the venv; the code goes in as a file, not on stdin."""
    suffix = ".py" if block.lang == "python" else ".sh"
    script = cwd.parent / f"{cwd.name}-block-{block.line}{suffix}"
    script.write_text(block.code, encoding="utf-8")
    cmd = [str(venv / "bin" / "python"), str(script)] if block.lang == "python" else ["bash", "-e", str(script)]
    try:
        return subprocess.run(cmd, cwd=cwd, env=_env(venv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(cmd, 124, out, err + f"\n[timed out after {timeout} s]")


def failure_report(block: Block, proc: subprocess.CompletedProcess) -> str:
    numbered = "\n".join(f"{block.line + n:4d}  {line}" for n, line in enumerate(block.code.splitlines(), 1))
    return (f"{block.id}: exit code {proc.returncode}\n--- block ---\n{numbered}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-TAIL:]}\n--- stderr (tail) ---\n{proc.stderr[-TAIL:]}")


@pytest.fixture(scope="module")
def page_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One empty working directory per page, shared by that page's blocks."""
    root = tmp_path_factory.mktemp("readme_pages")
    dirs = {}
    for page in PAGES:
        d = root / page.name.removesuffix(".md")
        d.mkdir()
        dirs[str(page.relative_to(ROOT))] = d
    return dirs


def test_pages_have_examples() -> None:
    """Each page has runnable examples, and markers stay few."""
    for page in PAGES:
        name = str(page.relative_to(ROOT))
        blocks = [b for b in BLOCKS if b.page == name]
        assert any(b.not_run is None for b in blocks), f"{name}: no runnable ```python/```bash block"
        assert sum(b.not_run is not None for b in blocks) <= 3, f"{name}: too many not-run markers"


@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples(page: str, venv: Path, page_dirs: dict[str, Path]) -> None:
    """A page's blocks in order, in one directory (a block may use what an earlier one made):
    one test per page, so no test distribution can split a page across workers."""
    ran = 0
    for block in (b for b in BLOCKS if b.page == page):
        if block.not_run is not None:
            continue
        proc = run_block(block, venv, page_dirs[page])
        if proc.returncode != 0:
            pytest.fail(failure_report(block, proc), pytrace=False)
        ran += 1
    assert ran > 0, f"{page}: no block ran"


def test_parser_and_runner_can_fail(venv: Path, tmp_path: Path) -> None:
    """Markers apply only to the very next fence; a failing python or bash line fails its block."""
    text = ("# t\n<!-- not-run: needs make -->\n```bash\nmake test\n```\n\n"
            "<!-- not-run: too far -->\n\n```python\nraise SystemExit(3)\n```\n"
            "```bash\nfalse\necho unreachable\n```\n```text\nnot code\n```\n```python\nprint('ok')\n```\n")
    blocks = parse_blocks(text, "t.md")
    assert [(b.lang, b.not_run) for b in blocks] == [
        ("bash", "needs make"), ("python", None), ("bash", None), ("python", None)]
    cwd = tmp_path / "page"
    cwd.mkdir()
    results = [run_block(b, venv, cwd, timeout=120) for b in blocks[1:]]
    assert [r.returncode for r in results] == [3, 1, 0], [failure_report(b, r) for b, r in zip(blocks[1:], results)]
    assert "unreachable" not in results[1].stdout  # bash -e stopped at `false`
    assert "raise SystemExit(3)" in failure_report(blocks[1], results[0])
    with pytest.raises(ValueError, match="unclosed"):
        parse_blocks("```python\nx = 1\n", "t.md")
