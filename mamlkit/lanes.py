"""Lanes: independent pieces of work (meta-test tasks, meta-trainings) run side by side in worker processes.

On a 2-core laptop two processes with one torch thread each finish independent work about twice as fast as
one process, and faster than one process with two threads (small convolutions do not split well over
threads). ``run_in_lanes`` forks ``lanes`` worker processes (as torch's own ``DataLoader`` workers are made
on Linux: each sets one torch thread; ``fork`` needs no ``if __name__ == "__main__"`` guard in a user's
script and works inside Jupyter), gives each the same starting state once (``setup(*setup_args)``, inherited,
not copied through a pipe), then hands out the jobs and returns their results in the order of the jobs,
whatever order they finish in. Where ``fork`` does not exist (Windows) the jobs run here, one after another.

Results do not depend on the number of lanes when every job is independent of the others and each worker
uses one torch thread, which is what the callers guarantee: a meta-test task starts from the model's
statistics restored for it and draws no random numbers (no Dropout at meta-test), and a meta-training seeds
torch itself. They equal a run in one process at one torch thread (``MAMLKIT_THREADS=1``), bit for bit.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from mamlkit.errors import ConfigError

_STATE: Any = None


def default_lanes() -> int:
    """``$MAMLKIT_LANES`` if set, else the number of usable cores, at most 2 (what the machines here have)."""
    text = os.environ.get("MAMLKIT_LANES")
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"MAMLKIT_LANES must be a whole number of at least 1, got {text!r}")
        return int(text)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, usable))


def _start(setup: Callable[..., Any], setup_args: tuple) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ["MAMLKIT_PROGRESS"] = "0"
    global _STATE
    _STATE = setup(*setup_args)


def _do(work: Callable[[Any, Any], Any], job: Any) -> Any:
    return work(_STATE, job)


def run_in_lanes(
    setup: Callable[..., Any],
    setup_args: tuple,
    work: Callable[[Any, Any], Any],
    jobs: Sequence[Any],
    lanes: int,
    on_done: Callable[[int], None] | None = None,
) -> list[Any]:
    """``[work(state, job) for job in jobs]`` computed in ``lanes`` worker processes, where each worker's
    ``state = setup(*setup_args)``. ``setup`` and ``work`` must be module-level functions (they are sent to
    the workers by name). ``on_done(i)`` is called in this process as job ``i`` finishes."""
    if lanes < 1:
        raise ConfigError(f"lanes must be at least 1, got {lanes}")
    results: list[Any] = [None] * len(jobs)
    if lanes == 1 or len(jobs) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        state = setup(*setup_args)
        for i, job in enumerate(jobs):
            results[i] = work(state, job)
            if on_done is not None:
                on_done(i)
        return results
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(lanes, len(jobs)), mp_context=context, initializer=_start,
                             initargs=(setup, setup_args)) as pool:
        futures = {pool.submit(_do, work, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_done is not None:
                on_done(i)
    return results
