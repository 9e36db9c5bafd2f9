"""The one atomic writer (``mamlkit.plumbing.files``): every file the package writes goes through it, and an error or an
interrupt at any step leaves the destination whole (old content, or none) and no temporary file (#38)."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest
import torch

from mamlkit.plumbing import files

PACKAGE = Path(files.__file__).resolve().parents[1]  # mamlkit/

#: Calls that write a final path. Only ``mamlkit/plumbing/files.py`` may make them.
WRITING_METHODS = {"write_text", "write_bytes", "savefig", "replace", "rename", "dump", "save", "copy", "copyfile",
                   "copy2", "move", "savez", "to_csv"}
WRITING_MODES = set("wax+")
#: Whose ``dump``, ``save`` and ``copy`` write files (a dict's copy does not).
WRITING_MODULES = ("json", "torch", "np", "numpy", "shutil", "pickle")


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    """The lines of ``tree`` that write a file other than through ``mamlkit.plumbing.files``.

    Writing into a name bound to ``io.BytesIO()`` (a PNG kept in memory) writes no file."""
    found = []
    in_memory = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                 and ast.unparse(node.value.func) in ("io.BytesIO", "BytesIO")
                 for t in node.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITING_METHODS:
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            if func.attr in ("replace", "rename") and owner != "os":
                continue  # a string's replace is no write
            if func.attr in ("dump", "save", "copy") and owner not in WRITING_MODULES:
                continue
            if node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in in_memory:
                continue  # into a BytesIO: no file
            found.append((node.lineno, ast.unparse(func)))
        elif isinstance(func, ast.Name) and func.id == "open":
            modes = [k.value for k in node.keywords if k.arg == "mode"]
            mode = node.args[1] if len(node.args) > 1 else (modes[0] if modes else None)
            if isinstance(mode, ast.Constant) and WRITING_MODES & set(str(mode.value)):
                found.append((node.lineno, f"open(..., {mode.value!r})"))
    return found


def test_the_package_writes_files_only_through_the_atomic_writer() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "files.py" and path.parent == PACKAGE / "plumbing":
            continue
        for line, call in _writes(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {call}")
    assert not offenders, "write through mamlkit.plumbing.files instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source", [
    "Path('a').write_text('x')", "p.write_bytes(b'x')", "fig.savefig('a.png')", "torch.save(m, 'a.pt')",
    "json.dump(d, f)", "os.replace(a, b)", "open('a', 'w')", "open('a', mode='ab')", "shutil.copy(a, b)",
])
def test_the_scan_finds_each_kind_of_write(source: str) -> None:
    assert _writes(ast.parse(source))


@pytest.mark.parametrize("source", ["open('a')", "open('a', 'rb')", "'a'.replace('b', 'c')", "json.dumps(d)",
                                    "b = io.BytesIO()\nfig.savefig(b, format='png')"])
def test_the_scan_leaves_reads_alone(source: str) -> None:
    assert not _writes(ast.parse(source))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(files.TEMP_SUFFIX))


def _write_png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    files.save_figure(fig, path, dpi=20)
    plt.close(fig)


WRITERS = {
    "text": (lambda p: files.write_text(p, "new\n"), lambda p: p.read_text() == "new\n"),
    "json": (lambda p: files.write_json(p, {"a": [1, 2]}), lambda p: json.loads(p.read_text()) == {"a": [1, 2]}),
    "torch": (lambda p: files.save_torch(p, {"w": torch.ones(3)}),
              lambda p: torch.equal(torch.load(p, weights_only=True)["w"], torch.ones(3))),
    "png": (_write_png, lambda p: p.read_bytes().startswith(b"\x89PNG") and _png_opens(p)),
}


def _png_opens(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    return True


class _Interrupting(io.FileIO):
    """A file whose writes stop with a KeyboardInterrupt after ``budget`` bytes (a Ctrl-C mid-write)."""

    budget = 0

    def write(self, data) -> int:  # type: ignore[override]
        if len(data) > _Interrupting.budget:
            super().write(bytes(data)[: _Interrupting.budget])
            raise KeyboardInterrupt
        _Interrupting.budget -= len(data)
        return super().write(data)


#: Where a write is interrupted; savefig writes the temporary file itself (no fsync of ours to interrupt).
CASES = [(kind, step) for kind in WRITERS for step in ("open", "mid-write", "fsync", "rename")
         if not (kind == "png" and step == "fsync")]


@pytest.mark.parametrize(("kind", "step"), CASES)
@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupt_at_each_step_leaves_the_old_file_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               kind: str, step: str, existing: bool) -> None:
    write, readable = WRITERS[kind]
    target = tmp_path / f"out.{'pt' if kind == 'torch' else kind}"
    if existing:
        write(target)
        before = target.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if step == "open":
        if kind == "png":
            monkeypatch.setattr("matplotlib.figure.Figure.savefig", interrupt)
        else:
            monkeypatch.setattr(files, "open", interrupt, raising=False)
    elif step == "mid-write":
        _Interrupting.budget = 2
        if kind == "png":
            real = io.open
            monkeypatch.setattr("builtins.open", lambda f, mode="r", *a, **k: _Interrupting(f, mode.replace("b", ""))
                                if "w" in mode or "x" in mode else real(f, mode, *a, **k))
        else:
            monkeypatch.setattr(files, "open", lambda f, mode: _Interrupting(f, mode.replace("b", "")), raising=False)
    elif step == "fsync":
        monkeypatch.setattr(files.os, "fsync", interrupt)
    else:
        monkeypatch.setattr(files.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write(target)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []
    if existing:
        assert target.read_bytes() == before and readable(target)
    else:
        assert not target.exists()


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_writer_writes_a_whole_readable_file(tmp_path: Path, kind: str) -> None:
    write, readable = WRITERS[kind]
    target = tmp_path / f"out.{kind}"
    write(target)
    assert readable(target) and _leftovers(tmp_path) == []


def test_a_folder_in_the_way_fails_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "report.json").mkdir()
    with pytest.raises(OSError):
        files.write_json(tmp_path / "report.json", {"a": 1})
    assert _leftovers(tmp_path) == [] and (tmp_path / "report.json").is_dir()


def test_json_that_cannot_be_written_fails_before_any_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        files.write_json(tmp_path / "x.json", {"a": object()})
    assert list(tmp_path.iterdir()) == []


def test_the_omniglot_cache_write_leaves_no_temporary_file_when_it_fails(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mamlkit.data.omniglot_files import save_cache

    (tmp_path / "cache.pt").mkdir()  # the name is taken: the write fails, and a cache failure is no error
    assert save_cache(tmp_path / "cache.pt", {"images": torch.zeros(2)}) is False
    monkeypatch.setattr(files.os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not swallowed, and still leaves nothing behind
        save_cache(tmp_path / "other.pt", {"images": torch.zeros(2)})
    assert _leftovers(tmp_path) == [] and not (tmp_path / "other.pt").exists()


def test_default_folders_in_a_checkout(monkeypatch, tmp_path):
    """Where the cache, the shipped models and an Omniglot download go, from this checkout (the package's modules
    sit at different depths: each asks ``mamlkit.plumbing.files`` rather than counting folders from its own file)."""
    from mamlkit.data import omniglot
    from mamlkit.experiments import cache

    root = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("MAMLKIT_CACHE", raising=False)
    monkeypatch.delenv("MAMLKIT_OMNIGLOT", raising=False)
    assert cache.default_cache_dir() == root / "data" / "cache"
    assert cache.shipped_dir() == root / "data" / "models" and any(cache.shipped_dir().glob("*.pt"))
    assert omniglot.download_folder() == root / "data" / "omniglot"
    monkeypatch.setenv("MAMLKIT_CACHE", str(tmp_path / "c"))
    assert cache.default_cache_dir() == tmp_path / "c"
