"""The why-eval experiment: its explicit forward pass and conditions against the package's higher placements."""

import json

import pytest
import torch
from test_cli import run_cli

import mamlkit as mk
from mamlkit.lessons import conv4_stats as cs
from mamlkit.lessons import why_eval as we
from mamlkit.modes import snapshot_bn_stats


@pytest.fixture(scope="module")
def setup():
    """An untrained BatchNorm Conv4 with made-up 'collected' statistics, and a few glyphs tasks."""
    exp = mk.preset("quick", test_tasks=3)
    data = exp.load_data()
    model = mk.build_model(exp.model_config(), seed=3, device="cpu")
    with torch.no_grad(), mk.train_mode(model):      # give the model real, non-trivial running statistics
        for task in exp.train_sampler(data).batch(0, 6):
            model(torch.cat([task.support_x, task.query_x]))
    collected = snapshot_bn_stats(model)
    mk.modes.reset_bn_stats(model)
    trained = mk.MetaTrained(model, collected, mk.adapt.History(), {})
    return exp, data, trained


def params_of(model):
    return {name: p.detach() for name, p in model.named_parameters()}


def test_the_explicit_forward_is_batchnorm_in_either_mode(setup):
    exp, data, trained = setup
    model, x = trained.model, exp.test_sampler(data).task(0).query_x
    with torch.no_grad(), mk.preserved_bn_stats(model), mk.train_mode(model):
        train_out = model(x)
    assert torch.allclose(cs.conv4_forward(params_of(model), x), train_out, atol=1e-5)
    with torch.no_grad(), mk.preserved_bn_stats(model), mk.eval_mode(model):
        mk.restore_bn_stats(model, trained.collected_stats)
        eval_out = model(x)
    stats = cs.snapshot_to_layer_stats(model, trained.collected_stats)
    assert torch.allclose(cs.conv4_forward(params_of(model), x, stats), eval_out, atol=1e-5)
    assert not torch.allclose(train_out, eval_out, atol=1e-2)   # the two modes really differ here


def test_every_condition_resolves_through_the_placement_registry():
    """Each condition's modes are those of a placement in ``mk.PLACEMENTS``; three are their placement exactly."""
    for c in we.CONDITIONS.values():
        placement = mk.PLACEMENTS[c.placement]
        assert c.modes == (placement.adapt_mode, placement.query_mode), c.name
        assert placement.presentation == "batch", c.name
    exact = [c.name for c in we.CONDITIONS.values() if c.same_as_placement]
    assert exact == ["train", "eval_untouched", "eval_collected"]


def test_conditions_reproduce_the_packages_higher_placements_task_by_task(setup):
    exp, data, trained = setup
    sampler = exp.test_sampler(data)
    exact = [c for c in we.CONDITIONS.values() if c.same_as_placement]
    ours = we.run_why_eval(exp, [c.name for c in exact], [1.0], trained=trained, progress=False)
    theirs = mk.meta_test(trained, sampler, [c.placement for c in exact], n_tasks=exp.test_tasks,
                          inner_steps=exp.test_inner_steps, progress=False)
    for c in exact:
        assert ours[c.name, 1.0].values.tolist() == theirs[c.placement].values.tolist(), c.name
        assert ours[c.name, 1.0].task_indices == theirs[c.placement].task_indices


def test_the_forward_pass_is_the_conv4_s_own(setup, monkeypatch):
    """``conv4_forward`` runs ``mamlkit.models.Conv4.forward`` (with the statistics chosen by hooks, removed after)."""
    from mamlkit.models import Conv4

    exp, data, trained = setup
    calls = []
    original = Conv4.forward
    monkeypatch.setattr(Conv4, "forward", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    x = exp.test_sampler(data).task(0).query_x
    cs.conv4_forward(params_of(trained.model), x)
    assert calls == [1]
    assert all(not m._forward_hooks for m in cs.conv4_of(params_of(trained.model), "pool").modules())


def test_fresh_statistics_are_detached_batch_statistics_and_differ_from_train_mode(setup):
    exp, data, trained = setup
    task, params = exp.test_sampler(data).task(1), params_of(trained.model)
    fresh = we.adapt(params, task, "fresh", None, 5, 0.4)
    detached = we.adapt(params, task, "batch_detached", None, 5, 0.4)
    train = we.adapt(params, task, "batch", None, 5, 0.4)
    for name in params:
        assert torch.allclose(fresh.params[name], detached.params[name], atol=1e-5), name
    gap = max((train.params[n] - detached.params[n]).abs().max().item() for n in params)
    assert gap > 1e-3, "detaching the batch statistics changed nothing: the gradient through them is missing"
    assert abs(fresh.spread[:, 0] - 1).max() < 1e-3          # fresh statistics fit the support batch exactly


def test_oracle_statistics_make_eval_mode_equal_train_mode_at_the_initial_weights(setup):
    exp, data, trained = setup
    task, params = exp.test_sampler(data).task(2), params_of(trained.model)
    both = torch.cat([task.support_x, task.query_x])
    oracle = cs.batch_stats_at(params, both)
    assert torch.allclose(cs.conv4_forward(params, both, oracle), cs.conv4_forward(params, both), atol=1e-5)
    one_task = cs.population_stats(trained.model, mk.FixedTasks([task], "one"), n_tasks=1)
    for (m1, v1), (m2, v2) in zip(one_task, oracle):
        assert torch.allclose(m1, m2) and torch.allclose(v1, v2)


def test_results_are_paired_and_leave_the_model_bit_identical(setup):
    exp, data, trained = setup
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    res = we.run_why_eval(exp, lr_factors=[1.0, 0.25], trained=trained, progress=False)
    after = trained.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(res.results) == list(we.CONDITIONS)
    assert all(r.n == exp.test_tasks for by in res.results.values() for r in by.values())
    assert len(res.comparisons(1.0)) == len(we.COMPARISONS)
    assert len(res.claims_table().rows) == len(we.CLAIMS)
    assert res.spread["eval_untouched"]["x1"].shape == (exp.test_inner_steps, 4)
    assert "lr 0.1 (x1/4)" in str(res.table())
    json.dumps(res.to_dict())
    res.chart()


def test_claims_compare_the_cells_they_name(setup):
    exp, data, trained = setup
    res = we.run_why_eval(exp, ["train", "eval_oracle"], [1.0, 0.1], trained=trained, progress=False)
    claim = we.Claim("t", ("eval_oracle", None), ("train", 1.0), 0.0)
    best = max(res["eval_oracle", f].mean for f in (1.0, 0.1))
    assert claim.gap(res) == pytest.approx(best - res["train", 1.0].mean)
    first = we.Claim("t", ("train", 1.0), None, 0.0).gap(res, n_tasks=1)
    assert first == pytest.approx(res["train", 1.0].values[0])


def test_only_batchnorm_conv4_models_and_known_conditions_are_accepted(setup):
    exp, data, trained = setup
    layer_model = mk.build_model(mk.ModelConfig(norm="layer"), device="cpu")
    with pytest.raises(mk.ConfigError, match="norm='bn'"):
        cs.check_conv4_bn(layer_model)
    with pytest.raises(mk.ConfigError, match="eval_oracle"):
        we.run_why_eval(exp, ["eval_everything"], trained=trained, progress=False)
    with pytest.raises(mk.ConfigError, match="factors"):
        we.run_why_eval(exp, ["train"], [2.0], trained=trained, progress=False)


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_why_eval_command_writes_its_table_and_record(tmp_path):
    out = run_cli("why-eval", "--quick", "--tasks", "3", "--lr-factors", "1", "0.25", "--no-remedies",
                  "--out", str(tmp_path))
    assert "Why eval mode fails" in out.stdout and "sentence by sentence" in out.stdout
    record = json.loads((tmp_path / "why-eval-glyphs-seed0.json").read_text())
    assert record["lr_factors"] == [1.0, 0.25]
    assert record["results"]["eval_fresh"]["x1/4"]["n"] == 3
    assert (tmp_path / "why-eval-glyphs-seed0.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, words", [
    (["why-eval", "--dataset", "omniglot"], ["--data-dir"]),
    (["why-eval", "--lr-factors", "2"], ["(0, 1]"]),
])
def test_why_eval_bad_input_gives_a_clear_error(args, words):
    out = run_cli(*args, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    for w in words:
        assert w in out.stderr


def test_the_explicit_forward_of_a_strided_conv4_and_layers_that_normalise_each_example_alone(setup):
    exp, data, _ = setup
    config = exp.model_config()
    strided = mk.build_model(mk.ModelConfig(**{**config.as_dict(), "downsample": "stride"}), seed=3, device="cpu")
    x = exp.test_sampler(data).task(0).query_x
    params = params_of(strided)
    with torch.no_grad(), mk.train_mode(strided):
        assert torch.allclose(cs.conv4_forward(params, x, downsample="stride"), strided(x), atol=1e-5)
        one_by_one = torch.cat([strided(x[i:i + 1]) for i in range(len(x))])
    assert not torch.allclose(cs.conv4_forward(params, x, downsample="stride"), cs.conv4_forward(params, x), atol=1e-2)
    # every layer alone is train mode with the examples one at a time; one layer alone is neither
    assert torch.allclose(cs.conv4_forward(params, x, downsample="stride", alone=range(4)), one_by_one, atol=1e-4)
    last = cs.conv4_forward(params, x, downsample="stride", alone=[3])
    assert not torch.allclose(last, one_by_one, atol=1e-3) and not torch.allclose(last, strided(x), atol=1e-3)
    with pytest.raises(mk.ConfigError, match="layers 0-3"):
        cs.conv4_forward(params, x, alone=[4])
    with pytest.raises(mk.ConfigError, match="downsample='stride'"):
        cs.check_conv4_bn(strided)


@pytest.mark.parametrize("downsample", ["pool", "stride"])
def test_alone_by_layer_ends_are_the_transductive_and_one_at_a_time_placements(setup, downsample):
    exp, data, trained = setup
    model = mk.build_model(mk.ModelConfig(**{**exp.model_config().as_dict(), "downsample": downsample}), seed=3,
                           device="cpu")
    trained = mk.MetaTrained(model, trained.collected_stats, mk.adapt.History(), {})
    sampler = exp.test_sampler(data)
    rows = we.alone_by_layer(trained, sampler, exp.test_tasks, exp.test_inner_steps, exp.train.inner_lr,
                             downsample, progress=False)
    assert len(rows) == 10
    theirs = mk.meta_test(trained, sampler, ["transductive", "one_at_a_time"], n_tasks=exp.test_tasks,
                          inner_steps=exp.test_inner_steps, progress=False)
    assert rows["whole batch"].values.tolist() == theirs["transductive"].values.tolist()
    assert rows["every layer alone"].values.tolist() == theirs["one_at_a_time"].values.tolist()
    dropped = mk.build_model(mk.ModelConfig(**{**exp.model_config().as_dict(), "downsample": downsample,
                                               "dropout": 0.2}), seed=3, device="cpu")
    with pytest.raises(mk.ConfigError, match="Dropout"):
        we.alone_by_layer(mk.MetaTrained(dropped, trained.collected_stats, mk.adapt.History(), {}), sampler, 1,
                          1, 0.4, downsample, progress=False)


def test_a_lone_example_on_a_one_by_one_map_is_refused_in_train_mode():
    """The limit case the deep dive `does_it_hold` quotes: one example and one position leave nothing to normalise,
    and PyTorch refuses it (this pins PyTorch's behaviour the lesson's sentence rests on)."""
    norm = torch.nn.BatchNorm2d(4).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        norm(torch.randn(1, 4, 1, 1))
    assert norm(torch.randn(1, 4, 2, 2)).shape == (1, 4, 2, 2)       # a 2x2 map is accepted
