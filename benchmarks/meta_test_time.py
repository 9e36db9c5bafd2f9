"""Meta-test time: per task with and without higher-order tracking, and the placement table's total.

1. Per task (glyphs, 5-way 1-shot, 5 queries per class, 10 inner steps at lr 0.4, Conv4 32 channels
   with BatchNorm, train mode): a hand-written higher adaptation with ``track_higher_grads=True``
   (higher's default, which keeps the graph of every inner step) against ``False`` (what mamlkit
   uses at meta-test), and mamlkit's ``adapt_and_predict`` with each backend. Interleaved rounds of
   ``--tasks`` tasks each; medians per task.
2. The placement table: ``mk.meta_test(trained, tasks, mk.PLACEMENTS)``, every placement on ``--table-tasks``
   tasks (a model meta-trained for 2 iterations: the time does not depend on the weights), with
   each backend, and with higher as before the statistics replay (``train_then_eval_collected`` adapted
   apart). The time for the 600 tasks of the README's table is extrapolated linearly, and labelled as such.

Usage: python benchmarks/meta_test_time.py [--rounds 5] [--tasks 4] [--table-tasks 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import higher
import torch
from common import interleaved, machine, record, set_threads, summary

import mamlkit as mk

INNER_STEPS, INNER_LR = 10, 0.4


def hand_written(model: torch.nn.Module, task: mk.Task, track_higher_grads: bool) -> torch.Tensor:
    """Adapt a patched copy in train mode, then predict the query set without gradients."""
    inner_opt = torch.optim.SGD(model.parameters(), lr=INNER_LR)
    with higher.innerloop_ctx(model, inner_opt, track_higher_grads=track_higher_grads) as (fmodel, diffopt):
        fmodel.train()
        for _ in range(INNER_STEPS):
            diffopt.step(mk.task_loss(fmodel(task.support_x), task.support_y))
        with torch.no_grad():
            return fmodel(task.query_x)


def main(rounds: int = 5, tasks: int = 4, table_tasks: int = 20, threads: int = 1) -> dict:
    set_threads(threads)
    data = mk.load_dataset("glyphs")
    train = mk.TaskSampler(data["train"], 5, 1, 5, seed=0)
    test = mk.TaskSampler(data["test"], 5, 1, 5, seed=1)
    model = mk.build_model(mk.ModelConfig(norm="bn", hidden=32), seed=0, device="cpu")
    trained = mk.meta_train(model, train, mk.TrainConfig(iterations=2), progress=False)
    task_list = [test.task(i) for i in range(tasks)]

    def per_task(fn):
        def run() -> float:
            begin = time.perf_counter()
            for task in task_list:
                fn(task)
            return time.perf_counter() - begin

        return run

    variants = {
        "higher, track_higher_grads=True": per_task(lambda t: hand_written(model, t, True)),
        "higher, track_higher_grads=False": per_task(lambda t: hand_written(model, t, False)),
        "mamlkit adapt_and_predict, higher": per_task(
            lambda t: mk.adapt_and_predict(model, t, "transductive", INNER_STEPS, INNER_LR)),
        "mamlkit adapt_and_predict, torch.func": per_task(
            lambda t: mk.adapt_and_predict(model, t, "transductive", INNER_STEPS, INNER_LR, backend="torch.func")),
    }
    for run in variants.values():  # warm-up
        run()
    begin = time.perf_counter()
    times = interleaved(variants, rounds)
    per_task_summary = summary(times, "higher, track_higher_grads=False", per=tasks)

    def run_table(backend: str, parts: list[list[str]]) -> tuple[dict, float]:
        start = time.perf_counter()
        results = {}
        for part in parts:
            results.update(mk.meta_test(trained, test, part, n_tasks=table_tasks, inner_steps=INNER_STEPS,
                                        inner_lr=INNER_LR, progress=False, backend=backend))
        return results, time.perf_counter() - start

    everything = list(mk.PLACEMENTS)
    # Before the statistics replay: train_then_eval_collected had an adaptation of its own. Measured by asking
    # for it apart (nothing to share it with), so this row is the former cost with the same code.
    apart = [[p for p in everything if p != "train_then_eval_collected"], ["train_then_eval_collected"]]
    rows = {"higher, each source adapted apart (before)": ("higher", apart),
            "higher": ("higher", [everything]),
            "torch.func": ("torch.func", [everything])}
    table = {}
    for label, (backend, parts) in rows.items():
        results, seconds = run_table(backend, parts)
        table[label] = {
            "tasks": table_tasks,
            "placements": len(results),
            "seconds": seconds,
            "seconds_per_task": seconds / table_tasks,
            "extrapolated_600_tasks_s": seconds / table_tasks * 600,
            "per_placement_s_per_task": {name: r.seconds / table_tasks for name, r in results.items()},
        }
    result = {
        "machine": machine(threads),
        "settings": {"rounds": rounds, "tasks_per_round": tasks, "inner_steps": INNER_STEPS, "n_way": 5,
                     "k_shot": 1, "n_query": 5, "model": "Conv4, 32 channels, BatchNorm", "dataset": "glyphs"},
        "seconds_per_round": times,
        "per_task": per_task_summary,
        "placement_table": table,
        "wall_s": time.perf_counter() - begin,
    }
    record("meta_test_time", result)
    return result


def report(result: dict) -> str:
    lines = ["variant                                   median s/task   x track=False"]
    for name, s in result["per_task"].items():
        lines.append(f"{name:<40} {s['median_s']:>10.4f}   {s['ratio_of_medians']:>10.3f}")
    for backend, t in result["placement_table"].items():
        lines.append(f"placement table ({backend}): {t['placements']} placements x {t['tasks']} tasks in "
                     f"{t['seconds']:.1f} s; 600 tasks extrapolated: {t['extrapolated_600_tasks_s']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=4, help="tasks per timed block")
    parser.add_argument("--table-tasks", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(report(main(args.rounds, args.tasks, args.table_tasks, args.threads)))
