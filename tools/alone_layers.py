"""Record where a lone query example loses its accuracy, layer by layer (README, notebook 15).

    python tools/alone_layers.py data/records/alone_layers.json [--data-dir ../shared/data/omniglot] [--tasks 600]

For the default Conv4 (max-pool) and Finn et al.'s strided Conv4, each meta-trained with the ``full`` preset
(300 meta-iterations, seed 0; from the cache, or meta-trained now), on glyphs and on the Omniglot subset, it
runs ``mamlkit.why_eval.alone_by_layer`` on the same meta-test tasks and keeps every task's accuracy in whole
percent, with the experiment and the command. ``tests/test_notebook_form.py`` checks the README's table
against the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import mamlkit as mk  # noqa: E402
from mamlkit.experiments import get_meta_trained  # noqa: E402
from mamlkit.why_eval import alone_by_layer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-dir", help="Omniglot folder (without it, glyphs only)")
    parser.add_argument("--tasks", type=int, default=600)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("MAMLKIT_THREADS", "1")))   # one thread, as the CLI records run
    datasets = {"glyphs": {}}
    if args.data_dir:
        datasets["omniglot"] = {"data_dir": str(Path(args.data_dir).resolve())}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    record: dict = {
        "about": "per-task accuracy (whole %) of mamlkit.why_eval.alone_by_layer; written by tools/alone_layers.py",
        "command": "python tools/alone_layers.py " + " ".join(sys.argv[1:]),
        "commit": commit.stdout.strip(),
        "threads": torch.get_num_threads(),
    }
    for dataset, extra in datasets.items():
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
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
