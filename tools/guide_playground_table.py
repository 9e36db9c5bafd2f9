"""Measure the instructor guide's expected playground answers (docs/instructor_guide.md, Part 1).

Usage: MAMLKIT_THREADS=1 python tools/guide_playground_table.py

Runs the placement playground of notebook 05 programmatically on the lesson model, 30 held-out tasks
(tasks 0-29, as every playground run), for each placement the guide lists, and prints the Markdown rows
the guide's table is made of (accuracy % with the 95% interval). Rerun it after any change that could
move the numbers, and paste its rows into the guide.
"""

from __future__ import annotations

import os

import torch

from mamlkit.lessons.widgets import PlacementPlayground

ROWS = [  # (adapt mode, query mode, running statistics, query presented, how the guide names it)
    ("train", "train", "untouched", "batch", "train / train, whole batch (transductive)"),
    ("train", "train", "collected", "batch", "train / train, *collected* statistics"),
    ("eval", "eval", "untouched", "batch", "eval / eval, untouched"),
    ("eval", "eval", "collected", "batch", "eval / eval, collected"),
    ("train", "eval", "untouched", "batch", "train / eval, untouched"),
    ("train", "eval", "collected", "batch", "train / eval, collected"),
    ("eval", "train", "untouched", "batch", "eval / train"),
    ("train", "train", "untouched", "one_at_a_time", "train / train, one at a time"),
    ("train", "train", "untouched", "one_class_at_a_time", "train / train, one class at a time"),
    ("train", "train", "untouched", "one_at_a_time_with_support",
     "train / train, one at a time with the support set (Reptile's protocol)"),
]


def main() -> None:
    torch.set_num_threads(int(os.environ.get("MAMLKIT_THREADS", "1")))
    playground = PlacementPlayground(n_tasks=30, progress=False)
    for adapt, query, stats, presentation, name in ROWS:
        run = playground.run(adapt_mode=adapt, query_mode=query, stats=stats, presentation=presentation)
        if run is None:
            raise SystemExit(f"{name}: {playground.error}")
        print(f"| {name} | {run.result.formatted()} |")


if __name__ == "__main__":
    main()
