"""check_maml against the loops people write with each library, run on the real libraries: learn2learn 0.2.0's
MAML wrapper and clones, TorchOpt's MetaSGD, torch.func (functional_call + grad, and vmap over a meta-batch),
higher and a plain functional_call loop. For each style a correct meta-training loop and a correct meta-test
loop leave the checker silent, and each named mistake is reported with advice in that style's terms.

A library that cannot be had here skips its tests with the reason; under CI=true that skip fails the run
(``library`` fixture below)."""

from __future__ import annotations

import copy
import io

import higher
import pytest
import torch
import torch.nn.functional as F
from conftest import make_split
from torch import nn
from torch.func import functional_call, grad, vmap

import mamlkit as mk
from mamlkit.your_code import libraries
from mamlkit.your_code.checker import check_maml

LR = 0.4


def _under_ci() -> bool:
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(reason: str | None) -> None:
    """Skip where a library cannot be had (the reason says why and how); under CI a skip is a failure."""
    if reason is None:
        return
    if _under_ci():
        pytest.fail(f"{reason}; under CI the library tests must run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def l2l() -> libraries.Learn2Learn:
    need(libraries.learn2learn_unavailable_reason())
    return libraries.load_learn2learn()


@pytest.fixture(scope="module")
def torchopt():
    need(libraries.torchopt_unavailable_reason())
    import torchopt

    return torchopt


@pytest.fixture(scope="module")
def sampler() -> mk.TaskSampler:
    return mk.TaskSampler(make_split(), n_way=5, k_shot=1, n_query=3, seed=0)


def conv4(track_running_stats: bool = True, seed: int = 0) -> nn.Module:
    """A small Conv4 with default BatchNorm layers (or, as PyTorch's own MAML example, without running statistics)."""
    if track_running_stats:
        return mk.build_model(mk.ModelConfig(norm="bn", hidden=8), seed=seed, device="cpu")
    torch.manual_seed(seed)
    layers = []
    for c_in in (1, 8, 8, 8):
        layers += [nn.Conv2d(c_in, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=False), nn.ReLU(),
                   nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(8, 5))


def stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


def save(model: nn.Module) -> None:
    torch.save(model.state_dict(), io.BytesIO())


# ------------------------------------------------------------------------------------------------ learn2learn


def l2l_meta_train(l2l, model, sampler, iterations=2, tasks=2, steps=1):
    maml = l2l.MAML(model, lr=LR)
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    for it in range(iterations):
        opt.zero_grad()
        for task in sampler.batch(it * tasks, tasks):
            learner = maml.clone()
            for _ in range(steps):
                learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
            (F.cross_entropy(learner(task.query_x), task.query_y) / tasks).backward()
        opt.step()
    return maml


def l2l_meta_test(maml, sampler, first=100, tasks=2, steps=2, one_at_a_time=False):
    for task in sampler.batch(first, tasks):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
        with torch.no_grad():
            if one_at_a_time:
                torch.cat([learner(x[None]) for x in task.query_x])
            else:
                learner(task.query_x)


def test_learn2learn_correct_loops_are_silent_and_seen(l2l, sampler):
    model = conv4()
    with check_maml(model) as report:
        maml = l2l_meta_train(l2l, model, sampler)
        save(model)                                    # after meta-training: what learn2learn's users save
    assert report.ok, str(report)
    assert report.observed["clones of the model"] == 4 and report.observed["forward passes of clones"] == 8
    assert "nothing observed" not in str(report)
    assert not mk.bn_stats_untouched(model)             # the clones wrote the model's running statistics
    with check_maml(model) as report:                  # a train-mode meta-test, the model not saved afterwards
        l2l_meta_test(maml, sampler)
    assert report.ok and report.observed["forward passes of clones"] == 6, str(report)


def test_learn2learn_train_mode_meta_test_then_save_is_reported(l2l, sampler):
    model = conv4()
    maml = l2l_meta_train(l2l, model, sampler)
    before = stats(model)
    with check_maml(model) as report:
        l2l_meta_test(maml, sampler)
        save(model)
    assert report.codes == ["meta_test_stats_saved"], str(report)
    finding = report.findings[0]
    assert "clones sharing the model's buffers" in finding.message and "maml.clone()" in finding.advice
    assert any(not torch.equal(before[k], v) for k, v in stats(model).items())   # the model's statistics moved
    with check_maml(model) as report:                  # the remedy: put them back before saving
        with mk.preserved_bn_stats(model):
            l2l_meta_test(maml, sampler)
        save(model)
    assert report.ok, str(report)


def test_learn2learn_adapt_on_the_wrapper_is_reported(l2l, sampler):
    model = conv4()
    maml = l2l.MAML(model, lr=LR)
    task = sampler.task(0)
    with check_maml(model) as report:                  # meta-test: the wrapper adapted, then predicting
        maml.adapt(F.cross_entropy(maml(task.support_x), task.support_y))
        with torch.no_grad():
            maml(task.query_x)
    assert report.codes == ["inner_loop_on_meta_parameters"], str(report)
    assert "maml.clone()" in report.findings[0].advice and "wrapper" in report.findings[0].message
    assert report.findings[0].message.startswith("when the MAML wrapper ran")
    model = conv4()
    maml = l2l.MAML(model, lr=LR)
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    with check_maml(model) as report:                  # meta-training: adapted once, the block ends
        opt.zero_grad()
        maml.adapt(F.cross_entropy(maml(task.support_x), task.support_y))
        F.cross_entropy(maml(task.query_x), task.query_y).backward()
        opt.step()
    assert report.codes == ["inner_loop_on_meta_parameters"], str(report)


def test_learn2learn_clone_predicting_one_example_at_a_time_is_reported(l2l, sampler):
    model = conv4()
    maml = l2l.MAML(model, lr=LR)
    with check_maml(model) as report:
        with mk.preserved_bn_stats(model):
            l2l_meta_test(maml, sampler, tasks=1, one_at_a_time=True)
    assert report.codes == ["train_mode_single_example"], str(report)
    assert "clone" in report.findings[0].message and "learner(task.query_x)" in report.findings[0].advice


def test_learn2learn_clone_reused_across_tasks_is_reported(l2l, sampler):
    model = conv4()
    maml = l2l.MAML(model, lr=LR)
    learner = maml.clone()                             # once, outside the task loop
    with check_maml(model) as report, mk.preserved_bn_stats(model):
        for task in sampler.batch(0, 2):
            learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
            learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
    assert report.codes == ["adapted_from_previous_task"], str(report)
    assert "maml.clone()" in report.findings[0].advice


def test_learn2learn_mode_set_on_the_model_after_cloning_is_reported(l2l, sampler):
    model = conv4()
    maml = l2l.MAML(model, lr=LR)
    task = sampler.task(0)
    with check_maml(model) as report, mk.preserved_bn_stats(model):
        learner = maml.clone()                         # made in train mode
        model.eval()                                   # too late: the clone keeps train mode
        learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
    model.train()
    assert report.codes == ["stale_patched_mode"], str(report)
    assert "maml.clone()" in report.findings[0].message and "learner.train()" in report.findings[0].advice


def test_learn2learn_meta_gradient_equals_mamlkit_s(l2l, sampler):
    model = conv4()
    tasks = sampler.batch(0, 2)
    maml = l2l.MAML(copy.deepcopy(model), lr=LR)
    for task in tasks:
        learner = maml.clone()
        learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
        (F.cross_entropy(learner(task.query_x), task.query_y) / 2).backward()
    theirs = [p.grad for p in maml.module.parameters()]
    reference = copy.deepcopy(model)
    inner = torch.optim.SGD(reference.parameters(), lr=LR)
    for task in tasks:
        with higher.innerloop_ctx(reference, inner, copy_initial_weights=False) as (fmodel, diffopt):
            diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
            (F.cross_entropy(fmodel(task.query_x), task.query_y) / 2).backward()
    for (name, p), g in zip(reference.named_parameters(), theirs):
        if name.endswith("bias") and name.startswith("features") and "." in name:
            continue                                   # a bias right before BatchNorm: true gradient 0
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6), name


# ----------------------------------------------------------------------------------------------------- TorchOpt


def torchopt_meta_train(torchopt, model, sampler, iterations=2, tasks=2, steps=1, recover=True):
    inner = torchopt.MetaSGD(model, lr=LR)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for it in range(iterations):
        net_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
        inner_state = torchopt.extract_state_dict(inner, by="reference")
        losses = []
        for task in sampler.batch(it * tasks, tasks):
            for _ in range(steps):
                inner.step(F.cross_entropy(model(task.support_x), task.support_y))
            losses.append(F.cross_entropy(model(task.query_x), task.query_y))
            if recover:
                torchopt.recover_state_dict(model, net_state)
                torchopt.recover_state_dict(inner, inner_state)
        opt.zero_grad()
        torch.stack(losses).mean().backward()
        opt.step()


def torchopt_meta_test(torchopt, model, sampler, first=100, tasks=2, steps=2, training=True):
    inner = torchopt.MetaSGD(model, lr=LR)
    net_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
    inner_state = torchopt.extract_state_dict(inner, by="reference")
    model.train(training)
    for task in sampler.batch(first, tasks):
        for _ in range(steps):
            inner.step(F.cross_entropy(model(task.support_x), task.support_y))
        with torch.no_grad():
            model(task.query_x)
        torchopt.recover_state_dict(model, net_state)
        torchopt.recover_state_dict(inner, inner_state)
    model.train()


def test_torchopt_correct_loops_are_silent(torchopt, sampler):
    model = conv4()
    with check_maml(model) as report:
        torchopt_meta_train(torchopt, model, sampler)
        save(model)
        torchopt_meta_test(torchopt, model, sampler)
        save(model)
    assert report.ok, str(report)
    assert report.observed["forward passes of the model with adapted weights in place"] == 4 + 4
    assert mk.bn_stats_untouched(model)                # recover_state_dict put the buffers back: still 0 and 1


def test_torchopt_task_adapted_from_the_previous_task_is_reported(torchopt, sampler):
    model = conv4()
    with check_maml(model) as report:
        torchopt_meta_train(torchopt, model, sampler, iterations=1, recover=False)
    assert report.codes == ["adapted_from_previous_task"], str(report)
    assert "recover_state_dict" in report.findings[0].advice
    model = conv4()                                    # one task, never recovered: seen when the block ends
    with check_maml(model) as report:
        inner = torchopt.MetaSGD(model, lr=LR)
        task = sampler.task(0)
        inner.step(F.cross_entropy(model(task.support_x), task.support_y))
    assert report.codes == ["adapted_from_previous_task"], str(report)


def test_torchopt_eval_mode_with_untouched_statistics_is_reported(torchopt, sampler):
    model = conv4()
    torchopt_meta_train(torchopt, model, sampler)
    with check_maml(model) as report:
        torchopt_meta_test(torchopt, model, sampler, training=False)
    assert report.codes == ["eval_untouched_stats"], str(report)
    assert "net.train()" in report.findings[0].advice


# --------------------------------------------------------------------------------------------------- torch.func


def func_adapt(model, params, buffers, x, y, steps):
    def loss(p, b):                                    # the buffers an input: train mode writes into them
        return F.cross_entropy(functional_call(model, (p, b), (x,)), y)

    for _ in range(steps):
        grads = grad(loss)(params, buffers)
        params = {k: v - LR * grads[k] for k, v in params.items()}
    return params


def func_meta_train(model, sampler, iterations=2, tasks=2, steps=1, carry_over=False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    for it in range(iterations):
        opt.zero_grad()
        params = dict(model.named_parameters())
        for task in sampler.batch(it * tasks, tasks):
            if not carry_over:
                params = dict(model.named_parameters())
            params = func_adapt(model, params, buffers, task.support_x, task.support_y, steps)
            loss = F.cross_entropy(functional_call(model, (params, buffers), (task.query_x,)), task.query_y)
            (loss / tasks).backward(retain_graph=carry_over)
        opt.step()


def func_meta_test(model, sampler, own_buffers=False, training=True, first=100, tasks=2, steps=2):
    model.train(training)
    for task in sampler.batch(first, tasks):
        buffers = dict(model.named_buffers()) if own_buffers else {k: v.clone() for k, v in model.named_buffers()}
        params = {k: v.detach() for k, v in model.named_parameters()}
        params = func_adapt(model, params, buffers, task.support_x, task.support_y, steps)
        with torch.no_grad():
            functional_call(model, (params, buffers), (task.query_x,))
    model.train()


def test_torch_func_correct_loops_are_silent(sampler):
    model = conv4()
    with check_maml(model) as report:
        func_meta_train(model, sampler)
        save(model)
        func_meta_test(model, sampler)
        save(model)
    assert report.ok, str(report)
    assert report.observed["functional_call passes with other weights"] > 0
    assert mk.bn_stats_untouched(model)


def test_torch_func_own_buffers_at_meta_test_then_save_is_reported(sampler):
    model = conv4()
    with check_maml(model) as report:
        func_meta_test(model, sampler, own_buffers=True)
        save(model)
    assert report.codes == ["meta_test_stats_saved"], str(report)
    assert "functional_call given the model's own buffers" in report.findings[0].message
    assert "named_buffers()" in report.findings[0].advice


def test_torch_func_eval_mode_with_statistics_never_written_is_reported(sampler):
    model = conv4()
    with check_maml(model) as report:
        func_meta_test(model, sampler, training=False)
    assert report.codes == ["eval_untouched_stats"], str(report)


def test_torch_func_weights_carried_over_between_tasks_are_reported(sampler):
    model = conv4()
    with check_maml(model) as report:
        func_meta_train(model, sampler, iterations=1, carry_over=True)
    assert report.codes == ["adapted_from_previous_task"], str(report)


def vmap_meta_batch(model, tasks, steps=1):
    """PyTorch's own MAML example (functorch/examples/maml_omniglot): BatchNorm without running statistics, the
    inner loop with functional_call and grad, vmap over the tasks of a meta-batch, train mode throughout."""
    params = dict(model.named_parameters())
    sx, sy = torch.stack([t.support_x for t in tasks]), torch.stack([t.support_y for t in tasks])
    qx, qy = torch.stack([t.query_x for t in tasks]), torch.stack([t.query_y for t in tasks])

    def one_task(x, y, x_query, y_query):
        fast = func_adapt(model, params, {}, x, y, steps)
        return F.cross_entropy(functional_call(model, fast, (x_query,)), y_query)

    return vmap(one_task)(sx, sy, qx, qy).mean()


def test_torch_func_vmap_over_a_meta_batch_is_silent_even_in_eval_mode_without_running_statistics(sampler):
    model = conv4(track_running_stats=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with check_maml(model) as report:
        for it in range(2):
            opt.zero_grad()
            vmap_meta_batch(model, sampler.batch(2 * it, 2)).backward()
            opt.step()
        with torch.no_grad():
            vmap_meta_batch(model, sampler.batch(100, 2), steps=0)
        save(model)
    assert report.ok, str(report)
    assert report.observed["optimiser steps on the model"] == 2
    model.eval()                                       # without running statistics eval mode is batch statistics
    with check_maml(model) as report:
        with torch.no_grad():
            vmap_meta_batch(model, sampler.batch(100, 2), steps=0)
    assert report.ok, str(report)


def test_mamlkit_write_back_gives_learn2learn_s_statistics(l2l, sampler):
    """mk.meta_train(running_stats="write_back") writes each task's statistics into the model as learn2learn's
    clones do: the same running statistics after the same tasks (and with "copies", none)."""
    model = conv4()
    l2l_meta_train(l2l, model, sampler, iterations=2, tasks=2, steps=2)
    ours = conv4()
    config = mk.TrainConfig(iterations=2, meta_batch=2, inner_steps=2, inner_lr=LR, running_stats="write_back")
    mk.meta_train(ours, sampler, config, progress=False)
    theirs, mine = stats(model), stats(ours)
    assert theirs.keys() == mine.keys()
    for k in theirs:
        assert torch.allclose(theirs[k].float(), mine[k].float(), rtol=1e-4, atol=1e-5), k
