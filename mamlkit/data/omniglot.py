"""Real Omniglot: 1,623 handwritten characters from 50 alphabets, 20 drawings each (Lake et al. 2015).

Where the data can come from (all found under one ``root`` folder):

* the official archives ``images_background.zip`` (30 alphabets, 964 characters) and
  ``images_evaluation.zip`` (20 alphabets, 659 characters), or the two small background subsets
  ``images_background_small1.zip`` / ``images_background_small2.zip``, read directly from the zip
  (nothing is extracted);
* the same sets already extracted, as folders ``<set>/<Alphabet>/characterNN/*.png``;
* torchvision's cache layout, ``root/omniglot-py/<set>/...`` (or its zips there).

Each 105x105 drawing (black strokes on white) is converted to grey, resized with Lanczos
resampling (as in the original MAML preprocessing), and inverted so strokes are bright (1) on a dark
(0) background; the result is float32 in ``[0, 1]``. A class is one character of one alphabet.

The processed tensors are cached in ``root/processed/`` (or ``cache_dir``), keyed by the sources'
sizes and modification times, so a second load takes milliseconds. A read-only ``root`` simply
means no cache is written.

:func:`load_one_shot_runs` reads the 20 official 20-way one-shot classification runs
(``all_runs.zip``) used by Lake et al. for their human-level comparison.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mamlkit.data.base import FewShotDataset, split_by_alphabet
from mamlkit.data.download import download_file
from mamlkit.data.omniglot_files import (
    CACHE_VERSION,
    FULL_SETS,
    LAYOUT,
    OMNIGLOT_SETS,
    PREPROCESS,
    RESOURCES,
    SMALL_SETS,
    Reader,
    Source,
    corrupt_zip,
    decode,
    find_omniglot_sets,
    find_sources,
    ignored,
    index_characters,
    load_cache,
    save_cache,
    to_float,
)
from mamlkit.errors import DataError
from mamlkit.plumbing.files import CHECKOUT, default_folder
from mamlkit.tasks import Task

__all__ = [
    "FULL_SETS",
    "OMNIGLOT_SETS",
    "RESOURCES",
    "SMALL_SETS",
    "SMALL_SPLIT",
    "OneShotRun",
    "download_folder",
    "download_omniglot",
    "find_omniglot_sets",
    "load_omniglot",
    "load_one_shot_runs",
]

log = logging.getLogger(__name__)

#: The default split when only the small subsets are loaded: meta-test alphabets are held out.
SMALL_SPLIT: dict[str, list[str]] = {
    "train": ["Balinese", "Greek", "Latin", "Japanese_(katakana)", "Sanskrit"],
    "test": ["Korean", "Tagalog", "Early_Aramaic"],
}

def _missing_root_error(root: Path) -> DataError:
    return DataError(
        f"the Omniglot folder {root} does not exist; pass --data-dir pointing at a folder containing "
        f"images_background/ or images_background.zip, or use download=True where you have internet"
    )


def _no_sets_error(root: Path) -> DataError:
    entries = sorted(p.name for p in root.iterdir() if not ignored(p.name))
    shown = ", ".join(entries[:20]) + (", ..." if len(entries) > 20 else "") if entries else "nothing"
    sets = ", ".join(f"{s}/ or {s}.zip" for s in OMNIGLOT_SETS)
    return DataError(
        f"no Omniglot set found in {root} (it contains: {shown}). Expected one of {sets} "
        f"(directly in the folder or in omniglot-py/, as torchvision writes it), laid out as {LAYOUT}; "
        f"point --data-dir at such a folder, or use download=True where you have internet"
    )


def _download_sets(root: Path, sets: Sequence[str], progress: bool) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the Omniglot folder {root} ({e}); choose a writable folder") from e
    found = find_sources(root)
    for name in sets:
        src = found.get(name)
        if src is not None and src.path != root / f"{name}.zip":
            continue  # an extracted folder, or torchvision's copy: use it as it is
        res = RESOURCES.get(name)
        if res is None:
            raise DataError(f"no download is known for {name!r}; known: {sorted(RESOURCES)}")
        download_file(res["url"], root / f"{name}.zip", res["md5"], progress=progress)


def _build(sources: list[Source], image_size: int) -> dict:
    """Read and preprocess every drawing; the tensors and names that the cache stores."""
    chosen: dict[tuple[str, str], tuple[Source, list[str]]] = {}
    readers: dict[str, Reader] = {}
    with ExitStack() as stack:
        for src in sources:
            reader = readers[src.set_name] = stack.enter_context(Reader(src))
            for key, drawings in index_characters(reader).items():
                # A character in two sets (the small subsets share Greek and Latin) is kept once.
                chosen.setdefault(key, (src, drawings))
        counts = Counter(len(d) for _, d in chosen.values())
        if len(counts) > 1:
            usual = counts.most_common(1)[0][0]
            odd = sorted(f"{a}/{c} ({len(d)})" for (a, c), (_, d) in chosen.items() if len(d) != usual)
            raise DataError(
                f"characters with different numbers of drawings: most have {usual} but {len(odd)} differ: "
                f"{', '.join(odd[:8])}{', ...' if len(odd) > 8 else ''}. Every character needs the same "
                f"number of drawings (Omniglot has 20); re-extract or re-download the set"
            )
        keys = sorted(chosen)
        n_draw = next(iter(counts))
        if n_draw == 0:
            raise DataError(f"the character folders in {[str(s.path) for s in sources]} hold no drawings")
        u8 = np.empty((len(keys), n_draw, 1, image_size, image_size), dtype=np.uint8)
        for i, key in enumerate(keys):
            src, drawings = chosen[key]
            reader = readers[src.set_name]
            for j, rel in enumerate(drawings):
                u8[i, j, 0] = decode(reader.read(rel), reader.where(rel), image_size)
    return {
        "images": torch.from_numpy(u8),
        "class_names": [f"{a}/{c}" for a, c in keys],
        "alphabets": [a for a, _ in keys],
        "class_sets": [chosen[k][0].set_name for k in keys],
    }


def _default_split(alphabets: list[str], class_sets: list[str]) -> dict[str, list[str]]:
    """Full sets: train = background alphabets, test = evaluation alphabets. Small subsets only:
    the held-out alphabets of :data:`SMALL_SPLIT` are the test split. Empty splits are left out."""
    set_of = dict(zip(alphabets, class_sets))
    names = list(dict.fromkeys(alphabets))
    if any(s in FULL_SETS for s in class_sets):
        test = [a for a in names if set_of[a] == "images_evaluation"]
    else:
        test = [a for a in names if a in SMALL_SPLIT["test"]]
    train = [a for a in names if a not in test]
    return {k: v for k, v in (("train", train), ("test", test)) if v}


def _chosen_sources(root: Path, sets: Sequence[str] | None) -> tuple[list[str], list[Source]]:
    """The sets ``load_omniglot`` loads from ``root`` (``sets``, or the full or else the small ones present) and
    where each is; a ``DataError`` that says what to add where a set is missing."""
    found = find_sources(root)
    if sets is None:
        chosen = [s for s in FULL_SETS if s in found] or [s for s in SMALL_SETS if s in found]
        if not chosen:
            raise _no_sets_error(root)
    else:
        chosen = list(dict.fromkeys(sets))
        missing = [s for s in chosen if s not in found]
        if missing:
            if not found:
                raise _no_sets_error(root)
            raise DataError(
                f"Omniglot set(s) {missing} not found in {root} (found: {sorted(found)}); add "
                f"{missing[0]}.zip or {missing[0]}/ there, or use download=True where you have internet"
            )
    return chosen, [found[s] for s in chosen]


def _cached_or_built(sources: list[Source], chosen: list[str], image_size: int, root: Path, cache: bool,
                     cache_dir: str | Path | None) -> tuple[dict, Path | None, bool, bool]:
    """The processed tensors of ``sources``: from the cache file when its key matches, else built from the images
    (and written to the cache where it can be). Returns the data, the cache file, whether it came from the cache
    and whether it was written."""
    cache_file = None
    data = None
    if cache:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else root / "processed"
        canonical = [s for s in OMNIGLOT_SETS if s in chosen]
        cache_file = folder / f"omniglot-{'+'.join(canonical)}-{image_size}.pt"
        key = json.dumps(
            {
                "version": CACHE_VERSION,
                "preprocess": PREPROCESS,
                "image_size": image_size,
                "sources": [[s.set_name, s.signature()] for s in sources],
            },
            sort_keys=True,
        )
        data = load_cache(cache_file, key)
    from_cache = data is not None
    cache_written = False
    if data is None:
        data = _build(sources, image_size)
        if cache_file is not None:
            data["key"] = key
            cache_written = save_cache(cache_file, data)

    return data, cache_file, from_cache, cache_written


def _checked_sets(sets: Sequence[str] | str | None, image_size: int) -> Sequence[str] | None:
    """``load_omniglot``'s ``sets`` (one name or several, each one of ``OMNIGLOT_SETS``) and ``image_size``, checked."""
    if isinstance(sets, str):
        sets = [sets]
    if not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    if sets is not None:
        unknown = [s for s in sets if s not in OMNIGLOT_SETS]
        if unknown or not sets:
            raise DataError(f"unknown Omniglot set(s) {unknown or list(sets)}; choose from {list(OMNIGLOT_SETS)}")
    return sets


def load_omniglot(
    root: str | Path,
    *,
    sets: Sequence[str] | None = None,
    image_size: int = 28,
    split: dict[str, list[str]] | None = None,
    download: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FewShotDataset:
    """Load real Omniglot from ``root`` as a :class:`FewShotDataset` split by alphabet.

    Args:
        root: a folder holding Omniglot sets as zips (``images_background.zip``, ...), as extracted
            folders (``images_background/<Alphabet>/characterNN/*.png``), or in torchvision's
            ``omniglot-py/`` layout.
        sets: which of :data:`OMNIGLOT_SETS` to load. ``None``: the full sets
            (``images_background``, ``images_evaluation``) that are present, or else the small
            subsets that are present. A character found in two sets is kept once.
        image_size: side of the square images (the originals are 105x105).
        split: ``{split name: [alphabets]}``; alphabets not named are left out. Default: with the
            full sets, ``train`` = the 30 background alphabets and ``test`` = the 20 evaluation
            alphabets (no ``val`` split: pass ``split`` to hold out some alphabets for validation);
            with only the small subsets, :data:`SMALL_SPLIT` (``test`` = Korean, Tagalog,
            Early_Aramaic, held out). Splits that would be empty are left out.
        download: fetch the missing sets' zips into ``root`` first (the full background and
            evaluation sets when ``sets`` is ``None``), verifying their md5s.
        cache: read and write the processed tensors in ``cache_dir``.
        cache_dir: where the cache lives; default ``root/processed``. Nothing is written, silently,
            where that folder is read-only.
        progress: show a progress bar while downloading.

    Returns:
        A dataset named ``"omniglot"`` whose splits hold float32 images ``[classes, 20, 1, S, S]``
        in ``[0, 1]``, strokes bright on dark, classes named ``"<Alphabet>/characterNN"``.
        ``info`` records the sources, the cache file and whether it was used, and the load time.

    Raises:
        DataError: the folder is missing or holds no Omniglot set, a set has an unexpected layout,
            an archive is corrupt, a file is not an image, or a download failed; the message says
            what to do.
    """
    t0 = time.perf_counter()
    sets = _checked_sets(sets, image_size)
    root = Path(root).expanduser()
    if download:
        _download_sets(root, list(sets) if sets is not None else list(FULL_SETS), progress)
    if not root.exists():
        raise _missing_root_error(root)
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; pass the folder that contains the Omniglot sets")

    chosen, sources = _chosen_sources(root, sets)

    data, cache_file, from_cache, cache_written = _cached_or_built(sources, chosen, image_size, root, cache,
                                                                  cache_dir)
    images = to_float(data["images"])
    class_names = list(data["class_names"])
    alphabets = list(data["alphabets"])
    if split is None:
        split = _default_split(alphabets, list(data["class_sets"]))
    splits = split_by_alphabet(images, class_names, alphabets, split)
    n_alpha = len(set(alphabets))
    return FewShotDataset(
        name="omniglot",
        splits=splits,
        description=(
            f"Omniglot ({' + '.join(chosen)}) from {root}: {len(class_names)} characters x "
            f"{images.shape[1]} drawings from {n_alpha} alphabets, {image_size}x{image_size}, "
            f"strokes bright on dark"
        ),
        info={
            "root": str(root),
            "sets": chosen,
            "sources": {s.set_name: str(s.path) for s in sources},
            "image_size": image_size,
            "n_classes": len(class_names),
            "n_alphabets": n_alpha,
            "split": {k: list(v) for k, v in split.items()},
            "cache_file": str(cache_file) if cache_file is not None else None,
            "from_cache": from_cache,
            "cache_written": cache_written,
            "seconds": time.perf_counter() - t0,
        },
    )


# --------------------------------------------------------------------------------------------------
# the 20 official one-shot runs


@dataclass
class OneShotRun:
    """One official 20-way one-shot classification run (Lake et al. 2015).

    Attributes:
        name: the run's folder name, e.g. ``"run01"``.
        support: float32 ``[N, 1, H, W]``: one drawing per class (``training/classNN.png``, in order).
        support_labels: int64 ``[N]``: ``0 .. N-1``.
        query: float32 ``[M, 1, H, W]``: the test drawings (``test/itemNN.png``, in order).
        query_labels: int64 ``[M]``: for each test drawing, the index of its class in ``support``
            (from ``class_labels.txt``).
    """

    name: str
    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor

    def as_task(self) -> Task:
        """The run as a meta-test task: the 20 training drawings are the support set, the 20 test
        drawings the query set (sorted by class, so a one-class-at-a-time split is well defined)."""
        order = torch.argsort(self.query_labels, stable=True)
        return Task(
            support_x=self.support,
            support_y=self.support_labels,
            query_x=self.query[order],
            query_y=self.query_labels[order],
            index=int(self.name.removeprefix("run")) if self.name.removeprefix("run").isdigit() else -1,
        )

    def __repr__(self) -> str:
        return (
            f"OneShotRun({self.name!r}: {self.support.shape[0]}-way, {self.query.shape[0]} test drawings "
            f"of {self.support.shape[-2]}x{self.support.shape[-1]})"
        )


_RUN_LABELS = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<run>run\d+)/class_labels\.txt$")


#: Where ``locate_omniglot`` looks after its candidates, in words (for messages).
OMNIGLOT_PLACES = "$MAMLKIT_OMNIGLOT, data/omniglot in the checkout, ../shared/data/omniglot beside it"


def download_folder() -> Path:
    """Where a download goes when no folder is named: ``$MAMLKIT_OMNIGLOT``, else ``data/omniglot`` in a source
    checkout, else ``~/.cache/mamlkit/omniglot`` (``locate_omniglot`` looks in the first two)."""
    return default_folder("MAMLKIT_OMNIGLOT", "omniglot", "mamlkit/omniglot")


def download_omniglot(
    root: str | Path | None = None,
    sets: Sequence[str] = (*FULL_SETS, "all_runs"),
    progress: bool = True,
) -> Path:
    """Fetch the official Omniglot archives into ``root`` (default ``download_folder()``) and return the folder.

    Each archive is checked against its md5 and only then moved into place; one already there with the right
    md5 is not fetched again. A download that fails (no network, a connection closed early, a wrong
    checksum) leaves nothing behind and says so: run the same call again to restart it. Without internet,
    download the archives by hand from github.com/brendenlake/omniglot (folder ``python/``) into the folder.
    """
    folder = Path(root).expanduser() if root is not None else download_folder()
    unknown = [name for name in sets if name not in RESOURCES]
    if unknown:
        raise DataError(f"no download is known for {unknown[0]!r}; choose from {', '.join(RESOURCES)}")
    _download_sets(folder, list(sets), progress)
    return folder


def locate_omniglot(candidates: Sequence[str | Path] = (), needs: Sequence[str] = ()) -> Path | None:
    """The first folder that holds Omniglot data, or None: the one place that decides where Omniglot lives.

    Looks at ``candidates``, then ``$MAMLKIT_OMNIGLOT``, then ``data/omniglot`` in a source
    checkout, then ``../shared/data/omniglot`` beside the checkout (the classroom subset). ``needs``:
    file names the folder must also hold (e.g. ``"all_runs.zip"``).
    """
    places = [*candidates, os.environ.get("MAMLKIT_OMNIGLOT") or None, CHECKOUT / "data" / "omniglot",
              CHECKOUT.parent / "shared" / "data" / "omniglot"]
    for place in places:
        folder = Path(place).expanduser() if place else None
        if folder and folder.is_dir() and find_omniglot_sets(folder) and all((folder / n).is_file() for n in needs):
            return folder.resolve()
    return None


def load_one_shot_runs(path: str | Path, image_size: int = 28) -> list[OneShotRun]:
    """Read the official one-shot runs from ``all_runs.zip``, its extracted folder, or a folder
    holding either (``all_runs.zip`` or ``all_runs/``).

    Each run ``runNN/`` holds ``training/classNN.png`` (one drawing per class), ``test/itemNN.png``
    and ``class_labels.txt``, whose lines read ``runNN/test/itemKK.png runNN/training/classJJ.png``.
    Images get the same preprocessing as :func:`load_omniglot`.

    Returns:
        The runs sorted by name (20 for the official file).

    Raises:
        DataError: nothing found, a corrupt archive, a malformed ``class_labels.txt`` or a missing
            or unreadable image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"{path} does not exist; pass the path of all_runs.zip (from the Omniglot repository's "
            f"python/ folder), its extracted folder, or the folder that holds it"
        )
    if path.is_dir() and not any(path.glob("run*/class_labels.txt")):
        if (path / "all_runs.zip").is_file():
            path = path / "all_runs.zip"
        elif (path / "all_runs").is_dir():
            path = path / "all_runs"

    zf: zipfile.ZipFile | None = None
    if path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise corrupt_zip(path, e, "all_runs") from e
        names = [n for n in zf.namelist() if not n.endswith("/")]

        def read(rel: str) -> bytes:
            try:
                return zf.read(rel)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise corrupt_zip(path, e, "all_runs") from e
    else:
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]

        def read(rel: str) -> bytes:
            return (path / rel).read_bytes()

    matches = sorted((m for m in map(_RUN_LABELS.match, names) if m), key=lambda m: m["run"])
    try:
        runs = [_read_run(m["prefix"] + m["run"], m["run"], names, read, path, image_size) for m in matches]
    finally:
        if zf is not None:
            zf.close()
    if not runs:
        raise DataError(
            f"no one-shot runs found in {path}; expected runNN/class_labels.txt, runNN/training/*.png and "
            f"runNN/test/*.png (as in all_runs.zip)"
        )
    return runs


def _read_run(
    base: str, name: str, names: list[str], read: Callable[[str], bytes], where: Path, image_size: int
) -> OneShotRun:
    def pngs(sub: str) -> list[str]:
        start = f"{base}/{sub}/"
        return sorted(
            n
            for n in names
            if n.startswith(start) and n.lower().endswith(".png") and "/" not in n[len(start) :]
        )

    train, test = pngs("training"), pngs("test")
    if not train or not test:
        raise DataError(f"run {name} in {where} lacks training/*.png or test/*.png drawings")
    class_index = {Path(n).name: i for i, n in enumerate(train)}
    item_index = {Path(n).name: i for i, n in enumerate(test)}
    labels = [-1] * len(test)
    text = read(f"{base}/class_labels.txt").decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        item, cls = (Path(f).name for f in fields) if len(fields) == 2 else (None, None)
        if item not in item_index or cls not in class_index:
            raise DataError(
                f"{where}: {base}/class_labels.txt line {lineno} ({line.strip()!r}) should read "
                f"'{name}/test/itemNN.png {name}/training/classNN.png' naming files that exist"
            )
        labels[item_index[item]] = class_index[cls]
    unlabelled = [Path(test[i]).name for i, lab in enumerate(labels) if lab < 0]
    if unlabelled:
        raise DataError(f"{where}: {base}/class_labels.txt gives no class for {unlabelled}")

    def stack(files: list[str]) -> torch.Tensor:
        u8 = np.stack([decode(read(f), f"{where}:{f}", image_size) for f in files])[:, None]
        return to_float(torch.from_numpy(u8))

    return OneShotRun(
        name=name,
        support=stack(train),
        support_labels=torch.arange(len(train)),
        query=stack(test),
        query_labels=torch.tensor(labels, dtype=torch.long),
    )
