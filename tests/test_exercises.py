"""Each lesson exercise's check passes a correct answer, and words the typical wrong ones."""

import copy
import math
from pathlib import Path

import higher
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from mamlkit.lessons import exercises as ex


def not_done(*args):
    raise NotImplementedError


def assert_feedback(result, *words):
    assert not result.passed, result.message
    text = result.message
    for word in words:
        assert word in text, (word, text)


# 01.1 -----------------------------------------------------------------------------------------------------

def eval_mode_gradients(model, x, y):
    was = model.training
    model.eval()
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    model.train(was)
    return list(grads)


def eval_mode_gradients_in_train_mode(model, x, y):
    return list(torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters())))


def eval_mode_gradients_under_no_grad(model, x, y):
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(x), y)
    return list(torch.autograd.grad(loss, list(model.parameters())))


def test_01_eval_mode_gradients():
    assert ex.check_eval_mode_gradients(eval_mode_gradients).passed
    assert_feedback(ex.check_eval_mode_gradients(eval_mode_gradients_in_train_mode), "computed in train mode",
                    "running statistics")
    assert_feedback(ex.check_eval_mode_gradients(eval_mode_gradients_under_no_grad), "does not turn gradients off")
    assert_feedback(ex.check_eval_mode_gradients(not_done), "NotImplementedError")


# maml_on_sinusoids.1 ----------------------------------------------------------------------------------------

def meta_gradient(model, task, inner_steps, inner_lr, copy_initial_weights=False, track=True):
    inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=copy_initial_weights,
                              track_higher_grads=track) as (fmodel, diffopt):
        for _ in range(inner_steps):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        loss = F.cross_entropy(fmodel(task.query_x), task.query_y)
        wrt = list(model.parameters()) if track else list(fmodel.parameters())
        return list(torch.autograd.grad(loss, wrt, allow_unused=True))


def test_maml_on_sinusoids_meta_gradient():
    assert ex.check_meta_gradient(meta_gradient).passed
    first_order = ex.check_meta_gradient(lambda m, t, s, lr: meta_gradient(m, t, s, lr, track=False))
    assert_feedback(first_order, "first-order")
    copied = ex.check_meta_gradient(lambda m, t, s, lr: meta_gradient(m, t, s, lr, copy_initial_weights=True))
    assert_feedback(copied, "did not reach the meta-parameters", "copy_initial_weights=False",
                    "deep dive maml_on_sinusoids")

    def plain_sgd(model, task, inner_steps, inner_lr):
        opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
        for _ in range(inner_steps):
            opt.zero_grad()
            F.cross_entropy(model(task.support_x), task.support_y).backward()
            opt.step()
        return list(torch.autograd.grad(F.cross_entropy(model(task.query_x), task.query_y), list(model.parameters())))

    assert_feedback(ex.check_meta_gradient(plain_sgd), "changed the meta-parameters",
                    "deep dive maml_on_sinusoids")


# 02.1 -------------------------------------------------------------------------------------------------------

def write_back(model, fmodel):
    patched = dict(fmodel.named_buffers())
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(patched[name])


def test_02_write_back():
    assert ex.check_write_back(write_back).passed
    assert_feedback(ex.check_write_back(lambda model, fmodel: None), "still holds 0 and 1")

    def rebinds(model, fmodel):                                  # rebinding names does not change the model
        for _name, buffer in fmodel.named_buffers():
            buffer = buffer.clone()  # noqa: F841

    assert_feedback(ex.check_write_back(rebinds), "differ from the patched copy's")

    def with_parameters(model, fmodel):
        write_back(model, fmodel)
        with torch.no_grad():
            for p, q in zip(model.parameters(), fmodel.parameters()):
                p.copy_(q)

    assert_feedback(ex.check_write_back(with_parameters), "parameters changed")

    def without_count(model, fmodel):                            # means and variances only
        patched = dict(fmodel.named_buffers())
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if not name.endswith("num_batches_tracked"):
                    buffer.copy_(patched[name])

    result = ex.check_write_back(without_count)
    assert_feedback(result, "num_batches_tracked is a buffer too")
    assert "still holds 0 and 1" not in str(result)




# 03.1 ------------------------------------------------------------------------------------------------------

def support_stats_predict(fmodel, support_x, query_x, reset=True, exact=True, restore_modes=True):
    norms = [m for m in fmodel.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    modes = {m: m.training for m in fmodel.modules()}
    momenta = {m: m.momentum for m in norms}
    with torch.no_grad():
        for m in norms:
            if reset:
                m.reset_running_stats()
            if exact:
                m.momentum = None
        fmodel.train()
        fmodel(support_x)
        fmodel.eval()
        scores = fmodel(query_x)
    if restore_modes:
        for m, was_training in modes.items():
            m.training = was_training
    for m, momentum in momenta.items():
        m.momentum = momentum
    return scores


def train_mode_scores(fmodel, support_x, query_x):
    with torch.no_grad():
        return fmodel.train()(query_x)


def test_03_support_stats_predict():
    assert ex.check_support_stats_predict(support_stats_predict).passed
    assert_feedback(ex.check_support_stats_predict(train_mode_scores), "transductive")
    assert_feedback(ex.check_support_stats_predict(lambda f, s, q: support_stats_predict(f, s, q, exact=False)),
                    "momentum = None", "notebook 03")
    assert_feedback(ex.check_support_stats_predict(lambda f, s, q: support_stats_predict(f, s, q, restore_modes=False)),
                    "changed the modes", "notebook 01")
    assert_feedback(ex.check_support_stats_predict(not_done), "not")


# 04.1 -------------------------------------------------------------------------------------------------------

def reptile_predict(fmodel, support_x, query_x):
    n = len(support_x)
    with torch.no_grad():
        return torch.cat([fmodel(torch.cat([support_x, x[None]]))[n:] for x in query_x])


def test_04_reptile_predict():
    assert ex.check_reptile_predict(reptile_predict).passed
    with torch.no_grad():
        assert_feedback(ex.check_reptile_predict(lambda f, s, q: f(q)), "transductive")
        assert_feedback(ex.check_reptile_predict(lambda f, s, q: torch.cat([f(x[None]) for x in q])),
                        "batch of a single example", "notebook 04")


# confidence_intervals.1 -------------------------------------------------------------------------------------

def test_confidence_intervals_interval():
    assert ex.check_interval(lambda v: (np.mean(v), 1.96 * np.std(v) / math.sqrt(len(v)))).passed
    assert ex.check_interval(lambda v: (np.mean(v), 1.96 * np.std(v, ddof=1) / math.sqrt(len(v)))).passed
    assert_feedback(ex.check_interval(lambda v: (np.mean(v), 1.96 * np.std(v) / len(v))), "sqrt(N)")
    assert_feedback(ex.check_interval(lambda v: (np.mean(v), np.std(v) / math.sqrt(len(v)))), "1.96 of them")
    assert_feedback(ex.check_interval(lambda v: (np.mean(v), 1.96 * np.std(v))), "1/sqrt(N)")
    assert_feedback(ex.check_interval(lambda v: np.mean(v)), "return two numbers")


# normalising_without_transduction.1 -------------------------------------------------------------------------

def test_normalising_without_transduction_support_normalise():
    def answer(h, n, eps):
        s = h[:n]
        return (h - s.mean((0, 2, 3), keepdim=True)) / torch.sqrt(s.var((0, 2, 3), unbiased=False, keepdim=True) + eps)

    assert ex.check_support_normalise(answer).passed
    assert_feedback(ex.check_support_normalise(lambda h, n, eps: F.batch_norm(h, None, None, training=True, eps=eps)),
                    "whole batch's statistics")
    def unbiased_answer(h, n, eps):
        return (h - h[:n].mean((0, 2, 3), keepdim=True)) / torch.sqrt(h[:n].var((0, 2, 3), keepdim=True) + eps)

    unbiased = ex.check_support_normalise(unbiased_answer)
    assert_feedback(unbiased, "biased variance")


# 06.1 -------------------------------------------------------------------------------------------------------

def sgd_step(model, params, buffers, task, inner_lr, create_graph=True):
    loss = F.cross_entropy(functional_call(model, (params, buffers), (task.support_x,)), task.support_y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    return {k: p - inner_lr * g for (k, p), g in zip(params.items(), grads)}


def test_06_sgd_step():
    assert ex.check_sgd_step(sgd_step).passed
    assert_feedback(ex.check_sgd_step(lambda *a: sgd_step(*a, create_graph=False)), "create_graph=True")

    def detached(*args):
        return {k: v.detach() for k, v in sgd_step(*args).items()}

    assert_feedback(ex.check_sgd_step(detached), "does not reach params")
    assert_feedback(ex.check_sgd_step(not_done), "NotImplementedError")


# inner_loop_remedies.1 --------------------------------------------------------------------------------------

def head_only_predict(model, task, inner_steps, inner_lr, params=lambda m: m.classifier.parameters(), mode=True):
    inner_opt = torch.optim.SGD(params(model), lr=inner_lr)
    with higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, diffopt):
        fmodel.train(mode)
        for _ in range(inner_steps):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
        with torch.no_grad():
            return fmodel(task.query_x)


def test_inner_loop_remedies_head_only_predict():
    assert ex.check_head_only_predict(head_only_predict).passed
    everything = ex.check_head_only_predict(lambda *a: head_only_predict(*a, params=lambda m: m.parameters()))
    assert_feedback(everything, "every weight adapted", "classifier")
    assert_feedback(ex.check_head_only_predict(lambda m, t, s, lr: head_only_predict(m, t, 0, lr)), "before adaptation")
    assert_feedback(ex.check_head_only_predict(lambda *a: head_only_predict(*a, mode=False)), "differ from ANIL's")

    def in_place(model, task, inner_steps, inner_lr):
        opt = torch.optim.SGD(model.classifier.parameters(), lr=inner_lr)
        for _ in range(inner_steps):
            opt.zero_grad()
            F.cross_entropy(model(task.support_x), task.support_y).backward()
            opt.step()
        with torch.no_grad():
            return model(task.query_x)

    assert_feedback(ex.check_head_only_predict(in_place), "own weights changed", "running statistics")
    assert_feedback(ex.check_head_only_predict(not_done), "NotImplementedError")


def test_checks_keep_the_random_state():
    state = torch.random.get_rng_state()
    ex.check_write_back(write_back)
    ex.check_meta_gradient(meta_gradient)
    assert torch.equal(state, torch.random.get_rng_state())
    assert copy.deepcopy(ex.check_interval(not_done)).exercise == "confidence_intervals.1"


def test_every_lab_and_exercise_check_runs_through_the_one_runner(monkeypatch):
    """Each public check is an ``Exercise`` run by ``mamlkit.lessons.harness.run``: a function not written yet gets
    the runner's "not done" answer from every one of them, and no check module calls a student's function itself."""
    from mamlkit.lessons import harness, lab

    ran = []

    def spy(exercise, student_fn, **options):
        ran.append(exercise)
        return harness.run(exercise, student_fn, **options)

    for module in (lab, ex):
        monkeypatch.setattr(module, "run", spy)
    checks = [getattr(m, n) for m in (lab, ex) for n in m.__all__ if n.startswith("check_")]

    def not_written(*args, **kwargs):
        raise NotImplementedError

    for check in checks:
        result = check(not_written)
        assert not result.passed and "still raises NotImplementedError" in result.problems[0], check.__name__
    registry = [*lab.EXERCISES.values(), *ex.EXERCISES.values()]
    assert len(checks) == len(registry) == 12
    assert sorted(map(id, ran)) == sorted(map(id, registry))
    for module in (lab, ex):
        source = Path(module.__file__).read_text()
        assert "NotImplementedError:" not in source and "check_maml(" not in source, module.__name__
