"""Named placements of ``.train()`` / ``.eval()`` in MAML, for meta-training and for meta-test.

A placement says which mode the (patched) model is in while it adapts on the support set and
while it predicts the query set, which running statistics the model holds when eval mode reads
them, and how the query set is presented to the model. Every entry has a one-line description
(``python -m mamlkit placements --help`` prints them) and a one-clause reason for what it scores.

This module is where a placement's meaning lives: ``prepare_stats`` loads the statistics it names,
``predict_query`` presents the query set its way. The loops that adapt (``mamlkit.adapt``) and
evaluate (``mamlkit.evaluate``) call these two and set the modes; they hold no placement logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mamlkit.errors import ConfigError
from mamlkit.modes import StatsSnapshot, reset_bn_stats, restore_bn_stats
from mamlkit.norms import uses_context

if TYPE_CHECKING:
    from mamlkit.tasks import Task

MODES = ("train", "eval")
STATS = ("untouched", "collected")

#: How the query set can reach the model at meta-test, with the words tables, charts and widgets use.
PRESENTATIONS: dict[str, str] = {
    "batch": "whole batch",
    "one_at_a_time": "one at a time",
    "one_class_at_a_time": "one class at a time",
    "one_at_a_time_with_support": "one at a time with support",
}


@dataclass(frozen=True)
class TrainPlacement:
    """Modes used while meta-training.

    Attributes:
        name: short identifier.
        adapt_mode: mode of the patched model during the inner-loop (support) steps.
        query_mode: mode of the patched model when the query loss (the meta-objective) is computed.
        description: one line for people.
    """

    name: str
    adapt_mode: str
    query_mode: str
    description: str


@dataclass(frozen=True)
class Placement:
    """Modes, statistics and query presentation used at meta-test.

    Attributes:
        name: short identifier.
        adapt_mode: mode of the patched model during the support steps.
        query_mode: mode of the patched model when it predicts the query set.
        stats: running statistics the model holds at meta-test: ``"untouched"`` (as ``higher``
            leaves the original model: mean 0, var 1, never updated) or ``"collected"`` (what
            writing each meta-training task's statistics back into the model would have given).
        presentation: ``"batch"`` (the whole query set in one forward pass), ``"one_at_a_time"``,
            ``"one_class_at_a_time"``, or ``"one_at_a_time_with_support"`` (Reptile's
            non-transductive protocol: each query example in one forward pass with the support set).
        description: one line for people.
    """

    name: str
    adapt_mode: str
    query_mode: str
    stats: str
    presentation: str
    description: str

    @property
    def label(self) -> str:
        """A short label for tables and charts, e.g. ``"train/eval, collected"``."""
        text = f"{self.adapt_mode}/{self.query_mode}"
        if "eval" in (self.adapt_mode, self.query_mode):
            text += f", {self.stats} stats"
        if self.presentation != "batch":
            text += ", " + PRESENTATIONS[self.presentation]
        return text

    @property
    def reason(self) -> str:
        """Why this placement scores what it scores, in one clause (with the notebook that shows it)."""
        if self.query_mode == "eval":
            if self.adapt_mode == "eval" and self.stats == "untouched":
                return ("eval mode adapts and predicts with the statistics higher leaves in the model (0 and 1), "
                        "which do not describe the features of a model meta-trained in train mode: even at its best "
                        "step size eval mode with them stays far below train mode (notebook 03)")
            if self.adapt_mode == "eval":
                return ("eval mode freezes the normalisation while the inner steps move the weights: at the "
                        "meta-training step size frozen statistics go stale, collected or not; even the task's own "
                        "statistics at the start fail, while statistics re-estimated before every step recover most of "
                        "the gap and a much smaller step lifts it far above chance, still short of train mode at the "
                        "meta-training step size (notebook 03)")
            if self.stats == "untouched":
                return ("the copy's statistics start at 0 and 1 and each support pass moves them a tenth of the way "
                        "towards the batch's (momentum 0.1), so eval mode normalises the query with a mixture still "
                        "partly 0 and 1 (notebook 02 asserts the share)")
            return ("the support passes pulled the collected statistics towards this task, so eval mode can work, "
                    "but it stays below train mode; statistics re-estimated on the support set at the adapted "
                    "weights do better (notebook 06, one example at a time)")
        if self.adapt_mode == "eval":
            return ("the weights were adapted in eval mode, with running statistics that go stale as the steps move "
                    "the weights (notebook 03), and the query is then normalised with its own batch statistics")
        if self.presentation == "one_at_a_time_with_support":
            return ("train mode, each query example normalised together with the support set (Reptile's "
                    "protocol): no prediction depends on the other query examples, and the batch still looks like "
                    "this task (notebook 04)")
        if self.presentation != "batch":
            return (f"train mode with the query {PRESENTATIONS[self.presentation]}: the batch statistics of a "
                    "partial query differ from the whole query set's (notebook 04)")
        text = ("train mode throughout, as in meta-training: each task is normalised with its own batch statistics "
                "(transductive, notebook 02)")
        if self.stats == "collected":
            text += "; train mode never reads running statistics, so their source changes nothing here"
        return text


TRAIN_PLACEMENTS: dict[str, TrainPlacement] = {
    p.name: p
    for p in [
        TrainPlacement(
            "standard", "train", "train",
            "train mode throughout (original MAML, higher's Omniglot example)",
        ),
        TrainPlacement(
            "query_eval", "train", "eval",
            "adapt in train mode, compute the query loss in eval mode (what some guides advise)",
        ),
    ]
}

PLACEMENTS: dict[str, Placement] = {
    p.name: p
    for p in [
        Placement(
            "transductive", "train", "train", "untouched", "batch",
            "train mode for adaptation and query; the whole query set normalised as one batch",
        ),
        Placement(
            "eval_untouched", "eval", "eval", "untouched", "batch",
            "eval mode throughout, with the running statistics higher leaves in the model (0 and 1)",
        ),
        Placement(
            "eval_collected", "eval", "eval", "collected", "batch",
            "eval mode throughout, with running statistics collected over meta-training tasks",
        ),
        Placement(
            "train_then_eval", "train", "eval", "untouched", "batch",
            "adapt in train mode (moving the copy's untouched statistics), then predict in eval mode",
        ),
        Placement(
            "train_then_eval_collected", "train", "eval", "collected", "batch",
            "adapt in train mode starting from collected statistics, then predict in eval mode",
        ),
        Placement(
            "one_at_a_time", "train", "train", "untouched", "one_at_a_time",
            "train mode, but the query examples arrive one at a time (no transduction)",
        ),
        Placement(
            "one_class_at_a_time", "train", "train", "untouched", "one_class_at_a_time",
            "train mode, but the query arrives one class at a time (unbalanced batches)",
        ),
        Placement(
            "reptile_protocol", "train", "train", "untouched", "one_at_a_time_with_support",
            "train mode, each query example normalised together with the support set (Reptile's protocol)",
        ),
    ]
}


def get_placement(name: str | Placement) -> Placement:
    """The meta-test placement with this name (a Placement is returned as it is)."""
    if isinstance(name, Placement):
        return name
    if name not in PLACEMENTS:
        raise ConfigError(f"unknown placement {name!r}; choose one of: {', '.join(PLACEMENTS)}")
    return PLACEMENTS[name]


def get_train_placement(name: str | TrainPlacement) -> TrainPlacement:
    """The meta-training placement with this name (a TrainPlacement is returned as it is)."""
    if isinstance(name, TrainPlacement):
        return name
    if name not in TRAIN_PLACEMENTS:
        raise ConfigError(
            f"unknown meta-training placement {name!r}; choose one of: {', '.join(TRAIN_PLACEMENTS)}"
        )
    return TRAIN_PLACEMENTS[name]


def custom_placement(
    adapt_mode: str = "train",
    query_mode: str = "train",
    stats: str = "untouched",
    presentation: str = "batch",
    name: str = "custom",
) -> Placement:
    """A placement from its parts, each checked (used by the playground widget)."""
    for kind, value, choices in (
        ("adapt mode", adapt_mode, MODES),
        ("query mode", query_mode, MODES),
        ("statistics source", stats, STATS),
        ("query presentation", presentation, PRESENTATIONS),
    ):
        if value not in choices:
            raise ConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")
    for p in PLACEMENTS.values():
        if (p.adapt_mode, p.query_mode, p.stats, p.presentation) == (adapt_mode, query_mode, stats, presentation):
            return p
    return Placement(name, adapt_mode, query_mode, stats, presentation, "a custom combination")


def prepare_stats(model: nn.Module, stats: str, collected: StatsSnapshot | None) -> None:
    """Load into ``model`` the running statistics a placement names, before a patched copy is made of it.

    ``"untouched"``: mean 0 and variance 1, what ``higher`` leaves in a model it meta-trains;
    ``"collected"``: ``collected`` (``MetaTrained.collected_stats``), as if every meta-training task had
    written its statistics back.
    """
    if stats == "collected":
        if collected is None:
            raise ConfigError("placements with collected running statistics need collected_stats "
                              "(MetaTrained.collected_stats): pass the meta-trained result to meta_test")
        restore_bn_stats(model, collected)
    else:
        reset_bn_stats(model)


def predict_query(model: nn.Module, task: Task, presentation: str = "batch") -> torch.Tensor:
    """Outputs for ``task``'s query set, presented to ``model`` in one of four ways.

    ``"batch"``: one forward pass; ``"one_at_a_time"``: one pass per example;
    ``"one_class_at_a_time"``: one pass per class; ``"one_at_a_time_with_support"``: one pass
    per example with the support set prepended (Reptile's non-transductive protocol: in train
    mode, BatchNorm normalises each query example together with the support set).

    Models with a context normalisation (``metabn``, ``tasknorm_i``) always see the support set
    in front of each presented part, with ``n_context = len(support)``, so their moments come from
    the support set alone. Outputs are in the order of ``task.query_x``.
    """
    x = task.query_x
    if presentation == "batch":
        return _forward(model, task, x)
    if presentation == "one_at_a_time":
        return torch.cat([_forward(model, task, x[i : i + 1]) for i in range(x.shape[0])])
    if presentation == "one_at_a_time_with_support":
        return torch.cat([_forward(model, task, x[i : i + 1], with_support=True) for i in range(x.shape[0])])
    if presentation == "one_class_at_a_time":
        out = None
        for label in torch.unique(task.query_y):
            mask = task.query_y == label
            part = _forward(model, task, x[mask])
            if out is None:
                out = part.new_empty((x.shape[0], *part.shape[1:]))
            out[mask] = part
        return out
    raise ConfigError(f"unknown query presentation {presentation!r}")


def _forward(model: nn.Module, task: Task, part: torch.Tensor, with_support: bool = False) -> torch.Tensor:
    """The outputs for ``part`` of the query set, with the support set in front where needed."""
    if uses_context(model):
        n_support = task.support_x.shape[0]
        return model(torch.cat([task.support_x, part]), n_context=n_support)[n_support:]
    if with_support:
        n_support = task.support_x.shape[0]
        return model(torch.cat([task.support_x, part]))[n_support:]
    return model(part)
