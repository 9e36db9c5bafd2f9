"""`make models` from scratch: every lesson model meta-trained on 2 cores, nothing shipped or cached.

Runs ``make models`` with ``MAMLKIT_SHIPPED=0`` and an empty temporary ``MAMLKIT_CACHE``, so each of the
lesson models the notebooks load is meta-trained now, and records the wall time, the CPU time of the
processes it ran (their user plus system time) and each model's own meta-training time as the command line
printed it. Minutes; run it on a quiet machine.

Usage: python benchmarks/make_models.py
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
import time

from common import ROOT, machine, record

TRAINED = re.compile(r"^(\S+): meta-training now")
SECONDS = re.compile(r"^\s+meta-trained in (\d+) s")


def main(threads: int | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "MAMLKIT_SHIPPED": "0", "MAMLKIT_CACHE": cache}
        begin = time.perf_counter()
        done = subprocess.run(["make", "--no-print-directory", "models"], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        wall = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"make models failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = done.stdout.splitlines()
    models = [m.group(1) for m in map(TRAINED.match, lines) if m]
    seconds = [int(m.group(1)) for m in map(SECONDS.match, lines) if m]
    result = {
        "machine": machine("as make models sets them"),
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "models": len(models),
        "model_seconds": sorted(seconds),
        "names": models,
    }
    record("make_models", result)
    return result


def report(result: dict) -> str:
    return (f"make models from scratch: {result['wall_s']:.0f} s wall, {result['cpu_s']:.0f} s CPU, "
            f"{result['models']} models ({min(result['model_seconds'])}-{max(result['model_seconds'])} s each)")


if __name__ == "__main__":
    print(report(main()))
