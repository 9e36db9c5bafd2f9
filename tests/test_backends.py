"""The torch.func backend computes what the higher backend computes: meta-gradients, statistics, outputs."""

import copy

import higher
import numpy as np
import pytest
import torch
from conftest import make_split, sampler_and_model
from torch.func import functional_call

import mamlkit as mk
from mamlkit.adapt import task_loss
from mamlkit.backends import FunctionalModel, clone_buffers

BACKENDS = ("higher", "torch.func")


def setup(norm="bn", seed=0):
    return sampler_and_model(seed, norm)


def flat_grad(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def one_task_meta_gradient(norm, placement, backend, first_order=False):
    """The model's .grad after one task's query backward (one outer iteration of one task)."""
    sampler, model = setup(norm)
    config = mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=2, placement=placement, first_order=first_order)
    trained = mk.meta_train(model, sampler, config, progress=False, backend=backend)
    return flat_grad(model), trained, model


@pytest.mark.parametrize("placement", list(mk.TRAIN_PLACEMENTS))
@pytest.mark.parametrize("norm", list(mk.norms.NORMS))
def test_meta_gradients_and_collected_stats_equal_across_backends(norm, placement):
    g_higher, a, model_a = one_task_meta_gradient(norm, placement, "higher")
    g_func, b, model_b = one_task_meta_gradient(norm, placement, "torch.func")
    assert g_higher.abs().sum() > 0
    assert torch.allclose(g_higher, g_func, rtol=0, atol=1e-6), (g_higher - g_func).abs().max()
    assert a.collected_stats.keys() == b.collected_stats.keys()
    for key in a.collected_stats:
        assert torch.allclose(a.collected_stats[key].double(), b.collected_stats[key].double(), atol=1e-6), key
    for p, q in zip(model_a.parameters(), model_b.parameters()):  # the same Adam step from the same gradient
        assert torch.allclose(p, q, atol=1e-6)
    assert a.history.loss == pytest.approx(b.history.loss, abs=1e-6)


@pytest.mark.parametrize("norm", ["bn", "tasknorm_i"])
def test_first_order_meta_gradients_equal_across_backends(norm):
    g_higher = one_task_meta_gradient(norm, "standard", "higher", first_order=True)[0]
    g_func = one_task_meta_gradient(norm, "standard", "torch.func", first_order=True)[0]
    assert torch.allclose(g_higher, g_func, rtol=0, atol=1e-6)


def test_write_back_writes_the_same_statistics_and_copies_leave_the_model_untouched():
    cfg = dict(iterations=2, meta_batch=2, inner_steps=1)
    states = {}
    for backend in BACKENDS:
        sampler, model = setup()
        trained = mk.meta_train(model, sampler, mk.TrainConfig(**cfg, running_stats="write_back"), progress=False,
                                backend=backend)
        states[backend] = mk.snapshot_bn_stats(model)
        for key, value in states[backend].items():  # the written-back statistics are the collected ones
            assert torch.allclose(value.double(), trained.collected_stats[key].double(), atol=1e-6), key
        sampler, untouched = setup()
        mk.meta_train(untouched, sampler, mk.TrainConfig(**cfg), progress=False, backend=backend)
        assert mk.bn_stats_untouched(untouched), "copies: the model's own buffers never move"
    for key in states["higher"]:
        assert torch.allclose(states["higher"][key].double(), states["torch.func"][key].double(), atol=1e-6)


def test_the_torch_func_backend_does_not_use_higher(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("higher was used")

    monkeypatch.setattr(higher, "innerloop_ctx", refuse)
    sampler, model = setup()
    mk.meta_train(model, sampler, mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=1), progress=False,
                  backend="torch.func")
    mk.adapt_and_predict(model, sampler.task(3), "transductive", inner_steps=1, backend="torch.func")


@pytest.fixture(scope="module")
def trained_models():
    """A briefly meta-trained model per normalisation, with running statistics worth reading."""
    models = {}
    for norm in mk.norms.NORMS:
        sampler, model = setup(norm)
        models[norm] = mk.meta_train(model, sampler, mk.TrainConfig(iterations=2, meta_batch=2, inner_steps=1),
                                     progress=False)
    return models


@pytest.mark.parametrize("norm", list(mk.norms.NORMS))
def test_meta_test_outputs_equal_across_backends_and_leave_the_model_bit_identical(norm, trained_models):
    trained = trained_models[norm]
    model = trained.model
    task = make_task()
    model.eval()
    model.features[1].train()  # a deliberately mixed state, to be left exactly as it was
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = mk.get_modes(model)
    groups = {}  # placements sharing statistics and adapt mode are adapted once (as meta_test does)
    for placement in mk.PLACEMENTS.values():
        groups.setdefault((placement.stats, placement.adapt_mode), []).append(placement)
    outputs = {backend: {} for backend in BACKENDS}
    for (stats, _), group in groups.items():
        for backend in BACKENDS:
            with mk.preserved_bn_stats(model):
                if stats == "collected":
                    mk.restore_bn_stats(model, trained.collected_stats)
                outputs[backend].update(
                    mk.adapt.adapt_and_predict_many(model, task, group, inner_steps=2, backend=backend))
            assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), backend
            assert mk.get_modes(model) == modes, backend
    assert set(outputs["torch.func"]) == set(mk.PLACEMENTS)
    for name, out in outputs["higher"].items():
        assert out.shape == (15, 5)
        assert torch.allclose(out, outputs["torch.func"][name], rtol=0, atol=1e-5), name


def make_task():
    return mk.TaskSampler(make_split(seed=9, name="test"), 5, 1, 3, seed=1).task(0)


def test_meta_test_of_every_placement_gives_the_same_results_with_both_backends(trained_models):
    trained = trained_models["bn"]
    sampler = mk.TaskSampler(make_split(seed=9, name="test"), 5, 1, 3, seed=1)
    results = {b: mk.meta_test(trained, sampler, mk.PLACEMENTS, n_tasks=2, inner_steps=1, progress=False, backend=b)
               for b in BACKENDS}
    assert set(results["torch.func"]) == set(mk.PLACEMENTS)
    for name in mk.PLACEMENTS:
        assert np.array_equal(results["higher"][name].values, results["torch.func"][name].values), name
    single = mk.meta_test(trained.model, sampler, "transductive", n_tasks=2, inner_steps=1, progress=False,
                          backend="torch.func")
    assert np.array_equal(single.values, results["higher"]["transductive"].values)


def test_an_unknown_backend_is_refused_clearly(trained_models):
    trained = trained_models["bn"]
    sampler = mk.TaskSampler(make_split(seed=9, name="test"), 5, 1, 3, seed=1)
    calls = [
        lambda: mk.meta_train(copy.deepcopy(trained.model), sampler, mk.TrainConfig(iterations=1), progress=False,
                              backend="jax"),
        lambda: mk.adapt_and_predict(trained.model, sampler.task(0), "transductive", backend="jax"),
        lambda: mk.meta_test(trained.model, sampler, n_tasks=1, progress=False, backend="jax"),
        lambda: mk.meta_test(trained, sampler, mk.PLACEMENTS, n_tasks=1, progress=False, backend="jax"),
    ]
    for call in calls:
        with pytest.raises(mk.ConfigError, match="unknown backend 'jax'; choose one of: higher, torch.func"):
            call()


def test_hand_written_higher_and_torch_func_inner_loops_agree():
    """The migration shown in notebook 06: a higher loop and its torch.func equivalent, side by side."""
    sampler, model = setup()
    task = sampler.task(0)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
        for _ in range(2):
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
        task_loss(fmodel(task.query_x), task.query_y).backward()
    with_higher = flat_grad(model)

    model.zero_grad(set_to_none=True)
    params, buffers = dict(model.named_parameters()), clone_buffers(model)
    for _ in range(2):
        loss = task_loss(functional_call(model, (params, buffers), (task.support_x,)), task.support_y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {name: p - 0.4 * g for (name, p), g in zip(params.items(), grads)}
    task_loss(functional_call(model, (params, buffers), (task.query_x,)), task.query_y).backward()
    assert torch.allclose(with_higher, flat_grad(model), rtol=0, atol=1e-6)
    assert mk.bn_stats_untouched(model), "the buffers given to functional_call were copies"


def test_functional_model_sets_its_mode_only_during_calls():
    _, model = setup()
    model.train()
    fmodel = FunctionalModel(model, dict(model.named_parameters()), clone_buffers(model)).eval()
    seen = []
    handle = model.features[1].register_forward_pre_hook(lambda m, inputs: seen.append(m.training))
    try:
        fmodel(torch.rand(4, 1, 28, 28))
    finally:
        handle.remove()
    assert seen == [False] and model.training and all(mk.get_modes(model).values())
