"""Open-in-Colab and Binder badges, and the Colab set-up cell, for a published copy of the collection.

The badges and the set-up cell need the public repository's address, which only exists once the
collection is published. Run this once then (``make reach REPO=owner/name``); it is idempotent, so
running it again (for example with another branch) rewrites what it wrote before and nothing else:

- ``pyproject.toml``: ``[project.urls]`` with the repository and the book's GitHub Pages address;
- ``README.md``: Colab, Binder and book badges under the title;
- every notebook: the same badges (for that notebook) at the end of its title cell, and a first code
  cell that installs mamlkit only where it is missing (Colab): it clones the repository, installs it
  with pip (torch as Colab ships it), and moves into the clone's ``notebooks/`` folder so that the
  lesson models that ship with the collection are found. Where mamlkit imports (a local clone, Binder,
  CI) the cell does nothing.

``--check`` reports whether the files carry what this tool would write for the repository named in
``pyproject.toml`` (nothing to check while none is named).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_paths import all_notebooks, relative  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")
BEGIN, END = "<!-- reach: written by tools/reach.py -->", "<!-- /reach -->"
SETUP_TAG = "colab-setup"  # the book leaves the cell out ("remove-cell"); the form tests skip it
URLS = re.compile(r"\n\[project\.urls\]\n(?:[^\[\n][^\n]*\n|\n)*?(?=\n\[|\Z)")

SETUP_CELL = '''# Colab set-up: installs mamlkit only where it is missing; a local clone, Binder and CI skip it.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("mamlkit") is None:
    repo = os.path.abspath("mamlkit-repo")
    if not os.path.isdir(repo):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}", "{url}.git", repo], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", repo], check=True)
    sys.path.insert(0, repo)                     # an editable install is seen by new kernels only
    os.chdir(os.path.join(repo, "notebooks", {folder}))  # where the notebook is: it reads ../data (or ../../data)'''


class ReachError(Exception):
    """Bad arguments or files, with what to do."""


def repo_url(slug: str) -> str:
    return f"https://github.com/{slug}"


def book_url(slug: str) -> str:
    owner, name = slug.split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def badges(slug: str, branch: str, notebook: str | None) -> str:
    """Markdown badges; ``notebook`` is a path under ``notebooks/`` (None: the README's, opening notebook 01)."""
    target = notebook or "01_train_eval_basics.ipynb"
    colab = f"https://colab.research.google.com/github/{slug}/blob/{branch}/notebooks/{target}"
    binder = f"https://mybinder.org/v2/gh/{slug}/{branch}?labpath=notebooks%2F{target.replace('/', '%2F')}"
    parts = [
        f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})",
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})",
    ]
    if notebook is None:
        parts.append(f"[![Book](https://img.shields.io/badge/book-read-blue)]({book_url(slug)})")
    return f"{BEGIN}\n{' '.join(parts)}\n{END}"


def _replace_block(text: str, block: str, after_title: bool) -> str:
    """``text`` with the reach block replaced, or added (under the first line, or at the end)."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    if after_title:
        title, _, rest = text.partition("\n")
        return f"{title}\n\n{block}\n{rest}"
    return f"{text.rstrip()}\n\n{block}"


def _setup_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": SETUP_TAG,
            "metadata": {"tags": [SETUP_TAG, "remove-cell"]}, "outputs": [], "source": source.splitlines(keepends=True)}


def reach_notebook(path: Path, slug: str, branch: str, notebooks: Path | None = None) -> str:
    """The notebook's JSON text with badges in its title cell and the set-up cell first among code cells."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    if not cells or cells[0]["cell_type"] != "markdown":
        raise ReachError(f"{path}: the first cell must be the markdown title cell")
    title = "".join(cells[0]["source"])
    under = relative(path, notebooks or path.parent)
    cells[0]["source"] = _replace_block(title, badges(slug, branch, under), after_title=False).splitlines(
        keepends=True)
    cells[:] = [c for c in cells if SETUP_TAG not in c.get("metadata", {}).get("tags", [])]
    folder = repr(Path(under).parent.as_posix()) if "/" in under else '""'
    cells.insert(1, _setup_cell(SETUP_CELL.format(url=repo_url(slug), branch=branch, folder=folder)))
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def reach_pyproject(text: str, slug: str) -> str:
    block = (f'\n[project.urls]\nRepository = "{repo_url(slug)}"\nBook = "{book_url(slug)}"\n')
    if URLS.search(text):
        return URLS.sub(lambda _: block, text, count=1)
    head, sep, rest = text.partition("\n[project.optional-dependencies]")
    if not sep:
        raise ReachError("pyproject.toml has no [project.optional-dependencies] table to put [project.urls] before")
    return f"{head}{block}{sep}{rest}"


def badge_branch(root: Path) -> str:
    """The branch the README's Colab badge opens (``main`` where there is no badge yet)."""
    match = re.search(r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/(.+?)/notebooks/",
                      (root / "README.md").read_text())
    return match.group(1) if match else "main"


def named_repository(root: Path) -> str | None:
    """The ``owner/name`` of ``[project.urls] Repository`` in pyproject.toml, or None."""
    match = re.search(r'^Repository = "https://github\.com/([^"]+)"$', (root / "pyproject.toml").read_text(), re.M)
    return match.group(1) if match else None


def planned(root: Path, slug: str, branch: str) -> dict[Path, str]:
    """Every file this tool writes, with the text it would have."""
    if not SLUG.match(slug):
        raise ReachError(f"--repo must look like owner/name (a GitHub repository), got {slug!r}")
    if not BRANCH.match(branch):
        raise ReachError(f"--branch must be a branch name, got {branch!r}")
    readme = root / "README.md"
    pyproject = root / "pyproject.toml"
    files = {
        pyproject: reach_pyproject(pyproject.read_text(), slug),
        readme: _replace_block(readme.read_text(), badges(slug, branch, None), after_title=True),
    }
    notebooks = all_notebooks(root / "notebooks")
    if not notebooks:
        raise ReachError(f"no numbered notebooks in {root / 'notebooks'}")
    for path in notebooks:
        files[path] = reach_notebook(path, slug, branch, root / "notebooks")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", help="the public GitHub repository, owner/name")
    parser.add_argument("--branch", default=None,
                        help="the branch the badges open (default main; --check: the branch of the README's badge)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the collection's folder (default: this checkout)")
    parser.add_argument("--check", action="store_true",
                        help="only report whether the files match the repository named in pyproject.toml")
    args = parser.parse_args(argv)
    try:
        if args.check:
            slug = args.repo or named_repository(args.root)
            if slug is None:
                print("no repository named in pyproject.toml ([project.urls] Repository): nothing to check")
                return 0
            branch = args.branch or badge_branch(args.root)
            stale = [str(p.relative_to(args.root)) for p, text in planned(args.root, slug, branch).items()
                     if p.read_text() != text]
            if stale:
                print(f"not up to date for {slug} ({branch}): {', '.join(stale)}; run: make reach REPO={slug}")
                return 1
            print(f"badges and set-up cells match {slug} ({branch})")
            return 0
        if not args.repo:
            raise ReachError("name the published repository: --repo owner/name (make reach REPO=owner/name)")
        args.branch = args.branch or "main"
        files = planned(args.root, args.repo, args.branch)
    except ReachError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, text in files.items():   # all texts are computed first, so a bad file leaves nothing half-written
        if path.read_text() != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
    print(f"wrote badges for {args.repo} ({args.branch}) into README.md, pyproject.toml and {len(files) - 2} "
          "notebooks; re-execute nothing: the set-up cell does nothing where mamlkit is installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
