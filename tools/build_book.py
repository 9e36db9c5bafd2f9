"""Build the collection as a static HTML site (``make book``): build/book/html/index.html.

Sphinx with myst-nb renders the notebooks from their stored outputs (nothing is executed), the instructor
guide and the recipes, an API reference generated from the package's docstrings, and a landing page made
of the README's short answer, measured tables and why eval mode fails. myst-nb is the engine Jupyter Book 1
runs on; using it directly keeps the set of dependencies small (Sphinx's built-in theme, no theme packages) and the
configuration one plain ``conf.py`` written here. Everything works offline.

The sources are staged into build/book/src first, so that links between notebooks and documents can be
rewritten for one flat folder: a link to a notebook or document that is part of the book becomes a link
to its page; a link to any other file of the repository (a script, a JSON record) becomes plain code
text, since the site does not carry those files.

The notebook pages are for students: every exercise's solution (nbgrader's ``### BEGIN SOLUTION`` region) is
replaced by the stub the student edition has, and cells tagged ``instructor`` are left out; the solutions are on
the instructor guide's page. Printed text wraps at words, and wide tables and code scroll inside their box
(``mamlkit.css``), so that no page scrolls sideways.

    python tools/build_book.py            # build/book/html
    python tools/build_book.py --out DIR  # elsewhere
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DOCS = {"instructor_guide": ROOT / "docs" / "instructor_guide.md", "recipes": ROOT / "docs" / "recipes.md"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_MARK = ('<p class="widget-mark"><em>[An interactive widget is here: run the notebook in JupyterLab to use '
               'it.]</em></p>')
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION = re.compile(r"(?m)^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*\n?", re.S)
STUB = "{0}# your code here (the reference solution is in the instructor guide)\n{0}raise NotImplementedError()\n"
CSS = """\
/* No page scrolls sideways: printed text wraps at words, wide tables and code scroll inside their own box. */
div.cell_output pre, div.output pre { white-space: pre-wrap; overflow-wrap: break-word; word-break: normal; }
div.cell_output table, div.body table { display: block; max-width: 100%; overflow-x: auto; }
div.cell_input pre, div.highlight pre { overflow-x: auto; max-width: 100%; }
div.cell_output img { max-width: 100%; height: auto; }
"""

CONF = '''\
project = "mamlkit"
author = "the mamlkit authors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
nb_execution_mode = "off"                 # the stored outputs are the book: nothing is re-run
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = "mamlkit: should I call model.eval() in MAML?"
html_theme_options = {"description": "where .train() and .eval() belong in MAML, measured", "page_width": "1180px",
                      "sidebar_width": "260px"}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
suppress_warnings = ["mystnb.unknown_mime_type", "myst.xref_missing"]
html_static_path = ["_static"]
html_css_files = ["mamlkit.css"]
exclude_patterns = ["_build"]
'''

API_MODULES = ["mamlkit", "mamlkit.tasks", "mamlkit.models", "mamlkit.modes", "mamlkit.placements",
               "mamlkit.adapt", "mamlkit.evaluate", "mamlkit.diagnosis", "mamlkit.checker", "mamlkit.predictions",
               "mamlkit.experiments", "mamlkit.cache", "mamlkit.data.omniglot", "mamlkit.data.download"]


def page_names() -> dict[str, str]:
    """Repository path of every file that becomes a page -> its page name in the flat staging folder."""
    names = {f"notebooks/{nb.name}": nb.stem for nb in NOTEBOOKS}
    names.update({f"docs/{path.name}": name for name, path in DOCS.items()})
    names["README.md"] = "index"
    return names


def rewrite_links(text: str, here: str, pages: dict[str, str]) -> str:
    """Links of a file at repository path ``here`` rewritten for the flat site (see the module docstring)."""

    def repl(match: re.Match) -> str:
        bang, label, target = match.groups()
        if bang or re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return match.group(0)                          # images, web links and anchors stay as they are
        path, _, anchor = target.partition("#")
        resolved = (ROOT / Path(here).parent / path).resolve()
        try:
            key = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            key = ""
        if key in pages:
            suffix = ".ipynb" if key.endswith(".ipynb") else ".md"
            return f"[{label}]({pages[key]}{suffix}{'#' + anchor if anchor else ''})"
        return label if label.startswith("`") else f"`{label}`"
    return LINK.sub(repl, text)


def landing_page(pages: dict[str, str]) -> str:
    """The README's title, introduction, short answer, measured table and why eval mode fails, then the contents."""
    readme = (ROOT / "README.md").read_text()
    sections = re.split(r"(?m)^(?=## )", readme)
    head = sections[0]
    keep = [s for s in sections[1:] if s.startswith(("## The short answer", "## Measured", "## Why eval mode fails"))]
    body = rewrite_links(head + "".join(keep), "README.md", pages)
    notebooks = "\n".join(nb.stem for nb in NOTEBOOKS)
    return (f"{body}\n\n```{{toctree}}\n:caption: The notebooks\n:maxdepth: 1\n\n{notebooks}\n```\n\n"
            "```{toctree}\n:caption: For instructors and engineers\n:maxdepth: 1\n\n"
            "instructor_guide\nrecipes\napi\n```\n")


def without_solution(source: str) -> str:
    """``source`` with every solution region replaced by the student edition's stub (same indentation)."""
    stubbed = SOLUTION.sub(lambda m: STUB.format(m.group(1)), source)
    if BEGIN in stubbed or END in stubbed:
        raise ValueError(f"unbalanced solution markers in:\n{source}")
    return stubbed


def stage_notebook(path: Path, pages: dict[str, str]) -> nbformat.NotebookNode:
    """The notebook as students may read it (no solutions, no instructor cells), its markdown links rewritten,
    and a note where it holds widgets."""
    nb = nbformat.read(path, as_version=4)
    here = f"notebooks/{path.name}"
    nb.cells = [c for c in nb.cells if "instructor" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code" and (BEGIN in cell.source or cell.get("metadata", {}).get("nbgrader", {})
                                         .get("solution")):
            cell.source = without_solution(cell.source)
            cell.outputs = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, here, pages)
    has_widgets = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                # a widget needs a kernel (and a JavaScript library the offline site does not load): mark its place
                out["data"] = {"text/html": WIDGET_MARK}
                has_widgets = True
    nb.metadata.pop("widgets", None)
    if has_widgets:
        note = nbformat.v4.new_markdown_cell(
            "```{note}\nThe interactive widgets of this notebook need a running Python kernel: open the notebook "
            "in JupyterLab (`make lab`) to use them. On this page each one is marked where it appears; the figures "
            "and tables the cells printed are shown as they were stored.\n```")
        nb.cells.insert(1, note)
    return nb


def api_page() -> str:
    lines = ["# API reference", "", "Generated from the docstrings of the package.", ""]
    for module in API_MODULES:
        members = [] if module == "mamlkit" else ["   :members:"]      # the package re-exports: documented once
        lines += [f"## `{module}`", "", "```{eval-rst}", f".. automodule:: {module}", *members, "```", ""]
    return "\n".join(lines)


def stage(src: Path) -> None:
    pages = page_names()
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    (src / "conf.py").write_text(CONF)
    (src / "_static").mkdir()
    (src / "_static" / "mamlkit.css").write_text(CSS)
    (src / "index.md").write_text(landing_page(pages))
    (src / "api.md").write_text(api_page())
    for name, path in DOCS.items():
        (src / f"{name}.md").write_text(rewrite_links(path.read_text(), f"docs/{path.name}", pages))
    for path in NOTEBOOKS:
        nbformat.write(stage_notebook(path, pages), src / path.name)


def build(out: Path) -> Path:
    from sphinx.cmd.build import build_main

    src = out / "src"
    html = out / "html"
    stage(src)
    if html.exists():
        shutil.rmtree(html)
    status = build_main(["-q", "-b", "html", "-d", str(out / "doctrees"), str(src), str(html)])
    if status != 0:
        raise SystemExit(f"sphinx-build failed with status {status}")
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "book"), help="output folder (default build/book)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    begin = time.perf_counter()
    html = build(Path(args.out))
    pages = len(list(html.rglob("*.html")))
    print(f"book: {pages} HTML pages in {html} ({time.perf_counter() - begin:.0f} s); open {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
