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
saved model (see ``mamlkit.cli``).
"""

from __future__ import annotations

import copy
import html
import importlib.util
import sys
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from mamlkit import checks
from mamlkit.errors import ConfigError
from mamlkit.evaluate import EvalResult, PairedDifference, meta_test, paired_difference
from mamlkit.files import write_json, write_text
from mamlkit.modes import (
    StatsSnapshot,
    dropout_off,
    get_modes,
    preserved_bn_stats,
    restore_modes,
    snapshot_bn_stats,
)
from mamlkit.norms import is_batchnorm, uses_context
from mamlkit.placements import PLACEMENTS, PRESENTATIONS
from mamlkit.table import Table
from mamlkit.tasks import FixedTasks, Task

#: Statistics sources for placements that read running statistics, with the words the table uses.
STATS_SOURCES: dict[str, str] = {
    "held": "the model's own",
    "untouched": "0 and 1 (untouched)",
    "reestimated": "re-estimated on support sets",
}

#: Rows of the report: (row name, mamlkit placement, statistics source or None where none is read).
ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("transductive", "transductive", None),
    ("one_at_a_time", "one_at_a_time", None),
    ("one_class_at_a_time", "one_class_at_a_time", None),
    ("reptile_protocol", "reptile_protocol", None),
    ("eval_held", "eval_collected", "held"),
    ("eval_untouched", "eval_untouched", "untouched"),
    ("eval_reestimated", "eval_collected", "reestimated"),
    ("train_then_eval_held", "train_then_eval_collected", "held"),
    ("train_then_eval_untouched", "train_then_eval", "untouched"),
    ("train_then_eval_reestimated", "train_then_eval_collected", "reestimated"),
)

#: Why a meta-trained model's statistics can still be 0 and 1, in the verdict.
UNTOUCHED_WHY = "as a loop with higher's copies, or with TorchOpt's recover_state_dict, leaves them"

#: How near "close to train mode" is, in the verdict (notebook 03 asserts the same margin for its re-estimated row).
CLOSE = 0.05

#: The notebook that explains each finding of the verdict.
NOTEBOOKS = {
    "transduction": "notebook 04, one example at a time",
    "eval": "notebook 03, why eval fails",
    "contamination": "notebook 04, meta-test data in the running statistics",
    "checker": "notebook 06, check your code",
    "normalisation": "deep dive normalising_without_transduction",
}


@dataclass
class PlacementReport:
    """The placements of one model on one set of tasks; shows as a table and a verdict in a notebook.

    Attributes:
        results: one ``EvalResult`` per row name (see ``ROWS``), all on the same tasks.
        differences: each row's paired difference from ``transductive`` (train mode), on the same tasks.
        verdict: short findings in plain words, each naming the notebook that explains it.
        n_way: classes per task (chance is ``1 / n_way``).
        inner_steps, inner_lr: the adaptation used (the user's).
        seconds_per_task: wall time per task, all placements together.
        held_untouched: True when the model's own statistics are still 0 and 1.
        estimate_note: where the re-estimated statistics came from.
        skipped: rows that cannot run on this model, with the reason (e.g. BatchNorm1d refuses a batch of one
            example in train mode).
        context_norm: the model normalises with support-set statistics (MetaBN, TaskNorm-I): train mode is not
            transductive.
        partly_transductive_eval: some BatchNorm layers keep no running statistics, so eval mode still
            normalises those with the batch's statistics.
        momentum_one: every BatchNorm layer with running statistics has ``momentum=1`` (as higher's Omniglot
            example builds them): each train-mode pass replaces the running statistics with its batch's.
    """

    results: dict[str, EvalResult]
    differences: dict[str, PairedDifference]
    n_way: int
    inner_steps: int
    inner_lr: float
    seconds_per_task: float
    held_untouched: bool
    estimate_note: str
    verdict: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    context_norm: bool = False
    partly_transductive_eval: bool = False
    momentum_one: bool = False

    @property
    def n_tasks(self) -> int:
        return next(iter(self.results.values())).n

    def table(self) -> Table:
        """Rows: placements; columns: modes, statistics, presentation, accuracy ± 95% interval, paired difference."""
        columns = ["placement", "adapt/query", "running statistics", "query presented", "accuracy %",
                   "vs train mode (points)"]
        note = (f"{self.n_tasks} tasks, {self.n_way}-way (chance {100 / self.n_way:.1f}%); {self.inner_steps} inner "
                f"steps at lr {self.inner_lr:g}; mean ± 95% interval, differences paired on the same tasks")
        table = Table(columns, title="Placements on your model", note=note)
        for name, placement_name, source in ROWS:
            p = PLACEMENTS[placement_name]
            if name in self.skipped:
                table.add_row(name, f"{p.adapt_mode}/{p.query_mode}", STATS_SOURCES[source] if source else "not read",
                              PRESENTATIONS[p.presentation], "cannot run", "-")
            if name not in self.results:
                continue
            diff = self.differences.get(name)
            cell = "-" if diff is None else f"{100 * diff.mean:+.1f} ± {100 * diff.ci95:.1f}"
            table.add_row(name, f"{p.adapt_mode}/{p.query_mode}", STATS_SOURCES[source] if source else "not read",
                          PRESENTATIONS[p.presentation], self.results[name].formatted(), cell)
        return table

    def __str__(self) -> str:
        lines = [str(self.table()), "", "Verdict:"]
        lines += [f"- {line}" for line in self.verdict]
        lines += ["", f"Note: {self.estimate_note}."]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        """Everything measured, JSON-ready: per-task values, means, intervals, differences and the verdict."""
        return {
            "n_tasks": self.n_tasks, "n_way": self.n_way, "inner_steps": self.inner_steps, "inner_lr": self.inner_lr,
            "seconds_per_task": self.seconds_per_task, "held_untouched": self.held_untouched,
            "estimate_note": self.estimate_note,
            "results": {name: {"mean": r.mean, "ci95": r.ci95, "values": r.values.tolist()}
                        for name, r in self.results.items()},
            "vs_transductive": {name: {"mean": d.mean, "ci95": d.ci95} for name, d in self.differences.items()},
            "verdict": list(self.verdict),
            "skipped": dict(self.skipped),
        }

    def save_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` to ``path`` through a temporary file (never half-written)."""
        return write_json(path, self.to_dict())

    def save_markdown(self, path: str | Path) -> Path:
        """Write the table and the verdict as Markdown through a temporary file (never half-written)."""
        text = self.table().to_markdown() + "\n\n" + "\n".join(f"- {line}" for line in self.verdict) + "\n"
        return write_text(path, text)

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.verdict)
        return (self.table()._repr_html_() + f"<p><b>Verdict</b></p><ul>{items}</ul>"
                + f"<p><small>Note: {html.escape(self.estimate_note)}.</small></p>")


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
    report.verdict = _verdict(report, keeps_stats)
    return report


def _fmt(result: EvalResult) -> str:
    return f"{result.formatted()}%"


def _points(diff: PairedDifference) -> str:
    return f"{abs(100 * diff.mean):.1f} ± {100 * diff.ci95:.1f} points"


def _reestimated_line(r: dict[str, EvalResult], d: dict[str, PairedDifference]) -> str:
    """What the ``eval_reestimated`` row gave, read from this model's own numbers only."""
    re_diff = d["eval_reestimated"]
    gain = r["eval_reestimated"].mean - r["eval_held"].mean
    said = (f"Statistics re-estimated on support sets at your model's weights before adaptation give "
            f"{_fmt(r['eval_reestimated'])} in eval mode ({100 * gain:+.1f} points against the held ones; "
            f"{100 * re_diff.mean:+.1f} ± {100 * re_diff.ci95:.1f} against train mode).")
    if re_diff.significant and re_diff.mean < -CLOSE:
        return (f"{said} Frozen while the inner steps move the weights, they do not replace train mode here "
                f"({NOTEBOOKS['eval']}). To predict without the other query examples, re-estimate them on each "
                f"task's support set after adaptation (notebook 06, recipe 2) or use Reptile's protocol (the "
                f"reptile_protocol row).")
    if re_diff.significant and re_diff.mean > CLOSE:
        return f"{said} For your model they beat train mode."
    return (f"{said} For your model they come within {100 * CLOSE:.0f} points of train mode, or show no clear "
            f"difference.")


def _placement_lines(report: PlacementReport) -> list[str]:
    """The verdict's findings on which placement to use, and on query examples that arrive one at a time."""
    r, d = report.results, report.differences
    lines = []
    train = _fmt(r["transductive"])
    if report.context_norm:
        lines.append(f"Your model normalises with statistics of the support set (a context normalisation), so train "
                     f"mode at meta-test ({train}) does not depend on the other query examples "
                     f"({NOTEBOOKS['normalisation']}).")
    stand_alone = [n for n in r if n not in ("transductive", "one_class_at_a_time")
                   and not (report.partly_transductive_eval and "eval" in n)]
    better = [n for n in stand_alone if d[n].significant and d[n].mean > 0]
    matching = [n for n in stand_alone if not d[n].significant]
    if better:
        top = max(better, key=lambda n: r[n].mean)
        lines.append(f"Use {top}: {_fmt(r[top])}, {_points(d[top])} above train mode ({train}) on the same tasks, "
                     f"and no prediction depends on the other query examples ({NOTEBOOKS['transduction']}).")
    elif matching:
        top = max(matching, key=lambda n: r[n].mean)
        lines.append(f"Use train mode at meta-test ({train}), or {top} ({_fmt(r[top])}; {100 * d[top].mean:+.1f} ± "
                     f"{100 * d[top].ci95:.1f} points on the same tasks, no clear difference), where no prediction "
                     f"depends on the other query examples ({NOTEBOOKS['transduction']}).")
    elif stand_alone:
        best = max(stand_alone, key=lambda n: r[n].mean)
        where = "" if report.context_norm else " Each prediction then depends on the other query examples."
        lines.append(f"Use train mode at meta-test: {train}.{where} If predictions must stand alone, the best here is "
                     f"{best} ({_fmt(r[best])}, {_points(d[best])} lower; {NOTEBOOKS['transduction']}, "
                     f"{NOTEBOOKS['normalisation']}).")
    one = d.get("one_at_a_time")
    if one is None:
        lines.append(f"Your model cannot predict one example at a time in train mode at all "
                     f"({report.skipped['one_at_a_time']}). Normalising each example together with the support set "
                     f"(Reptile's protocol) gives {_fmt(r['reptile_protocol'])} ({NOTEBOOKS['transduction']}).")
    elif one.significant and one.mean < 0:
        lines.append(f"Query examples that arrive one at a time cost {_points(one)} in train mode "
                     f"({_fmt(r['one_at_a_time'])}): the batch statistics of one example are not the task's. "
                     f"Normalising each example together with the support set (Reptile's protocol) gives "
                     f"{_fmt(r['reptile_protocol'])} ({NOTEBOOKS['transduction']}).")
    else:
        lines.append(f"Query examples that arrive one at a time cost nothing measurable here "
                     f"({_fmt(r['one_at_a_time'])}, {100 * one.mean:+.1f} ± {100 * one.ci95:.1f} points; "
                     f"{NOTEBOOKS['transduction']}).")
    return lines


def _statistics_lines(report: PlacementReport, keeps_stats: bool) -> list[str]:
    """The verdict's findings on the running statistics the model holds (none where it keeps none)."""
    r, d, chance = report.results, report.differences, 1 / report.n_way
    lines = []
    if not keeps_stats:
        lines.append("Your BatchNorm layers keep no running statistics, so eval mode normalises with batch "
                     "statistics like train mode: no placement here reads running statistics.")
    else:
        if report.partly_transductive_eval:
            lines.append("Some of your BatchNorm layers keep no running statistics: in eval mode they still normalise "
                         "with the batch's statistics, so the eval rows are partly transductive too.")
        held = d["eval_held"]
        near = ", near chance," if r["eval_held"].mean <= chance + 0.10 else ","
        below = held.significant and held.mean < 0
        if report.held_untouched and below:
            lines.append(f"The running statistics your model holds are still 0 and 1 ({UNTOUCHED_WHY}): eval mode "
                         f"with them gives {_fmt(r['eval_held'])}{near} {_points(held)} below "
                         f"train mode. Statistics of 0 and 1 do not fit your model's features; on the Conv4, no inner "
                         f"step size tried brought eval mode with them near train mode ({NOTEBOOKS['eval']}).")
        elif report.held_untouched:
            lines.append(f"The running statistics your model holds are still 0 and 1 ({UNTOUCHED_WHY}), yet eval "
                         f"mode with them gives {_fmt(r['eval_held'])}, "
                         f"{100 * held.mean:+.1f} ± {100 * held.ci95:.1f} points against train mode on the same tasks: "
                         f"your features happen to be near mean 0 and variance 1 (on the Conv4 they are not; "
                         f"{NOTEBOOKS['eval']}).")
        elif below:
            lines.append(f"The running statistics your model holds were written by training (shared buffers, a "
                         f"write-back or a plain training loop). With eval mode at this step size they are not usable: "
                         f"{_fmt(r['eval_held'])}{near} {_points(held)} below train mode. In MAML, statistics frozen "
                         f"while the inner steps move the weights go stale ({NOTEBOOKS['eval']}).")
        else:
            lines.append(f"The running statistics your model holds are usable with eval mode: {_fmt(r['eval_held'])}, "
                         f"{100 * held.mean:+.1f} ± {100 * held.ci95:.1f} points against train mode on the same tasks.")
        lines.append(_reestimated_line(r, d))
        if report.momentum_one and report.inner_steps > 0 and any(n.startswith("train_then_eval") for n in r):
            same = [n for n in ("train_then_eval_held", "train_then_eval_untouched", "train_then_eval_reestimated")
                    if n in r]
            lines.append(f"Your BatchNorm layers have momentum 1 (as higher's Omniglot example builds them): each "
                         f"train-mode pass replaces the running statistics with its batch's, so after the support "
                         f"steps they are the last support batch's, whatever the model held before. That is why "
                         f"{', '.join(same)} are equal here ({_fmt(r[same[0]])}).")
        if not report.held_untouched:
            lines.append("Your model's statistics were written by training: if they were also written during "
                         f"meta-test, a checkpoint carries test data ({NOTEBOOKS['contamination']}).")
    return lines


def _verdict(report: PlacementReport, keeps_stats: bool) -> list[str]:
    """Findings in plain words, each with the notebook that explains it."""
    r, chance = report.results, 1 / report.n_way
    lines = _placement_lines(report) + _statistics_lines(report, keeps_stats)
    flat = [n for n, res in r.items()
            if res.n >= 5 and res.values.min() == res.values.max() and abs(res.mean - chance) < 1e-9]
    if flat:
        lines.append(f"{', '.join(flat)} scored exactly chance on every task, as a copy that predicts one class for "
                     f"every query does; a copy whose adapted weights are not finite numbers does that, so such a row "
                     f"may measure a diverged adaptation rather than a poor fit (the deep dive your_own_model shows "
                     f"how to check).")
    lines.append(f"To check the calls in your own loop, run it under mk.check_maml ({NOTEBOOKS['checker']}).")
    return lines


@dataclass
class Entry:
    """What an entry file gives ``python -m mamlkit report``: the model (checkpoint loaded) and its episodes."""

    model: nn.Module
    episodes: object
    inner_steps: int | None
    inner_lr: float | None
    estimate_episodes: object | None


def load_entry(path: str | Path, checkpoint: str | Path | None = None) -> Entry:
    """Run an entry file and collect what it defines (see ``python -m mamlkit report --help``), with a clear
    error for each thing that does not fit: no file, a file that fails, a missing function, a checkpoint that
    does not exist, cannot be read or does not load into the network."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no entry file {path}: write a Python file that defines build_model() and episodes() "
                          "(python -m mamlkit report --help shows the form)")
    name = f"mamlkit_entry_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)        # the entry file's neighbours stay importable for the rest of the run
    sys.modules[name] = module            # (its functions and its episodes may import them later)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"running the entry file {path} failed: {type(exc).__name__}: {exc}") from exc
    for name in ("build_model", "episodes"):
        if not callable(getattr(module, name, None)):
            raise ConfigError(f"{path} defines no {name}() function; the entry file needs build_model() and episodes()")
    try:
        model = module.build_model()
    except Exception as exc:
        raise ConfigError(f"{path}: build_model() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{path}: build_model() returned a {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is None and getattr(module, "CHECKPOINT", None):
        checkpoint = path.parent / Path(module.CHECKPOINT).expanduser()
    if checkpoint is not None:
        _load_checkpoint(model, Path(checkpoint))
    try:
        episodes = module.episodes()
        estimate = module.estimate_episodes() if callable(getattr(module, "estimate_episodes", None)) else None
    except Exception as exc:
        raise ConfigError(f"{path}: episodes() failed: {type(exc).__name__}: {exc}") from exc
    return Entry(model, episodes, getattr(module, "INNER_STEPS", None), getattr(module, "INNER_LR", None), estimate)


def _load_checkpoint(model: nn.Module, path: Path) -> None:
    """Load a state dict (or a dict holding one under ``state_dict``, ``model_state_dict`` or ``model``) into
    ``model``."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint {path}: save one with torch.save(model.state_dict(), path), or fix the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if first.startswith("Weights only load failed") and zipfile.is_zipfile(path):
            raise ConfigError(f"the checkpoint {path} holds more than tensors (a whole model saved with "
                              "torch.save(model)?): save model.state_dict() instead; it is loaded with "
                              "torch.load(weights_only=True), which runs no code from the file") from exc
        raise ConfigError(f"cannot read the checkpoint {path} (corrupt, truncated, or not a file saved with "
                          f"torch.save: {first})") from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} holds no state dict (a dict of tensors); save model.state_dict(), not the model")
    result = _try_load(model, state)
    if result:
        raise ConfigError(f"the checkpoint {path} does not fit build_model()'s network: {result}. "
                          "Build the network exactly as it was when the checkpoint was saved.")


def _try_load(model: nn.Module, state: dict) -> str:
    """Load ``state`` strictly; return what did not fit in one line ('' when it loaded)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the network"
              for k in own if k in state and state[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({shapes[0]})")
    if parts:
        return "; ".join(parts)
    model.load_state_dict(state)
    return ""
