"""The student edition (nbgrader) holds no solutions, its checks fail helpfully on the stubs, and nbgrader's
autograding scores a correct and a wrong submission as it should."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


tool = load_tool("make_student_copy")
PATHS = load_tool("notebook_paths")
LESSONS = PATHS.all_notebooks()          # the core path and the deep dives
WITH_EXERCISES = [p for p in LESSONS if tool.has_exercises(nbformat.read(p, as_version=4))]


def solution_lines(source: str) -> list[str]:
    """The lines between the solution markers of a cell."""
    inside, lines = False, []
    for line in source.splitlines():
        if tool.BEGIN in line:
            inside = True
        elif tool.END in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    written, guide = tool.make(NOTEBOOKS, out)
    return {PATHS.relative(p, out / "student"): nbformat.read(p, as_version=4) for p in written}, guide, out


def test_every_core_lesson_after_01_has_an_exercise_and_a_graded_check():
    assert set(PATHS.core()[1:]) <= set(WITH_EXERCISES)
    for path in WITH_EXERCISES:
        nb = nbformat.read(path, as_version=4)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        solutions = [c for c in nb.cells if tool.is_solution(c)]
        assert graded and len(graded) == len(solutions), path.name
        for cell in solutions:
            assert tool.BEGIN in cell.source and tool.END in cell.source, path.name


def test_the_student_edition_holds_no_solution(edition):
    notebooks, _, out = edition
    assert set(notebooks) == {PATHS.relative(p) for p in WITH_EXERCISES}
    for path in WITH_EXERCISES:
        committed = nbformat.read(path, as_version=4)
        student = notebooks[PATHS.relative(path)]
        by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in student.cells if "nbgrader" in c.metadata}
        for cell in committed.cells:
            if tool.is_solution(cell):
                stub = by_id[cell.metadata["nbgrader"]["grade_id"]].source
                assert "raise NotImplementedError()" in stub
                for line in solution_lines(cell.source):
                    assert line not in stub, f"{path.name}: solution line left: {line!r}"
        kept = [c.source for c in committed.cells if not ({"instructor", "guess"} & set(tool.tags(c)))
                and not tool.is_solution(c)]
        assert kept == [c.source for c in student.cells if not tool.is_solution(c) and "guess" not in tool.tags(c)]
        assert all(c.outputs == [] for c in student.cells if c.cell_type == "code"), path.name
        assert not any(tool.INSTRUCTOR_TAG in tool.tags(c) for c in student.cells)
    raw = "\n".join(p.read_text() for p in (out / "student").glob("*.ipynb"))
    assert "BEGIN SOLUTION" not in raw and "END SOLUTION" not in raw
    assert "pip install" in (out / "student" / "README.md").read_text()


def test_guesses_are_blank_in_the_student_edition(edition):
    notebooks, _, _ = edition
    guess_cells = [c for nb in notebooks.values() for c in nb.cells if tool.GUESS_TAG in tool.tags(c)]
    assert len(guess_cells) >= 2
    from mamlkit.lessons import predictions

    for cell in guess_cells:
        assert re.search(r":\s*\d", cell.source.split("my_guess")[1].split("}")[0]) is None, cell.source
        ns: dict = {"predictions": predictions}                # imported by an earlier cell of the notebook
        with pytest.raises(predictions.GuessMissing, match="Write your guess first"):
            exec(cell.source, ns)


def test_every_check_fails_on_its_stub_with_a_helpful_message(edition):
    notebooks, _, _ = edition
    import mamlkit as mk
    from mamlkit.lessons import exercises, lab

    for name, nb in notebooks.items():
        cells = nb.cells
        for i, cell in enumerate(cells):
            if not tool.is_solution(cell):
                continue
            ns = {"mk": mk, "lab": lab, "exercises": exercises}
            exec("import torch, higher\nimport torch.nn.functional as F\n" + cell.source, ns)
            check = cells[i + 1].source
            call = re.search(r"(?:exercises|lab)\.(check_\w+)\((\w+)\)", check)
            assert call, f"{name}: no check call after the solution cell"
            module = exercises if "exercises." in call.group(0) else lab
            result = getattr(module, call.group(1))(ns[call.group(2)])
            assert not result.passed, name
            assert "NotImplementedError" in result.message and "Replace the `raise` line" in result.message


def test_instructor_guide_has_every_solution(edition):
    _, guide, _ = edition
    text = guide.read_text()
    for heading in ("## The plan", "Expected answers", "Common mistakes", "Before class"):
        assert heading in text
    for path in WITH_EXERCISES:
        for cell in nbformat.read(path, as_version=4).cells:
            if tool.is_solution(cell):
                assert cell.source.strip() in text


def test_nbgrader_autogrades_a_correct_and_a_wrong_submission(tmp_path):
    """Release notebook 01, submit it twice (the solution; an answer computed in train mode), autograde."""
    source = NOTEBOOKS / "01_train_eval_basics.ipynb"
    tool.generate([source], tmp_path)
    released = nbformat.read(tmp_path / "release" / source.stem / source.name, as_version=4)
    committed = nbformat.read(source, as_version=4)
    solution = next(c for c in committed.cells if tool.is_solution(c))
    answers = {
        "correct": solution.source,
        "wrong": solution.source.replace("model.eval()\n", "model.train()\n"),
    }
    for student, answer in answers.items():
        nb = json.loads(json.dumps(released))
        nb = nbformat.from_dict(nb)
        for cell in nb.cells:
            if tool.is_solution(cell):
                cell.source = answer
        folder = tmp_path / "submitted" / student / source.stem
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / source.name)
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", source.stem, "--create", "--force",
         f"--CourseDirectory.root={tmp_path}", "--log-level=WARN"],
        capture_output=True, text=True, timeout=600, env=tool.tool_env(), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission(source.stem, s).score for s in answers}
        maximum = gradebook.find_submission(source.stem, "correct").max_score
    assert maximum == 1 and scores == {"correct": 1, "wrong": 0}, scores


def test_make_student_copy_command(tmp_path):
    one = tmp_path / "notebooks"
    one.mkdir()
    shutil.copy(NOTEBOOKS / "01_train_eval_basics.ipynb", one)               # one lesson keeps it quick
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student_copy.py"), "--notebooks", str(one),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "student edition:" in out.stdout and (tmp_path / "instructor" / "instructor_guide.md").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student_copy.py"), "--notebooks", str(empty),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    shutil.rmtree(tmp_path / "student")


def test_the_student_edition_is_the_whole_collection(edition):
    """``make lab`` opens it at the start page: every lesson is there, the ones without exercises with their outputs."""
    _, _, out = edition
    lessons = [PATHS.relative(p) for p in LESSONS]
    assert [PATHS.relative(p, out / "student") for p in PATHS.all_notebooks(out / "student")] == lessons
    for name in lessons:
        if NOTEBOOKS / name in WITH_EXERCISES:
            continue
        committed, student = (nbformat.read(folder / name, as_version=4) for folder in (NOTEBOOKS, out / "student"))
        kept = [c for c in committed.cells if "instructor" not in tool.tags(c)]
        assert [c.source for c in kept if "guess" not in tool.tags(c)] == [
            c.source for c in student.cells if "guess" not in tool.tags(c)], name
        assert [c.get("outputs") for c in kept if "guess" not in tool.tags(c)] == [
            c.get("outputs") for c in student.cells if "guess" not in tool.tags(c)], name
    records = sorted(p.name for p in (ROOT / "data" / "records").iterdir())
    assert records and sorted(p.name for p in (out / "data" / "records").iterdir()) == records   # ../data/records


def test_make_lab_opens_the_student_edition_without_nbgrader_or_news():
    dry = subprocess.run(["make", "-n", "lab", "PORT=8999"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    command = dry.stdout
    assert "tools/make_student_copy.py" in command and "test -f build/student/01_train_eval_basics.ipynb" in command
    assert "--ServerApp.root_dir=build/student" in command and "build/student/01_train_eval_basics.ipynb" in command
    assert f"--LabApp.app_settings_dir={ROOT / 'tools' / 'lab_settings'}" in command
    assert "notebooks/" not in command
    for extension in ("formgrader", "course_list", "assignment_list", "validate_assignment"):  # nbgrader server side
        assert f"--ServerApp.jpserver_extensions=nbgrader.server_extensions.{extension}=False" in command
    instructor = subprocess.run(["make", "-n", "lab-instructor"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert instructor.returncode == 0 and "notebooks/01_train_eval_basics.ipynb" in instructor.stdout
    assert "app_settings_dir" not in instructor.stdout
    settings = ROOT / "tools" / "lab_settings"
    disabled = json.loads((settings / "page_config.json").read_text())["disabledExtensions"]
    import jupyter_core.paths

    nbgrader_ui = [p for d in jupyter_core.paths.jupyter_path("labextensions") for p in Path(d).glob("*/nbgrader")]
    assert nbgrader_ui, "nbgrader's JupyterLab extension is not installed where JupyterLab looks"
    name = json.loads((nbgrader_ui[0] / "package.json").read_text())["name"]
    assert disabled.get(name) is True and disabled.get("@jupyterlab/apputils-extension:announcements") is True
    notification = json.loads((settings / "overrides.json").read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false" and notification["checkForUpdates"] is False


def test_the_books_notebook_pages_hold_no_solution():
    """The book is for students: its notebook pages have the stubs, the instructor guide's page the solutions."""
    book = load_tool("build_book")
    pages = book.page_names()
    for path in WITH_EXERCISES:
        committed = nbformat.read(path, as_version=4)
        staged = book.stage_notebook(path, pages)
        by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in staged.cells if "nbgrader" in c.metadata}
        for cell in committed.cells:
            if tool.is_solution(cell):
                stub = by_id[cell.metadata["nbgrader"]["grade_id"]]
                assert "raise NotImplementedError()" in stub.source and stub.outputs == [], path.name
                compile(stub.source, path.name, "exec")                              # still valid Python
                for line in solution_lines(cell.source):
                    assert line not in stub.source, f"{path.name}: solution line left on its page: {line!r}"
        assert "BEGIN SOLUTION" not in nbformat.writes(staged) and "END SOLUTION" not in nbformat.writes(staged)
        assert not any(tool.INSTRUCTOR_TAG in tool.tags(c) for c in staged.cells)
    with pytest.raises(ValueError, match="unbalanced"):
        book.without_solution("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
