"""Checks for the classroom lab (``notebooks/05_classroom_lab.ipynb``; its exercises are 05.1 to 05.3).

Each ``check_exercise_N(student_fn)`` runs a student's function, through the one runner of
``mamlkit.lessons.harness``, on small synthetic tasks with a small Conv4 (8 channels, BatchNorm), compares it
with a reference written with ``mamlkit``, and returns a ``CheckResult``: passed or not, and in plain words what is
wrong, what a likely cause is and which notebook explains it. The checks never raise on a student's mistake (an
exception in the student's code becomes feedback) and leave the global random state as it was.

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
from collections.abc import Callable
from typing import Any

import higher
import torch
from torch import nn

from mamlkit.adapt import adapt_and_predict, task_loss
from mamlkit.lessons.harness import (
    N_WAY,
    STATS_WRITTEN,
    Attempt,
    CheckResult,
    Exercise,
    _as_tensor,
    _changed,
    _close,
    _gap,
    _mode_change,
    _Problems,
    _state,
    _stats_moved,
    run,
    small_model,
    small_task,
)
from mamlkit.modes import get_modes, snapshot_bn_stats
from mamlkit.placements import PLACEMENTS, custom_placement
from mamlkit.tasks import Task

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


def _judge_1(attempt: Attempt, inner_steps: int, inner_lr: float) -> None:
    problems, name = attempt.problems, attempt.name
    ok_by_mode: dict[bool, bool] = {}
    matched_by_mode: dict[bool, tuple[str | None, str]] = {}
    suspects = _exercise_1_suspects()
    for seed, training in ((0, True), (1, False)):
        model = small_model(seed)
        model.train(training)
        task = small_task(seed)
        before, modes, stats = _state(model), get_modes(model), snapshot_bn_stats(model)
        params = {k for k, _ in model.named_parameters()}
        out = attempt.call(model, task, inner_steps, inner_lr)
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
            attempt.stop()
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
        if logits.requires_grad and not attempt.notes:
            attempt.notes.append("your logits carry a gradient graph; at meta-test none is needed (torch.no_grad() "
                                 "around the query pass, or track_higher_grads=False, saves memory and time).")
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


EXERCISE_1 = Exercise(1, "meta_test_task", _judge_1)


def check_exercise_1(student_fn: Callable[..., Any], inner_steps: int = 3, inner_lr: float = 0.4) -> CheckResult:
    """Check ``meta_test_task(model, task, inner_steps, inner_lr) -> query logits``.

    The function must adapt a copy of ``model`` to ``task.support_x``/``support_y`` (``inner_steps``
    SGD steps, learning rate ``inner_lr``, in train mode), predict the whole query set in train mode,
    and leave ``model`` exactly as it was (parameters, running statistics, modes), whatever mode the
    model was in when called.
    """
    return run(EXERCISE_1, student_fn, inner_steps=inner_steps, inner_lr=inner_lr)




# ---------------------------------------------------------------------------------------- exercise 2


def reference_train_mode_predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Exercise 2's answer, computed on a copy: train-mode outputs without gradients."""
    twin = copy.deepcopy(model).train()
    with torch.no_grad():
        return twin(x)


def _judge_2(attempt: Attempt) -> None:
    problems, name = attempt.problems, attempt.name
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
        out = attempt.call(model, x)
        logits, shape_problem = _as_tensor(out, name, (x.shape[0], N_WAY))
        if shape_problem:
            attempt.fail(shape_problem)
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


EXERCISE_2 = Exercise(2, "train_mode_predict", _judge_2)


def check_exercise_2(student_fn: Callable[..., Any]) -> CheckResult:
    """Check ``train_mode_predict(model, x) -> logits``.

    The function must return the model's train-mode outputs (normalised with the batch's own
    statistics) for ``x``, build no gradient graph, and leave the model exactly as it was: the
    same mode flags (train or eval, as the caller had them) and bit-identical running statistics.
    """
    return run(EXERCISE_2, student_fn)




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


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _check_returned_loss(problems: _Problems, returned: Any, name: str, expected_loss: float, n_tasks: int) -> None:
    """Exercise 3's return value: the mean query loss as a float (a sum, or a mean divided again, is named)."""
    try:
        value = float(returned)
    except (TypeError, ValueError):
        value = None
    if value is None:
        problems.add(f"{name} returned {type(returned).__name__}; return the mean query loss as a float "
                        "(query_loss.item(), averaged over the tasks).")
    elif abs(value - expected_loss) > 1e-3 * max(1.0, abs(expected_loss)):
        if abs(value - expected_loss * n_tasks) <= 1e-3 * max(1.0, abs(expected_loss * n_tasks)):
            problems.add("you returned the sum of the query losses; return their mean.")
        elif abs(value - expected_loss / n_tasks) <= 1e-3 * max(1.0, abs(expected_loss)):
            problems.add("you returned the mean query loss divided by the number of tasks once more; "
                            "return the mean of the tasks' query losses.")
        elif not problems.items:
            problems.add(f"you returned {value:.4f}; the mean query loss (before the update) is "
                            f"{expected_loss:.4f}.")


def _wrong_update(after: list[torch.Tensor], expected: list[torch.Tensor], moved: float,
                  reference: Callable[..., tuple[list[torch.Tensor], float]], inner_steps: int, n_tasks: int) -> str:
    """What a meta-update that differs from MAML's did instead: the query loss in eval mode, a sum of the task
    losses, or an unnamed difference with the checklist."""
    diagnoses = [
        ({"query_mode": "eval"}, "you computed the query loss in eval mode (what some guides advise): the "
         "adapted copy then normalises the query with running statistics: those the model held, moved only "
         "part of the way towards this task by its support passes. MAML meta-trains "
         "in train mode throughout; leave fmodel in train mode for the query (notebook 02)."),
        ({"average": False}, f"you summed the task losses: divide each query loss by the number of tasks "
         f"({n_tasks}) so that the step does not grow with the meta-batch."),
    ]
    for switches, text in diagnoses:
        if _gap(after, reference(**switches)[0]) <= 1e-3 * moved + 1e-6:
            return text
    return (f"your update differs from MAML's (largest difference {_gap(after, expected):.2g}; the step moves "
            f"parameters by up to {moved:.2g}). Check: fmodel.train(); {inner_steps} diffopt.step calls on the "
            "support loss; the query loss computed outside torch.no_grad(), divided by the number of tasks, "
            "and .backward() inside the innerloop_ctx block; outer_opt.zero_grad() before the tasks and one "
            "outer_opt.step() after them (notebook 02).")


def _judge_3(attempt: Attempt, inner_steps: int, inner_lr: float, outer_lr: float) -> None:
    tasks = [small_task(seed, n_query=2) for seed in (3, 4)]

    def setup() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
        model = small_model(7).train()
        return model, torch.optim.SGD(model.parameters(), lr=inner_lr), torch.optim.SGD(model.parameters(),
                                                                                          lr=outer_lr)

    model, inner_opt, outer_opt = setup()
    initial = _params(model)
    inner_calls, outer_calls = _counting(inner_opt), _counting(outer_opt)
    returned = attempt.call(model, tasks, inner_opt, outer_opt, inner_steps)
    report = attempt.reports[-1]
    after = _params(model)

    def reference(**switches: Any) -> tuple[list[torch.Tensor], float]:
        ref_model, ref_inner, ref_outer = setup()
        loss = reference_meta_train_step(ref_model, tasks, ref_inner, ref_outer, inner_steps, **switches)
        return _params(ref_model), loss

    expected, expected_loss = reference()
    moved = _gap(expected, initial)
    problems = attempt.problems
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
    if _gap(after, expected) > 1e-3 * moved + 1e-6 and not problems.items:
        problems.add(_wrong_update(after, expected, moved, reference, inner_steps, len(tasks)))
    _check_returned_loss(problems, returned, attempt.name, expected_loss, len(tasks))


EXERCISE_3 = Exercise(3, "meta_train_step", _judge_3)


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
    return run(EXERCISE_3, student_fn, inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr)


#: The lab's exercises, in order (each runs through ``mamlkit.lessons.harness.run``).
EXERCISES: dict[int, Exercise] = {1: EXERCISE_1, 2: EXERCISE_2, 3: EXERCISE_3}

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
