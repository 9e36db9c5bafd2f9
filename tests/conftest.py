"""Shared fixtures: where the real Omniglot subset lives, and tiny fake Omniglot sets built with PIL;
the torch thread count from ``MAMLKIT_THREADS``."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

import mamlkit as mk
from mamlkit.data.omniglot import OMNIGLOT_PLACES, locate_omniglot

# `make test-unit` runs two pytest workers with one torch thread each (MAMLKIT_THREADS=1): on two cores
# that is faster than one process with two threads, and the tests' own subprocesses follow suit.
if os.environ.get("MAMLKIT_THREADS", "").isdigit():
    torch.set_num_threads(max(1, int(os.environ["MAMLKIT_THREADS"])))

#: The real Omniglot subset the tests read (never copy), found where the package looks for it
#: (``../shared/data/omniglot`` beside the checkout on CI).
OMNIGLOT_FILES = ("images_background_small1.zip", "images_background_small2.zip", "all_runs.zip")
OMNIGLOT_DIR = locate_omniglot(needs=OMNIGLOT_FILES)


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def omniglot_dir() -> Path:
    """The real Omniglot subset folder; skips the test where it is absent, but fails under ``CI``."""
    if OMNIGLOT_DIR is None:
        reason = f"real Omniglot subset not found: no folder with {', '.join(OMNIGLOT_FILES)} in {OMNIGLOT_PLACES}"
        if _under_ci():
            pytest.fail(f"{reason}; under CI the real-data tests must run", pytrace=False)
        pytest.skip(reason)
    return OMNIGLOT_DIR


def _drawing(alphabet: int, character: int, drawing: int) -> Image.Image:
    """A 105x105 black-on-white 1-bit PNG, different for every (alphabet, character, drawing)."""
    im = Image.new("L", (105, 105), 255)
    d = ImageDraw.Draw(im)
    x0, y0 = 10 + 7 * character + drawing % 5, 10 + 11 * alphabet + drawing // 5
    d.line([(x0, y0), (95 - 3 * character, 90 - drawing)], fill=0, width=3)
    d.ellipse([x0, 60, x0 + 20 + alphabet * 5, 80], outline=0, width=2)
    return im.convert("1")


def write_fake_set(folder: Path, alphabets: dict[str, int], drawings: int = 20) -> Path:
    """Write ``folder/<Alphabet>/characterNN/NNNN_DD.png``: ``alphabets`` maps name -> characters."""
    for a, (alphabet, n_chars) in enumerate(alphabets.items()):
        for c in range(1, n_chars + 1):
            char_dir = folder / alphabet / f"character{c:02d}"
            char_dir.mkdir(parents=True, exist_ok=True)
            for k in range(1, drawings + 1):
                _drawing(a, c, k).save(char_dir / f"{1000 + 100 * a + c:04d}_{k:02d}.png")
    return folder


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` so that its name is the archive's single top-level folder (as Omniglot's zips)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return archive


@pytest.fixture
def fake_omniglot(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``fake_omniglot(set_name, {alphabet: n_characters}, zipped=False, root=None)``.

    Writes a small Omniglot-layout set into ``root`` (default ``tmp_path / "fake"``), as a folder or,
    with ``zipped=True``, as ``<set_name>.zip`` only; returns the folder or the zip.
    """

    def make(
        set_name: str,
        alphabets: dict[str, int],
        *,
        zipped: bool = False,
        root: Path | None = None,
        drawings: int = 20,
    ) -> Path:
        root = root if root is not None else tmp_path / "fake"
        if not zipped:
            return write_fake_set(root / set_name, alphabets, drawings)
        staging = tmp_path / f".staging-{set_name}"
        write_fake_set(staging / set_name, alphabets, drawings)
        root.mkdir(parents=True, exist_ok=True)
        return zip_folder(staging / set_name, root / f"{set_name}.zip")

    return make


# ---------------------------------------------------------------- fixtures for the core modules


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """At most 2 torch threads (the target machines have 2 cores; more threads than cores slow torch down)."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    os.environ.setdefault("MAMLKIT_PROGRESS", "0")
    yield


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the project's model cache, nor read the shipped models: each session gets its
    own cache (tests/test_shipped_models.py reads the shipped ones on purpose).

    Session-scoped, so it is in place before any module-scoped fixture runs (a function-scoped one is
    set up after them, and a module fixture's CLI run would then read the project's cache)."""
    before = {name: os.environ.get(name) for name in ("MAMLKIT_CACHE", "MAMLKIT_SHIPPED")}
    os.environ["MAMLKIT_CACHE"] = str(tmp_path_factory.getbasetemp() / "model-cache")
    os.environ["MAMLKIT_SHIPPED"] = "0"
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def load_tool(name: str):
    """A script of ``tools/`` (e.g. ``make_student_copy``) imported as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def make_split(n_classes: int = 12, n_examples: int = 8, size: int = 28, seed: int = 0, name: str = "train"):
    """A small easy synthetic split: each class is a random prototype plus noise."""
    import torch

    from mamlkit.data.base import ClassSplit

    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(n_classes, 1, 1, size, size, generator=g)
    images = (protos + 0.3 * torch.rand(n_classes, n_examples, 1, size, size, generator=g)).clamp(0, 1)
    names = [f"a{c // 4}/c{c}" for c in range(n_classes)]
    return ClassSplit(name, images, names, [n.split("/")[0] for n in names])


@pytest.fixture
def tiny_split():
    return make_split()


def sampler_and_model(seed: int = 0, norm: str = "bn", hidden: int = 8, n_query: int = 3):
    """A 5-way 1-shot sampler on a small synthetic split and a fresh Conv4 on CPU (the same for the same arguments)."""
    sampler = mk.TaskSampler(make_split(seed=seed), n_way=5, k_shot=1, n_query=n_query, seed=seed)
    model = mk.build_model(mk.ModelConfig(norm=norm, hidden=hidden), seed=seed, device="cpu")
    return sampler, model


def seed_spread(record: str, placement: str, tasks: int | None = None) -> float:
    """Standard deviation across meta-training seeds (``ddof=1``) of one placement's mean accuracy, as a fraction,
    over the first ``tasks`` meta-test tasks of each seed in ``data/records/<record>.json`` (all of them if None).

    Tests that compare two random estimates (two seeds, two machines) take their margin from it, so that each
    has a stated false-failure rate instead of an interval that ignores seed variance."""
    import numpy as np

    path = Path(__file__).resolve().parents[1] / "data" / "records" / f"{record}.json"
    per_seed = json.loads(path.read_text())["placements"]["results"]["standard"][placement]
    assert len(per_seed) >= 8, f"{path.name}: too few seeds to estimate their spread"
    assert tasks is None or all(len(v) >= tasks for v in per_seed), f"{path.name}: fewer than {tasks} tasks a seed"
    return float(np.std([np.mean(v[:tasks]) / 100 for v in per_seed], ddof=1))
