"""Confidence intervals, meta-test state safety, paired comparisons and tables."""

import math

import numpy as np
import pytest
import torch
from conftest import make_split

import mamlkit as mk
from mamlkit.experiments import intervals, presentation


def test_confidence_interval_formula():
    values = [0.2, 0.4, 0.6, 0.8]
    mean, half = mk.confidence_interval(values)
    assert mean == pytest.approx(0.5)
    assert half == pytest.approx(1.96 * np.std(values) / math.sqrt(4))


def test_interval_shrinks_as_one_over_sqrt_n():
    rng = np.random.default_rng(0)
    small = mk.confidence_interval(rng.uniform(size=600))[1]
    large = mk.confidence_interval(rng.uniform(size=2400))[1]
    assert large / small == pytest.approx(0.5, rel=0.1)


def test_tasks_needed():
    assert intervals.tasks_needed(std=0.15, half_width=0.012) == math.ceil((1.96 * 0.15 / 0.012) ** 2)


@pytest.fixture(scope="module")
def trained():
    split = make_split()
    model = mk.build_model(mk.ModelConfig(), seed=0, device="cpu")
    return mk.meta_train(model, mk.TaskSampler(split, 5, 1, 3, seed=0), mk.TrainConfig(iterations=5, meta_batch=2),
                         progress=False)


@pytest.fixture
def test_sampler():
    return mk.TaskSampler(make_split(seed=9, name="test"), 5, 1, 3, seed=1)


def test_meta_test_of_every_placement_leaves_the_model_bit_identical(trained, test_sampler):
    model = trained.model
    model.eval()
    model.features[1].train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = mk.get_modes(model)
    results = mk.meta_test(trained, test_sampler, mk.PLACEMENTS, n_tasks=3, inner_steps=2, progress=False)
    assert set(results) == set(mk.PLACEMENTS)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert mk.get_modes(model) == modes


def test_grouped_meta_test_equals_one_placement_at_a_time(trained, test_sampler):
    together = mk.meta_test(trained, test_sampler, mk.PLACEMENTS, n_tasks=4, inner_steps=2, progress=False)
    for name in mk.PLACEMENTS:  # train_then_eval_collected: adapted with transductive, its statistics replayed
        alone = mk.meta_test(trained.model, test_sampler, name, n_tasks=4, inner_steps=2,
                             collected_stats=trained.collected_stats, progress=False)
        assert np.array_equal(alone.values, together[name].values), name


def test_meta_test_in_two_lanes_equals_one_process_bit_for_bit(trained, test_sampler):
    """The tasks split over two worker processes (one torch thread each) give exactly the values of one
    process at one thread (the tests run at MAMLKIT_THREADS=1), in task order; on_task counts every task."""
    torch.set_num_threads(1)
    here = mk.meta_test(trained, test_sampler, mk.PLACEMENTS, n_tasks=5, inner_steps=2, progress=False)
    seen = []
    lanes = mk.meta_test(trained, test_sampler, mk.PLACEMENTS, n_tasks=5, inner_steps=2, progress=False, lanes=2,
                         on_task=lambda done, total: seen.append((done, total)))
    for name in mk.PLACEMENTS:
        assert np.array_equal(here[name].values, lanes[name].values), name
        assert lanes[name].task_indices == tuple(range(5))
    assert seen[-1] == (5, 5) and len(seen) >= 2
    for bad in (0, -2, 1.5):
        with pytest.raises(mk.ConfigError, match="lanes must be"):
            mk.meta_test(trained, test_sampler, "transductive", n_tasks=2, progress=False, lanes=bad)


def test_meta_test_in_threads_equals_one_thread_bit_for_bit(trained, test_sampler):
    """Tasks side by side in threads of this process (each on a model copy and one torch thread) give the values
    of one task at a time at one thread; the caller's torch thread count and random state are left as they were."""
    torch.set_num_threads(1)
    here = mk.meta_test(trained, test_sampler, mk.PLACEMENTS, n_tasks=5, inner_steps=2, progress=False)
    torch.manual_seed(3)
    state = torch.random.get_rng_state()
    seen = []
    for threads in (2, 3):
        side = mk.meta_test(trained, test_sampler, mk.PLACEMENTS, n_tasks=5, inner_steps=2, progress=False,
                            threads=threads, on_task=lambda done, total: seen.append((done, total)))
        for name in mk.PLACEMENTS:
            assert np.array_equal(here[name].values, side[name].values), (threads, name)
            assert side[name].task_indices == tuple(range(5))
        assert seen[-1] == (5, 5) and len(seen) >= 2
    assert torch.get_num_threads() == 1 and torch.equal(torch.random.get_rng_state(), state)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(mk.ConfigError, match="threads must be"):
            mk.meta_test(trained, test_sampler, "transductive", n_tasks=2, progress=False, threads=bad)


def test_a_model_whose_dropout_draws_runs_one_task_at_a_time(test_sampler):
    torch.set_num_threads(1)
    model = mk.build_model(mk.ModelConfig(dropout=0.5), seed=4, device="cpu")
    assert mk.modes.draws_random_numbers(model)
    with mk.modes.dropout_off(model):
        assert not mk.modes.draws_random_numbers(model)
    alone = mk.meta_test(model, test_sampler, "transductive", n_tasks=6, inner_steps=2, progress=False)
    side = mk.meta_test(model, test_sampler, "transductive", n_tasks=6, inner_steps=2, progress=False, threads=2)
    assert np.array_equal(alone.values, side.values)                    # masks seeded by task index, in order


def test_tasks_in_threads_that_draw_random_numbers_are_measured_again_one_at_a_time(test_sampler):
    """A layer mamlkit does not know draws from torch's generator: the threads would share it, so meta_test sees
    the generator move and measures the tasks again one at a time, each seeded by its index."""
    torch.set_num_threads(1)
    from test_adapt import noisy

    model = noisy(mk.build_model(mk.ModelConfig(), seed=4, device="cpu"))
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    alone = mk.meta_test(model, test_sampler, "transductive", n_tasks=6, inner_steps=2, progress=False, threads=1)
    side = mk.meta_test(model, test_sampler, "transductive", n_tasks=6, inner_steps=2, progress=False, threads=2)
    assert np.array_equal(alone.values, side.values)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_collected_placement_needs_collected_stats(trained, test_sampler):
    with pytest.raises(mk.ConfigError, match="collected_stats"):
        mk.meta_test(trained.model, test_sampler, "eval_collected", n_tasks=2, progress=False)


def test_unknown_placement_lists_the_valid_ones(trained, test_sampler):
    with pytest.raises(mk.ConfigError, match="transductive"):
        mk.meta_test(trained.model, test_sampler, "eval_everything", n_tasks=2, progress=False)


def test_paired_difference_and_results_text():
    a = mk.EvalResult("a", np.array([1.0, 0.8, 0.6, 1.0]), task_indices=(0, 1, 2, 3))
    b = mk.EvalResult("b", np.array([0.2, 0.2, 0.4, 0.2]), task_indices=(0, 1, 2, 3))
    d = mk.paired_difference(a, b)
    assert d.mean == pytest.approx(0.6) and d.a_wins == 4 and d.significant
    assert "a - b: +60.0 ± " in str(d) and "points" in str(d)
    mse = mk.paired_difference(mk.EvalResult("x", np.array([1.0, 2.0]), "mse", task_indices=(0, 1)),
                               mk.EvalResult("y", np.array([0.5, 1.0]), "mse", task_indices=(0, 1)))
    assert "+0.750 ± " in str(mse) and "MSE" in str(mse) and "points" not in str(mse)
    assert str(a).startswith("a: 85.0 ± ")
    with pytest.raises(ValueError, match="same tasks"):
        mk.paired_difference(a, mk.EvalResult("c", np.array([0.0, 1.0]), task_indices=(5, 6)))


def test_placement_table_renders_in_text_html_and_markdown():
    r = {"standard": {"transductive": mk.EvalResult("transductive", np.array([0.9, 0.7]))}}
    table = mk.experiments.placement_table(r, title="t", n_way=5)
    assert "80.0 ± 13.9" in str(table) and "chance is 20.0%" in str(table)
    assert "<td>80.0 ± 13.9</td>" in table._repr_html_()
    assert table.to_markdown().startswith("| meta-test placement |")


def test_t_interval_uses_student_quantiles_and_the_sample_std():
    from mamlkit.experiments.intervals import t_quantile

    # published table values of the two-sided Student-t multiplier
    for level, df, table in [(0.95, 19, 2.093), (0.95, 1, 12.706), (0.99, 5, 4.032), (0.95, 100000, 1.960)]:
        assert abs(t_quantile(level, df) - table) < 1e-3
    values = [0.5, 0.7, 0.6, 0.9]
    mean, half = mk.t_interval(values)
    assert mean == pytest.approx(0.675)
    assert half == pytest.approx(3.182446 * np.std(values, ddof=1) / 2, rel=1e-5)
    assert half > mk.confidence_interval(values)[1]     # wider than the normal, population-std interval
    with pytest.raises(ValueError):
        mk.t_interval([0.5])


def test_dropout_off_is_batchnorm_in_train_mode_with_dropout_dropping_nothing(test_sampler):
    """dropout_off=True: every placement runs with Dropout at p=0 (in one process and in lanes), the model gets its
    rate back, and a train-mode placement then equals the same model with no Dropout at all."""
    torch.set_num_threads(1)
    config = mk.ModelConfig(dropout=0.5)
    model = mk.build_model(config, seed=4, device="cpu")
    twin = mk.build_model(config, seed=4, device="cpu")
    twin.dropout.p = 0.0
    kwargs = dict(n_tasks=4, inner_steps=2, progress=False)
    off = mk.meta_test(model, test_sampler, ["transductive", "eval_untouched"], dropout_off=True, **kwargs)
    assert model.dropout.p == 0.5 and model.dropout.training                 # the rate and the mode are back
    plain = mk.meta_test(twin, test_sampler, ["transductive", "eval_untouched"], **kwargs)
    for name in ("transductive", "eval_untouched"):
        assert np.array_equal(off[name].values, plain[name].values), name
    # With Dropout on, the masks come from a generator seeded by the task index: the same in any number of
    # lanes and whatever the caller's random state (which is left as it was)
    torch.manual_seed(0)
    on = mk.meta_test(model, test_sampler, "transductive", n_tasks=8, inner_steps=2, progress=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(1)
    on_again = mk.meta_test(model, test_sampler, "transductive", n_tasks=8, inner_steps=2, progress=False, lanes=2)
    assert np.array_equal(on.values, on_again.values)
    torch.manual_seed(0)
    mk.meta_test(model, test_sampler, "transductive", n_tasks=8, inner_steps=2, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    plain_on = mk.meta_test(twin, test_sampler, "transductive", n_tasks=8, inner_steps=2, progress=False)
    assert not np.array_equal(on.values, plain_on.values)                  # the masks do drop units
    in_lanes = mk.meta_test(model, test_sampler, ["transductive", "eval_untouched"], dropout_off=True, lanes=2,
                            **kwargs)
    for name in ("transductive", "eval_untouched"):
        assert np.array_equal(in_lanes[name].values, off[name].values), name
    with mk.modes.dropout_off(model):
        assert model.dropout.p == 0.0
        x = torch.rand(4, 1, 28, 28)
        assert torch.equal(model(x), model(x))
    assert model.dropout.p == 0.5


def test_the_placements_command_takes_dropout_and_dropout_off():
    from mamlkit.cli import _experiment, build_parser

    exp = _experiment(build_parser().parse_args(["placements", "--dropout", "0.3", "--dropout-off"]))
    assert exp.model_config().dropout == 0.3 and exp.test_dropout_off
    assert exp.as_dict()["test_dropout_off"] is True
    plain = _experiment(build_parser().parse_args(["placements"]))
    assert not plain.test_dropout_off and "test_dropout_off" not in plain.as_dict()
    with pytest.raises(mk.ConfigError, match="--dropout"):
        _experiment(build_parser().parse_args(["placements", "--dropout", "1.5"]))
    with pytest.raises(mk.ConfigError, match="--dropout P"):
        _experiment(build_parser().parse_args(["placements", "--dropout-off"]))


def test_query_batches_ends_are_the_transductive_and_one_at_a_time_placements(trained, test_sampler):
    results = presentation.query_batches(trained, test_sampler, sizes=(1, 2, 15), n_tasks=3, inner_steps=2,
                                        progress=False)
    placed = mk.meta_test(trained, test_sampler, ["transductive", "one_at_a_time"], n_tasks=3, inner_steps=2,
                          progress=False)
    for balanced in (True, False):            # 5-way, 3 queries per class: 15 is the whole query set
        assert np.array_equal(results[15, balanced].values, placed["transductive"].values)
        assert np.array_equal(results[1, balanced].values, placed["one_at_a_time"].values)
    assert results[2, True].task_indices == (0, 1, 2)


def test_arrival_orders():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2])
    balanced = y[presentation.arrival_order(y, True)]
    assert balanced.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]               # every batch of 3 holds each class once
    assert y[presentation.arrival_order(y, False)].tolist() == sorted(y.tolist())
    with pytest.raises(mk.ConfigError, match="at least one example"):
        presentation.predict_in_batches(torch.nn.Identity(), torch.rand(9, 3), y, 0, True)
