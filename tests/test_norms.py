"""Non-transductive normalisation: MetaBN, TaskNorm-I, Reptile's protocol, and the protocol table."""


import higher
import pytest
import torch
from conftest import make_split

import mamlkit as mk
from mamlkit.adapt import task_loss
from mamlkit.norms import SupportBatchNorm2d, TaskNormI, uses_context


def a_task(seed=0, n_query=3):
    return mk.TaskSampler(make_split(seed=seed), n_way=5, k_shot=1, n_query=n_query, seed=seed).task(0)


def test_metabn_normalises_everything_with_the_context_moments():
    layer = SupportBatchNorm2d(3)
    x = torch.randn(7, 3, 5, 5) * 3 + 1
    out = layer(x, n_context=4)
    ctx = x[:4]
    mean = ctx.mean(dim=(0, 2, 3), keepdim=True)
    var = ctx.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    assert torch.allclose(out, (x - mean) / torch.sqrt(var + 1e-5), atol=1e-5)
    # Without n_context the whole batch is the context: BatchNorm's batch statistics.
    bn = torch.nn.BatchNorm2d(3, track_running_stats=False)
    assert torch.allclose(layer(x), bn(x), atol=1e-5)


def test_tasknorm_alpha_blends_between_metabn_and_instance_norm():
    x = torch.randn(6, 4, 5, 5) * 2 - 1
    layer = TaskNormI(4)
    assert torch.allclose(layer.alpha(5), torch.full((4,), 0.5))
    with torch.no_grad():
        layer.offset.fill_(30.0)  # alpha -> 1: the support set's moments only (MetaBN)
    assert torch.allclose(layer(x, n_context=3), SupportBatchNorm2d(4)(x, n_context=3), atol=1e-4)
    with torch.no_grad():
        layer.offset.fill_(-30.0)  # alpha -> 0: each example's own moments (instance norm)
    instance = torch.nn.InstanceNorm2d(4)
    assert torch.allclose(layer(x, n_context=3), instance(x), atol=1e-4)
    with torch.no_grad():
        layer.offset.fill_(0.0)
        layer.scale.fill_(1.0)  # alpha depends on the context size
    assert (layer.alpha(1) < layer.alpha(5)).all()


def test_tasknorm_variance_is_the_variance_of_the_mixture():
    torch.manual_seed(0)
    x = torch.randn(5, 2, 4, 4)
    layer = TaskNormI(2)
    with torch.no_grad():
        layer.offset.fill_(0.3)
    out = layer(x, n_context=5)
    # alpha * (context moments) + (1 - alpha) * (instance moments) of a two-component mixture:
    a = layer.alpha(5)[0].item()
    ctx, inst = x[:, 0], x[0, 0]
    mean = a * ctx.mean() + (1 - a) * inst.mean()
    second = a * (ctx.pow(2).mean()) + (1 - a) * inst.pow(2).mean()
    expected = (inst - mean) / torch.sqrt(second - mean**2 + 1e-5)
    assert torch.allclose(out[0, 0], expected, atol=1e-4)


@pytest.mark.parametrize("norm", ["metabn", "tasknorm_i"])
def test_context_norm_query_predictions_do_not_depend_on_the_other_queries(norm):
    task = a_task()
    model = mk.build_model(mk.ModelConfig(norm=norm), device="cpu")
    assert uses_context(model)
    outs = {p: mk.adapt_and_predict(model, task, p, inner_steps=2)
            for p in ("transductive", "one_at_a_time", "one_class_at_a_time", "reptile_protocol")}
    for name, out in outs.items():
        assert torch.allclose(out, outs["transductive"], atol=1e-5), name


@pytest.mark.parametrize("norm", ["metabn", "tasknorm_i"])
def test_context_norms_get_a_meta_gradient_through_higher(norm):
    task = a_task()
    model = mk.build_model(mk.ModelConfig(norm=norm), device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=False) as (fmodel, diffopt):
        for _ in range(2):
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
        task_loss(mk.placements.predict_query(fmodel, task, "batch"), task.query_y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_meta_training_a_tasknorm_model_moves_its_blending_weights():
    sampler = mk.TaskSampler(make_split(), 5, 1, 3, seed=0)
    model = mk.build_model(mk.ModelConfig(norm="tasknorm_i"), device="cpu")
    mk.meta_train(model, sampler, mk.TrainConfig(iterations=2, meta_batch=2, inner_steps=1), progress=False)
    layer = model.features[1]
    assert isinstance(layer, TaskNormI)
    assert layer.scale.abs().sum() > 0 and layer.offset.abs().sum() > 0
