"""The README's Dropout table, computed from data/records/dropout.json (checked by tests/test_notebook_form.py).

    python tools/dropout_table.py

A Conv4 with Dropout (p = 0.3) meta-trained in train mode, meta-tested on 600 tasks as ``model.train()`` leaves
it (the ``transductive`` placement, Dropout on), as ``model.eval()`` does (``eval_collected``), and with
BatchNorm in train mode and Dropout off (``transductive`` with ``--dropout-off``), on glyphs and the Omniglot
subset, with the paired difference of the last two on the same tasks.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from records import cell, load  # noqa: E402

from mamlkit.evaluate import EvalResult, paired_difference  # noqa: E402

ROWS = {
    "`model.train()`: BatchNorm train, Dropout on (transductive)": ("on", "transductive"),
    "`model.eval()`: BatchNorm eval, Dropout off (eval_collected)": ("on", "eval_collected"),
    "BatchNorm train, Dropout off (transductive, `--dropout-off`)": ("off", "transductive"),
}
DATASETS = {"glyphs": "glyphs", "Omniglot subset": "omniglot"}


def values(dataset: str, run: str, placement: str) -> list[int]:
    return load("dropout")[f"{dataset}-{run}"]["results"]["standard"][placement][0]


def difference(dataset: str) -> tuple[float, float]:
    """Dropout off minus on, both in train mode for BatchNorm: mean and 95% half-width, in points."""
    off, on = (EvalResult(run, np.asarray(values(dataset, run, "transductive")) / 100) for run in ("off", "on"))
    diff = paired_difference(off, on)
    return 100 * diff.mean, 100 * diff.ci95


def table() -> str:
    lines = ["| Conv4 with Dropout p = 0.3, 600 tasks | " + " | ".join(DATASETS) + " |", "|---|---|---|"]
    for label, (run, placement) in ROWS.items():
        lines.append(f"| {label} | " + " | ".join(cell(values(d, run, placement)) for d in DATASETS.values()) + " |")
    diffs = [difference(d) for d in DATASETS.values()]
    lines.append("| Dropout off minus on, paired on the same tasks | "
                 + " | ".join(f"{m:+.1f} ± {h:.1f} points" for m, h in diffs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
