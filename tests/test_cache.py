"""The meta-trained-model cache: keyed by full configuration, atomic, weights_only, never mismatched."""

import json
import os

import pytest
import torch
from conftest import make_split

import mamlkit as mk
from mamlkit.data.base import FewShotDataset
from mamlkit.errors import CacheError
from mamlkit.experiments.cache import cached_path, config_key, load_trained, save_trained
from mamlkit.plumbing.machine import signature


@pytest.fixture
def data():
    return FewShotDataset("tiny", {"train": make_split(n_examples=10), "test": make_split(seed=5, name="test")})


def tiny_experiment(**changes):
    return mk.experiments.Experiment(n_query=3, train=mk.TrainConfig(iterations=3, meta_batch=2), test_tasks=4,
                         test_inner_steps=2).with_changes(**changes)


def test_config_key_depends_on_every_setting(data):
    exp = tiny_experiment()
    base = exp.training_config(data, "standard")
    keys = {
        config_key(base),
        config_key(exp.training_config(data, "query_eval")),
        config_key(tiny_experiment(train={"iterations": 4}).training_config(data, "standard")),
        config_key(tiny_experiment(model={"norm": "bn_batch"}).training_config(data, "standard")),
        config_key(tiny_experiment(k_shot=2).training_config(data, "standard")),
        config_key(exp.training_config(FewShotDataset("tiny", {"train": make_split(seed=1)}), "standard")),
    }
    assert len(keys) == 6
    assert config_key(base) == config_key(exp.training_config(data, "standard"))


def test_second_request_loads_instead_of_training(data, tmp_path):
    exp = tiny_experiment()
    first = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    files = list(tmp_path.glob("maml-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    mtime = files[0].stat().st_mtime_ns
    second = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime  # not rewritten: loaded
    assert second.history.loss == first.history.loss
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    for k, v in first.collected_stats.items():
        assert torch.equal(v.cpu(), second.collected_stats[k].cpu())


def test_a_file_is_never_served_for_another_configuration(data, tmp_path):
    exp = tiny_experiment()
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    other = tiny_experiment(train={"inner_lr": 0.3}).training_config(data, "standard")
    # even when a file sits at the other configuration's path, its stored config is checked
    os.replace(cached_path(trained.config, tmp_path), cached_path(other, tmp_path))
    model = mk.build_model(exp.model_config(), device="cpu")
    with pytest.raises(CacheError, match="another configuration") as info:
        load_trained(cached_path(other, tmp_path), model, other)
    assert "inner_lr: saved 0.4, wanted 0.3" in str(info.value)  # the differing setting is named
    extra = {**other, "note": "x"}
    with pytest.raises(CacheError, match=r"note: saved \(not set\), wanted 'x'"):
        load_trained(cached_path(other, tmp_path), model, extra)


def test_checkpoint_of_another_architecture_is_refused(data, tmp_path):
    exp = tiny_experiment()
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    wider = mk.build_model(mk.ModelConfig(hidden=16), device="cpu")
    with pytest.raises(CacheError, match="another architecture") as info:
        load_trained(cached_path(trained.config, tmp_path), wider, trained.config)
    assert "size mismatch" in str(info.value) and "'hidden': 32" in str(info.value)


def test_corrupt_cache_file_is_reported_then_retrained(data, tmp_path, capsys):
    exp = tiny_experiment()
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    path = cached_path(trained.config, tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(CacheError, match="delete it to retrain"):
        load_trained(path, mk.build_model(exp.model_config(), device="cpu"), trained.config)
    again = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    assert "ignoring unusable cache file" in capsys.readouterr().out
    assert again.history.loss == trained.history.loss


def test_failed_save_leaves_nothing_behind(data, tmp_path, monkeypatch):
    exp = tiny_experiment()
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache=False)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_trained(trained, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_cache_file_loads_with_weights_only(data, tmp_path):
    exp = tiny_experiment()
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path)
    payload = torch.load(cached_path(trained.config, tmp_path), weights_only=True)
    assert set(payload) == {"format", "config", "state_dict", "collected_stats", "history", "machine"}
    assert json.loads(payload["machine"]) == signature()               # the machine that meta-trained it
    assert load_trained(cached_path(trained.config, tmp_path), mk.build_model(exp.model_config()),
                        trained.config).machine == signature()


def test_your_own_training_loop_is_cached_by_its_configuration(tmp_path):
    from torch import nn

    from mamlkit.experiments.cache import cached_training

    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.train()
            model(torch.randn(8, 3) * 3 + 1)                     # moves the running statistics
            model[0].weight.add_(1.0)

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))

    config = {"loop": "mine", "iterations": 1}
    first = cached_training(build(), config, train, cache_dir=tmp_path)
    second = cached_training(build(), config, train, cache_dir=tmp_path)
    assert len(calls) == 1 and second.history.seconds == first.history.seconds
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    assert not mk.bn_stats_untouched(second.model)                   # the statistics are stored as they were
    cached_training(build(), {**config, "iterations": 2}, train, cache_dir=tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.pt"))) == 2
