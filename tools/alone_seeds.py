"""One table for one example at a time, across meta-training seeds (docs/results.md, checked by tests).

    python tools/alone_seeds.py --measure    # about 5 minutes on 2 cores (more where the models are not cached)
    python tools/alone_seeds.py              # prints the Markdown table from the records

The ways to predict each query example without the others, on the same 600 glyph tasks and the same three
meta-training seeds as ``data/records/seeds-glyphs.json`` (``python -m mamlkit placements --seeds 0 1 2`` and
``norms --seeds 0 1 2``): train mode on each example alone, the collected statistics the support steps moved, Reptile's
protocol, and MetaBN and TaskNorm-I (other models, meta-trained with the same seeds) come from that record. The one
way it lacks, statistics re-estimated on each task's support set at the adapted weights (notebook 06's recipe 2,
Exercise 03.1's reference), is measured here on the same models and tasks and written to
``data/records/alone_seeds.json``. The measurement also recomputes train mode on the whole query set from the same
adapted copy and counts the tasks where it equals the record's: the check that models and tasks are the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import cell, header, load, measure_then_print, write  # noqa: E402

#: The rows: (label, section, model, placement or protocol); "recipe 2" is this tool's own measurement.
WAYS = (
    ("train mode, each example alone", "placements", "standard", "one_at_a_time"),
    ("collected statistics moved by the support steps, eval mode", "placements", "standard",
     "train_then_eval_collected"),
    ("statistics re-estimated on the support set at the adapted weights (recipe 2)", "alone_seeds", "standard",
     "reestimated"),
    ("Reptile's protocol: each example with the support set (recipe 3)", "placements", "standard",
     "reptile_protocol"),
    ("MetaBN, each example alone (recipe 4, another model)", "norms", "metabn", "one_at_a_time"),
    ("TaskNorm-I, each example alone (recipe 4, another model)", "norms", "tasknorm_i", "one_at_a_time"),
)
REFERENCE = ("whole query set in train mode (transductive, not one at a time)", "placements", "standard",
             "transductive")
RECIPE_2 = WAYS[2][0]


def matches(recorded: dict, mine: dict) -> bool:
    """Every setting the record names has the same value in ``mine`` (which may name more)."""
    return all(matches(v, mine.get(k, {})) if isinstance(v, dict) else mine.get(k) == v for k, v in recorded.items())


def measure(out: Path) -> None:
    """Meta-trained models of seeds 0-2 (cache, or trained now); recipe 2 on the record's 600 tasks of each."""
    import higher
    import torch
    import torch.nn.functional as F

    import mamlkit as mk
    from mamlkit.experiments import Experiment
    from mamlkit.lessons.exercises import reference_support_stats_predict

    record = header("per-task accuracy (whole %) of statistics re-estimated on each task's support set at the "
                    "adapted weights; written by tools/alone_seeds.py")
    seeds_record = load("seeds-glyphs")["placements"]
    exp = Experiment().with_changes(dataset=seeds_record["experiment"]["dataset"])
    data = exp.load_data()
    tasks = exp.test_sampler(data)
    values, agree = [], []
    for s, seed in enumerate(seeds_record["seeds"]):
        seeded = exp.with_changes(train={"seed": seed})
        if not matches(seeds_record["experiment"], seeded.as_dict()):
            raise SystemExit(f"seed {seed}: the experiment differs from the seeds record's")
        model = mk.get_meta_trained(seeded, "standard", data, progress=False).model
        recorded = seeds_record["results"]["standard"]["transductive"][s]
        mine, same = [], 0
        for i in mk.progress.progress_bar(range(exp.test_tasks), desc=f"seed {seed}"):
            task = tasks.task(i)
            inner_opt = torch.optim.SGD(model.parameters(), lr=exp.train.inner_lr)
            with higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, diffopt):
                fmodel.train()
                for _ in range(exp.test_inner_steps):
                    diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
                with torch.no_grad():
                    whole = mk.accuracy(fmodel.train()(task.query_x), task.query_y)
                    alone = reference_support_stats_predict(fmodel, task.support_x, task.query_x)
            same += round(100 * whole) == recorded[i]
            mine.append(round(100 * mk.accuracy(alone, task.query_y)))
        values.append(mine)
        agree.append(same)
        print(f"seed {seed}: train mode on the whole query set equals the record's on {same} of "
              f"{exp.test_tasks} tasks", file=sys.stderr)
    record.update({"seeds": seeds_record["seeds"], "experiment": seeds_record["experiment"],
                   "transductive_equal_to_seeds_record": agree,
                   "results": {"standard": {"reestimated": values}}})
    write(record, out)


def section(name: str) -> dict:
    if name == "alone_seeds":
        return load("alone_seeds")
    return load("seeds-glyphs")[name]


def per_seed(way: tuple[str, str, str, str]) -> list[np.ndarray]:
    _label, name, model, row = way
    return [np.array(v, dtype=float) / 100 for v in section(name)["results"][model][row]]


def paired(a: np.ndarray, b: np.ndarray) -> str:
    from mamlkit.evaluate import confidence_interval

    mean, half = confidence_interval(a - b)
    return f"{100 * mean:+.1f} ± {100 * half:.1f}"


def table() -> str:
    """Markdown: each way's accuracy per seed, and recipe 2 minus it, paired on the same tasks, per seed."""
    seeds = load("seeds-glyphs")["placements"]["seeds"]
    recipe = per_seed(WAYS[2])
    head = ["one example at a time"] + [f"seed {s} accuracy %" for s in seeds] + \
           [f"seed {s}: recipe 2 minus this" for s in seeds]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for way in (*WAYS, REFERENCE):
        runs = per_seed(way)
        cells = [cell([round(100 * v) for v in run]) for run in runs]
        diffs = ["-" if way is WAYS[2] else paired(r, run) for r, run in zip(recipe, runs)]
        lines.append(f"| {way[0]} | " + " | ".join(cells + diffs) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return measure_then_print(__doc__.split("\n\n")[0], "alone_seeds.json", measure, table,
                              "measure recipe 2 and write the record first", argv)

if __name__ == "__main__":
    sys.exit(main())
