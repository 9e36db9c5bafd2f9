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
        self.on_progress = None

    def batch(self, start: int, size: int) -> list[mk.Task]:
        self.rss_mb.append(self.process.memory_info().rss / 2**20)
        if self.on_progress is not None and len(self.rss_mb) % 100 == 0:
            self.on_progress(self)
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

    def report(done: bool) -> dict:
        rss = sampler.rss_mb
        checkpoints = sorted({n for n in (1, 10, 50, 100, 200, 500, 1000, 2000, len(rss)) if n <= len(rss)})
        seconds = time.perf_counter() - start
        now = {"fds": process.num_fds(), "threads": process.num_threads(), "python_threads": threading.active_count()}
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}",
            "threads": args.threads,
            "iterations_planned": args.iterations,
            "iterations_done": len(rss) if done else len(rss) - 1,
            "finished": done,
            "seconds": seconds,
            "peak_rss_mb_after": {str(n): max(rss[:n]) for n in checkpoints},
            "rss_mb_at": {str(n): rss[n - 1] for n in checkpoints},
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "before": before,
            "after" if done else "now": now,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))  # rewritten as the run goes: a cut run still reports
        return result

    sampler.on_progress = lambda _: report(done=False)
    mk.meta_train(model, sampler, exp.train, progress=False)
    print(json.dumps(report(done=True), indent=1))


if __name__ == "__main__":
    main()
