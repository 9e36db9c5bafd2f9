"""The collection as a whole: a short core path, deep dives apart, honest times, every notebook seen by every
check, every reference to a notebook resolving, and no machine's paths in what is stored (issue #33)."""

import glob
import json
import re
import shlex
import subprocess
import sys

import pytest
from conftest import load_tool

PATHS = load_tool("notebook_paths")
TIMES = load_tool("notebook_times")
ROOT = PATHS.ROOT
NOTEBOOKS = PATHS.all_notebooks()
CORE = PATHS.core()
CORE_WORD_LIMIT = 7_000
COLLECTION_WORD_LIMIT = 14_000


def cells(path):
    return json.loads(path.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def words(path):
    return sum(len(text(c).split()) for c in cells(path) if c["cell_type"] == "markdown")


def outputs_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        parts += ["".join(v) if isinstance(v, list) else str(v) for k, v in out.get("data", {}).items()
                  if k.startswith("text/")]
    return "\n".join(parts)


# --- the layout and its size --------------------------------------------------------------------------------

def test_the_word_limits_hold():
    core = sum(words(p) for p in CORE)
    total = sum(words(p) for p in NOTEBOOKS)
    assert core <= CORE_WORD_LIMIT, f"the core path has {core} words of Markdown (limit {CORE_WORD_LIMIT})"
    assert total <= COLLECTION_WORD_LIMIT, f"the collection has {total} words (limit {COLLECTION_WORD_LIMIT})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_states_its_computed_time_and_runs_in_under_two_minutes(path):
    measured = TIMES.measure(path)
    assert measured.run_seconds < 120, f"{path.name} ran {measured.run_seconds} s when last executed"
    first = text(cells(path)[0])
    assert measured.line() in first, f"stated time is not the computed one: run `make times`\n{measured.line()}"


def test_the_core_path_fits_two_hours_and_notebook_01_shows_the_computed_path():
    total = TIMES.core_minutes()
    assert total <= TIMES.CORE_LIMIT_MINUTES, f"the core path takes {total} minutes"
    first = text(cells(CORE[0])[0])
    assert TIMES.path_table() in first, "notebook 01's path table is stale: run `make times`"
    assert f"**{total} min**" in first
    for page, prefix in TIMES.TABLE_PAGES.items():
        assert TIMES.path_table(prefix=prefix) in page.read_text(), f"{page.name}'s path table is stale: `make times`"


def test_the_time_tool_counts_what_it_says(tmp_path):
    """Words at 150 a minute, the stored run time, 7 minutes an exercise, 1 a prediction, rounded up."""
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Deep dive · T\n", "**Time needed**: about 0\n"]},
        {"cell_type": "markdown", "metadata": {}, "source": [" ".join(["word"] * 291)]},
        {"cell_type": "code", "metadata": {"nbgrader": {"solution": True}}, "source": [], "outputs": []},
        {"cell_type": "code", "metadata": {"tags": ["guess"]}, "source": [], "outputs": []},
    ], "metadata": {"mamlkit": {"run_seconds": 45}}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    t = TIMES.measure(path)
    assert (t.words, t.exercises, t.predictions, t.run_seconds) == (300, 1, 1, 45)
    assert t.minutes == 11                                   # 2 + 0.75 + 7 + 1 = 10.75, rounded up


# --- every check sees every notebook ----------------------------------------------------------------------

def expanded(command_line):
    """The notebook files named (or globbed) on a command line, relative to the repository."""
    found = set()
    for arg in shlex.split(command_line):
        for match in glob.glob(str(ROOT / arg)):
            if match.endswith(".ipynb"):
                found.add(PATHS.relative(ROOT / match))
    return found


def make_dry_run(target):
    out = subprocess.run(["make", "-n", "-s", "-o", "setup", "-o", "models", target], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return out


EVERY = {PATHS.relative(p) for p in NOTEBOOKS}


def test_every_tool_and_test_sees_every_notebook():
    import test_notebook_form

    reach = load_tool("reach").planned(ROOT, "example-org/mamlkit", "main")
    seen = {
        "the book": {PATHS.relative(p) for p in load_tool("build_book").NOTEBOOKS},
        "the form and stale-number tests": {PATHS.relative(p) for p in test_notebook_form.NOTEBOOKS},
        "reach (Colab badges and set-up cells)": {PATHS.relative(p) for p in reach if p.suffix == ".ipynb"},
        "make notebooks": expanded(make_dry_run("notebooks").splitlines()[0]),
    }
    for name, notebooks in seen.items():
        assert notebooks == EVERY, f"{name} misses {sorted(EVERY - notebooks)}"
    # the seed check runs every notebook that loads a meta-trained model, wherever it lives
    checked = expanded(make_dry_run("seed-check").splitlines()[0])
    loading = {PATHS.relative(p) for p in NOTEBOOKS if re.search(r"get_meta_trained|mk\.preset\(", p.read_text())}
    assert loading and loading <= checked, sorted(loading - checked)


def test_nbval_collects_every_notebook():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval-lax", "-p",
                          "no:cacheprovider", "notebooks"], cwd=ROOT, capture_output=True, text=True).stdout
    collected = {PATHS.relative(ROOT / line.split("::")[0]) for line in out.splitlines() if ".ipynb::" in line}
    assert collected == EVERY, sorted(EVERY ^ collected)


# --- references -------------------------------------------------------------------------------------------

NOTEBOOK_NUMBER = re.compile(r"\b[Nn]otebooks? (\d{2}\b(?:(?:,| and| or| to|-|–| &) ?\d{2}\b)*)")
CORE_FILE = re.compile(r"\b(\d{2}_[a-z0-9_]+)\.ipynb")
DEEP_FILE = re.compile(r"deep_dives/([a-z0-9_]+)\.ipynb")
CORE_EXERCISE = re.compile(r"\bExercise (\d{2})\.(\d)\b")
DEEP_EXERCISE = re.compile(r"\bExercise ([a-z][a-z0-9_]+)\.(\d)\b")
DEEP_NAME = re.compile(r"\bdeep dive `?([a-z]+_[a-z0-9_]+)`?")


def referring_texts():
    """Every text of the project that may name a notebook: package, tools, tests, benchmarks, docs, README,
    the Makefile, and every notebook's cells and printed outputs."""
    here = {"tests/test_collection.py"}
    for folder, patterns in (("mamlkit", ["**/*.py"]), ("tools", ["**/*.py", "**/*.md"]), ("tests", ["**/*.py"]),
                             ("benchmarks", ["**/*.py", "**/*.md", "**/*.json"]), ("docs", ["**/*.md"]),
                             ("binder", ["*"]), (".", ["README.md", "Makefile", "BENCHMARKS.md",
                                                       "notebooks/README.md", "environment.yml", ".ci/run"])):
        for pattern in patterns:
            for path in sorted((ROOT / folder).glob(pattern)):
                name = path.relative_to(ROOT).as_posix()
                if path.is_file() and name not in here:
                    yield name, path.read_text(errors="replace")
    for path in NOTEBOOKS:
        for i, cell in enumerate(cells(path)):
            yield f"notebooks/{PATHS.relative(path)} cell {i}", text(cell) + "\n" + outputs_text(cell)


def core_by_number():
    return {p.name[:2]: p for p in CORE}


def exercises_of(path):
    return set(re.findall(r"Exercise ([a-z0-9_]+\.\d)\b", "\n".join(text(c) for c in cells(path)
                                                                      if c["cell_type"] == "markdown")))


def unresolved(name, body):
    core = core_by_number()
    deep = {p.stem: p for p in PATHS.deep_dives()}
    bad = []
    for m in NOTEBOOK_NUMBER.finditer(body):
        bad += [f"notebook {n}" for n in re.findall(r"\d{2}", m.group(1)) if n not in core]
    bad += [f"{m.group(1)}.ipynb" for m in CORE_FILE.finditer(body) if not (ROOT / "notebooks" /
                                                                           f"{m.group(1)}.ipynb").exists()]
    bad += [f"deep_dives/{m.group(1)}.ipynb" for m in DEEP_FILE.finditer(body) if m.group(1) not in deep]
    bad += [f"deep dive `{m.group(1)}`" for m in DEEP_NAME.finditer(body) if m.group(1) not in deep]
    for m in CORE_EXERCISE.finditer(body):
        label = f"{m.group(1)}.{m.group(2)}"
        if m.group(1) not in core or label not in exercises_of(core[m.group(1)]):
            bad.append(f"Exercise {label}")
    for m in DEEP_EXERCISE.finditer(body):
        if m.group(1) not in deep or f"{m.group(1)}.{m.group(2)}" not in exercises_of(deep[m.group(1)]):
            bad.append(f"Exercise {m.group(1)}.{m.group(2)}")
    return [f"{name}: {b}" for b in bad]


def test_every_reference_to_a_notebook_resolves():
    bad = [problem for name, body in referring_texts() for problem in unresolved(name, body)]
    assert not bad, "references to notebooks or exercises that do not exist:\n" + "\n".join(sorted(set(bad)))


def test_the_reference_check_catches_a_stale_reference():
    # the old numbering, once its notebooks are gone, and numbers that never existed
    assert unresolved("x", "see notebook 12 and 04_batchnorm_placements.ipynb, Exercise 09.1")
    assert len(unresolved("x", "see notebooks 01 and 42, 42_nothing.ipynb, Exercise 41.1")) == 3
    assert unresolved("x", "deep_dives/nothing_here.ipynb")
    assert not unresolved("x", f"see notebook 01 and {CORE[0].name}")


# --- clean stored state -----------------------------------------------------------------------------------

MACHINE_PATH = re.compile(r"(?<![\w.])/(?:tmp|work|home|root|Users|private|var/folders|mnt)/[\w.-]")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_output_or_widget_state_holds_a_machine_path(path):
    nb = json.loads(path.read_text())
    stored = [outputs_text(c) for c in nb["cells"]] + [json.dumps(nb.get("metadata", {}))]
    found = sorted({m.group(0) for s in stored for m in MACHINE_PATH.finditer(s)})
    assert not found, f"{path.name} stores paths of the machine it ran on: {found}"


# --- predict, then measure; exercises -----------------------------------------------------------------------

INTERVAL = re.compile(r"\d+\.\d ± \d+\.\d")


def seen_before(path, index):
    """Everything a student on the core path has seen before cell ``index`` of ``path``."""
    earlier = CORE[:CORE.index(path)] if path in CORE else []
    parts = [text(c) + "\n" + outputs_text(c) for p in earlier for c in cells(p)]
    parts += [text(c) + "\n" + outputs_text(c) for c in cells(path)[:index]]
    return "\n".join(parts)


@pytest.mark.parametrize("path", CORE[1:], ids=lambda p: p.name)
def test_each_core_notebook_asks_a_prediction_before_its_numbers_appear(path):
    nb = cells(path)
    guesses = [i for i, c in enumerate(nb) if "guess" in c.get("metadata", {}).get("tags", [])]
    assert guesses, f"{path.name} asks for no prediction"
    fresh = []
    for i in guesses:
        compared = [c for c in nb[i:] if "predictions.compare(" in text(c)]
        assert compared, f"{path.name}: the guess of cell {i} is never compared with a measurement"
        table = outputs_text({"outputs": compared[0].get("outputs", [])[-1:]})    # the comparison: its last output
        measured = INTERVAL.findall(table)
        before = seen_before(path, i)
        fresh.append(bool(measured) and not any(m in before for m in measured))
    assert any(fresh), f"{path.name}: every prediction asks for a number the student has already seen"


@pytest.mark.parametrize("path", CORE[1:], ids=lambda p: p.name)
def test_each_core_notebook_has_an_exercise_with_a_check(path):
    nb = cells(path)
    solutions = [i for i, c in enumerate(nb) if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert solutions, f"{path.name} has no exercise"
    graded = [j for j, c in enumerate(nb) if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    for i in solutions:
        assert "check" in text(nb[i + 1]), f"cell {i + 1}, after exercise cell {i}, does not run its check"
    # The graded cells: one per exercise, each after its exercise (right after it, or gathered at the end as in
    # the lab, where the notebook must run through while exercises are still open).
    assert len(graded) == len(solutions) and all(j > i for i, j in zip(solutions, graded)), (solutions, graded)
    for j in graded:
        assert "assert " in text(nb[j]) and "passed" in text(nb[j]), f"cell {j} is not a graded check"


def test_grade_ids_are_unique_across_the_collection():
    ids = [c["metadata"]["nbgrader"]["grade_id"] for p in NOTEBOOKS for c in cells(p)
           if "grade_id" in c.get("metadata", {}).get("nbgrader", {})]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_solutions_restore_modes_the_way_the_lessons_teach():
    """Notebook 01 warns that ``model.train(was_training)`` overwrites per-module modes: no solution does it."""
    for path in NOTEBOOKS:
        for cell in cells(path):
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                assert not re.search(r"\.train\(\s*was_training", text(cell)), path.name


# --- terms defined before use, and the glossary -------------------------------------------------------------

GLOSSARY = ROOT / "docs" / "glossary.md"
TERMS = ["placement", "transductive", "batch statistics", "running statistics", "collected statistics",
         "population statistics", "Reptile's protocol", "MetaBN", "TaskNorm", "check_maml"]


def first_use(term):
    """(notebook index, cell index) of the term's first use on the core path, and of its bold definition.

    Link targets (``(02_maml_placements.ipynb)``) and notebook 01's generated path table of titles are not
    uses; the first cell of a notebook, whose "What you
    will learn" list announces the terms that notebook defines, counts as the definition's own notebook."""
    pattern = re.compile(re.escape(term), re.I)
    bold = re.compile(r"\*\*`?" + re.escape(term) + r"`?\*\*", re.I)
    used = defined = None
    for n, path in enumerate(CORE):
        for i, cell in enumerate(cells(path)):
            if cell["cell_type"] != "markdown":
                continue
            prose = re.sub(r"(?s)<!-- path-table -->.*<!-- /path-table -->", "", text(cell))   # titles only
            prose = re.sub(r"\]\([^)]*\)", "]", prose)
            if used is None and pattern.search(prose):
                used = (n, i)
            if defined is None and bold.search(prose):
                defined = (n, i)
    return used, defined


@pytest.mark.parametrize("term", TERMS)
def test_each_term_is_defined_where_it_first_appears_on_the_core_path(term):
    used, defined = first_use(term)
    assert defined is not None, f"'{term}' is never defined (in bold) on the core path"
    if used[0] == defined[0] and used[1] == 0:
        used = defined                                  # announced in the goals of the notebook that defines it
    assert used == defined, (f"'{term}' is used in {CORE[used[0]].name} cell {used[1]} before its definition in "
                             f"{CORE[defined[0]].name} cell {defined[1]}")


def test_the_glossary_links_each_term_to_its_definition():
    glossary = GLOSSARY.read_text()
    for term in TERMS:
        _, (n, _) = first_use(term)
        entry = next((par for par in glossary.split("\n\n") if par.startswith(f"**{term}**")
                      or par.startswith(f"**`{term}`**")), None)
        assert entry, f"the glossary has no entry for {term}"
        assert f"../notebooks/{CORE[n].name}" in entry, f"{term}: link it to {CORE[n].name}, where it is defined"
