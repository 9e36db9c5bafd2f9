"""The README's tables on one example at a time, computed from the records (checked by tests/test_notebook_form.py).

    python tools/alone_table.py        # prints both Markdown tables

The first compares the placements across the settings that could explain why one example at a time stays far
above chance here and falls to chance in TaskNorm's Table 1 (``data/records/alone.json``, ``length.json`` and
seed 0 of the seeds records); the second says which BatchNorm layer costs the accuracy when each query example
is normalised by itself (``data/records/alone_layers.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import cell, load  # noqa: E402

ROWS = ("transductive", "one_at_a_time", "one_class_at_a_time", "eval_collected", "reptile_protocol")


def settings() -> dict[str, dict]:
    """Column title -> a packed section with ``results["standard"][placement]`` per seed."""
    alone, length = load("alone"), load("length")
    return {
        "Conv4 here (max-pool), 300 iterations": load("seeds-omniglot")["placements"],
        "3,000 iterations": length["it3000"],
        "64 channels": alone["hidden64"],
        "first-order": alone["firstorder"],
        "strided Conv4": alone["stride"],
        "strided Conv4, first-order": alone["stride-firstorder"],
        "strided Conv4, 20-way": alone["stride-20w"],
        "glyphs, Conv4 here": load("seeds-glyphs")["placements"],
        "glyphs, strided Conv4": alone["glyphs-stride"],
    }


def mean_of(section: dict, placement: str) -> float:
    values = section["results"]["standard"][placement][0]
    return sum(values) / len(values)


def settings_table() -> str:
    columns = settings()
    lines = ["| meta-test placement | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in ROWS:
        cells = [cell(section["results"]["standard"][row][0]) for section in columns.values()]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LAYER_COLUMNS = {"Omniglot, Conv4 here": "omniglot-pool", "Omniglot, strided": "omniglot-stride",
                 "glyphs, Conv4 here": "glyphs-pool", "glyphs, strided": "glyphs-stride"}


def layers_table() -> str:
    record = load("alone_layers")
    first = record[next(iter(LAYER_COLUMNS.values()))]["results"]
    lines = ["| normalised by itself | " + " | ".join(LAYER_COLUMNS) + " |", "|---" * (len(LAYER_COLUMNS) + 1) + "|"]
    for row in first:
        lines.append(f"| {row} | " + " | ".join(cell(record[key]["results"][row]) for key in LAYER_COLUMNS.values())
                     + " |")
    return "\n".join(lines)


def length_table() -> str:
    """Placements against meta-training length (Omniglot subset; 300 is seed 0 of the seeds record)."""
    length = load("length")
    columns = {"100": length["it100"], "300": load("seeds-omniglot")["placements"], "1,000": length["it1000"],
               "3,000": length["it3000"]}
    lines = ["| meta-iterations | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for row in ROWS:
        lines.append(f"| {row} | " + " | ".join(cell(s["results"]["standard"][row][0]) for s in columns.values())
                     + " |")
    return "\n".join(lines)


def seconds(section: dict) -> int:
    """Meta-training plus meta-test time of a one-seed packed section, whole seconds."""
    return round(sum(section["train_seconds"][0].values()) + section["test_seconds"][0])


def layers_seconds() -> int:
    return round(sum(load("alone_layers")[key]["seconds"] for key in LAYER_COLUMNS.values()))


def layer_mean(key: str, row: str) -> float:
    values = load("alone_layers")[key]["results"][row]
    return sum(values) / len(values)


if __name__ == "__main__":
    print(length_table())
    print()
    print(settings_table())
    print()
    print(layers_table())
