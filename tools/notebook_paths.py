"""Where the notebooks are: the one list every tool and test reads.

The core path is the numbered notebooks at the top of ``notebooks/`` (``01_…`` to ``06_…``), read in order in
one lab. The deep dives are the notebooks of ``notebooks/deep_dives/``, each standing alone. A tool that
globbed ``notebooks/NN_*.ipynb`` would silently miss the deep dives: use ``all_notebooks()``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DEEP_DIVES = NOTEBOOKS / "deep_dives"


def core(folder: Path = NOTEBOOKS) -> list[Path]:
    """The core path, in reading order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def deep_dives(folder: Path = NOTEBOOKS) -> list[Path]:
    """The deep dives, by name."""
    return sorted((folder / "deep_dives").glob("*.ipynb"))


def all_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Every notebook of the collection: the core path in order, then the deep dives."""
    return core(folder) + deep_dives(folder)


def is_deep_dive(path: Path) -> bool:
    return path.parent.name == "deep_dives"


def relative(path: Path, folder: Path = NOTEBOOKS) -> str:
    """The notebook's path under ``notebooks/`` (``02_maml_placements.ipynb``, ``deep_dives/does_it_hold.ipynb``)."""
    return path.resolve().relative_to(folder.resolve()).as_posix()
