"""MAML's two loops, each written once: meta-training (``meta_train``) and meta-test prediction
(``adapt_and_predict``), on the patched copy that ``mamlkit.backends.adapted`` opens.

Meta-training: for each task, a patched copy whose fast weights start AS the model's parameters takes a
few differentiable SGD steps on the support set; the query loss of the adapted weights is
back-propagated through those steps into the model's parameters, and an Adam step updates them.

What happens to BatchNorm running statistics: the patched copy has detached COPIES of the model's
buffers, so nothing done inside it reaches the model's own running statistics. ``meta_train`` keeps
that behaviour (``running_stats="copies"``) and also records the statistics that writing each task's
updates back would have given (``collected_stats``), without letting them influence training.
``running_stats="write_back"`` really writes them back after each task, as libraries whose clones
share buffers (learn2learn) do.

Every function that adapts takes ``backend="higher"`` (the default) or ``backend="torch.func"``;
only ``mamlkit.backends`` knows the difference.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mamlkit.backends import adapted, check_backend
from mamlkit.errors import ConfigError
from mamlkit.modes import StatsSnapshot, snapshot_bn_stats
from mamlkit.norms import is_batchnorm
from mamlkit.placements import Placement, TrainPlacement, get_placement, get_train_placement, predict_query
from mamlkit.progress import progress_bar
from mamlkit.rates import ADAPTS, INNER_RATES, InnerRates, inner_rates_for
from mamlkit.tasks import Task, TaskSampler


def task_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class labels, mean squared error for real-valued targets."""
    if target.dtype.is_floating_point:
        return F.mse_loss(output, target)
    return F.cross_entropy(output, target)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of correct predictions."""
    return (logits.argmax(dim=-1) == labels).float().mean().item()


@dataclass(frozen=True)
class TrainConfig:
    """Meta-training settings: part of the cache key of a meta-trained model.

    Attributes:
        iterations: outer (meta) updates.
        meta_batch: tasks per outer update.
        inner_steps: SGD steps on the support set per task.
        inner_lr: inner-loop SGD learning rate.
        outer_lr: Adam learning rate of the meta-update.
        first_order: drop second-order terms (FOMAML) instead of back-propagating through the steps.
        placement: meta-training placement name (see ``mamlkit.placements.TRAIN_PLACEMENTS``).
        running_stats: ``"copies"`` (higher's behaviour) or ``"write_back"``.
        seed: initial weights and training tasks.
        inner_rates: ``"fixed"`` (``inner_lr`` everywhere, MAML) or ``"learned"`` (a rate per parameter
            tensor and inner step, meta-trained: MAML++'s LSLR); see ``mamlkit.rates``.
        adapt: ``"all"`` weights adapt (MAML), or the classifier only, ``"head"`` (ANIL).
    """

    iterations: int = 300
    meta_batch: int = 4
    inner_steps: int = 5
    inner_lr: float = 0.4
    outer_lr: float = 1e-3
    first_order: bool = False
    placement: str = "standard"
    running_stats: str = "copies"
    seed: int = 0
    inner_rates: str = "fixed"
    adapt: str = "all"

    def __post_init__(self) -> None:
        get_train_placement(self.placement)
        if self.inner_rates not in INNER_RATES:
            raise ConfigError(f"inner_rates must be one of {', '.join(INNER_RATES)}, got {self.inner_rates!r}")
        if self.adapt not in ADAPTS:
            raise ConfigError(f"adapt must be one of {', '.join(ADAPTS)}, got {self.adapt!r}")
        if self.inner_rates == "learned" and self.first_order:
            raise ConfigError("learned inner rates need second-order meta-training (first_order=False): "
                              "first-order MAML passes no gradient to them")
        if self.running_stats not in ("copies", "write_back"):
            raise ConfigError(f"running_stats must be 'copies' or 'write_back', got {self.running_stats!r}")
        for name in ("iterations", "meta_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.inner_steps < 0:
            raise ConfigError(f"inner_steps must be 0 or more, got {self.inner_steps}")

    def as_dict(self) -> dict:
        d = asdict(self)
        for name, default in (("inner_rates", "fixed"), ("adapt", "all")):
            if d[name] == default:
                del d[name]  # added later: left out at their defaults so that older models keep their cache keys
        return d

    def rates(self, model: nn.Module) -> InnerRates | None:
        """The table of inner rates this configuration meta-trains with (None: plain MAML, one rate)."""
        return inner_rates_for(model, self.inner_rates, self.adapt, self.inner_steps, self.inner_lr)


@dataclass
class History:
    """What meta-training did: per iteration, the mean query loss and accuracy of its meta-batch."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"loss": list(self.loss), "accuracy": list(self.accuracy), "seconds": float(self.seconds)}


def _accumulate_written_back(shadow: StatsSnapshot, before: StatsSnapshot, after: StatsSnapshot,
                             momenta: dict[str, float]) -> None:
    """Update ``shadow`` as if the copy's statistics had started from it instead of from ``before``.

    A BatchNorm update is ``r <- (1 - m) r + m * batch_stat``. After ``k`` updates the start value
    survives only as ``(1 - m)^k r0`` and the batch statistics do not depend on it (train mode
    never reads running statistics), so the written-back value is
    ``after + (1 - m)^k (shadow - before)``, exactly. A per-step layer (``PerStepBatchNorm2d``) counts
    its updates per step, so ``k`` is one count per row of its statistics.
    """
    for key in list(shadow):
        layer, buf = key.rsplit(".", 1)
        if buf == "num_batches_tracked":
            continue
        counts = after[f"{layer}.num_batches_tracked"] - before[f"{layer}.num_batches_tracked"]
        if counts.dim() == 0:
            keep = (1.0 - momenta[layer]) ** int(counts)
        else:
            keep = torch.tensor([(1.0 - momenta[layer]) ** int(k) for k in counts], dtype=shadow[key].dtype,
                                device=shadow[key].device)[:, None]
        shadow[key] = after[key] + keep * (shadow[key] - before[key])
    for key in list(shadow):
        if key.endswith("num_batches_tracked"):
            shadow[key] = shadow[key] + (after[key] - before[key])


def _bn_momenta(model: nn.Module) -> dict[str, float]:
    momenta = {}
    for name, m in model.named_modules():
        if is_batchnorm(m) and m.track_running_stats:
            if m.momentum is None:
                raise ConfigError(
                    f"BatchNorm layer {name!r} uses a cumulative average (momentum=None); "
                    "give it a momentum (e.g. 0.1) to meta-train with mamlkit"
                )
            momenta[name] = float(m.momentum)
    return momenta


@dataclass
class MetaTrained:
    """A meta-trained model with what is needed to evaluate every placement on it.

    Attributes:
        model: the meta-trained model; its running statistics are whatever meta-training left in
            it (untouched with ``running_stats="copies"``).
        collected_stats: running statistics as if each task's updates had been written back.
        history: losses and accuracies during meta-training.
        config: the configuration it was trained with (a plain dict, the cache key's content).
        inner_rates: the inner learning rates it adapts with when they are not one number (learned, or ANIL's
            head only; ``mamlkit.rates``); ``meta_test`` uses them in place of its ``inner_lr``.
    """

    model: nn.Module
    collected_stats: StatsSnapshot
    history: History
    config: dict
    inner_rates: InnerRates | None = None


def meta_train(
    model: nn.Module,
    sampler: TaskSampler,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
    *,
    backend: str = "higher",
) -> MetaTrained:
    """Meta-train ``model`` in place with MAML on tasks from ``sampler``.

    Training task ``i`` of iteration ``t`` is ``sampler.task(t * meta_batch + i)``, so the same
    sampler seed and config give the same run. ``backend`` (``"higher"`` or ``"torch.func"``) picks
    the implementation of the inner loop; both give the same meta-gradients and statistics (up to
    floating-point rounding). It is not part of ``config``, the cache key.
    """
    check_backend(backend)
    placement = get_train_placement(config.placement)
    device = next(model.parameters()).device
    torch.manual_seed(config.seed)
    rates = config.rates(model)
    if rates is None:
        outer_opt = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
    else:  # learned rates are meta-parameters too
        outer_opt = torch.optim.Adam([*model.parameters(), *rates.parameters()], lr=config.outer_lr)
    momenta = _bn_momenta(model)
    collected = snapshot_bn_stats(model)
    history = History()
    start = time.perf_counter()
    bar = progress_bar(range(config.iterations), desc=f"meta-training ({placement.name})", enabled=progress)
    for iteration in bar:
        outer_opt.zero_grad(set_to_none=True)
        losses, accs = [], []
        for task in sampler.batch(iteration * config.meta_batch, config.meta_batch):
            task = task.to(device)
            loss, acc = _meta_train_task(model, task, placement, config, momenta, collected, backend, rates)
            losses.append(loss)
            accs.append(acc)
        outer_opt.step()
        history.loss.append(sum(losses) / len(losses))
        history.accuracy.append(sum(accs) / len(accs))
        if hasattr(bar, "set_postfix"):
            shown = {"loss": f"{history.loss[-1]:.3f}"}
            if history.accuracy[-1] == history.accuracy[-1]:  # not NaN: classification (regression has no accuracy)
                shown["acc"] = f"{history.accuracy[-1]:.2f}"
            bar.set_postfix(shown, refresh=False)
    history.seconds = time.perf_counter() - start
    return MetaTrained(model, collected, history, {"train": config.as_dict()}, rates)


def _meta_train_task(
    model: nn.Module,
    task: Task,
    placement: TrainPlacement,
    config: TrainConfig,
    momenta: dict[str, float],
    collected: StatsSnapshot,
    backend: str,
    rates: InnerRates | None = None,
) -> tuple[float, float]:
    """One task's contribution to the meta-gradient (accumulated in the model's ``.grad``)."""
    lr = config.inner_lr if rates is None else rates
    with adapted(model, lr, meta=True, first_order=config.first_order, backend=backend) as (fmodel, step, buffers):
        before = {key: buffers()[key].clone() for key in collected}
        fmodel.train(placement.adapt_mode == "train")
        for _ in range(config.inner_steps):
            step(task_loss(fmodel(task.support_x), task.support_y))
        fmodel.train(placement.query_mode == "train")
        logits = predict_query(fmodel, task, "batch")
        query_loss = task_loss(logits, task.query_y) / config.meta_batch
        if not config.first_order:
            query_loss.backward()
        else:
            # First order: the fast weights were detached at every step, so the query gradient
            # at the adapted weights is applied to the initial weights as it is (FOMAML).
            grads = torch.autograd.grad(query_loss, list(fmodel.parameters()), allow_unused=True)
            for p, g in zip(model.parameters(), grads):
                if g is not None:
                    p.grad = g.detach() if p.grad is None else p.grad + g.detach()
        after = {key: buffers()[key].clone() for key in collected}
        _accumulate_written_back(collected, before, after, momenta)
        if config.running_stats == "write_back":
            with torch.no_grad():
                patched = buffers()
                for name, buf in model.named_buffers():
                    buf.copy_(patched[name])
        acc = accuracy(logits, task.query_y) if not task.query_y.dtype.is_floating_point else float("nan")
    return query_loss.item() * config.meta_batch, acc


def adapt_and_predict(
    model: nn.Module,
    task: Task,
    placement: str | Placement,
    inner_steps: int = 10,
    inner_lr: float | InnerRates = 0.4,
    *,
    backend: str = "higher",
) -> torch.Tensor:
    """Adapt a copy of ``model`` to ``task``'s support set and predict its query set.

    The model itself is not changed: parameters and buffers are copied by ``higher``
    (``copy_initial_weights=True``), and the patched copy's modes are set, not the model's.
    Running statistics are the model's own: load collected ones first for ``stats="collected"``.
    ``inner_lr`` may be a table of rates (``MetaTrained.inner_rates``: learned, or ANIL's head only).
    ``backend="torch.func"`` does the same with ``torch.func.functional_call`` (cloned parameters
    and buffers; the model's modes are set during each call and put back).

    Returns:
        Query outputs in the order of ``task.query_x``.
    """
    placement = get_placement(placement)
    return adapt_and_predict_many(model, task, [placement], inner_steps, inner_lr, backend=backend)[placement.name]


def adapt_and_predict_many(
    model: nn.Module,
    task: Task,
    placements: list[Placement],
    inner_steps: int = 10,
    inner_lr: float | InnerRates = 0.4,
    *,
    backend: str = "higher",
) -> dict[str, torch.Tensor]:
    """``adapt_and_predict`` for several placements that share an adaptation mode, adapting once.

    All placements must have the same ``adapt_mode`` (their ``stats`` are not looked at: the
    model's current running statistics are used). The fast weights after adaptation are the same
    for all of them, so the support steps run once; then every placement predicts the query set
    from the same adapted copy. Eval-mode predictions run first: they read the copy's running
    statistics, which train-mode predictions would move (train mode never reads them), so the
    outputs are exactly those of separate runs. ``backend`` is ``"higher"`` or ``"torch.func"``.
    """
    check_backend(backend)
    modes = {p.adapt_mode for p in placements}
    if len(modes) != 1:
        raise ConfigError(f"placements must share their adapt mode to be adapted once, got {sorted(modes)}")
    outputs: dict[str, torch.Tensor] = {}
    with adapted(model, inner_lr, meta=False, backend=backend) as (fmodel, step, _):
        fmodel.train(modes.pop() == "train")
        for _ in range(inner_steps):
            step(task_loss(fmodel(task.support_x), task.support_y))
        with torch.no_grad():
            for p in sorted(placements, key=lambda p: p.query_mode == "train"):
                fmodel.train(p.query_mode == "train")
                outputs[p.name] = predict_query(fmodel, task, p.presentation)
    return outputs
