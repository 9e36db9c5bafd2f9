"""Sinusoid regression tasks (Finn et al. 2017) and MAML on them."""

import math

import pytest
import torch

import mamlkit as mk


def test_tasks_follow_the_paper_ranges_and_are_reproducible():
    s = mk.SinusoidSampler(k_shot=10, n_query=7, seed=3)
    for i in range(50):
        amp, phase = s.parameters(i)
        assert 0.1 <= amp <= 5.0 and 0.0 <= phase <= math.pi
        task = s.task(i)
        assert task.support_x.shape == (10, 1) and task.query_x.shape == (7, 1)
        assert task.support_x.abs().max() <= 5.0
        assert torch.allclose(task.support_y, amp * torch.sin(task.support_x - phase))
    assert torch.equal(s.task(9).query_y, mk.SinusoidSampler(10, 7, seed=3).task(9).query_y)
    assert not torch.equal(s.task(9).query_y, s.task(10).query_y)


def test_bad_settings_are_refused():
    with pytest.raises(mk.DataError, match="at least 1"):
        mk.SinusoidSampler(k_shot=0)
    with pytest.raises(mk.DataError, match="low <= high"):
        mk.SinusoidSampler(amplitude=(5.0, 0.1))


def test_maml_on_sinusoids_beats_the_untrained_network():
    sampler = mk.SinusoidSampler(seed=0)
    model = mk.build_model(mk.ModelConfig(kind="mlp", n_out=1, hidden=40), seed=0, device="cpu")
    before = mk.meta_test(model, mk.SinusoidSampler(seed=1), "transductive", n_tasks=40, inner_steps=5,
                          inner_lr=0.01, progress=False)
    mk.meta_train(model, sampler, mk.TrainConfig(iterations=150, meta_batch=10, inner_steps=1, inner_lr=0.01,
                                                 outer_lr=0.01), progress=False)
    after = mk.meta_test(model, mk.SinusoidSampler(seed=1), "transductive", n_tasks=40, inner_steps=5,
                         inner_lr=0.01, progress=False)
    assert after.metric == "mse" and "MSE" in str(after)
    # Measured (2026-12-07, developers' machine) with this configuration at two other seeds of the model, the
    # training tasks and the test tasks: after / before = 0.36 and 0.29. A machine's rounding moves it far less
    # than a seed does, so the bound of 0.7 leaves a wide margin.
    assert after.mean < 0.7 * before.mean
