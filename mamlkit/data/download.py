"""Safe downloads: nothing half-written is ever left where data is expected.

A download is streamed to a temporary file beside its destination (``mamlkit.plumbing.files.atomic_path``), its md5
is checked, and only then is it moved into place with :func:`os.replace` (atomic on one file system);
on any failure (no network, a wrong checksum, Ctrl-C) the temporary file is removed, so a later run
never mistakes a partial file for data. Archives are not extracted: the Omniglot loader reads the
zip files in place.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from mamlkit.errors import DataError
from mamlkit.plumbing.files import atomic_file
from mamlkit.progress import progress_counter

__all__ = ["download_file", "md5sum"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # 1 MiB


def _md5():  # -> hashlib._Hash
    # usedforsecurity=False: md5 is a checksum here, and this keeps it available on FIPS systems.
    return hashlib.md5(usedforsecurity=False)


def md5sum(path: str | Path) -> str:
    """The md5 hex digest of a file, read in 1 MiB chunks."""
    h = _md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str,
    dest: str | Path,
    md5: str | None,
    *,
    timeout: float = 60,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, verifying its md5 before the file appears at ``dest``.

    If ``dest`` already exists and its md5 matches (or no md5 is given), nothing is downloaded. If
    it exists with the wrong md5 it is reported as corrupt and downloaded again. Any ``urllib`` URL
    works, including ``file://`` ones.

    Args:
        url: where to fetch the file from.
        dest: the final path of the file; its folder is created if needed.
        md5: the expected md5 hex digest, or ``None`` to skip verification.
        timeout: seconds to wait for the server before giving up.
        progress: show a tqdm progress bar (when tqdm is installed).

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: the download failed or the checksum did not match; the message says what to do.
            The temporary file is always removed. A ``KeyboardInterrupt`` also removes
            it, and is then re-raised unchanged so that Ctrl-C still stops the program.
    """
    dest = Path(dest)
    expected = md5.lower() if md5 else None
    by_hand = f"download {url} by hand and put it at {dest}"

    if dest.exists():
        if expected is None:
            return dest
        try:
            actual = md5sum(dest)
        except OSError as e:
            raise DataError(f"cannot read the existing {dest} ({e}); remove it and try again") from e
        if actual == expected:
            return dest
        log.warning(
            "%s is corrupt (md5 %s, expected %s); downloading it again from %s", dest, actual, expected, url
        )

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create the folder {dest.parent} for {dest.name} ({e}); choose a writable data folder"
        ) from e
    try:
        with atomic_file(dest) as out:
            _fetch(url, dest, out, expected, timeout, progress, by_hand)
    except OSError as e:  # the temporary file could not be created or moved into place (the fetch's own are DataErrors)
        raise DataError(f"cannot write {dest} ({e}); nothing was kept: choose a writable data folder") from e
    except KeyboardInterrupt:
        log.warning("download of %s interrupted; the partial file was removed", url)
        raise
    return dest


def _fetch(url: str, dest: Path, out: BinaryIO, expected: str | None, timeout: float, progress: bool,
           by_hand: str) -> None:
    """Stream ``url`` into ``out`` and check its md5 (``atomic_file`` then moves it onto ``dest``, or removes it)."""
    h = _md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = progress_counter(total, dest.name, progress, unit="B")
            received = 0
            try:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
            if total is not None and received != total:
                raise http.client.IncompleteRead(b"", total - received)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        # URLError covers HTTP errors and unreachable hosts; HTTPException a connection closed before
        # the whole file arrived (IncompleteRead); OSError timeouts, dropped connections and a full
        # disk; ValueError an unknown URL scheme. Nothing is kept: run the same call again to restart.
        raise DataError(
            f"could not download {url} to {dest}: {_reason(e)}. Nothing was kept: check your connection (and "
            f"the URL) and run the same command again to restart the download, or {by_hand}"
        ) from e
    actual = h.hexdigest()
    if expected is not None and actual != expected:
        raise DataError(
            f"checksum mismatch for {url}: md5 {actual}, expected {expected}; the download is "
            f"corrupt or incomplete (nothing was kept). Try again, or {by_hand}"
        )


def _reason(error: BaseException) -> str:
    """A short reason for a failed download (an incomplete body says how much was missing)."""
    if isinstance(error, http.client.IncompleteRead):
        missing = f", {error.expected} bytes missing" if error.expected else ""
        return f"the connection closed before the whole file arrived{missing}"
    return str(error) or type(error).__name__
