"""The inner-loop remedies of the deep dive `inner_loop_remedies`: MAML++'s per-step BatchNorm, learned inner
rates (LSLR), ANIL."""

import copy

import pytest
import torch
from conftest import make_split, sampler_and_model

import mamlkit as mk
from mamlkit.adapt import task_loss
from mamlkit.backends import adapted
from mamlkit.errors import CacheError, ConfigError
from mamlkit.norms import PerStepBatchNorm2d, set_inner_step
from mamlkit.rates import InnerRates, head_names

BACKENDS = ("higher", "torch.func")


def make_task():
    return mk.TaskSampler(make_split(seed=9, name="test"), 5, 1, 3, seed=1).task(0)


def per_step_layers(model):
    return [m for m in model.modules() if isinstance(m, PerStepBatchNorm2d)]


# ------------------------------------------------------------------ MAML++'s per-step BatchNorm


def test_default_configurations_keep_their_cache_keys():
    assert "norm_steps" not in mk.ModelConfig().as_dict()
    assert "norm_steps" in mk.ModelConfig(norm="bn_per_step").as_dict()
    assert not {"inner_rates", "adapt"} & set(mk.TrainConfig().as_dict())
    assert mk.TrainConfig(adapt="head").as_dict()["adapt"] == "head"


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_inner_step_writes_its_own_running_statistics(backend):
    sampler, model = sampler_and_model(norm="bn_per_step")
    assert model.features[1].steps == 5
    task = make_task()
    with adapted(model, 0.4, meta=False, backend=backend) as (fmodel, step, buffers):
        fmodel.train()
        for _ in range(3):
            step(task_loss(fmodel(task.support_x), task.support_y))
        counts = buffers()["features.1.num_batches_tracked"]
        assert counts.tolist() == [1, 1, 1, 0, 0], "one support pass at each of steps 0, 1, 2"
        fmodel(task.query_x)  # the query after 3 steps is step 3's
        assert buffers()["features.1.num_batches_tracked"].tolist() == [1, 1, 1, 1, 0]
        means = buffers()["features.1.running_mean"]
        assert torch.equal(means[4], torch.zeros_like(means[4])) and not torch.equal(means[0], means[1])
    assert all(m.inner_step == 0 for m in per_step_layers(model))
    assert mk.bn_stats_untouched(model)


def test_steps_past_the_last_reuse_it_and_eval_mode_reads_the_step_s_statistics():
    layer = PerStepBatchNorm2d(3, steps=2)
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([[0.0] * 3, [1.0] * 3]))
        layer.running_var.copy_(torch.tensor([[1.0] * 3, [4.0] * 3]))
    layer.eval()
    x = torch.full((2, 3, 2, 2), 3.0)
    set_inner_step(layer, 0)
    assert torch.allclose(layer(x), torch.full_like(x, 3.0), atol=1e-4)
    for step in (1, 7):  # 7 > the 2 steps it has: the last row
        set_inner_step(layer, step)
        assert torch.allclose(layer(x), torch.full_like(x, 1.0), atol=1e-4)
    with pytest.raises(ValueError, match="momentum"):
        PerStepBatchNorm2d(3, steps=2, momentum=None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_step_collected_statistics_are_what_writing_back_gives(backend):
    cfg = dict(iterations=2, meta_batch=2, inner_steps=2)
    sampler, _ = sampler_and_model()
    model = mk.build_model(mk.ModelConfig(norm="bn_per_step", hidden=8, norm_steps=2), seed=0, device="cpu")
    trained = mk.meta_train(model, sampler, mk.TrainConfig(**cfg, running_stats="write_back"), progress=False,
                            backend=backend)
    written = mk.snapshot_bn_stats(model)
    assert written["features.1.num_batches_tracked"].tolist() == [4, 8], "step 1 also normalises the query"
    for key, value in written.items():
        assert torch.allclose(value.double(), trained.collected_stats[key].double(), atol=1e-6), key


# ------------------------------------------------------------------ ANIL: only the head adapts


@pytest.mark.parametrize("backend", BACKENDS)
def test_anil_adapts_the_head_only(backend):
    sampler, model = sampler_and_model()
    rates = InnerRates(model, steps=1, lr=0.4, adapt="head")
    assert head_names(model) == ["classifier.weight", "classifier.bias"]
    task = make_task()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with adapted(model, rates, meta=False, backend=backend) as (fmodel, step, _):
        fmodel.train()
        for _ in range(3):
            step(task_loss(fmodel(task.support_x), task.support_y))
        after = dict(zip(rates.names, fmodel.parameters()))
    for name, value in after.items():
        if name.startswith("classifier"):
            assert not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), f"{name} moved"


def test_anil_equals_a_loop_that_adapts_a_head_on_fixed_features():
    sampler, model = sampler_and_model()
    task = make_task()
    rates = InnerRates(model, steps=1, lr=0.4, adapt="head")
    logits = mk.adapt_and_predict(model, task, "transductive", inner_steps=3, inner_lr=rates)
    # By hand: the body's features do not change, so the head is plain softmax regression on them.
    body = torch.nn.Sequential(*model.features)
    with mk.train_mode(model), torch.no_grad():
        support = body(task.support_x).mean(dim=(-2, -1))
        query = body(task.query_x).mean(dim=(-2, -1))
    head = copy.deepcopy(model.classifier)
    for _ in range(3):
        loss = task_loss(head(support), task.support_y)
        grads = torch.autograd.grad(loss, list(head.parameters()))
        with torch.no_grad():
            for p, g in zip(head.parameters(), grads):
                p -= 0.4 * g
    assert torch.allclose(logits, head(query), atol=1e-5)


def test_anil_needs_a_linear_head():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with pytest.raises(ConfigError, match="nn.Linear"):
        InnerRates(model, steps=1, lr=0.4, adapt="head")


# ------------------------------------------------------------------ learned rates (MAML++'s LSLR)


def one_iteration(backend, inner_rates):
    sampler, model = sampler_and_model()
    config = mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=2, inner_rates=inner_rates)
    captured = {}
    original = torch.optim.Adam.step

    def capture(self, *args, **kwargs):  # the gradients the outer step sees, before it moves anything
        captured["grads"] = [p.grad.detach().clone() for group in self.param_groups for p in group["params"]]
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = capture
    try:
        trained = mk.meta_train(model, sampler, config, progress=False, backend=backend)
    finally:
        torch.optim.Adam.step = original
    return captured["grads"], trained


@pytest.mark.parametrize("backend", BACKENDS)
def test_learned_rates_start_as_maml_and_receive_a_meta_gradient(backend):
    fixed, _ = one_iteration(backend, "fixed")
    learned, trained = one_iteration(backend, "learned")
    n = len(fixed)
    for a, b in zip(fixed, learned[:n]):  # the weights' meta-gradient is MAML's when every rate is inner_lr
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    rate_grad = learned[n]
    assert rate_grad.shape == (2, n)
    assert rate_grad.abs().sum() > 0
    assert trained.inner_rates is not None and trained.inner_rates.learned
    assert not torch.equal(trained.inner_rates.rates, torch.full_like(trained.inner_rates.rates, 0.4))


def test_learned_rate_gradients_agree_across_backends():
    higher_grads, _ = one_iteration("higher", "learned")
    func_grads, _ = one_iteration("torch.func", "learned")
    for a, b in zip(higher_grads, func_grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)


def test_learned_rates_need_second_order():
    with pytest.raises(ConfigError, match="second-order"):
        mk.TrainConfig(inner_rates="learned", first_order=True)
    with pytest.raises(ConfigError, match="inner_rates"):
        mk.TrainConfig(inner_rates="per_weight")
    with pytest.raises(ConfigError, match="adapt"):
        mk.TrainConfig(adapt="body")


def test_meta_test_uses_the_rates_of_a_meta_trained_model():
    sampler, model = sampler_and_model()
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=1, adapt="head"),
                            progress=False)
    test = mk.TaskSampler(make_split(seed=9, name="test"), 5, 1, 3, seed=1)
    with_rates = mk.meta_test(trained, test, "transductive", n_tasks=2, inner_steps=2, progress=False)
    by_hand = [mk.accuracy(mk.adapt_and_predict(model, test.task(i), "transductive", 2, trained.inner_rates),
                           test.task(i).query_y) for i in range(2)]
    assert with_rates.values.tolist() == by_hand
    task = test.task(0)
    head_only = mk.adapt_and_predict(model, task, "transductive", 2, trained.inner_rates)
    everything = mk.adapt_and_predict(model, task, "transductive", 2, 0.4)
    assert not torch.allclose(head_only, everything), "the rates must change what meta_test computes"


def test_rates_are_cached_with_the_model(tmp_path):
    sampler, model = sampler_and_model()
    config = mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=2, inner_rates="learned")
    trained = mk.meta_train(model, sampler, config, progress=False)
    path = mk.experiments.cache.save_trained(trained, tmp_path / "m.pt")
    fresh = sampler_and_model()[1]
    loaded = mk.experiments.cache.load_trained(path, fresh, trained.config)
    assert torch.equal(loaded.inner_rates.rates, trained.inner_rates.rates)
    payload = torch.load(path, weights_only=True)
    del payload["inner_rates"]
    torch.save(payload, path)
    with pytest.raises(CacheError, match="inner rates"):
        mk.experiments.cache.load_trained(path, sampler_and_model()[1], trained.config)


def test_the_meta_test_rate_scales_the_fixed_rate_or_the_whole_table():
    from mamlkit.experiments import meta_test_rate

    sampler, model = sampler_and_model()
    config = mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=2, inner_rates="learned")
    trained = mk.meta_train(model, sampler, config, progress=False)
    scaled = meta_test_rate(trained, mk.preset("quick", test_lr_scale=0.1))
    assert torch.allclose(scaled.rates, 0.1 * trained.inner_rates.rates)
    assert meta_test_rate(trained, mk.preset("quick")) is trained.inner_rates
    plain = mk.MetaTrained(model, {}, mk.adapt.History(), {})
    assert meta_test_rate(plain, mk.preset("quick", test_lr_scale=0.1)) == pytest.approx(0.04)
    assert meta_test_rate(plain, mk.preset("quick")) == 0.4
