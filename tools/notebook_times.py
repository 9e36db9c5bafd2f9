"""Compute each notebook's "Time needed" and the path table of notebook 01 (``make times``).

Usage:
    python tools/notebook_times.py            # print the table
    python tools/notebook_times.py --write    # rewrite each notebook's "Time needed" line and 01's path table
    python tools/notebook_times.py --check    # exit 1 where a stated time or the table is not the computed one

A notebook's time is what a student spends on it, counted from the notebook itself:

- reading: the words of its Markdown cells at 150 words a minute;
- running: its cells' run time, as ``tools/execute_notebooks.py`` measured and stored it (``mamlkit.run_seconds``
  in the notebook's metadata, on the developers' 2-core machine);
- exercises: 7 minutes for each nbgrader solution cell (write a short function, run its check, read the feedback);
- predictions: 1 minute for each prediction cell (tagged ``guess``).

The sum is rounded up to a whole minute. Only the "Time needed" line of the first cell and the table between
``<!-- path-table -->`` and ``<!-- /path-table -->`` in notebook 01, ``notebooks/README.md`` and the instructor
guide are rewritten (Markdown only: no output changes, nothing is re-executed). ``tests/test_collection.py``
recomputes all of it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_paths import NOTEBOOKS, all_notebooks, core, deep_dives, relative  # noqa: E402

WORDS_PER_MINUTE = 150
EXERCISE_MINUTES = 7
PREDICTION_MINUTES = 1
CORE_LIMIT_MINUTES = 120
TIME_LINE = re.compile(r"^\*\*Time needed\*\*:.*$", re.MULTILINE)
#: Pages outside the notebooks that show the same table, with the prefix that makes its links resolve there.
TABLE_PAGES = {NOTEBOOKS / "README.md": "", NOTEBOOKS.parent / "docs" / "instructor_guide.md": "../notebooks/"}
TABLE = re.compile(r"(<!-- path-table -->\n).*?(<!-- /path-table -->)", re.DOTALL)


@dataclass(frozen=True)
class NotebookTime:
    path: Path
    title: str
    words: int
    run_seconds: int
    exercises: int
    predictions: int

    @property
    def minutes(self) -> int:
        total = (self.words / WORDS_PER_MINUTE + self.run_seconds / 60
                 + EXERCISE_MINUTES * self.exercises + PREDICTION_MINUTES * self.predictions)
        return math.ceil(total)

    def line(self) -> str:
        parts = [f"{self.words:,} words to read"]
        if self.exercises:
            parts.append(f"{self.exercises} exercise{'s' * (self.exercises > 1)}")
        if self.predictions:
            parts.append(f"{self.predictions} prediction{'s' * (self.predictions > 1)}")
        parts.append(f"cells that run in about {self.run_seconds} s on 2 CPU cores")
        return (f"**Time needed**: about {self.minutes} minutes ({', '.join(parts)}; "
                f"computed by `tools/notebook_times.py`).")


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def measure(path: Path) -> NotebookTime:
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    words = sum(len(_text(c).split()) for c in cells if c["cell_type"] == "markdown")
    run = nb.get("metadata", {}).get("mamlkit", {}).get("run_seconds")
    if run is None:
        raise SystemExit(f"{relative(path)} has no stored run time: execute it with tools/execute_notebooks.py")
    exercises = sum(bool(c.get("metadata", {}).get("nbgrader", {}).get("solution")) for c in cells)
    predictions = sum("guess" in _tags(c) for c in cells)
    title = _text(cells[0]).splitlines()[0].lstrip("# ").split(" · ", 1)[-1]
    return NotebookTime(path, title, words, int(run), exercises, predictions)


def path_table(folder: Path = NOTEBOOKS, prefix: str = "") -> str:
    """The Markdown table of the core path and the deep dives, with each one's computed time; ``prefix`` is
    put before each link (the links are relative to ``notebooks/``)."""
    rows = ["| | notebook | time |", "| --- | --- | --- |"]
    core_times = [measure(p) for p in core(folder)]
    for t in core_times:
        rows.append(f"| {t.path.name[:2]} | [{t.title}]({prefix}{relative(t.path, folder)}) | {t.minutes} min |")
    rows.append(f"| | **the core path** | **{sum(t.minutes for t in core_times)} min** |")
    rows += ["", "Deep dives, each standing alone, after the core path:", ""]
    rows += ["| deep dive | time |", "| --- | --- |"]
    for p in deep_dives(folder):
        t = measure(p)
        rows.append(f"| [{t.title}]({prefix}{relative(p, folder)}) | {t.minutes} min |")
    return "\n".join(rows) + "\n"


def core_minutes(folder: Path = NOTEBOOKS) -> int:
    return sum(measure(p).minutes for p in core(folder))


def rewritten(path: Path, folder: Path = NOTEBOOKS) -> dict:
    """The notebook with its time line (and, for 01, its path table) as computed; the file is not written."""
    nb = json.loads(path.read_text())
    first = _text(nb["cells"][0])
    if not TIME_LINE.search(first):
        raise SystemExit(f"{relative(path, folder)}: its first cell has no '**Time needed**:' line")
    first = TIME_LINE.sub(measure(path).line().replace("\\", r"\\"), first, count=1)
    if path == core(folder)[0]:
        if not TABLE.search(first):
            raise SystemExit(f"{relative(path, folder)}: no <!-- path-table --> markers in its first cell")
        first = TABLE.sub(lambda m: m.group(1) + path_table(folder) + m.group(2), first, count=1)
    nb["cells"][0]["source"] = first.splitlines(keepends=True)
    return nb


def _dump(nb: dict) -> str:
    """As nbformat writes a notebook (the form ``tools/execute_notebooks.py`` stores)."""
    return nbformat.writes(nbformat.from_dict(nb)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the time lines and 01's path table")
    group.add_argument("--check", action="store_true", help="exit 1 where a stated time is not the computed one")
    args = parser.parse_args(argv)
    stale = []
    for page, prefix in TABLE_PAGES.items():
        listed = TABLE.sub(lambda m, prefix=prefix: m.group(1) + path_table(prefix=prefix) + m.group(2),
                           page.read_text(), count=1)
        if listed != page.read_text():
            stale.append(page.relative_to(NOTEBOOKS.parent).as_posix())
            if args.write:
                page.write_text(listed)
    for path in all_notebooks():
        nb = rewritten(path)
        if nb["cells"][0]["source"] != json.loads(path.read_text())["cells"][0]["source"]:
            stale.append(relative(path))
            if args.write:
                path.write_text(_dump(nb))
    print(path_table(), end="")
    if args.check and stale:
        print("stated times that are not the computed ones (run `make times`): " + ", ".join(stale))
        return 1
    if args.write:
        print(f"rewritten: {', '.join(stale) or 'nothing (all up to date)'}")
    limit = core_minutes()
    print(f"core path: {limit} min (limit {CORE_LIMIT_MINUTES})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
