"""Meta-test: accuracy over many tasks with a 95% confidence interval, comparisons and tables.

The interval is the one reported by Finn et al. 2017: ``1.96 * std / sqrt(N)`` over the per-task
accuracies of N tasks (``std`` is numpy's population standard deviation, as in the original code).
It shrinks as ``1 / sqrt(N)``: four times the tasks halve it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import as_completed
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mamlkit.adapt import MetaTrained, accuracy, adapt_and_predict_many, can_replay, task_loss
from mamlkit.backends import check_backend
from mamlkit.errors import ConfigError
from mamlkit.modes import StatsSnapshot, draws_random_numbers, preserved_bn_stats, snapshot_bn_stats
from mamlkit.modes import dropout_off as without_dropout
from mamlkit.placements import Placement, get_placement, prepare_stats
from mamlkit.plumbing import checks
from mamlkit.plumbing.lanes import chosen_threads, run_in_lanes, thread_pool
from mamlkit.progress import progress_counter
from mamlkit.rates import InnerRates
from mamlkit.tasks import TaskSampler

Z_95 = 1.96


def confidence_interval(values: Iterable[float], z: float = Z_95) -> tuple[float, float]:
    """Mean and half-width ``z * std / sqrt(N)`` of the values."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values: a confidence interval needs at least one task")
    return float(arr.mean()), float(z * arr.std() / math.sqrt(arr.size))


@dataclass
class EvalResult:
    """Per-task results of one placement on one model.

    Attributes:
        name: the placement (or any label).
        values: one value per task: accuracy in [0, 1] for classification, MSE for regression.
        metric: ``"accuracy"`` or ``"mse"``.
        seconds: wall time of the evaluation.
        task_indices: the sampler index of each task (for paired comparisons).
    """

    name: str
    values: np.ndarray
    metric: str = "accuracy"
    seconds: float = 0.0
    task_indices: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def ci95(self) -> float:
        """Half-width of the 95% interval."""
        return confidence_interval(self.values)[1]

    @property
    def scale(self) -> float:
        return 100.0 if self.metric == "accuracy" else 1.0

    def formatted(self) -> str:
        """E.g. ``"87.0 ± 1.1"`` (percent for accuracy)."""
        digits = 1 if self.metric == "accuracy" else 3
        return f"{self.mean * self.scale:.{digits}f} ± {self.ci95 * self.scale:.{digits}f}"

    def __str__(self) -> str:
        unit = "%" if self.metric == "accuracy" else " MSE"
        return f"{self.name}: {self.formatted()}{unit} over {self.n} tasks"

    def __repr__(self) -> str:
        return f"EvalResult({self})"


@dataclass
class PairedDifference:
    """Difference ``a - b`` measured on the same tasks, with its 95% interval."""

    a: str
    b: str
    mean: float
    ci95: float
    n: int
    a_wins: int
    b_wins: int
    metric: str = "accuracy"

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return abs(self.mean) > self.ci95

    def __str__(self) -> str:
        if self.metric == "accuracy":
            diff = f"{100 * self.mean:+.1f} ± {100 * self.ci95:.1f} points"
        else:
            diff = f"{self.mean:+.3f} ± {self.ci95:.3f} {self.metric.upper()}"
        return (
            f"{self.a} - {self.b}: {diff} over {self.n} paired tasks "
            f"({self.a} higher on {self.a_wins}, {self.b} on {self.b_wins})"
        )


def paired_difference(a: EvalResult, b: EvalResult) -> PairedDifference:
    """Compare two placements task by task (they must have been run on the same tasks)."""
    if a.task_indices != b.task_indices:
        raise ValueError("a paired comparison needs both results measured on the same tasks (same sampler and count)")
    diff = a.values - b.values
    mean, half = confidence_interval(diff)
    if a.metric != b.metric:
        raise ValueError(f"cannot compare {a.metric} with {b.metric}")
    return PairedDifference(a.name, b.name, mean, half, int(diff.size), int((diff > 0).sum()), int((diff < 0).sum()),
                            a.metric)


def _run_tasks(model, sampler, groups, indices, inner_steps, inner_lr, collected_stats, backend, lanes, threads,
               moved):
    """The tasks of ``indices``, in this process (one task at a time, or side by side in threads) or shared among
    lanes; one (values, seconds) part per piece."""
    n_tasks = len(indices)
    on_cpu = next(model.parameters()).device.type == "cpu"
    ways = lanes if lanes > 1 else threads
    # about ten pieces per lane or thread, so that the bar moves; each piece is a run of consecutive tasks
    size = max(1, math.ceil(n_tasks / (10 * ways)))
    pieces = [indices[i : i + size] for i in range(0, n_tasks, size)]
    if lanes > 1 and n_tasks > 1 and on_cpu:
        return run_in_lanes(_lane_setup, (model, sampler, groups, inner_steps, inner_lr, collected_stats, backend),
                            _lane_work, pieces, lanes, on_done=lambda i: moved(len(pieces[i])))
    if (threads > 1 and n_tasks > 1 and on_cpu and not draws_random_numbers(model)
            and not torch.is_autocast_enabled("cpu")):  # autocast is per thread: the workers would not see it
        state = torch.random.get_rng_state()
        parts = _run_in_threads(model, sampler, groups, pieces, inner_steps, inner_lr, collected_stats, backend,
                                threads, moved)
        if torch.equal(state, torch.random.get_rng_state()):
            return parts
        # A layer drew random numbers from torch's one generator, shared by the threads: again, one at a time.
        torch.random.set_rng_state(state)
    return [_test_tasks(model, sampler, groups, indices, inner_steps, inner_lr, collected_stats, backend,
                        lambda: moved(1))]


def _run_in_threads(model, sampler, groups, pieces, inner_steps, inner_lr, collected_stats, backend, threads, moved):
    """The pieces side by side in ``threads`` threads of this process, each on a private copy of the model and
    one torch thread, so each task computes exactly what it computes alone at one thread. Nothing may draw
    random numbers (the tasks would share torch's generator): the caller checks ``draws_random_numbers``."""
    parts: list = [None] * len(pieces)
    with thread_pool(threads) as pool:
        futures = {pool.submit(_test_tasks, copy.deepcopy(model), sampler, groups, piece, inner_steps, inner_lr,
                               collected_stats, backend, None, False): i for i, piece in enumerate(pieces)}
        for future in as_completed(futures):
            i = futures[future]
            parts[i] = future.result()
            moved(len(pieces[i]))
    return parts


def _checked_inputs(model, sampler, placements, n_tasks, inner_steps, inner_lr, collected_stats, start, backend):
    """``meta_test``'s inputs checked, before any work: the model (from a ``MetaTrained``, with its collected
    statistics and inner rates), the placements as a list, and whether one was asked for alone."""
    check_backend(backend)
    if isinstance(model, MetaTrained):
        if collected_stats is None:
            collected_stats = model.collected_stats
        if model.inner_rates is not None:  # learned rates, or ANIL's head only: they replace inner_lr
            inner_lr = model.inner_rates
        model = model.model
    checks.model_device(model)
    checks.task_source(sampler, "task", "a task source with task(i), such as mk.TaskSampler(data['test'], ...) or "
                       "mk.FixedTasks([...])")
    single = isinstance(placements, (str, Placement))
    if not single and not isinstance(placements, Iterable):
        raise ConfigError(f"placements must be a placement name, a list of them or mk.PLACEMENTS, got "
                          f"{type(placements).__name__}")
    chosen = [get_placement(p) for p in ([placements] if single else placements)]
    if not chosen:
        raise ConfigError("no placements given")
    checks.whole_number("n_tasks", n_tasks, 1)
    checks.whole_number("inner_steps", inner_steps, 0)
    checks.whole_number("start", start, 0)
    if not isinstance(inner_lr, InnerRates):
        checks.rate("inner_lr", inner_lr, "0.4")
    first = sampler.task(start)
    checks.task(first, f"task {start}")
    if not sampler_is_regression(sampler) and not first.support_y.dtype.is_floating_point:
        checks.head(model, first, int(first.support_y.max()) + 1, f"task {start}")
    if any(p.stats == "collected" for p in chosen) and collected_stats is None:
        raise ConfigError(
            "placements with collected running statistics need collected_stats "
            "(MetaTrained.collected_stats); pass the meta-trained result itself: mk.meta_test(trained, ...)"
        )
    return model, collected_stats, inner_lr, chosen, single


def meta_test(
    model: nn.Module | MetaTrained,
    sampler: TaskSampler,
    placements: str | Placement | Iterable[str | Placement] = "transductive",
    n_tasks: int = 600,
    inner_steps: int = 10,
    inner_lr: float | InnerRates = 0.4,
    *,
    collected_stats: StatsSnapshot | None = None,
    start: int = 0,
    progress: bool = True,
    on_task: Callable[[int, int], None] | None = None,
    backend: str = "higher",
    lanes: int | None = None,
    dropout_off: bool = False,
    threads: int | None = None,
) -> EvalResult | dict[str, EvalResult]:
    """Adapt to and evaluate tasks ``start .. start + n_tasks - 1`` of ``sampler`` under one or more placements.

    One placement (a name or a ``Placement``) gives one ``EvalResult``; several (a list, or
    ``mk.PLACEMENTS`` for all) give ``{name: EvalResult}``, measured on the same tasks. Placements with the
    same adapt mode and statistics source share one adaptation per task (their fast weights are
    identical), and so do the two train-mode statistics sources where the collected statistics can be
    replayed (``mamlkit.adapt.can_replay``); the results equal separate runs exactly. The model is left
    exactly as it was: parameters, running statistics and modes.

    Args:
        model: a meta-trained model, or a ``MetaTrained`` (its model, collected statistics and, when it has
            them, its inner rates: learned ones or ANIL's, which then replace ``inner_lr``).
        sampler: meta-test tasks.
        placements: what to measure (see ``mamlkit.placements.PLACEMENTS``).
        collected_stats: running statistics for placements with ``stats="collected"`` (taken from a
            ``MetaTrained`` when not given).
        progress: show a progress bar; ``on_task(done, total)`` is called after every task.
        backend: ``"higher"`` or ``"torch.func"`` (see ``mamlkit.backends.BACKENDS``): same results.
        lanes: worker processes with one torch thread each that share the tasks (``mamlkit.plumbing.lanes``; None or 1:
            this process). The results equal one process at one torch thread exactly, in any number of lanes.
        dropout_off: every Dropout layer drops nothing in every placement (``mamlkit.modes.dropout_off``), so a
            train-mode placement is "BatchNorm in train mode, Dropout off"; eval mode turns Dropout off anyway.
        threads: in this process (``lanes`` None or 1), how many tasks run side by side, each on one torch
            thread and a private copy of the model (None: ``$MAMLKIT_TASK_THREADS``, else 1: one task at a time
            at torch's thread count; the command line uses torch's thread count). With 2 or more the results equal
            one thread's bit for bit, and so the lanes'. A model whose Dropout draws random masks runs one task at
            a time.
    """
    model, collected_stats, inner_lr, chosen, single = _checked_inputs(
        model, sampler, placements, n_tasks, inner_steps, inner_lr, collected_stats, start, backend)
    lanes = 1 if lanes is None else checks.whole_number("lanes", lanes, 1)  # None: this process
    threads = chosen_threads(threads)
    groups: dict[tuple[str, str], list[Placement]] = {}
    for p in chosen:
        groups.setdefault((p.stats, p.adapt_mode), []).append(p)
    regression = sampler_is_regression(sampler)
    indices = tuple(range(start, start + n_tasks))
    desc = f"meta-test {chosen[0].name}" if len(chosen) == 1 else f"meta-test ({len(chosen)} placements)"
    bar = progress_counter(n_tasks, desc, progress)
    done = 0

    def moved(count: int) -> None:
        nonlocal done
        done += count
        bar.update(count)
        if on_task is not None:
            on_task(done, n_tasks)

    try:
        with without_dropout(model) if dropout_off else nullcontext():
            parts = _run_tasks(model, sampler, groups, indices, inner_steps, inner_lr, collected_stats, backend, lanes,
                               threads,
                               moved)
    finally:
        bar.close()
    values: dict[str, list[float]] = {p.name: [] for p in chosen}
    seconds = dict.fromkeys(values, 0.0)
    for part_values, part_seconds in parts:
        for name in values:
            values[name] += part_values[name]
            seconds[name] += part_seconds[name]
    metric = "mse" if regression else "accuracy"
    results = {
        p.name: EvalResult(p.name, np.asarray(values[p.name]), metric, seconds[p.name], indices) for p in chosen
    }
    return results[chosen[0].name] if single else results


def _test_tasks(
    model: nn.Module,
    sampler: TaskSampler,
    groups: dict[tuple[str, str], list[Placement]],
    indices: Sequence[int],
    inner_steps: int,
    inner_lr: float | InnerRates,
    collected_stats: StatsSnapshot | None,
    backend: str,
    after_task: Callable[[], None] | None = None,
    seeded: bool = True,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-task values and seconds of every placement in ``groups`` on tasks ``indices`` (the loop of ``meta_test``).

    Placements that share a statistics source and an adapt mode share one adaptation per task, and so do the
    two train-mode sources where their statistics can be replayed (``adapt.can_replay``). The model
    is left exactly as it was. Whatever draws random numbers (Dropout in train mode) draws them from a
    generator seeded by the task's index, so the results do not depend on the lanes or on what ran before;
    the caller's random state is left as it was. ``seeded=False`` skips that, for models that draw nothing
    (``draws_random_numbers``) run in threads, which must not touch torch's one global generator.
    """
    device = next(model.parameters()).device
    regression = sampler_is_regression(sampler)
    # Train mode never reads running statistics, so the train-mode adaptations from untouched and from collected
    # statistics reach the same weights: adapt once and replay the collected statistics (exact; adapt.can_replay).
    replayed = None
    if (("untouched", "train") in groups and ("collected", "train") in groups and backend == "higher"
            and can_replay(model)):
        replayed = groups[("collected", "train")]
    values: dict[str, list[float]] = {p.name: [] for group in groups.values() for p in group}
    seconds = dict.fromkeys(values, 0.0)
    with preserved_bn_stats(model):
        start = None
        if replayed is not None:
            prepare_stats(model, "collected", collected_stats)
            start = snapshot_bn_stats(model)
        for index in indices:
            task = sampler.task(index).to(device)
            checks.task(task, f"task {index}")
            for (stats, adapt_mode), group in groups.items():
                if replayed is not None and (stats, adapt_mode) == ("collected", "train"):
                    continue  # adapted with ("untouched", "train")
                merged = replayed is not None and (stats, adapt_mode) == ("untouched", "train")
                replay = (start, replayed) if merged else None
                prepare_stats(model, stats, collected_stats)  # before the copy is made: it copies the buffers
                begin = time.perf_counter()
                with (torch.random.fork_rng(devices=[device] if device.type == "cuda" else []) if seeded
                      else nullcontext()):
                    if seeded:
                        torch.manual_seed(index)
                    outputs = adapt_and_predict_many(model, task, group, inner_steps, inner_lr, backend=backend,
                                                     replay=replay)
                if replay is not None:
                    group = group + replayed
                share = (time.perf_counter() - begin) / len(group)
                for p in group:
                    out = outputs[p.name]
                    value = task_loss(out, task.query_y).item() if regression else accuracy(out, task.query_y)
                    values[p.name].append(value)
                    seconds[p.name] += share
            if after_task is not None:
                after_task()
    return values, seconds


def _lane_setup(model: nn.Module, *rest: object) -> tuple:
    """What each lane keeps: a private copy of the model, the sampler and the settings (see ``run_in_lanes``).

    The copy matters: tensors sent to a worker process arrive in memory shared with the other workers, and
    each task writes the statistics it needs into the model's buffers (``prepare_stats``); two lanes writing
    into one set of buffers would mix their tasks' statistics.
    """
    return (copy.deepcopy(model), *rest)


def _lane_work(state: tuple, indices: Sequence[int]) -> tuple[dict[str, list[float]], dict[str, float]]:
    model, sampler, groups, inner_steps, inner_lr, collected_stats, backend = state
    return _test_tasks(model, sampler, groups, indices, inner_steps, inner_lr, collected_stats, backend)


def sampler_is_regression(sampler: object) -> bool:
    """True for samplers of real-valued targets (sinusoids)."""
    return bool(getattr(sampler, "regression", False))


