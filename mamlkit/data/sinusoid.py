"""Sinusoid regression tasks (Finn et al. 2017): y = A sin(x - phase), A in [0.1, 5], phase in [0, pi].

Each task is one sinusoid; its support and query points are drawn uniformly from x in [-5, 5].
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from mamlkit.errors import DataError
from mamlkit.tasks import Task


class SinusoidSampler:
    """Draws sinusoid regression tasks, reproducibly: task ``i`` depends only on ``(seed, i)``.

    Args:
        k_shot: support points per task (10 in the paper's 10-shot setting).
        n_query: query points per task.
        seed: the task stream.
        amplitude: range of the amplitude A.
        phase: range of the phase.
        x_range: range the inputs are drawn from.
    """

    regression = True

    def __init__(
        self,
        k_shot: int = 10,
        n_query: int = 10,
        seed: int = 0,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        if k_shot < 1 or n_query < 1:
            raise DataError(f"k_shot and n_query must be at least 1, got {k_shot} and {n_query}")
        for name, (lo, hi) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not lo <= hi:
                raise DataError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        self.k_shot, self.n_query, self.seed = int(k_shot), int(n_query), int(seed)
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    def __repr__(self) -> str:
        return f"SinusoidSampler({self.k_shot}-shot, {self.n_query} query, seed={self.seed})"

    def parameters(self, index: int) -> tuple[float, float]:
        """Amplitude and phase of task ``index``."""
        rng = np.random.default_rng([self.seed, int(index), 7])
        return float(rng.uniform(*self.amplitude)), float(rng.uniform(*self.phase))

    def curve(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The true function of task ``index`` at ``x``."""
        amp, phase = self.parameters(index)
        return amp * torch.sin(x - phase)

    def task(self, index: int) -> Task:
        """Task ``index``: inputs and targets of shape ``[n, 1]`` (float targets)."""
        rng = np.random.default_rng([self.seed, int(index)])
        x = rng.uniform(*self.x_range, size=(self.k_shot + self.n_query, 1))
        x = torch.as_tensor(x, dtype=torch.float32)
        y = self.curve(index, x)
        k = self.k_shot
        return Task(x[:k], y[:k], x[k:], y[k:], index=int(index))

    def tasks(self, count: int, start: int = 0) -> Iterator[Task]:
        for i in range(start, start + count):
            yield self.task(i)

    def batch(self, start: int, size: int) -> list[Task]:
        return list(self.tasks(size, start))
