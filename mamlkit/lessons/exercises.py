"""Checks for the exercises of the lesson notebooks (the classroom lab's are in ``mamlkit.lessons.lab``).

Each exercise asks for a few lines of PyTorch or ``higher``, not of mamlkit's API. Its check runs, through the one
runner of ``mamlkit.lessons.harness``, the student's function on a small Conv4 (8 channels, BatchNorm) and a
synthetic task, compares the result with a reference, and returns a ``CheckResult`` that says what is wrong and
which notebook explains it. Calls that take a model run under ``check_maml``, so a mistake the checker knows is
worded from ``MISTAKES``. A check never raises on a student's mistake and leaves the global random state as it was.

======================================  ==========================  ==============================================
exercise                                function to write           what it practises
======================================  ==========================  ==============================================
01.1                                    ``eval_mode_gradients``     eval mode does not turn gradients off
02.1                                    ``write_back``              what "writing each task's statistics back" means
03.1                                    ``support_stats_predict``   eval mode with the support set's statistics
04.1                                    ``reptile_predict``         each query example normalised with the support set
06.1                                    ``sgd_step``                one differentiable inner step, ``torch.func``
confidence_intervals.1                  ``interval``                the 95% confidence interval of a meta-test
maml_on_sinusoids.1                     ``meta_gradient``           a second-order meta-gradient with ``higher``
normalising_without_transduction.1      ``support_normalise``       the support set's statistics (MetaBN)
inner_loop_remedies.1                   ``head_only_predict``       ANIL at meta-test: adapt the classifier only
======================================  ==========================  ==============================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import higher
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from mamlkit.adapt import adapt_and_predict
from mamlkit.lessons.conv4_stats import batch_stats_at, conv4_forward
from mamlkit.lessons.harness import (
    Attempt,
    CheckResult,
    Exercise,
    _as_tensor,
    _close,
    _gap,
    _mode_change,
    _stats_moved,
    _tensors,
    run,
    small_model,
    small_task,
)
from mamlkit.modes import get_modes, snapshot_bn_stats
from mamlkit.rates import InnerRates

# ---------------------------------------------------------------------------------------- 01.1: eval_mode_gradients


def reference_eval_mode_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The gradients of the cross-entropy loss computed in eval mode (on a copy: the model is not touched)."""
    net = copy.deepcopy(model).eval()
    return list(torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters())))


def _judge_eval_mode_gradients(attempt: Attempt) -> None:
    name = attempt.name
    model, task = small_model(0), small_task(0)
    model.train()
    modes, stats = get_modes(model), snapshot_bn_stats(model)
    out = attempt.call(model, task.support_x, task.support_y)
    problems = attempt.problems
    grads, wrong = _tensors(out, name, list(model.parameters()))
    if wrong:
        problems.add(wrong)
    elif any(g is None for g in grads):
        problems.add("some gradients are None: differentiate the loss with respect to every parameter, "
                     "e.g. torch.autograd.grad(loss, list(model.parameters())).")
    else:
        expected = reference_eval_mode_gradients(model, task.support_x, task.support_y)
        if _gap(grads, expected) > 1e-5:
            train_mode = copy.deepcopy(model).train()
            in_train = torch.autograd.grad(F.cross_entropy(train_mode(task.support_x), task.support_y),
                                           list(train_mode.parameters()))
            if _gap(grads, list(in_train)) <= 1e-5:
                problems.add("these are the gradients of the loss computed in train mode (batch statistics). Put "
                             "the model in eval mode before the forward pass: the mode that counts is the one of "
                             "the forward pass, not of backward() (notebook 01).")
            else:
                problems.add(f"the gradients differ from the eval-mode ones (largest difference "
                             f"{_gap(grads, expected):.2g}); use F.cross_entropy(model(x), y) in eval mode.")
    if (text := _mode_change(modes, model)) is not None:
        problems.add(text)
    if (text := _stats_moved(stats, model)) is not None:
        problems.add(text + " Eval mode does not write them: only train-mode passes do (notebook 01).")


EVAL_MODE_GRADIENTS = Exercise("01.1", "eval_mode_gradients", _judge_eval_mode_gradients, error_hints=(
    ("does not require grad", "Eval mode does not turn gradients off: only torch.no_grad() does. Compute the loss "
                              "with gradients enabled, in eval mode (notebook 01)."),))


def check_eval_mode_gradients(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise 01.1: ``eval_mode_gradients(model, x, y)`` returns the gradients (one tensor per parameter) of
    the cross-entropy loss of ``model(x)`` computed in eval mode, and leaves the model's mode as it was."""
    return run(EVAL_MODE_GRADIENTS, student_fn)


# ------------------------------------------------------------------------------------------------- 02.1: write_back


def _judge_write_back(attempt: Attempt) -> None:
    model, task = small_model(2, warm_stats=False), small_task(2)
    params = [p.detach().clone() for p in model.parameters()]
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
        fmodel.train()
        for _ in range(2):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        expected = {k: v.detach().clone() for k, v in fmodel.named_buffers()}
        attempt.call_plain(model, fmodel)
    problems = attempt.problems
    held = dict(model.named_buffers())
    missing = [k for k, v in expected.items() if not torch.equal(held[k], v)]
    if missing:
        means = [k for k in missing if k.endswith("running_mean")]
        hint = ""
        if means and all(float(held[k].abs().sum()) == 0 for k in means):
            hint = " The model still holds 0 and 1: copy into its buffers in place (buffer.copy_(...))."
        elif not means and all(k.endswith("num_batches_tracked") for k in missing):
            hint = " The means and variances are right; num_batches_tracked is a buffer too: copy it as well."
        problems.add(f"{len(missing)} of the model's buffers differ from the patched copy's (e.g. {missing[0]}).{hint} "
                     "fmodel.named_buffers() and model.named_buffers() use the same names (notebook 02).")
    if any(not torch.equal(a, p) for a, p in zip(params, model.parameters())):
        problems.add("the model's parameters changed: write back the buffers only; the parameters are the "
                     "meta-parameters, which only the outer optimiser updates (notebook 02).")
    if any(b.requires_grad for b in model.buffers()):
        problems.add("a buffer of the model now requires grad: copy under torch.no_grad() (or .detach() the values).")


WRITE_BACK = Exercise("02.1", "write_back", _judge_write_back)


def check_write_back(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise 02.1: ``write_back(model, fmodel)`` copies the running statistics (the buffers) of ``higher``'s
    patched copy ``fmodel`` into ``model``, in place, and changes nothing else."""
    return run(WRITE_BACK, student_fn)


# -------------------------------------------------------------------------------------- 03.1: support_stats_predict


def reference_support_stats_predict(fmodel: nn.Module, support_x: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
    """Eval-mode scores of ``query_x``, every BatchNorm layer normalising with the statistics of ``support_x`` at
    ``fmodel``'s current (adapted) weights; ``fmodel`` comes back as it was (modes, momenta, buffers)."""
    norms = [m for m in fmodel.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = {m: m.training for m in fmodel.modules()}
    kept = {m: (m.momentum, {k: v.clone() for k, v in m.named_buffers()}) for m in norms}
    with torch.no_grad():
        for m in norms:
            m.reset_running_stats()
            m.momentum = None                                  # a plain average: one pass gives that batch's own
        fmodel.train()
        fmodel(support_x)
        fmodel.eval()
        scores = fmodel(query_x)
        for m, (momentum, buffers) in kept.items():
            m.momentum = momentum
            for k, v in m.named_buffers():
                v.copy_(buffers[k])
    for m, was_training in modes.items():
        m.training = was_training
    return scores


def _judge_support_stats_predict(attempt: Attempt) -> None:
    name = attempt.name
    model, task = small_model(3), small_task(3, n_query=3)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                              track_higher_grads=False) as (fmodel, diffopt):
        fmodel.train()
        for _ in range(2):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        expected = reference_support_stats_predict(fmodel, task.support_x, task.query_x)
        # The same arithmetic with the biased variance (what a train-mode pass normalises with), and wrong
        # turns, recognised loosely (their variance may be the unbiased one).
        fast = dict(zip([n for n, _ in model.named_parameters()], [p.detach() for p in fmodel.parameters()]))
        with torch.no_grad():
            biased = conv4_forward(fast, task.query_x, batch_stats_at(fast, task.support_x))
            held = conv4_forward(fast, task.query_x, [
                (fmodel.get_submodule(n).running_mean, fmodel.get_submodule(n).running_var)
                for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)])
            transductive = conv4_forward(fast, task.query_x)
            both = conv4_forward(fast, task.query_x, batch_stats_at(fast, torch.cat([task.support_x, task.query_x])))
        modes = get_modes(fmodel)
        out = attempt.call_plain(fmodel, task.support_x, task.query_x)
        changed_modes = get_modes(fmodel) != modes
    problems = attempt.problems
    scores, wrong = _as_tensor(out, name, (task.query_x.shape[0], 5))
    if wrong:
        problems.add(wrong)
    elif not (_close(scores, expected, 1e-3) or _close(scores, biased, 1e-3)):
        turns = [
            (transductive, "these are train-mode scores: the query batch was normalised with its own statistics "
                           "(transductive). Re-estimate the running statistics on the support set, then predict in "
                           "eval mode."),
            (held, "these are eval-mode scores with the running statistics the copy already held (moved a little by "
                   "the support passes, momentum 0.1). Reset them (reset_running_stats()), set momentum = None so "
                   "that one train-mode pass of the support set gives exactly its statistics, then predict in eval "
                   "mode."),
            (both, "the statistics include the query set: estimate them on support_x only, so that each query "
                   "example's score does not depend on the others."),
        ]
        found = next((text for tol in (1e-3, 5e-2) for turn, text in turns if _close(scores, turn, tol)), None)
        problems.add(found or "the scores differ from eval mode with the support set's statistics at the adapted "
                     "weights. One train-mode pass of support_x with momentum = None (after reset_running_stats()) "
                     "makes each running statistic exactly the support set's; with momentum 0.1 it moves only a "
                     "tenth of the way (notebook 03).")
    if changed_modes:
        problems.add("your function changed the modes of fmodel's modules: save each module's mode first "
                     "(modes = {m: m.training for m in fmodel.modules()}) and restore them before returning "
                     "(notebook 01).")


SUPPORT_STATS_PREDICT = Exercise("03.1", "support_stats_predict", _judge_support_stats_predict)


def check_support_stats_predict(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise 03.1: ``support_stats_predict(fmodel, support_x, query_x)`` returns the eval-mode scores of
    ``query_x`` with every BatchNorm layer normalising with the statistics of ``support_x`` at the adapted weights of
    ``higher``'s patched copy ``fmodel`` (the variance biased or unbiased), and leaves each module's mode as it was."""
    return run(SUPPORT_STATS_PREDICT, student_fn)


# -------------------------------------------------------------------------------------------- 04.1: reptile_predict


def reference_reptile_predict(fmodel: nn.Module, support_x: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
    """Each query example normalised together with the support set, in train mode (Reptile's protocol)."""
    n = support_x.shape[0]
    with torch.no_grad():
        return torch.cat([fmodel(torch.cat([support_x, query_x[i:i + 1]]))[n:] for i in range(query_x.shape[0])])


def _judge_reptile_predict(attempt: Attempt) -> None:
    name = attempt.name
    model, task = small_model(4), small_task(4)
    model.train()
    out = attempt.call(model, task.support_x, task.query_x)
    problems = attempt.problems
    logits, wrong = _as_tensor(out, name, (task.query_x.shape[0], 5))
    if wrong:
        problems.add(wrong)
    else:
        probe = copy.deepcopy(model)
        expected = reference_reptile_predict(probe, task.support_x, task.query_x)
        with torch.no_grad():
            whole = probe(task.query_x)
            alone = torch.cat([probe(task.query_x[i:i + 1]) for i in range(task.query_x.shape[0])])
        if _close(logits, whole):
            problems.add("these are the predictions of the whole query set in one batch (transductive): each "
                         "example's statistics include the other queries. Append one query example at a time to "
                         "the support set (notebook 04).")
        elif _close(logits, alone):
            problems.mistake("train_mode_single_example", "each query example was normalised alone.")
        elif not _close(logits, expected):
            problems.add("the predictions differ from Reptile's protocol: for each query example, one forward pass "
                         "on torch.cat([support_x, that example]), keeping the last row (notebook 04).")


REPTILE_PREDICT = Exercise("04.1", "reptile_predict", _judge_reptile_predict)


def check_reptile_predict(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise 04.1: ``reptile_predict(fmodel, support_x, query_x)`` returns, for every query example in order,
    the train-mode prediction of a forward pass on the support set with that one example appended."""
    return run(REPTILE_PREDICT, student_fn)


# --------------------------------------------------------------------------------------------------- 06.1: sgd_step


def reference_sgd_step(model: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                       task: Any, inner_lr: float) -> dict[str, torch.Tensor]:
    """One differentiable SGD step on the support loss with ``functional_call`` (second order)."""
    loss = F.cross_entropy(functional_call(model, (params, buffers), (task.support_x,)), task.support_y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    return {k: p - inner_lr * g for (k, p), g in zip(params.items(), grads)}


def _through_step(step: Callable[..., Any], task: Any) -> tuple[Any, list[torch.Tensor] | None]:
    """The step's new parameters and the meta-gradient of the query loss through them."""
    model = small_model(5).train()
    params = dict(model.named_parameters())
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    new = step(model, params, buffers, task, 0.4)
    if not isinstance(new, dict) or set(new) != set(params):
        return new, None
    loss = F.cross_entropy(functional_call(model, (new, buffers), (task.query_x,)), task.query_y)
    if not loss.requires_grad:
        return new, None
    return new, list(torch.autograd.grad(loss, list(params.values()), allow_unused=True))


def _judge_sgd_step(attempt: Attempt) -> None:
    name = attempt.name
    task = small_task(5)
    new, meta = attempt.call_plain(task, through=_through_step)
    problems = attempt.problems
    _, expected = _through_step(reference_sgd_step, task)
    if not isinstance(new, dict):
        problems.add(f"{name} returned {type(new).__name__}; return a dict with the same names as params.")
    elif meta is None:
        problems.add("a query loss at your new parameters does not reach params: build them from params with "
                     "torch.autograd.grad(...) and p - inner_lr * g, without .detach() or torch.no_grad().")
    elif any(g is None for g in meta):
        problems.add("some new parameters do not depend on params.")
    else:
        gap = _gap(meta, expected)
        if gap > 1e-4:
            problems.add(f"the meta-gradient through your step differs from MAML's (largest difference {gap:.2g}). "
                         "If your new parameters match but the meta-gradient does not, pass create_graph=True to "
                         "torch.autograd.grad: without it the step is first-order (notebook 06).")


SGD_STEP = Exercise("06.1", "sgd_step", _judge_sgd_step)


def check_sgd_step(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise 06.1: ``sgd_step(model, params, buffers, task, inner_lr)`` returns the dict of parameters after
    one SGD step on the support loss, computed with ``torch.func.functional_call`` and differentiable, so that
    a query loss at the new parameters back-propagates into ``params`` with second-order terms."""
    return run(SGD_STEP, student_fn)


# --------------------------------------------------------------------------------- confidence_intervals.1: interval


def _judge_interval(attempt: Attempt) -> None:
    name = attempt.name
    values = np.random.default_rng(7).binomial(25, 0.6, size=400) / 25
    out = attempt.call_plain(values.copy())
    problems = attempt.problems
    try:
        mean, half = (float(v) for v in out)
    except (TypeError, ValueError):
        attempt.fail(f"{name} returned {out!r}; return two numbers: (mean, half_width)")
    n, std = len(values), float(np.std(values))
    expected = 1.96 * std / math.sqrt(n)
    if abs(mean - values.mean()) > 1e-9:
        problems.add(f"the mean is {mean:.4f}; the mean of the accuracies is {values.mean():.4f}.")
    if abs(half - expected) > 0.01 * expected:
        if abs(half - 1.96 * std / n) < 0.01 * expected:
            problems.add("you divided by N; the standard error divides the standard deviation by sqrt(N) "
                         "(deep dive confidence_intervals).")
        elif abs(half - std / math.sqrt(n)) < 0.01 * expected:
            problems.add("that is one standard error; the 95% interval's half-width is 1.96 of them (deep dive "
                         "confidence_intervals).")
        elif abs(half - 1.96 * std) < 0.01 * 1.96 * std:
            problems.add("that is 1.96 standard deviations of one task; the interval of the mean shrinks as "
                         "1/sqrt(N) (deep dive confidence_intervals).")
        else:
            problems.add(f"the half-width is {half:.4f}; 1.96 * std / sqrt(N) is {expected:.4f}.")


INTERVAL = Exercise("confidence_intervals.1", "interval", _judge_interval)


def check_interval(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise confidence_intervals.1: ``interval(accuracies)`` returns ``(mean, half_width)``: the mean of the
    per-task accuracies and the half-width of their 95% confidence interval, 1.96 standard deviations over sqrt(N)."""
    return run(INTERVAL, student_fn)


# ------------------------------------------------------------------------------- maml_on_sinusoids.1: meta_gradient


def reference_meta_gradient(model: nn.Module, task: Any, inner_steps: int, inner_lr: float,
                            first_order: bool = False) -> list[torch.Tensor]:
    """Second-order MAML: the gradient of the query loss after ``inner_steps`` SGD steps on the support set.
    ``first_order``: the inner steps are not differentiated through (the gradient at the adapted weights)."""
    inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                              track_higher_grads=not first_order) as (fmodel, diffopt):
        fmodel.train()
        for _ in range(inner_steps):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        loss = F.cross_entropy(fmodel(task.query_x), task.query_y)
        return list(torch.autograd.grad(loss, list(fmodel.parameters() if first_order else model.parameters())))


def _judge_meta_gradient(attempt: Attempt, inner_steps: int, inner_lr: float) -> None:
    name = attempt.name
    model, task = small_model(1), small_task(1)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    out = attempt.call(model, task, inner_steps, inner_lr)
    problems = attempt.problems
    if any(not torch.equal(a, p) for a, p in zip(before, model.parameters())):
        problems.mistake("inner_loop_on_meta_parameters", "the model's parameters changed during your function.")
    check_model = small_model(1).train()
    expected = reference_meta_gradient(check_model, task, inner_steps, inner_lr)
    grads, wrong = _tensors(out, name, expected)
    if wrong:
        problems.add(wrong)
    elif any(g is None for g in grads) or all(float(g.abs().sum()) == 0 for g in grads):
        problems.mistake("no_meta_gradient", "your gradients are None or zero for the model's parameters.",
                         title="The query loss did not reach the meta-parameters")
    elif _gap(grads, expected) > 1e-4:
        first = reference_meta_gradient(small_model(1).train(), task, inner_steps, inner_lr, first_order=True)
        if _gap(grads, first) <= 1e-4:
            problems.add("these are first-order gradients (the inner steps were not differentiated through). Keep "
                         "higher's default track_higher_grads=True for the second-order meta-gradient (deep dive "
                         "maml_on_sinusoids).")
        else:
            problems.add(f"your meta-gradient differs from MAML's (largest difference {_gap(grads, expected):.2g}). "
                         f"Check: copy_initial_weights=False, train mode, {inner_steps} diffopt.step calls on the "
                         "support loss, then the query loss of the adapted copy (deep dive maml_on_sinusoids).")


META_GRADIENT = Exercise("maml_on_sinusoids.1", "meta_gradient", _judge_meta_gradient)


def check_meta_gradient(student_fn: Callable[..., Any], inner_steps: int = 2, inner_lr: float = 0.4) -> CheckResult:
    """Exercise maml_on_sinusoids.1: ``meta_gradient(model, task, inner_steps, inner_lr)`` returns the
    second-order MAML meta-gradient of one task's query loss (one tensor per parameter), written with ``higher``,
    and leaves the model's parameters as they were."""
    return run(META_GRADIENT, student_fn, inner_steps=inner_steps, inner_lr=inner_lr)


# ------------------------------------------------------------ normalising_without_transduction.1: support_normalise


def reference_support_normalise(h: torch.Tensor, n_support: int, eps: float = 1e-5) -> torch.Tensor:
    """Normalise every row of ``h`` (N, C, H, W) with the per-channel mean and (biased) variance of its first
    ``n_support`` rows: the support set's statistics, as MetaBN does."""
    support = h[:n_support]
    mean = support.mean(dim=(0, 2, 3), keepdim=True)
    var = support.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + eps)


def _judge_support_normalise(attempt: Attempt) -> None:
    name = attempt.name
    g = torch.Generator().manual_seed(10)
    h = torch.randn(8, 3, 4, 4, generator=g) * 2 + 1
    h[5:] += 3.0                                             # the queries look different from the support set
    out = attempt.call_plain(h.clone(), 5, 1e-5)
    problems = attempt.problems
    got, wrong = _as_tensor(out, name, tuple(h.shape))
    if wrong:
        attempt.fail(wrong.replace("query scores (logits)", "normalised features"))
    expected = reference_support_normalise(h, 5)
    whole = F.batch_norm(h, None, None, training=True, eps=1e-5)
    unbiased = (h - h[:5].mean((0, 2, 3), keepdim=True)) / torch.sqrt(h[:5].var((0, 2, 3), keepdim=True) + 1e-5)
    if torch.allclose(got, expected, atol=1e-5):
        pass
    elif torch.allclose(got, whole, atol=1e-5):
        problems.add("these are the whole batch's statistics (train-mode BatchNorm): the queries change each "
                     "other's normalisation. Use only the first n_support rows (the deep dive "
                     "normalising_without_transduction).")
    elif torch.allclose(got, unbiased, atol=1e-5):
        problems.add("use the biased variance (unbiased=False), as BatchNorm normalises with.")
    else:
        problems.add("the result differs from (h - mean) / sqrt(var + eps) with the per-channel mean and variance of "
                     "h[:n_support] over dimensions (0, 2, 3).")


SUPPORT_NORMALISE = Exercise("normalising_without_transduction.1", "support_normalise", _judge_support_normalise)


def check_support_normalise(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise normalising_without_transduction.1: ``support_normalise(h, n_support, eps)`` normalises all rows of
    ``h`` with the statistics of its first ``n_support`` rows (per channel), so that no query example affects
    another's normalisation."""
    return run(SUPPORT_NORMALISE, student_fn)


# ------------------------------------------------------------------------- inner_loop_remedies.1: head_only_predict


def reference_head_only_predict(model: nn.Module, task: Any, inner_steps: int, inner_lr: float) -> torch.Tensor:
    """ANIL at meta-test: ``inner_steps`` SGD steps on the classifier only, train mode, then the query's scores."""
    rates = InnerRates(model, 1, inner_lr, adapt="head")
    return adapt_and_predict(model, task, "transductive", inner_steps, rates)


def _judge_head_only_predict(attempt: Attempt) -> None:
    name = attempt.name
    model, task = small_model(16), small_task(16)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stats, modes = snapshot_bn_stats(model), get_modes(model)
    out = attempt.call(model, task, 3, 0.4)
    problems = attempt.problems
    logits, wrong = _as_tensor(out, name, (task.query_x.shape[0], 5))
    if wrong:
        problems.add(wrong)
    else:
        probe = copy.deepcopy(model)
        probe.load_state_dict(before)
        expected = reference_head_only_predict(probe, task, 3, 0.4)
        everything = adapt_and_predict(probe, task, "transductive", 3, 0.4)
        with torch.no_grad(), torch.random.fork_rng():
            unadapted = probe.train()(task.query_x)
        if _close(logits, everything):
            problems.add("every weight adapted (MAML): give the inner optimiser the classifier's parameters only, "
                         "e.g. torch.optim.SGD(model.classifier.parameters(), lr=inner_lr) "
                         "(deep dive inner_loop_remedies).")
        elif _close(logits, unadapted):
            problems.add("these are the scores before adaptation: take the SGD steps on the support loss with "
                         "diffopt.step(...) before predicting.")
        elif not _close(logits, expected):
            problems.add("the scores differ from ANIL's: in train mode, take inner_steps steps of SGD at inner_lr on "
                         "the support set's cross-entropy, on model.classifier's weight and bias only, then score "
                         "task.query_x as one batch (deep dive inner_loop_remedies).")
        if logits.requires_grad:
            problems.add("the scores carry a graph: predict under torch.no_grad().")
    if any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k not in stats):
        problems.add("the model's own weights changed: adapt a copy (higher.innerloop_ctx), not the model.")
    moved = _stats_moved(stats, model)
    if moved is not None:
        problems.add(moved + " Adapt on higher's copy, whose buffers are copies.")
    if (text := _mode_change(modes, model)) is not None:
        problems.add(text)
HEAD_ONLY_PREDICT = Exercise("inner_loop_remedies.1", "head_only_predict", _judge_head_only_predict)


def check_head_only_predict(student_fn: Callable[..., Any]) -> CheckResult:
    """Exercise inner_loop_remedies.1: ``head_only_predict(model, task, inner_steps, inner_lr)`` adapts a copy of
    the model with ``higher`` in train mode, taking ``inner_steps`` SGD steps at ``inner_lr`` on the classifier's
    weight and bias only, and returns the train-mode scores of ``task.query_x``; the model is left as it was."""
    return run(HEAD_ONLY_PREDICT, student_fn)


#: Every exercise of the lesson notebooks, by label (each runs through ``mamlkit.lessons.harness.run``).
EXERCISES: dict[str, Exercise] = {e.label: e for e in (  # type: ignore[misc]
    EVAL_MODE_GRADIENTS, WRITE_BACK, SUPPORT_STATS_PREDICT, REPTILE_PREDICT, SGD_STEP, INTERVAL, META_GRADIENT,
    SUPPORT_NORMALISE, HEAD_ONLY_PREDICT)}


__all__ = [
    "check_eval_mode_gradients",
    "check_head_only_predict",
    "check_interval",
    "check_meta_gradient",
    "check_reptile_predict",
    "check_sgd_step",
    "check_support_normalise",
    "check_support_stats_predict",
    "check_write_back",
    "reference_eval_mode_gradients",
    "reference_head_only_predict",
    "reference_meta_gradient",
    "reference_reptile_predict",
    "reference_sgd_step",
    "reference_support_normalise",
    "reference_support_stats_predict",
]
