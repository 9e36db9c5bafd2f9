"""Re-execute notebooks from a clean kernel and store their outputs in place (``make notebooks``).

Usage: python tools/execute_notebooks.py notebooks/*.ipynb

Each notebook runs in its own folder with the environment's python3 kernel, with progress bars off
(``MAMLKIT_PROGRESS=0``) so that stored outputs stay clean; its wall time is printed. A notebook
that raises is not written, and the command exits non-zero.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def execute(path: Path, timeout: int = 1800) -> float:
    os.environ.setdefault("MAMLKIT_PROGRESS", "0")  # stored outputs carry no progress-bar residue
    nb = nbformat.read(path, as_version=4)
    begin = time.perf_counter()
    resources = {"metadata": {"path": str(path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources)
    client.execute()
    seconds = time.perf_counter() - begin
    for cell in nb.cells:  # execution counts from a clean run, no stale metadata
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    return seconds


def main(paths: list[str]) -> int:
    failed = []
    total = 0.0
    for name in paths:
        path = Path(name)
        try:
            seconds = execute(path)
        except CellExecutionError as exc:
            print(f"FAILED {path}:\n{exc}")
            failed.append(path)
            continue
        total += seconds
        print(f"{seconds:6.1f} s  {path}")
    print(f"{total:6.1f} s  total")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
