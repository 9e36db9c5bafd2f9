"""Interactive widgets (ipywidgets 8) for the lessons and the classroom lab.

The placement playground, usable in any notebook by displaying it (``playground`` as the last line of a cell)
and drivable from code, which is how the tests and the lab's asserts use it (the two explorers, built the same
way, are in ``mamlkit.lessons.explorers``):

- ``PlacementPlayground``: pick where ``.train()``/``.eval()`` go at meta-test, the running
  statistics eval mode reads, how the query is presented, the dataset and the number of tasks; each
  click on *Run* meta-tests the lesson model and adds a bar (mean with its 95% interval) to a chart
  of every run so far, with a one-line verdict in plain words.

The playground exposes its controls as attributes, a ``run()`` that
accepts the same values as keyword arguments, its last outcome (``results``) and a status line
(``status``) that shows what went wrong in words (``error`` holds the same text) instead of a
traceback.
"""

from __future__ import annotations

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

from mamlkit.adapt import MetaTrained
from mamlkit.data import DATASETS, DataError, FewShotDataset
from mamlkit.data.omniglot import locate_omniglot
from mamlkit.errors import ConfigError, check_choice
from mamlkit.evaluate import EvalResult, meta_test, paired_difference
from mamlkit.experiments import Experiment, get_meta_trained, preset
from mamlkit.lessons.plots import result_bars
from mamlkit.lessons.widget_parts import (
    Shown,
    check_count,
    prose_html,
    relative_folder,
    show_figure,
    status_html,
    wrapping,
)
from mamlkit.placements import MODES, PRESENTATIONS, STATS, Placement, custom_placement
from mamlkit.tasks import TaskSampler


def on_shared_tasks(a: EvalResult, b: EvalResult) -> tuple[EvalResult, EvalResult]:
    """Both results restricted to the tasks they were both measured on (in ``a``'s order), for pairing."""
    b_values = dict(zip(b.task_indices, b.values))
    common = [i for i in a.task_indices if i in b_values]
    a_values = dict(zip(a.task_indices, a.values))
    return (EvalResult(a.name, np.array([a_values[i] for i in common]), a.metric, 0.0, tuple(common)),
            EvalResult(b.name, np.array([b_values[i] for i in common]), b.metric, 0.0, tuple(common)))


def placement_verdict(
    placement: Placement, result: EvalResult, chance: float, previous: Sequence[tuple[str, EvalResult]] = ()
) -> str:
    """A one-line plain-language reading of one meta-test result.

    Says whether the accuracy is near chance or well above it, why (from the placement), and, when
    earlier results (``previous``: pairs of a label, e.g. ``"run #1 (train/train)"``, and a result) were
    measured on some of the same tasks, how it compares with the best of them (paired difference with its
    95% interval, on the tasks both were measured on).
    """
    mean, half = 100 * result.mean, 100 * result.ci95
    if result.mean - result.ci95 <= chance + 0.05:
        level = f"near chance ({100 * chance:.0f}%)"
    elif result.mean + result.ci95 < chance + 0.25:
        level = f"above chance ({100 * chance:.0f}%), but not by much"
    else:
        level = "well above chance"
    line = f"{placement.label}: {mean:.1f} ± {half:.1f}% over {result.n} tasks, {level}: {placement.reason}."
    shared = [(label, r) for label, r in previous if len(on_shared_tasks(result, r)[0].values) >= 2]
    if shared:
        best, best_result = max(shared, key=lambda pair: pair[1].mean)
        mine, theirs = on_shared_tasks(result, best_result)
        diff = paired_difference(mine, theirs)
        tasks = f"the same {diff.n} tasks"
        if diff.significant:
            word = "above" if diff.mean > 0 else "below"
            line += f" That is {abs(100 * diff.mean):.1f} ± {100 * diff.ci95:.1f} points {word} {best} on {tasks}."
        else:
            line += (f" No clear difference from {best} on {tasks} "
                     f"({100 * diff.mean:+.1f} ± {100 * diff.ci95:.1f} points).")
    return line


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


class PlacementPlayground(Shown):
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

        self._make_controls(n_tasks, max_tasks, omniglot_dir)
        self._wire_and_lay_out()

    def _make_controls(self, n_tasks: int, max_tasks: int, omniglot_dir: str | Path | None) -> None:
        """The playground's controls, each an attribute (see the class's docstring)."""
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
        self._found_dir = (relative_folder(found), str(found))      # what the box shows -> the folder it stands for
        self.omniglot_dir = W.Text(value=relative_folder(found), description="Omniglot folder", style=style,
                                   layout=W.Layout(width="600px"), placeholder="e.g. ../shared/data/omniglot")
        self.n_tasks = W.IntText(value=n_tasks, description=f"tasks (1-{max_tasks})", style=style,
                                 layout=layout)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="meta-test this placement and add it to the chart")
        self.clear_button = W.Button(description="Clear runs", tooltip="forget every run so far")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="360px"))
        self.status = W.HTML(status_html("Choose a placement and click Run."))
        self.verdict = W.HTML("")
        self.chart = W.Output()
        self.log = W.Output()

    def _wire_and_lay_out(self) -> None:
        """Class names for the browser test, the callbacks, and the box (``widget``) in two columns."""
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
        wrapping(self.verdict)
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
            n_tasks = check_count("meta-test tasks", self.n_tasks.value, 1, self.max_tasks,
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
        self.status.value = status_html(
            f"Run #{run.number} took {seconds:.1f} s ({1000 * run.seconds_per_task:.0f} ms per task).", "ok"
        )
        self.verdict.value = prose_html(run.verdict, bold=True)
        self._draw()
        return run

    def _show_folder(self, _change: object = None) -> None:
        """The Omniglot folder box only while omniglot is the dataset."""
        self.omniglot_dir.layout.display = "" if self.dataset.value == "omniglot" else "none"

    def _fail(self, message: str, exc: BaseException) -> None:
        self.error = message
        self.last_exception = exc
        self.status.value = status_html(message, "error")
        self.progress.value = 0

    def clear(self) -> None:
        """Forget every run (the model stays loaded)."""
        self.results.clear()
        self.verdict.value = ""
        self.status.value = status_html("Runs cleared. Choose a placement and click Run.")
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
                check_count("meta-test tasks", value, 1, self.max_tasks,
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
        self.status.value = status_html(f"Loading {dataset} ...", "busy")
        data = exp.load_data()
        trained = self._given.get(dataset)
        if trained is None:
            self.status.value = status_html(
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
        self.status.value = status_html(f"Meta-testing {placement.label} on {n_tasks} tasks ...", "busy")
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
        show_figure(self.chart, self.figure)

    @property
    def bar_count(self) -> int:
        """Bars on the last chart (one per run)."""
        return 0 if self.figure is None else len(self.figure.axes[0].patches)
