"""Named placements of ``.train()`` / ``.eval()`` in MAML, for meta-training and for meta-test.

A placement says which mode the (patched) model is in while it adapts on the support set and
while it predicts the query set, which running statistics the model holds when eval mode reads
them, and how the query set is presented to the model. Every entry has a one-line description
(``python -m mamlkit placements --help`` prints them).
"""

from __future__ import annotations

from dataclasses import dataclass

from mamlkit.errors import ConfigError

MODES = ("train", "eval")
STATS = ("untouched", "collected")
PRESENTATIONS = ("batch", "one_at_a_time", "one_class_at_a_time", "one_at_a_time_with_support")


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
            text += ", " + self.presentation.replace("_", " ")
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


def describe_placements() -> str:
    """Every placement with its one-line description, for ``--help`` and the README."""
    lines = ["meta-training placements:"]
    lines += [f"  {p.name:<26} {p.description}" for p in TRAIN_PLACEMENTS.values()]
    lines.append("meta-test placements:")
    lines += [f"  {p.name:<26} {p.description}" for p in PLACEMENTS.values()]
    return "\n".join(lines)
