"""Record where a lone query example loses its accuracy, layer by layer (README, the deep dive `does_it_hold`).

    python tools/alone_layers.py data/records/alone_layers.json [--data-dir ../shared/data/omniglot] [--tasks 600]

For the default Conv4 (max-pool) and Finn et al.'s strided Conv4, each meta-trained with the ``full`` preset
(300 meta-iterations, seed 0; from the cache, or meta-trained now), on glyphs and on the Omniglot subset, it
runs ``mamlkit.lessons.why_eval.alone_by_layer`` on the same meta-test tasks and keeps every task's accuracy in whole
percent, with the experiment and the command. ``tests/test_notebook_form.py`` checks the README's table
against the file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import datasets, header, write  # noqa: E402

import mamlkit as mk  # noqa: E402
from mamlkit.experiments import get_meta_trained  # noqa: E402
from mamlkit.lessons.why_eval import alone_by_layer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-dir", help="Omniglot folder (without it, glyphs only)")
    parser.add_argument("--tasks", type=int, default=600)
    args = parser.parse_args(argv)
    record = header("per-task accuracy (whole %) of mamlkit.lessons.why_eval.alone_by_layer; written by "
                    "tools/alone_layers.py")
    for dataset, extra in datasets(args.data_dir).items():
        for downsample in ("pool", "stride"):
            exp = mk.preset("full", dataset=dataset, test_tasks=args.tasks, model={"downsample": downsample}, **extra)
            data = exp.load_data()
            trained = get_meta_trained(exp, "standard", data, progress=False)
            begin = time.perf_counter()
            rows = alone_by_layer(trained, exp.test_sampler(data), exp.test_tasks, exp.test_inner_steps,
                                  exp.train.inner_lr, downsample, progress=False)
            seconds = time.perf_counter() - begin
            record[f"{dataset}-{downsample}"] = {
                "experiment": exp.as_dict(),
                "seconds": round(seconds, 1),
                "results": {name: [round(100 * v) for v in r.values.tolist()] for name, r in rows.items()},
            }
            print(f"{dataset} {downsample}: {seconds:.0f} s; " + ", ".join(
                f"{name} {100 * r.mean:.1f}" for name, r in rows.items()), flush=True)
    write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
