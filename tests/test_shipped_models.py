"""The lesson models that ship with the collection (``data/models``): each is what mamlkit trains, bit for bit.

A shipped file is a cache file named by the key of its full configuration (data fingerprint, task shape,
model, training settings). These tests check that every name matches the configuration stored inside, that
every model ``make models`` needs for glyphs is shipped, and retrain one to check it is bit-identical.
"""

from __future__ import annotations

import json

import pytest
import torch

import mamlkit as mk
from mamlkit.adapt import meta_train
from mamlkit.cache import config_key, find_cached, load_trained, shipped_dir
from mamlkit.experiments import preset

SHIPPED = sorted(shipped_dir().glob("maml-*.pt"))

#: What ``make models`` trains on glyphs (the Makefile's models-glyphs target): (norm, training changes, meta-training
#: placement); the last three are notebook 16's inner-loop remedies.
GLYPH_MODELS = [("bn", {}, "standard"), ("bn", {}, "query_eval"), ("metabn", {}, "standard"),
                ("tasknorm_i", {}, "standard"), ("bn_per_step", {}, "standard"),
                ("bn", {"inner_rates": "learned"}, "standard"), ("bn", {"adapt": "head"}, "standard")]


@pytest.fixture
def shipped_on(monkeypatch):
    monkeypatch.setenv("MAMLKIT_SHIPPED", "1")          # conftest turns the shipped models off for other tests


def test_models_are_shipped_and_small():
    assert len(SHIPPED) >= len(GLYPH_MODELS)
    size = sum(p.stat().st_size for p in SHIPPED)
    assert size < 4_000_000
    readme = (shipped_dir().parents[1] / "README.md").read_text()
    assert f"(`data/models`, {len(SHIPPED)} files, {size / 1e6:.1f} MB)" in readme, "the README's count is stale"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_file_is_named_by_the_fingerprint_of_its_configuration(path):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = json.loads(payload["config"])
    assert path.name == f"maml-{config_key(config)}.pt"


@pytest.mark.parametrize("norm, train, placement", GLYPH_MODELS)
def test_every_glyph_lesson_model_is_shipped(shipped_on, norm, train, placement):
    exp = preset("lesson").with_changes(model={"norm": norm}, train=train)
    config = exp.training_config(exp.load_data(), placement)
    found = find_cached(config)
    assert found is not None and found.parent == shipped_dir(), (norm, train, placement)
    trained = load_trained(found, mk.build_model(exp.model_config(), seed=exp.train.seed), config)
    assert trained.history.accuracy                                  # what meta-training recorded came along


def test_a_shipped_model_is_what_mamlkit_trains_bit_for_bit(shipped_on):
    """Retrain the lesson BatchNorm model here (one torch thread, as `make models` trains) and compare."""
    exp = preset("lesson")
    data = exp.load_data()
    config = exp.training_config(data, "standard")
    shipped = load_trained(find_cached(config), mk.build_model(exp.model_config(), seed=exp.train.seed), config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fresh = meta_train(mk.build_model(exp.model_config(), seed=exp.train.seed), exp.train_sampler(data),
                           exp.train, progress=False)
    finally:
        torch.set_num_threads(threads)
    ours, theirs = fresh.model.state_dict(), shipped.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert all(torch.equal(fresh.collected_stats[k], shipped.collected_stats[k]) for k in shipped.collected_stats)
    assert fresh.history.loss == shipped.history.loss
