"""`make models` from scratch: every lesson model meta-trained on 2 cores, nothing shipped or cached.

Runs ``make models`` with ``MAMLKIT_SHIPPED=0`` and an empty temporary ``MAMLKIT_CACHE``, so each of the
lesson models the notebooks load is meta-trained now, and records the wall time, the CPU time of the
processes it ran (their user plus system time) and each model's own meta-training time as the command line
printed it. Twice: its two chains at one torch thread each (``MODEL_THREADS=1``, how it ran before tasks
could run side by side) and at two (the default), and checks that both give the same models bit for bit.
About ten minutes; run it on a quiet machine.

Usage: python benchmarks/make_models.py
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, record

TRAINED = re.compile(r"^(\S+): meta-training now")
SECONDS = re.compile(r"^\s+meta-trained in (\d+) s")


def one_run(threads: int, cache: Path) -> dict:
    """``make models MODEL_THREADS=threads`` into the empty folder ``cache``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "MAMLKIT_SHIPPED": "0", "MAMLKIT_CACHE": str(cache)}
    begin = time.perf_counter()
    done = subprocess.run(["make", "--no-print-directory", "models", f"MODEL_THREADS={threads}"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"make models failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = done.stdout.splitlines()
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "models": len([m for m in map(TRAINED.match, lines) if m]),
        "model_seconds": sorted(int(m.group(1)) for m in map(SECONDS.match, lines) if m),
    }


def same_models(a: Path, b: Path) -> bool:
    """Every tensor of every model file in ``a`` equals the one in ``b`` (the seconds they took aside)."""
    import torch

    def tensors(value: object, prefix: str = "") -> dict:
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in tensors(item, f"{prefix}{key}.").items()}
        return {prefix: value} if isinstance(value, torch.Tensor) else {}

    files = sorted(p.name for p in a.glob("*.pt"))
    if not files or files != sorted(p.name for p in b.glob("*.pt")):
        return False
    for name in files:
        x, y = (tensors(torch.load(folder / name, weights_only=False)) for folder in (a, b))
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


def main(threads: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        runs = {"1": one_run(1, Path(one)), "2": one_run(2, Path(two))}
        same = same_models(Path(one), Path(two))
    result = {"machine": machine("as named per run"), "runs": runs, "same_models": same, **runs["2"]}
    record("make_models", result)
    return result


def report(result: dict) -> str:
    return "\n".join(f"make models, {threads} thread(s) per chain: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU, "
                     f"{r['models']} models ({min(r['model_seconds'])}-{max(r['model_seconds'])} s each)"
                     for threads, r in result["runs"].items()) + f"\nsame models: {result['same_models']}"


if __name__ == "__main__":
    print(report(main()))
