"""Mode toggles restore exactly; BN-only toggles leave Dropout alone; statistics snapshots; report."""

import pytest
import torch
from torch import nn

import mamlkit as mk


def model_with_dropout():
    return mk.build_model(mk.ModelConfig(dropout=0.5), seed=0, device="cpu")


def mixed_modes(model):
    model.train()
    model.features[1].eval()  # one BatchNorm layer in eval mode
    model.dropout.eval()
    return mk.get_modes(model)


@pytest.mark.parametrize("norm_only", [False, True])
@pytest.mark.parametrize("toggle", [mk.train_mode, mk.eval_mode])
def test_toggles_restore_every_flag_exactly(toggle, norm_only):
    model = model_with_dropout()
    before = mixed_modes(model)
    with toggle(model, norm_only=norm_only):
        assert mk.get_modes(model) != before
    assert mk.get_modes(model) == before


def test_toggles_restore_after_an_exception():
    model = model_with_dropout()
    before = mixed_modes(model)
    with pytest.raises(RuntimeError), mk.eval_mode(model):
        raise RuntimeError("boom")
    assert mk.get_modes(model) == before


def test_bn_only_toggles_leave_dropout_alone():
    model = model_with_dropout()
    model.train()
    with mk.eval_mode(model, norm_only=True):
        assert model.dropout.training is True
        assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    model.eval()
    with mk.train_mode(model, norm_only=True):
        assert model.dropout.training is False
        assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_eval_mode_does_not_stop_gradients():
    model = model_with_dropout()
    with mk.eval_mode(model):
        loss = model(torch.rand(4, 1, 28, 28)).sum()
        loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_snapshot_restore_and_preserve():
    model = model_with_dropout()
    snap = mk.snapshot_bn_stats(model)
    with mk.preserved_bn_stats(model):
        model.train()
        model(torch.rand(4, 1, 28, 28))  # train-mode forward moves running statistics
        assert not mk.bn_stats_untouched(model)
    after = mk.snapshot_bn_stats(model)
    assert snap.keys() == after.keys() and all(torch.equal(snap[k], after[k]) for k in snap)
    assert mk.bn_stats_untouched(model)


def test_restore_refuses_a_snapshot_of_another_model():
    model = model_with_dropout()
    with pytest.raises(KeyError, match="another model"):
        mk.restore_bn_stats(model, {"nothere.running_mean": torch.zeros(3)})


def test_norm_report_lists_every_bn_layer_with_its_mode():
    model = model_with_dropout()
    model.eval()
    model.train()
    model(torch.rand(4, 1, 28, 28))
    model.features[5].eval()
    report = mk.norm_report(model)
    assert [r[0] for r in report.rows] == ["features.1", "features.5", "features.9", "features.13"]
    assert [r[2] for r in report.rows] == ["train", "eval", "train", "train"]
    assert all(r[5] == 1 for r in report.rows)  # one batch tracked
    text, html = str(report), report._repr_html_()
    assert "features.13" in text and "<table>" in html


def test_norm_report_on_a_patched_model():
    import higher

    model = model_with_dropout()
    with higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=0.1)) as (fmodel, _):
        fmodel.eval()
        report = mk.norm_report(fmodel)
    assert len(report.rows) == 4 and all(r[2] == "eval" for r in report.rows)
    assert all(r[1] == "BatchNorm2d" for r in report.rows)
