"""learn2learn is installed at set-up by every install path the project offers (or said to be absent there), from
its released source, without its dependencies, and loaded from the installed package, never from a copy."""

import importlib.metadata
import inspect
import io
import tarfile
from pathlib import Path

import pytest
from test_libraries import need

from mamlkit.your_code import libraries

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "-m mamlkit.your_code.libraries install-learn2learn -c constraints.txt"


def test_every_install_path_installs_learn2learn_or_says_how():
    makefile = (ROOT / "Makefile").read_text()
    stamp_rule = makefile[makefile.index("$(STAMP):"):makefile.index("setup: $(STAMP)")]
    assert f"$(BIN)/python {COMMAND}" in stamp_rule
    assert f"python {COMMAND}" in (ROOT / "binder" / "postBuild").read_text()
    assert f"python {COMMAND}" in (ROOT / "environment.yml").read_text()        # said, after activating
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    cython = next(line for line in pins if line.startswith("Cython=="))
    assert cython.split("==")[1] < "3.1" and "torchopt==0.7.3" in pins
    assert "learn2learn" not in (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1] \
        .split("[tool")[0].replace("tests/test_libraries.py", "").replace("learn2learn: see", "")


def test_learn2learn_is_loaded_from_the_installed_package_and_torch_stays():
    need(libraries.learn2learn_unavailable_reason())
    l2l = libraries.load_learn2learn()
    source = Path(inspect.getfile(l2l.MAML)).resolve()
    assert source.is_relative_to(l2l.path.resolve()) and "site-packages" in source.parts
    assert importlib.metadata.version("learn2learn") == libraries.LEARN2LEARN_VERSION
    assert importlib.metadata.version("torch").startswith("2.13.0")
    assert l2l.how == "whole package" or l2l.how.startswith("MAML part (import learn2learn fails here:")
    marker = "def " + "clone_module("                  # learn2learn's own function, defined nowhere here
    vendored = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and marker in p.read_text()]
    assert vendored == []


def test_a_part_of_learn2learn_that_is_not_loaded_says_so():
    need(libraries.learn2learn_unavailable_reason())
    l2l = libraries.load_learn2learn()
    import learn2learn

    assert learn2learn.algorithms.MAML is l2l.MAML
    if l2l.how != "whole package":
        with pytest.raises(AttributeError, match="is not loaded: mamlkit loaded learn2learn's MAML part"):
            learn2learn.vision  # noqa: B018


def test_the_source_archive_may_not_write_outside_its_folder(tmp_path):
    archive = tmp_path / "learn2learn-0.2.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.py")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x=1"))
    (tmp_path / "src").mkdir()
    with pytest.raises(libraries.LibraryUnavailable, match="unexpected member"):
        libraries._extract(archive, tmp_path / "src")
    assert not (tmp_path / "outside.py").exists()


def test_the_status_command_names_each_library(capsys):
    assert libraries.main(["status"]) == 0                 # python -m mamlkit.your_code.libraries status
    out = capsys.readouterr().out
    assert out.startswith("learn2learn: ") and "\ntorchopt: " in out
