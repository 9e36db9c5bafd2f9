"""Build the collection as a static HTML site (``make book``): build/book/html/index.html.

Sphinx with myst-nb renders the notebooks from their stored outputs (nothing is executed), the instructor
guide, the recipes and the topic pages of ``docs/``, an API reference generated from the package's docstrings,
and a landing page from its own source, ``docs/index.md`` (the README links to the same pages). myst-nb is
the engine Jupyter Book 1 runs on; using it directly keeps the set of dependencies small (Sphinx's built-in
theme, no theme packages) and the configuration one plain ``conf.py`` written here. Everything works offline.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_paths import all_notebooks, core, deep_dives, relative  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = all_notebooks()
DOCS = {"instructor_guide": ROOT / "docs" / "instructor_guide.md", "recipes": ROOT / "docs" / "recipes.md",
        "glossary": ROOT / "docs" / "glossary.md",
        **{name: ROOT / "docs" / f"{name}.md" for name in (
            "results", "why_eval_fails", "remedies", "normalisation", "your_code", "cli", "package", "data",
            "libraries", "reproducibility", "lab", "tests")}}
LANDING = ROOT / "docs" / "index.md"
#: The landing page's tables of contents: caption -> pages (the notebooks' captions come first).
CONTENTS = {"Results": ["results", "why_eval_fails", "remedies", "normalisation"],
            "Your own code and the package": ["your_code", "recipes", "cli", "package", "data", "libraries", "api"],
            "For instructors and maintainers": ["lab", "instructor_guide", "glossary", "reproducibility", "tests"]}
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
               "mamlkit.adapt", "mamlkit.evaluate", "mamlkit.data.omniglot", "mamlkit.data.download",
               "mamlkit.experiments", "mamlkit.experiments.cache", "mamlkit.experiments.intervals",
               "mamlkit.your_code.diagnosis",
               "mamlkit.your_code.checker", "mamlkit.lessons.predictions"]


def page_names() -> dict[str, str]:
    """Repository path of every file that becomes a page -> its page name in the flat staging folder."""
    names = {f"notebooks/{relative(nb)}": page_name(nb) for nb in NOTEBOOKS}
    names.update({f"docs/{path.name}": name for name, path in DOCS.items()})
    names["README.md"] = names["docs/index.md"] = "index"
    return names


def page_name(notebook: Path) -> str:
    """A notebook's page in the flat site: the core path's by file name, a deep dive's prefixed ``deep_dive_``."""
    return f"deep_dive_{notebook.stem}" if notebook.parent.name == "deep_dives" else notebook.stem


def rewrite_links(text: str, here: str, pages: dict[str, str], built: bool = False) -> str:
    """Links of a file at repository path ``here`` rewritten for the flat site (see the module docstring).

    ``built``: link the built pages (``.html``), for Markdown that Sphinx does not resolve (a cell's output)."""

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
            suffix = ".html" if built else ".ipynb" if key.endswith(".ipynb") else ".md"
            return f"[{label}]({pages[key]}{suffix}{'#' + anchor if anchor else ''})"
        return label if label.startswith("`") else f"`{label}`"
    return LINK.sub(repl, text)


def landing_page(pages: dict[str, str], source: Path = LANDING) -> str:
    """The landing page: ``docs/index.md`` (the answer, the central table, where to go), then the contents.

    It fails loudly where the source is missing, has no title or no table, or where the contents name a page
    that is not built: an empty landing page must not pass for one."""
    if not source.is_file():
        raise SystemExit(f"the book's landing page needs {source}")
    text = source.read_text()
    if not text.startswith("# ") or not re.search(r"(?m)^\| --- \|", text):
        raise SystemExit(f"{source}: the landing page must start with a title and hold the central table")
    missing = sorted({p for group in CONTENTS.values() for p in group} - set(DOCS) - {"api"})
    if missing:
        raise SystemExit(f"the landing page's contents name pages that are not built: {missing}")
    body = rewrite_links(text, f"docs/{source.name}", pages)
    tocs = {"The core path": [page_name(nb) for nb in core()], "Deep dives": [page_name(nb) for nb in deep_dives()],
            **CONTENTS}
    return body + "".join(f"\n```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n\n" + "\n".join(names) + "\n```\n"
                          for caption, names in tocs.items())


def without_solution(source: str) -> str:
    """``source`` with every solution region replaced by the student edition's stub (same indentation)."""
    stubbed = SOLUTION.sub(lambda m: STUB.format(m.group(1)), source)
    if BEGIN in stubbed or END in stubbed:
        raise ValueError(f"unbalanced solution markers in:\n{source}")
    return stubbed


def stage_notebook(path: Path, pages: dict[str, str]) -> nbformat.NotebookNode:
    """The notebook as students may read it (no solutions, no instructor cells), its links rewritten (in markdown
    cells and in the Markdown that cells display), and a note where it holds widgets."""
    nb = nbformat.read(path, as_version=4)
    here = f"notebooks/{relative(path)}"
    nb.cells = [c for c in nb.cells if "instructor" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code" and (BEGIN in cell.source or cell.get("metadata", {}).get("nbgrader", {})
                                         .get("solution")):
            cell.source = without_solution(cell.source)
            cell.outputs = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, here, pages)
        for out in cell.get("outputs", []):       # Markdown that a cell displays (IPython.display.Markdown)
            markdown = out.get("data", {}).get("text/markdown")
            if markdown is not None:
                text = "".join(markdown) if isinstance(markdown, list) else markdown
                out["data"]["text/markdown"] = rewrite_links(text, here, pages, built=True)
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
        nbformat.write(stage_notebook(path, pages), src / f"{page_name(path)}.ipynb")


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
