"""The query set presented in batches of several sizes, balanced over the classes or one class after another: the
train-mode accuracy of each presentation (the query-batch study of the deep dive "does it hold", and
``tools/query_batches.py``, which records it over 600 tasks)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mamlkit.adapt import MetaTrained, accuracy, task_loss
from mamlkit.backends import adapted
from mamlkit.errors import ConfigError
from mamlkit.evaluate import EvalResult
from mamlkit.progress import progress_counter
from mamlkit.rates import InnerRates
from mamlkit.tasks import TaskSampler


def arrival_order(y: torch.Tensor, balanced: bool) -> torch.Tensor:
    """Indices of query examples in the order they reach the model: ``balanced`` is round robin over the
    classes (a batch of N-way examples holds one of each class); otherwise one class after another."""
    if not balanced:
        return torch.argsort(y, stable=True)
    rank = torch.zeros_like(y)
    for c in y.unique():
        rank[y == c] = torch.arange(int((y == c).sum()), device=y.device)
    return torch.argsort(rank * (int(y.max()) + 1) + y)


def predict_in_batches(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int, balanced: bool) -> torch.Tensor:
    """Outputs for ``x`` with the examples presented in batches of ``size``, arriving as ``arrival_order`` says
    (in train mode each batch is normalised by its own statistics); rows in the order of ``x``."""
    if size < 1:
        raise ConfigError(f"a query batch holds at least one example, got {size}")
    order = arrival_order(y, balanced)
    parts = [order[start:start + size] for start in range(0, len(x), size)]
    outputs = [model(x[part]) for part in parts]
    logits = torch.empty(len(x), outputs[0].shape[-1], dtype=outputs[0].dtype, device=outputs[0].device)
    for part, out in zip(parts, outputs):
        logits[part] = out
    return logits


def query_batches(
    model: nn.Module | MetaTrained,
    sampler: TaskSampler,
    sizes: Sequence[int] = (1, 2, 5, 10, 25),
    n_tasks: int = 600,
    inner_steps: int = 10,
    inner_lr: float | InnerRates = 0.4,
    *,
    progress: bool = True,
) -> dict[tuple[int, bool], EvalResult]:
    """Train-mode accuracy when the query set arrives in batches of each size, balanced or one class after another.

    Each task is adapted once in train mode (as ``transductive``); the adapted copy then predicts the query set
    in every presentation: ``results[size, True]`` round robin over the classes, ``results[size, False]`` one
    class after another. A batch of the whole query set is ``transductive``; a batch of one is ``one_at_a_time``.
    """
    if isinstance(model, MetaTrained):
        if model.inner_rates is not None:
            inner_lr = model.inner_rates
        model = model.model
    indices = tuple(range(n_tasks))
    values: dict[tuple[int, bool], list[float]] = {(s, b): [] for s in sizes for b in (True, False)}
    device = next(model.parameters()).device
    bar = progress_counter(n_tasks, "query batches", progress)
    begin = time.perf_counter()
    try:
        for index in indices:
            task = sampler.task(index).to(device)
            with adapted(model, inner_lr, meta=False) as (fmodel, step, _):
                fmodel.train()
                for _ in range(inner_steps):
                    step(task_loss(fmodel(task.support_x), task.support_y))
                with torch.no_grad():
                    for (size, balanced), accs in values.items():
                        logits = predict_in_batches(fmodel, task.query_x, task.query_y, size, balanced)
                        accs.append(accuracy(logits, task.query_y))
            bar.update(1)
    finally:
        bar.close()
    seconds = (time.perf_counter() - begin) / len(values)
    return {key: EvalResult(f"batches of {key[0]}, {'balanced' if key[1] else 'one class after another'}",
                            np.asarray(v), "accuracy", seconds, indices) for key, v in values.items()}
