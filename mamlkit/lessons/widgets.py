"""Interactive widgets (ipywidgets 8) for the lessons and the classroom lab.

Three widgets, each usable in any notebook by displaying it (``playground`` as the last line of a
cell) and each drivable from code, which is how the tests and the lab's asserts use them:

- ``PlacementPlayground``: pick where ``.train()``/``.eval()`` go at meta-test, the running
  statistics eval mode reads, how the query is presented, the dataset and the number of tasks; each
  click on *Run* meta-tests the lesson model and adds a bar (mean with its 95% interval) to a chart
  of every run so far, with a one-line verdict in plain words.
- ``BatchNormExplorer``: for one BatchNorm layer, the per-channel batch statistics of several tasks
  against the running statistics eval mode would use (collected and untouched).
- ``ConfidenceExplorer``: how the 95% interval ``1.96 * std / sqrt(N)`` depends on the number of
  tasks N, checked against resampled means.

Every widget exposes its controls as attributes, an ``update()`` (the playground: ``run()``) that
accepts the same values as keyword arguments, its last outcome (``results``) and a status line
(``status``) that shows what went wrong in words (``error`` holds the same text) instead of a
traceback.
"""

from __future__ import annotations

import html
import io
import math
import os
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from IPython import get_ipython
from IPython.display import Markdown, display

from mamlkit.adapt import MetaTrained
from mamlkit.data import DATASETS, DataError, FewShotDataset
from mamlkit.data.omniglot import locate_omniglot
from mamlkit.errors import ConfigError, check_choice
from mamlkit.evaluate import EvalResult, interval_coverage, meta_test, placement_verdict
from mamlkit.experiments import Experiment, get_meta_trained, preset
from mamlkit.lessons.plots import bn_stats_mismatch, interval_figure, result_bars
from mamlkit.modes import running_vs_batch
from mamlkit.norms import is_batchnorm
from mamlkit.placements import MODES, PRESENTATIONS, STATS, Placement, custom_placement
from mamlkit.tasks import TaskSampler


def _status_html(text: str, kind: str = "info") -> str:
    colours = {"info": "#333", "busy": "#1a5fb4", "ok": "#26734d", "error": "#b00020"}
    prefix = "\u26a0 " if kind == "error" else ""
    return f'<span style="color:{colours[kind]}">{prefix}{html.escape(text)}</span>'


def _prose_html(text: str, bold: bool = False) -> str:
    """``text`` escaped, in a block that wraps at words within the output's width: without an explicit
    ``white-space: normal`` and ``max-width`` a long verdict can be laid out as one line thousands of
    pixels wide (a flex item sized to its content), which a student has to scroll sideways to read."""
    body = f"<b>{html.escape(text)}</b>" if bold else html.escape(text)
    return (f'<div style="white-space:normal;overflow-wrap:break-word;max-width:min(100%, 60em);'
            f'line-height:1.4">{body}</div>')


def _wrapping(widget: W.HTML) -> W.HTML:
    """An HTML widget that takes the box's width, never more (its ``_prose_html`` value then wraps)."""
    widget.layout = W.Layout(width="100%", max_width="1000px")
    return widget


def _show_figure(output: W.Output, fig: plt.Figure) -> None:
    """Replace what ``output`` shows by ``fig``; the figure is closed so that it is shown only once.

    Outside a notebook (tests, scripts) nothing is displayed: the figure stays available as an attribute.
    """
    if get_ipython() is not None:
        with output:
            output.clear_output(wait=True)
            display(fig)
    plt.close(fig)


def _relative(folder: str | Path) -> str:
    """``folder`` as a box may show it, with no path of this machine (``""`` stays ``""``).

    ``$MAMLKIT_OMNIGLOT`` where the folder is that variable's; else relative to the current folder (the
    notebook's, e.g. ``../data/omniglot``) when that stays within two levels up; else ``~/...`` under the
    home folder; else the folder's name (the playground remembers which folder the text it showed stands for;
    ``_data_dir`` also expands ``$MAMLKIT_OMNIGLOT`` and ``~`` in what a student types)."""
    if not str(folder):
        return ""
    path = Path(folder).expanduser()
    env = os.environ.get("MAMLKIT_OMNIGLOT")
    try:
        if env and Path(env).expanduser().resolve() == path.resolve():
            return "$MAMLKIT_OMNIGLOT"
    except OSError:
        pass
    try:
        relative = os.path.relpath(path)
    except ValueError:                     # another drive (Windows)
        relative = str(path)
    if not Path(relative).is_absolute() and Path(relative).parts[:3].count("..") < 3:
        return relative
    try:
        return str(Path("~") / path.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError):
        return path.name


def _check_count(kind: str, value: object, low: int, high: int, why_high: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"the number of {kind} must be a whole number, got {value!r}")
    if not low <= value <= high:
        extra = f" ({why_high})" if why_high and value > high else ""
        raise ConfigError(f"the number of {kind} must be between {low} and {high}, got {value}{extra}")
    return int(value)


# ---------------------------------------------------------------------------------------------- playground


class Picture:
    """A still picture (PNG) of a widget's chart, as computed by the runs that drew it, with a one-line caption.

    A notebook stored with outputs shows it where no kernel runs (JupyterLab before the cell is run, the
    book), where the live widget itself cannot be drawn. ``png`` holds the image's bytes.
    """

    def __init__(self, figure: plt.Figure, caption: str, dpi: int = 90) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        self.png = buffer.getvalue()
        self.caption = caption

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return self.caption


class _Shown:
    """Displays as its ``widget`` (an ipywidgets box) when it is the last value of a notebook cell."""

    widget: W.Widget
    figure: plt.Figure | None
    #: What the widget is, for the line a frontend shows where it cannot draw the widget.
    title = "widget"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:   # not "VBox(children=(HTML(value=..."
            bundle = {**bundle, "text/plain": f"[{self.title}: run this cell to get the live controls]"}
        return bundle

    def _caption(self) -> str:
        return f"The {self.title} as this cell left it"

    def picture(self) -> Picture:
        """A still picture of the widget's chart as it stands now (raises ValueError before anything is drawn)."""
        if self.figure is None:
            raise ValueError(f"the {self.title} has drawn nothing yet: run it first")
        return Picture(self.figure, self._caption())

    def show_picture(self) -> Picture:
        """Display ``picture()`` and one line under it, "Run this cell to get the live controls"; a cell that
        ends with the widget itself then shows, once stored, a picture of the widget in use before the live
        widget (which only a running kernel can draw). Returns the picture."""
        shown = self.picture()
        display(shown)
        display(Markdown(f"*{shown.caption} (a picture). Run this cell to get the live controls.*"))
        return shown


class _Explorer(_Shown):
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
        self.status.value = _status_html(self.error, "error")

    def _show_results(self) -> dict[str, Any]:
        """Clear the status line, redraw, and return ``results`` for ``update``."""
        self.status.value = ""
        self._draw()
        return self.results


@dataclass
class PlaygroundRun:
    """One click on the playground's Run button.

    Attributes:
        number: 1 for the first run, 2 for the next, ...
        placement: the meta-test placement that was run.
        dataset: ``"glyphs"`` or ``"omniglot"``.
        result: per-task accuracies with their 95% interval (tasks ``0..n-1`` of the test sampler).
        seconds: wall time of the meta-test (model loading excluded).
        verdict: the one-line reading shown under the chart.
    """

    number: int
    placement: Placement
    dataset: str
    result: EvalResult
    seconds: float
    verdict: str = ""

    @property
    def label(self) -> str:
        """E.g. ``"#2 train/eval, collected stats (glyphs, 30 tasks)"``."""
        return f"#{self.number} {self.placement.label} ({self.dataset}, {self.result.n} tasks)"

    @property
    def short_label(self) -> str:
        """The chart's label in short lines (at most 20 characters), e.g. ``"#2 train/eval\ncollected, 30 tasks"``:
        labels wrapped onto four lines fell below the screen, and long lines ran into their neighbours."""
        return self.chart_label(with_tasks=True)

    def chart_label(self, with_tasks: bool = True) -> str:
        """``short_label``, without the number of tasks where ``with_tasks`` is False (every bar has the same)."""
        p = self.placement
        how = {"batch": "", "one_at_a_time": "1 by 1", "one_class_at_a_time": "by class",
               "one_at_a_time_with_support": "1+support"}.get(p.presentation, p.presentation.replace("_", " "))
        stats = p.stats if "eval" in (p.adapt_mode, p.query_mode) else ""
        tasks = f"{self.result.n} tasks" if with_tasks else ""
        parts = [x for x in (self.dataset if self.dataset != "glyphs" else "", stats, how, tasks) if x]
        lines = [f"#{self.number} {p.adapt_mode}/{p.query_mode}"]
        for part in parts:
            if len(lines) > 1 and len(lines[-1]) + 2 + len(part) <= 20:
                lines[-1] += f", {part}"
            else:
                lines.append(part)
        return "\n".join(lines)

    @property
    def seconds_per_task(self) -> float:
        return self.seconds / max(1, self.result.n)

    def summary(self, width: int = 100) -> str:
        """The verdict and the run's time, broken at spaces into lines of at most ``width`` characters."""
        text = f"{self.verdict} [{self.seconds:.1f} s, {1000 * self.seconds_per_task:.0f} ms per task]"
        return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


@dataclass
class _Setup:
    exp: Experiment
    data: FewShotDataset
    trained: MetaTrained
    sampler: TaskSampler


class PlacementPlayground(_Shown):
    """Choose a meta-test placement, click Run, compare every run so far on a chart.

    The model is the lesson preset's meta-trained model (``mk.get_meta_trained``: loaded from the
    cache, or meta-trained with a progress bar the first time, about a minute); pass ``trained`` to
    use a model you already have. Every run meta-tests tasks ``0..N-1`` of the held-out alphabets, so
    runs with the same N are paired and compared in the verdict. The model is never changed.

    Args:
        exp: the experiment (default ``mk.preset("lesson")``); its dataset is the default choice.
        trained: a meta-trained model for ``exp.dataset``, or a mapping dataset name -> model.
        omniglot_dir: the Omniglot folder (default: ``mk.data.omniglot.locate_omniglot()``: ``$MAMLKIT_OMNIGLOT``,
            ``data/omniglot`` in the checkout, or ``../shared/data/omniglot`` beside it).
        n_tasks: the default number of meta-test tasks (about 50 to 90 ms each on 2 cores here).
        max_tasks: the most a live run may take; more is refused with a message.
        training: the meta-training placement of the model (``"standard"``).
        progress: show progress bars while a model is meta-trained.

    Attributes (controls): ``adapt_mode``, ``query_mode``, ``stats``, ``presentation``, ``dataset``,
    ``omniglot_dir``, ``n_tasks``, ``run_button``, ``clear_button``, ``progress``, ``status``,
    ``verdict``, ``chart``, ``log``, ``widget`` (the whole box).

    Attributes (outcome): ``results`` (every run, a list of ``PlaygroundRun``), ``figure`` (the last
    chart), ``error`` (the last error message, or None).
    """

    def __init__(
        self,
        exp: Experiment | None = None,
        trained: MetaTrained | Mapping[str, MetaTrained] | None = None,
        omniglot_dir: str | Path | None = None,
        n_tasks: int = 30,
        max_tasks: int = 300,
        training: str = "standard",
        progress: bool = True,
    ) -> None:
        self.exp = exp or preset("lesson")
        if isinstance(trained, MetaTrained):
            trained = {self.exp.dataset: trained}
        self._given: dict[str, MetaTrained] = dict(trained or {})
        self._setups: dict[tuple[str, str], _Setup] = {}
        self.training = training
        self.max_tasks = max_tasks
        self.show_progress = progress
        self.results: list[PlaygroundRun] = []
        self.figure: plt.Figure | None = None
        self.error: str | None = None
        self.last_exception: BaseException | None = None

        style = {"description_width": "150px"}
        layout = W.Layout(width="360px")
        self.adapt_mode = W.Dropdown(options=list(MODES), value="train", description="adapt (support) in",
                                     style=style, layout=layout)
        self.query_mode = W.Dropdown(options=list(MODES), value="train", description="predict query in",
                                     style=style, layout=layout)
        self.stats = W.Dropdown(options=list(STATS), value="untouched", description="running statistics",
                                style=style, layout=layout)
        self.presentation = W.Dropdown(options=[(words, p) for p, words in PRESENTATIONS.items()], value="batch",
                                       description="query presented", style=style, layout=layout)
        datasets = list(DATASETS)
        self.dataset = W.Dropdown(options=datasets, value=self.exp.dataset if self.exp.dataset in datasets else
                                  datasets[0], description="dataset", style=style, layout=layout)
        found = omniglot_dir if omniglot_dir is not None else (self.exp.data_dir or locate_omniglot() or "")
        # Shown relative to the notebook's folder (e.g. ../data/omniglot): no path of this machine on screen.
        self._found_dir = (_relative(found), str(found))      # what the box shows -> the folder it stands for
        self.omniglot_dir = W.Text(value=_relative(found), description="Omniglot folder", style=style,
                                   layout=W.Layout(width="600px"), placeholder="e.g. ../shared/data/omniglot")
        self.n_tasks = W.IntText(value=n_tasks, description=f"tasks (1-{max_tasks})", style=style,
                                 layout=layout)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="meta-test this placement and add it to the chart")
        self.clear_button = W.Button(description="Clear runs", tooltip="forget every run so far")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="360px"))
        self.status = W.HTML(_status_html("Choose a placement and click Run."))
        self.verdict = W.HTML("")
        self.chart = W.Output()
        self.log = W.Output()

        for name, control in [("adapt-mode", self.adapt_mode), ("query-mode", self.query_mode),
                              ("stats", self.stats), ("presentation", self.presentation),
                              ("dataset", self.dataset), ("omniglot-dir", self.omniglot_dir),
                              ("tasks", self.n_tasks), ("run", self.run_button), ("clear", self.clear_button),
                              ("progress", self.progress), ("status", self.status), ("verdict", self.verdict),
                              ("chart", self.chart)]:
            control.add_class(f"mamlkit-{name}")
        self.run_button.on_click(lambda _button: self.run())
        self.clear_button.on_click(lambda _button: self.clear())
        self.dataset.observe(self._show_folder, names="value")
        self._show_folder()
        # Two columns of controls, so that the controls, the Run button and the chart fit one 1366x768 screen.
        controls = W.HBox([W.VBox([self.adapt_mode, self.query_mode, self.stats]),
                           W.VBox([self.presentation, self.dataset, self.n_tasks])])
        _wrapping(self.verdict)
        self.widget = W.VBox([
            W.HTML("<b>Placement playground</b>: where do <code>.train()</code> and <code>.eval()</code> go "
                   "at meta-test?"),
            controls, self.omniglot_dir, W.HBox([self.run_button, self.clear_button, self.progress]),
            self.status, self.verdict, self.chart, self.log,
        ])
        self.widget.add_class("mamlkit-playground")

    title = "placement playground"

    def _caption(self) -> str:
        numbers = [r.number for r in self.results]
        runs = f"run #{numbers[0]}" if len(numbers) == 1 else f"runs #{numbers[0]} to #{numbers[-1]}"
        return f"The placement playground's chart after {runs}, made when this cell ran"


    # -------------------------------------------------------------------------------------- actions

    def run(self, **values: Any) -> PlaygroundRun | None:
        """Meta-test the chosen placement (what the Run button does) and add it to the chart.

        Keyword arguments set controls first: ``adapt_mode``, ``query_mode``, ``stats``,
        ``presentation``, ``dataset``, ``omniglot_dir``, ``n_tasks``. An invalid value or a failure
        (e.g. a missing Omniglot folder) is reported in ``status`` and ``error``; then None is
        returned and nothing else changes.
        """
        known = {"adapt_mode", "query_mode", "stats", "presentation", "dataset", "omniglot_dir", "n_tasks"}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"run() got unknown settings {sorted(unknown)}; known: {sorted(known)}")
        self.error = None
        self.run_button.disabled = True
        try:
            self._set_values(values)
            n_tasks = _check_count("meta-test tasks", self.n_tasks.value, 1, self.max_tasks,
                                   "a live run would take too long; `python -m mamlkit placements` runs 600")
            placement = custom_placement(self.adapt_mode.value, self.query_mode.value, self.stats.value,
                                         self.presentation.value)
            setup = self._setup(self.dataset.value)
            result, seconds = self._meta_test(setup, placement, n_tasks)
        except (ConfigError, DataError, ValueError, OSError) as exc:
            self._fail(str(exc), exc)
            return None
        except Exception as exc:  # a widget shows a message, never a traceback
            self._fail(f"unexpected {type(exc).__name__}: {exc}", exc)
            return None
        finally:
            self.run_button.disabled = False
        run = PlaygroundRun(len(self.results) + 1, placement, self.dataset.value, result, seconds)
        earlier = [(f"run #{r.number} ({r.placement.label})", r.result) for r in self.results
                   if r.dataset == run.dataset]
        run.verdict = f"Run #{run.number}. " + placement_verdict(placement, result, 1 / setup.exp.n_way, earlier)
        self.results.append(run)
        self.status.value = _status_html(
            f"Run #{run.number} took {seconds:.1f} s ({1000 * run.seconds_per_task:.0f} ms per task).", "ok"
        )
        self.verdict.value = _prose_html(run.verdict, bold=True)
        self._draw()
        return run

    def _show_folder(self, _change: object = None) -> None:
        """The Omniglot folder box only while omniglot is the dataset."""
        self.omniglot_dir.layout.display = "" if self.dataset.value == "omniglot" else "none"

    def _fail(self, message: str, exc: BaseException) -> None:
        self.error = message
        self.last_exception = exc
        self.status.value = _status_html(message, "error")
        self.progress.value = 0

    def clear(self) -> None:
        """Forget every run (the model stays loaded)."""
        self.results.clear()
        self.verdict.value = ""
        self.status.value = _status_html("Runs cleared. Choose a placement and click Run.")
        if get_ipython() is not None:
            self.chart.clear_output()
        self.figure = None

    # ------------------------------------------------------------------------------------ internals

    def _set_values(self, values: Mapping[str, Any]) -> None:
        choices = {
            "adapt_mode": ("adapt mode", MODES), "query_mode": ("query mode", MODES),
            "stats": ("statistics source", STATS), "presentation": ("query presentation", PRESENTATIONS),
            "dataset": ("dataset", tuple(DATASETS)),
        }
        for key, value in values.items():
            if key in choices:
                kind, options = choices[key]
                check_choice(kind, value, options)
        for key, value in values.items():
            control = getattr(self, key)
            if key == "n_tasks":
                _check_count("meta-test tasks", value, 1, self.max_tasks,
                             "a live run would take too long; `python -m mamlkit placements` runs 600")
            control.value = str(value) if key == "omniglot_dir" else value

    def _data_dir(self, dataset: str) -> str | None:
        if dataset != "omniglot":
            return None
        text = self.omniglot_dir.value.strip()
        if not text:
            raise DataError("omniglot needs its data folder: type the folder that holds images_background "
                            "(or images_background_small1.zip ...) into 'Omniglot folder', "
                            "e.g. ../shared/data/omniglot, or choose glyphs")
        shown, found = self._found_dir
        folder = Path(found if text == shown else os.path.expandvars(text)).expanduser()
        if not folder.is_dir():
            raise DataError(f"Omniglot folder not found: {text} (choose glyphs, or give the folder that holds "
                            "images_background or its .zip files)")
        return str(folder.resolve())

    def _setup(self, dataset: str) -> _Setup:
        data_dir = self._data_dir(dataset)
        key = (dataset, data_dir or "")
        if key in self._setups:
            return self._setups[key]
        exp = self.exp.with_changes(dataset=dataset, data_dir=data_dir)
        self.status.value = _status_html(f"Loading {dataset} ...", "busy")
        data = exp.load_data()
        trained = self._given.get(dataset)
        if trained is None:
            self.status.value = _status_html(
                f"Loading the meta-trained model for {dataset} (if it is not in the cache yet it is meta-trained "
                f"now: {exp.train.iterations} meta-iterations, about a minute on 2 cores, once) ...", "busy")
            with self.log:
                trained = get_meta_trained(exp, self.training, data, progress=self.show_progress)
            if get_ipython() is not None:
                self.log.clear_output()
        setup = _Setup(exp, data, trained, exp.test_sampler(data))
        self._setups[key] = setup
        return setup

    def _meta_test(self, setup: _Setup, placement: Placement, n_tasks: int) -> tuple[EvalResult, float]:
        """Tasks ``0..n_tasks-1`` in chunks, so that the progress bar moves (results as one call)."""
        self.progress.max = n_tasks
        self.progress.value = 0
        self.status.value = _status_html(f"Meta-testing {placement.label} on {n_tasks} tasks ...", "busy")
        begin = time.perf_counter()
        result = meta_test(setup.trained, setup.sampler, placement, n_tasks, setup.exp.test_inner_steps,
                           setup.exp.train.inner_lr, progress=False, on_task=self._moved)
        seconds = time.perf_counter() - begin
        return replace(result, name=placement.label, seconds=seconds), seconds

    def _moved(self, done: int, total: int) -> None:
        """Move the progress bar about twenty times over a run (every task would flood the front end)."""
        if done == total or done % max(1, total // 20) == 0:
            self.progress.value = done

    def _draw(self) -> None:
        runs = self.results
        counts = {r.result.n for r in runs}
        each = f", {next(iter(counts))} tasks each" if len(counts) == 1 else ""
        self.figure = result_bars([r.result for r in runs], chance=1 / self.exp.n_way,
                                  labels=[r.chart_label(with_tasks=not each) for r in runs], height=2.6,
                                  title=f"every run so far (mean with 95% interval{each})")
        _show_figure(self.chart, self.figure)

    @property
    def bar_count(self) -> int:
        """Bars on the last chart (one per run)."""
        return 0 if self.figure is None else len(self.figure.axes[0].patches)


class BatchNormExplorer(_Explorer):
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
        self.summary = _wrapping(W.HTML(""))
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
                _check_count("tasks", n_tasks, 1, self.max_tasks)
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
        _check_count("tasks", n_tasks, 1, self.max_tasks)
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
        self.summary.value = _prose_html(self.summary_text)
        _show_figure(self.plot, fig)


# ------------------------------------------------------------------------------------ confidence intervals


class ConfidenceExplorer(_Explorer):
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
        self.summary = _wrapping(W.HTML(""))
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
                _check_count("tasks N", n_tasks, 1, self.max_tasks)
            if resamples is not None:
                _check_count("resampled means", resamples, 100, self.max_resamples)
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
        _check_count("tasks N", n_tasks, 1, self.max_tasks)
        _check_count("resampled means", resamples, 100, self.max_resamples)
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
        self.summary.value = _prose_html(self.summary_text)
        _show_figure(self.plot, fig)
