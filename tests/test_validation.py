"""The validation layer at the public doors (#38): every reproduction of the issue as a regression test, and
property-based tests (hypothesis) that each input is either accepted or refused with the package's own error in
one line, never with an error from torch or numpy."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import mamlkit as mk
from mamlkit.data.base import ClassSplit
from mamlkit.errors import CacheError, ConfigError, DataError
from mamlkit.experiments.cache import store
from mamlkit.plumbing import checks, lanes, machine
from mamlkit.your_code import diagnosis

OWN_ERRORS = (ConfigError, DataError, CacheError)
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


def refused(call, *words: str) -> str:
    """Run ``call``; it must raise one of the package's errors in one line containing each of ``words``."""
    with pytest.raises(OWN_ERRORS) as info:
        call()
    text = _one_line(info.value)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return text


def accepted_or_refused(call) -> None:
    """The property: ``call`` returns, or raises the package's own error in one line (nothing else)."""
    try:
        call()
    except OWN_ERRORS as exc:
        _one_line(exc)


@pytest.fixture(scope="module")
def split() -> ClassSplit:
    generator = torch.Generator().manual_seed(0)
    return ClassSplit("tiny", torch.rand(6, 4, 1, 16, 16, generator=generator), [f"c{i}" for i in range(6)], ["a"] * 6)


def _tiny_model(n_out: int = 3) -> nn.Module:
    return mk.build_model(mk.ModelConfig(hidden=4, n_out=n_out), device="cpu")


def _episode(n_way: int = 3, generator_seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(generator_seed)
    labels = torch.arange(n_way)
    return (torch.rand(n_way, 1, 16, 16, generator=g), labels, torch.rand(2 * n_way, 1, 16, 16, generator=g),
            labels.repeat(2))


# --------------------------------------------------------------------------------------------------
# The reproductions, one test each (what each does now is in the test's name)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 0.0])
def test_nan_or_negative_rates_are_refused_by_train_config(bad: float) -> None:
    refused(lambda: mk.TrainConfig(inner_lr=bad), "inner_lr", "finite number above 0")
    refused(lambda: mk.TrainConfig(outer_lr=bad), "outer_lr")


def test_placement_report_refuses_nan_queries_and_a_nan_support_pixel() -> None:
    model = _tiny_model()
    sx, sy, qx, qy = _episode()
    refused(lambda: mk.placement_report(model, [(sx, sy, torch.full_like(qx, math.nan), qy)], inner_steps=1,
                                        inner_lr=0.1, progress=False), "episode 0", "query_x", "NaN")
    sx = sx.clone()
    sx[0, 0, 0, 0] = math.nan
    refused(lambda: mk.placement_report(model, [_episode(), (sx, sy, qx, qy)], inner_steps=1, inner_lr=0.1,
                                        progress=False), "episode 1", "support_x", "NaN")


def test_placement_report_refuses_a_nan_rate() -> None:
    refused(lambda: mk.placement_report(_tiny_model(), [_episode()], inner_steps=1, inner_lr=float("nan"),
                                        progress=False), "inner_lr")


def test_train_mode_without_with_switches_at_once() -> None:
    model = _tiny_model()
    model.eval()
    mk.train_mode(model)  # the documented choice: it switches at once, like model.train()
    assert all(m.training for m in model.modules())
    mk.eval_mode(model, norm_only=True)
    assert not model.features[1].training and model.features[0].training
    with mk.eval_mode(model):
        assert not model.training
    assert model.training and not model.features[1].training  # restored to the flags before the block


def test_model_config_validates_its_fields() -> None:
    refused(lambda: mk.ModelConfig(hidden=0), "hidden")
    refused(lambda: mk.ModelConfig(n_out=0), "n_out")
    refused(lambda: mk.ModelConfig(dropout=1.0), "dropout")
    refused(lambda: mk.ModelConfig(norm="batch"), "norm")
    refused(lambda: mk.build_model({"hidden": 4}), "ModelConfig")


def test_task_sampler_refuses_bools_fractions_and_negative_seeds(split: ClassSplit) -> None:
    refused(lambda: mk.TaskSampler(split, k_shot=True), "k_shot", "whole number")
    refused(lambda: mk.TaskSampler(split, seed=1.7), "seed", "at least 0")
    refused(lambda: mk.TaskSampler(split, seed=-1), "seed", "at least 0")


def test_task_sampler_refuses_a_dataset_for_a_split(split: ClassSplit) -> None:
    data = mk.data.base.FewShotDataset("tiny", {"train": split})
    refused(lambda: mk.TaskSampler(data), "split", "data['train']")


def test_k_shot_too_large_gives_advice_that_can_be_followed(split: ClassSplit) -> None:
    text = refused(lambda: mk.TaskSampler(split, n_way=2, k_shot=100, n_query=1), "k_shot", "at most 3")
    assert "-" not in text.split("at most")[1].split()[0]  # never "at most -96"


def test_unwritable_cache_warns_once_and_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    trained = mk.adapt.MetaTrained(_tiny_model(), {}, mk.adapt.History(), {"x": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store(trained, blocker / "cache" / "a.pt") is False
        assert store(trained, blocker / "cache" / "b.pt") is False
    assert len(caught) == 1 and "MAMLKIT_CACHE" in str(caught[0].message)


def test_environment_variables_are_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from mamlkit.cli import _check_environment

    for variable, value in (("MAMLKIT_THREADS", "abc"), ("MAMLKIT_THREADS", "0"), ("MAMLKIT_LANES", "-1"),
                            ("MAMLKIT_DEVICE", "gpu"), ("MAMLKIT_DEVICE", "cuda:7")):
        with monkeypatch.context() as m:
            m.setenv(variable, value)
            refused(_check_environment, variable)
    monkeypatch.setenv("MAMLKIT_DEVICE", "gpu")
    refused(machine.default_device, "MAMLKIT_DEVICE")


def test_placement_report_checks_every_episode_not_only_the_first() -> None:
    sx, sy, qx, qy = _episode()
    other = (torch.rand(3, 1, 10, 10), sy, torch.rand(6, 1, 10, 10), qy)
    refused(lambda: mk.placement_report(_tiny_model(), [_episode(), other], inner_steps=1, inner_lr=0.1,
                                        progress=False), "episode 1", "shape")


def test_models_that_cannot_adapt_are_refused_in_one_line() -> None:
    meta = mk.build_model(mk.ModelConfig(hidden=4, n_out=3), device="meta")
    refused(lambda: mk.placement_report(meta, [_episode()], inner_steps=1, inner_lr=0.1, progress=False), "meta")
    bare = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(256, affine=False))
    refused(lambda: mk.placement_report(bare, [_episode()], inner_steps=1, inner_lr=0.1, progress=False),
            "no parameters")


def test_a_head_narrower_than_n_way_is_refused(split: ClassSplit) -> None:
    model = _tiny_model(n_out=2)
    sampler = mk.TaskSampler(split, n_way=3, k_shot=1, n_query=1)
    refused(lambda: mk.meta_train(model, sampler, mk.TrainConfig(iterations=1, meta_batch=1, inner_steps=1),
                                  progress=False), "head", "2 outputs", "3 classes")
    refused(lambda: mk.meta_test(model, sampler, n_tasks=1, inner_steps=1, progress=False), "head")


def test_python_api_mistakes_are_refused_in_one_line(split: ClassSplit) -> None:
    model = _tiny_model()
    sampler = mk.TaskSampler(split, n_way=3, k_shot=1, n_query=1)
    refused(lambda: mk.meta_train(model, sampler, {"iterations": 1}, progress=False), "TrainConfig")
    refused(lambda: mk.meta_test(model, sampler, n_tasks=1, inner_lr=-0.1, progress=False), "inner_lr")
    refused(lambda: mk.eval_mode("model"), "nn.Module")


def test_meta_training_that_diverges_stops_and_suggests_a_smaller_rate(split: ClassSplit) -> None:
    sampler = mk.TaskSampler(split, n_way=3, k_shot=1, n_query=1)
    config = mk.TrainConfig(iterations=3, meta_batch=1, inner_steps=1, inner_lr=1e30)
    refused(lambda: mk.meta_train(_tiny_model(), sampler, config, progress=False), "diverged", "smaller inner_lr")


def test_divergence_at_meta_test_stays_a_measured_result(split: ClassSplit) -> None:
    sampler = mk.TaskSampler(split, n_way=3, k_shot=1, n_query=1)
    result = mk.meta_test(_tiny_model(), sampler, "transductive", n_tasks=2, inner_steps=2, inner_lr=1e30,
                          progress=False)
    assert len(result.values) == 2  # measured (the adaptation's own accuracy), not refused


def test_nan_in_sampled_tasks_is_refused_at_meta_test() -> None:
    images = torch.rand(4, 3, 1, 16, 16)
    images[2, 1, 0, 0, 0] = math.nan
    sampler = mk.TaskSampler(ClassSplit("nan", images, list("abcd"), ["a"] * 4), n_way=4, k_shot=1, n_query=2)
    refused(lambda: mk.meta_test(_tiny_model(4), sampler, n_tasks=1, inner_steps=1, progress=False), "task 0",
            "NaN")


# --------------------------------------------------------------------------------------------------
# Property-based: bounded inputs at each door, accepted or refused with the package's own error in one line

numbers = st.one_of(
    st.integers(-3, 5), st.booleans(), st.none(), st.text(max_size=3),
    st.floats(allow_nan=True, allow_infinity=True, width=32).filter(lambda x: not (math.isfinite(x) and abs(x) > 10)),
)


@QUICK
@given(iterations=numbers, meta_batch=numbers, inner_steps=numbers, inner_lr=numbers, outer_lr=numbers, seed=numbers)
def test_train_config_accepts_or_refuses(iterations, meta_batch, inner_steps, inner_lr, outer_lr, seed) -> None:
    def make():
        config = mk.TrainConfig(iterations=iterations, meta_batch=meta_batch, inner_steps=inner_steps,
                                inner_lr=inner_lr, outer_lr=outer_lr, seed=seed)
        assert isinstance(config.iterations, int) and config.iterations >= 1 and not isinstance(config.seed, bool)
        assert math.isfinite(config.inner_lr) and config.inner_lr > 0 and config.outer_lr > 0
    accepted_or_refused(make)


@QUICK
@given(n_out=numbers, hidden=numbers, dropout=numbers, bn_momentum=numbers, norm_steps=numbers)
def test_model_config_accepts_or_refuses(n_out, hidden, dropout, bn_momentum, norm_steps) -> None:
    def make():
        config = mk.ModelConfig(n_out=n_out, hidden=hidden, dropout=dropout, bn_momentum=bn_momentum,
                                norm_steps=norm_steps)
        if config.hidden <= 4 and config.n_out <= 5:  # small enough to build and run here
            mk.build_model(config, device="cpu")(torch.rand(2, 1, 16, 16))
    accepted_or_refused(make)


@QUICK
@given(n_way=numbers, k_shot=numbers, n_query=numbers, seed=numbers, rotations=st.one_of(st.booleans(), numbers))
def test_task_sampler_accepts_or_refuses(split: ClassSplit, n_way, k_shot, n_query, seed, rotations) -> None:
    accepted_or_refused(lambda: mk.TaskSampler(split, n_way, k_shot, n_query, seed, rotations).task(3))


def _tensor(shape, kind: str) -> torch.Tensor:
    if kind == "nan":
        return torch.full(shape, math.nan)
    if kind == "int":
        return torch.zeros(shape, dtype=torch.long)
    return torch.rand(shape)


shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
labels = st.lists(st.integers(-2, 4), min_size=0, max_size=6)


@QUICK
@given(sx_shape=shapes, qx_shape=shapes, sy=labels, qy=labels, sx_kind=st.sampled_from(["float", "nan", "int"]),
       float_labels=st.booleans())
def test_episodes_are_accepted_or_refused(sx_shape, qx_shape, sy, qy, sx_kind, float_labels) -> None:
    dtype = torch.float32 if float_labels else torch.long
    episode = (_tensor(sx_shape, sx_kind), torch.tensor(sy, dtype=dtype), _tensor(qx_shape, "float"),
               torch.tensor(qy, dtype=dtype))
    accepted_or_refused(lambda: diagnosis.as_tasks([episode]))
    accepted_or_refused(lambda: checks.task(mk.Task(*episode), "task 0", 3))


@settings(max_examples=25, deadline=None)
@given(n_tasks=numbers, inner_steps=numbers, inner_lr=numbers, start=numbers)
def test_meta_test_accepts_or_refuses(split: ClassSplit, n_tasks, inner_steps, inner_lr, start) -> None:
    sampler = mk.TaskSampler(split, n_way=3, k_shot=1, n_query=1)
    model = _tiny_model()

    def run():
        steps = inner_steps if not (isinstance(inner_steps, int) and inner_steps > 2) else 2
        tasks = n_tasks if not (isinstance(n_tasks, int) and n_tasks > 2) else 2
        mk.meta_test(model, sampler, "transductive", n_tasks=tasks, inner_steps=steps, inner_lr=inner_lr,
                     start=start, progress=False)
    accepted_or_refused(run)


#: What an environment variable can hold (any text but a NUL byte or a lone surrogate).
env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)


@QUICK
@given(value=st.one_of(env_text, st.sampled_from(["cpu", "cuda", "cuda:1", "mps", "meta", "gpu", "0",
                                                              "cpu:0", " ", "xla"])))
def test_device_variable_accepts_or_refuses(value: str) -> None:
    with pytest.MonkeyPatch.context() as m:  # put back after each example: other tests build models
        m.setenv("MAMLKIT_DEVICE", value)
        accepted_or_refused(machine.default_device)


@QUICK
@given(value=st.one_of(env_text, st.sampled_from(["1", "02", " 3 ", "²", "١", "-1", "0", "1.5", "+2"])))
def test_count_variables_accept_or_refuse(value: str) -> None:
    with pytest.MonkeyPatch.context() as m:  # put back after each example
        m.setenv("MAMLKIT_THREADS", value)
        accepted_or_refused(lambda: checks.env_whole_number("MAMLKIT_THREADS"))
        m.setenv("MAMLKIT_LANES", value)  # read by mamlkit.plumbing.lanes itself
        accepted_or_refused(lanes.default_lanes)
