"""The ``torch.func`` backend: MAML's inner loop without ``higher``.

``higher`` (last release 2020) builds a patched copy of the model whose forward pass uses a list of
fast weights. ``torch.func.functional_call(model, tensors, args)`` does the same job with the model
itself: it runs ``model``'s forward pass with the given tensors in place of its parameters and
buffers, for the duration of the call. An inner SGD step is then::

    grads = torch.autograd.grad(loss, list(fast.values()), create_graph=second_order)
    fast = {name: p - inner_lr * g for (name, p), g in zip(fast.items(), grads)}

With ``create_graph=True`` the new fast weights remain functions of the initial ones, so the query
loss back-propagates through the steps into the model's parameters (second-order MAML); with
``False`` each step is detached (first order, and meta-test).

What this module keeps identical to ``mamlkit.adapt``'s ``higher`` loops:

- **Fast weights.** Meta-training starts from the model's own parameters (``higher``'s
  ``copy_initial_weights=False``); meta-test from detached copies (``copy_initial_weights=True``).
  Every parameter is adapted with plain SGD at ``inner_lr``.
- **Modes.** ``higher``'s patched model has training flags of its own. ``functional_call`` runs the
  model itself, so ``FunctionalModel`` sets the model's flags to its own mode for the duration of
  each call and then puts back exactly the flags it found: the model's modes never change.
- **Running statistics.** ``higher`` gives its patched model detached copies of all buffers, made
  when the context opens. Here ``clone_buffers`` makes the same copies and they are passed to
  ``functional_call``, which updates them in place in train mode (``functional_call`` mutates
  whatever buffers it is given: passing the model's own would write every support and query batch
  into the model). Eval mode reads the copies. The statistics ``meta_train`` collects
  (``collected_stats``) are computed from the copies before and after each task, and
  ``running_stats="write_back"`` copies them into the model after each task, as with ``higher``.

Use it through the ``backend="torch.func"`` argument of ``meta_train``, ``adapt_and_predict``,
``meta_test`` and the other meta-test functions, or directly (``FunctionalModel``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from mamlkit.adapt import TrainConfig, _accumulate_written_back, accuracy, predict_query, task_loss
from mamlkit.modes import StatsSnapshot, mode
from mamlkit.placements import Placement, TrainPlacement
from mamlkit.tasks import Task

Tensors = dict[str, torch.Tensor]


def clone_buffers(model: nn.Module) -> Tensors:
    """Detached copies of all the model's buffers, by name (what ``higher`` gives its patched model)."""
    return {name: buf.detach().clone() for name, buf in model.named_buffers()}


class FunctionalModel:
    """The torch.func counterpart of ``higher``'s patched model: ``model`` run with other tensors.

    Calling it runs ``model``'s forward pass through ``torch.func.functional_call`` with
    ``params`` (fast weights) and ``buffers`` in place of the model's own. ``train()``/``eval()``
    set the mode used for those calls (``None``, the start, means the model's own flags); the
    model's flags are set for each call and restored after it. ``step`` takes one differentiable
    SGD step on ``params``. The model's parameters and buffers are never modified in place.

    It offers what ``mamlkit.adapt.predict_query`` needs of a model (calling, ``modules()``), so
    every query presentation and the context normalisations work as with a patched model.
    """

    def __init__(self, model: nn.Module, params: Tensors, buffers: Tensors, training: bool | None = None) -> None:
        self.model = model
        self.params = dict(params)
        self.buffers = buffers
        self.training = training

    def train(self, mode: bool = True) -> FunctionalModel:
        """Use train mode (``True``) or eval mode (``False``) for the following calls."""
        self.training = bool(mode)
        return self

    def eval(self) -> FunctionalModel:
        """Use eval mode for the following calls."""
        return self.train(False)

    def modules(self):
        """The model's modules (to tell which normalisation layers it has)."""
        return self.model.modules()

    def parameters(self) -> list[torch.Tensor]:
        """The current fast weights, in the order of ``model.parameters()``."""
        return list(self.params.values())

    def __call__(self, x: torch.Tensor, n_context: int | None = None) -> torch.Tensor:
        kwargs = {} if n_context is None else {"n_context": n_context}
        if self.training is None:
            return functional_call(self.model, (self.params, self.buffers), (x,), kwargs)
        with mode(self.model, self.training):
            return functional_call(self.model, (self.params, self.buffers), (x,), kwargs)

    def step(self, loss: torch.Tensor, lr: float, create_graph: bool) -> None:
        """One SGD step on the fast weights: ``p <- p - lr * dloss/dp``.

        With ``create_graph=True`` the new weights keep their graph (second-order MAML); with
        ``False`` they are detached leaves that require grad, as ``higher`` makes them when it does
        not track higher-order gradients. Weights the loss does not depend on are left as they are.
        """
        names = list(self.params)
        grads = torch.autograd.grad(
            loss, [self.params[n] for n in names], create_graph=create_graph, allow_unused=True
        )
        updated = {}
        for name, g in zip(names, grads):
            p = self.params[name]
            if g is not None:
                p = p - lr * g
            updated[name] = p if create_graph else p.detach().requires_grad_()
        self.params = updated


def meta_train_task(
    model: nn.Module,
    task: Task,
    placement: TrainPlacement,
    config: TrainConfig,
    momenta: dict[str, float],
    collected: StatsSnapshot,
) -> tuple[float, float]:
    """One task's contribution to the meta-gradient (accumulated in the model's ``.grad``).

    The torch.func counterpart of ``mamlkit.adapt._meta_train_task``: same loss, same gradient,
    same update of ``collected`` and, with ``running_stats="write_back"``, of the model's buffers.
    """
    second_order = not config.first_order
    buffers = clone_buffers(model)
    before = {key: buffers[key].clone() for key in collected}
    fmodel = FunctionalModel(model, dict(model.named_parameters()), buffers)
    fmodel.train(placement.adapt_mode == "train")
    for _ in range(config.inner_steps):
        fmodel.step(task_loss(fmodel(task.support_x), task.support_y), config.inner_lr, create_graph=second_order)
    fmodel.train(placement.query_mode == "train")
    logits = predict_query(fmodel, task, "batch")
    query_loss = task_loss(logits, task.query_y) / config.meta_batch
    if second_order:
        query_loss.backward()
    else:
        # First order: the gradient at the adapted weights, applied to the initial weights as it is.
        grads = torch.autograd.grad(query_loss, fmodel.parameters(), allow_unused=True)
        for p, g in zip(model.parameters(), grads):
            if g is not None:
                p.grad = g.detach() if p.grad is None else p.grad + g.detach()
    after = {key: buffers[key].clone() for key in collected}
    _accumulate_written_back(collected, before, after, momenta)
    if config.running_stats == "write_back":
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(buffers[name])
    acc = accuracy(logits, task.query_y) if not task.query_y.dtype.is_floating_point else float("nan")
    return query_loss.item() * config.meta_batch, acc


def adapt_and_predict_many(
    model: nn.Module,
    task: Task,
    placements: list[Placement],
    inner_steps: int = 10,
    inner_lr: float = 0.4,
) -> dict[str, torch.Tensor]:
    """The torch.func counterpart of ``mamlkit.adapt.adapt_and_predict_many`` (same outputs).

    Adapts detached copies of the parameters, with copies of the buffers, in the placements'
    shared adapt mode; then predicts the query set under ``no_grad`` for each placement, eval-mode
    ones first. The model is left exactly as it was. Call it through
    ``mk.adapt_and_predict_many(..., backend="torch.func")``, which checks the placements.
    """
    params = {name: p.detach().clone().requires_grad_(p.requires_grad) for name, p in model.named_parameters()}
    fmodel = FunctionalModel(model, params, clone_buffers(model))
    fmodel.train(placements[0].adapt_mode == "train")
    for _ in range(inner_steps):
        fmodel.step(task_loss(fmodel(task.support_x), task.support_y), inner_lr, create_graph=False)
    outputs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for p in sorted(placements, key=lambda p: p.query_mode == "train"):
            fmodel.train(p.query_mode == "train")
            outputs[p.name] = predict_query(fmodel, task, p.presentation)
    return outputs
