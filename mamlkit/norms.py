"""The normalisation layers a model can be built with, by name.

| name       | layer                                           | statistics used in train / eval mode      |
| ---------- | ----------------------------------------------- | ----------------------------------------- |
| ``bn``     | ``BatchNorm2d`` (tracks running statistics)      | batch / running (the PyTorch default)     |
| ``bn_batch`` | ``BatchNorm2d(track_running_stats=False)``    | batch / batch (torchmeta's, torch.func's) |
| ``instance`` | ``InstanceNorm2d(affine=True)``               | each example's own, in both modes         |
| ``layer``  | ``GroupNorm(1, C)``                              | each example's own, in both modes         |
| ``group``  | ``GroupNorm(G, C)``                              | each example's own, in both modes         |
| ``none``   | ``Identity``                                     | none                                      |
"""

from __future__ import annotations

from torch import nn

from mamlkit.data.base import DataError

NORMS: dict[str, str] = {
    "bn": "BatchNorm with running statistics: batch statistics in train mode, running ones in eval mode",
    "bn_batch": "BatchNorm without running statistics: batch statistics in both modes",
    "instance": "instance normalisation: each example normalised by its own statistics",
    "layer": "layer normalisation (GroupNorm with one group)",
    "group": "group normalisation (4 groups, or fewer when channels do not divide)",
    "none": "no normalisation",
}


class ConfigError(ValueError):
    """A configuration value is not one the package knows; the message lists the valid ones."""


def check_choice(kind: str, value: str, choices: dict[str, str] | list[str] | tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")
    return value


def make_norm(kind: str, channels: int, momentum: float | None = 0.1) -> nn.Module:
    """A 2-d normalisation layer of the named kind for ``channels`` feature maps."""
    check_choice("norm", kind, NORMS)
    if kind == "bn":
        return nn.BatchNorm2d(channels, momentum=momentum, track_running_stats=True)
    if kind == "bn_batch":
        return nn.BatchNorm2d(channels, momentum=momentum, track_running_stats=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "group":
        groups = next(g for g in (4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


def is_norm_layer(module: nn.Module) -> bool:
    """True for the layers whose behaviour a normalisation lesson is about."""
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm))


def is_batchnorm(module: nn.Module) -> bool:
    """True for BatchNorm layers (any dimension, with or without running statistics)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


__all__ = ["NORMS", "ConfigError", "DataError", "check_choice", "make_norm", "is_norm_layer", "is_batchnorm"]
