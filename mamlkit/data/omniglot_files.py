"""Reading Omniglot's files for ``mamlkit.data.omniglot``: the sets as zips or folders (also in torchvision's
layout), each drawing decoded and resized, and the processed tensors cached on disk (never half-written)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mamlkit.errors import DataError
from mamlkit.plumbing.files import save_torch

log = logging.getLogger("mamlkit.data.omniglot")

FULL_SETS: tuple[str, ...] = ("images_background", "images_evaluation")
SMALL_SETS: tuple[str, ...] = ("images_background_small1", "images_background_small2")
OMNIGLOT_SETS: tuple[str, ...] = FULL_SETS + SMALL_SETS

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"

#: Where each archive is downloaded from, and its md5. Tests point ``url`` at ``file://`` archives.
RESOURCES: dict[str, dict[str, str]] = {
    "images_background": {
        "url": BASE_URL + "images_background.zip",
        "md5": "68d2efa1b9178cc56df9314c21c6e718",
    },
    "images_evaluation": {
        "url": BASE_URL + "images_evaluation.zip",
        "md5": "6b91aef0f799c5bb55b94e3f2daec811",
    },
    "images_background_small1": {
        "url": BASE_URL + "images_background_small1.zip",
        "md5": "e704a628b5459e08445c13499850abc4",
    },
    "images_background_small2": {
        "url": BASE_URL + "images_background_small2.zip",
        "md5": "b75a71a51d3b13f821f212756fe481fd",
    },
    "all_runs": {"url": BASE_URL + "all_runs.zip", "md5": "e8996daecdf12afeeb4a53a179f06b19"},
}

CACHE_VERSION = 1
PREPROCESS = "grey-lanczos-invert-uint8"  # part of the cache key: change it when preprocessing changes
IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
LAYOUT = "<set>/<Alphabet>/characterNN/*.png"


def ignored(name: str) -> bool:
    """Files and folders that operating systems leave behind (``.DS_Store``, ``__MACOSX``, ...)."""
    return name.startswith(".") or name in IGNORED_NAMES


# --------------------------------------------------------------------------------------------------
# images


def decode(data: bytes, name: str, image_size: int) -> np.ndarray:
    """One drawing as ``uint8 [H, W]``, strokes bright on dark, resized to ``image_size``."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            grey = im.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"{name} is not a readable PNG image ({type(e).__name__}: {e}); the file is damaged or not "
            f"an image: re-extract or re-download the set, or delete the file"
        ) from e
    if grey.size != (image_size, image_size):
        grey = grey.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return 255 - np.asarray(grey, dtype=np.uint8)


def to_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to float32 in [0, 1] (one function for fresh and cached loads: identical results)."""
    return u8.to(torch.float32).div_(255.0)


# --------------------------------------------------------------------------------------------------
# sources: a set as a folder or a zip


@dataclass(frozen=True)
class Source:
    set_name: str
    path: Path  # the set's folder, or the zip archive holding it
    kind: str  # "folder" or "zip"

    def signature(self) -> str:
        """Changes whenever the source's files change (sizes and modification times)."""
        if self.kind == "zip":
            st = self.path.stat()
            return f"zip:{st.st_size}:{st.st_mtime_ns}"
        h = hashlib.md5(usedforsecurity=False)
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if not ignored(d))
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                rel = os.path.relpath(os.path.join(dirpath, f), self.path)
                h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return "folder:" + h.hexdigest()


def find_omniglot_sets(root: str | Path) -> dict[str, Path]:
    """The Omniglot sets present under ``root``: set name -> the folder or zip it will be read from.

    Looks in ``root`` and in ``root/omniglot-py`` (torchvision's layout); an extracted folder is
    preferred to a zip of the same set.
    """
    return {name: src.path for name, src in find_sources(Path(root)).items()}


def find_sources(root: Path) -> dict[str, Source]:
    found: dict[str, Source] = {}
    for base in (root, root / "omniglot-py"):
        for name in OMNIGLOT_SETS:
            if name in found:
                continue
            if (base / name).is_dir():
                found[name] = Source(name, base / name, "folder")
            elif (base / f"{name}.zip").is_file():
                found[name] = Source(name, base / f"{name}.zip", "zip")
    return found


def corrupt_zip(path: Path, e: BaseException, set_name: str | None = None) -> DataError:
    hint = ""
    if set_name in RESOURCES:
        hint = f" (its md5 should be {RESOURCES[set_name]['md5']}; download=True fetches it)"
    return DataError(
        f"the archive {path} is corrupt ({type(e).__name__}: {e}); delete it and download it again{hint}"
    )


class Reader:
    """Lists a source's files as paths relative to the set folder and reads them; a context manager."""

    def __init__(self, source: Source):
        self.source = source
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""

    def __enter__(self) -> Reader:
        if self.source.kind == "zip":
            try:
                self._zip = zipfile.ZipFile(self.source.path)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise corrupt_zip(self.source.path, e, self.source.set_name) from e
        return self

    def __exit__(self, *exc: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def entries(self) -> tuple[list[str], list[str]]:
        """``(files, folders)`` as POSIX paths relative to the set folder, ignored names skipped."""
        files: list[str] = []
        dirs: list[str] = []
        if self._zip is not None:
            top = self.source.set_name
            self._prefix = top + "/"
            for name in self._zip.namelist():
                parts = [p for p in name.split("/") if p]
                if not parts or any(ignored(p) for p in parts):
                    continue
                if parts[0] != top:
                    raise DataError(
                        f"unexpected layout in {self.source.path}: member {name!r} is not inside a top-level "
                        f"folder {top}/; the archive must hold {LAYOUT} with <set> = {top}"
                    )
                rel = "/".join(parts[1:])
                if rel:
                    (dirs if name.endswith("/") else files).append(rel)
        else:
            for dirpath, dirnames, filenames in os.walk(self.source.path):
                dirnames[:] = sorted(d for d in dirnames if not ignored(d))
                rel_dir = os.path.relpath(dirpath, self.source.path)
                prefix = "" if rel_dir == "." else Path(rel_dir).as_posix() + "/"
                dirs.extend(prefix + d for d in dirnames)
                files.extend(prefix + f for f in sorted(filenames) if not ignored(f))
        return files, dirs

    def read(self, rel: str) -> bytes:
        if self._zip is not None:
            try:
                return self._zip.read(self._prefix + rel)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise corrupt_zip(self.source.path, e, self.source.set_name) from e
        return (self.source.path / rel).read_bytes()

    def where(self, rel: str = "") -> str:
        if self._zip is not None:
            return f"{self.source.path}:{self._prefix}{rel}"
        return str(self.source.path / rel) if rel else str(self.source.path)


def index_characters(reader: Reader) -> dict[tuple[str, str], list[str]]:
    """Check a set's layout; ``(alphabet, character) -> sorted drawing paths`` (relative to the set)."""
    files, dirs = reader.entries()
    expected = f"expected the layout {LAYOUT}"
    chars: dict[tuple[str, str], list[str]] = {}
    alphabets: set[str] = set()
    for d in dirs:
        parts = d.split("/")
        if len(parts) == 1:
            alphabets.add(parts[0])
        elif len(parts) == 2:
            alphabets.add(parts[0])
            chars.setdefault((parts[0], parts[1]), [])
        else:
            raise DataError(f"unexpected layout: folder {reader.where(d)} is nested too deep; {expected}")
    for f in files:
        parts = f.split("/")
        if len(parts) == 1:
            raise DataError(
                f"unexpected layout: file {reader.where(f)} lies directly in the set folder; {expected}"
            )
        if len(parts) == 2:
            raise DataError(
                f"unexpected layout: file {reader.where(f)} lies directly in the alphabet folder, not in a "
                f"character folder; {expected}"
            )
        if len(parts) > 3:
            raise DataError(f"unexpected layout: file {reader.where(f)} is nested too deep; {expected}")
        if not parts[2].lower().endswith(".png"):
            raise DataError(
                f"{reader.where(f)} is not a PNG image; a character folder must hold only its drawings "
                f"(*.png). Remove the file, or re-extract the set"
            )
        alphabets.add(parts[0])
        chars.setdefault((parts[0], parts[1]), []).append(f)
    if not alphabets:
        raise DataError(f"the Omniglot set {reader.where()} is empty; {expected}")
    empty = sorted(a for a in alphabets if not any(k[0] == a for k in chars))
    if empty:
        raise DataError(
            f"unexpected layout: alphabet folder(s) {empty} in {reader.where()} hold no character folders; "
            f"{expected}"
        )
    return {k: sorted(v) for k, v in chars.items()}


# --------------------------------------------------------------------------------------------------
# cache


def writable(folder: Path) -> bool:
    """Whether ``folder`` (or its nearest existing parent) may be written to.

    Besides the permission check this honours write bits that are all off, even for root: the
    shared data folder is read-only by intent, and we must not write into it.
    """
    p = folder
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    try:
        return os.access(p, os.W_OK) and bool(p.stat().st_mode & 0o222)
    except OSError:
        return False


def load_cache(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        images = data["images"]
        ok = (
            data.get("key") == key
            and isinstance(images, torch.Tensor)
            and images.dtype == torch.uint8
            and images.dim() == 5
            and len(data["class_names"])
            == len(data["alphabets"])
            == len(data["class_sets"])
            == images.shape[0]
        )
    except Exception as e:  # noqa: BLE001 - any unreadable cache is rebuilt, whatever the error
        log.info(
            "ignoring the unreadable Omniglot cache %s (%s: %s); rebuilding it", path, type(e).__name__, e
        )
        return None
    if not ok:
        log.info("the Omniglot cache %s is stale (its sources changed); rebuilding it", path)
        return None
    return data


def save_cache(path: Path, data: dict) -> bool:
    """Write atomically (``mamlkit.plumbing.files``: the temporary file is removed on any failure or interrupt); False,
    silently, where that is not possible."""
    if not writable(path.parent):
        log.debug("not writing the Omniglot cache: %s is read-only", path.parent)
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch(path, data)
        return True
    except Exception as e:  # noqa: BLE001 - a cache is an optimisation; never fail a load over it
        log.debug("could not write the Omniglot cache %s: %s", path, e)
        return False


# --------------------------------------------------------------------------------------------------
# loading
