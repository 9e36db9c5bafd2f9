"""Downloads: checksums, atomic placement, and the whole Omniglot download path.

Never touches the network: archives are built in ``tmp_path`` and fetched through ``file://`` URLs.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from mamlkit.data import download as dl
from mamlkit.data import omniglot as og
from mamlkit.data.download import download_file, md5sum
from mamlkit.errors import DataError


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _tree(folder: Path) -> list[str]:
    """Everything under ``folder`` (hidden entries included), as sorted relative paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes]:
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one read chunk
    path = tmp_path / "src" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


# --------------------------------------------------------------------------------------------------
# md5sum and download_file


def test_md5sum_matches_hashlib(source: tuple[Path, bytes]) -> None:
    path, data = source
    assert md5sum(path) == _md5(data)


def test_download_verifies_and_lands(tmp_path: Path, source: tuple[Path, bytes]) -> None:
    src, data = source
    dest = tmp_path / "out" / "sub" / "payload.bin"
    assert download_file(src.as_uri(), dest, _md5(data), progress=False) == dest
    assert dest.read_bytes() == data
    assert _tree(dest.parent) == ["payload.bin"]  # no .part file left


def test_download_without_md5_and_with_progress_bar(tmp_path: Path, source: tuple[Path, bytes]) -> None:
    src, data = source
    dest = tmp_path / "payload.bin"
    download_file(src.as_uri(), dest, None, progress=True)
    assert dest.read_bytes() == data


def test_wrong_md5_leaves_nothing(tmp_path: Path, source: tuple[Path, bytes]) -> None:
    src, _ = source
    out = tmp_path / "out"
    with pytest.raises(DataError, match="checksum mismatch") as e:
        download_file(src.as_uri(), out / "payload.bin", "0" * 32, progress=False)
    assert "by hand" in str(e.value)
    assert _tree(out) == []  # neither the destination nor a .part file


def test_unreachable_url_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = (tmp_path / "nowhere.zip").as_uri()
    with pytest.raises(DataError, match="could not download") as e:
        download_file(missing, out / "x.zip", None, progress=False)
    assert "connection" in str(e.value) and "by hand" in str(e.value)
    assert _tree(out) == []


def test_existing_good_file_is_not_downloaded_again(tmp_path: Path, source: tuple[Path, bytes]) -> None:
    _, data = source
    dest = tmp_path / "payload.bin"
    dest.write_bytes(data)
    gone = (tmp_path / "does-not-exist").as_uri()  # would fail if fetched
    assert download_file(gone, dest, _md5(data), progress=False) == dest


def test_existing_corrupt_file_is_replaced(
    tmp_path: Path, source: tuple[Path, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    src, data = source
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"truncated garbage")
    with caplog.at_level(logging.WARNING, logger="mamlkit"):
        download_file(src.as_uri(), dest, _md5(data), progress=False)
    assert dest.read_bytes() == data
    assert "corrupt" in caplog.text
    assert _tree(tmp_path) == sorted(["payload.bin", "src", "src/payload.bin"])


def test_interrupted_download_removes_part_file(
    tmp_path: Path, source: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, data = source

    class Interrupting:
        """Stands in for urlopen's response: the first chunk arrives, then the user presses Ctrl-C."""

        def __init__(self) -> None:
            self.headers = {"Content-Length": str(len(data))}
            self.calls = 0

        def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return data[:n]

        def __enter__(self) -> Interrupting:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: Interrupting())
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        download_file(src.as_uri(), out / "payload.bin", _md5(data), progress=False)
    assert _tree(out) == []


# --------------------------------------------------------------------------------------------------
# load_omniglot(download=True) end to end, with a tiny fake Omniglot served from file:// URLs


@pytest.fixture
def fake_resources(tmp_path: Path, fake_omniglot, monkeypatch: pytest.MonkeyPatch) -> Path:
    server = tmp_path / "server"
    bg = fake_omniglot("images_background", {"Alpha": 3, "Beta": 2}, zipped=True, root=server)
    ev = fake_omniglot("images_evaluation", {"Gamma": 2}, zipped=True, root=server)
    table = {
        "images_background": {"url": bg.as_uri(), "md5": md5sum(bg)},
        "images_evaluation": {"url": ev.as_uri(), "md5": md5sum(ev)},
    }
    monkeypatch.setattr(og, "RESOURCES", table)
    return server


def test_load_omniglot_download_end_to_end(tmp_path: Path, fake_resources: Path) -> None:
    root = tmp_path / "data" / "omniglot"  # does not exist yet
    ds = og.load_omniglot(root, download=True, image_size=20, progress=False)
    assert sorted(p.name for p in root.iterdir()) == [
        "images_background.zip",
        "images_evaluation.zip",
        "processed",
    ]
    assert ds["train"].n_classes == 5 and ds["train"].alphabet_names == ["Alpha", "Beta"]
    assert ds["test"].n_classes == 2 and ds["test"].alphabet_names == ["Gamma"]
    assert ds["train"].images.shape == (5, 20, 1, 20, 20)
    assert not ds.info["from_cache"] and ds.info["cache_written"]
    # A second call neither downloads (the server may vanish) nor decodes (the cache is used).
    for zipped in fake_resources.iterdir():
        zipped.unlink()
    again = og.load_omniglot(root, download=True, image_size=20, progress=False)
    assert again.info["from_cache"]
    assert (again["train"].images == ds["train"].images).all()


def test_load_omniglot_download_bad_checksum(
    tmp_path: Path, fake_resources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(og.RESOURCES["images_evaluation"], "md5", "f" * 32)
    root = tmp_path / "omniglot"
    with pytest.raises(DataError, match="checksum mismatch"):
        og.load_omniglot(root, download=True, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["images_background.zip"]  # the good one stays
