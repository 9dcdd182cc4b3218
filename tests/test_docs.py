"""Every relative link in README.md and docs/ resolves (issue 13): the README is short and
points into docs/, so a moved or renamed page must not leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and [text](target "title"); images too. Reference-style links are not used.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))  # code blocks hold no links
    return LINK.findall(text)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_pages_exist() -> None:
    assert (ROOT / "docs").is_dir() and len(PAGES) > 1


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def dead_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file or heading does not exist."""
    dead = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            dead.append(f"{target} (no file {resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            dead.append(f"{target} (no heading #{anchor})")
    return dead


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert not dead_links(page), f"{page.relative_to(ROOT)}: dead links: {dead_links(page)}"


def test_link_check_can_fail(tmp_path: Path) -> None:
    """The check finds a dead file and a dead anchor, and accepts good ones and URLs."""
    (tmp_path / "there.md").write_text("## Some Section\n", encoding="utf-8")
    page = tmp_path / "p.md"
    page.write_text("# Title\n[a](missing.md) [b](#nope) [c](#title) [d](there.md#some-section)\n"
                    "[e](https://example.org/x) [f](there.md#gone)\n```\n[g](in-code.md)\n```\n",
                    encoding="utf-8")
    dead = dead_links(page)
    assert [d.split(" ")[0] for d in dead] == ["missing.md", "#nope", "there.md#gone"]
