"""Facts about higher that the lessons rest on, and the behaviour of mamlkit's MAML loops."""

import copy

import higher
import pytest
import torch
from conftest import sampler_and_model

import mamlkit as mk
from mamlkit.adapt import task_loss
from mamlkit.plumbing import lanes


def setup(seed=0, norm="bn"):
    return sampler_and_model(seed, norm, hidden=32)


def query_loss_through_higher(model, task, copy_initial_weights):
    opt = torch.optim.SGD(model.parameters(), lr=0.4)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=copy_initial_weights) as (fmodel, diffopt):
        for _ in range(2):
            diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
        task_loss(fmodel(task.query_x), task.query_y).backward()


def test_higher_default_copy_initial_weights_gives_no_meta_gradient():
    sampler, model = setup()
    query_loss_through_higher(model, sampler.task(0), copy_initial_weights=True)  # higher's default
    assert all(p.grad is None for p in model.parameters())


def test_copy_initial_weights_false_gives_a_meta_gradient():
    sampler, model = setup()
    query_loss_through_higher(model, sampler.task(0), copy_initial_weights=False)
    assert all(p.grad is not None for p in model.parameters())
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


def test_patched_model_mode_is_fixed_at_creation():
    _, model = setup()
    model.train()
    with higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=0.1)) as (fmodel, _):
        model.eval()  # too late: the patched copy keeps the flags it was created with
        assert fmodel.training and all(m.training for m in fmodel.modules())
        fmodel.eval()
        assert not fmodel.training and not any(m.training for m in fmodel.modules())


def test_meta_training_with_higher_leaves_the_models_running_statistics_untouched():
    sampler, model = setup()
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=3, meta_batch=2), progress=False)
    assert mk.bn_stats_untouched(model)
    assert all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
               for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # but the statistics that writing back would have collected did move
    assert int(trained.collected_stats["features.1.num_batches_tracked"]) == 3 * 2 * (5 + 1)


def test_write_back_gives_the_same_weights_and_the_collected_statistics():
    """Train mode never reads running statistics, so writing them back changes no weight;
    and the statistics mamlkit collects alongside equal those actually written back."""
    cfg = dict(iterations=4, meta_batch=2, inner_steps=3)
    sampler, copies = setup()
    a = mk.meta_train(copies, sampler, mk.TrainConfig(**cfg), progress=False)
    sampler, shared = setup()
    mk.meta_train(shared, sampler, mk.TrainConfig(**cfg, running_stats="write_back"), progress=False)
    for (name, p), q in zip(copies.named_parameters(), shared.parameters()):
        assert torch.equal(p, q), name
    written = mk.snapshot_bn_stats(shared)
    assert written.keys() == a.collected_stats.keys()
    for key in written:
        assert torch.allclose(written[key].double(), a.collected_stats[key].double(), rtol=1e-5, atol=1e-6), key


def test_meta_train_is_deterministic_and_learns():
    histories = []
    for _ in range(2):
        sampler, model = setup()
        histories.append(mk.meta_train(model, sampler, mk.TrainConfig(iterations=15, meta_batch=2),
                                       progress=False).history)
    assert histories[0].loss == histories[1].loss
    assert sum(histories[0].loss[-5:]) < sum(histories[0].loss[:5])


def test_first_order_update_is_the_query_gradient_at_the_adapted_weights():
    sampler, model = setup()
    task = sampler.task(0)
    cfg = mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=2, first_order=True, outer_lr=1e-3)
    # expected: adapt a detached copy by plain SGD, take the query gradient there
    import copy

    ref = copy.deepcopy(model)
    for _ in range(2):
        grads = torch.autograd.grad(task_loss(ref(task.support_x), task.support_y), list(ref.parameters()))
        with torch.no_grad():
            for p, g in zip(ref.parameters(), grads):
                p -= 0.4 * g
    expected = torch.autograd.grad(task_loss(ref(task.query_x), task.query_y), list(ref.parameters()))
    mk.meta_train(model, sampler, cfg, progress=False)  # its only task is sampler.task(0); .grad is kept
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, e, atol=1e-6)


def test_second_order_differs_from_first_order():
    grads = {}
    for first_order in (False, True):
        sampler, model = setup()
        cfg = mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=2, first_order=first_order)
        mk.meta_train(model, sampler, cfg, progress=False)
        grads[first_order] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert not torch.allclose(grads[False], grads[True])


@pytest.mark.parametrize("placement", list(mk.PLACEMENTS))
def test_adapt_and_predict_leaves_the_model_bit_identical(placement):
    sampler, model = setup()
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = mk.get_modes(model)
    out = mk.adapt_and_predict(model, sampler.task(0), placement, inner_steps=3)
    assert out.shape == (15, 5)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert mk.get_modes(model) == modes


def test_adapting_several_placements_at_once_equals_separate_runs():
    sampler, model = setup()
    mk.meta_train(model, sampler, mk.TrainConfig(iterations=3, meta_batch=2), progress=False)
    task = sampler.task(5)
    group = [p for p in mk.PLACEMENTS.values() if p.adapt_mode == "train"]
    together = mk.adapt.adapt_and_predict_many(model, task, group, inner_steps=3)
    for p in group:
        assert torch.equal(together[p.name], mk.adapt_and_predict(model, task, p, inner_steps=3)), p.name


def test_bad_train_config_is_refused_clearly():
    with pytest.raises(mk.ConfigError, match="choose one of"):
        mk.TrainConfig(placement="eval_everywhere")
    with pytest.raises(mk.ConfigError, match="running_stats"):
        mk.TrainConfig(running_stats="shared")


SIDE_BY_SIDE = {
    "BatchNorm": ({}, {}),
    "query in eval mode": ({}, {"placement": "query_eval"}),
    "first order": ({}, {"first_order": True}),
    "per-step BatchNorm": ({"norm": "bn_per_step"}, {}),
    "learned inner rates": ({}, {"inner_rates": "learned"}),
    "ANIL": ({}, {"adapt": "head"}),
    "three tasks per meta-batch": ({}, {"meta_batch": 3}),
}


@pytest.mark.parametrize("name", list(SIDE_BY_SIDE))
def test_tasks_side_by_side_give_the_same_model_bit_for_bit(name):
    """Threads change how fast a meta-iteration runs, not what it computes."""
    model_args, train_args = SIDE_BY_SIDE[name]
    config = mk.TrainConfig(**{"iterations": 3, "meta_batch": 2, "inner_steps": 2, **train_args})
    runs = []
    for threads in (1, 2):
        sampler, model = setup(**model_args)
        assert lanes.task_threads(model, config, "higher", threads) == threads
        runs.append(mk.meta_train(model, sampler, config, progress=False, threads=threads))
    one, two = runs
    assert one.model.state_dict().keys() == two.model.state_dict().keys()
    for key, value in one.model.state_dict().items():
        assert torch.equal(value, two.model.state_dict()[key]), key
    for p, q in zip(one.model.parameters(), two.model.parameters()):
        assert torch.equal(p.grad, q.grad)                    # the last meta-gradient is kept in .grad
    assert all(torch.equal(one.collected_stats[k], two.collected_stats[k]) for k in one.collected_stats)
    assert one.history.loss == two.history.loss and one.history.accuracy == two.history.accuracy
    if one.inner_rates is not None:
        assert torch.equal(one.inner_rates.rates, two.inner_rates.rates)


def test_tasks_side_by_side_at_two_torch_threads_equal_one_torch_thread_and_restore_the_count():
    config = mk.TrainConfig(iterations=2, meta_batch=2, inner_steps=2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sampler, model = setup()
        alone = mk.meta_train(model, sampler, config, progress=False)          # None: 1 task at a time
        torch.set_num_threads(2)
        sampler, model = setup()
        assert lanes.task_threads(model, config, "higher", 2) == 2
        paired = mk.meta_train(model, sampler, config, progress=False, threads=2)   # 2 tasks side by side
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for key, value in alone.model.state_dict().items():
        assert torch.equal(value, paired.model.state_dict()[key]), key


def test_one_task_at_a_time_unless_told_otherwise(monkeypatch):
    """The default is what a hand-written loop does (notebook 05 compares one with mk.meta_train at 2 threads);
    $MAMLKIT_TASK_THREADS (which the command line sets to torch's thread count) asks for tasks side by side."""
    _, model = setup()
    config = mk.TrainConfig(iterations=1)
    monkeypatch.delenv("MAMLKIT_TASK_THREADS", raising=False)
    assert lanes.task_threads(model, config, "higher", None) == 1
    monkeypatch.setenv("MAMLKIT_TASK_THREADS", "2")
    assert lanes.task_threads(model, config, "higher", None) == 2
    monkeypatch.setenv("MAMLKIT_TASK_THREADS", "two")
    with pytest.raises(mk.ConfigError, match="MAMLKIT_TASK_THREADS must be a whole number"):
        lanes.task_threads(model, config, "higher", None)


def test_the_meta_gradient_of_tasks_side_by_side_equals_a_bare_higher_loop():
    sampler, model = setup()
    bare = copy.deepcopy(model)
    mk.meta_train(model, sampler, mk.TrainConfig(iterations=1, meta_batch=4, inner_steps=2), progress=False,
                  threads=2)
    inner_opt = torch.optim.SGD(bare.parameters(), lr=0.4)
    for task in sampler.batch(0, 4):
        with higher.innerloop_ctx(bare, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(2):
                diffopt.step(task_loss(fmodel(task.support_x), task.support_y))
            (task_loss(fmodel(task.query_x), task.query_y) / 4).backward()
    ours = torch.cat([p.grad.flatten() for p in model.parameters()])
    theirs = torch.cat([p.grad.flatten() for p in bare.parameters()])
    assert torch.linalg.norm(ours - theirs) <= 1e-6 * torch.linalg.norm(theirs)


def test_tasks_that_share_state_run_one_at_a_time_and_bad_thread_counts_are_refused():
    sampler, model = setup()
    config = mk.TrainConfig(iterations=1)
    assert lanes.task_threads(model, config, "higher", 8) == config.meta_batch     # at most one per task
    assert lanes.task_threads(model, config, "torch.func", 2) == 1
    assert lanes.task_threads(model, mk.TrainConfig(running_stats="write_back"), "higher", 2) == 1
    dropped = mk.build_model(mk.ModelConfig(norm="bn", hidden=8, dropout=0.3), seed=0, device="cpu")
    assert lanes.task_threads(dropped, config, "higher", 2) == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(mk.ConfigError, match="threads must be a whole number"):
            mk.meta_train(model, sampler, config, progress=False, threads=bad)


@pytest.mark.parametrize("norm", ["bn", "bn_batch", "metabn", "tasknorm_i", "none"])
def test_replayed_statistics_give_what_a_separate_adaptation_gives_bit_for_bit(norm):
    """Train-mode adaptation from collected statistics, replayed on the adaptation from untouched ones."""
    from mamlkit.placements import Placement, prepare_stats

    sampler, model = setup(norm=norm)
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=3, meta_batch=2), progress=False)
    own = [p for p in mk.PLACEMENTS.values() if p.adapt_mode == "train" and p.stats == "untouched"]
    others = [mk.PLACEMENTS["train_then_eval_collected"],
              Placement("collected, train query", "train", "train", "collected", "batch", "a custom one")]
    with mk.modes.preserved_bn_stats(model):
        for index in (0, 7):
            task = sampler.task(index)
            prepare_stats(model, "collected", trained.collected_stats)
            start = mk.snapshot_bn_stats(model)
            separate = mk.adapt.adapt_and_predict_many(model, task, others, inner_steps=3)
            prepare_stats(model, "untouched", None)
            alone = mk.adapt.adapt_and_predict_many(model, task, own, inner_steps=3)
            together = mk.adapt.adapt_and_predict_many(model, task, own, inner_steps=3, replay=(start, others))
            assert set(together) == {p.name for p in own + others}
            for p in own:
                assert torch.equal(together[p.name], alone[p.name]), p.name
            for p in others:
                assert torch.equal(together[p.name], separate[p.name]), p.name


@pytest.mark.parametrize("norm, dropout, replayable", [("bn", 0.0, True), ("bn", 0.3, False),
                                                        ("bn_per_step", 0.0, False), ("tasknorm_i", 0.0, True),
                                                        ("metabn", 0.0, True), ("none", 0.0, True)])
def test_replay_is_offered_only_where_it_is_exact(norm, dropout, replayable):
    model = mk.build_model(mk.ModelConfig(norm=norm, hidden=8, dropout=dropout), seed=0, device="cpu")
    assert mk.adapt.can_replay(model) == replayable
    with mk.modes.dropout_off(model):
        assert mk.adapt.can_replay(model) == (norm != "bn_per_step")  # MetaBN and TaskNorm-I keep no buffers


def test_replay_is_refused_where_it_would_be_wrong():
    sampler, model = setup()
    start = mk.snapshot_bn_stats(model)
    others = [mk.PLACEMENTS["train_then_eval_collected"]]
    calls = [lambda: mk.adapt.adapt_and_predict_many(model, sampler.task(0), [mk.PLACEMENTS["eval_untouched"]],
                                                     inner_steps=1, replay=(start, others)),
             lambda: mk.adapt.adapt_and_predict_many(model, sampler.task(0), [mk.PLACEMENTS["transductive"]],
                                                     inner_steps=1, replay=(start, others), backend="torch.func")]
    for call in calls:
        with pytest.raises(mk.ConfigError, match="replay needs train-mode adaptation"):
            call()


class Noise(torch.nn.Module):
    """A layer mamlkit does not know, which draws random numbers in every forward pass."""

    def forward(self, x):
        return x + 0.5 * torch.randn_like(x)


def noisy(model):
    model.dropout = Noise()  # in place of the Conv4's Dropout(p=0), before the classifier
    return model


def test_a_model_that_draws_random_numbers_stays_one_task_at_a_time():
    config = mk.TrainConfig(iterations=3, meta_batch=2, inner_steps=2)
    runs = []
    for threads in (1, 2):
        sampler, model = setup()
        runs.append(mk.meta_train(noisy(model), sampler, config, progress=False, threads=threads))
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(value, runs[1].model.state_dict()[key]), key


def test_the_torch_thread_count_comes_back_when_a_task_fails(monkeypatch):
    sampler, model = setup()
    before = torch.get_num_threads()

    def fails(*args, **kwargs):
        raise RuntimeError("a task failed")

    monkeypatch.setattr(mk.adapt, "_task_contribution", fails)
    with pytest.raises(RuntimeError, match="a task failed"):
        mk.meta_train(model, sampler, mk.TrainConfig(iterations=2, meta_batch=2), progress=False, threads=2)
    assert torch.get_num_threads() == before


def test_replay_refuses_what_it_cannot_replay():
    class MyBatchNorm(torch.nn.BatchNorm2d):
        pass

    assert not mk.adapt.can_replay(torch.nn.Sequential(torch.nn.BatchNorm2d(3, momentum=None)))
    assert not mk.adapt.can_replay(torch.nn.Sequential(MyBatchNorm(3)))
    assert not mk.adapt.can_replay(torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
    sampler, model = setup()
    task, start = sampler.task(0), mk.snapshot_bn_stats(model)
    transductive, collected = mk.PLACEMENTS["transductive"], mk.PLACEMENTS["train_then_eval_collected"]
    per_step = setup(norm="bn_per_step")[1]
    calls = {
        "a model it cannot replay": lambda: mk.adapt.adapt_and_predict_many(
            per_step, task, [transductive], inner_steps=1, replay=(mk.snapshot_bn_stats(per_step), [collected])),
        "an eval-mode placement to replay": lambda: mk.adapt.adapt_and_predict_many(
            model, task, [transductive], inner_steps=1, replay=(start, [mk.PLACEMENTS["eval_collected"]])),
        "a snapshot of another model": lambda: mk.adapt.adapt_and_predict_many(
            model, task, [transductive], inner_steps=1, replay=({}, [collected])),
        "one placement on both sides": lambda: mk.adapt.adapt_and_predict_many(
            model, task, [transductive], inner_steps=1, replay=(start, [transductive])),
    }
    for what, call in calls.items():
        with pytest.raises(mk.ConfigError, match="replay"):
            call()
        assert what
