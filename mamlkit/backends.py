"""The one place that knows there are two ways to run MAML's inner loop: ``higher`` and ``torch.func``.

``adapted(model, inner_lr, meta=...)`` opens a patched copy of ``model`` to adapt and yields three things:

- ``model``: call it like the model; ``.train()`` / ``.eval()`` set its mode; ``.parameters()`` are the
  current fast weights;
- ``step(loss)``: one SGD step of the fast weights at ``inner_lr`` on a support loss;
- ``buffers()``: the copy's buffers by name (running statistics), as they are now.

Every loop in mamlkit (meta-training, meta-test) is written once on top of it.

**``higher``** (the default) builds the copy with ``higher.innerloop_ctx``. With ``meta=True`` (meta-training)
the fast weights start AS the model's parameters (``copy_initial_weights=False``: with the default ``True``
no meta-gradient would reach the model), and the steps are differentiable unless ``first_order``; with
``meta=False`` (meta-test) they start from detached copies and no higher-order graph is kept.

**``torch.func``** does the same job without ``higher``: ``torch.func.functional_call(model, tensors, args)``
runs ``model``'s own forward pass with other tensors in place of its parameters and buffers. A step is::

    grads = torch.autograd.grad(loss, list(fast.values()), create_graph=second_order)
    fast = {name: p - inner_lr * g for (name, p), g in zip(fast.items(), grads)}

With ``create_graph=True`` the new fast weights remain functions of the initial ones, so the query loss
back-propagates through the steps into the model's parameters (second-order MAML).

What the two share, exactly:

- **Modes.** ``higher``'s copy has training flags of its own. ``functional_call`` runs the model itself, so
  ``FunctionalModel`` sets the model's flags to its own mode for each call and puts back the flags it found:
  the model's modes never change.
- **Running statistics.** ``higher`` gives its copy detached copies of all buffers, made when the context
  opens (``buffer_sync``). ``clone_buffers`` makes the same copies for ``functional_call``, which updates
  them in place in train mode (``functional_call`` writes into whatever buffers it is given: passing the
  model's own would write every support and query batch into the model). Eval mode reads the copies. The
  model's own buffers are never touched here.

Each backend keeps its own SGD step (``higher``'s differentiable optimiser, ``FunctionalModel.step``): they
agree to floating-point rounding, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import higher
import torch
from torch import nn
from torch.func import functional_call

from mamlkit.errors import check_choice
from mamlkit.modes import mode
from mamlkit.norms import set_inner_step
from mamlkit.rates import InnerRates

Tensors = dict[str, torch.Tensor]

#: The implementations of the inner loop: ``higher``'s patched models, or ``torch.func.functional_call``.
BACKENDS: dict[str, str] = {
    "higher": "higher.innerloop_ctx: a patched copy of the model with a differentiable SGD optimiser (default)",
    "torch.func": "torch.func.functional_call with torch.autograd.grad (mamlkit.backends), no higher needed",
}


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of ``BACKENDS``, else raise a ConfigError listing them."""
    return check_choice("backend", backend, BACKENDS)


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

    It offers what ``mamlkit.placements.predict_query`` needs of a model (calling, ``modules()``), so
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

    def step(self, loss: torch.Tensor, lr: float | list[torch.Tensor], create_graph: bool) -> None:
        """One SGD step on the fast weights: ``p <- p - lr * dloss/dp`` (``lr``: one rate, or one per tensor).

        With ``create_graph=True`` the new weights keep their graph (second-order MAML); with
        ``False`` they are detached leaves that require grad, as ``higher`` makes them when it does
        not track higher-order gradients. Weights the loss does not depend on are left as they are.
        """
        names = list(self.params)
        grads = torch.autograd.grad(
            loss, [self.params[n] for n in names], create_graph=create_graph, allow_unused=True
        )
        rates = lr if isinstance(lr, list) else [lr] * len(names)
        updated = {}
        for name, g, rate in zip(names, grads, rates):
            p = self.params[name]
            if g is not None:
                p = p - rate * g
            updated[name] = p if create_graph else p.detach().requires_grad_()
        self.params = updated


class Adapted(NamedTuple):
    """What ``adapted`` yields: the copy to adapt, its SGD step, and its buffers."""

    model: nn.Module | FunctionalModel
    step: Callable[[torch.Tensor], None]
    buffers: Callable[[], Tensors]


@contextmanager
def adapted(
    model: nn.Module,
    inner_lr: float | InnerRates,
    *,
    meta: bool,
    first_order: bool = False,
    backend: str = "higher",
) -> Iterator[Adapted]:
    """A copy of ``model`` to adapt with SGD at ``inner_lr``; the model itself is never changed.

    ``inner_lr`` is one rate, or an ``InnerRates`` table (``mamlkit.rates``: learned per tensor and step, or
    ANIL's head only) read at each step. The copy's per-step layers (``mamlkit.norms.PerStepBatchNorm2d``) are
    told the step: 0 before the first step, ``k`` after ``k`` steps.

    Args:
        meta: ``True`` for meta-training (the fast weights start as the model's parameters, so the
            query loss reaches them), ``False`` for meta-test (detached copies, no higher-order graph).
        first_order: with ``meta=True``, detach every step (FOMAML).
        backend: ``"higher"`` or ``"torch.func"`` (see ``BACKENDS``).
    """
    check_backend(backend)
    differentiable = meta and not first_order
    rates = inner_lr if isinstance(inner_lr, InnerRates) else None
    taken = 0

    def advance(fmodel: object) -> None:
        nonlocal taken
        taken += 1
        set_inner_step(fmodel, taken)

    if backend == "higher":
        if rates is None:
            inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)  # plain SGD keeps no state between tasks
        else:  # one group per tensor, so that each can take its own rate (higher's ``override``)
            inner_opt = torch.optim.SGD([{"params": [p]} for p in model.parameters()], lr=0.0)
        with higher.innerloop_ctx(
            model, inner_opt, copy_initial_weights=not meta, track_higher_grads=differentiable
        ) as (fmodel, diffopt):
            set_inner_step(fmodel, 0)

            def step(loss: torch.Tensor) -> None:
                if rates is None:
                    diffopt.step(loss)
                else:
                    diffopt.step(loss, override={"lr": rates.at(taken)})
                advance(fmodel)

            yield Adapted(fmodel, step, lambda: dict(fmodel.named_buffers()))
        return
    if meta:
        params = dict(model.named_parameters())
    else:
        params = {name: p.detach().clone().requires_grad_(p.requires_grad) for name, p in model.named_parameters()}
    buffers = clone_buffers(model)
    fmodel = FunctionalModel(model, params, buffers)
    set_inner_step(model, 0)

    def functional_step(loss: torch.Tensor) -> None:
        fmodel.step(loss, inner_lr if rates is None else rates.at(taken), create_graph=differentiable)
        advance(model)

    try:
        yield Adapted(fmodel, functional_step, lambda: buffers)
    finally:
        set_inner_step(model, 0)
