"""MAML's two loops, each written once: meta-training (``meta_train``) and meta-test prediction
(``adapt_and_predict``), on the patched copy that ``mamlkit.backends.adapted`` opens.

Meta-training: for each task, a patched copy whose fast weights start AS the model's parameters takes a
few differentiable SGD steps on the support set; the query loss of the adapted weights is
back-propagated through those steps into the model's parameters, and an Adam step updates them.

What happens to BatchNorm running statistics: the patched copy has detached COPIES of the model's
buffers, so nothing done inside it reaches the model's own running statistics. ``meta_train`` keeps
that behaviour (``running_stats="copies"``) and also records the statistics that writing each task's
updates back would have given (``collected_stats``), without letting them influence training.
``running_stats="write_back"`` really writes them back after each task, as learn2learn's clones, which
share the model's buffers, do: the same statistics as learn2learn 0.2.0's own loop on the same tasks
(tests/test_libraries.py; each library in docs/libraries.md).

Every function that adapts takes ``backend="higher"`` (the default) or ``backend="torch.func"``;
only ``mamlkit.backends`` knows the difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mamlkit.backends import adapted, check_backend
from mamlkit.errors import ConfigError
from mamlkit.modes import StatsSnapshot, draws_random_numbers, snapshot_bn_stats
from mamlkit.norms import is_batchnorm
from mamlkit.placements import Placement, TrainPlacement, get_placement, get_train_placement, predict_query
from mamlkit.plumbing import checks
from mamlkit.plumbing.lanes import task_pool, task_threads
from mamlkit.plumbing.machine import signature as machine_signature
from mamlkit.progress import progress_bar
from mamlkit.rates import InnerRates, inner_rates_for
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
        checks.train_config(self)  # every other setting, each refusal saying what to do

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
        machine: the signature of the machine that meta-trained it (``mamlkit.plumbing.machine.signature``; ``None``
            where it is not known): another run reproduces it bit for bit only on the same machine.
    """

    model: nn.Module
    collected_stats: StatsSnapshot
    history: History
    config: dict
    inner_rates: InnerRates | None = None
    machine: dict | None = None


def meta_train(
    model: nn.Module,
    sampler: TaskSampler,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
    *,
    backend: str = "higher",
    threads: int | None = None,
) -> MetaTrained:
    """Meta-train ``model`` in place with MAML on tasks from ``sampler``.

    Training task ``i`` of iteration ``t`` is ``sampler.task(t * meta_batch + i)``, so the same
    sampler seed and config give the same run. ``backend`` (``"higher"`` or ``"torch.func"``) picks
    the implementation of the inner loop; both give the same meta-gradients and statistics (up to
    floating-point rounding). It is not part of ``config``, the cache key.

    ``threads``: how many tasks of a meta-batch are computed side by side in this process, each
    operation on one torch thread, at most ``meta_batch`` (``None``: ``$MAMLKIT_TASK_THREADS``, else 1, one
    task at a time at torch's thread count, as a loop written by hand; the command line uses torch's thread
    count). Each task's meta-gradient is computed on its own and added to the model's ``.grad`` in task
    order, so with tasks side by side the model and its statistics are the same bit for bit as one task at
    a time at one torch thread. Small convolutions split badly over torch's threads; whole tasks split well.
    Tasks run one at a time, at torch's thread count, where they would share state
    (``mamlkit.plumbing.lanes.task_threads``): the ``torch.func`` backend, ``running_stats="write_back"``, Dropout,
    autocast, off the CPU; a model found to draw random numbers in the first meta-iteration also stays one at a
    time (at one thread).
    """
    check_backend(backend)
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}: wrap your settings as "
                          "mk.TrainConfig(**settings)")
    device = checks.model_device(model)
    # anything with batch(start, size), the one method meta_train calls (a TaskSampler, or a wrapper around one)
    checks.task_source(sampler, "batch", "a task sampler such as mk.TaskSampler(data['train'], ...)")
    placement = get_train_placement(config.placement)
    torch.manual_seed(config.seed)
    rates = config.rates(model)
    meta_parameters = list(model.parameters()) if rates is None else [*model.parameters(), *rates.parameters()]
    outer_opt = torch.optim.Adam(meta_parameters, lr=config.outer_lr)  # learned rates are meta-parameters too
    leaves = [p for p in meta_parameters if p.requires_grad]  # what the query loss is differentiated for
    # First order differentiates for the adapted weights and applies that gradient to the model's own.
    targets = list(model.parameters()) if config.first_order else leaves
    momenta = _bn_momenta(model)
    collected = snapshot_bn_stats(model)
    history = History()
    stats_keys = list(collected)
    side_by_side = task_threads(model, config, backend, threads)
    start = time.perf_counter()
    bar = progress_bar(range(config.iterations), desc=f"meta-training ({placement.name})", enabled=progress)
    with task_pool(side_by_side) as pool:
        for iteration in bar:
            outer_opt.zero_grad(set_to_none=True)
            tasks = [task.to(device) for task in sampler.batch(iteration * config.meta_batch, config.meta_batch)]
            for i, task in enumerate(tasks):
                checks.task(task, f"training task {iteration * config.meta_batch + i}")
            if iteration == 0 and not tasks[0].support_y.dtype.is_floating_point:
                checks.head(model, tasks[0], int(tasks[0].support_y.max()) + 1, "the first training task")

            def contribution(task: Task) -> _Contribution:
                return _task_contribution(model, leaves, task, placement, config, stats_keys, backend, rates)

            # The first meta-iteration runs in this thread: if it draws random numbers (a layer mamlkit does not
            # know), tasks side by side would share torch's one generator, so they stay one at a time. One at a
            # time, ``map`` is lazy: task i + 1's copy is made after task i has written its statistics back.
            probe = pool is not None and iteration == 0
            random_state = torch.random.get_rng_state() if probe else None
            side = pool is not None and iteration > 0
            losses, accs = [], []
            for part in (pool.map(contribution, tasks) if side else map(contribution, tasks)):
                _add_contribution(model, targets, part, momenta, collected)
                losses.append(part.loss)
                accs.append(part.accuracy)
            if probe and not torch.equal(random_state, torch.random.get_rng_state()):
                pool = None
            _stop_if_diverged(losses, iteration, config)
            outer_opt.step()
            history.loss.append(sum(losses) / len(losses))
            history.accuracy.append(sum(accs) / len(accs))
            if hasattr(bar, "set_postfix"):
                shown = {"loss": f"{history.loss[-1]:.3f}"}
                if history.accuracy[-1] == history.accuracy[-1]:  # not NaN: classification (regression has no accuracy)
                    shown["acc"] = f"{history.accuracy[-1]:.2f}"
                bar.set_postfix(shown, refresh=False)
    history.seconds = time.perf_counter() - start
    return MetaTrained(model, collected, history, {"train": config.as_dict()}, rates, machine_signature())


def _stop_if_diverged(losses: list[float], iteration: int, config: TrainConfig) -> None:
    """Stop meta-training at a query loss that is NaN or infinite (before the update that would spread it)."""
    loss = sum(losses) / len(losses)
    if not math.isfinite(loss):
        raise ConfigError(f"meta-training diverged: the query loss is {loss} at meta-iteration {iteration + 1} of "
                          f"{config.iterations}; try a smaller inner_lr (now {config.inner_lr:g}) or outer_lr (now "
                          f"{config.outer_lr:g})")


@dataclass
class _Contribution:
    """What one task adds to a meta-iteration: gradients, statistics before and after, loss and accuracy."""

    grads: tuple[torch.Tensor | None, ...]
    before: StatsSnapshot
    after: StatsSnapshot
    written_back: dict[str, torch.Tensor] | None
    loss: float
    accuracy: float


def _task_contribution(
    model: nn.Module,
    leaves: list[torch.Tensor],
    task: Task,
    placement: TrainPlacement,
    config: TrainConfig,
    stats_keys: list[str],
    backend: str,
    rates: InnerRates | None = None,
) -> _Contribution:
    """One task's contribution to the meta-gradient, computed without changing the model."""
    lr = config.inner_lr if rates is None else rates
    with adapted(model, lr, meta=True, first_order=config.first_order, backend=backend) as (fmodel, step, buffers):
        before = {key: buffers()[key].clone() for key in stats_keys}
        fmodel.train(placement.adapt_mode == "train")
        for _ in range(config.inner_steps):
            step(task_loss(fmodel(task.support_x), task.support_y))
        fmodel.train(placement.query_mode == "train")
        logits = predict_query(fmodel, task, "batch")
        query_loss = task_loss(logits, task.query_y) / config.meta_batch
        if config.first_order:
            # First order: the fast weights were detached at every step, so the query gradient
            # at the adapted weights is applied to the initial weights as it is (FOMAML).
            leaves = list(fmodel.parameters())
        grads = torch.autograd.grad(query_loss, leaves, allow_unused=True)
        after = {key: buffers()[key].clone() for key in stats_keys}
        written_back = None
        if config.running_stats == "write_back":
            written_back = {name: buf.detach().clone() for name, buf in buffers().items()}
        acc = accuracy(logits, task.query_y) if not task.query_y.dtype.is_floating_point else float("nan")
    return _Contribution(tuple(g.detach() if g is not None else None for g in grads), before, after, written_back,
                         query_loss.item() * config.meta_batch, acc)


def _add_contribution(model: nn.Module, targets: list[torch.Tensor], part: _Contribution,
                      momenta: dict[str, float], collected: StatsSnapshot) -> None:
    """Add one task's gradients to ``.grad`` (in task order, as ``backward()`` would) and its statistics."""
    with torch.no_grad():
        for p, g in zip(targets, part.grads):
            if g is not None:
                if p.grad is None:
                    p.grad = g.clone()  # as backward() stores it: never a view or a tensor shared by two leaves
                else:
                    p.grad += g
        if part.written_back is not None:
            for name, buf in model.named_buffers():
                buf.copy_(part.written_back[name])
    _accumulate_written_back(collected, part.before, part.after, momenta)


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
    replay: tuple[StatsSnapshot, list[Placement]] | None = None,
) -> dict[str, torch.Tensor]:
    """``adapt_and_predict`` for several placements that share an adaptation mode, adapting once.

    All placements must have the same ``adapt_mode`` (their ``stats`` are not looked at: the
    model's current running statistics are used). The fast weights after adaptation are the same
    for all of them, so the support steps run once; then every placement predicts the query set
    from the same adapted copy. Eval-mode predictions run first: they read the copy's running
    statistics, which train-mode predictions would move (train mode never reads them), so the
    outputs are exactly those of separate runs. ``backend`` is ``"higher"`` or ``"torch.func"``.

    ``replay=(start, others)``: more placements, adapted in train mode like ``placements`` but from the
    running statistics ``start`` (a ``snapshot_bn_stats`` snapshot) instead of the model's. Train mode never
    reads running statistics, so their fast weights are the same; only the statistics the steps leave
    differ, and those are replayed: every BatchNorm layer's input at every step also updates a copy of
    ``start`` through the same ``torch.batch_norm`` call, bit for bit what a separate adaptation would
    leave (tested). Only on the CPU, for plain ``nn.BatchNorm2d`` layers with a momentum (see ``can_replay``)
    and ``backend="higher"``.
    """
    check_backend(backend)
    modes = {p.adapt_mode for p in placements}
    if len(modes) != 1:
        raise ConfigError(f"placements must share their adapt mode to be adapted once, got {sorted(modes)}")
    if replay is not None:
        start, others = replay
        if ({p.adapt_mode for p in others} | modes != {"train"} or backend != "higher" or not can_replay(model)
                or set(start) != set(snapshot_bn_stats(model))):
            raise ConfigError("replay needs train-mode adaptation for every placement, the higher backend, a model on "
                              "the CPU with plain BatchNorm2d layers with a momentum and no active Dropout "
                              "(mamlkit.adapt.can_replay), and a snapshot of its statistics")
        if {p.name for p in others} & {p.name for p in placements}:
            raise ConfigError("replay: a placement cannot be both adapted and replayed")
    outputs: dict[str, torch.Tensor] = {}
    with adapted(model, inner_lr, meta=False, backend=backend) as (fmodel, step, buffers):
        fmodel.train(modes.pop() == "train")
        with _replayed_statistics(fmodel, None if replay is None else replay[0]) as replayed:
            for _ in range(inner_steps):
                step(task_loss(fmodel(task.support_x), task.support_y))
        others = [] if replay is None else list(replay[1])
        with torch.no_grad():
            for p in placements:
                if p.query_mode == "eval":
                    fmodel.eval()
                    outputs[p.name] = predict_query(fmodel, task, p.presentation)
            if others:
                own = buffers()
                for key, value in replayed.items():
                    own[key].copy_(value)
                for p in others:
                    if p.query_mode == "eval":
                        fmodel.eval()
                        outputs[p.name] = predict_query(fmodel, task, p.presentation)
            for p in placements + others:
                if p.query_mode == "train":
                    fmodel.train()
                    outputs[p.name] = predict_query(fmodel, task, p.presentation)
    return outputs


def can_replay(model: nn.Module) -> bool:
    """True when ``adapt_and_predict_many(..., replay=...)`` can replay ``model``'s running statistics exactly.

    Every module that keeps buffers must be a plain ``nn.BatchNorm2d`` (not a subclass: per-step layers keep a
    set per step) with running statistics and a momentum, no Dropout may draw random numbers (a separate
    adaptation would draw them again from the same seed), and the model must be on the CPU (where the replay was
    checked; on a GPU the layer and the replay could take different kernels).
    """
    first = next(model.parameters(), None)
    if first is not None and first.device.type != "cpu":
        return False
    if draws_random_numbers(model):
        return False
    for m in model.modules():
        if any(True for _ in m.buffers(recurse=False)):
            if type(m) is not nn.BatchNorm2d or not m.track_running_stats or m.momentum is None:
                return False
    return True


@contextmanager
def _replayed_statistics(fmodel: nn.Module, start: StatsSnapshot | None) -> Iterator[StatsSnapshot]:
    """While open, each train-mode pass of ``fmodel``'s BatchNorm layers also updates a copy of ``start``.

    The copy moves through the same ``torch.batch_norm`` call a layer makes, on the same input, so it ends as
    the running statistics the layer would hold had it started from ``start``. Nothing is done for ``None``.
    """
    shadow = {} if start is None else {key: value.clone() for key, value in start.items()}
    handles = []
    if start is not None:
        for name, layer in fmodel.named_modules():
            if isinstance(layer, nn.BatchNorm2d) and layer.track_running_stats:

                def update(module: nn.Module, args: tuple, name: str = name) -> None:
                    if module.training:
                        with torch.no_grad():
                            weight = None if module.weight is None else module.weight.detach()
                            bias = None if module.bias is None else module.bias.detach()
                            torch.batch_norm(args[0], weight, bias, shadow[f"{name}.running_mean"],
                                             shadow[f"{name}.running_var"], True, module.momentum, module.eps,
                                             torch.backends.cudnn.enabled)
                            shadow[f"{name}.num_batches_tracked"].add_(1)

                handles.append(layer.register_forward_pre_hook(update))
    try:
        yield shadow
    finally:
        for handle in handles:
            handle.remove()
