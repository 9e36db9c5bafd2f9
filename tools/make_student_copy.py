"""Make the student edition of every lesson with exercises, and the instructor guide (``make student-copy``).

Usage: python tools/make_student_copy.py [--notebooks notebooks] [--out build]

The committed notebooks are the instructor (reading) edition: they hold the solutions, so that ``make test``
runs and checks them. Exercise cells are in nbgrader's format: a solution cell has nbgrader metadata
``solution: true`` and its answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; the check cell after
it is an autograded cell (``grade: true``, one point) that asserts the check passed.

For every notebook that has such cells, this tool runs ``nbgrader generate_assignment`` (in a temporary
course folder) and writes the release version to ``build/student/``: outputs cleared, every solution region
replaced by ``raise NotImplementedError()``, check cells locked. Two things nbgrader does not do are done
before it runs: cells tagged ``instructor`` are dropped, and in cells tagged ``guess`` the numbers of the
``my_guess`` dict are replaced by ``...`` (so the measurement refuses to run until the student has guessed).

The lessons without exercises are copied to ``build/student/`` too, with their stored outputs (instructor cells
dropped, guesses blanked), so that the student edition is the whole collection: ``make lab`` opens it, starting
at ``01_train_eval_basics.ipynb``, with the deep dives in ``deep_dives/`` as committed. The recorded measurements
some lessons read (``../data/records`` from a core notebook, ``../../data/records`` from a deep dive) are copied
to ``build/data/records``.

Also written: ``build/student/README.md`` (how to install mamlkit without the solved notebooks) and
``build/instructor/instructor_guide.md`` (``docs/instructor_guide.md`` plus every solution cell).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_paths import all_notebooks, relative  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RECORDS = ROOT / "data" / "records"
GUIDE = ROOT / "docs" / "instructor_guide.md"
INSTRUCTOR_TAG = "instructor"
GUESS_TAG = "guess"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

STUDENT_README = """# Student edition

These notebooks are the exercises' edition of the mamlkit lessons: each exercise cell says
`raise NotImplementedError()` where your code goes, and the cell after it checks your answer.

Install the package alone (no solved notebooks come with it), from the wheel your instructor gives you:

    pip install -c constraints.txt mamlkit-0.1.0-py3-none-any.whl

(an instructor builds it with `pip wheel --no-deps -w dist .` in the repository; the wheel holds the `mamlkit`
package only). Then open the notebooks with `jupyter lab`.
"""


def tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def has_exercises(nb: nbformat.NotebookNode) -> bool:
    return any(is_solution(c) for c in nb.cells)


def blank_guesses(source: str) -> str:
    """``source`` with the values of its ``my_guess = {...}`` dict replaced by ``...``."""
    tree = ast.parse(source)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "my_guess" for t in node.targets)):
            lines = source.splitlines(keepends=True)
            for value in sorted(node.value.values, key=lambda v: (v.lineno, v.col_offset), reverse=True):
                line = lines[value.lineno - 1]
                lines[value.lineno - 1] = line[: value.col_offset] + "..." + line[value.end_col_offset:]
            return "".join(lines)
    raise ValueError("a cell tagged 'guess' has no my_guess = {...} dict")


def prepared(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook nbgrader is given: instructor cells dropped, guesses blanked (``nb`` is not changed)."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if INSTRUCTOR_TAG in tags(cell):
            continue
        if GUESS_TAG in tags(cell):
            cell.source = blank_guesses(cell.source)
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb


def copied(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A lesson without exercises as students get it: outputs kept, instructor cells dropped, guesses blanked."""
    nb = copy.deepcopy(nb)
    if any(is_solution(c) or BEGIN in c.source for c in nb.cells):
        raise ValueError("a notebook with solutions must go through nbgrader, not be copied")
    cells = []
    for cell in nb.cells:
        if INSTRUCTOR_TAG in tags(cell):
            continue
        if GUESS_TAG in tags(cell):
            cell.source = blank_guesses(cell.source)
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    nb.cells = cells
    return nb


def tool_env() -> dict[str, str]:
    """The environment for nbgrader: it runs ``alembic`` from the same environment as this Python."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def generate(sources: list[Path], course: Path, notebooks: Path = NOTEBOOKS) -> dict[str, Path]:
    """``nbgrader generate_assignment`` for each notebook, one assignment each, in course folder ``course``;
    returns each released notebook by its path under ``notebooks`` (``deep_dives/…`` for a deep dive)."""
    released = {}
    for path in sources:
        name = path.stem
        folder = course / "source" / name
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(prepared(nbformat.read(path, as_version=4)), folder / path.name)
        result = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force",
             f"--CourseDirectory.root={course}", "--log-level=WARN"],
            capture_output=True, text=True, timeout=300, env=tool_env(),
        )
        out = course / "release" / name / path.name
        if result.returncode != 0 or not out.is_file():
            raise RuntimeError(f"nbgrader generate_assignment failed for {path.name}:\n{result.stderr[-2000:]}")
        released[relative(path, notebooks)] = out
    return released


def solutions(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``(grade_id, source)`` of every solution cell, in order."""
    return [(c.metadata["nbgrader"]["grade_id"], c.source) for c in nb.cells if is_solution(c)]


def instructor_guide(notebooks: list[Path], guide: str) -> str:
    """The committed guide followed by every notebook's solution cells, so the two never drift apart."""
    parts = [guide.rstrip("\n"), "", "## Appendix: the reference solutions, as in the committed notebooks", "",
             "Generated by `tools/make_student_copy.py` from the nbgrader solution cells of the notebooks.", ""]
    for path in notebooks:
        for grade_id, source in solutions(nbformat.read(path, as_version=4)):
            parts += [f"### {path.stem}: {grade_id}", "", "```python", source.rstrip("\n"), "```", ""]
    return "\n".join(parts)


def make(notebooks: Path = NOTEBOOKS, out: Path = ROOT / "build", guide: Path = GUIDE) -> tuple[list[Path], Path]:
    """Write the student edition and the instructor guide under ``out``; returns the paths of the released
    notebooks (those with exercises) and of the guide. The lessons without exercises are copied beside them.
    The layout is the committed one: the core path at the top, the deep dives in ``deep_dives/``."""
    lessons = all_notebooks(notebooks)
    sources = [p for p in lessons if has_exercises(nbformat.read(p, as_version=4))]
    if not sources:
        raise ValueError(f"no notebook in {notebooks} has nbgrader solution cells: nothing to turn into exercises")
    student_dir, guide_path = out / "student", out / "instructor" / "instructor_guide.md"
    with tempfile.TemporaryDirectory() as course:
        released = generate(sources, Path(course), notebooks)
        if student_dir.exists():
            shutil.rmtree(student_dir)
        (student_dir / "deep_dives").mkdir(parents=True)
        written = [Path(shutil.copy(path, student_dir / name)) for name, path in released.items()]
    for path in lessons:
        if path not in sources:
            nbformat.write(copied(nbformat.read(path, as_version=4)), student_dir / relative(path, notebooks))
    if RECORDS.is_dir():
        records = out / "data" / "records"
        if records.exists():
            shutil.rmtree(records)
        shutil.copytree(RECORDS, records)
    (student_dir / "README.md").write_text(STUDENT_README)
    guide_path.parent.mkdir(parents=True, exist_ok=True)
    guide_path.write_text(instructor_guide(sources, guide.read_text()))
    return written, guide_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="the folder of committed notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="folder for student/ and instructor/")
    args = parser.parse_args(argv)
    try:
        written, guide_path = make(args.notebooks, args.out)
    except (OSError, ValueError, SyntaxError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    student_dir = args.out / "student"
    lessons = all_notebooks(student_dir)
    print(f"student edition:  {len(lessons)} notebooks in {student_dir} ({len(written)} with exercises)")
    print(f"instructor guide: {guide_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
