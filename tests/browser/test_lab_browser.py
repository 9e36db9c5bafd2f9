"""The classroom lab in a real browser: JupyterLab served locally, driven by headless Chromium.

Starts ``jupyter lab`` on 127.0.0.1 (a free port, a random token) with a temporary root folder
holding a copy of ``notebooks/08_classroom_lab.ipynb``, opens it in ``/usr/bin/chromium`` through
Playwright (no browser download), runs every cell, then uses the placement playground as a student
would: changes the query mode in its dropdown, clicks Run, and checks that the verdict and the chart
show the new run. Screenshots go to pytest's temporary folder and to ``build/browser/``.

Skips where ``/usr/bin/chromium`` or Playwright is missing, except under ``CI=true``, where it fails
(``make browser-deps`` installs Chromium). The JupyterLab process group is always terminated.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "notebooks" / "08_classroom_lab.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CACHE = ROOT / "data" / "cache"
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
RUN_ALL_TIMEOUT_S = 600


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` where the condition fails, but fail under CI (the test must run there)."""
    if condition:
        return
    if under_ci():
        pytest.fail(f"{reason}; under CI=true the browser test must run (make browser-deps)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(base: str, token: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server and its kernels (its own process group), then kill what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def warm_lesson_cache() -> None:
    """The lesson model in the project's cache (found there when ``make test-notebooks`` ran before)."""
    env = {**os.environ, "MAMLKIT_CACHE": str(CACHE), "MAMLKIT_PROGRESS": "0"}
    env.setdefault("MAMLKIT_THREADS", "2")
    out = subprocess.run([sys.executable, "-m", "mamlkit", "train", "--preset", "lesson", "--trainings", "standard",
                          "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.fixture
def jupyter_lab(tmp_path):
    """A running JupyterLab serving a copy of the lab notebook; yields ``(base_url, token, root)``."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(LAB, root / LAB.name)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (JupyterLab 4 otherwise renders only the cells in view), so that all can be checked.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    apputils = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)
    # No "Would you like to get notified about official Jupyter news?" toast over the screenshot.
    quiet = {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}
    (apputils / "notification.jupyterlab-settings").write_text(json.dumps(quiet))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "MAMLKIT_CACHE": str(CACHE),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    env.setdefault("MAMLKIT_THREADS", "2")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyter.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(base, token, proc, log)
        yield base, token, root
    finally:
        stop(proc)


def all_cells_ran(page) -> tuple[int, int, int]:
    """(code cells, cells with an execution count, cells still running or queued)."""
    return page.evaluate(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                .map(p => p.textContent.trim());
            const done = prompts.filter(t => /^\\[\\d+\\]:$/.test(t)).length;
            const busy = prompts.filter(t => t.includes('*')).length;
            return [prompts.length, done, busy];
        }"""
    )


def test_lab_runs_and_the_playground_answers_a_click(jupyter_lab, tmp_path):
    require(CHROMIUM.exists(), f"{CHROMIUM} not found (install it with `make browser-deps`)")
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install -e '.[dev]')")
    warm_lesson_cache()
    base, token, _root = jupyter_lab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    begin = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{LAB.name}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
            select_kernel = page.locator(".jp-Dialog .jp-mod-accept")
            try:                                  # "Select Kernel" appears on a first open; accept the default
                select_kernel.wait_for(timeout=5_000)
                select_kernel.click()
            except PlaywrightTimeout:             # no dialog: the kernel started on its own
                pass
            page.wait_for_selector("text=Idle", state="attached", timeout=90_000)

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
            while True:
                total, done, busy = all_cells_ran(page)
                if total and done == total and busy == 0:
                    break
                assert time.monotonic() < deadline, f"Run All did not finish: {done} of {total} cells ran"
                page.wait_for_timeout(1000)
            notebook_seconds = time.monotonic() - begin
            text = page.locator(".jp-Notebook").inner_text()
            assert "Traceback (most recent call last)" not in text, "a cell failed in the browser"
            assert "all three exercises pass" in text
            assert "Exercise 1: passed" in text                # an exercise check, rendered in the browser
            assert "furthest off" in text                      # predict, then measure: the guesses beside the runs

            playground = page.locator(".mamlkit-playground")
            playground.scroll_into_view_if_needed()
            verdict = playground.locator(".mamlkit-verdict")
            assert "Run #2" in verdict.inner_text(), "the notebook's two runs are shown"
            chart = playground.locator(".mamlkit-chart img")
            chart.wait_for(timeout=30_000)
            chart_before = chart.get_attribute("src")

            playground.locator(".mamlkit-adapt-mode select").select_option("train")
            playground.locator(".mamlkit-query-mode select").select_option("eval")
            playground.locator(".mamlkit-stats select").select_option("collected")
            playground.locator(".mamlkit-tasks input").fill("12")
            playground.locator(".mamlkit-tasks input").press("Enter")
            clicked = time.monotonic()
            playground.locator("button.mamlkit-run").click()
            page.wait_for_function(
                "() => (document.querySelector('.mamlkit-playground .mamlkit-verdict') || {}).textContent"
                "?.includes('Run #3')",
                timeout=120_000,
            )
            run_seconds = time.monotonic() - clicked
            new_verdict = verdict.inner_text()
            assert "train/eval, collected stats" in new_verdict and "over 12 tasks" in new_verdict
            assert "run #1" in new_verdict, "compared with the best earlier run on the same tasks"
            page.wait_for_function(
                "(before) => { const img = document.querySelector('.mamlkit-playground .mamlkit-chart img');"
                " return img && img.getAttribute('src') !== before; }",
                arg=chart_before, timeout=30_000,
            )
            status = playground.locator(".mamlkit-status").inner_text()
            assert "Run #3 took" in status and "ms per task" in status
            playground.scroll_into_view_if_needed()
            shot = tmp_path / "lab_playground.png"
            playground.screenshot(path=str(shot))                      # the playground after the click
            shutil.copy(shot, SCREENSHOTS / "lab_playground.png")

            playground.locator(".mamlkit-tasks input").fill("0")         # an invalid value: a message, no run
            playground.locator(".mamlkit-tasks input").press("Enter")
            playground.locator("button.mamlkit-run").click()
            page.wait_for_function(
                "() => (document.querySelector('.mamlkit-playground .mamlkit-status') || {}).textContent"
                "?.includes('between 1 and')",
                timeout=30_000,
            )
            assert "Run #3" in verdict.inner_text(), "a refused run leaves the results as they were"
            page.screenshot(path=str(tmp_path / "lab_page.png"))        # the page, with the refusal shown
            shutil.copy(tmp_path / "lab_page.png", SCREENSHOTS / "lab_page.png")
        finally:
            browser.close()
    print(f"\nbrowser test: notebook ran in {notebook_seconds:.0f} s (Run All, including kernel start); "
          f"a playground click on 12 tasks answered in {run_seconds:.1f} s; screenshot: {SCREENSHOTS}")
