"""Colab and Binder: tools/reach.py's badges and set-up cell, and the binder/ files (the services are not reachable
here; what is tested is everything up to them)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_tool
from test_notebook_form import test_notebook_form, test_notebook_is_stored_with_outputs_from_a_clean_run
from test_setup import _name, pins, pyproject_deps

ROOT = Path(__file__).resolve().parents[1]
reach = load_tool("reach")
PATHS = load_tool("notebook_paths")


@pytest.fixture
def copy(tmp_path):
    """The files reach.py writes, copied (its tests never touch the checkout)."""
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path


def test_the_checkout_is_consistent_with_the_repository_it_names(capsys):
    """Before publication nothing is named and there is nothing to check; after make reach, the check passes."""
    assert reach.main(["--check"]) == 0
    out = capsys.readouterr().out
    if reach.named_repository(ROOT) is None:
        assert "nothing to check" in out
    else:
        assert "match" in out


def test_badges_and_setup_cells_for_a_named_repository(copy, capsys):
    assert reach.main(["--repo", "example-org/mamlkit", "--root", str(copy)]) == 0
    notebooks = PATHS.all_notebooks(copy / "notebooks")
    assert len(notebooks) == len(PATHS.all_notebooks()) and any(PATHS.is_deep_dive(p) for p in notebooks)
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        title = "".join(cells[0]["source"])
        under = PATHS.relative(path, copy / "notebooks")
        assert f"colab.research.google.com/github/example-org/mamlkit/blob/main/notebooks/{under})" in title
        assert f"mybinder.org/v2/gh/example-org/mamlkit/main?labpath=notebooks%2F{under.replace('/', '%2F')})" in title
        setup = cells[1]
        assert setup["metadata"]["tags"] == ["colab-setup", "remove-cell"] and setup["outputs"] == []
        source = "".join(setup["source"])
        assert '"https://github.com/example-org/mamlkit.git"' in source
        # the set-up cell moves into the notebook's own folder, so that its relative paths (../data) hold
        folder = "'deep_dives'" if PATHS.is_deep_dive(path) else '""'
        assert f'os.chdir(os.path.join(repo, "notebooks", {folder}))' in source
        # the lessons' own form is untouched: the first lesson cell still sets seeds, counts still run 1..n
        test_notebook_form(path)
        test_notebook_is_stored_with_outputs_from_a_clean_run(path)
    readme = (copy / "README.md").read_text()
    assert readme.splitlines()[0] == (ROOT / "README.md").read_text().splitlines()[0]
    assert "notebooks/01_train_eval_basics.ipynb" in readme and "https://example-org.github.io/mamlkit/" in readme
    assert reach.named_repository(copy) == "example-org/mamlkit"
    assert reach.main(["--check", "--root", str(copy)]) == 0


def test_running_it_again_changes_nothing_and_another_branch_replaces_the_badges(copy):
    reach.main(["--repo", "example-org/mamlkit", "--root", str(copy)])
    first = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    reach.main(["--repo", "example-org/mamlkit", "--root", str(copy)])
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == first
    reach.main(["--repo", "example-org/mamlkit", "--branch", "v1", "--root", str(copy)])
    nb = (copy / "notebooks" / "02_maml_placements.ipynb").read_text()
    assert "blob/v1/" in nb and "blob/main/" not in nb and nb.count('"id": "colab-setup"') == 1
    text = (copy / "pyproject.toml").read_text()
    assert text.count("[project.urls]") == 1
    assert reach.main(["--check", "--root", str(copy)]) == 0     # the check reads the branch from the badges
    assert reach.main(["--check", "--branch", "main", "--root", str(copy)]) == 1
    tomllib = pytest.importorskip("tomllib")
    assert tomllib.loads(text)["project"]["urls"]["Repository"] == "https://github.com/example-org/mamlkit"


@pytest.mark.parametrize("args, message", [
    ([], "--repo owner/name"),
    (["--repo", "not a slug"], "must look like owner/name"),
    (["--repo", "a/b", "--branch", "x y"], "must be a branch name"),
])
def test_bad_arguments_get_one_clear_line_and_nothing_is_written(copy, capsys, args, message):
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert reach.main([*args, "--root", str(copy)]) == 2
    assert message in capsys.readouterr().err
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_the_executor_stores_the_setup_cell_unrun_and_the_lessons_counted_from_one(copy, monkeypatch):
    """make notebooks on a published copy: the set-up cell is not run and stays as tools/reach.py wrote it."""
    executor = load_tool("execute_notebooks")
    reach.main(["--repo", "example-org/mamlkit", "--root", str(copy)])
    path = copy / "notebooks" / "01_train_eval_basics.ipynb"
    ran = []

    class Client:
        def __init__(self, nb, **kwargs):
            self.nb = nb

        def execute(self):
            ran.extend(c for c in self.nb.cells if c.cell_type == "code")
            for n, c in enumerate(ran, 1):
                c.execution_count = n

    monkeypatch.setattr(executor, "NotebookClient", Client)
    executor.execute(path)
    assert not any("colab-setup" in c.metadata.get("tags", []) for c in ran)
    test_notebook_is_stored_with_outputs_from_a_clean_run(path)
    assert reach.main(["--check", "--root", str(copy)]) == 0


def setup_source(slug="example-org/mamlkit", branch="main", folder='""'):
    """The set-up cell as a core notebook gets it (a deep dive's moves into "deep_dives")."""
    return reach.SETUP_CELL.format(url=reach.repo_url(slug), branch=branch, folder=folder)


def test_the_setup_cell_does_nothing_where_mamlkit_imports(tmp_path):
    """Run in a fresh interpreter where mamlkit is installed (the venv: as on a clone, on Binder, in CI)."""
    guard = "import subprocess\nsubprocess.run = lambda *a, **k: (_ for _ in ()).throw(SystemExit('ran ' + str(a)))\n"
    done = subprocess.run([sys.executable, "-c", guard + setup_source() + "\nimport os; print(os.getcwd())"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path)
    assert not (tmp_path / "mamlkit-repo").exists()


def test_the_setup_cell_clones_installs_and_moves_into_the_notebooks_where_mamlkit_is_missing(tmp_path):
    """As on Colab: mamlkit not importable. The clone and pip are recorded instead of run."""
    fake = (
        "import importlib.util, subprocess, os, json\n"
        "importlib.util.find_spec = lambda name: None\n"
        "calls = []\n"
        "def run(cmd, check):\n"
        "    calls.append(cmd)\n"
        "    if cmd[0] == 'git': os.makedirs(os.path.join(cmd[-1], 'notebooks', 'deep_dives'))\n"
        "subprocess.run = run\n"
    )
    show = "\nprint(json.dumps({'calls': calls, 'cwd': os.getcwd(), 'path0': sys.path[0]}))"
    done = subprocess.run([sys.executable, "-c", fake + setup_source(branch="v1") + show],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    repo = str(tmp_path / "mamlkit-repo")
    assert out["calls"][0] == ["git", "clone", "--depth", "1", "--branch", "v1",
                               "https://github.com/example-org/mamlkit.git", repo]
    assert out["calls"][1][1:] == ["-m", "pip", "install", "--quiet", "-e", repo]
    assert out["cwd"] == str(tmp_path / "mamlkit-repo" / "notebooks") and out["path0"] == repo
    deep = tmp_path / "deep"                                  # a deep dive's set-up cell moves into its own folder
    deep.mkdir()
    done = subprocess.run([sys.executable, "-c", fake + setup_source(folder="'deep_dives'") + show],
                          cwd=deep, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cwd"] == str(deep / "mamlkit-repo" / "notebooks" / "deep_dives")


def binder_requirements() -> list[str]:
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_binder_installs_the_lab_at_the_constraints_versions_with_cpu_torch():
    lines = binder_requirements()
    assert "-c ../constraints.txt" in lines and (ROOT / "binder" / "../constraints.txt").resolve().is_file()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    packages = {_name(line): line for line in lines if not line.startswith("-")}
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(d) for d in project["dependencies"] + project["optional-dependencies"]["lab"]} - {"nbval"}
    assert set(packages) == wanted, "binder/requirements.txt lists the core and lab dependencies (nbval is CI's)"
    assert set(packages) <= pyproject_deps() and set(packages) <= set(pins())
    for name, line in packages.items():
        version = re.search(r"==(\S+)$", line)
        assert version is None or version.group(1) == pins()[name], f"{name}: not the version of constraints.txt"
    assert packages["torch"] == f"torch=={pins()['torch']}"


def test_binder_python_and_postbuild():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    env = (ROOT / "environment.yml").read_text()
    assert runtime == "python-" + re.search(r"- python=(\S+)", env).group(1)
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install --no-deps -e ." in post.read_text()
    assert subprocess.run(["bash", "-n", str(post)]).returncode == 0
