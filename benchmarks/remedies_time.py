"""What the inner-loop remedies (the deep dive `inner_loop_remedies`) cost in time: meta-training step and
meta-test task, in one process.

Four variants of the same Conv4 (32 channels) on glyphs, 5-way 1-shot, 5 queries per class: plain MAML with
BatchNorm, MAML++'s per-step BatchNorm (``norm="bn_per_step"``), learned inner rates per tensor and step
(``inner_rates="learned"``) and ANIL (``adapt="head"``: the inner loop updates the classifier only, through
``mamlkit``'s rate table, so the body's gradients are still computed and multiplied by 0). Meta-training: 4 tasks
per meta-batch, 5 second-order inner steps. Meta-test: ``mk.meta_test`` of the transductive placement, 10 inner
steps. Rounds are interleaved; medians and ratios to plain MAML.

Usage: python benchmarks/remedies_time.py [--rounds 6] [--steps 2] [--tasks 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import time

from common import interleaved, machine, record, set_threads, summary

import mamlkit as mk

VARIANTS = {
    "MAML": ({}, {}),
    "MAML++ per-step BN": ({"norm": "bn_per_step"}, {}),
    "learned rates": ({}, {"inner_rates": "learned"}),
    "ANIL": ({}, {"adapt": "head"}),
}


def main(rounds: int = 6, steps: int = 2, tasks: int = 8, threads: int = 1) -> dict:
    set_threads(threads)
    data = mk.load_dataset("glyphs")
    train_sampler = mk.TaskSampler(data["train"], 5, 1, 5, seed=0)
    test_sampler = mk.TaskSampler(data["test"], 5, 1, 5, seed=1)
    models, configs, trained = {}, {}, {}
    for name, (model_changes, train_changes) in VARIANTS.items():
        models[name] = mk.build_model(mk.ModelConfig(hidden=32, **model_changes), seed=0, device="cpu")
        configs[name] = mk.TrainConfig(iterations=steps, **train_changes)
        trained[name] = mk.meta_train(copy.deepcopy(models[name]), train_sampler, configs[name], progress=False)

    def train(name: str):
        def run() -> float:
            net = copy.deepcopy(models[name])
            begin = time.perf_counter()
            mk.meta_train(net, train_sampler, configs[name], progress=False)
            return time.perf_counter() - begin

        return run

    def test(name: str):
        def run() -> float:
            begin = time.perf_counter()
            mk.meta_test(trained[name], test_sampler, "transductive", tasks, 10, progress=False)
            return time.perf_counter() - begin

        return run

    begin = time.perf_counter()
    train_times = interleaved({name: train(name) for name in VARIANTS}, rounds)
    test_times = interleaved({name: test(name) for name in VARIANTS}, rounds)
    result = {
        "machine": machine(threads),
        "settings": {"rounds": rounds, "meta_iterations_per_round": steps, "tasks_per_round": tasks,
                     "model": "Conv4, 32 channels", "dataset": "glyphs, 5-way 1-shot, 5 queries per class",
                     "meta_batch": 4, "train_inner_steps": 5, "test_inner_steps": 10},
        "meta_training": summary(train_times, "MAML", per=steps),
        "meta_test": summary(test_times, "MAML", per=tasks),
        "wall_s": time.perf_counter() - begin,
    }
    record("remedies_time", result)
    return result


def report(result: dict) -> str:
    lines = ["variant               s / meta-iteration  x MAML   ms / meta-test task  x MAML"]
    for name in VARIANTS:
        tr, te = result["meta_training"][name], result["meta_test"][name]
        lines.append(f"{name:<22} {tr['median_s']:>10.3f}   {tr['median_paired_ratio']:>8.2f}   "
                     f"{1000 * te['median_s']:>12.1f}   {te['median_paired_ratio']:>8.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2, help="meta-iterations per timed block")
    parser.add_argument("--tasks", type=int, default=8, help="meta-test tasks per timed block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(report(main(args.rounds, args.steps, args.tasks, args.threads)))
