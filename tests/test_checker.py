"""The placement checker reports each mistake in a small MAML loop, and nothing in correct loops."""

import higher
import pytest
import torch
from conftest import sampler_and_model
from torch.func import functional_call
from torch.nn.modules.module import _global_forward_pre_hooks
from torch.optim.optimizer import _global_optimizer_pre_hooks

import mamlkit as mk
from mamlkit.adapt import task_loss
from mamlkit.backends import clone_buffers
from mamlkit.your_code.checker import MISTAKES, MAMLMistakeError, check_maml


def setup(seed=0):
    return sampler_and_model(seed, n_query=2)


def maml_step(model, tasks, outer_opt, copy_initial_weights=False, inner_steps=1):
    """One outer step of MAML written with higher, as in higher's own examples."""
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    outer_opt.zero_grad()
    for task in tasks:
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=copy_initial_weights) as (fmodel, diffopt):
            for _ in range(inner_steps):
                diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
            task_loss(fmodel(task.query_x), task.query_y).backward()
    outer_opt.step()


def meta_test_task(model, task, training=True, inner_steps=1):
    """Adapt a patched copy to the support set and predict the query set without gradients."""
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, diffopt):
        fmodel.train(training)
        for _ in range(inner_steps):
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
        with torch.no_grad():
            return fmodel(task.query_x)


def test_correct_loops_report_nothing(tmp_path):
    sampler, model = setup()
    outer_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    with check_maml(model) as report:
        for iteration in range(2):
            maml_step(model, sampler.batch(2 * iteration, 2), outer_opt)
        meta_test_task(model, sampler.task(10))
        mk.adapt_and_predict(model, sampler.task(11), "transductive", inner_steps=1)
        mk.adapt_and_predict(model, sampler.task(11), "reptile_protocol", inner_steps=1, backend="torch.func")
        torch.save(model.state_dict(), tmp_path / "model.pt")
    assert report.ok, str(report)
    assert report.observed["higher patched copies"] == 6
    assert report.observed["optimiser steps on the model"] == 2
    assert report.observed["functional_call passes with other weights"] > 0
    assert "no mistakes seen" in str(report)


def test_mamlkit_meta_training_and_a_torch_func_loop_report_nothing():
    sampler, model = setup()
    with check_maml(model) as report:
        for backend in ("higher", "torch.func"):
            trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=1, meta_batch=2, inner_steps=1),
                                    progress=False, backend=backend)
        placements = ["transductive", "eval_collected", "train_then_eval_collected", "reptile_protocol"]
        mk.meta_test(trained, sampler, placements, n_tasks=1, inner_steps=1, progress=False)
        outer_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        task = sampler.task(5)
        params, buffers = dict(model.named_parameters()), clone_buffers(model)
        loss = task_loss(functional_call(model, (params, buffers), (task.support_x,)), task.support_y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {name: p - 0.4 * g for (name, p), g in zip(params.items(), grads)}
        task_loss(functional_call(model, (params, buffers), (task.query_x,)), task.query_y).backward()
        outer_opt.step()
    assert report.ok, str(report)


def test_eval_mode_with_untouched_running_statistics_is_reported():
    sampler, model = setup()
    with check_maml(model) as report:
        maml_step(model, sampler.batch(0, 1), torch.optim.Adam(model.parameters(), lr=1e-3))
        meta_test_task(model, sampler.task(10), training=False)
    assert report.codes == ["eval_untouched_stats"]
    assert "higher's patched copy" in report.findings[0].message
    assert report.findings[0].notebook == "02_maml_placements"
    with check_maml(model) as report:  # the model itself, and the torch.func backend
        model.eval()
        with torch.no_grad():
            model(sampler.task(10).query_x)
        mk.adapt_and_predict(model, sampler.task(11), "eval_untouched", inner_steps=1, backend="torch.func")
    assert report.codes == ["eval_untouched_stats"] and report.findings[0].count > 4


def test_higher_default_copy_initial_weights_is_reported():
    sampler, model = setup()
    with check_maml(model) as report:
        maml_step(model, sampler.batch(0, 2), torch.optim.Adam(model.parameters(), lr=1e-3), copy_initial_weights=True)
    assert report.codes == ["no_meta_gradient"]
    assert "copy_initial_weights=True" in report.findings[0].message
    assert report.findings[0].notebook == "deep_dives/maml_on_sinusoids"


def plain_inner_loop(net, task, inner_steps=2, by_hand=False):
    """The flawed inner loop of notebook 02: the meta-parameters themselves are adapted."""
    inner_opt = torch.optim.SGD(net.parameters(), lr=0.4)
    for _ in range(inner_steps):
        inner_opt.zero_grad()
        loss = task_loss(net(task.support_x), task.support_y)
        if by_hand:
            grads = torch.autograd.grad(loss, list(net.parameters()))
            with torch.no_grad():
                for p, g in zip(net.parameters(), grads):
                    p -= 0.4 * g
        else:
            loss.backward()
            inner_opt.step()


@pytest.mark.parametrize("by_hand", [False, True], ids=["optimiser", "by_hand"])
def test_an_inner_loop_on_the_meta_parameters_is_reported(by_hand):
    sampler, model = setup()
    outer_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    task = sampler.task(0)
    with check_maml(model) as report:
        outer_opt.zero_grad()
        plain_inner_loop(model, task, by_hand=by_hand)
        task_loss(model(task.query_x), task.query_y).backward()  # no no_grad: it runs, but it is not MAML
        outer_opt.step()
    assert report.codes == ["inner_loop_on_meta_parameters"]
    assert report.findings[0].notebook == "deep_dives/maml_on_sinusoids"


def test_a_query_loss_under_no_grad_is_reported_when_back_propagated():
    sampler, model = setup()
    task = sampler.task(0)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with check_maml(model) as report:
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
            with torch.no_grad():
                query_loss = task_loss(fmodel(task.query_x), task.query_y)
            with pytest.raises(RuntimeError, match="does not require grad"):
                query_loss.backward()
    assert report.codes == ["query_loss_without_graph"]
    # notebook 02's flawed "correct example": both defects at once
    sampler, model = setup()
    with check_maml(model) as report:
        plain_inner_loop(model, task)
        model.eval()
        with torch.no_grad():
            meta_loss = task_loss(model(task.query_x), task.query_y)
        with pytest.raises(RuntimeError):
            meta_loss.backward()
    assert report.codes == ["inner_loop_on_meta_parameters", "query_loss_without_graph"]


def test_no_grad_prediction_at_meta_test_is_not_reported():
    sampler, model = setup()
    with check_maml(model) as report:
        with torch.no_grad():
            model(sampler.task(0).query_x)  # train mode, a whole batch: a legitimate prediction
        meta_test_task(model, sampler.task(1))
    assert report.ok, str(report)


@pytest.mark.parametrize("switch_to", ["eval", "train"])
def test_a_mode_set_on_the_model_after_the_patched_copy_exists_is_reported(switch_to):
    sampler, model = setup()
    task = sampler.task(0)
    with torch.no_grad():
        model(task.support_x)  # running statistics updated once, so eval mode is not the mistake here
    model.train(switch_to == "eval")
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with check_maml(model) as report:
        with higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, diffopt):
            model.train(switch_to == "train")  # too late: fmodel keeps the mode it was created with
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
    assert report.codes == ["stale_patched_mode"]
    assert f"switched to {switch_to} mode" in report.findings[0].message
    with check_maml(model) as report:  # the fix: set the patched model's mode
        with higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, diffopt):
            model.train(switch_to == "eval")
            fmodel.train(switch_to == "eval")
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
    assert report.ok, str(report)


@pytest.mark.parametrize("how", ["forward", "functional_call"])
def test_meta_test_statistics_saved_with_the_model_are_reported(tmp_path, how):
    sampler, model = setup()
    task = sampler.task(0)
    model.train()

    def meta_test_in_train_mode():
        with torch.no_grad():
            if how == "forward":
                model(task.query_x)
            else:  # the fast weights and the model's own buffers
                functional_call(model, {**dict(model.named_parameters()), **dict(model.named_buffers())},
                                (task.query_x,))

    with check_maml(model) as report:
        meta_test_in_train_mode()
        torch.save(model.state_dict(), tmp_path / "model.pt")
    assert report.codes == ["meta_test_stats_saved"]
    assert report.findings[0].notebook == "04_one_example_at_a_time"
    with check_maml(model) as report:  # the remedy: restore the statistics before saving
        with mk.preserved_bn_stats(model):
            meta_test_in_train_mode()
        torch.save(model, tmp_path / "model-whole.pt")
    assert report.ok, str(report)


def test_train_mode_prediction_one_example_at_a_time_is_reported():
    sampler, model = setup()
    with check_maml(model) as report:
        mk.adapt_and_predict(model, sampler.task(0), "one_at_a_time", inner_steps=1)
    assert report.codes == ["train_mode_single_example"]
    assert report.findings[0].notebook == "04_one_example_at_a_time"


def test_every_mistake_has_a_lesson_that_exists():
    from pathlib import Path

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for mistake in MISTAKES.values():
        assert (notebooks / f"{mistake.notebook}.ipynb").is_file(), mistake.code
        assert mistake.title and len(mistake.advice) > 40


def test_report_prints_renders_and_can_raise():
    sampler, model = setup()
    with check_maml(model) as report:
        pass
    assert "nothing observed" in str(report)
    with pytest.raises(MAMLMistakeError, match="eval_untouched_stats"):
        with check_maml(model, raise_on_exit=True) as report:
            meta_test_task(model, sampler.task(0), training=False)
    text = str(report)
    assert "What happened:" in text and "What to do:" in text
    assert "Lesson: notebooks/02_maml_placements.ipynb" in text
    html = report._repr_html_()
    assert html.startswith("<table>") and "eval_untouched_stats" in html


def test_everything_is_put_back_after_the_block_even_after_an_error():
    sampler, model = setup()
    saved = (higher.monkeypatch, higher.patch.monkeypatch, torch.autograd.backward, torch.save,
             torch.nn.Module.state_dict)
    optimizer_hooks = len(_global_optimizer_pre_hooks)
    module_hooks = len(_global_forward_pre_hooks)
    with pytest.raises(ValueError):
        with check_maml(model):
            meta_test_task(model, sampler.task(0))
            raise ValueError("the user's loop failed")
    assert (higher.monkeypatch, higher.patch.monkeypatch, torch.autograd.backward, torch.save,
            torch.nn.Module.state_dict) == saved
    assert len(_global_optimizer_pre_hooks) == optimizer_hooks
    assert len(_global_forward_pre_hooks) == module_hooks
    assert all(not m._forward_pre_hooks for m in model.modules())


def _bn_layers(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_a_flipped_track_running_stats_in_eval_mode_is_reported_and_its_correct_variants_are_not():
    sampler, model = setup()
    for layer in _bn_layers(model):
        layer.track_running_stats = False
    with check_maml(model) as report:
        meta_test_task(model, sampler.task(0), training=False)
    assert report.codes == ["track_running_stats_flipped"]
    assert "'features.1'" in report.findings[0].message and report.findings[0].notebook == "deep_dives/claims_checked"
    with check_maml(model) as report:                           # train mode: batch statistics, as meant
        meta_test_task(model, sampler.task(0), training=True)
    assert report.ok, str(report)
    for layer in _bn_layers(model):
        layer.running_mean = layer.running_var = None          # eval mode with batch statistics
    with check_maml(model) as report:
        meta_test_task(model, sampler.task(0), training=False)
    assert report.ok, str(report)


def test_dropout_left_on_in_a_prediction_is_reported_and_the_correct_variant_is_not():
    sampler, _ = setup()
    model = mk.build_model(mk.ModelConfig(norm="bn", hidden=8, dropout=0.3), seed=0, device="cpu")
    task = sampler.task(0)
    with check_maml(model) as report:
        meta_test_task(model, task, training=True)                 # BatchNorm right, Dropout on while predicting
    assert report.codes == ["dropout_in_prediction"] and report.findings[0].notebook == "deep_dives/does_it_hold"

    def batchnorm_train_dropout_eval(model, task):
        inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
        with higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, diffopt):
            fmodel.train()
            for m in fmodel.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.eval()                                       # Dropout off, BatchNorm still on batch statistics
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
            with torch.no_grad():
                return fmodel(task.query_x)

    with check_maml(model) as report:
        batchnorm_train_dropout_eval(model, task)
    assert report.ok, str(report)
    plain = mk.build_model(mk.ModelConfig(norm="bn", hidden=8), seed=0, device="cpu")   # Dropout(p=0) is no Dropout
    with check_maml(plain) as report:
        meta_test_task(plain, task, training=True)
    assert report.ok, str(report)


def test_checkers_left_in_any_order_put_everything_back():
    import torch.nn.utils.stateless as stateless

    model = setup()[1]
    wrapped = (higher.monkeypatch, higher.patch.monkeypatch, torch.autograd.backward, torch.save,
               torch.nn.Module.state_dict, stateless._reparametrize_module)
    sampler, other = setup(1)
    a, b = check_maml(model), check_maml(other)
    a.__enter__()
    report = b.__enter__()
    a.__exit__(None, None, None)
    meta_test_task(other, sampler.task(0))             # b still checks after a has left
    assert report.observed["higher patched copies"] == 1
    b.__exit__(None, None, None)
    assert (higher.monkeypatch, higher.patch.monkeypatch, torch.autograd.backward, torch.save,
            torch.nn.Module.state_dict, stateless._reparametrize_module) == wrapped


def test_a_checker_used_without_with_says_so():
    checker = check_maml(setup()[1])
    assert "was not used with `with`" in str(checker)
    with pytest.raises(RuntimeError, match="nothing was checked"):
        assert checker.ok
    with checker as report:
        pass
    assert checker.ok is report.ok and "nothing observed" in str(checker)


def test_mamlkit_meta_training_with_tasks_side_by_side_reports_nothing():
    sampler, model = setup()
    with check_maml(model) as report:
        for backend in ("higher", "torch.func"):
            mk.meta_train(model, sampler, mk.TrainConfig(iterations=1, meta_batch=2, inner_steps=1), progress=False,
                          backend=backend, threads=2)
    assert report.ok and report.observed["optimiser steps on the model"] == 2, str(report)
    assert report.stats_writes == {}                   # copies, never the model's own statistics
