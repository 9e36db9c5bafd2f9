"""Two explorers for the lessons and the classroom lab (ipywidgets 8), each recomputed whenever a control changes:

- ``BatchNormExplorer``: for one BatchNorm layer, the per-channel batch statistics of several tasks
  against the running statistics eval mode would use (collected and untouched).
- ``ConfidenceExplorer``: how the 95% interval ``1.96 * std / sqrt(N)`` depends on the number of
  tasks N, checked against resampled means.

Each exposes its controls as attributes, an ``update()`` that accepts the same values as keyword arguments, its
last outcome (``results``) and a status line (``status``) that shows what went wrong in words (``error`` holds the
same text) instead of a traceback. The placement playground is in ``mamlkit.lessons.widgets``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np

from mamlkit.adapt import MetaTrained
from mamlkit.errors import ConfigError, check_choice
from mamlkit.evaluate import Z_95, EvalResult, confidence_interval
from mamlkit.lessons.conv4_stats import running_vs_batch
from mamlkit.lessons.plots import bn_stats_mismatch, interval_figure
from mamlkit.lessons.widget_parts import (
    Shown,
    check_count,
    prose_html,
    show_figure,
    status_html,
    wrapping,
)
from mamlkit.norms import is_batchnorm
from mamlkit.tasks import TaskSampler


def interval_coverage(values: np.ndarray, n: int, resamples: int = 1000, seed: int = 0) -> dict:
    """How often the means of ``n`` tasks resampled from ``values`` (with replacement) fall inside the 95%
    interval ``1.96 * std / sqrt(n)`` around the mean of all of them (the bootstrap check of the interval).

    Returns a dict: ``n``, ``mean``, ``std``, ``half_width``, ``coverage`` (fraction inside), ``means`` (the
    resampled means), ``resamples`` and ``measured`` (how many values there were). The same seed draws the
    same means.
    """
    values = np.asarray(values, dtype=np.float64)
    mean, _ = confidence_interval(values)
    std = float(values.std())
    half = Z_95 * std / math.sqrt(n)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, n), replace=True).mean(axis=1)
    coverage = float(np.mean(np.abs(means - mean) <= half)) if half > 0 else 1.0
    return {"n": n, "mean": mean, "std": std, "half_width": half, "coverage": coverage, "means": means,
            "resamples": resamples, "measured": int(values.size)}


class Explorer(Shown):
    """A widget that recomputes whenever one of its controls changes (each subclass defines ``update()``,
    with its controls as arguments), except while it sets them itself (``_updating``)."""

    _updating: bool = False

    def _on_change(self, _change: object) -> None:
        if not self._updating:
            self.update()

    def _quiet_set(self, **values: Any) -> None:
        """Set the controls given (None: leave it) without a second update from their observers."""
        self._updating = True
        try:
            for key, value in values.items():
                if value is not None:
                    getattr(self, key).value = value
        finally:
            self._updating = False

    def _show_error(self, exc: Exception) -> None:
        """Keep the message in ``error`` and show it in red in the status line; returns None for ``update``."""
        self.error = str(exc)
        self.status.value = status_html(self.error, "error")

    def _show_results(self) -> dict[str, Any]:
        """Clear the status line, redraw, and return ``results`` for ``update``."""
        self.status.value = ""
        self._draw()
        return self.results


class BatchNormExplorer(Explorer):
    """Per-task batch statistics of one BatchNorm layer against the running statistics.

    Train mode normalises each task with its own batch statistics (the coloured lines); eval mode
    normalises every task with one fixed set of running statistics (the black lines): collected
    over meta-training, or untouched (what ``higher`` leaves in the model: 0 and 1). The farther a
    task's lines lie from the black ones, the more eval mode distorts that task's features.

    Args:
        trained: a meta-trained model (its ``collected_stats`` give the collected line).
        sampler: the tasks to look at (e.g. ``exp.test_sampler(data)``, held-out alphabets).
        n_tasks: how many tasks to show at first.
        max_tasks: the most tasks the explorer shows.
        channels: how many channels to plot.

    Attributes: ``layer``, ``n_tasks``, ``source`` (support or query sets), ``status``, ``summary``,
    ``plot``, ``widget``; ``results`` (a dict: ``layer``, ``tasks``, ``factor``, by statistics source,
    the typical factor between a task's variance and the running variance), ``figure``, ``error``.
    """

    SOURCES = ("support", "query")

    def __init__(self, trained: MetaTrained, sampler: TaskSampler, n_tasks: int = 4, max_tasks: int = 8,
                 channels: int = 16) -> None:
        self.trained = trained
        self.sampler = sampler
        self.max_tasks = max_tasks
        self.channels = channels
        self.results: dict[str, Any] | None = None
        self.figure: plt.Figure | None = None
        self.error: str | None = None
        layers = [name for name, m in trained.model.named_modules() if is_batchnorm(m)]
        style = {"description_width": "120px"}
        self.layer = W.Dropdown(options=layers, value=layers[min(2, len(layers) - 1)] if layers else None,
                                description="BatchNorm layer", style=style)
        self.n_tasks = W.IntSlider(value=min(n_tasks, max_tasks), min=1, max=max_tasks, description="tasks",
                                   style=style, continuous_update=False)
        self.source = W.Dropdown(options=[("support sets", "support"), ("query sets", "query")], value="support",
                                 description="batches", style=style)
        self.status = W.HTML("")
        self.summary = wrapping(W.HTML(""))
        self.summary_text = ""
        self.plot = W.Output()
        for name, control in [("bn-layer", self.layer), ("bn-tasks", self.n_tasks), ("bn-source", self.source),
                              ("status", self.status), ("summary", self.summary)]:
            control.add_class(f"mamlkit-{name}")
        self._updating = False
        for control in (self.layer, self.n_tasks, self.source):
            control.observe(self._on_change, names="value")
        self.widget = W.VBox([
            W.HTML("<b>BatchNorm statistics explorer</b>: what train mode normalises with (one line per task) "
                   "against what eval mode normalises with (black)"),
            W.HBox([self.layer, self.n_tasks, self.source]), self.status, self.summary, self.plot,
        ])
        self.widget.add_class("mamlkit-bn-explorer")
        self.update()

    title = "BatchNorm explorer"

    def _caption(self) -> str:
        res = self.results or {}
        return (f"The BatchNorm explorer on {res.get('layer')}, {len(res.get('tasks', {}))} tasks' "
                f"{res.get('source')} sets, made when this cell ran")

    def update(self, layer: str | None = None, n_tasks: int | None = None, source: str | None = None
               ) -> dict[str, Any] | None:
        """Recompute and redraw, after setting any control given; returns ``results`` (None on error)."""
        self.error = None
        try:
            if not self.layer.options:
                raise ConfigError("this model has no BatchNorm layer: its normalisation does not depend on "
                                  "the mode, so there is nothing to compare")
            if layer is not None:
                check_choice("BatchNorm layer", layer, self.layer.options)
            if n_tasks is not None:
                check_count("tasks", n_tasks, 1, self.max_tasks)
            if source is not None:
                check_choice("batch source", source, self.SOURCES)
            self._quiet_set(layer=layer, n_tasks=n_tasks, source=source)
            self.results = self._compute(self.layer.value, self.n_tasks.value, self.source.value)
        except (ConfigError, ValueError, KeyError) as exc:
            return self._show_error(exc)
        return self._show_results()

    def measure(self, layer: str, n_tasks: int, source: str = "support") -> dict[str, Any]:
        """What ``update`` would compute for these settings, without touching the controls or the plot.

        A notebook cell that asserts on the explorer's numbers uses this: its result depends only on its
        arguments, never on where a student has since moved the controls. Raises on invalid settings.
        """
        check_choice("BatchNorm layer", layer, self.layer.options)
        check_count("tasks", n_tasks, 1, self.max_tasks)
        check_choice("batch source", source, self.SOURCES)
        return self._compute(layer, n_tasks, source)

    def _compute(self, layer: str, n_tasks: int, source: str) -> dict[str, Any]:
        model = self.trained.model
        device = next(model.parameters()).device
        batches = {}
        for index in range(n_tasks):
            task = self.sampler.task(index).to(device)
            batches[f"task {index}"] = task.support_x if source == "support" else task.query_x
        found = running_vs_batch(model, layer, batches, self.trained.collected_stats)
        return {"layer": layer, "source": source, **found}

    def _draw(self) -> None:
        res = self.results
        assert res is not None
        channels = min(self.channels, next(iter(res["tasks"].values()))[res["layer"]][0].numel())
        fig = bn_stats_mismatch(res["tasks"], res["running"], res["layer"], channels=channels)
        self.figure = fig
        if res["factor"]:
            parts = [f"{name} running variance: {value:.2f}" for name, value in res["factor"].items()]
            self.summary_text = (
                f"{res['layer']}, {len(res['tasks'])} tasks ({res['source']} sets): typical factor between a task's "
                f"variance and the " + "; ".join(parts) + ". Eval mode normalises every task with the black "
                "lines, at the initial weights; train mode uses the task's own at the current weights (why a "
                "mismatch is not the whole story: notebook 03)."
            )
        else:
            self.summary_text = (f"{res['layer']} keeps no running statistics: it normalises with batch statistics "
                                 "in both modes.")
        self.summary.value = prose_html(self.summary_text)
        show_figure(self.plot, fig)


# ------------------------------------------------------------------------------------ confidence intervals


class ConfidenceExplorer(Explorer):
    """The 95% interval ``1.96 * std / sqrt(N)`` against means of N resampled tasks.

    From per-task values (an ``EvalResult`` or any array), the explorer draws ``resamples`` sets of N
    tasks with replacement (the bootstrap), shows where their means fall against the interval around
    the overall mean, and plots the half-width against N, so that ``1/sqrt(N)`` becomes visible.

    Args:
        values: per-task accuracies (``EvalResult`` or numbers in [0, 1]; other metrics are shown as is).
        n_tasks: N at first.
        max_tasks: the largest N the slider offers.
        resamples: how many resampled means to draw.
        seed: the resampling seed (the same settings always draw the same means).

    Attributes: ``n_tasks``, ``resamples``, ``status``, ``summary``, ``plot``, ``widget``; ``results``
    (a dict: ``n``, ``mean``, ``std``, ``half_width``, ``coverage``, ``means``), ``figure``, ``error``.
    """

    def __init__(self, values: EvalResult | Sequence[float] | np.ndarray, n_tasks: int = 50, max_tasks: int = 600,
                 resamples: int = 1000, seed: int = 0) -> None:
        self.error: str | None = None
        self.results: dict[str, Any] | None = None
        self.figure: plt.Figure | None = None
        self.seed = seed
        self.max_tasks = max_tasks
        self.max_resamples = 5000
        if isinstance(values, EvalResult):
            self.name, self.scale, self.unit = values.name, values.scale, "points" if values.scale == 100 else ""
            raw = values.values
        else:
            self.name, self.scale, self.unit = "values", 100.0, "points"
            raw = values
        try:
            self.values = np.asarray(raw, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            self.values = np.asarray([], dtype=np.float64)
        if self.values.size and not isinstance(values, EvalResult) and (self.values.max() > 1 or self.values.min() < 0):
            self.scale, self.unit = 1.0, ""
        style = {"description_width": "120px"}
        self.n_tasks = W.IntSlider(value=max(1, min(n_tasks, max_tasks)), min=1, max=max_tasks,
                                   description="tasks N", style=style, continuous_update=False,
                                   layout=W.Layout(width="420px"))
        self.resamples = W.IntSlider(value=max(100, min(resamples, self.max_resamples)), min=100,
                                     max=self.max_resamples, step=100, description="resampled means", style=style,
                                     continuous_update=False, layout=W.Layout(width="420px"))
        self.status = W.HTML("")
        self.summary = wrapping(W.HTML(""))
        self.summary_text = ""
        self.plot = W.Output()
        for name, control in [("ci-tasks", self.n_tasks), ("ci-resamples", self.resamples),
                              ("status", self.status), ("summary", self.summary)]:
            control.add_class(f"mamlkit-{name}")
        self._updating = False
        for control in (self.n_tasks, self.resamples):
            control.observe(self._on_change, names="value")
        self.widget = W.VBox([
            W.HTML("<b>Confidence-interval explorer</b>: the 95% interval of a mean over N tasks, and where "
                   "means of N resampled tasks really fall"),
            self.n_tasks, self.resamples, self.status, self.summary, self.plot,
        ])
        self.widget.add_class("mamlkit-ci-explorer")
        self.update()

    title = "confidence-interval explorer"

    def _caption(self) -> str:
        n = (self.results or {}).get("n")
        return f"The confidence-interval explorer at N = {n} tasks, made when this cell ran"

    def update(self, n_tasks: int | None = None, resamples: int | None = None) -> dict[str, Any] | None:
        """Recompute and redraw, after setting any control given; returns ``results`` (None on error)."""
        self.error = None
        try:
            if self.values.size < 2:
                raise ValueError(f"need the values of at least 2 tasks to estimate a spread, got {self.values.size}")
            if not np.isfinite(self.values).all():
                raise ValueError("the values contain NaN or infinity")
            if n_tasks is not None:
                check_count("tasks N", n_tasks, 1, self.max_tasks)
            if resamples is not None:
                check_count("resampled means", resamples, 100, self.max_resamples)
            self._quiet_set(n_tasks=n_tasks, resamples=resamples)
            self.results = self._compute(self.n_tasks.value, self.resamples.value)
        except (ConfigError, ValueError) as exc:
            return self._show_error(exc)
        return self._show_results()

    def measure(self, n_tasks: int, resamples: int = 1000) -> dict[str, Any]:
        """What ``update`` would compute for these settings, without touching the sliders or the plot (for cells
        that assert on the numbers: the result depends only on the arguments). Raises on invalid settings."""
        if self.values.size < 2:
            raise ValueError(f"need the values of at least 2 tasks to estimate a spread, got {self.values.size}")
        check_count("tasks N", n_tasks, 1, self.max_tasks)
        check_count("resampled means", resamples, 100, self.max_resamples)
        return self._compute(n_tasks, resamples)

    def _compute(self, n: int, resamples: int) -> dict[str, Any]:
        return interval_coverage(self.values, n, resamples, self.seed)

    def _draw(self) -> None:
        r = self.results
        assert r is not None
        s = self.scale
        fig = interval_figure(r, s, self.max_tasks)
        self.figure = fig
        unit = f" {self.unit}" if self.unit else ""
        four = 1.96 * r["std"] / math.sqrt(4 * r["n"])
        measured = int(r["measured"])
        where = (f"the {measured} tasks measured" + (f" ({self.name})" if self.name and self.name != "values" else ""))
        beyond = (f" N is more than the {measured} tasks measured: the means are drawn from their spread, so the "
                  f"interval is what {r['n']} tasks like them would give; to see it, measure {r['n']} tasks."
                  if r["n"] > measured else "")
        self.summary_text = (
            f"N = {r['n']} tasks drawn with replacement from {where}: mean {s * r['mean']:.1f} ± "
            f"{s * r['half_width']:.1f}{unit} (95%); {100 * r['coverage']:.1f}% of {r['resamples']} resampled means "
            f"fall inside (expected about 95%). Four times the tasks (N = {4 * r['n']}) would give "
            f"± {s * four:.1f}{unit}.{beyond}"
        )
        self.summary.value = prose_html(self.summary_text)
        show_figure(self.plot, fig)
