"""Every relative link of the README and of docs/ leads to a file of the repository, and every anchor to a heading.

Anchors are GitHub's heading slugs (what github.com and the book's myst heading anchors both produce): the
heading's text, lower-cased, without punctuation other than ``-`` and ``_``, spaces turned into ``-``, and
``-1``, ``-2`` … appended to repeats. A link into a notebook may name a heading of its Markdown cells. Web
addresses are not fetched (nothing here goes online); the browser test of the book checks the rendered site.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?ms)^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$")
CODE_SPAN = re.compile(r"`+[^`\n]*`+")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"(?m)^[ \t]{0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
HTML_ID = re.compile(r"""<[^>]+\b(?:id|name)=["']([^"']+)["']""")


def prose(markdown: str) -> str:
    """The text a reader sees as Markdown: fenced code blocks removed, code spans blanked (links stay links)."""
    return CODE_SPAN.sub(lambda m: "CODE", FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's Markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)          # a link in a heading: its label
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a Markdown text offers: its headings' slugs (repeats numbered) and explicit HTML ids."""
    seen: dict[str, int] = {}
    out = set(HTML_ID.findall(markdown))
    for match in HEADING.finditer(FENCE.sub("", markdown)):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def anchors_of(path: Path) -> set[str]:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return anchors("\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"))
    return anchors(path.read_text())


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """``path``'s relative links (and anchors) that lead nowhere, each with the reason."""
    text = path.read_text() if text is None else text
    bad = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            continue                                             # a web address, mailto: ...: not checked offline
        file_part, _, anchor = target.partition("#")
        where = (path.parent / file_part).resolve() if file_part else path
        if not where.exists():
            bad.append(f"{target}: no such file")
        elif anchor and where.is_dir():
            bad.append(f"{target}: an anchor into a folder")
        elif anchor and where.suffix not in (".md", ".ipynb"):
            bad.append(f"{target}: anchors are only checked in Markdown and notebooks")
        elif anchor and anchor not in anchors_of(where):
            bad.append(f"{target}: no heading with that anchor in {where.name}")
    return bad


def test_the_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/results.md"} <= names, names


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path):
    bad = broken_links(path)
    assert not bad, f"{path.relative_to(ROOT)}: broken links:\n" + "\n".join(bad)


def test_the_link_check_catches_broken_links_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Why eval mode fails, *really*?\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "page.md"
    text = ("# Page\n\n## Start here\n\n[ok](other.md) [ok](other.md#why-eval-mode-fails-really) [ok](#start-here)\n"
            "[ok](other.md#notes-1) [web](https://example.org/x) [`code` label](other.md#notes)\n"
            "[gone](missing.md) [bad anchor](other.md#nowhere) [bad local](#nowhere)\n"
            "```\n[in a code block](missing-too.md)\n```\n"
            "`[in a code span](missing-three.md)`\n")
    page.write_text(text)
    assert broken_links(page) == ["missing.md: no such file", "other.md#nowhere: no heading with that anchor in "
                                  "other.md", "#nowhere: no heading with that anchor in page.md"]


def test_slugs_are_githubs():
    assert slug("Dropout: one `.eval()`, two decisions") == "dropout-one-eval-two-decisions"
    assert slug("Why one example at a time survives here, and not in TaskNorm's table") == (
        "why-one-example-at-a-time-survives-here-and-not-in-tasknorms-table")
    assert slug("What `make test` runs") == "what-make-test-runs"
    assert slug("`mk.placement_report`: every placement") == "mkplacement_report-every-placement"


def test_the_readme_is_the_front_door():
    """The README stays what a newcomer reads in minutes: at most 150 lines and 1,200 words (as ``wc -w`` counts
    them), with the answer, the two commands and the one table; everything measured lives on the pages of docs/."""
    text = (ROOT / "README.md").read_text()
    lines, words = len(text.splitlines()), len(text.split())
    assert lines <= 150 and words <= 1200, f"README.md: {lines} lines and {words} words; move detail to docs/"
    for part in ("## The answer", "## The result", "make lab", "make test", "| transductive (train / train) |",
                 "(docs/results.md)"):
        assert part in text, part
