"""Both cores: the placement table (meta-training and meta-test) in one process and in 2 lanes.

``mk.experiments.run_placements`` meta-trains one model per meta-training placement and meta-tests
every placement on each. With ``lanes=2`` the missing meta-trainings run side by side in two worker
processes, then the meta-test tasks are split between them (one torch thread per lane, see
``mamlkit.plumbing.lanes``). This benchmark times the same small table (``--iterations`` meta-iterations,
``--tasks`` meta-test tasks, nothing cached) in one process at 2 torch threads (the default on 2 cores),
in one process at 1 thread, and in 2 lanes, and checks that the per-task results of 2 lanes are identical
to one process at one thread (the lanes' layout), and what one process at 2 threads gives (tasks side by
side in meta-training and meta-test: the same models and per-task results).

``--full`` also times the README's table at the CLI's default configuration (the ``full`` preset:
300 meta-iterations, 600 tasks x 8 placements, two meta-trainings) from scratch in 2 lanes, and compares
every per-task result with the seed-0 record in ``data/records/seeds-glyphs.json``.

Usage: python benchmarks/lanes.py [--iterations 60] [--tasks 100] [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, machine, record, recorded

import mamlkit as mk

#: (name, lanes, torch threads of this process)
VARIANTS = (("one process, 2 threads", 1, 2), ("one process, 1 thread", 1, 1), ("2 lanes, 1 thread each", 2, 1))


def timed_table(exp: mk.experiments.Experiment, lanes: int) -> tuple[float, float, mk.experiments.PlacementResults]:
    """(wall seconds of meta-training, wall seconds of meta-test, results), with nothing cached."""
    with tempfile.TemporaryDirectory() as cache_dir:
        data = exp.load_data()
        trainings = list(mk.TRAIN_PLACEMENTS)
        begin = time.perf_counter()
        mk.experiments.get_meta_trained_many(exp, trainings, data, False, True, Path(cache_dir), lanes)
        trained_s = time.perf_counter() - begin
        results = mk.experiments.run_placements(exp, progress=False, cache_dir=Path(cache_dir), lanes=lanes)
        test_s = time.perf_counter() - begin - trained_s
    return trained_s, test_s, results


def per_task(results: mk.experiments.PlacementResults) -> dict[str, dict[str, list[float]]]:
    return {t: {p: [float(v) for v in r.values] for p, r in row.items()} for t, row in results.results.items()}


def main(iterations: int = 60, tasks: int = 100, full: bool = False) -> dict:
    exp = mk.experiments.preset("full", test_tasks=tasks, train={"iterations": iterations})
    small = {}
    values = {}
    models = {}
    for name, lanes, threads in VARIANTS:
        torch.set_num_threads(threads)
        os.environ["MAMLKIT_TASK_THREADS"] = str(threads)  # what the command line sets: tasks side by side
        train_s, test_s, results = timed_table(exp, lanes)
        small[name] = {"meta_train_s": train_s, "meta_test_s": test_s, "total_s": train_s + test_s}
        values[name] = per_task(results)
        models[name] = {t: trained.model.state_dict() for t, trained in results.trained.items()}
    one, two_threads = models["one process, 1 thread"], models["one process, 2 threads"]
    two = small["2 lanes, 1 thread each"]
    result = {
        "machine": machine("as named per variant"),
        "settings": {"iterations": iterations, "tasks": tasks, "placements": len(mk.PLACEMENTS),
                     "trainings": len(mk.TRAIN_PLACEMENTS), "dataset": "glyphs"},
        "small_table": small,
        "speedup_of_2_lanes": {name: {part: t[part] / two[part] for part in t} for name, t in small.items()
                               if name != "2 lanes, 1 thread each"},
        "identical": values["one process, 1 thread"] == values["2 lanes, 1 thread each"],
        "two_threads": {  # meta-training runs tasks side by side (the same models); meta-test splits each operation
            "same_models": all(torch.equal(one[t][k], two_threads[t][k]) for t in one for k in one[t]),
            "same_per_task": values["one process, 1 thread"] == values["one process, 2 threads"],
            "same_per_task_as_lanes": values["one process, 2 threads"] == values["2 lanes, 1 thread each"],
        },
    }
    if full:
        torch.set_num_threads(1)
        begin = time.perf_counter()
        with tempfile.TemporaryDirectory() as cache_dir:
            results = mk.experiments.run_placements(mk.experiments.preset("full"), progress=False,
                                                    cache_dir=Path(cache_dir), lanes=2)
        wall = time.perf_counter() - begin
        recorded_run = json.loads((ROOT / "data" / "records" / "seeds-glyphs.json").read_text())["placements"]
        seed = recorded_run["seeds"].index(0)
        same = all(
            [round(100 * v) for v in results.results[t][p].values] == recorded_run["results"][t][p][seed]
            for t in recorded_run["results"] for p in recorded_run["results"][t]
        )
        result["full_table"] = {"date": machine()["date"], "wall_s": wall, "lanes": 2, "same_as_seed0_record": same,
                                "meta_train_s": results.train_seconds, "meta_test_lane_s": results.test_seconds,
                                "means": {t: {p: float(r.values.mean()) for p, r in row.items()}
                                          for t, row in results.results.items()}}
    else:  # the full table is measured only with --full: keep the last measurement, with its date
        previous = recorded("lanes")
        if previous is not None and "full_table" in previous:
            result["full_table"] = previous["full_table"]
    record("lanes", result)
    return result


def report(result: dict) -> str:
    lines = []
    for name, t in result["small_table"].items():
        lines.append(f"{name}: meta-train {t['meta_train_s']:.1f} s, meta-test {t['meta_test_s']:.1f} s, "
                     f"total {t['total_s']:.1f} s")
    for name, parts in result["speedup_of_2_lanes"].items():
        lines.append(f"2 lanes against {name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in parts.items()))
    lines.append(f"per-task results of 2 lanes identical to one process at 1 thread: {result['identical']}")
    if "two_threads" in result:
        lines.append(f"one process at 2 threads against 1 thread: {result['two_threads']}")
    if "full_table" in result:
        f = result["full_table"]
        lines.append(f"full table from scratch in 2 lanes: {f['wall_s']:.0f} s; "
                     f"identical to the seed-0 record: {f['same_as_seed0_record']}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="also time the full default table from scratch")
    args = parser.parse_args()
    print(report(main(args.iterations, args.tasks, args.full)))
