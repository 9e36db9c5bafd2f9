"""Progress bars that behave in a terminal, in JupyterLab and under nbval (tqdm.auto)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], desc: str = "", enabled: bool = True, total: int | None = None) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar (notebook widget in Jupyter, text elsewhere).

    Set ``MAMLKIT_PROGRESS=0`` to turn every bar off (e.g. in logs).
    """
    if not enabled or os.environ.get("MAMLKIT_PROGRESS", "1") == "0":
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, mininterval=0.5)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_counter(total: int | None, desc: str = "", enabled: bool = True, unit: str = "it"):
    """A bar moved by hand (``.update(n)``, ``.close()``); ``unit="B"`` counts bytes. A silent stand-in when
    progress is off (``enabled=False`` or ``MAMLKIT_PROGRESS=0``)."""
    if not enabled or os.environ.get("MAMLKIT_PROGRESS", "1") == "0":
        return _Silent()
    from tqdm.auto import tqdm

    scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
    return tqdm(total=total, desc=desc, unit=unit, leave=False, mininterval=0.5, **scale)
