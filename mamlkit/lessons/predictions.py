"""Predict, then measure: a student's guesses, committed before a measurement and compared after it.

A lesson asks for a guess in a cell of its own::

    my_guess = {"transductive": ..., "eval_collected": ...}     # meta-test accuracy in %
    guess = predictions.commit(my_guess)

``commit`` refuses a guess that is still ``...`` (or out of range) with a message that says what to
write, so that running the notebook top to bottom stops before the measurement until the student has
guessed. After the measurement, ``compare(guess, results)`` shows each guess beside the measured
mean and its 95% interval, and how far off it was: "measured − guess", positive where the measurement came
out above the guess.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from mamlkit.errors import ConfigError
from mamlkit.evaluate import EvalResult


class GuessMissing(ConfigError):
    """A guess was not written yet (it is still ``...``), or is not a number in range."""


def commit(guesses: Mapping[str, object], low: float = 0.0, high: float = 100.0) -> dict[str, float]:
    """The guesses as numbers, once every one is written; raises ``GuessMissing`` with what to do otherwise."""
    missing = [name for name, value in guesses.items() if value is None or value is Ellipsis]
    if missing:
        raise GuessMissing(
            f"Write your guess first: replace the ... for {', '.join(missing)} with a number between {low:g} and "
            f"{high:g}, run that cell again, and only then measure."
        )
    committed: dict[str, float] = {}
    for name, value in guesses.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= float(value) <= high:
            raise GuessMissing(f"your guess for {name} is {value!r}; write a number between {low:g} and {high:g}.")
        committed[name] = float(value)
    return committed


@dataclass(frozen=True)
class GuessRow:
    """One guess beside its measurement (percentages); ``has_interval`` is False for a plain number."""

    name: str
    guess: float
    measured: float
    ci95: float
    has_interval: bool = True

    @property
    def off_by(self) -> float:
        """Measured minus guessed, in percentage points."""
        return self.measured - self.guess

    @property
    def inside(self) -> bool:
        """Whether the guess lies inside the measurement's 95% interval (False for a plain number)."""
        return self.has_interval and abs(self.off_by) <= self.ci95


@dataclass(frozen=True)
class GuessReport:
    """Every guess against its measurement; shows as a table in a notebook."""

    rows: tuple[GuessRow, ...]

    @property
    def furthest(self) -> GuessRow:
        """The guess furthest from its measurement."""
        return max(self.rows, key=lambda r: abs(r.off_by))

    def summary(self) -> str:
        far = self.furthest
        with_interval = [r for r in self.rows if r.has_interval]
        head = ""
        if with_interval:
            what = "guesses" if len(with_interval) == len(self.rows) else "guesses of a measurement with an interval"
            head = f"{sum(r.inside for r in with_interval)} of {len(with_interval)} {what} inside the 95% interval; "
        return (f"{head}furthest off: {far.name} "
                f"(guessed {far.guess:g}, measured {far.measured:.1f}: measured minus your guess {far.off_by:+.1f}).")

    def __repr__(self) -> str:
        width = max(28, *(len(r.name) + 1 for r in self.rows))
        lines = [f"{'':<{width}} {'your guess':>10} {'measured':>16} {'measured − guess':>17}"]
        for r in self.rows:
            measured = f"{r.measured:>8.1f} ± {r.ci95:<4.1f}" if r.has_interval else f"{r.measured:>15.1f}"
            lines.append(f"{r.name:<{width}} {r.guess:>10.1f} {measured:>16} {r.off_by:>+17.1f}")
        return "\n".join(lines + [self.summary()])

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td><code>{html.escape(r.name)}</code></td><td>{r.guess:g}</td>"
            f"<td>{r.measured:.1f}{f' ± {r.ci95:.1f}' if r.has_interval else ''}</td><td>{r.off_by:+.1f}</td>"
            f"<td>{'inside the interval' if r.inside else ''}</td></tr>"
            for r in self.rows
        )
        return ("<table><tr><th>what</th><th>your guess</th><th>measured (95% CI)</th><th>measured − guess</th>"
                f"<th></th></tr>{body}</table><p>{html.escape(self.summary())}</p>")


def compare(guesses: Mapping[str, float], results: Mapping[str, EvalResult | float]) -> GuessReport:
    """Each committed guess beside the measurement of that name: an ``EvalResult`` (its mean and 95% interval,
    in %) or a plain number, already in the guess's unit (no interval)."""
    unknown = [name for name in guesses if name not in results]
    if unknown:
        raise ConfigError(f"no measurement named {', '.join(unknown)}; measured: {', '.join(results)}")
    rows = []
    for name, guess in guesses.items():
        measured = results[name]
        if isinstance(measured, EvalResult):
            rows.append(GuessRow(name, float(guess), 100 * measured.mean, 100 * measured.ci95))
        else:
            rows.append(GuessRow(name, float(guess), float(measured), 0.0, has_interval=False))
    return GuessReport(tuple(rows))
