"""The install paths agree: pyproject.toml, constraints.txt and environment.yml list the same things."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[_name(name)] = version
    return out


def pyproject_deps() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return {_name(d) for d in project["dependencies"] + extras["lab"] + extras["dev"] + extras["book"]}


def environment_pip_deps() -> dict[str, str]:
    deps = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)\s*$", line)
        if m:
            deps[_name(m.group(1))] = m.group(2)
    return deps


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert pins()["torch"] == "2.13.0"


def test_every_dependency_is_pinned():
    missing = pyproject_deps() - set(pins())
    assert not missing, f"not pinned in constraints.txt: {missing}"


def test_environment_yml_lists_the_same_dependencies_at_the_same_versions():
    env = environment_pip_deps()
    assert set(env) == pyproject_deps()
    p = pins()
    assert {n: v for n, v in env.items() if p[n] != v} == {}
    text = (ROOT / "environment.yml").read_text()
    assert "-c constraints.txt" in text and "- -e ." in text


def test_torchvision_is_only_an_optional_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torchvision" not in pyproject_deps()
    assert project["optional-dependencies"]["torchvision"] == ["torchvision"]
    assert "torchvision" not in pins()


def test_the_package_imports_without_torchvision():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import mamlkit, mamlkit.data.omniglot, mamlkit.data.glyphs, mamlkit.lessons.plots\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


OTHER_PYTHONS = ("3.10", "3.12", "3.13")


def _interpreter(version: str) -> str | None:
    import shutil

    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which(f"python{version}")
    return found if found and "/shims/" not in found else None      # a pyenv shim runs nothing by itself


@pytest.mark.parametrize("version", OTHER_PYTHONS)
def test_the_code_parses_on_other_pythons(version):
    """The package, tools, benchmarks and tests parse with each supported interpreter found on this machine
    (they cannot be imported there: the CPU torch wheel exists for Python 3.11 only); make lint's vermin check
    covers the standard-library features each version has."""
    import subprocess

    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine")
    script = ("import ast, pathlib, sys\n"
              "for folder in sys.argv[1:]:\n"
              "    for path in sorted(pathlib.Path(folder).rglob('*.py')):\n"
              "        ast.parse(path.read_text(), str(path))\n")
    result = subprocess.run([python, "-c", script, "mamlkit", "tools", "benchmarks", "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_readme_pyproject_and_ruff_name_the_same_minimum_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    minimum = project["project"]["requires-python"].removeprefix(">=")
    assert project["tool"]["ruff"]["target-version"] == "py" + minimum.replace(".", "")
    assert f"Python {minimum}+" in (ROOT / "README.md").read_text(), "the README's Start section names the minimum"
    assert f"keeps to Python {minimum}" in (ROOT / "docs" / "reproducibility.md").read_text()
    assert f"-t={minimum}-" in (ROOT / "Makefile").read_text()


def test_the_readme_says_how_it_installs_and_the_makefile_agrees():
    """What the README promises a newcomer about set-up is what the Makefile, constraints.txt, pyproject.toml and
    .ci/run do: the commands, the torch pin, learn2learn built from source, no torchvision, and one test command."""
    readme = " ".join((ROOT / "README.md").read_text().split())          # sentences, whatever the line breaks
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "lab-instructor", "test", "demo", "setup"):
        assert f"make {target}" in readme, target
        assert re.search(rf"(?m)^{re.escape(target)}: setup|^{re.escape(target)}: \$\(STAMP\)", makefile), target
    assert f"torch is pinned to {pins()['torch']}" in readme and "`constraints.txt`" in readme
    assert "mamlkit.your_code.libraries install-learn2learn" in makefile
    assert "builds learn2learn 0.2.0 from its source" in readme and "C compiler" in readme
    assert "torchvision is not needed" in readme and "torchvision" not in pyproject_deps()
    # the README's test command is the one CI runs
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"(?m)^make test$", ci) and "make test " in readme and "what CI runs" in readme
    assert "make test` runs" in readme and "`.ci/run`" in readme
    # make demo: the shipped lesson model, one meta-training placement, and the full table's command named
    demo = makefile.split("\ndemo: setup\n", 1)[1].split("\n\n", 1)[0]
    assert "--preset lesson" in demo and "--trainings standard" in demo
    assert "python -m mamlkit placements --dataset glyphs" in demo
    assert "python -m mamlkit placements --dataset glyphs`" in readme
