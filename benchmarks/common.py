"""Shared helpers of the benchmark scripts: machine description, interleaved timing, recorded results.

Each benchmark writes one JSON file into ``benchmarks/recorded/`` (results plus the machine they
were measured on); ``run_all.py`` turns whatever is recorded there into ``BENCHMARKS.md``, so one
section can be re-measured without re-running the others. Only the standard library and torch.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECORDED = HERE / "recorded"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int | None = None) -> dict:
    """Where and when a benchmark ran: CPU, torch's CPU capability, BLAS and oneDNN builds, any kernel switches
    (``mamlkit.plumbing.machine``), cores, load, versions, torch threads, date."""
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    from mamlkit.plumbing.machine import signature

    sig = signature()
    return {
        "cpu": cpu_model(),
        "cpu_capability": sig["cpu_capability"],
        "blas": sig["blas"],
        "onednn": sig["onednn"],
        "kernel_switches": sig["kernel_switches"],
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1_5_15_min": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def set_threads(threads: int) -> None:
    """Limit torch's intra-op parallelism to ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, rotating the order each round; return each one's times.

    A variant is a function that does the work and returns the seconds it took (so that set-up it
    needs, such as copying a model, is not timed). Interleaving spreads slow periods of a busy
    machine over all variants instead of penalising whichever ran during them.
    """
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            times[name].append(variants[name]())
    return times


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes."""
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def summary(times: dict[str, list[float]], baseline: str, per: int = 1) -> dict[str, dict]:
    """Median seconds (divided by ``per``) of each variant and its ratio to ``baseline``.

    Two ratios: of the medians, and the median of the per-round ratios (paired, so a slow round
    affects both sides alike).
    """
    base = times[baseline]
    out = {}
    for name, values in times.items():
        paired = [v / b for v, b in zip(values, base)]
        out[name] = {
            "median_s": statistics.median(values) / per,
            "min_s": min(values) / per,
            "ratio_of_medians": statistics.median(values) / statistics.median(base),
            "median_paired_ratio": statistics.median(paired),
            "rounds": len(values),
        }
    return out


def record(name: str, payload: dict) -> Path:
    """Write ``payload`` to ``benchmarks/recorded/<name>.json`` and return the path."""
    RECORDED.mkdir(parents=True, exist_ok=True)
    path = RECORDED / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def recorded(name: str) -> dict | None:
    """The recorded result ``name``, or None when it has not been measured."""
    path = RECORDED / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None
