"""Endurance: resident memory, file handles and threads over a long meta-training run.

Meta-trains the ``quick`` configuration (5-way 1-shot glyphs, Conv4 with BatchNorm, meta-batch 4,
5 inner steps, Adam 3e-3) for ``--iterations`` meta-iterations in this process, recording the
resident set size (RSS) at every iteration, and reports the peak after 200 iterations and at the
end, with the open file descriptors and threads before and after. Memory is flat when the peak
after 2,000 iterations is (almost) the peak after 200.

    python benchmarks/endurance.py --iterations 2000 --out benchmarks/recorded/endurance.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import threading
import time
from pathlib import Path

import psutil
import torch

import mamlkit as mk


class RecordingSampler:
    """A task sampler that records the process's RSS each time meta-training asks for a meta-batch."""

    def __init__(self, sampler: mk.TaskSampler) -> None:
        self.sampler = sampler
        self.process = psutil.Process()
        self.rss_mb: list[float] = []

    def batch(self, start: int, size: int) -> list[mk.Task]:
        self.rss_mb.append(self.process.memory_info().rss / 2**20)
        return self.sampler.batch(start, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("MAMLKIT_THREADS", "1")))
    parser.add_argument("--out", default="benchmarks/recorded/endurance.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    process = psutil.Process()

    exp = mk.preset("quick", train={"iterations": args.iterations})
    data = exp.load_data()
    sampler = RecordingSampler(exp.train_sampler(data))
    model = mk.build_model(exp.model_config(), seed=exp.train.seed)
    before = {"fds": process.num_fds(), "threads": process.num_threads(), "python_threads": threading.active_count()}
    start = time.perf_counter()
    mk.meta_train(model, sampler, exp.train, progress=False)
    seconds = time.perf_counter() - start
    after = {"fds": process.num_fds(), "threads": process.num_threads(), "python_threads": threading.active_count()}

    rss = sampler.rss_mb
    checkpoints = [n for n in (1, 10, 50, 100, 200, 500, 1000, 2000, args.iterations) if n <= len(rss)]
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "threads": args.threads,
        "iterations": args.iterations,
        "seconds": seconds,
        "seconds_per_iteration": seconds / args.iterations,
        "peak_rss_mb_after": {str(n): max(rss[:n]) for n in sorted(set(checkpoints))},
        "rss_mb_at": {str(n): rss[n - 1] for n in sorted(set(checkpoints))},
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "before": before,
        "after": after,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items()}, indent=1))


if __name__ == "__main__":
    main()
