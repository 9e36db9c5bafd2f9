"""The normalisation layers a model can be built with, by name.

| name       | layer                                           | statistics used in train / eval mode      |
| ---------- | ----------------------------------------------- | ----------------------------------------- |
| ``bn``     | ``BatchNorm2d`` (tracks running statistics)      | batch / running (the PyTorch default)     |
| ``bn_batch`` | ``BatchNorm2d(track_running_stats=False)``    | batch / batch (torchmeta's, torch.func's) |
| ``instance`` | ``InstanceNorm2d(affine=True)``               | each example's own, in both modes         |
| ``layer``  | ``GroupNorm(1, C)``                              | each example's own, in both modes         |
| ``group``  | ``GroupNorm(G, C)``                              | each example's own, in both modes         |
| ``metabn`` | ``SupportBatchNorm2d``                           | the support set's, in both modes (MetaBN)  |
| ``tasknorm_i`` | ``TaskNormI``                                 | support moments blended with each          |
|            |                                                  | example's own by a learned weight          |
| ``tasknorm_i_authors`` | ``TaskNormI(per_channel=False, unbiased=True)`` | as ``tasknorm_i``, as the authors' code |
|            |                                                  | computes it (one weight per layer)         |
| ``bn_per_step`` | ``PerStepBatchNorm2d`` (MAML++'s BNRS + BNWB) | batch / running, one set per inner step   |
| ``none``   | ``Identity``                                     | none                                      |

``metabn`` and ``tasknorm_i`` are *context* normalisations: their forward pass takes
``n_context``, the number of leading examples of the batch that form the context (the support
set). Moments come from those examples only, so a query example's output does not depend on the
other query examples. ``mamlkit.adapt.predict_query`` passes ``[support; query]`` with
``n_context = len(support)``; a plain forward (``n_context=None``) uses the whole batch as the
context, which is what the inner loop on the support set needs.
"""

from __future__ import annotations

import torch
from torch import nn

from mamlkit.errors import check_choice

NORMS: dict[str, str] = {
    "bn": "BatchNorm with running statistics: batch statistics in train mode, running ones in eval mode",
    "bn_batch": "BatchNorm without running statistics: batch statistics in both modes",
    "instance": "instance normalisation: each example normalised by its own statistics",
    "layer": "layer normalisation (GroupNorm with one group)",
    "group": "group normalisation (4 groups, or fewer when channels do not divide)",
    "metabn": "support-set BatchNorm (MetaBN): support and query normalised with the support set's moments",
    "tasknorm_i": "TaskNorm-I: support-set moments blended with instance moments by a learned, size-dependent weight",
    "tasknorm_i_authors": "TaskNorm-I as the authors' code computes it: one blending weight per layer, unbiased "
                          "variances",
    "bn_per_step": "MAML++'s per-step BatchNorm: running statistics, weight and bias of its own for every inner step",
    "none": "no normalisation",
}

#: The context normalisations: their statistics come from the support set only.
CONTEXT_NORMS = ("metabn", "tasknorm_i", "tasknorm_i_authors")


def make_norm(kind: str, channels: int, momentum: float | None = 0.1, steps: int = 5) -> nn.Module:
    """A 2-d normalisation layer of the named kind for ``channels`` feature maps (``steps``: ``bn_per_step``'s)."""
    check_choice("norm", kind, NORMS)
    if kind == "bn_per_step":
        return PerStepBatchNorm2d(channels, steps, momentum=momentum)
    if kind == "bn":
        return nn.BatchNorm2d(channels, momentum=momentum, track_running_stats=True)
    if kind == "bn_batch":
        return nn.BatchNorm2d(channels, momentum=momentum, track_running_stats=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "metabn":
        return SupportBatchNorm2d(channels)
    if kind == "tasknorm_i":
        return TaskNormI(channels)
    if kind == "tasknorm_i_authors":
        return TaskNormI(channels, per_channel=False, unbiased=True)
    if kind == "group":
        groups = next(g for g in (4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class ContextNorm(nn.Module):
    """Base of the normalisations whose moments come from a context (the support set).

    ``forward(x, n_context)`` normalises every example of ``x`` with moments computed from
    ``x[:n_context]`` (all of ``x`` when ``n_context`` is None). There are no running statistics,
    so train and eval mode behave the same. A per-channel scale and shift follow, as in BatchNorm.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def context(self, x: torch.Tensor, n_context: int | None) -> torch.Tensor:
        if n_context is None:
            return x
        if not 1 <= n_context <= x.shape[0]:
            raise ValueError(f"n_context must be between 1 and the batch size {x.shape[0]}, got {n_context}")
        return x[:n_context]

    def affine(self, normalised: torch.Tensor) -> torch.Tensor:
        return normalised * self.weight[None, :, None, None] + self.bias[None, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class SupportBatchNorm2d(ContextNorm):
    """MetaBN: BatchNorm moments (over examples and positions) of the context examples only."""

    def forward(self, x: torch.Tensor, n_context: int | None = None) -> torch.Tensor:
        var, mean = torch.var_mean(self.context(x, n_context), dim=(0, 2, 3), unbiased=False, keepdim=True)
        return self.affine((x - mean) / torch.sqrt(var + self.eps))


class TaskNormI(ContextNorm):
    """TaskNorm-I (Bronskill et al., ICML 2020): context BatchNorm moments blended with instance ones.

    With ``n`` context examples, ``alpha = sigmoid(scale * n + offset)`` per channel (``scale``
    and ``offset`` are learned, starting at 0 and 0, so alpha starts at 0.5). Per example ``i``::

        mean_i = alpha * mean_ctx + (1 - alpha) * mean_inst_i
        var_i  = alpha * (var_ctx + (mean_ctx - mean_i)^2) + (1 - alpha) * (var_inst_i + (mean_inst_i - mean_i)^2)

    that is, the moments of the mixture of the two distributions. Small support sets can learn to
    lean on the instance moments, large ones on the support set's.

    By default ``scale`` and ``offset`` are per channel and the variances biased (divided by the number of
    values). The authors' code (``cambridge-mlg/cnaps``, ``normalization_layers.py``) has one scalar pair per
    layer and unbiased variances (``torch.var``): ``per_channel=False, unbiased=True`` (norm
    ``"tasknorm_i_authors"``). ``tools/tasknorm_variants.py`` measures the difference.
    """

    def __init__(self, channels: int, eps: float = 1e-5, per_channel: bool = True, unbiased: bool = False) -> None:
        super().__init__(channels, eps)
        self.unbiased = unbiased
        self.scale = nn.Parameter(torch.zeros(channels if per_channel else 1))
        self.offset = nn.Parameter(torch.zeros(channels if per_channel else 1))

    def alpha(self, n_context: int) -> torch.Tensor:
        """The blending weight for a context of ``n_context`` examples, one per channel (or one for the layer)."""
        return torch.sigmoid(self.scale * n_context + self.offset)

    def forward(self, x: torch.Tensor, n_context: int | None = None) -> torch.Tensor:
        ctx = self.context(x, n_context)
        alpha = self.alpha(ctx.shape[0])[None, :, None, None]
        var_ctx, mean_ctx = torch.var_mean(ctx, dim=(0, 2, 3), unbiased=self.unbiased, keepdim=True)
        var_inst, mean_inst = torch.var_mean(x, dim=(2, 3), unbiased=self.unbiased, keepdim=True)
        mean = alpha * mean_ctx + (1 - alpha) * mean_inst
        var = alpha * (var_ctx + (mean_ctx - mean) ** 2) + (1 - alpha) * (var_inst + (mean_inst - mean) ** 2)
        return self.affine((x - mean) / torch.sqrt(var + self.eps))


class PerStepBatchNorm2d(nn.BatchNorm2d):
    """MAML++'s per-step BatchNorm (Antoniou et al., ICLR 2019): BNRS and BNWB.

    Every inner step ``k`` has running statistics (``running_mean[k]``, ``running_var[k]``,
    ``num_batches_tracked[k]``) and a weight and bias (``weight[k]``, ``bias[k]``) of its own. Which step is
    running is the layer's ``inner_step``, set by ``set_inner_step`` (mamlkit's inner loops set it before every
    forward pass: ``k`` before the support pass of step ``k``, the number of steps taken for the query). Steps
    past the last one the layer has reuse the last one, as happens when meta-test takes more inner steps than
    meta-training.

    Otherwise it is ``BatchNorm2d``: batch statistics in train mode (step ``k``'s running statistics are
    updated), step ``k``'s running statistics in eval mode. MAML++'s official code passes ``training=True`` in
    both modes, so its per-step statistics are written and never read: with mamlkit, that behaviour is simply
    train mode at meta-test (the ``transductive`` placement); eval mode really reads them.
    """

    def __init__(self, channels: int, steps: int, momentum: float | None = 0.1, eps: float = 1e-5) -> None:
        if steps < 1:
            raise ValueError(f"a per-step BatchNorm needs at least 1 step, got {steps}")
        if momentum is None:
            raise ValueError("a per-step BatchNorm needs a momentum (e.g. 0.1), not a cumulative average")
        super().__init__(channels, eps=eps, momentum=momentum)
        self.steps = steps
        self.inner_step = 0
        self.weight = nn.Parameter(torch.ones(steps, channels))
        self.bias = nn.Parameter(torch.zeros(steps, channels))
        self.register_buffer("running_mean", torch.zeros(steps, channels))
        self.register_buffer("running_var", torch.ones(steps, channels))
        self.register_buffer("num_batches_tracked", torch.zeros(steps, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = min(self.inner_step, self.steps - 1)
        if self.training:
            self.num_batches_tracked[k] += 1
        return torch.nn.functional.batch_norm(
            x, self.running_mean[k], self.running_var[k], self.weight[k], self.bias[k],
            self.training, self.momentum, self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, steps={self.steps}, momentum={self.momentum}"


def set_inner_step(model: object, step: int) -> None:
    """Tell every per-step layer of ``model`` (a module, a patched copy or a ``FunctionalModel``) the inner step."""
    for m in model.modules():
        if isinstance(m, PerStepBatchNorm2d):
            m.inner_step = step


def is_context_norm(module: nn.Module) -> bool:
    """True for normalisations that take ``n_context`` (their moments come from the support set)."""
    return isinstance(module, ContextNorm)


def uses_context(model: nn.Module) -> bool:
    """True when the model has a context normalisation, so its forward pass takes ``n_context``."""
    return any(is_context_norm(m) for m in model.modules())


def is_norm_layer(module: nn.Module) -> bool:
    """True for the layers whose behaviour a normalisation lesson is about."""
    return isinstance(
        module,
        (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, ContextNorm),
    )


def is_batchnorm(module: nn.Module) -> bool:
    """True for BatchNorm layers (any dimension, with or without running statistics)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


__all__ = [
    "NORMS", "CONTEXT_NORMS", "make_norm", "is_norm_layer",
    "is_batchnorm", "is_context_norm", "uses_context", "ContextNorm", "SupportBatchNorm2d", "TaskNormI",
    "PerStepBatchNorm2d", "set_inner_step",
]
