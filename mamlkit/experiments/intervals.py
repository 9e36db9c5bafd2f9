"""Intervals for a few values, and how many tasks an interval needs.

The 95% interval of ``mamlkit.evaluate`` (``1.96 * std / sqrt(N)``, population std) suits hundreds of meta-test tasks.
Over a few values, such as the means of three meta-training seeds or the 20 official Omniglot runs, it is too
optimistic: ``t_interval`` uses Student's t and the sample standard deviation instead. ``tasks_needed`` turns a wanted
half-width into a number of tasks (the confidence-intervals deep dive).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from mamlkit.evaluate import Z_95


def t_quantile(level: float, df: int) -> float:
    """The two-sided Student-t multiplier: ``P(|T| <= t) = level`` for ``df`` degrees of freedom.

    Computed by integrating the t density (Simpson's rule) and bisection: exact to about 1e-8,
    without scipy. For large ``df`` it tends to the normal value (1.96 for 95%).
    """
    if not 0 < level < 1 or df < 1:
        raise ValueError("level must be in (0, 1) and df at least 1")
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def mass(t: float) -> float:  # P(0 <= T <= t)
        x = np.linspace(0.0, t, 4001)
        y = scale * (1 + x**2 / df) ** (-(df + 1) / 2)
        return float((x[1] - x[0]) / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))

    low, high = 0.0, 1.0
    while mass(high) < level / 2:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if mass(mid) < level / 2 else (low, mid)
    return (low + high) / 2


def t_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width ``t * s / sqrt(N)`` with the sample standard deviation ``s`` (N - 1).

    The interval for a small number of values (e.g. the 20 official Omniglot runs), where
    ``confidence_interval``'s normal multiplier and population std are too optimistic.
    """
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size < 2:
        raise ValueError("a t interval needs at least two values")
    return float(arr.mean()), t_quantile(level, arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)


def tasks_needed(std: float, half_width: float, z: float = Z_95) -> int:
    """How many tasks make the interval ``z * std / sqrt(N)`` at most ``half_width`` wide."""
    if half_width <= 0:
        raise ValueError("half_width must be positive")
    return max(1, math.ceil((z * std / half_width) ** 2))
