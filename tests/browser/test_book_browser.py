"""The rendered book in a real browser: every page loads, no internal link is broken, a figure and a table render.

Builds the site with ``tools/build_book.py`` into a temporary folder (from the stored outputs; nothing is
executed), serves it on 127.0.0.1, and opens every HTML page in ``/usr/bin/chromium`` through Playwright.
Every internal link of every page must lead to a file of the site (and an anchor, where it names one, to an
element of that page). A screenshot of a rendered lesson page goes to ``build/browser/book-lesson.png``.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from test_lab_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, SCREENSHOTS, require

# Sphinx 9 warns about its own coming API changes (myst-nb, napoleon): not this project's to fix.
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    begin = time.perf_counter()
    html = build_book.build(tmp_path_factory.mktemp("book"))
    seconds = time.perf_counter() - begin
    assert seconds < 60, f"the book took {seconds:.0f} s to build; the budget is one minute"
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield html, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_every_page_loads_and_no_internal_link_is_broken(site):
    require(CHROMIUM.exists(), f"{CHROMIUM} not found (install it with `make browser-deps`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install -e '.[dev]')")
    html, base = site
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html"))
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert {"index.html", "api.html", "instructor_guide.html", "recipes.html"} <= set(pages)
    assert all(f"{name}.html" in pages for name in notebooks)
    for name in pages:                                                   # offline: nothing loaded from elsewhere
        assert not re.search(r'<script[^>]+src="https?:', (html / name).read_text()), name
    broken: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            for name in pages:
                response = page.goto(f"{base}/{name}")
                assert response is not None and response.ok, name
                ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
                for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                    url = urlparse(href)
                    if url.scheme or href.startswith("//") or href.startswith("mailto:"):
                        continue                                          # external: not checked offline
                    target, anchor = urldefrag(href)
                    path = (html / Path(name).parent / unquote(target)).resolve() if target else html / name
                    if path.is_dir():
                        path = path / "index.html"
                    if not path.is_file():
                        broken.append(f"{name}: {href} (no such file)")
                    elif anchor and not target and anchor not in ids:
                        broken.append(f"{name}: {href} (no such anchor)")
            assert not broken, "\n".join(broken[:20])

            page.goto(f"{base}/02_maml_placements.html")              # a lesson: a figure and a table
            figure = page.locator("img").first
            figure.wait_for()
            assert page.evaluate("img => img.naturalWidth > 100 && img.complete", figure.element_handle())
            table = page.locator("table").first
            table.wait_for()
            assert table.locator("tr").count() >= 5 and table.is_visible()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "book-lesson.png"), full_page=False)
            page.set_viewport_size({"width": 1366, "height": 768})         # a student's laptop: no sideways scroll
            for name in ("index.html", "05_classroom_lab.html", "02_maml_placements.html"):
                page.goto(f"{base}/{name}")
                wide = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                assert wide[0] <= wide[1], f"{name} scrolls sideways at 1366x768: {wide[0]} px wide in {wide[1]} px"
                assert "BEGIN SOLUTION" not in page.content()
                assert name == "index.html" or "NotImplementedError" in page.content()       # the stubs, not solutions
            page.goto(f"{base}/index.html")
            assert page.locator("table").first.is_visible()                  # the measured table on the landing page
            page.screenshot(path=str(SCREENSHOTS / "book-index.png"), full_page=False)
        finally:
            browser.close()
