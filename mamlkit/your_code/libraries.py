"""The MAML libraries the collection measures beside mamlkit, and how learn2learn is installed and loaded.

``higher`` is a dependency; TorchOpt is a pinned test extra (``pip install -c constraints.txt -e .[dev]``);
``torch.func`` ships with torch. learn2learn needs more care, for reasons measured on this project's stack
(torch 2.13 CPU, Python 3.11):

- learn2learn 0.2.0 is released as source only. Its pre-generated C files (three Cython modules of
  ``learn2learn.data``) include ``longintrepr.h`` and fail to compile on Python 3.11; regenerated with
  Cython < 3.1 they compile. Its ``setup.py`` runs Cython only for ``build_ext``/``develop``, so having
  Cython installed does not help a plain ``pip install``.
- Installed with its dependencies it replaces the CPU torch by a multi-GB CUDA build and pulls gym, gsutil,
  qpth, cvxpy and torchvision. So it is installed without them (``--no-deps``).
- ``import learn2learn`` imports torchvision, which does not import with this CPU torch. Its MAML part
  (``learn2learn/algorithms/maml.py``, ``algorithms/base_learner.py``, ``learn2learn/utils/__init__.py``)
  is pure Python and imports nothing else of the package.

So ``install_learn2learn`` (``python -m mamlkit.your_code.libraries install-learn2learn``; ``make setup`` runs it)
downloads the released source (no dependencies, its SHA-256 checked), regenerates the C files with
Cython < 3.1 (installed into a temporary folder, not into the environment) and installs the package with
``pip install --no-deps``. ``load_learn2learn`` then imports the whole package where it imports (e.g. where
torchvision works), and otherwise loads the MAML part from the installed files without running the
package's ``__init__``: the code run is learn2learn's own, unchanged; nothing of it is copied into mamlkit.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

#: The learn2learn release the collection measures, and the SHA-256 of its source archive on PyPI.
LEARN2LEARN_VERSION = "0.2.0"
LEARN2LEARN_SDIST_SHA256 = "69f1d7cb0d0a6be7a2c6ad8e83e2ebbe70fb05e51d61e45e63078b40c75ea419"
#: The Cython that regenerates its C files (3.1 dropped what the 0.2.0 sources rely on).
CYTHON_REQUIREMENT = "Cython<3.1"
#: Its three Cython modules, relative to the unpacked source.
LEARN2LEARN_PYX = ("learn2learn/data/meta_dataset.pyx", "learn2learn/data/task_dataset.pyx",
                   "learn2learn/data/transforms.pyx")
#: The MAML part: pure Python, importing nothing else of the package.
LEARN2LEARN_MAML_PART = ("algorithms/maml.py", "algorithms/base_learner.py", "utils/__init__.py")
#: TorchOpt's pinned version (constraints.txt), for messages.
TORCHOPT_VERSION = "0.7.3"
INSTALL_COMMAND = "python -m mamlkit.your_code.libraries install-learn2learn"


class LibraryUnavailable(ImportError):
    """A library the collection compares with cannot be had here; the message says why and what to do."""


@dataclass(frozen=True)
class Learn2Learn:
    """learn2learn's MAML, as loaded by ``load_learn2learn``.

    Attributes:
        MAML: ``learn2learn.algorithms.MAML`` (``maml = MAML(model, lr)``; per task ``learner = maml.clone()``,
            ``learner.adapt(loss)``).
        clone_module: ``learn2learn.clone_module``.
        update_module: ``learn2learn.update_module``.
        version: the installed version (``"0.2.0"``).
        how: ``"whole package"`` where ``import learn2learn`` works, else ``"MAML part"`` with the reason.
        path: the folder of the installed package.
    """

    MAML: type
    clone_module: types.FunctionType
    update_module: types.FunctionType
    version: str
    how: str
    path: Path


def learn2learn_unavailable_reason() -> str | None:
    """Why learn2learn cannot be loaded here (one line), or None where it can (installed at the measured version)."""
    if importlib.util.find_spec("learn2learn") is None:
        return (f"learn2learn {LEARN2LEARN_VERSION} is not installed in {sys.prefix}: `make setup` installs it "
                f"(or run `{INSTALL_COMMAND}`){_python_note()}")
    try:
        version = importlib.metadata.version("learn2learn")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed by pip)"
    if version != LEARN2LEARN_VERSION:
        return (f"learn2learn {version} is installed, but the collection measures {LEARN2LEARN_VERSION}: "
                f"run `{INSTALL_COMMAND}`")
    return None


def torchopt_unavailable_reason() -> str | None:
    """Why TorchOpt cannot be imported here (one line), or None where it can."""
    if importlib.util.find_spec("torchopt") is None:
        return (f"TorchOpt {TORCHOPT_VERSION} is not installed: it is a test extra, "
                "`pip install -c constraints.txt -e .[dev]` (make setup) installs it")
    try:
        importlib.import_module("torchopt")
    except Exception as error:  # noqa: BLE001  (any failure to import is the reason)
        return f"TorchOpt does not import here: {type(error).__name__}: {error}"
    return None


def _python_note() -> str:
    if sys.version_info >= (3, 12):
        return (f" (on Python {sys.version_info.major}.{sys.version_info.minor} its setup.py, which imports "
                "distutils, builds only through setuptools' distutils shim)")
    return ""


def load_learn2learn() -> Learn2Learn:
    """learn2learn's MAML from the installed package: the whole package where it imports, else its MAML part.

    Raises:
        LibraryUnavailable: learn2learn is not installed at the measured version (the message says how to).
    """
    reason = learn2learn_unavailable_reason()
    if reason:
        raise LibraryUnavailable(reason)
    spec = importlib.util.find_spec("learn2learn")
    root = Path(next(iter(spec.submodule_search_locations)))
    loaded = sys.modules.get("learn2learn")
    if loaded is not None and getattr(loaded, "_mamlkit_maml_part", False):
        how = loaded._mamlkit_how
    else:
        try:
            importlib.import_module("learn2learn")
            how = "whole package"
        except Exception as error:  # noqa: BLE001  (torchvision, gym... whatever the package's __init__ needs)
            how = f"MAML part (import learn2learn fails here: {type(error).__name__}: {error})"
            _load_maml_part(root, how)
    maml = importlib.import_module("learn2learn.algorithms.maml")
    utils = importlib.import_module("learn2learn.utils")
    return Learn2Learn(maml.MAML, utils.clone_module, utils.update_module, LEARN2LEARN_VERSION, how, root)


def _load_maml_part(root: Path, how: str) -> None:
    """Import learn2learn's MAML modules from ``root`` without running the package's ``__init__``.

    The parent packages ``learn2learn`` and ``learn2learn.algorithms`` are registered as empty packages on
    the installed folders (their ``__init__`` would import torchvision); the modules themselves are loaded
    from the installed files by the ordinary import system. An attribute of the package that is not loaded
    raises an AttributeError that says so."""
    for name in [n for n in sys.modules if n == "learn2learn" or n.startswith("learn2learn.")]:
        del sys.modules[name]                                   # what a failed whole-package import left behind
    for name, folder in (("learn2learn", root), ("learn2learn.algorithms", root / "algorithms")):
        package = types.ModuleType(name, f"learn2learn {LEARN2LEARN_VERSION}'s MAML part only, loaded by mamlkit "
                                         f"without the package's __init__ ({how})")
        package.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        package.__spec__.submodule_search_locations = [str(folder)]
        package.__path__ = [str(folder)]
        package.__getattr__ = _not_loaded(name, how)
        package._mamlkit_maml_part = True
        package._mamlkit_how = how
        sys.modules[name] = package
        if "." in name:
            sys.modules["learn2learn"].algorithms = package
    maml = importlib.import_module("learn2learn.algorithms.maml")
    utils = importlib.import_module("learn2learn.utils")
    sys.modules["learn2learn.algorithms"].MAML = maml.MAML
    top = sys.modules["learn2learn"]
    top.__version__ = LEARN2LEARN_VERSION
    top.clone_module, top.update_module = utils.clone_module, utils.update_module


def _not_loaded(package: str, how: str):
    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"{package}.{name} is not loaded: mamlkit loaded learn2learn's {how}")

    return __getattr__


# ---------------------------------------------------------------------------------------------- installing


def _run(command: list[str], what: str, env: dict[str, str] | None = None, quiet: bool = True) -> None:
    result = subprocess.run(command, capture_output=quiet, text=True, env=env)
    if result.returncode != 0:
        tail = ((result.stderr or "") + (result.stdout or "")).strip().splitlines()[-15:] if quiet else []
        raise LibraryUnavailable(f"installing learn2learn {LEARN2LEARN_VERSION}: {what} failed "
                                 f"(exit {result.returncode})" + ("\n" + "\n".join(tail) if tail else ""))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive: Path, into: Path) -> Path:
    """Unpack the source archive (members that would land outside ``into`` are refused)."""
    with tarfile.open(archive) as tar:
        target = into.resolve()
        for member in tar.getmembers():
            if not (target / member.name).resolve().is_relative_to(target) or member.issym() or member.islnk():
                raise LibraryUnavailable(f"installing learn2learn: unexpected member {member.name!r} in {archive.name}")
        tar.extractall(into)  # noqa: S202  (members checked above)
    return into / f"learn2learn-{LEARN2LEARN_VERSION}"


def install_learn2learn(constraints: Path | None = None, force: bool = False, quiet: bool = True) -> str:
    """Install learn2learn 0.2.0 into this interpreter's environment, leaving torch as it is.

    Downloads the released source (``pip download --no-deps --no-binary :all:``), checks its SHA-256,
    regenerates its three C files with Cython < 3.1 (installed into a temporary folder), and installs it with
    ``pip install --no-deps``; then loads its MAML part to check. Returns one line saying what was done.

    Args:
        constraints: a pip constraints file (the project's ``constraints.txt`` pins Cython).
        force: reinstall even when the measured version is installed.
        quiet: keep pip's and Cython's output unless a step fails.

    Raises:
        LibraryUnavailable: a step failed (the message names it and ends with its output).
    """
    if not force and learn2learn_unavailable_reason() is None:
        return f"learn2learn {LEARN2LEARN_VERSION} already installed in {sys.prefix}"
    pip = [sys.executable, "-m", "pip"]
    pins = ["-c", str(constraints)] if constraints else []
    with tempfile.TemporaryDirectory(prefix="mamlkit-learn2learn-") as tmp:
        tmp = Path(tmp)
        _run(pip + ["download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp / "sdist"),
                    f"learn2learn=={LEARN2LEARN_VERSION}"], "pip download of the source release")
        archives = sorted((tmp / "sdist").glob("learn2learn-*.tar.gz"))
        if len(archives) != 1:
            raise LibraryUnavailable(f"installing learn2learn: pip download gave {[a.name for a in archives]}")
        digest = _sha256(archives[0])
        if digest != LEARN2LEARN_SDIST_SHA256:
            raise LibraryUnavailable(f"installing learn2learn: {archives[0].name} has SHA-256 {digest}, "
                                     f"not the released {LEARN2LEARN_SDIST_SHA256}")
        source = _extract(archives[0], tmp / "src")
        _run(pip + ["install", "--no-deps", "--target", str(tmp / "cython"), *pins, CYTHON_REQUIREMENT],
             "installing Cython into a temporary folder")
        env = {**os.environ, "PYTHONPATH": str(tmp / "cython")}
        _run([sys.executable, "-m", "cython", "-3", "-X", "embedsignature=True",
              *[str(source / pyx) for pyx in LEARN2LEARN_PYX]], "regenerating the C files with Cython", env=env)
        _run(pip + ["install", "--no-deps", "--force-reinstall", str(source)], "pip install --no-deps",
             quiet=quiet)
    importlib.invalidate_caches()
    result = subprocess.run([sys.executable, "-c", "from mamlkit.your_code.libraries import load_learn2learn as f; "
                             "l2l = f(); print(l2l.version, '-', l2l.how)"], capture_output=True, text=True)
    if result.returncode != 0:
        raise LibraryUnavailable(f"learn2learn installed but its MAML does not load: {result.stderr.strip()[-500:]}")
    return f"learn2learn {LEARN2LEARN_VERSION} installed in {sys.prefix} ({result.stdout.strip()})"


def main(argv: list[str] | None = None) -> int:
    """``python -m mamlkit.your_code.libraries install-learn2learn [-c constraints.txt] [--force]`` or ``status``."""
    parser = argparse.ArgumentParser(prog="python -m mamlkit.your_code.libraries", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install-learn2learn", help="install learn2learn 0.2.0 without its dependencies")
    install.add_argument("-c", "--constraints", type=Path, default=None, help="pip constraints file")
    install.add_argument("--force", action="store_true", help="reinstall even if installed")
    sub.add_parser("status", help="which of the compared libraries can be had here")
    args = parser.parse_args(argv)
    try:
        if args.command == "install-learn2learn":
            print(install_learn2learn(args.constraints, force=args.force))
        else:
            for name, reason in (("learn2learn", learn2learn_unavailable_reason()),
                                 ("torchopt", torchopt_unavailable_reason())):
                print(f"{name}: {reason or 'available'}")
    except LibraryUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
