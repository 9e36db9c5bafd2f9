"""The one runner behind every exercise check of the lessons (``mamlkit.lessons.lab``, ``mamlkit.lessons.exercises``).

An exercise is data: its label, the name of the function the student writes, and its judge, which builds the small
test material, calls the student's function through an ``Attempt`` and compares what comes back with a reference,
adding each problem in plain words. ``run(exercise, student_fn)`` does the rest, the same way for every exercise:
it keeps the caller's random state, runs each call of the student's function under ``check_maml`` (when it takes a
model), turns ``NotImplementedError`` into "not done yet" and any other exception into feedback that points at the
student's line, adds what the checker saw, and returns a ``CheckResult``. A check never raises on a student's
mistake.
"""

from __future__ import annotations

import html
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mamlkit.models import ModelConfig, build_model
from mamlkit.modes import get_modes, snapshot_bn_stats
from mamlkit.tasks import Task
from mamlkit.your_code.checker import MISTAKES, Report, check_maml

N_WAY = 5

#: The lab's place on the core path: its exercises are labelled "Exercise 05.1" to "Exercise 05.3".
LAB_NOTEBOOK = "05"

#: The title of the checker's ``meta_test_stats_saved`` mistake when an exercise sees the statistics written
#: into the model but nothing is saved.
STATS_WRITTEN = "Meta-test data was written into the model's running statistics"


@dataclass
class CheckResult:
    """The outcome of one exercise check.

    Attributes:
        exercise: the exercise number within the lab (1, 2 or 3; ``label`` is e.g. ``"05.1"``).
        passed: True when the function does what the exercise asks.
        problems: what is wrong, most important first, each with a hint and the notebook to read.
        notes: remarks that do not fail the check.
    """

    exercise: int | str
    passed: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The exercise's label on the core path, e.g. ``"05.1"``."""
        return f"{LAB_NOTEBOOK}.{self.exercise}" if isinstance(self.exercise, int) else str(self.exercise)

    @property
    def message(self) -> str:
        """All the feedback as one text."""
        if self.passed:
            head = f"Exercise {self.label}: passed. Well done."
        else:
            head = f"Exercise {self.label}: not yet."
        lines = [head] + [f"- {p}" for p in self.problems] + [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:  # what a plain-text frontend shows for a check cell
        return self.message

    def _repr_html_(self) -> str:
        colour, mark = ("#26734d", "\u2714") if self.passed else ("#b00020", "\u2718")
        items = "".join(f"<li>{html.escape(p)}</li>" for p in self.problems)
        items += "".join(f"<li><i>note:</i> {html.escape(n)}</li>" for n in self.notes)
        title = "passed. Well done." if self.passed else "not yet."
        return (f'<div style="border-left:4px solid {colour};padding:4px 10px">'
                f'<b style="color:{colour}">{mark} Exercise {self.label}: {title}</b>'
                f"{'<ul>' + items + '</ul>' if items else ''}</div>")


# ------------------------------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class Exercise:
    """One exercise: its ``label`` (an int for the lab's, shown as "05.N"; e.g. ``"01.1"`` otherwise), the
    ``function`` the student writes (its usual name), the ``judge`` (``judge(attempt, **options)``: builds the test
    material, calls the student's function through ``attempt`` and adds the problems it finds) and ``error_hints``:
    ``(words, advice)`` pairs, the advice added when the student's function raises an error whose text holds the
    words."""

    label: int | str
    function: str
    judge: Callable[..., None]
    error_hints: tuple[tuple[str, str], ...] = ()


class _Stop(Exception):
    """Ends a check early with its result (not done, an error in the student's code, a wrong kind of result)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


class Attempt:
    """One run of a student's function under its exercise's judge: ``call`` and ``call_plain`` run it, ``problems``
    and ``notes`` collect the feedback, ``fail`` and ``stop`` end the check early."""

    def __init__(self, exercise: Exercise, student_fn: Callable[..., Any]) -> None:
        self.exercise = exercise
        self.student_fn = student_fn
        self.name = getattr(student_fn, "__name__", exercise.function)
        self.problems = _Problems()
        self.notes: list[str] = []
        self.reports: list[Report] = []

    def call(self, model: nn.Module, *args: Any) -> Any:
        """``student_fn(model, *args)`` under ``check_maml(model)``; what the checker sees joins the feedback."""
        try:
            with _kept_random_state():
                out, report, exc = _watched(self.student_fn, model, *args)
        except NotImplementedError:
            raise _Stop(self._not_done()) from None
        if exc is not None:
            raise _Stop(self._raised(exc, report))
        self.reports.append(report)
        return out

    def call_plain(self, *args: Any, through: Callable[..., Any] | None = None) -> Any:
        """``student_fn(*args)`` without the checker (no model to watch); ``through(student_fn, *args)`` where the
        student's function is called inside some test machinery."""
        try:
            with _kept_random_state():
                return through(self.student_fn, *args) if through else self.student_fn(*args)
        except NotImplementedError:
            raise _Stop(self._not_done()) from None
        except Exception as exc:  # the student's bug becomes feedback
            raise _Stop(self._raised(exc, Report())) from None

    def fail(self, problem: str) -> None:
        """End the check with this one problem (e.g. a result of the wrong kind: nothing else can be compared)."""
        raise _Stop(CheckResult(self.exercise.label, False, [problem]))

    def stop(self) -> None:
        """End the check with the problems found so far, without the checker's findings."""
        raise _Stop(CheckResult(self.exercise.label, False, self.problems.items))

    def result(self) -> CheckResult:
        for report in self.reports:
            self.problems.seen(report)
        return CheckResult(self.exercise.label, not self.problems.items, self.problems.items, self.notes)

    def _not_done(self) -> CheckResult:
        return CheckResult(self.exercise.label, False, [
            f"{self.name} still raises NotImplementedError: the exercise is not done yet. Replace the `raise` line "
            "with your code (the instructions are in the cell above it), run that cell, then this check again."
        ])

    def _raised(self, exc: BaseException, report: Report) -> CheckResult:
        """The error, where in the student's code it came from, what the checker saw before it, and advice."""
        text = f"{type(exc).__name__}: {exc}".strip()
        problems = _Problems()
        problems.add(f"{self.name} raised {text[:300]}{_where(exc, self.student_fn)}")
        problems.seen(report)
        hints = (("not supported by higher", "higher's innerloop_ctx needs the inner optimizer you were given "
                                             "(inner_opt)."), *self.exercise.error_hints)
        for words, advice in hints:
            if words in str(exc):
                problems.add(advice)
        return CheckResult(self.exercise.label, False, problems.items)


def run(exercise: Exercise, student_fn: Callable[..., Any], **options: Any) -> CheckResult:
    """Check ``student_fn`` against ``exercise`` (``options`` go to its judge), leaving the caller's random state
    as it was: every lab and exercise check runs through here."""
    attempt = Attempt(exercise, student_fn)
    with _kept_random_state():
        try:
            exercise.judge(attempt, **options)
        except _Stop as stop:
            return stop.result
    return attempt.result()


# ------------------------------------------------------------------------------------- test material and helpers


def small_model(seed: int = 0, warm_stats: bool = True) -> nn.Module:
    """A Conv4 with 8 channels and BatchNorm on CPU; with ``warm_stats`` its running statistics are
    moved away from 0 and 1 (so that using them, or changing them, is visible)."""
    model = build_model(ModelConfig(hidden=8, n_out=N_WAY), seed=seed, device="cpu")
    if warm_stats:
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            model.train()
            for _ in range(3):
                model(0.5 + 0.3 * torch.rand(10, 1, 28, 28, generator=g))
    return model


def small_task(seed: int = 0, k_shot: int = 1, n_query: int = 3) -> Task:
    """A synthetic 5-way task: each class is a random 28x28 prototype plus noise (query grouped by class)."""
    g = torch.Generator().manual_seed(1000 + seed)
    protos = torch.rand(N_WAY, 1, 28, 28, generator=g)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = protos.repeat_interleave(per_class, 0) + 0.3 * torch.rand(N_WAY * per_class, 1, 28, 28, generator=g)
        return x.clamp(0, 1), torch.arange(N_WAY).repeat_interleave(per_class)

    sx, sy = draw(k_shot)
    qx, qy = draw(n_query)
    return Task(sx, sy, qx, qy, index=seed)


@contextmanager
def _kept_random_state():
    """The student's code and the references may seed torch; the caller's random state is kept."""
    with torch.random.fork_rng(devices=[]):
        yield


def _watched(student_fn: Callable[..., Any], model: nn.Module, *args: Any
             ) -> tuple[Any, Report, BaseException | None]:
    """Run ``student_fn(model, *args)`` under ``check_maml(model)``: its result, the checker's report, and the
    exception it raised (None if it returned). ``NotImplementedError`` is raised on."""
    with check_maml(model) as report:
        try:
            return student_fn(model, *args), report, None
        except NotImplementedError:
            raise
        except Exception as exc:  # the student's bug becomes feedback
            return None, report, exc


class _Problems:
    """The problems of one check, in order, at most one per checker mistake (``MISTAKES``) and no repeats."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.codes: set[str] = set()

    def add(self, text: str, index: int | None = None) -> None:
        if text not in self.items:
            self.items.insert(len(self.items) if index is None else index, text)

    def mistake(self, code: str, what: str, index: int | None = None, title: str | None = None) -> None:
        """``what`` happened, then the checker's advice for mistake ``code`` and its lesson (once per code);
        ``title`` replaces the checker's where the exercise saw only part of the mistake."""
        if code in self.codes:
            return
        self.codes.add(code)
        m = MISTAKES[code]
        lesson = Path(m.notebook).name
        where = f"notebook {lesson[:2]}" if lesson[:2].isdigit() else f"the deep dive {lesson}"
        self.add(f"{title or m.title}: {what} What to do: {m.advice} ({where})", index)

    def seen(self, report: Report) -> None:
        """Every mistake the checker saw, in its own words (codes already reported are skipped)."""
        for finding in report.findings:
            self.mistake(finding.code, finding.message)


def _where(exc: BaseException, student_fn: Callable[..., Any]) -> str:
    """``"; at line N of fn: `code`"`` for the last line of the student's own code the error passed through."""
    filename = getattr(getattr(student_fn, "__code__", None), "co_filename", None)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or "").strip()
    code = f": `{line}`" if line else ""
    if frame.name != student_fn.__code__.co_name:  # a helper of theirs: its own line numbers mean nothing here
        return f"; in {frame.name}{code}"
    first = getattr(student_fn.__code__, "co_firstlineno", 1)
    return f"; at line {frame.lineno - first + 1} of {frame.name}{code}"


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], model: nn.Module, names: set[str]) -> list[str]:
    after = model.state_dict()
    return [k for k in names if not torch.equal(before[k], after[k])]


def _as_tensor(out: object, name: str, shape: tuple[int, ...]) -> tuple[torch.Tensor | None, str | None]:
    if not isinstance(out, torch.Tensor):
        return None, f"{name} returned {type(out).__name__}, not a tensor of query scores (logits) of shape {shape}"
    if tuple(out.shape) != shape:
        return None, (f"{name} returned a tensor of shape {tuple(out.shape)}; expected {shape}: one row of "
                      f"{shape[1]} class scores per query example, in the order of task.query_x")
    return out, None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> bool:
    return torch.allclose(a.detach().float(), b.detach().float(), atol=atol, rtol=1e-4)


def _mode_change(before: dict[str, bool], model: nn.Module) -> str | None:
    after = get_modes(model)
    if after == before:
        return None
    was, now = ("train" if before[""] else "eval"), ("train" if after[""] else "eval")
    return (f"your function changed the model's mode: it was in {was} mode before the call and is in {now} mode "
            "after it. The caller's model must come back as it was: set the mode on the patched copy (fmodel) "
            "or restore it (mk.train_mode(model) as a context manager) — notebooks 01 and 02.")


def _stats_moved(before: dict[str, torch.Tensor], model: nn.Module) -> str | None:
    """What changed in the model's BatchNorm running statistics, in words (None if nothing did)."""
    after = snapshot_bn_stats(model)
    moved = [k for k in after if not torch.equal(before[k], after[k])]
    if not moved:
        return None
    key = next((k for k in moved if k.endswith("num_batches_tracked")), moved[0])
    return (f"your function changed the running statistics ({len(moved)} buffers, e.g. {key}: "
            f"{_short(before[key])} -> {_short(after[key])}): a train-mode forward pass of the model itself "
            "writes the batch's statistics into them.")


def _short(t: torch.Tensor) -> str:
    return str(int(t)) if t.numel() == 1 else f"mean {t.float().mean().item():.3f}"


def _gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest absolute difference between two lists of tensors."""
    return max((x.detach() - y.detach()).abs().max().item() for x, y in zip(a, b))


def _tensors(out: object, name: str, like: list[torch.Tensor]) -> tuple[list[torch.Tensor] | None, str | None]:
    """``out`` as a list of tensors shaped like ``like`` (one per parameter), or what is wrong with it."""
    if isinstance(out, torch.Tensor) or not isinstance(out, (list, tuple)):
        return None, (f"{name} returned {type(out).__name__}; return a list with one gradient tensor per parameter, "
                      "in the order of model.parameters()")
    if len(out) != len(like):
        return None, f"{name} returned {len(out)} tensors; the model has {len(like)} parameters"
    if any(g is None for g in out):
        return list(out), None
    if any(not isinstance(g, torch.Tensor) or g.shape != p.shape for g, p in zip(out, like)):
        return None, (f"{name} returned tensors that are not shaped like the parameters, in the order of "
                      "model.parameters()")
    return list(out), None
