"""The one way mamlkit writes a file: whole or not at all.

Every file the package writes (JSON records, Markdown tables, charts, meta-trained models, caches, downloads)
goes through ``atomic_path``: the content is written to a temporary file in the destination's folder, which is
then renamed onto the destination with ``os.replace`` (atomic on one file system). A reader sees the old file,
the new one, or none; never a part. The temporary file is removed on any failure, a ``KeyboardInterrupt``
included. ``tests/test_files.py`` fails if the package writes a final path any other way.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

#: How a temporary file's name starts and ends: ``.<name>.<random>.tmp`` beside the destination.
TEMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """A fresh temporary path beside ``path`` (hidden, random, ending in ``.tmp``); nothing is created."""
    return path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(dest) as tmp:`` write ``tmp``; when the block ends without an error, ``tmp`` replaces
    ``dest``. On any error or interrupt, in the block or in the rename, ``tmp`` is removed and ``dest`` is left as
    it was. The destination's folder must exist."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful rename


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """``with atomic_file(dest) as f:`` write bytes to ``f``; when the block ends without an error the file is
    flushed to disk and replaces ``dest`` (``atomic_path``), else it is removed."""
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, value: Any, indent: int | None = 1) -> Path:
    """Write ``value`` as JSON to ``path`` atomically; a value JSON cannot hold fails before anything is written."""
    return write_text(path, json.dumps(value, indent=indent))


def save_torch(path: str | Path, value: Any) -> Path:
    """``torch.save(value)`` to ``path`` atomically (flushed to disk before the rename)."""
    import torch

    with atomic_file(path) as f:
        torch.save(value, f)
    return Path(path)


def save_figure(fig: Any, path: str | Path, **options: Any) -> Path:
    """``fig.savefig(path, **options)`` atomically; the format is taken from ``path``'s suffix (``.png``...)."""
    path = Path(path)
    options.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **options)
    return path


#: The root of the source checkout this package runs from (the folder above ``mamlkit/``); see ``in_checkout``.
CHECKOUT = Path(__file__).resolve().parents[2]


def in_checkout() -> bool:
    """True when mamlkit runs from a source checkout (``pyproject.toml`` and ``data/`` beside the package), False for
    an installed copy."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "data").is_dir()


def default_folder(env: str, in_data: str, in_home: str) -> Path:
    """Where mamlkit writes when no folder is named: ``$env`` if set, else ``data/<in_data>`` in a source checkout,
    else ``~/.cache/<in_home>`` (e.g. the cache of meta-trained models, an Omniglot download)."""
    chosen = os.environ.get(env)
    if chosen:
        return Path(chosen).expanduser()
    if in_checkout():
        return CHECKOUT / "data" / in_data
    return Path.home() / ".cache" / in_home
