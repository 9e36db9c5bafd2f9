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
