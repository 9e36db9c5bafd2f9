"""Safe downloads and archive extraction: nothing half-written is ever left where data is expected.

Two rules make a data folder trustworthy after any failure (no network, a wrong checksum, Ctrl-C,
a corrupt or malicious archive):

* a download is streamed to a temporary ``<name>.part-<random>`` file beside its destination, its
  md5 is checked, and only then is it moved into place with :func:`os.replace` (atomic on one
  file system); on failure the temporary file is removed;
* an archive is checked member by member *before* anything is written (no absolute paths, no
  ``..``, no drive letters, no symlinks), extracted into a temporary directory, and moved into
  place only when every member was written and passed its CRC check.

So a later run never mistakes a partial file or folder for data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from mamlkit.errors import DataError

__all__ = ["download_file", "md5sum", "safe_extract_zip"]

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


def _progress_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm byte counter if tqdm is installed and progress is wanted, else a do-nothing object."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is optional
            pass
        else:
            return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)

    class _NoBar:
        def update(self, n: int) -> None:
            pass

        def close(self) -> None:
            pass

    return _NoBar()


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
            The temporary ``.part-*`` file is always removed. A ``KeyboardInterrupt`` also removes
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
    tmp = dest.parent / f"{dest.name}.part-{secrets.token_hex(4)}"
    try:
        h = _md5()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                bar = _progress_bar(int(length) if length and length.isdigit() else None, dest.name, progress)
                try:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
                finally:
                    bar.close()
        except (urllib.error.URLError, OSError, ValueError) as e:
            # URLError covers HTTP errors and unreachable hosts; OSError covers timeouts, dropped
            # connections and a full disk; ValueError an unknown URL scheme.
            raise DataError(
                f"could not download {url} to {dest}: {e}. Check your connection (and the URL), or {by_hand}"
            ) from e
        actual = h.hexdigest()
        if expected is not None and actual != expected:
            raise DataError(
                f"checksum mismatch for {url}: md5 {actual}, expected {expected}; the download is "
                f"corrupt or incomplete (nothing was kept). Try again, or {by_hand}"
            )
        os.replace(tmp, dest)
    except KeyboardInterrupt:
        log.warning("download of %s interrupted; the partial file was removed", url)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------------------------------
# zip extraction

_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why an archive member must not be extracted, or ``None`` if it is safe."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in parts:
        return "contains a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):  # the high 16 bits hold the Unix file mode
        return "is a symbolic link"
    return None


def _corrupt(archive: Path, e: BaseException) -> DataError:
    return DataError(
        f"the archive {archive} is corrupt ({type(e).__name__}: {e}); delete it and download it again"
    )


def safe_extract_zip(archive: str | Path, target_dir: str | Path) -> Path:
    """Extract a zip archive into ``target_dir`` safely and all-or-nothing.

    Every member is checked before anything is written: absolute paths, ``..`` components, drive
    letters and symbolic links are refused. The archive is extracted into a temporary directory
    (``.<name>.extract-<random>``, beside ``target_dir`` if that does not exist yet, inside it
    otherwise) and moved into place with :func:`os.replace` only when complete:

    * if ``target_dir`` does not exist, the whole extracted tree becomes ``target_dir``;
    * if it exists, each top-level entry of the archive is moved into it; an entry that already
      exists there is an error (nothing is overwritten or merged).

    Returns:
        ``target_dir`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: an unsafe member (named in the message), a corrupt or truncated archive (bad
            central directory, CRC error), a name clash in ``target_dir``, or a write failure. In
            every case nothing is left behind: no partial tree, no temporary directory.
    """
    archive = Path(archive)
    target_dir = Path(target_dir)
    if not archive.is_file():
        raise DataError(f"archive {archive} does not exist")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise _corrupt(archive, e) from e

    with zf:
        infos = zf.infolist()
        for info in infos:
            reason = _unsafe_reason(info)
            if reason:
                raise DataError(
                    f"refusing to extract {archive}: member {info.filename!r} {reason}; "
                    f"the archive is unsafe (nothing was extracted)"
                )
        top_level = sorted({info.filename.replace("\\", "/").split("/")[0] for info in infos} - {""})

        merge = target_dir.exists()
        if merge:
            if not target_dir.is_dir():
                raise DataError(f"cannot extract {archive} into {target_dir}: it is a file, not a folder")
            clashes = [n for n in top_level if (target_dir / n).exists() or (target_dir / n).is_symlink()]
            if clashes:
                raise DataError(
                    f"cannot extract {archive} into {target_dir}: {clashes} already exist there; "
                    f"delete them first to extract again"
                )
            tmp_parent = target_dir
        else:
            tmp_parent = target_dir.parent
        try:
            tmp_parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create {tmp_parent} to extract {archive} ({e})") from e
        tmp = tmp_parent / f".{target_dir.name}.extract-{secrets.token_hex(4)}"
        moved: list[Path] = []
        try:
            tmp.mkdir()
            root = tmp.resolve()
            for info in infos:
                rel = info.filename.replace("\\", "/").strip("/")
                if not rel:
                    continue
                out = (tmp / rel).resolve()
                if root not in out.parents:  # belt and braces: _unsafe_reason already refused it
                    raise DataError(
                        f"refusing to extract {archive}: member {info.filename!r} escapes the folder"
                    )
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)  # the CRC is checked when src reaches its end
            if merge:
                for name in top_level:
                    os.replace(tmp / name, target_dir / name)
                    moved.append(target_dir / name)
            else:
                os.replace(tmp, target_dir)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise _corrupt(archive, e) from e
        except NotImplementedError as e:  # an unsupported compression method
            raise DataError(f"cannot extract {archive}: {e}; extract it by hand") from e
        except OSError as e:
            for path in moved:  # only reached if a later top-level move failed
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            raise DataError(f"could not extract {archive} into {target_dir}: {e}") from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target_dir
