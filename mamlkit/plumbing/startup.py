"""A Ctrl-C while ``python -m mamlkit`` (or one of its worker processes) is still importing torch ends it with one
line, ``interrupted`` (exit status 130), instead of a traceback through the imports.

``mamlkit/__init__.py`` imports this module before its slow imports (importing it calls ``quiet_interrupts()``) and
calls ``usual_interrupts()`` after them; in any other program (a notebook, a script that imports mamlkit) nothing
changes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

_previous: Any = None


def _starting_program() -> str | None:
    """``"cli"`` while ``python -m mamlkit`` imports its package, ``"worker"`` in a worker process, else None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if sys.argv[:1] == ["-m"]:
        return "cli"
    import multiprocessing

    # A spawned worker is named before it imports anything of ours (SpawnProcess-1...); the first process is not.
    return "worker" if multiprocessing.current_process().name != "MainProcess" else None


def _stop(signum: int, frame: object) -> None:
    """Leave at once: nothing is written while the imports run, and an exception could be caught by an import."""
    if _starting_program() == "cli":
        print("interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def quiet_interrupts() -> None:
    """While the command line or a worker starts: Ctrl-C ends it at once with status 130 and one line (none in a
    worker)."""
    global _previous
    if _starting_program() is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _previous = signal.signal(signal.SIGINT, _stop)


def usual_interrupts() -> None:
    """Put back Python's Ctrl-C handling (a ``KeyboardInterrupt``) once the imports are done."""
    global _previous
    if _previous is not None:
        signal.signal(signal.SIGINT, _previous)
        _previous = None


quiet_interrupts()
