"""Checks for the classroom lab (``notebooks/05_classroom_lab.ipynb``; its exercises are 05.1 to 05.3).

Each ``check_exercise_N(student_fn)`` runs a student's function on small synthetic tasks with a
small Conv4 (8 channels, BatchNorm), compares it with a reference written with ``mamlkit``, and
returns a ``CheckResult``: passed or not, and in plain words what is wrong, what a likely cause is
and which notebook explains it. The checks never raise on a student's mistake (an exception in the
student's code becomes feedback) and leave the global random state as it was.

The checks are built on the placement checker: every call of a student's function runs inside
``mamlkit.your_code.checker.check_maml``, and a mistake the checker knows (``MISTAKES``: an inner loop on the
meta-parameters, no meta-gradient, a loss without a graph, train-mode BatchNorm on one example, ...)
is reported with the checker's title, advice and lesson, whether the checker saw it happen or the
lab's own comparison found its effect (the parameters or the running statistics changed). What only
an exercise can tell (wrong predictions, a summed loss, a missing outer step, the return value) is
worded here.

Exercises:

1. ``meta_test_task(model, task, inner_steps, inner_lr) -> logits``: adapt a copy of the model to
   the support set and predict the query set, with the modes placed as MAML was meta-trained.
2. ``train_mode_predict(model, x) -> logits``: batch-statistics (train-mode) predictions without
   gradients that leave the model exactly as it was (modes and running statistics).
3. ``meta_train_step(model, tasks, inner_opt, outer_opt, inner_steps) -> float``: one second-order
   MAML meta-update with ``higher`` (``copy_initial_weights=False``).
"""

from __future__ import annotations

import copy
import html
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import higher
import torch
from torch import nn

from mamlkit.adapt import adapt_and_predict, task_loss
from mamlkit.models import ModelConfig, build_model
from mamlkit.modes import get_modes, snapshot_bn_stats
from mamlkit.placements import PLACEMENTS, custom_placement
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


# ------------------------------------------------------------------------------------- test material


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


def _not_done(exercise: int | str, name: str) -> CheckResult:
    return CheckResult(exercise, False, [
        f"{name} still raises NotImplementedError: the exercise is not done yet. Replace the `raise` line with "
        "your code (the instructions are in the cell above it), run that cell, then this check again."
    ])


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


def _raised(exercise: int | str, name: str, exc: BaseException, student_fn: Callable[..., Any], report: Report
            ) -> CheckResult:
    """The error, where in the student's code it came from, and what the checker saw before it."""
    text = f"{type(exc).__name__}: {exc}".strip()
    problems = _Problems()
    problems.add(f"{name} raised {text[:300]}{_where(exc, student_fn)}")
    problems.seen(report)
    if "not supported by higher" in str(exc):
        problems.add("higher's innerloop_ctx needs the inner optimizer you were given (inner_opt).")
    return CheckResult(exercise, False, problems.items)


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


# ---------------------------------------------------------------------------------------- exercise 1


def reference_meta_test_task(model: nn.Module, task: Task, inner_steps: int = 10, inner_lr: float = 0.4
                             ) -> torch.Tensor:
    """Exercise 1's answer, from the package: train mode for adaptation and for the whole query batch."""
    return adapt_and_predict(model, task, "transductive", inner_steps, inner_lr)


def _exercise_1_suspects() -> dict[str, tuple[str | None, str]]:
    """Wrong placements a student might have written: the checker's mistake code it is (None: an exercise-only
    diagnosis) and what to tell them."""
    eval_query = ("your predictions match a query evaluated in eval mode ({label}): eval mode normalises the "
                  "query with running statistics instead of the task's own batch statistics. The model was "
                  "meta-trained in train mode, so keep fmodel in train mode for the query too (notebook 02).")
    return {
        "eval_untouched": (None, eval_query),
        "train_then_eval": (None, eval_query),
        "eval_train": (None, "your predictions match adapting in eval mode and predicting in train mode: the "
                             "support steps then normalise with running statistics. Put fmodel in train mode before "
                             "the support steps as well (notebook 02)."),
        "one_at_a_time": ("train_mode_single_example",
                          "your predictions match the query presented one example at a time: in train mode each "
                          "prediction then uses the statistics of a batch of one."),
        "one_class_at_a_time": (None, "your predictions match the query presented one class at a time: the batch "
                                      "statistics of one class are not the task's. Predict the whole query set in "
                                      "one forward pass (notebook 04)."),
    }


def check_exercise_1(student_fn: Callable[..., Any], inner_steps: int = 3, inner_lr: float = 0.4) -> CheckResult:
    """Check ``meta_test_task(model, task, inner_steps, inner_lr) -> query logits``.

    The function must adapt a copy of ``model`` to ``task.support_x``/``support_y`` (``inner_steps``
    SGD steps, learning rate ``inner_lr``, in train mode), predict the whole query set in train mode,
    and leave ``model`` exactly as it was (parameters, running statistics, modes), whatever mode the
    model was in when called.
    """
    name = getattr(student_fn, "__name__", "your function")
    with _kept_random_state():
        return _check_1(student_fn, name, inner_steps, inner_lr)


def _check_1(student_fn: Callable[..., Any], name: str, inner_steps: int, inner_lr: float) -> CheckResult:
    problems = _Problems()
    notes: list[str] = []
    reports: list[Report] = []
    ok_by_mode: dict[bool, bool] = {}
    matched_by_mode: dict[bool, tuple[str | None, str]] = {}
    suspects = _exercise_1_suspects()
    for seed, training in ((0, True), (1, False)):
        model = small_model(seed)
        model.train(training)
        task = small_task(seed)
        before, modes, stats = _state(model), get_modes(model), snapshot_bn_stats(model)
        params = {k for k, _ in model.named_parameters()}
        try:
            out, report, exc = _watched(student_fn, model, task, inner_steps, inner_lr)
        except NotImplementedError:
            return _not_done(1, name)
        if exc is not None:
            return _raised(1, name, exc, student_fn, report)
        reports.append(report)
        if _changed(before, model, params):
            problems.mistake("inner_loop_on_meta_parameters",
                             "your function changed the model's parameters: adaptation must happen on a copy.")
        else:
            moved = _stats_moved(stats, model)
            if moved:
                problems.mistake("meta_test_stats_saved", moved, title=STATS_WRITTEN)
        change = _mode_change(modes, model)
        if change:
            problems.add(change)
        logits, shape_problem = _as_tensor(out, name, (task.query_x.shape[0], N_WAY))
        if shape_problem:
            problems.add(shape_problem, 0)
            return CheckResult(1, False, problems.items)
        assert logits is not None
        fresh = small_model(seed)
        fresh.train(training)
        expected = reference_meta_test_task(fresh, task, inner_steps, inner_lr)
        ok_by_mode[training] = _close(logits, expected)
        if not ok_by_mode[training]:
            for key, (code, text) in suspects.items():
                placement = PLACEMENTS[key] if key in PLACEMENTS else custom_placement("eval", "train")
                if _close(logits, adapt_and_predict(fresh, task, placement, inner_steps, inner_lr)):
                    label = f"{placement.adapt_mode}/{placement.query_mode}, the model's running statistics"
                    matched_by_mode[training] = (code, text.format(label=label))
                    break
        if logits.requires_grad and not notes:
            notes.append("your logits carry a gradient graph; at meta-test none is needed (torch.no_grad() around "
                         "the query pass, or track_higher_grads=False, saves memory and time).")
    if ok_by_mode[True] and not ok_by_mode[False]:
        problems.add("your function gives the right predictions when the model arrives in train mode but "
                     "not when it arrives in eval mode: you rely on the mode the model happens to be in. "
                     "The patched copy takes the model's flags when innerloop_ctx opens; call "
                     "fmodel.train() yourself (notebook 02).", 0)
    elif not all(ok_by_mode.values()):
        code, text = matched_by_mode.get(True) or matched_by_mode.get(False) or (None, "")
        if code is not None:
            problems.mistake(code, text, 0)  # the matched placement says it better than the checker's finding
        else:
            problems.add(text or (
                f"your predictions differ from the reference. Check the inner loop: {inner_steps} steps (the "
                "inner_steps argument) of SGD with learning rate inner_lr (higher.innerloop_ctx with the optimizer "
                "torch.optim.SGD(model.parameters(), lr=inner_lr) and diffopt.step(loss on the support set)), fmodel "
                "in train mode, and the whole query set in one forward pass (notebook 02)."), 0)
    for report in reports:
        problems.seen(report)
    return CheckResult(1, not problems.items, problems.items, notes)


# ---------------------------------------------------------------------------------------- exercise 2


def reference_train_mode_predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Exercise 2's answer, computed on a copy: train-mode outputs without gradients."""
    twin = copy.deepcopy(model).train()
    with torch.no_grad():
        return twin(x)


def check_exercise_2(student_fn: Callable[..., Any]) -> CheckResult:
    """Check ``train_mode_predict(model, x) -> logits``.

    The function must return the model's train-mode outputs (normalised with the batch's own
    statistics) for ``x``, build no gradient graph, and leave the model exactly as it was: the
    same mode flags (train or eval, as the caller had them) and bit-identical running statistics.
    """
    name = getattr(student_fn, "__name__", "your function")
    with _kept_random_state():
        return _check_2(student_fn, name)


def _check_2(student_fn: Callable[..., Any], name: str) -> CheckResult:
    problems = _Problems()
    for seed, training in ((0, False), (1, True)):
        model = small_model(seed)
        model.train(training)
        x = small_task(seed).query_x
        before, modes = _state(model), get_modes(model)
        stats_before = snapshot_bn_stats(model)
        expected = reference_train_mode_predict(model, x)
        twin = copy.deepcopy(model).eval()
        with torch.no_grad():
            eval_out = twin(x)
        try:
            out, report, exc = _watched(student_fn, model, x)
        except NotImplementedError:
            return _not_done(2, name)
        if exc is not None:
            return _raised(2, name, exc, student_fn, report)
        logits, shape_problem = _as_tensor(out, name, (x.shape[0], N_WAY))
        if shape_problem:
            return CheckResult(2, False, [shape_problem])
        assert logits is not None
        if not _close(logits, expected):
            if _close(logits, eval_out):
                problems.add("your outputs are the eval-mode ones: they were normalised with the running statistics. "
                             "The exercise asks for train mode, where each batch is normalised with its own "
                             "statistics (notebook 01).")
            else:
                problems.add("your outputs are not the model's train-mode outputs for x (notebook 01).")
        moved = _stats_moved(stats_before, model)
        if moved:
            problems.mistake("meta_test_stats_saved", moved, title=STATS_WRITTEN)
        elif _changed(before, model, set(before)):
            problems.add("your function changed the model's parameters; predicting must not (notebook 01).")
        change = _mode_change(modes, model)
        if change:
            problems.add(change)
        if logits.requires_grad:
            problems.add("your outputs carry a gradient graph: predictions need none, and .train()/.eval() do not "
                         "turn gradients off. Wrap the forward pass in torch.no_grad() (notebook 01).")
        problems.seen(report)
    return CheckResult(2, not problems.items, problems.items)


def _short(t: torch.Tensor) -> str:
    return str(int(t)) if t.numel() == 1 else f"mean {t.float().mean().item():.3f}"


# ---------------------------------------------------------------------------------------- exercise 3


def reference_meta_train_step(model: nn.Module, tasks: list[Task], inner_opt: torch.optim.Optimizer,
                              outer_opt: torch.optim.Optimizer, inner_steps: int = 1, *, query_mode: str = "train",
                              average: bool = True, step_per_task: bool = False) -> float:
    """Exercise 3's answer (with switches that reproduce common mistakes, for feedback).

    One second-order MAML update: for every task a patched copy starts AS the model's parameters
    (``copy_initial_weights=False``), adapts in train mode, computes its query loss (divided by the
    number of tasks) and back-propagates it through the inner steps; then one outer step.
    """
    outer_opt.zero_grad()
    losses = []
    for task in tasks:
        if step_per_task:
            outer_opt.zero_grad()
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            fmodel.train()
            for _ in range(inner_steps):
                diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
            fmodel.train(query_mode == "train")
            query_loss = task_loss(fmodel(task.query_x), task.query_y)
            (query_loss / (len(tasks) if average else 1)).backward()
            losses.append(query_loss.item())
        if step_per_task:
            outer_opt.step()
    if not step_per_task:
        outer_opt.step()
    return sum(losses) / len(losses)


def _counting(opt: torch.optim.Optimizer) -> list[int]:
    """Count calls to ``opt.step()`` (an instance attribute wraps the bound method)."""
    calls = [0]
    original = opt.step

    def step(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    opt.step = step  # type: ignore[method-assign]
    return calls


def check_exercise_3(student_fn: Callable[..., Any], inner_steps: int = 2, inner_lr: float = 0.4,
                     outer_lr: float = 0.5) -> CheckResult:
    """Check ``meta_train_step(model, tasks, inner_opt, outer_opt, inner_steps) -> mean query loss``.

    One second-order MAML update on the list of tasks: for each task ``higher.innerloop_ctx(model,
    inner_opt, copy_initial_weights=False)``, the patched model in train mode, ``inner_steps``
    ``diffopt.step`` calls on the support loss, the query loss divided by the number of tasks and
    back-propagated; after all tasks, one ``outer_opt.step()``. Returns the mean query loss.

    The check passes plain SGD as ``outer_opt`` (not Adam, whose first step hides the scale of the
    gradient), so averaging and summing are told apart.
    """
    name = getattr(student_fn, "__name__", "your function")
    with _kept_random_state():
        return _check_3(student_fn, name, inner_steps, inner_lr, outer_lr)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def _check_3(student_fn: Callable[..., Any], name: str, inner_steps: int, inner_lr: float,
             outer_lr: float) -> CheckResult:
    tasks = [small_task(seed, n_query=2) for seed in (3, 4)]

    def setup() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
        model = small_model(7).train()
        return model, torch.optim.SGD(model.parameters(), lr=inner_lr), torch.optim.SGD(model.parameters(),
                                                                                          lr=outer_lr)

    model, inner_opt, outer_opt = setup()
    initial = _params(model)
    inner_calls, outer_calls = _counting(inner_opt), _counting(outer_opt)
    try:
        returned, report, exc = _watched(student_fn, model, tasks, inner_opt, outer_opt, inner_steps)
    except NotImplementedError:
        return _not_done(3, name)
    if exc is not None:
        return _raised(3, name, exc, student_fn, report)
    after = _params(model)

    def reference(**switches: Any) -> tuple[list[torch.Tensor], float]:
        ref_model, ref_inner, ref_outer = setup()
        loss = reference_meta_train_step(ref_model, tasks, ref_inner, ref_outer, inner_steps, **switches)
        return _params(ref_model), loss

    expected, expected_loss = reference()
    moved = _gap(expected, initial)
    problems = _Problems()
    if inner_calls[0]:
        problems.mistake("inner_loop_on_meta_parameters",
                         f"you called inner_opt.step() ({inner_calls[0]} times): a plain optimizer step overwrites "
                         "the meta-parameters in place and leaves no path for a meta-gradient.")
    if _gap(after, initial) == 0:
        grads = [p.grad for p in model.parameters()]
        if outer_calls[0] == 0:
            problems.add("you never called outer_opt.step(): the meta-gradient is computed but the model is not "
                         "updated. Call it once, after the loop over the tasks (notebook 02).")
        elif all(g is None or g.abs().sum().item() == 0 for g in grads):
            finding = next((f for f in report.findings if f.code == "no_meta_gradient"), None)
            problems.mistake("no_meta_gradient", finding.message if finding else
                             "no meta-gradient reached model.parameters(), so the step changed nothing.")
        else:
            problems.add("the model's parameters did not change: call outer_opt.step() after back-propagating "
                         "the query losses, and do not zero the gradients in between (notebook 02).")
    elif outer_calls[0] > 1:
        problems.add(f"you called outer_opt.step() {outer_calls[0]} times: MAML accumulates the meta-gradient "
                        "of every task in the meta-batch and steps once (call outer_opt.zero_grad() before the "
                        "loop and outer_opt.step() after it).")
    ok = _gap(after, expected) <= 1e-3 * moved + 1e-6
    if not ok and not problems.items:
        diagnoses = [
            ({"query_mode": "eval"}, "you computed the query loss in eval mode (what some guides advise): the "
             "adapted copy then normalises the query with running statistics: those the model held, moved only "
             "part of the way towards this task by its support passes. MAML meta-trains "
             "in train mode throughout; leave fmodel in train mode for the query (notebook 02)."),
            ({"average": False}, f"you summed the task losses: divide each query loss by the number of tasks "
             f"({len(tasks)}) so that the step does not grow with the meta-batch."),
        ]
        for switches, text in diagnoses:
            if _gap(after, reference(**switches)[0]) <= 1e-3 * moved + 1e-6:
                problems.add(text)
                break
        else:
            problems.add(
                f"your update differs from MAML's (largest difference {_gap(after, expected):.2g}; the step moves "
                f"parameters by up to {moved:.2g}). Check: fmodel.train(); {inner_steps} diffopt.step calls on the "
                "support loss; the query loss computed outside torch.no_grad(), divided by the number of tasks, "
                "and .backward() inside the innerloop_ctx block; outer_opt.zero_grad() before the tasks and one "
                "outer_opt.step() after them (notebook 02)."
            )
    try:
        value = float(returned)
    except (TypeError, ValueError):
        value = None
    if value is None:
        problems.add(f"{name} returned {type(returned).__name__}; return the mean query loss as a float "
                        "(query_loss.item(), averaged over the tasks).")
    elif abs(value - expected_loss) > 1e-3 * max(1.0, abs(expected_loss)):
        if abs(value - expected_loss * len(tasks)) <= 1e-3 * max(1.0, abs(expected_loss * len(tasks))):
            problems.add("you returned the sum of the query losses; return their mean.")
        elif abs(value - expected_loss / len(tasks)) <= 1e-3 * max(1.0, abs(expected_loss)):
            problems.add("you returned the mean query loss divided by the number of tasks once more; "
                            "return the mean of the tasks' query losses.")
        elif not problems.items:
            problems.add(f"you returned {value:.4f}; the mean query loss (before the update) is "
                            f"{expected_loss:.4f}.")
    problems.seen(report)
    return CheckResult(3, not problems.items, problems.items)


__all__ = [
    "CheckResult",
    "check_exercise_1",
    "check_exercise_2",
    "check_exercise_3",
    "reference_meta_test_task",
    "reference_meta_train_step",
    "reference_train_mode_predict",
    "small_model",
    "small_task",
]
