"""What a placement means: its parts, its words, its statistics source and how its query is presented."""

import pytest
import torch
from conftest import make_split, sampler_and_model

import mamlkit as mk
from mamlkit.placements import PLACEMENTS, PRESENTATIONS, prepare_stats


def a_task(seed=0, n_query=3):
    return mk.TaskSampler(make_split(seed=seed), n_way=5, k_shot=1, n_query=n_query, seed=seed).task(0)


def setup():
    return sampler_and_model(hidden=32)


def test_custom_placement_reuses_named_ones_and_checks_its_parts():
    assert mk.placements.custom_placement("eval", "eval", "collected").name == "eval_collected"
    odd = mk.placements.custom_placement("eval", "train", "untouched", "one_at_a_time")
    assert odd.name == "custom" and odd.label == "eval/train, untouched stats, one at a time"
    with pytest.raises(mk.ConfigError, match="one_class_at_a_time"):
        mk.placements.custom_placement(presentation="shuffled")


def test_reptile_protocol_is_each_query_with_the_support_in_train_mode():
    task = a_task()
    model = mk.build_model(mk.ModelConfig(norm="bn"), device="cpu")
    model.train()
    with torch.no_grad(), mk.preserved_bn_stats(model):
        got = mk.placements.predict_query(model, task, "one_at_a_time_with_support")
        n = task.support_x.shape[0]
        expected = torch.stack([model(torch.cat([task.support_x, x[None]]))[n] for x in task.query_x])
        batch = mk.placements.predict_query(model, task, "batch")
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, batch, atol=1e-3)


def test_predict_query_presentations_differ_only_in_train_mode():
    sampler, model = setup()
    task = sampler.task(0)
    model.eval()
    with torch.no_grad():
        outs = {p: mk.placements.predict_query(model, task, p)
                for p in ("batch", "one_at_a_time", "one_class_at_a_time")}
    assert torch.allclose(outs["batch"], outs["one_at_a_time"], atol=1e-5)
    model.train()
    with torch.no_grad(), mk.preserved_bn_stats(model):
        batch = mk.placements.predict_query(model, task, "batch")
        single = mk.placements.predict_query(model, task, "one_at_a_time")
    assert not torch.allclose(batch, single, atol=1e-3)


def test_every_placement_has_words_and_a_reason_that_names_its_lesson():
    for p in PLACEMENTS.values():
        assert p.presentation in PRESENTATIONS and p.adapt_mode in ("train", "eval")
        assert "notebook" in p.reason, p.name
    assert PLACEMENTS["one_class_at_a_time"].label == "train/train, one class at a time"
    assert PLACEMENTS["eval_collected"].label == "eval/eval, collected stats"
    assert "0 and 1" in PLACEMENTS["eval_untouched"].reason
    assert "go stale" in PLACEMENTS["eval_collected"].reason


def test_prepare_stats_loads_what_the_placement_names():
    sampler, model = setup()
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=2, meta_batch=2, inner_steps=1), progress=False)
    prepare_stats(model, "collected", trained.collected_stats)
    now = mk.snapshot_bn_stats(model)
    assert all(torch.equal(now[k], v) for k, v in trained.collected_stats.items())
    prepare_stats(model, "untouched", None)
    assert mk.bn_stats_untouched(model)
    with pytest.raises(mk.ConfigError, match="collected_stats"):
        prepare_stats(model, "collected", None)
