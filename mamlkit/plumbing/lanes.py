"""Lanes: independent pieces of work (meta-test tasks, meta-trainings) run side by side in worker processes.

On a 2-core laptop two processes with one torch thread each finish independent work about twice as fast as
one process, and faster than one process with two threads (small convolutions do not split well over
threads). ``run_in_lanes`` starts ``lanes`` fresh worker processes (``spawn``), each with one torch thread,
gives each the same starting state once (``setup(*setup_args)``), then hands out the jobs and returns their
results in the order of the jobs, whatever order they finish in. ``thread_pool`` is the in-process kind: threads
with one torch thread each, for work that shares no state (the tasks of ``mk.meta_train`` and ``mk.meta_test`` in
one process); Python's lock makes threads somewhat slower than processes, but they need no copy of the data.

Fresh processes (``spawn``), not forks of this one, so that a worker inherits no thread pool or allocator
state; a script that uses lanes needs the usual ``if __name__ == "__main__":`` guard (notebooks and
``python -m mamlkit`` need nothing).

Results do not depend on the number of lanes when the jobs are independent and each worker uses one torch
thread: a meta-test task starts from the statistics prepared for it and draws any random numbers (Dropout
left on at meta-test) from a generator seeded by its own index, and a meta-training seeds torch itself.
They equal a run in one process at one torch thread
(``MAMLKIT_THREADS=1``) bit for bit (tests, and the README's full glyphs table: 16 cells x 600 tasks).

One trap, found the hard way: tensors sent to or from a worker arrive in memory shared between processes
(torch's pickling for multiprocessing). A worker that writes into such a tensor (a meta-test writes each
task's statistics into the model's buffers) writes into every other worker's copy too, and the results
change from run to run. So each lane works on a private copy (``copy.deepcopy``), and models sent back are
copied into this process's memory before use.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mamlkit.errors import ConfigError
from mamlkit.plumbing.checks import env_whole_number

if TYPE_CHECKING:
    from torch import nn

_STATE: Any = None


def default_threads() -> int:
    """How many tasks ``mk.meta_train`` and ``mk.meta_test`` run side by side when not told: ``$MAMLKIT_TASK_THREADS``
    if set, else 1 (one task at a time at torch's thread count, as a loop written by hand runs). The command line
    sets it to torch's thread count, so that one process gives the numbers of one thread, as the lanes do."""
    return env_whole_number("MAMLKIT_TASK_THREADS") or 1


def chosen_threads(threads: int | None) -> int:
    """``threads`` checked (a whole number of at least 1), or ``default_threads()`` for None."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a whole number of at least 1 (or None: $MAMLKIT_TASK_THREADS, else 1), "
                          f"got {threads!r}")
    return threads


def default_lanes() -> int:
    """``$MAMLKIT_LANES`` if set, else the number of usable cores, at most 2 (what the machines here have)."""
    chosen = env_whole_number("MAMLKIT_LANES")
    if chosen:
        return chosen
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, usable))


@contextmanager
def thread_pool(threads: int) -> Iterator[ThreadPoolExecutor]:
    """``threads`` worker threads in this process, torch on one thread in each (and here while the block runs).

    For work that keeps no shared state (tasks side by side: ``mk.meta_train(threads=)``, ``mk.meta_test(threads=)``):
    each operation then runs as it does at one thread, so the results are those of one thread, bit for bit.
    Torch's thread count is put back on exit, also after an error.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            yield pool
    finally:
        torch.set_num_threads(before)


def _leave(signum: int, frame: object) -> None:
    """A worker's Ctrl-C: leave at once and quietly; the main process reports the interrupt (one line)."""
    os._exit(130)


def _start(setup: Callable[..., Any], setup_args: tuple) -> None:
    import torch

    signal.signal(signal.SIGINT, _leave)

    torch.set_num_threads(1)
    os.environ["MAMLKIT_PROGRESS"] = "0"
    os.environ["MAMLKIT_TASK_THREADS"] = "1"  # a lane is one thread: nothing side by side inside it
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
    if lanes == 1 or len(jobs) < 2:
        state = setup(*setup_args)
        for i, job in enumerate(jobs):
            results[i] = work(state, job)
            if on_done is not None:
                on_done(i)
        return results
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(min(lanes, len(jobs)), mp_context=context, initializer=_start,
                                 initargs=(setup, setup_args)) as pool:
            futures = {pool.submit(_do, work, job): i for i, job in enumerate(jobs)}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    results[i] = future.result()
                    if on_done is not None:
                        on_done(i)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)  # the jobs not started yet are dropped, not waited for
                raise
    except BrokenProcessPool as exc:
        raise ConfigError(
            "a lane's worker process stopped before it could start its work. In a script, put the code that "
            "uses lanes under `if __name__ == \"__main__\":` (worker processes import the script), or use "
            "lanes=1"
        ) from exc
    return results


def task_threads(model: nn.Module, config: Any, backend: str, threads: int | None) -> int:
    """How many tasks ``mk.meta_train`` computes side by side with this ``TrainConfig`` (1: one at a time; see its
    ``threads``)."""
    import torch

    from mamlkit.modes import draws_random_numbers

    threads = chosen_threads(threads)
    shared_state = (
        backend != "higher"  # torch.func's copy sets the model's own modes during each call
        or config.running_stats == "write_back"  # each task starts from the statistics the last one wrote
        or draws_random_numbers(model)  # the tasks would share torch's one generator
        or next(model.parameters()).device.type != "cpu"
        or not torch.is_grad_enabled() or torch.is_inference_mode_enabled()  # thread-local: workers would not see it
        or torch.is_autocast_enabled() or torch.is_autocast_enabled("cpu")
    )
    return 1 if shared_state else min(threads, config.meta_batch)


@contextmanager
def task_pool(threads: int) -> Iterator[ThreadPoolExecutor | None]:
    """``thread_pool(threads)``, or None for one thread: the work is done in this thread as it is."""
    if threads == 1:
        yield None
        return
    with thread_pool(threads) as pool:
        yield pool
