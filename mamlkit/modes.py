"""The ``.train()`` / ``.eval()`` toggles, made explicit, reversible and inspectable.

``module.train()`` and ``module.eval()`` only set the ``training`` flag of every submodule. The
layers that read the flag here are normalisation layers (batch vs running statistics, and whether
running statistics are updated) and Dropout. Gradients are NOT affected by the flag.

Everything here works on a plain model and on the patched copy ``higher`` makes of it (``fmodel``).
Note that ``higher`` copies the flags when it patches a model: to change the patched model's mode,
toggle ``fmodel``, not ``model``.

``train_mode(model)`` and ``eval_mode(model)`` switch the model when they are called. As ``with train_mode(model):``
they also put every flag back when the block ends; called alone, without ``with``, they work like ``model.train()``
and ``model.eval()``: the model stays switched, and nothing restores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

from mamlkit.errors import ConfigError
from mamlkit.norms import is_batchnorm, is_norm_layer
from mamlkit.table import Table

Modes = dict[str, bool]


def get_modes(model: nn.Module) -> Modes:
    """The ``training`` flag of every submodule, by name (``""`` is the model itself)."""
    return {name: m.training for name, m in model.named_modules()}


def restore_modes(model: nn.Module, modes: Modes) -> None:
    """Set every submodule's ``training`` flag back to what ``get_modes`` recorded."""
    for name, m in model.named_modules():
        if name in modes:
            m.training = modes[name]


class mode(AbstractContextManager):  # noqa: N801 - used like a function: ``with mode(model, True):``
    """``model`` (or, with ``norm_only``, just its normalisation layers) switched to the given mode at once.

    The switch happens when ``mode(...)`` is called, as ``model.train()`` would do it; used as ``with mode(...):``
    every submodule gets back exactly the flag it had before when the block ends, even after an exception. Called
    without ``with``, the model simply stays switched (nothing restores it).
    """

    def __init__(self, model: nn.Module, training: bool, norm_only: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(norm_only, bool):
            raise ConfigError(f"norm_only must be True or False, got {norm_only!r}")
        self.model = model
        self.before = get_modes(model)
        for m in model.modules():
            if not norm_only or is_norm_layer(m):
                m.training = bool(training)

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc: object) -> None:
        restore_modes(self.model, self.before)


def draws_random_numbers(model: nn.Module) -> bool:
    """True when a train-mode forward pass of ``model`` draws random numbers: a Dropout layer with p > 0."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


@contextmanager
def dropout_off(model: nn.Module) -> Iterator[list[float]]:
    """Within the block every Dropout layer of ``model`` drops nothing (``p = 0``), in either mode; the block gets
    the rates of the layers that dropped something (``[]``: the model has no Dropout at work).

    With it, a placement that adapts or predicts in train mode keeps BatchNorm's batch statistics and turns
    Dropout off: the separated placement of the deep dive does_it_hold, for models that have both
    (``model.eval()`` would switch BatchNorm to running statistics too). Patched copies made inside the block
    (``higher``) copy the rate. On exit every Dropout layer gets back its rate, even after an exception.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
    rates = [m.p for m in layers]
    try:
        for m in layers:
            m.p = 0.0
        yield rates
    finally:
        for m, p in zip(layers, rates):
            m.p = p


def train_mode(model: nn.Module, norm_only: bool = False) -> AbstractContextManager[nn.Module]:
    """``with train_mode(model):`` the whole model in train mode, previous modes restored after.

    ``norm_only=True``: only the normalisation layers (batch statistics); Dropout and the rest keep their flags.
    The model is switched when ``train_mode`` is called: without ``with``, ``mk.train_mode(model)`` works like
    ``model.train()`` (and nothing restores the modes).
    """
    return mode(model, True, norm_only)


def eval_mode(model: nn.Module, norm_only: bool = False) -> AbstractContextManager[nn.Module]:
    """``with eval_mode(model):`` the whole model in eval mode, previous modes restored after.

    ``norm_only=True``: only the normalisation layers (running statistics); Dropout and the rest keep their flags.
    The model is switched when ``eval_mode`` is called: without ``with``, ``mk.eval_mode(model)`` works like
    ``model.eval()`` (and nothing restores the modes).
    """
    return mode(model, False, norm_only)


StatsSnapshot = dict[str, torch.Tensor]


def snapshot_bn_stats(model: nn.Module) -> StatsSnapshot:
    """Copies of every BatchNorm running statistic (mean, var, num_batches_tracked), by name."""
    snap: StatsSnapshot = {}
    for name, m in model.named_modules():
        if is_batchnorm(m) and m.track_running_stats:
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                value = getattr(m, buf)
                if value is not None:
                    snap[f"{name}.{buf}"] = value.detach().clone()
    return snap


def restore_bn_stats(model: nn.Module, snapshot: StatsSnapshot) -> None:
    """Write a ``snapshot_bn_stats`` snapshot back into the model's buffers, in place."""
    modules = dict(model.named_modules())
    for key, value in snapshot.items():
        name, buf = key.rsplit(".", 1)
        if name not in modules or getattr(modules[name], buf, None) is None:
            raise KeyError(f"the model has no BatchNorm buffer {key!r}; was the snapshot taken from another model?")
        with torch.no_grad():
            getattr(modules[name], buf).copy_(value)


@contextmanager
def preserved_bn_stats(model: nn.Module) -> Iterator[StatsSnapshot]:
    """Within the block running statistics may change; on exit they are restored bit for bit."""
    snap = snapshot_bn_stats(model)
    try:
        yield snap
    finally:
        restore_bn_stats(model, snap)


def reset_bn_stats(model: nn.Module) -> nn.Module:
    """Running statistics back to their initial values (mean 0, var 1, 0 batches tracked)."""
    for m in model.modules():
        if is_batchnorm(m) and m.track_running_stats:
            m.reset_running_stats()
    return model


def bn_stats_untouched(model: nn.Module) -> bool:
    """True when no BatchNorm layer has ever updated its running statistics."""
    layers = [m for m in model.modules() if is_batchnorm(m) and m.track_running_stats]
    return all(int(m.num_batches_tracked.sum()) == 0 for m in layers)


def _layer_type(module: nn.Module) -> str:
    """The layer's own class name, also for higher's patched copies (``InnerFunctionalBatchNorm2d``)."""
    return next(c.__name__ for c in type(module).__mro__ if not c.__module__.startswith("higher"))


def norm_report(model: nn.Module) -> Table:
    """One row per normalisation layer: its mode, settings and running-statistics summary."""
    table = Table(
        ["layer", "type", "mode", "momentum", "tracks stats", "batches tracked", "mean of running_mean",
         "mean of running_var"],
        title=f"Normalisation layers of {_layer_type(model)} (model mode: {'train' if model.training else 'eval'})",
    )
    for name, m in model.named_modules():
        if not is_norm_layer(m):
            continue
        tracks = bool(getattr(m, "track_running_stats", False)) and getattr(m, "running_mean", None) is not None
        momentum = getattr(m, "momentum", None)
        table.add_row(
            name or "(model)",
            _layer_type(m),
            "train" if m.training else "eval",
            "-" if momentum is None else f"{momentum:g}",
            "yes" if tracks else "no",
            int(m.num_batches_tracked.sum()) if tracks else "-",
            f"{m.running_mean.mean().item():+.4f}" if tracks else "-",
            f"{m.running_var.mean().item():.4f}" if tracks else "-",
        )
    return table


