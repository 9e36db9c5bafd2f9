"""Why eval mode fails at meta-test: an experiment that separates the candidate mechanisms.

A BatchNorm Conv4 meta-trained with MAML in train mode (the ``standard`` placement) falls to near
chance when it is adapted and evaluated in eval mode at meta-test. Several stories could explain it:

1. the running statistics are wrong from the start (``higher`` leaves them at 0 and 1);
2. the statistics are right for the initial weights but go stale as the inner steps move the
   weights (eval mode freezes the normalisation during adaptation);
3. eval mode loses the gradient that flows through the batch mean and variance in train mode;
4. the initialisation was meta-learned together with a fixed inner step size under train-mode
   normalisation, and that step size is too large once the normalisation stops following the weights.

This module meta-tests the same tasks on the same meta-trained model under *conditions* that pull
them apart. Each condition says how the normalisation works while the model adapts on the support
set and while it predicts the query set:

* ``batch``: train mode, each batch normalised with its own statistics (the gradient flows
  through them);
* ``batch_detached``: normalised with the batch's statistics, but as constants (no gradient
  through the mean and variance): what eval mode with perfectly fresh statistics does;
* ``untouched``, ``collected``, ``population``, ``oracle``: eval mode with fixed statistics: 0 and 1;
  the running averages that writing every meta-training task back would give; the statistics of the
  *initial* weights pooled over many meta-training tasks; the task's own support+query statistics
  at the initial weights;
* ``fresh``: eval mode with statistics re-estimated from the support set at the *current* fast
  weights before every inner step (and, for the query, at the adapted weights);
* (query only) ``adapted``: eval mode with statistics re-estimated from the support set at the
  adapted weights, the deployable way to predict one example at a time after train-mode adaptation.

Every condition is run at the meta-training inner learning rate and at smaller ones
(``lr_factors``), so the step-size effect is a curve.

The experiment is built from the package's parts. Each condition names the placement of
``mamlkit.placements.PLACEMENTS`` whose modes it uses; its statistics source replaces the placement's where
they differ (before every step, detached, pooled: what BatchNorm's two modes cannot express). The forward pass
is mamlkit's own ``Conv4.forward`` (``mamlkit.lessons.conv4_stats.conv4_forward`` runs it with
``functional_call``, a hook on each BatchNorm layer choosing the statistics), and the fast weights are
``mamlkit.backends.FunctionalModel``, the adapted copy of the torch.func backend. Where a condition is its
placement exactly (``train``, ``eval_untouched``, ``eval_collected``), ``tests/test_why_eval.py`` requires the
same per-task results as ``mk.meta_test``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mamlkit.adapt import MetaTrained, accuracy
from mamlkit.backends import FunctionalModel
from mamlkit.errors import ConfigError, check_choice
from mamlkit.evaluate import EvalResult, PairedDifference, meta_test, paired_difference
from mamlkit.experiments import Experiment, ResultsRecord, get_meta_trained
from mamlkit.lessons.conv4_stats import (
    LayerStats,
    batch_stats_at,
    check_conv4_bn,
    conv4_forward,
    conv4_of,
    population_stats,
    snapshot_to_layer_stats,
    untouched_stats,
)
from mamlkit.placements import PLACEMENTS
from mamlkit.progress import progress_bar
from mamlkit.table import Table
from mamlkit.tasks import FixedTasks, Task, TaskSampler

#: How the normalisation works while adapting (support passes).
ADAPT_SOURCES: dict[str, str] = {
    "batch": "train mode: each support batch normalised by its own statistics, gradient through them",
    "batch_detached": "the support batch's own statistics as constants: no gradient through mean and variance",
    "untouched": "eval mode, running statistics as higher leaves them (mean 0, variance 1)",
    "collected": "eval mode, running statistics collected over meta-training (momentum 0.1)",
    "population": "eval mode, statistics of the initial weights pooled over many meta-training tasks",
    "oracle": "eval mode, the task's own support+query statistics at the initial weights",
    "fresh": "eval mode, statistics re-estimated from the support set at the current weights before each step",
}

#: How the normalisation works when the adapted model predicts the query set.
QUERY_SOURCES: dict[str, str] = {
    "batch": "train mode: the whole query set normalised as one batch (transductive)",
    "untouched": "eval mode, mean 0 and variance 1",
    "collected": "eval mode, running statistics collected over meta-training",
    "population": "eval mode, population statistics of the initial weights",
    "oracle": "eval mode, the task's support+query statistics at the initial weights",
    "adapted": "eval mode, statistics re-estimated from the support set at the adapted weights",
}


@dataclass(frozen=True)
class Condition:
    """One row of the experiment: the normalisation while adapting and while predicting the query.

    Attributes:
        name: short identifier, e.g. ``"eval_oracle"``.
        adapt: a key of ``ADAPT_SOURCES``.
        query: a key of ``QUERY_SOURCES``.
        description: what the row measures, for people.
        placement: the placement of ``mamlkit.placements.PLACEMENTS`` whose modes the row uses (train mode where
            a source normalises with the batch's statistics, eval mode where it reads fixed ones). Where the row
            also reads the placement's statistics (``same_as_placement``), it measures that placement, task for
            task; otherwise its source replaces the placement's statistics.
    """

    name: str
    adapt: str
    query: str
    description: str
    placement: str

    @property
    def label(self) -> str:
        """E.g. ``"adapt: oracle / query: oracle"``."""
        return f"adapt: {self.adapt} / query: {self.query}"

    @property
    def modes(self) -> tuple[str, str]:
        """The modes its sources amount to: (while adapting, while predicting)."""
        return ("train" if self.adapt in ("batch", "batch_detached") else "eval",
                "train" if self.query == "batch" else "eval")

    @property
    def same_as_placement(self) -> bool:
        """True where the row is its placement exactly: the same modes and statistics (``mk.meta_test`` gives the
        same per-task results; ``tests/test_why_eval.py`` checks it)."""
        stats = PLACEMENTS[self.placement].stats
        return self.adapt == self.query and self.adapt in ("batch", stats)


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in [
        Condition("train", "batch", "batch", "train mode throughout (how the model was meta-trained)",
                  "transductive"),
        Condition("train_detached", "batch_detached", "batch",
                  "train mode, but no gradient through the batch statistics while adapting", "transductive"),
        Condition("eval_untouched", "untouched", "untouched", "eval mode throughout, statistics 0 and 1",
                  "eval_untouched"),
        Condition("eval_collected", "collected", "collected", "eval mode throughout, collected running statistics",
                  "eval_collected"),
        Condition("eval_population", "population", "population",
                  "eval mode throughout, population statistics of the initial weights", "eval_collected"),
        Condition("eval_oracle", "oracle", "oracle",
                  "eval mode throughout, the task's own statistics at the initial weights (frozen)", "eval_collected"),
        Condition("eval_fresh", "fresh", "adapted",
                  "eval mode throughout, statistics re-estimated from the support set before every step",
                  "eval_collected"),
        Condition("train_query_collected", "batch", "collected",
                  "adapt in train mode, predict in eval mode with the collected statistics",
                  "train_then_eval_collected"),
        Condition("train_query_population", "batch", "population",
                  "adapt in train mode, predict in eval mode with the population statistics",
                  "train_then_eval_collected"),
        Condition("train_query_adapted", "batch", "adapted",
                  "adapt in train mode, re-estimate the statistics on the support set, predict in eval mode",
                  "train_then_eval_collected"),
    ]
}

#: The inner learning rate as a fraction of the meta-training one: the scan's default.
LR_FACTORS: tuple[float, ...] = (1.0, 1 / 4, 1 / 10, 1 / 40)

#: Rows compared task by task (paired differences), each with the question it answers.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("eval_oracle", "eval_untouched", "do right statistics at the start rescue eval mode?"),
    ("eval_fresh", "eval_oracle", "do statistics that follow the weights beat statistics frozen at the start?"),
    ("train", "train_detached", "what is the gradient through the batch statistics worth?"),
    ("train", "eval_fresh", "train mode against eval mode with fresh support statistics"),
    ("train_query_adapted", "train_query_collected",
     "predicting in eval mode: statistics re-estimated at the adapted weights vs collected ones"),
)


@dataclass(frozen=True)
class Claim:
    """A sentence of the explanation and the measurement that backs it.

    The claim holds when ``mean(a) - mean(b) > margin`` (accuracy as a fraction), where ``a`` and
    ``b`` are (condition, learning-rate factor) cells; a factor of ``None`` takes the best
    learning rate of that condition, and ``b=None`` compares with 0.
    """

    text: str
    a: tuple[str, float | None]
    b: tuple[str, float | None] | None
    margin: float

    def gap(self, results: WhyEvalResults, n_tasks: int | None = None) -> float:
        """``mean(a) - mean(b)`` over all the tasks, or over the first ``n_tasks`` of them."""
        return self._mean(results, self.a, n_tasks) - (0.0 if self.b is None else self._mean(results, self.b, n_tasks))

    def holds(self, results: WhyEvalResults, n_tasks: int | None = None) -> bool:
        return self.gap(results, n_tasks) > self.margin

    @staticmethod
    def _mean(results: WhyEvalResults, cell: tuple[str, float | None], n_tasks: int | None) -> float:
        name, factor = cell
        factors = results.lr_factors if factor is None else [factor]
        return max(float(results[name, f].values[:n_tasks].mean()) for f in factors)


#: What the explanation in notebook 03 says, each sentence with its check. Margins were chosen
#: so that each claim holds in every meta-training seed of the README's record (``--seeds 0 1 2``).
CLAIMS: tuple[Claim, ...] = (
    Claim("Eval mode throughout with the statistics higher leaves (0 and 1) stays far below train mode at the "
          "meta-training step size, whichever inner learning rate it adapts with.",
          ("train", 1.0), ("eval_untouched", None), 0.30),
    Claim("Statistics that are right at the start (the task's own, at the initial weights) do not rescue "
          "eval mode at the meta-training step size.", ("train", 1.0), ("eval_oracle", 1.0), 0.30),
    Claim("Nor do the running statistics collected over meta-training, at that step size.",
          ("train", 1.0), ("eval_collected", 1.0), 0.30),
    Claim("Nor do population statistics of the initial weights, at that step size.",
          ("train", 1.0), ("eval_population", 1.0), 0.30),
    Claim("Statistics re-estimated at the current weights before every step do far better than the task's own "
          "statistics frozen at the start, at that step size.", ("eval_fresh", 1.0), ("eval_oracle", 1.0), 0.20),
    Claim("A smaller inner step (the best of the scan) lifts the frozen oracle statistics far above their "
          "accuracy at the meta-training step size.", ("eval_oracle", None), ("eval_oracle", 1.0), 0.20),
    Claim("The gradient through the batch statistics is worth several points on top of fresh statistics at the "
          "meta-training step size.", ("train", 1.0), ("train_detached", 1.0), 0.04),
    Claim("After train-mode adaptation, eval-mode prediction with statistics re-estimated on the support "
          "set at the adapted weights beats the collected running statistics.",
          ("train_query_adapted", 1.0), ("train_query_collected", 1.0), 0.05),
)


def lr_label(factor: float) -> str:
    """Column label of an inner-learning-rate factor: ``"x1"``, ``"x1/4"``, ..."""
    return "x1" if factor == 1 else f"x1/{round(1 / factor):d}"


@dataclass
class Adaptation:
    """Fast weights after adaptation and what happened on the way.

    Attributes:
        params: the adapted fast weights (detached).
        spread: per inner step and BatchNorm layer, the standard deviation of the layer's normalised
            input over the support set (1 when the batch's own statistics are used; ``inf`` once the
            activations are no longer finite numbers).
        support_loss: per inner step, the support loss before the step.
    """

    params: dict[str, torch.Tensor]
    spread: np.ndarray
    support_loss: np.ndarray

    @property
    def diverged(self) -> bool:
        """True when adaptation blew up: some fast weight is no longer a finite number."""
        return not all(bool(torch.isfinite(p).all()) for p in self.params.values())


def adapt(
    params: dict[str, torch.Tensor],
    task: Task,
    source: str,
    fixed: LayerStats | None,
    steps: int,
    lr: float,
    downsample: str = "pool",
) -> Adaptation:
    """Adapt ``params`` to ``task``'s support set with plain SGD, normalising as ``source`` says.

    ``fixed`` gives the statistics for the eval-mode sources that hold them fixed (``untouched``,
    ``collected``, ``population``, ``oracle``); ``downsample`` is the Conv4's (see ``conv4_forward``). The fast
    weights are a ``mamlkit.backends.FunctionalModel``, the package's adapted copy for torch.func, and each step is
    its first-order SGD step.
    """
    check_choice("adaptation source", source, ADAPT_SOURCES)
    fast = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    copy = FunctionalModel(conv4_of(fast, downsample), fast, {})
    spread, losses = np.zeros((steps, 4)), np.zeros(steps)
    for step in range(steps):
        if source in ("batch", "batch_detached"):
            stats = None
        elif source == "fresh":
            stats = batch_stats_at(copy.params, task.support_x, downsample)
        else:
            stats = fixed
        record: list = []
        logits = conv4_forward(copy.params, task.support_x, stats, source == "batch_detached", record,
                               downsample=downsample)
        loss = F.cross_entropy(logits, task.support_y)
        copy.step(loss, lr, create_graph=False)
        spread[step] = [s for _, _, s in record]
        losses[step] = loss.item()
    return Adaptation({name: p.detach() for name, p in copy.params.items()}, spread, losses)


@torch.no_grad()
def predict(
    params: dict[str, torch.Tensor], task: Task, source: str, fixed: LayerStats | None, downsample: str = "pool"
) -> torch.Tensor:
    """Query logits of the adapted ``params``, normalising as the query ``source`` says."""
    check_choice("query source", source, QUERY_SOURCES)
    if source == "batch":
        return conv4_forward(params, task.query_x, downsample=downsample)
    stats = batch_stats_at(params, task.support_x, downsample) if source == "adapted" else fixed
    return conv4_forward(params, task.query_x, stats, downsample=downsample)


def alone_variants() -> dict[str, frozenset[int]]:
    """The rows of ``alone_by_layer``: which layers normalise each query example by itself."""
    every = frozenset(range(4))
    rows = {"whole batch": frozenset(), "every layer alone": every}
    rows.update({f"layer {k + 1} alone": frozenset({k}) for k in range(4)})
    rows.update({f"all but layer {k + 1} alone": every - {k} for k in range(4)})
    return rows


def alone_by_layer(
    trained: MetaTrained,
    sampler: TaskSampler | FixedTasks,
    n_tasks: int,
    inner_steps: int,
    lr: float,
    downsample: str = "pool",
    progress: bool = True,
) -> dict[str, EvalResult]:
    """Where a query example that arrives alone loses its accuracy, layer by layer.

    Each task is adapted once in train mode (the support set as one batch, as ``transductive``). The
    query is then predicted with some BatchNorm layers normalising each example by its own statistics
    (what train mode does to an example that arrives alone) and the others normalising the whole query
    batch: ``"whole batch"`` is the ``transductive`` placement, ``"every layer alone"`` is
    ``one_at_a_time``, and the rows in between say which layers cost the accuracy.
    """
    check_conv4_bn(trained.model, downsample)
    if trained.inner_rates is not None or trained.model.dropout.p > 0:
        raise ConfigError("alone_by_layer adapts every weight at one rate through a Conv4 without Dropout; this "
                          "model has learned or head-only inner rates, or Dropout: its rows would not be its "
                          "placements")
    params = {name: p.detach() for name, p in trained.model.named_parameters()}
    device = next(trained.model.parameters()).device
    variants = alone_variants()
    values: dict[str, list[float]] = {name: [] for name in variants}
    indices = tuple(range(n_tasks))
    begin = time.perf_counter()
    for index in progress_bar(indices, desc="alone by layer", enabled=progress):
        task = sampler.task(index).to(device)
        fast = adapt(params, task, "batch", None, inner_steps, lr, downsample).params
        with torch.no_grad():
            for name, layers in variants.items():
                logits = conv4_forward(fast, task.query_x, downsample=downsample, alone=layers)
                values[name].append(accuracy(logits, task.query_y))
    seconds = (time.perf_counter() - begin) / len(variants)
    return {name: EvalResult(name, np.asarray(v), "accuracy", seconds, indices) for name, v in values.items()}


@dataclass
class WhyEvalResults(ResultsRecord):
    """Accuracy per condition (rows) and inner-learning-rate factor (columns), on the same tasks.

    ``spread[condition][lr]`` is the median over tasks of the per-step, per-layer normalised standard
    deviation (see ``Adaptation``); ``diverged[condition][lr]`` the fraction of tasks whose adaptation
    blew up (non-finite weights: the query predictions are then meaningless and count as wrong or
    as one class). Rows named ``"query_eval model: ..."`` were measured on another meta-trained model.
    """

    lr_factors: tuple[float, ...] = LR_FACTORS
    inner_lr: float = 0.4
    spread: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    diverged: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: tuple[str, float]) -> EvalResult:
        """``results["eval_oracle", 1/4]``: a condition at an inner-learning-rate factor."""
        condition, factor = key
        return self.results[condition][lr_label(factor)]

    def comparisons(self, factor: float = 1.0) -> list[tuple[PairedDifference, str]]:
        """The paired differences of ``COMPARISONS`` at one learning-rate factor, with their questions."""
        out = []
        for a, b, question in COMPARISONS:
            if a in self.results and b in self.results:
                out.append((paired_difference(self[a, factor], self[b, factor]), question))
        return out

    def to_dict(self) -> dict:
        record = super().to_dict()
        record["inner_lr"] = self.inner_lr
        record["lr_factors"] = list(self.lr_factors)
        record["spread"] = {name: {lab: [[x if math.isfinite(x) else None for x in row] for row in s.tolist()]
                                   for lab, s in by.items()} for name, by in self.spread.items()}
        record["diverged"] = self.diverged
        return record

    def divergence_table(self) -> Table:
        """Per condition and learning rate, the percentage of tasks whose adaptation blew up."""
        table = Table(["condition"] + [f"lr {self.inner_lr * f:g}" for f in self.lr_factors],
                      title="Tasks whose adaptation diverged (non-finite weights), %")
        for name, by_lr in self.diverged.items():
            table.add_row(name, *[f"{100 * by_lr[lr_label(f)]:.0f}" for f in self.lr_factors])
        return table

    def claims_table(self, n_tasks: int | None = None) -> Table:
        """Each sentence of ``CLAIMS`` with its measured gap, the margin it needs and whether it holds."""
        scope = f"the first {n_tasks} tasks" if n_tasks else f"{self.experiment.test_tasks} tasks"
        table = Table(["claim", "gap (points)", "needs more than", "holds"],
                      title=f"The explanation, sentence by sentence ({scope})")
        for claim in CLAIMS:
            table.add_row(claim.text, f"{100 * claim.gap(self, n_tasks):+.1f}", f"{100 * claim.margin:.0f}",
                          "yes" if claim.holds(self, n_tasks) else "NO")
        return table

    def table(self) -> Table:
        exp = self.experiment
        columns = ["condition", "adapt / query normalisation"] + [
            f"lr {self.inner_lr * f:g} ({lr_label(f)})" for f in self.lr_factors
        ]
        table = Table(
            columns,
            title=(f"Why eval mode fails: {exp.dataset}, {exp.n_way}-way {exp.k_shot}-shot, "
                   f"{exp.test_tasks} meta-test tasks, {exp.test_inner_steps} inner steps, "
                   f"meta-training seed {exp.train.seed}"),
            note=(f"accuracy % over the same meta-test tasks, mean ± 95% interval; chance is {100 / exp.n_way:.1f}%; "
                  f"meta-training used inner lr {self.inner_lr:g}"),
        )
        for name, by_lr in self.results.items():
            label = CONDITIONS[name].label if name in CONDITIONS else "(another meta-trained model)"
            cells = [by_lr[lr_label(f)].formatted() if lr_label(f) in by_lr else "-" for f in self.lr_factors]
            table.add_row(name, label, *cells)
        return table

    def chart(self, path: str | Path | None = None):  # -> matplotlib Figure
        from mamlkit.lessons.plots import lr_curves

        return lr_curves(self, path=path)


def _measure(params: dict[str, torch.Tensor], fixed: dict[str, LayerStats], sampler: TaskSampler,
             indices: tuple[int, ...], conditions: list[Condition], lr_factors: Sequence[float], inner_lr: float,
             steps: int, device: torch.device, progress: bool) -> tuple[dict, dict, dict]:
    """Every condition at every learning-rate factor on the tasks ``indices``: per condition and factor the
    accuracies, the spreads of the adapted features and the share of tasks whose adaptation diverged."""
    labels = [lr_label(f) for f in lr_factors]
    values = {c.name: {lab: [] for lab in labels} for c in conditions}
    spreads: dict[str, dict[str, list[np.ndarray]]] = {c.name: {lab: [] for lab in labels} for c in conditions}
    diverged = {c.name: {lab: 0.0 for lab in labels} for c in conditions}
    for index in progress_bar(indices, desc="why-eval", enabled=progress):
        task = sampler.task(index).to(device)
        fixed["oracle"] = batch_stats_at(params, torch.cat([task.support_x, task.query_x]))
        for factor, lab in zip(lr_factors, labels):
            adapted: dict[str, Adaptation] = {}
            for c in conditions:
                if c.adapt not in adapted:
                    adapted[c.adapt] = adapt(params, task, c.adapt, fixed.get(c.adapt), steps,
                                             inner_lr * factor)
                run = adapted[c.adapt]
                logits = predict(run.params, task, c.query, fixed.get(c.query))
                values[c.name][lab].append(accuracy(logits, task.query_y))
                spreads[c.name][lab].append(run.spread)
                diverged[c.name][lab] += run.diverged / len(indices)
    return values, spreads, diverged


def run_why_eval(
    exp: Experiment,
    conditions: Iterable[str] = tuple(CONDITIONS),
    lr_factors: Sequence[float] = LR_FACTORS,
    trained: MetaTrained | None = None,
    population_tasks: int = 100,
    remedies: bool = False,
    progress: bool = True,
    cache: bool = True,
) -> WhyEvalResults:
    """Meta-test every condition at every inner-learning-rate factor on ``exp.test_tasks`` tasks.

    The model is the one ``exp`` meta-trains with the ``standard`` placement (from the cache when it
    is there), unless ``trained`` is given. Every condition sees the same tasks, so rows can be
    compared task by task (``WhyEvalResults.comparisons``). The model is not changed.

    With ``remedies``, the model meta-trained with the query loss in eval mode (``query_eval``,
    from the cache or trained now) is also meta-tested on the same tasks at the meta-training learning
    rate, with its own protocol (``train_then_eval``) and in train mode (``transductive``): rows
    ``"query_eval model: <placement>"``.
    """
    conditions = [CONDITIONS[check_choice("condition", c, CONDITIONS)] for c in conditions]
    if not lr_factors or any(not 0 < f <= 1 for f in lr_factors):
        raise ConfigError(f"learning-rate factors must be in (0, 1], got {list(lr_factors)}")
    data = exp.load_data()
    if trained is None:
        trained = get_meta_trained(exp, "standard", data, progress=progress, cache=cache)
    model = trained.model
    check_conv4_bn(model)
    device = next(model.parameters()).device
    params = {name: p.detach() for name, p in model.named_parameters()}
    fixed: dict[str, LayerStats] = {
        "untouched": untouched_stats(model),
        "collected": snapshot_to_layer_stats(model, trained.collected_stats),
        "population": population_stats(model, exp.train_sampler(data), population_tasks),
    }
    sampler = exp.test_sampler(data)
    indices = tuple(range(exp.test_tasks))
    inner_lr = exp.train.inner_lr
    begin = time.perf_counter()
    values, spreads, diverged = _measure(params, fixed, sampler, indices, conditions, lr_factors, inner_lr,
                                         exp.test_inner_steps, device, progress)
    seconds = time.perf_counter() - begin
    spread = {name: {lab: np.median(np.stack(runs), axis=0) for lab, runs in by.items()}
              for name, by in spreads.items()}
    results = {
        name: {lab: EvalResult(name, np.asarray(v), "accuracy", seconds / len(values), indices)
               for lab, v in by_lr.items()}
        for name, by_lr in values.items()
    }
    train_seconds = {"standard": trained.history.seconds}
    if remedies:
        other = get_meta_trained(exp, "query_eval", data, progress=progress, cache=cache)
        train_seconds["query_eval"] = other.history.seconds
        measured = meta_test(other, sampler, ["train_then_eval", "transductive"], exp.test_tasks,
                             exp.test_inner_steps, inner_lr, progress=progress)
        for name, r in measured.items():
            r.name = f"query_eval model: {name}"
            results[r.name] = {lr_label(1.0): r}
            seconds += r.seconds
    return WhyEvalResults(exp, results, train_seconds, seconds, tuple(lr_factors), inner_lr, spread, diverged)
