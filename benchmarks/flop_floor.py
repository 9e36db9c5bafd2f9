"""Meta-test against its compute floor: how far one task's adaptation is from what the ops can do.

One meta-test task (glyphs, 5-way 1-shot, 5 queries per class, Conv4 with 32 channels and BatchNorm,
10 inner steps at lr 0.4 in train mode, then the query set predicted in train mode) runs every layer
forward on the 5 support images 10 times, backward through it 10 times (the gradients an SGD step
needs: weights and biases everywhere, inputs everywhere except the first convolution), and forward
once more on the 25 query images.

The floor: for each layer of the network and each pass, the time per example of that same layer
shape when it runs at its best, measured in this run on a dense large batch (the smallest per-example
time over a few batch sizes), times the examples one task pushes through it. Summed over the layers,
this is what one task would cost if every op ran as efficiently as it can on this machine; the
benchmark prints the floor, its parts, the measured per-task time and their ratio, and a profile of
the measured run (the ops with the most self time).

Usage: python benchmarks/flop_floor.py [--rounds 5] [--tasks 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine, record, set_threads
from torch import nn

import mamlkit as mk

N_WAY, K_SHOT, N_QUERY, INNER_STEPS, INNER_LR, HIDDEN = 5, 1, 5, 10, 0.4, 32
BATCHES = (100, 250, 500)


def per_example_seconds(
    layer: nn.Module, shape: tuple[int, ...], input_grad: bool, reps: int
) -> tuple[float, float, int]:
    """Best per-example seconds of ``layer`` forward and backward on inputs of ``shape``, and the best batch."""
    params = [p for p in layer.parameters() if p.requires_grad]
    best_forward, best_backward, best_batch = float("inf"), float("inf"), 0
    for batch in BATCHES:
        x = torch.randn(batch, *shape, requires_grad=input_grad)
        wrt = ([x] if input_grad else []) + params
        grad_out = torch.randn_like(layer(x))
        forward_times, total_times = [], []
        for rep in range(reps + 1):
            begin = time.perf_counter()
            with torch.no_grad():
                layer(x)
            middle = time.perf_counter()
            torch.autograd.grad(layer(x), wrt, grad_out)
            end = time.perf_counter()
            if rep:  # the first repetition warms up
                forward_times.append(middle - begin)
                total_times.append(end - middle)
        forward = statistics.median(forward_times) / batch
        backward = max(statistics.median(total_times) / batch - forward, 0.0)
        if forward + backward < best_forward + best_backward:
            best_forward, best_backward, best_batch = forward, backward, batch
    return best_forward, best_backward, best_batch


class ChannelsLast(nn.Module):
    """``layer`` applied to its input in channels_last memory layout (the values are the same)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.contiguous(memory_format=torch.channels_last))


def network_layers(model: mk.models.Conv4) -> list[tuple[str, nn.Module, tuple[int, ...], bool, float]]:
    """(name, module, input shape per example, needs input gradient, forward FLOPs per example) per layer."""
    layers = []
    channels, size = 1, 28
    modules = list(model.features)
    for block in range(4):
        conv, norm, relu, pool = modules[4 * block: 4 * block + 4]
        shape = (channels, size, size)
        flops = 2.0 * channels * HIDDEN * 9 * size * size
        layers.append((f"conv {block + 1} ({channels}->{HIDDEN}, {size}x{size})", conv, shape, block > 0, flops))
        shape = (HIDDEN, size, size)
        layers.append((f"batchnorm {block + 1} ({size}x{size})", norm, shape, True, 0.0))
        layers.append((f"relu {block + 1} ({size}x{size})", relu, shape, True, 0.0))
        layers.append((f"maxpool {block + 1} ({size}x{size})", pool, shape, True, 0.0))
        channels, size = HIDDEN, size // 2
    layers.append((f"linear ({HIDDEN}->{N_WAY})", model.classifier, (HIDDEN,), True, 2.0 * HIDDEN * N_WAY))
    return layers


def main(rounds: int = 5, tasks: int = 10, threads: int = 1) -> dict:
    set_threads(threads)
    torch.manual_seed(0)
    data = mk.load_dataset("glyphs")
    test = mk.TaskSampler(data["test"], N_WAY, K_SHOT, N_QUERY, seed=1)
    model = mk.build_model(mk.ModelConfig(norm="bn", hidden=HIDDEN), seed=0, device="cpu")
    model.train()

    support, query = N_WAY * K_SHOT, N_WAY * N_QUERY
    forward_examples = INNER_STEPS * support + query
    backward_examples = INNER_STEPS * support
    parts = []
    for name, layer, shape, input_grad, flops in network_layers(model):
        forward, backward, batch = per_example_seconds(layer, shape, input_grad, reps=5)
        seconds = forward * forward_examples + backward * backward_examples
        part = {"layer": name, "forward_us_per_example": forward * 1e6, "backward_us_per_example": backward * 1e6,
                "best_batch": batch, "floor_ms_per_task": seconds * 1e3}
        if flops:
            part["forward_gflop_per_s"] = flops / forward / 1e9
        parts.append(part)
    floor_s = sum(p["floor_ms_per_task"] for p in parts) / 1e3
    # the first max-pool in channels_last layout, for comparison (mamlkit keeps NCHW: see BENCHMARKS.md)
    channels_last_pool = ChannelsLast(model.features[3])
    pool_cl_forward, _, _ = per_example_seconds(channels_last_pool, (HIDDEN, 28, 28), True, reps=5)

    task_list = list(range(tasks))
    measured: dict[str, list[float]] = {backend: [] for backend in mk.backends.BACKENDS}
    for backend in measured:  # warm-up
        mk.meta_test(model, test, "transductive", n_tasks=2, inner_steps=INNER_STEPS, inner_lr=INNER_LR,
                     progress=False, backend=backend)
    for r in range(rounds):
        for backend in measured:
            begin = time.perf_counter()
            mk.meta_test(model, test, "transductive", n_tasks=len(task_list), inner_steps=INNER_STEPS,
                         inner_lr=INNER_LR, start=r * tasks, progress=False, backend=backend)
            measured[backend].append((time.perf_counter() - begin) / tasks)

    from torch.profiler import profile

    with profile() as prof:
        mk.meta_test(model, test, "transductive", n_tasks=tasks, inner_steps=INNER_STEPS, inner_lr=INNER_LR,
                     progress=False)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    top_ops = [{"op": e.key, "self_percent": 100.0 * e.self_cpu_time_total / total, "calls": e.count}
               for e in events[:8]]

    per_task = {backend: statistics.median(times) for backend, times in measured.items()}
    result = {
        "machine": machine(threads),
        "settings": {"dataset": "glyphs", "n_way": N_WAY, "k_shot": K_SHOT, "n_query": N_QUERY,
                     "inner_steps": INNER_STEPS, "model": f"Conv4, {HIDDEN} channels, BatchNorm",
                     "rounds": rounds, "tasks_per_round": tasks, "batches": list(BATCHES)},
        "floor_s_per_task": floor_s,
        "parts": parts,
        "measured_s_per_task": per_task,
        "ratio_to_floor": {backend: t / floor_s for backend, t in per_task.items()},
        "profile_top_ops": top_ops,
        "maxpool_1_channels_last_forward_us_per_example": pool_cl_forward * 1e6,
    }
    record("flop_floor", result)
    return result


def report(result: dict) -> str:
    lines = [f"{'layer':<36} {'fwd us/ex':>10} {'bwd us/ex':>10} {'ms/task':>8}"]
    for p in result["parts"]:
        lines.append(f"{p['layer']:<36} {p['forward_us_per_example']:>10.2f} {p['backward_us_per_example']:>10.2f} "
                     f"{p['floor_ms_per_task']:>8.2f}")
    lines.append(f"floor: {1e3 * result['floor_s_per_task']:.1f} ms per task")
    for backend, t in result["measured_s_per_task"].items():
        ratio = result["ratio_to_floor"][backend]
        lines.append(f"measured ({backend}): {1e3 * t:.1f} ms per task, {ratio:.2f}x the floor")
    for op in result["profile_top_ops"]:
        lines.append(f"  {op['op']:<45} {op['self_percent']:5.1f}%  ({op['calls']} calls)")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=10, help="tasks per timed block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(report(main(args.rounds, args.tasks, args.threads)))
