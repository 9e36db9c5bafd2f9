"""The README's tables of the inner-loop remedies, computed from ``data/records/remedies.json``.

    python tools/remedies_table.py          # prints the Markdown tables the README holds

Each cell is the mean over the meta-training seeds of each seed's mean accuracy over its 600 tasks, with the
lowest and highest seed in brackets. ``tests/test_notebook_form.py`` checks that the README holds exactly
these tables, so a number in them cannot drift from the record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "data" / "records" / "remedies.json"

#: Record sections (``<dataset>-<variant>``) by column, with the meta-test steps they used.
COLUMNS = {"MAML": "bn", "MAML++ per-step BN": "perstep", "learned rates": "lslr", "ANIL": "anil"}
ROWS = ["transductive", "one_at_a_time", "eval_collected", "train_then_eval_collected"]
DATASETS = {"glyphs": "Glyphs", "omniglot": "Real Omniglot subset"}


def seed_means(record: dict, dataset: str, variant: str, placement: str, steps: int = 10) -> list[float]:
    """Each seed's mean accuracy (%) over its tasks, for one section of the record."""
    section = record[f"{dataset}-{variant}-{steps}"]
    return [sum(v) / len(v) for v in section["results"]["standard"][placement]]


def cell(values: list[float]) -> str:
    return f"{sum(values) / len(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def tables(record: dict) -> str:
    """One Markdown table per dataset: placements (rows) by remedy (columns), 10 meta-test steps, then the
    eval-mode row with meta-training's 5 steps where it was measured."""
    out = []
    for dataset, title in DATASETS.items():
        out += [f"**{title}** (10 inner steps at meta-test unless the row says 5):", "",
                "| placement | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for placement in ROWS:
            out.append(f"| {placement} | " + " | ".join(cell(seed_means(record, dataset, v, placement))
                                                     for v in COLUMNS.values()) + " |")
        five = []
        for variant in COLUMNS.values():
            has = f"{dataset}-{variant}-5" in record
            five.append(cell(seed_means(record, dataset, variant, "eval_collected", 5)) if has else "")
        out += ["| eval_collected, 5 steps | " + " | ".join(five) + " |", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    print(tables(json.loads(RECORD.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
