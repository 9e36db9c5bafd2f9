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
    """One Markdown table per dataset: placements (rows) by remedy (columns), 10 meta-test steps; then, where
    they were measured, eval mode with meta-training's 5 steps and both modes at a tenth of the inner rate."""
    out = []
    for dataset, title in DATASETS.items():
        note = "meta-test: 10 inner steps at meta-training's rates, unless the row says otherwise"
        out += [f"**{title}** ({note}):", "",
                "| placement | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for placement in ROWS:
            out.append(f"| {placement} | " + " | ".join(cell(seed_means(record, dataset, v, placement))
                                                     for v in COLUMNS.values()) + " |")
        extra = [("eval_collected, 5 steps", "", "eval_collected", 5)]
        extra += [(f"{p}, rate x 0.1", "-x0.1", p, 10) for p in ("transductive", "eval_collected")]
        for label, suffix, placement, steps in extra:
            shown = []
            for variant in COLUMNS.values():
                has = f"{dataset}-{variant}{suffix}-{steps}" in record
                shown.append(cell(seed_means(record, dataset, variant + suffix, placement, steps)) if has else "")
            out.append(f"| {label} | " + " | ".join(shown) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    print(tables(json.loads(RECORD.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
