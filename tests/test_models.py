"""Models and normalisation layers: every norm works in both modes, with one example, under higher."""

import pytest
import torch
from conftest import make_split

import mamlkit as mk


@pytest.mark.parametrize("norm", list(mk.norms.NORMS))
def test_every_norm_runs_in_both_modes_even_on_a_single_example(norm):
    model = mk.build_model(mk.ModelConfig(norm=norm), device="cpu")
    for training in (True, False):
        model.train(training)
        assert model(torch.rand(1, 1, 28, 28)).shape == (1, 5)
        assert model(torch.rand(7, 1, 28, 28)).shape == (7, 5)


@pytest.mark.parametrize("norm", list(mk.norms.NORMS))
def test_meta_test_leaves_every_kind_of_model_bit_identical(norm):
    split = make_split()
    model = mk.build_model(mk.ModelConfig(norm=norm), device="cpu")
    trained = mk.meta_train(model, mk.TaskSampler(split, 5, 1, 3, seed=0), mk.TrainConfig(iterations=2, meta_batch=2),
                            progress=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mk.meta_test(trained, mk.TaskSampler(split, 5, 1, 3, seed=1), mk.PLACEMENTS, n_tasks=2, inner_steps=2,
                 progress=False)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_same_seed_same_initial_weights_and_sizes():
    a = mk.build_model(mk.ModelConfig(hidden=16), seed=3, device="cpu")
    b = mk.build_model(mk.ModelConfig(hidden=16), seed=3, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.features[0].out_channels == 16 and a.classifier.in_features == 16


def test_unknown_names_are_refused_with_the_valid_choices():
    with pytest.raises(mk.ConfigError, match="bn_batch"):
        mk.build_model(mk.ModelConfig(norm="batchnorm"), device="cpu")
    with pytest.raises(mk.ConfigError, match="conv4"):
        mk.build_model(mk.ModelConfig(kind="resnet"), device="cpu")
    with pytest.raises(mk.DataError, match="glyphs"):
        mk.load_dataset("mini-imagenet")
    with pytest.raises(mk.DataError, match="data_dir"):
        mk.load_dataset("omniglot")


def test_dropout_is_only_active_in_train_mode():
    model = mk.build_model(mk.ModelConfig(dropout=0.5, norm="none"), device="cpu")
    x = torch.rand(8, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_strided_conv4_is_finn_et_al_s_omniglot_network_and_keeps_the_default_cache_key():
    """downsample='stride': stride-2 convolutions, no pooling; the same parameter names and sizes."""
    pooled = mk.build_model(mk.ModelConfig(), seed=0, device="cpu")
    strided = mk.build_model(mk.ModelConfig(downsample="stride"), seed=0, device="cpu")
    assert [n for n, _ in pooled.named_parameters()] == [n for n, _ in strided.named_parameters()]
    assert all(torch.equal(p, q) for p, q in zip(pooled.parameters(), strided.parameters()))
    sizes, h = [], torch.rand(2, 1, 28, 28)
    for layer in strided.features:
        h = layer(h)
        if isinstance(layer, torch.nn.BatchNorm2d):
            sizes.append(h.shape[-1])
    assert sizes == [14, 7, 4, 2] and strided(torch.rand(2, 1, 28, 28)).shape == (2, 5)
    assert "downsample" not in mk.ModelConfig().as_dict()         # existing models keep their cache keys
    assert mk.ModelConfig(downsample="stride").as_dict()["downsample"] == "stride"
    with pytest.raises(mk.ConfigError, match="pool, stride"):
        mk.build_model(mk.ModelConfig(downsample="avg"), device="cpu")


def test_the_placements_command_takes_width_downsampling_and_first_order():
    from mamlkit.cli import _experiment, build_parser

    args = build_parser().parse_args(["placements", "--hidden", "64", "--downsample", "stride", "--first-order"])
    exp = _experiment(args)
    assert exp.model_config().hidden == 64 and exp.model_config().downsample == "stride"
    assert exp.train.first_order
    plain = _experiment(build_parser().parse_args(["placements"]))
    assert plain.model_config().hidden == 32 and not plain.train.first_order
