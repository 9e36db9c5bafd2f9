"""Your model, your tasks: every placement that applies, measured on a network mamlkit did not build.

``placement_report(model, tasks, inner_steps=..., inner_lr=...)`` meta-tests a user's meta-trained
classifier under the placements of ``mamlkit.placements`` on the same tasks, with three sources of
running statistics for the placements that read them:

- ``held``: the statistics the model holds now (what a checkpoint trained with shared buffers, with
  learn2learn's clones or with a written-back loop carries: measured per library in docs/libraries.md);
- ``untouched``: mean 0 and variance 1, what ``higher`` leaves in a model it meta-trains;
- ``reestimated``: the average batch statistics of support sets at the model's weights (no query set
  is looked at), a cheap way to give eval mode statistics that fit these weights.

It reports each accuracy with its 95% interval, the paired difference from train mode on the same
tasks, and a verdict in plain words with the notebook that explains each finding. The model is left
bit-identical: parameters, buffers and modes. ``python -m mamlkit report --entry FILE`` runs it on a
saved model (see ``mamlkit.cli``; the entry file is read by ``mamlkit.your_code.entry``), and
``mamlkit.your_code.report`` holds the report and words its verdict.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping
from itertools import islice

import torch
from torch import nn

from mamlkit.errors import ConfigError
from mamlkit.evaluate import EvalResult, meta_test, paired_difference
from mamlkit.modes import (
    StatsSnapshot,
    dropout_off,
    get_modes,
    preserved_bn_stats,
    restore_modes,
    snapshot_bn_stats,
)
from mamlkit.norms import is_batchnorm, uses_context
from mamlkit.plumbing import checks
from mamlkit.tasks import FixedTasks, Task
from mamlkit.your_code.report import ROWS, PlacementReport, verdict


def as_tasks(tasks: object, n_tasks: int | None = None) -> FixedTasks:
    """The first ``n_tasks`` tasks of any task source, checked, as a ``FixedTasks``.

    Accepted: a mamlkit sampler (anything with ``task(i)``: ``n_tasks`` is then required), a list of tasks, or
    any iterable of episodes (a ``DataLoader`` included). An episode is a ``Task``, a tuple
    ``(support_x, support_y, query_x, query_y)``, or a dict with those four keys; a leading batch dimension of
    size 1 (a ``DataLoader`` with ``batch_size=1``) is removed.
    """
    if n_tasks is not None and (isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1):
        raise ConfigError(f"n_tasks must be a whole number of at least 1, got {n_tasks!r}")
    if hasattr(tasks, "task") and callable(tasks.task):
        if n_tasks is None:
            raise ConfigError("a sampler has no end: say how many of its tasks to measure (n_tasks=100, say)")
        episodes: Iterable = (tasks.task(i) for i in range(n_tasks))
    elif isinstance(tasks, (Task, torch.Tensor, str, bytes)) or not isinstance(tasks, Iterable):
        raise ConfigError(
            f"tasks must be a mamlkit sampler, a list of tasks or an iterable of episodes, got {type(tasks).__name__}; "
            "an episode is a Task, a tuple (support_x, support_y, query_x, query_y) or a dict with those keys"
        )
    else:
        episodes = tasks if n_tasks is None else islice(tasks, n_tasks)
    converted = [_as_task(episode, i) for i, episode in enumerate(episodes)]
    if not converted:
        raise ConfigError("the task source gave no episodes")
    n_way = converted[0].n_way
    shape = tuple(converted[0].support_x.shape[1:])
    for task in converted[1:]:
        if task.n_way != n_way:
            raise ConfigError(f"episode {task.index} has {task.n_way} classes and episode 0 has {n_way}: a report "
                              "compares placements on tasks of one shape; give episodes with one number of classes")
        if tuple(task.support_x.shape[1:]) != shape:
            raise ConfigError(f"episode {task.index} has inputs of shape {tuple(task.support_x.shape[1:])} and episode "
                              f"0 of shape {shape}: give episodes whose inputs all have one shape")
    return FixedTasks(converted, "your tasks")


def _as_task(episode: object, index: int) -> Task:
    """One episode as a checked ``Task``."""
    if isinstance(episode, Task):
        parts = [episode.support_x, episode.support_y, episode.query_x, episode.query_y]
    elif isinstance(episode, Mapping):
        keys = ("support_x", "support_y", "query_x", "query_y")
        missing = [k for k in keys if k not in episode]
        if missing:
            raise ConfigError(f"episode {index} is a dict without {', '.join(missing)}; it needs the keys "
                              f"{', '.join(keys)}")
        parts = [episode[k] for k in keys]
    elif isinstance(episode, (tuple, list)) and len(episode) == 4:
        parts = list(episode)
    else:
        raise ConfigError(f"episode {index} is a {type(episode).__name__}; an episode is a Task, a tuple "
                          "(support_x, support_y, query_x, query_y) or a dict with those keys")
    if not all(isinstance(t, torch.Tensor) for t in parts):
        raise ConfigError(f"episode {index}: support_x, support_y, query_x and query_y must be tensors")
    support_x, support_y, query_x, query_y = parts
    if support_y.dim() == 2 and support_y.shape[0] == 1 and query_y.dim() == 2 and query_y.shape[0] == 1:
        support_x, support_y, query_x, query_y = (t.squeeze(0) for t in parts)  # a DataLoader's batch of one
    if support_y.dim() != 1 or query_y.dim() != 1:
        raise ConfigError(f"episode {index}: labels must be one-dimensional (one class index per example), got "
                          f"support_y {tuple(support_y.shape)} and query_y {tuple(query_y.shape)}")
    if support_y.dtype.is_floating_point or query_y.dtype.is_floating_point:
        raise ConfigError(f"episode {index}: labels must be class indices (integers); the report is for classifiers")
    checks.task(Task(support_x, support_y, query_x, query_y), f"episode {index}", None, ConfigError)
    if len(support_x) != len(support_y) or len(query_x) != len(query_y):
        raise ConfigError(f"episode {index}: {len(support_x)} support inputs for {len(support_y)} labels and "
                          f"{len(query_x)} query inputs for {len(query_y)} labels; they must match")
    if support_x.shape[1:] != query_x.shape[1:]:
        raise ConfigError(f"episode {index}: support inputs {tuple(support_x.shape[1:])} and query inputs "
                          f"{tuple(query_x.shape[1:])} differ in shape")
    n_way = int(support_y.max()) + 1
    if int(support_y.min()) < 0 or sorted(support_y.unique().tolist()) != list(range(n_way)):
        raise ConfigError(f"episode {index}: support labels must be 0 .. N-1 with every class present, got "
                          f"{sorted(support_y.unique().tolist())}")
    if int(query_y.min()) < 0 or int(query_y.max()) >= n_way:
        raise ConfigError(f"episode {index}: query labels must be among the support's classes 0 .. {n_way - 1}")
    return Task(support_x, support_y.long(), query_x, query_y.long(), index=index)


def _check_model(model: nn.Module, tasks: FixedTasks) -> tuple[int, bool, dict[str, str]]:
    """The number of classes, whether any normalisation layer keeps running statistics, and the presentations that
    cannot run in train mode (with the reason); clear errors for a model that does not fit."""
    checks.model_device(model)
    if not any(is_batchnorm(m) for m in model.modules()) and not uses_context(model):
        raise ConfigError(
            "the model has no BatchNorm layer, so .train() and .eval() do not change its normalisation: the "
            "placements would all give the same numbers. Use mk.check_maml for the rest of your loop (notebook 06)."
        )
    task = tasks.task(0)
    n_way = task.n_way
    device = next(model.parameters()).device
    with torch.no_grad(), preserved_bn_stats(model):
        was = get_modes(model)
        try:
            model.eval()
            out = model(torch.cat([task.support_x, task.query_x]).to(device), n_context=len(task.support_x)) \
                if uses_context(model) else model(task.query_x.to(device))
        except Exception as exc:
            raise ConfigError(f"the model could not run on the first episode's query set "
                              f"{tuple(task.query_x.shape)}: {type(exc).__name__}: {exc}") from exc
        finally:
            restore_modes(model, was)
    if uses_context(model):
        out = out[len(task.support_x):]
    expected = (len(task.query_x), n_way)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"placement_report needs class logits of shape [query examples, classes] = {list(expected)} "
                          f"for this {n_way}-way episode; the model returned {shape}. Give the model a head with "
                          f"{n_way} outputs, or use episodes with as many classes as its head has outputs.")
    for name, m in model.named_modules():
        if is_batchnorm(m) and not m.track_running_stats and m.running_mean is not None:
            raise ConfigError(
                f"BatchNorm layer '{name}' has track_running_stats=False but still holds its running buffers, so eval "
                "mode reads them (deep dive claims_checked): set its running_mean and running_var to None for batch "
                "statistics, or "
                "track_running_stats back to True, then run the report"
            )
    keeps_stats = any(is_batchnorm(m) and m.running_mean is not None for m in model.modules())
    skipped = {}
    smallest_class = min(int((t.query_y == c).sum()) for t in (tasks.task(i) for i in range(len(tasks)))
                         for c in t.query_y.unique())
    for name, size in (("one_at_a_time", 1), ("one_class_at_a_time", smallest_class)):
        reason = _train_mode_refuses(model, task.query_x[:size].to(device))
        if reason:
            skipped[name] = reason
    return n_way, keeps_stats, skipped


def _some_layers_without_stats(model: nn.Module) -> bool:
    """True when some BatchNorm layers keep running statistics and others do not (eval mode is then partly
    transductive: the layers without them normalise with the batch's statistics)."""
    kinds = {m.running_mean is not None for m in model.modules() if is_batchnorm(m)}
    return kinds == {True, False}


def _momentum_one(model: nn.Module) -> bool:
    """True when every BatchNorm layer with running statistics has momentum 1: a train-mode pass then replaces
    the running statistics with its batch's (``momentum=None``, a running average, is not 1)."""
    layers = [m for m in model.modules() if is_batchnorm(m) and m.running_mean is not None]
    return bool(layers) and all(getattr(m, "momentum", None) == 1 for m in layers)


def _stats_at_initial_values(model: nn.Module) -> bool:
    """True when every running statistic still holds its initial value (mean 0, variance 1)."""
    layers = [m for m in model.modules() if is_batchnorm(m) and m.running_mean is not None]
    return bool(layers) and all(bool((m.running_mean == 0).all()) and bool((m.running_var == 1).all())
                                for m in layers)


def _train_mode_refuses(model: nn.Module, x: torch.Tensor) -> str:
    """Why a train-mode forward pass of ``x`` alone fails ('' when it runs): BatchNorm1d on one example raises."""
    if uses_context(model):
        return ""
    was = get_modes(model)
    with torch.no_grad(), preserved_bn_stats(model):
        try:
            model.train()
            model(x)
        except ValueError as exc:
            return f"train mode raises on a batch of {len(x)}: {str(exc).splitlines()[0]}"
        finally:
            restore_modes(model, was)
    return ""


def reestimated_stats(model: nn.Module, tasks: FixedTasks, n_tasks: int | None = None) -> StatsSnapshot:
    """Running statistics re-estimated at the model's weights: the average of the batch statistics of the
    support sets of ``tasks`` (the first ``n_tasks``), in train mode, with no query set seen.

    The model is not changed: the estimate is made on a copy whose BatchNorm layers average all batches
    equally (``momentum=None``).
    """
    probe = copy.deepcopy(model)
    for m in probe.modules():
        if is_batchnorm(m) and m.track_running_stats and m.running_mean is not None:
            m.reset_running_stats()
            m.momentum = None
    probe.train()
    device = next(probe.parameters()).device
    count = len(tasks) if n_tasks is None else min(n_tasks, len(tasks))
    with torch.no_grad():
        for i in range(count):
            support = tasks.task(i).support_x.to(device)
            if uses_context(probe):
                probe(support, n_context=len(support))
            else:
                probe(support)
    return snapshot_bn_stats(probe)


def placement_report(
    model: nn.Module,
    tasks: object,
    *,
    inner_steps: int,
    inner_lr: float,
    n_tasks: int | None = 100,
    estimate_on: object | None = None,
    backend: str = "higher",
    progress: bool = True,
) -> PlacementReport:
    """Meta-test your own meta-trained classifier under every placement that applies, on the same tasks.

    Args:
        model: any ``nn.Module`` with BatchNorm layers (1d, 2d, 3d, or mamlkit's normalisations) that maps a
            batch of inputs to class logits ``[batch, n_way]``.
        tasks: a mamlkit sampler, a list of tasks, or any iterable of episodes (see ``as_tasks``).
        inner_steps, inner_lr: your adaptation: plain SGD steps on the support set's cross-entropy.
        n_tasks: how many tasks to measure (None: every episode of a finite source).
        estimate_on: a task source whose support sets re-estimate the running statistics (e.g. your
            meta-training tasks); None uses the support sets of the measured tasks (never their query sets).
        backend: ``"higher"`` or ``"torch.func"``.
        progress: show a progress bar.

    Returns:
        A ``PlacementReport``: the table, the paired differences from train mode and a verdict. The model is
        left bit-identical (parameters, buffers and modes).
    """
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
        raise ConfigError(f"inner_steps must be a whole number of at least 0, got {inner_steps!r}")
    checks.rate("inner_lr", inner_lr, "0.4")
    checks.model_device(model)
    measured = as_tasks(tasks, n_tasks)
    n_way, keeps_stats, skipped = _check_model(model, measured)
    held = snapshot_bn_stats(model)
    held_untouched = keeps_stats and _stats_at_initial_values(model)
    count = len(measured)
    if estimate_on is None:
        estimate_tasks, estimate_note = measured, "statistics re-estimated on the support sets of the measured tasks"
    else:
        try:
            estimate_tasks = as_tasks(estimate_on, n_tasks=count)
        except ConfigError as exc:
            raise ConfigError(f"estimate_on: {exc}") from exc
        estimate_note = f"statistics re-estimated on the support sets of {len(estimate_tasks)} given tasks"
    notes = [estimate_note]
    begin = time.perf_counter()
    results: dict[str, EvalResult] = {}
    with dropout_off(model) as dropout:
        if dropout:
            notes.append(f"Dropout (p = {', '.join(f'{p:g}' for p in dropout)}) was off throughout, as a prediction "
                         "wants it (deep dive does_it_hold)")
        runs: list[tuple[str | None, StatsSnapshot | None]] = [(None, held)]
        if keeps_stats:
            runs += [("held", held), ("untouched", None), ("reestimated", reestimated_stats(model, estimate_tasks))]
        for source, stats in runs:
            rows = [(name, placement) for name, placement, s in ROWS if s == source and name not in skipped]
            measured_now = meta_test(model, measured, [placement for _, placement in rows], n_tasks=count,
                                     inner_steps=inner_steps, inner_lr=inner_lr, collected_stats=stats,
                                     backend=backend, progress=progress)
            for name, placement in rows:
                result = measured_now[placement]
                results[name] = EvalResult(name, result.values, result.metric, result.seconds, result.task_indices)
    seconds = (time.perf_counter() - begin) / count
    base = results["transductive"]
    differences = {name: paired_difference(r, base) for name, r in results.items() if name != "transductive"}
    report = PlacementReport(results, differences, n_way, inner_steps, float(inner_lr), seconds, held_untouched,
                             "; ".join(notes), skipped=skipped, context_norm=uses_context(model),
                             partly_transductive_eval=_some_layers_without_stats(model),
                             momentum_one=_momentum_one(model))
    report.verdict = verdict(report, keeps_stats)
    return report
