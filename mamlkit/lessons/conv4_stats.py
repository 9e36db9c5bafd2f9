"""The Conv4 forward pass with BatchNorm's statistics chosen explicitly, for the why-eval experiment
(``mamlkit.lessons.why_eval``), notebook 03 and its exercise: ``conv4_forward`` runs mamlkit's own
``Conv4.forward`` through ``torch.func.functional_call``, a forward hook on each BatchNorm layer normalising with
the statistics chosen (the batch's own, with or without their gradient, fixed ones, or each example's own); and
the statistics themselves, per layer: a batch's at given weights, collected ones, 0 and 1, a population's; and any
model's batch statistics against its running ones (``batch_statistics``, ``running_vs_batch``: the BN statistics
explorer and the inner-loop remedies deep dive)."""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from mamlkit.errors import ConfigError, check_choice
from mamlkit.models import DOWNSAMPLES, Conv4
from mamlkit.modes import StatsSnapshot, preserved_bn_stats, train_mode
from mamlkit.norms import is_batchnorm
from mamlkit.tasks import FixedTasks, TaskSampler

#: Per BatchNorm layer, the (mean, variance) it normalises with; ``None`` means "the batch's own".
LayerStats = list[tuple[torch.Tensor, torch.Tensor]]


def check_conv4_bn(model: nn.Module, downsample: str = "pool") -> None:
    """Raise a ConfigError unless ``model`` is a mamlkit Conv4 with BatchNorm2d and this ``downsample``."""
    norms = [m for m in getattr(model, "features", []) if isinstance(m, nn.BatchNorm2d)]
    if not isinstance(model, Conv4) or len(norms) != 4:
        raise ConfigError("the why-eval experiment needs a mamlkit Conv4 built with norm='bn' (BatchNorm2d layers)")
    has = "pool" if isinstance(model.features[3], nn.MaxPool2d) else "stride"
    if has != downsample:
        raise ConfigError(f"this Conv4 was built with downsample={has!r}, not {downsample!r}: pass "
                          f"downsample={has!r} (the why-eval experiment itself runs on the default, 'pool')")


def _layer_names(model: nn.Module) -> list[str]:
    return [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.BatchNorm2d)]


#: A Conv4 per shape, device and downsampling: the module whose forward pass ``conv4_forward`` runs.
_CONV4S: dict[tuple, Conv4] = {}


def conv4_of(params: dict[str, torch.Tensor], downsample: str) -> Conv4:
    """mamlkit's own Conv4 with the shapes of ``params``, in eval mode; ``functional_call`` runs it with ``params``,
    so its own weights never count. Built once per shape (the caller's random state is kept)."""
    first, head = params["features.0.weight"], params["classifier.weight"]
    key = (tuple(first.shape), tuple(head.shape), downsample, first.device, first.dtype)
    if key not in _CONV4S:
        with torch.random.fork_rng(devices=[]):
            model = Conv4(head.shape[0], first.shape[1], first.shape[0], "bn", downsample=downsample)
        _CONV4S[key] = model.to(device=first.device, dtype=first.dtype).eval().requires_grad_(False)
    return _CONV4S[key]


def conv4_forward(
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    stats: LayerStats | None = None,
    detach_batch_stats: bool = False,
    record: list | None = None,
    eps: float = 1e-5,
    downsample: str = "pool",
    alone: Collection[int] = (),
) -> torch.Tensor:
    """The Conv4 forward pass with the normalisation statistics chosen explicitly.

    It is mamlkit's own ``Conv4.forward`` (``mamlkit.models``), run with ``params`` through
    ``torch.func.functional_call``; a forward hook on each BatchNorm layer normalises with the statistics chosen
    here instead of the layer's mode.

    Args:
        params: ``dict(model.named_parameters())`` of a Conv4, or fast weights with the same names.
        x: images, shape ``[batch, channels, height, width]``.
        stats: per BatchNorm layer the (mean, variance) to normalise with (eval mode), or ``None``
            for the batch's own statistics (train mode).
        detach_batch_stats: with ``stats=None``, treat the batch statistics as constants.
        record: if given, receives per layer ``(batch mean, batch variance, normalised std)`` of the
            layer's input, detached; the normalised std is 1 when the batch's own statistics are used, and
            NaN for the ``alone`` layers (each example has its own).
        eps: BatchNorm's epsilon.
        downsample: the Conv4's ``downsample`` (``"pool"``: max-pool after each block; ``"stride"``:
            stride-2 convolutions).
        alone: with ``stats=None``, the layers (0-3) that normalise each example with its own statistics,
            over its positions only: what every layer does in train mode when an example arrives alone.
    """
    check_choice("downsample", downsample, DOWNSAMPLES)
    if alone and (stats is not None or detach_batch_stats or not set(alone) <= {0, 1, 2, 3}):
        raise ConfigError("alone= takes layers 0-3, with the batch's own statistics (stats=None, not detached)")
    model = conv4_of(params, downsample)
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]

    def normalise(module: nn.Module, inputs: tuple, _output: torch.Tensor) -> torch.Tensor:
        layer, h = norms.index(module), inputs[0]
        with torch.no_grad():
            batch_var, batch_mean = torch.var_mean(h, dim=(0, 2, 3), correction=0)
        weight, bias = module.weight, module.bias             # the fast weights, inside functional_call
        if layer in alone:
            mean, var = batch_mean, batch_var
            out = F.instance_norm(h, weight=weight, bias=bias, eps=eps)  # each example by its own statistics
        elif stats is None and not detach_batch_stats:
            mean, var = batch_mean, batch_var
            out = F.batch_norm(h, None, None, weight, bias, True, 0.0, eps)  # train mode: gradient through them
        else:
            mean, var = (batch_mean, batch_var) if stats is None else stats[layer]
            out = F.batch_norm(h, mean, var, weight, bias, False, 0.0, eps)  # the statistics as constants
        if record is not None:
            spread = float(((batch_var + (batch_mean - mean) ** 2) / (var + eps)).sqrt().mean())
            spread = math.nan if layer in alone else spread if math.isfinite(spread) else math.inf
            record.append((batch_mean, batch_var, spread))
        return out

    hooks = [m.register_forward_hook(normalise) for m in norms]
    try:
        return functional_call(model, params, (x,))
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def batch_stats_at(params: dict[str, torch.Tensor], x: torch.Tensor, downsample: str = "pool") -> LayerStats:
    """Per layer, the (mean, variance) a train-mode pass of ``x`` normalises with at ``params``."""
    record: list = []
    conv4_forward(params, x, record=record, downsample=downsample)
    return [(mean, var) for mean, var, _ in record]


def snapshot_to_layer_stats(model: nn.Module, snapshot: StatsSnapshot) -> LayerStats:
    """Running statistics from a ``snapshot_bn_stats`` snapshot (e.g. collected ones), per layer."""
    return [(snapshot[f"{n}.running_mean"], snapshot[f"{n}.running_var"]) for n in _layer_names(model)]


def untouched_stats(model: nn.Module) -> LayerStats:
    """Mean 0 and variance 1 in every layer: what ``higher`` leaves in the model."""
    return [(torch.zeros_like(model.get_submodule(n).running_mean), torch.ones_like(model.get_submodule(n).running_var))
            for n in _layer_names(model)]


@torch.no_grad()
def population_stats(model: nn.Module, sampler: TaskSampler | FixedTasks, n_tasks: int = 100) -> LayerStats:
    """Statistics of the model's (initial) weights over the support and query sets of ``n_tasks`` tasks.

    One train-mode pass over all the images at once: each layer's statistics are then those of its
    input when the layers below it normalise with the pooled statistics too, which is what eval mode
    with these statistics will see.
    """
    device = next(model.parameters()).device
    tasks = [sampler.task(i) for i in range(n_tasks)]
    images = [torch.cat([t.support_x, t.query_x]) for t in tasks]
    return batch_stats_at(dict(model.named_parameters()), torch.cat(images).to(device))


def batch_statistics(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of the input each BatchNorm layer sees for the batch ``x``, by layer name.

    Any model, at its own weights (``batch_stats_at`` is the Conv4 at given weights, as a list per layer).
    These are the statistics train mode normalises with. The model is run in train mode without
    gradients and is left exactly as it was (modes and running statistics restored).
    """
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name, m in model.named_modules():
        if is_batchnorm(m):
            def record(module, inputs, output, name=name):
                h = inputs[0].transpose(0, 1).flatten(1)  # channels x (batch * positions)
                stats[name] = (h.mean(dim=1), h.var(dim=1, unbiased=False))

            hooks.append(m.register_forward_hook(record))
    try:
        with torch.no_grad(), preserved_bn_stats(model), train_mode(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return stats


def running_vs_batch(model: nn.Module, layer: str, batches: dict[str, torch.Tensor],
                     collected: StatsSnapshot | None = None) -> dict:
    """One BatchNorm layer's batch statistics for several batches, against the running statistics eval mode reads.

    Returns a dict: ``tasks`` (``batch_statistics`` of each batch, by the batches' names), ``running``
    (``"collected"`` from ``collected``, and the layer's own: ``"untouched"`` if it never updated, else
    ``"the model's own"``, each a (mean, var) pair) and ``factor`` (per running source, the typical factor
    between a batch's variance and the running variance: the geometric mean of ``|log(var_batch / var_run)|``
    over channels and batches, exponentiated). The model is left exactly as it was.
    """
    module = dict(model.named_modules())[layer]
    tasks = {name: batch_statistics(model, x) for name, x in batches.items()}
    running: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if collected is not None and f"{layer}.running_mean" in collected:
        running["collected"] = (collected[f"{layer}.running_mean"], collected[f"{layer}.running_var"])
    if getattr(module, "running_mean", None) is not None:
        own = "untouched" if int(module.num_batches_tracked.sum()) == 0 else "the model's own"
        running[own] = (module.running_mean.detach().clone(), module.running_var.detach().clone())
    factor = {}
    for name, (_mean, var) in running.items():
        logs = [(stats[layer][1].cpu() / var.cpu()).log().abs().mean().item() for stats in tasks.values()]
        factor[name] = math.exp(sum(logs) / len(logs))
    return {"tasks": tasks, "running": running, "factor": factor}
