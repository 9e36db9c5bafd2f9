"""Browser tests run the lab against the project's real model cache (``data/cache``).

The unit tests' autouse fixture ``_isolated_cache`` points ``MAMLKIT_CACHE`` at a temporary folder,
so that they never read or write the project's cache. The browser test does the opposite on purpose:
its kernel must load the lesson model that ``make test-notebooks`` (or ``python -m mamlkit train
--preset lesson``) cached, instead of meta-training one inside the browser session. This conftest
overrides the fixture for ``tests/browser`` only; the test also passes the cache folder to the
JupyterLab subprocess explicitly.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache():
    """No isolation here: the kernel uses the project's cache (see the module docstring)."""
    yield
