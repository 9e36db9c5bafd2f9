"""Re-execute notebooks from a clean kernel and store their outputs in place (``make notebooks``).

Usage:
    python tools/execute_notebooks.py notebooks/*.ipynb notebooks/deep_dives/*.ipynb
    python tools/execute_notebooks.py --train-seed 1 notebooks/02_maml_placements.ipynb

Each notebook runs in its own folder with the environment's python3 kernel, with progress bars off
(``MAMLKIT_PROGRESS=0``) so that stored outputs stay clean; its wall time is printed and stored in the
notebook's metadata (``mamlkit.run_seconds``), where ``tools/notebook_times.py`` reads it. Run it on an idle
machine: a loaded one stores inflated times. A notebook
that raises is not written, and the command exits non-zero.

``--train-seed N`` is a check, not a way to store outputs: every preset's meta-training seed is set to
N before the notebook's first cell (models for that seed are meta-trained and cached on first use;
meta-test tasks do not depend on it), the notebook runs with all its asserts, and nothing is written.
It answers "does every comparison this notebook asserts on its cached model also hold for a model
meta-trained with another seed?".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

SEED_PATCH = """import mamlkit.experiments as _experiments
_experiments.PRESETS = {{n: e.with_changes(train={{"seed": {seed}}}) for n, e in _experiments.PRESETS.items()}}
"""


def execute(path: Path, timeout: int = 1800, train_seed: int | None = None) -> float:
    os.environ.setdefault("MAMLKIT_PROGRESS", "0")  # stored outputs carry no progress-bar residue
    nb = nbformat.read(path, as_version=4)
    if train_seed is not None:
        nb.cells.insert(0, nbformat.v4.new_code_cell(SEED_PATCH.format(seed=train_seed)))
    # the Colab set-up cell of a published copy (tools/reach.py) is never run here: stored as written
    setup = [(i, cell) for i, cell in enumerate(nb.cells) if "colab-setup" in cell.get("metadata", {}).get("tags", [])]
    for i, _ in reversed(setup):
        del nb.cells[i]
    begin = time.perf_counter()
    resources = {"metadata": {"path": str(path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources)
    client.execute()
    seconds = time.perf_counter() - begin
    for i, cell in setup:
        nb.cells.insert(i, cell)
    if train_seed is not None:
        return seconds  # a check: the stored notebook is left as it is
    for cell in nb.cells:  # execution counts from a clean run, no stale metadata
        cell.get("metadata", {}).pop("execution", None)
    # the run time the stated "Time needed" counts (tools/notebook_times.py), rounded to a second
    nb.metadata.setdefault("mamlkit", {})["run_seconds"] = round(seconds)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Re-execute notebooks and store their outputs.")
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="check only: run with every preset's meta-training seed set to this; write nothing")
    args = parser.parse_args(argv)
    failed = []
    total = 0.0
    for name in args.notebooks:
        path = Path(name)
        try:
            seconds = execute(path, train_seed=args.train_seed)
        except CellExecutionError as exc:
            print(f"FAILED {path}:\n{exc}")
            failed.append(path)
            continue
        total += seconds
        seed = "" if args.train_seed is None else f"  (meta-training seed {args.train_seed}, not written)"
        print(f"{seconds:6.1f} s  {path}{seed}")
    print(f"{total:6.1f} s  total")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
