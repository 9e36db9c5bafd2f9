"""The classroom lab: its check functions and its notebook's form (the student edition: test_student_edition.py).

The check functions must pass on the committed lab's solutions and fail on common mistakes with
feedback that names the mistake and the notebook to reread (run in-process, no kernel needed).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import higher
import nbformat
import pytest
import torch
import torch.nn.functional as F
from conftest import load_tool

import mamlkit as mk
from mamlkit.lessons import lab

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "notebooks" / "05_classroom_lab.ipynb"


tool = load_tool("make_student_copy")


def namespace() -> dict:
    """What the lab's first cell imports (the names a solution cell may use)."""
    return {"torch": torch, "F": F, "higher": higher, "mk": mk, "lab": lab}


def functions_of(cells) -> dict[int, object]:
    """Exercise number -> the function its cell defines (executed in-process)."""
    found = {}
    for cell in cells:
        ns = namespace()
        exec(compile(cell.source, "<lab cell>", "exec"), ns)
        fns = [v for k, v in ns.items() if k not in namespace() and inspect.isfunction(v)]
        assert len(fns) == 1, f"one function per exercise cell, got {[f.__name__ for f in fns]}"
        found[exercise_number(cell)] = fns[0]
    return found


CHECKS = {1: lab.check_exercise_1, 2: lab.check_exercise_2, 3: lab.check_exercise_3}


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(LAB, as_version=4)


def solution_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and tool.is_solution(c)]


def exercise_number(cell) -> int:
    """The N of a cell's ``exercise-N`` tag."""
    return int(next(t for t in tool.tags(cell) if t.startswith("exercise-")).split("-")[1])


# ------------------------------------------------------------------------------------------ the checks


def test_every_check_passes_on_the_labs_solutions(notebook):
    solutions = functions_of(solution_cells(notebook))
    assert sorted(solutions) == [1, 2, 3]
    for number, fn in solutions.items():
        result = CHECKS[number](fn)
        assert result.passed, result.message
        assert f"Exercise 05.{number}: passed" in str(result) and "passed" in result._repr_html_()


def _adapt(model, task, steps, lr, query_train=True, adapt_train=True, one_at_a_time=False):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with higher.innerloop_ctx(model, opt, track_higher_grads=False) as (fmodel, diffopt):
        fmodel.train(adapt_train)
        for _ in range(steps):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        fmodel.train(query_train)
        with torch.no_grad():
            if one_at_a_time:
                return torch.cat([fmodel(x[None]) for x in task.query_x])
            return fmodel(task.query_x)


def eval_query(model, task, inner_steps=10, inner_lr=0.4):
    return _adapt(model, task, inner_steps, inner_lr, query_train=False)


def one_by_one(model, task, inner_steps=10, inner_lr=0.4):
    return _adapt(model, task, inner_steps, inner_lr, one_at_a_time=True)


def mode_left_alone(model, task, inner_steps=10, inner_lr=0.4):
    opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    with higher.innerloop_ctx(model, opt, track_higher_grads=False) as (fmodel, diffopt):
        for _ in range(inner_steps):                      # no fmodel.train(): relies on the caller's mode
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        with torch.no_grad():
            return fmodel(task.query_x)


def plain_optimizer(model, task, inner_steps=10, inner_lr=0.4):
    opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    model.train()
    for _ in range(inner_steps):
        opt.zero_grad()
        F.cross_entropy(model(task.support_x), task.support_y).backward()
        opt.step()
    with torch.no_grad():
        return model(task.query_x)


def wrong_shape(model, task, inner_steps=10, inner_lr=0.4):
    return _adapt(model, task, inner_steps, inner_lr).argmax(dim=1)


def crashes(model, task, inner_steps=10, inner_lr=0.4):
    return task.logits


@pytest.mark.parametrize(
    "fn, words",
    [
        (eval_query, ["eval mode", "notebook 02"]),
        (one_by_one, ["one example at a time", "notebook 04"]),
        (mode_left_alone, ["arrives in eval mode", "fmodel.train()", "notebook 02"]),
        (plain_optimizer, ["changed the model's parameters", "diffopt.step", "deep dive maml_on_sinusoids",
                           "changed the model's mode"]),
        (wrong_shape, ["shape (15,)", "(15, 5)"]),
        (crashes, ["crashes raised AttributeError", "logits"]),
    ],
)
def test_check_1_names_the_mistake(fn, words):
    result = lab.check_exercise_1(fn)
    assert not result.passed
    for word in words:
        assert word in result.message, result.message


def eval_predict(model, x):
    with torch.no_grad(), mk.eval_mode(model):
        return model(x)


def contaminating_predict(model, x):
    with torch.no_grad(), mk.train_mode(model):
        return model(x)


def mode_leaking_predict(model, x):
    with torch.no_grad(), mk.preserved_bn_stats(model):
        model.train()
        return model(x)


def graph_predict(model, x):
    with mk.preserved_bn_stats(model), mk.train_mode(model):
        return model(x)


@pytest.mark.parametrize(
    "fn, words",
    [
        (eval_predict, ["eval-mode ones", "notebook 01"]),
        (contaminating_predict, ["changed the running statistics", "num_batches_tracked", "notebook 04"]),
        (mode_leaking_predict, ["eval mode before the call and is in train mode after"]),
        (graph_predict, ["gradient graph", "torch.no_grad()"]),
    ],
)
def test_check_2_names_the_mistake(fn, words):
    result = lab.check_exercise_2(fn)
    assert not result.passed
    for word in words:
        assert word in result.message, result.message


def _meta_step(model, tasks, inner_opt, outer_opt, inner_steps, copy_initial_weights=False, query_train=True,
               divide=True, step=True, query_no_grad=False):
    outer_opt.zero_grad()
    losses = []
    for task in tasks:
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=copy_initial_weights) as (fmodel, diffopt):
            fmodel.train()
            for _ in range(inner_steps):
                diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
            fmodel.train(query_train)
            with torch.set_grad_enabled(not query_no_grad):
                loss = F.cross_entropy(fmodel(task.query_x), task.query_y)
            (loss / (len(tasks) if divide else 1)).backward()
            losses.append(loss.item())
    if step:
        outer_opt.step()
    return sum(losses) / len(losses)


def default_copy_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    return _meta_step(model, tasks, inner_opt, outer_opt, inner_steps, copy_initial_weights=True)


def eval_query_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    return _meta_step(model, tasks, inner_opt, outer_opt, inner_steps, query_train=False)


def summed_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    return _meta_step(model, tasks, inner_opt, outer_opt, inner_steps, divide=False)


def forgot_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    return _meta_step(model, tasks, inner_opt, outer_opt, inner_steps, step=False)


def no_grad_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    return _meta_step(model, tasks, inner_opt, outer_opt, inner_steps, query_no_grad=True)


def plain_inner_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    outer_opt.zero_grad()
    for task in tasks:
        for _ in range(inner_steps):
            inner_opt.zero_grad()
            F.cross_entropy(model(task.support_x), task.support_y).backward()
            inner_opt.step()
        (F.cross_entropy(model(task.query_x), task.query_y) / len(tasks)).backward()
    outer_opt.step()
    return 0.0


def returns_nothing_step(model, tasks, inner_opt, outer_opt, inner_steps=1):
    _meta_step(model, tasks, inner_opt, outer_opt, inner_steps)


@pytest.mark.parametrize(
    "fn, words",
    [
        (default_copy_step, ["copy_initial_weights=False", "deep dive maml_on_sinusoids"]),
        (eval_query_step, ["query loss in eval mode", "notebook 02"]),
        (summed_step, ["summed the task losses"]),
        (forgot_step, ["never called outer_opt.step()"]),
        (no_grad_step, ["does not require grad", "torch.no_grad()", "notebook 01"]),
        (plain_inner_step, ["inner_opt.step()", "diffopt.step", "not MAML"]),
        (returns_nothing_step, ["returned NoneType", "mean query loss"]),
    ],
)
def test_check_3_names_the_mistake(fn, words):
    result = lab.check_exercise_3(fn)
    assert not result.passed
    for word in words:
        assert word in result.message, result.message


def test_checks_leave_the_random_state_alone(notebook):
    solutions = functions_of(solution_cells(notebook))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for number, fn in solutions.items():
        CHECKS[number](fn)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------------------ the notebook


def test_lab_has_three_tagged_exercises_the_widgets_and_an_instructor_cell(notebook):
    cells = solution_cells(notebook)
    assert [exercise_number(c) for c in cells] == [1, 2, 3]
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    for name in ("PlacementPlayground", "BatchNormExplorer", "ConfidenceExplorer",
                 "check_exercise_1", "check_exercise_2", "check_exercise_3"):
        assert name in code
    instructor = [c for c in notebook.cells if "instructor" in tool.tags(c)]
    assert len(instructor) == 1 and "check_1.passed" in instructor[0].source
    for cell in cells:                                   # each exercise is followed by its check
        after = notebook.cells[notebook.cells.index(cell) + 1]
        assert f"check_exercise_{exercise_number(cell)}(" in after.source
