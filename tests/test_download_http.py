"""Real Omniglot with one flag: the whole download path against a local HTTP server on 127.0.0.1.

The server serves the real subset archives of ``../shared/data/omniglot`` three ways: whole (``/good/``), cut
off half-way with the full ``Content-Length`` announced (``/truncated/``), and with another archive's bytes
under the name (``/wrong/``, a checksum mismatch). Nothing here reaches the internet.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mamlkit.cli import main
from mamlkit.data import omniglot as og
from mamlkit.data.download import md5sum
from mamlkit.errors import DataError

SMALL1 = "images_background_small1"


@pytest.fixture
def server(omniglot_dir: Path):
    """A 127.0.0.1 server of the subset archives; yields (base URL, list of requested paths)."""
    archives = {p.name: p.read_bytes() for p in omniglot_dir.glob("*.zip")}
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            requested.append(self.path)
            how, _, name = self.path.strip("/").partition("/")
            if name not in archives:
                self.send_error(404)
                return
            body = archives[name]
            if how == "wrong":
                body = archives["images_background_small2.zip" if name != "images_background_small2.zip"
                                else "images_background_small1.zip"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if how == "truncated" else body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested
    finally:
        httpd.shutdown()
        httpd.server_close()


def serve_from(monkeypatch: pytest.MonkeyPatch, base: str, how: str, omniglot_dir: Path) -> None:
    """Point every known archive at the local server (``how``: good, truncated or wrong), with its real md5."""
    table = {name: {"url": f"{base}/{how}/{name}.zip", "md5": md5sum(omniglot_dir / f"{name}.zip")}
             for name in (SMALL1, "images_background_small2", "all_runs")}
    assert table[SMALL1]["md5"] == og.RESOURCES[SMALL1]["md5"]          # the official checksum
    monkeypatch.setattr(og, "RESOURCES", table)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_good_archive_is_fetched_checked_and_loaded(tmp_path, server, omniglot_dir, monkeypatch):
    base, requested = server
    serve_from(monkeypatch, base, "good", omniglot_dir)
    root = tmp_path / "omniglot"
    data = og.load_omniglot(root, sets=[SMALL1], download=True, cache_dir=tmp_path / "processed", progress=False)
    assert files(root) == [f"{SMALL1}.zip"] and md5sum(root / f"{SMALL1}.zip") == og.RESOURCES[SMALL1]["md5"]
    assert data["train"].n_classes > 0 and data["test"].n_classes > 0
    again = og.load_omniglot(root, sets=[SMALL1], download=True, cache_dir=tmp_path / "processed", progress=False)
    assert len(requested) == 1                                           # already there, md5 right: not fetched
    assert (again["train"].images == data["train"].images).all()


@pytest.mark.parametrize("how, message", [
    ("truncated", "connection closed before the whole file arrived"),
    ("wrong", "checksum mismatch"),
])
def test_a_bad_archive_leaves_nothing_and_says_what_to_do(tmp_path, server, omniglot_dir, monkeypatch, how, message):
    base, _ = server
    serve_from(monkeypatch, base, how, omniglot_dir)
    root = tmp_path / "omniglot"
    with pytest.raises(DataError, match=message) as error:
        og.load_omniglot(root, sets=[SMALL1], download=True, progress=False)
    assert files(root) == []                                             # no .part file, no half archive
    assert "again" in str(error.value) and "by hand" in str(error.value)


def test_the_command_line_downloads_and_a_failed_download_restarts_cleanly(
    tmp_path, server, omniglot_dir, monkeypatch, capsys
):
    base, _ = server
    root = tmp_path / "omniglot"
    serve_from(monkeypatch, base, "truncated", omniglot_dir)
    assert main(["download", "--data-dir", str(root), "--sets", SMALL1, "all_runs", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "Traceback" not in err and files(root) == []

    serve_from(monkeypatch, base, "good", omniglot_dir)                  # the network is back: the same command
    assert main(["download", "--data-dir", str(root), "--sets", SMALL1, "all_runs", "--no-progress"]) == 0
    assert files(root) == ["all_runs.zip", f"{SMALL1}.zip"]
    assert f"--data-dir {root}" in capsys.readouterr().out
    assert og.load_one_shot_runs(root / "all_runs.zip")                  # the runs read from what arrived


def test_download_is_for_omniglot_only(capsys):
    assert main(["placements", "--dataset", "glyphs", "--download", "--quick", "--no-progress"]) == 2
    assert "add --dataset omniglot" in capsys.readouterr().err


def test_without_a_folder_the_message_names_both_ways(capsys):
    assert main(["placements", "--dataset", "omniglot", "--quick", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--data-dir PATH" in err and "--download" in err
