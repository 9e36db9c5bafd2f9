"""Meta-training step time: mamlkit (each backend) against a bare higher loop, in one process.

The bare loop is written in the style of higher's own Omniglot MAML example: ``net.train()``,
``innerloop_ctx(net, inner_opt, copy_initial_weights=False)``, SGD inner steps with
``diffopt.step``, the query loss back-propagated per task, one Adam step per meta-batch. All
variants run the same model (Conv4, 32 channels, BatchNorm), the same tasks (glyphs, 5-way 1-shot,
5 queries per class, 4 tasks per meta-batch, 5 inner steps at lr 0.4, Adam 1e-3), sampled the same
way (``TaskSampler.batch``), with the same torch threads. At one thread on a machine with 2 cores it
also times the two ways one process can use both: 2 torch threads (each operation split in two), and
mamlkit's tasks side by side (``meta_train(threads=2)``: two tasks of a meta-batch at a time, each on one
torch thread), and checks that the latter trains the same model bit for bit. Each round times every
variant on the same block of meta-iterations, in rotating order; the report gives medians and ratios.

Usage: python benchmarks/step_time.py [--rounds 8] [--steps 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import higher
import torch
import torch.nn.functional as F
from common import interleaved, machine, record, set_threads, summary

import mamlkit as mk

N_WAY, K_SHOT, N_QUERY, META_BATCH, INNER_STEPS, INNER_LR, OUTER_LR = 5, 1, 5, 4, 5, 0.4, 1e-3


def bare_higher_loop(net: torch.nn.Module, sampler: mk.TaskSampler, iterations: int) -> None:
    """MAML as higher's Omniglot example writes it (our own code, same structure)."""
    net.train()
    meta_opt = torch.optim.Adam(net.parameters(), lr=OUTER_LR)
    inner_opt = torch.optim.SGD(net.parameters(), lr=INNER_LR)
    for iteration in range(iterations):
        tasks = sampler.batch(iteration * META_BATCH, META_BATCH)
        meta_opt.zero_grad()
        query_losses, query_accs = [], []
        for task in tasks:
            with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, diffopt):
                for _ in range(INNER_STEPS):
                    diffopt.step(F.cross_entropy(fnet(task.support_x), task.support_y))
                query_logits = fnet(task.query_x)
                query_loss = F.cross_entropy(query_logits, task.query_y)
                query_losses.append(query_loss.detach())
                query_accs.append((query_logits.argmax(dim=1) == task.query_y).float().mean().item())
                (query_loss / META_BATCH).backward()
        meta_opt.step()


def main(rounds: int = 8, steps: int = 2, threads: int = 1) -> dict:
    set_threads(threads)
    data = mk.load_dataset("glyphs")
    sampler = mk.TaskSampler(data["train"], N_WAY, K_SHOT, N_QUERY, seed=0)
    base = mk.build_model(mk.ModelConfig(norm="bn", hidden=32), seed=0, device="cpu")
    config = mk.TrainConfig(iterations=steps, meta_batch=META_BATCH, inner_steps=INNER_STEPS, inner_lr=INNER_LR,
                            outer_lr=OUTER_LR)

    def with_torch_threads(n: int, work) -> float:
        """Seconds ``work()`` takes with torch at ``n`` threads (the benchmark's own count put back after)."""
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            begin = time.perf_counter()
            work()
            return time.perf_counter() - begin
        finally:
            torch.set_num_threads(before)

    def bare(torch_threads: int):
        return lambda: with_torch_threads(torch_threads, lambda: bare_higher_loop(copy.deepcopy(base), sampler, steps))

    def mamlkit(backend: str, torch_threads: int, task_threads: int):
        def run() -> float:
            net = copy.deepcopy(base)
            return with_torch_threads(torch_threads, lambda: mk.meta_train(net, sampler, config, progress=False,
                                                                           backend=backend, threads=task_threads))

        return run

    variants = {"bare higher loop": bare(threads),
                "mamlkit, higher": mamlkit("higher", threads, 1),
                "mamlkit, torch.func": mamlkit("torch.func", threads, 1)}
    if threads == 1 and len(os.sched_getaffinity(0)) >= 2:  # the two ways of using 2 cores in one process
        variants["bare higher loop, 2 torch threads"] = bare(2)
        variants["mamlkit, higher, 2 torch threads"] = mamlkit("higher", 2, 1)
        variants["mamlkit, higher, 2 tasks side by side"] = mamlkit("higher", 1, 2)
    for run in variants.values():  # warm-up, not timed
        run()
    begin = time.perf_counter()
    times = interleaved(variants, rounds)
    identical = None
    if "mamlkit, higher, 2 tasks side by side" in variants:
        one, two = copy.deepcopy(base), copy.deepcopy(base)
        mk.meta_train(one, sampler, config, progress=False, threads=1)
        mk.meta_train(two, sampler, config, progress=False, threads=2)
        identical = all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))
    result = {
        "machine": machine(threads),
        "side_by_side_identical": identical,
        "settings": {"rounds": rounds, "meta_iterations_per_round": steps, "n_way": N_WAY, "k_shot": K_SHOT,
                     "n_query": N_QUERY, "meta_batch": META_BATCH, "inner_steps": INNER_STEPS,
                     "model": "Conv4, 32 channels, BatchNorm", "dataset": "glyphs"},
        "seconds_per_round": times,
        "summary": summary(times, "bare higher loop", per=steps),
        "wall_s": time.perf_counter() - begin,
    }
    record("step_time", result)
    return result


def report(result: dict) -> str:
    lines = ["variant                 median s/step   x bare (medians)   x bare (paired)"]
    for name, s in result["summary"].items():
        lines.append(f"{name:<22} {s['median_s']:>10.3f}   {s['ratio_of_medians']:>12.3f}   "
                     f"{s['median_paired_ratio']:>12.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="meta-iterations per timed block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(report(main(args.rounds, args.steps, args.threads)))
