"""The classroom lab in a real browser: JupyterLab served locally, driven by headless Chromium.

Starts ``jupyter lab`` on 127.0.0.1 (a free port, a random token) with a temporary root folder
holding a copy of ``notebooks/05_classroom_lab.ipynb`` and the student lab's settings (``tools/lab_settings``,
as ``make lab``), opens it in ``/usr/bin/chromium`` through Playwright (no browser download) in a 1366x768
window, runs every cell, then does what a student does: uses each widget (a Run of the placement playground
on 30 tasks, "Clear runs", the dataset switch, the BatchNorm explorer's layer, batches and slider), reads the
interval explorer's summary, re-runs the cells that read the widgets one at a time, and checks that nothing raised.
Each interaction's response time is recorded (``build/browser/timings.json``) and must stay under 7 s. A
screenshot at 1366x768 must hold the playground's controls, its Run button and its chart in one view; no path
of this machine may appear, nor JupyterLab's news request or nbgrader's authoring interface. Screenshots go to
pytest's temporary folder and to ``build/browser/``.

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
LAB = ROOT / "notebooks" / "05_classroom_lab.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CACHE = ROOT / "data" / "cache"
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
RUN_ALL_TIMEOUT_S = 600
LAB_SETTINGS = ROOT / "tools" / "lab_settings"
VIEWPORT = {"width": 1366, "height": 768}
RESPONSE_LIMIT_S = 7.0          # each interaction, at 30 tasks on 2 cores (issue #39)


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
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               f"--LabApp.app_settings_dir={LAB_SETTINGS}"]          # as `make lab`: no news request, no nbgrader UI
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


def cell_with(page, text: str):
    """The code cell whose source holds ``text`` (exactly one)."""
    cells = page.locator(".jp-Notebook .jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=text))
    assert cells.count() == 1, f"{cells.count()} code cells hold {text!r}"
    return cells.first


def prompt(cell) -> str:
    return cell.locator(".jp-InputArea-prompt").first.inner_text().strip()


class Timer:
    """Response time of each interaction: from the action to what it must show."""

    def __init__(self, page):
        self.page, self.seconds = page, {}

    def __call__(self, name: str, act, shown: str, arg=None, timeout: float = 60_000) -> None:
        begin = time.monotonic()
        act()
        try:
            self.page.wait_for_function(shown, arg=arg, timeout=timeout)
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / "lab_failure.png"))      # what the student would see
            raise
        self.seconds[name] = round(time.monotonic() - begin, 2)


def rerun(page, timer: Timer, text: str) -> str:
    """Run the cell holding ``text`` again (select it, Ctrl+Enter) as a student does; returns its output text."""
    cell = cell_with(page, text)
    cell.scroll_into_view_if_needed()
    before = prompt(cell)
    cell.locator(".jp-InputArea-prompt").first.click()
    page.keyboard.press("Escape")                                     # command mode: the cell, not its editor

    def act():
        page.keyboard.press("Control+Enter")

    handle = cell.element_handle()
    timer(f"re-run the cell '{text}'", act,
          "([cell, before]) => { const t = cell.querySelector('.jp-InputArea-prompt').textContent.trim();"
          " return /^\\[\\d+\\]:$/.test(t) && t !== before; }", arg=[handle, before])
    out = cell.locator(".jp-Cell-outputArea").first.inner_text()
    assert "Traceback" not in out and "Error" not in out, f"re-running the cell '{text}' raised:\n{out[-2000:]}"
    return out


def test_lab_runs_and_a_student_can_use_every_widget_and_rerun_every_cell(jupyter_lab, tmp_path):
    require(CHROMIUM.exists(), f"{CHROMIUM} not found (install it with `make browser-deps`)")
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install -e '.[dev]')")
    warm_lesson_cache()
    base, token, root = jupyter_lab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    begin = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/lab/tree/{LAB.name}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
            select_kernel = page.locator(".jp-Dialog .jp-mod-accept")
            try:                                  # "Select Kernel" appears on a first open; accept the default
                select_kernel.wait_for(timeout=5_000)
                select_kernel.click()
            except PlaywrightTimeout:             # no dialog: the kernel started on its own
                pass
            page.wait_for_selector("text=Idle", state="attached", timeout=90_000)
            config = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent)")
            assert "@jupyter/nbgrader" in config["disabledExtensions"], "nbgrader's authoring UI is on"

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
            assert "Exercise 05.1: passed" in text                # an exercise check, rendered in the browser
            assert "furthest off" in text                      # predict, then measure: the guesses beside the runs
            for path in {str(ROOT), str(root), str(tmp_path), str(Path.home())}:
                assert path not in text, f"a path of this machine is shown: {path}"

            timer = Timer(page)
            playground = page.locator(".mamlkit-playground")
            playground.scroll_into_view_if_needed()
            verdict = playground.locator(".mamlkit-verdict")
            assert "Run #2" in verdict.inner_text(), "the notebook's two runs are shown"
            chart = playground.locator(".mamlkit-chart img")
            chart.wait_for(timeout=30_000)
            assert not playground.locator(".mamlkit-omniglot-dir").is_visible(), "glyphs: no folder box"

            playground.locator(".mamlkit-adapt-mode select").select_option("train")
            playground.locator(".mamlkit-query-mode select").select_option("eval")
            playground.locator(".mamlkit-stats select").select_option("collected")
            playground.locator(".mamlkit-tasks input").fill("30")
            playground.locator(".mamlkit-tasks input").press("Enter")
            timer("playground: Run on 30 tasks", lambda: playground.locator("button.mamlkit-run").click(),
                  "() => (document.querySelector('.mamlkit-playground .mamlkit-verdict') || {}).textContent"
                  "?.includes('Run #3')", timeout=120_000)
            new_verdict = verdict.inner_text()
            assert "train/eval, collected stats" in new_verdict and "over 30 tasks" in new_verdict
            assert "run #1" in new_verdict, "compared with the best earlier run on the same tasks"
            page.wait_for_function(
                "() => { const img = document.querySelector('.mamlkit-playground .mamlkit-chart img');"
                " return img && img.complete && img.naturalHeight > 0; }", timeout=30_000)
            status = playground.locator(".mamlkit-status").inner_text()
            assert "Run #3 took" in status and "ms per task" in status

            # One screen: the playground's top at the top of the notebook, its controls, Run and chart all in view.
            playground.evaluate("el => el.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(300)
            panel = page.locator(".jp-NotebookPanel-notebook").bounding_box()
            top = playground.locator(".mamlkit-adapt-mode").bounding_box()
            run_box = playground.locator("button.mamlkit-run").bounding_box()
            chart_box = chart.bounding_box()
            assert top["y"] >= panel["y"] - 1 and run_box["y"] + run_box["height"] <= panel["y"] + panel["height"]
            assert chart_box["y"] + chart_box["height"] <= min(panel["y"] + panel["height"], VIEWPORT["height"]), (
                f"the chart ends at {chart_box['y'] + chart_box['height']:.0f} px, below the view "
                f"({panel['y'] + panel['height']:.0f} px) at 1366x768")
            assert chart_box["x"] + chart_box["width"] <= VIEWPORT["width"]
            shot = tmp_path / "lab_playground.png"
            page.screenshot(path=str(shot))                         # the view a student has after the Run
            shutil.copy(shot, SCREENSHOTS / "lab_playground.png")

            playground.locator(".mamlkit-tasks input").fill("0")     # an invalid value: a message, no run
            playground.locator(".mamlkit-tasks input").press("Enter")
            timer("playground: Run refused (0 tasks)", lambda: playground.locator("button.mamlkit-run").click(),
                  "() => (document.querySelector('.mamlkit-playground .mamlkit-status') || {}).textContent"
                  "?.includes('between 1 and')")
            assert "Run #3" in verdict.inner_text(), "a refused run leaves the results as they were"
            playground.locator(".mamlkit-tasks input").fill("30")
            playground.locator(".mamlkit-tasks input").press("Enter")

            dataset = playground.locator(".mamlkit-dataset select")
            folder = ".mamlkit-playground .mamlkit-omniglot-dir"
            timer("playground: dataset switched to omniglot", lambda: dataset.select_option("omniglot"),
                  f"() => {{ const el = document.querySelector('{folder}'); return el && el.offsetParent !== null; }}")
            value = playground.locator(".mamlkit-omniglot-dir input").input_value()
            assert not value.startswith("/") and str(ROOT) not in value, f"a machine path in the folder box: {value}"
            timer("playground: dataset switched back to glyphs", lambda: dataset.select_option("glyphs"),
                  f"() => {{ const el = document.querySelector('{folder}'); return el && el.offsetParent === null; }}")

            timer("playground: Clear runs", lambda: playground.locator("button.mamlkit-clear").click(),
                  "() => (document.querySelector('.mamlkit-playground .mamlkit-status') || {}).textContent"
                  "?.includes('Runs cleared')")
            assert verdict.inner_text().strip() == ""

            bn = page.locator(".mamlkit-bn-explorer")
            bn.scroll_into_view_if_needed()
            bn_summary = ".mamlkit-bn-explorer .mamlkit-summary"
            layers = bn.locator(".mamlkit-bn-layer select option").all_inner_texts()
            other = next(layer for layer in layers if layer != bn.locator(".mamlkit-bn-layer select").input_value())
            timer("BatchNorm explorer: layer changed", lambda: bn.locator(".mamlkit-bn-layer select").select_option(
                other), f"(layer) => document.querySelector('{bn_summary}').textContent.startsWith(layer + ',')",
                arg=other)
            source = bn.locator(".mamlkit-bn-source select")
            timer("BatchNorm explorer: query sets", lambda: source.select_option(label="query sets"),
                  f"() => document.querySelector('{bn_summary}').textContent.includes('(query sets)')")
            readout = bn.locator(".mamlkit-bn-tasks .widget-readout")

            def two_tasks():
                readout.fill("2")
                readout.press("Enter")

            timer("BatchNorm explorer: tasks slider to 2", two_tasks,
                  f"() => document.querySelector('{bn_summary}').textContent.includes(', 2 tasks')")

            ci = page.locator(".mamlkit-ci-explorer")
            ci.scroll_into_view_if_needed()
            summary = ci.locator(".mamlkit-summary").inner_text()
            assert "drawn with replacement from the 30 tasks measured" in summary and "more than" in summary

            # Every cell that reads a widget, run again after the clicks above (runs cleared, sliders moved).
            for cell_text in ("run.summary()", "predictions.compare(", "explorer.measure(",
                              "explorers.ConfidenceExplorer(", "ci.measure("):
                rerun(page, timer, cell_text)
            assert "Runs cleared" in playground.locator(".mamlkit-status").inner_text()

            news = page.get_by_text("official Jupyter news")
            assert news.count() == 0, "JupyterLab's news request is shown (tools/lab_settings/overrides.json)"
            page.screenshot(path=str(tmp_path / "lab_page.png"))
            shutil.copy(tmp_path / "lab_page.png", SCREENSHOTS / "lab_page.png")
        finally:
            browser.close()
    (SCREENSHOTS / "timings.json").write_text(json.dumps(timer.seconds, indent=1))
    slow = {name: s for name, s in timer.seconds.items() if s >= RESPONSE_LIMIT_S}
    print(f"\nbrowser test: notebook ran in {notebook_seconds:.0f} s (Run All, including kernel start); "
          f"screenshots: {SCREENSHOTS}")
    for name, seconds in timer.seconds.items():
        print(f"  {seconds:5.2f} s  {name}")
    assert not slow, f"interactions slower than {RESPONSE_LIMIT_S:.0f} s: {slow}"
