"""Record train-mode accuracy against query batch size and balance (README, the deep dive `does_it_hold`), or
print its table.

    python tools/query_batches.py data/records/query_batches.json [--data-dir ../shared/data/omniglot]
    python tools/query_batches.py --table        # the README's table, from the record

For the Conv4 meta-trained with the ``full`` preset (300 meta-iterations, seed 0; from the cache, or
meta-trained now) on glyphs and on the Omniglot subset, ``mamlkit.experiments.presentation.query_batches`` adapts each
of the 600 meta-test tasks once in train mode and predicts its query set in batches of 1, 2, 5, 10 and 25, balanced
(round robin over the classes) or one class after another. Every task's accuracy is kept in whole percent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import cell, datasets, header, load, write  # noqa: E402

import mamlkit as mk  # noqa: E402
from mamlkit.experiments import get_meta_trained  # noqa: E402
from mamlkit.experiments.presentation import query_batches  # noqa: E402

SIZES = (1, 2, 5, 10, 25)
DATASETS = {"glyphs": "glyphs", "Omniglot subset": "omniglot"}   # column label -> record section


def key(size: int, balanced: bool) -> str:
    return f"{size}-{'balanced' if balanced else 'one-class'}"


def table() -> str:
    record = load("query_batches")
    head = " | ".join(f"{label}, {order}" for label in DATASETS for order in ("balanced", "one class after another"))
    lines = [f"| query examples per batch | {head} |", "|---" * 5 + "|"]
    for size in SIZES:
        cells = [cell(record[d]["results"][key(size, b)]) for d in DATASETS.values() for b in (True, False)]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--data-dir", help="Omniglot folder (without it, glyphs only)")
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--table", action="store_true", help="print the README's table from the record")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        return 0
    if args.out is None:
        parser.error("name the record to write, or --table")
    record = header("per-task accuracy (whole %) of mamlkit.experiments.presentation.query_batches; "
                    "written by tools/query_batches.py")
    for dataset, extra in datasets(args.data_dir).items():
        exp = mk.preset("full", dataset=dataset, test_tasks=args.tasks, **extra)
        data = exp.load_data()
        trained = get_meta_trained(exp, "standard", data, progress=False)
        begin = time.perf_counter()
        results = query_batches(trained, exp.test_sampler(data), SIZES, exp.test_tasks, exp.test_inner_steps,
                                exp.train.inner_lr, progress=False)
        seconds = time.perf_counter() - begin
        record[dataset] = {
            "experiment": exp.as_dict(),
            "seconds": round(seconds, 1),
            "results": {key(s, b): [round(100 * v) for v in r.values.tolist()] for (s, b), r in results.items()},
        }
        print(f"{dataset}: {seconds:.0f} s; " + ", ".join(f"{key(s, b)} {100 * r.mean:.1f}"
                                                       for (s, b), r in results.items()), flush=True)
    write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
