"""The experiments module: presets' results records, the normalisation x protocol table, tables across seeds."""

import json
import math

import numpy as np
import pytest

import mamlkit as mk
from mamlkit.cli import main
from mamlkit.experiments import NORM_METHODS, PROTOCOLS, get_norm_method, run_normalisations


def test_every_method_has_a_placement_for_every_protocol():
    for method in NORM_METHODS.values():
        for protocol in PROTOCOLS:
            p = method.placement(protocol)
            assert p.adapt_mode == p.query_mode == method.mode
            if method.with_support:
                assert p.presentation == "one_at_a_time_with_support"
            else:
                assert p.presentation == protocol
    with pytest.raises(mk.ConfigError, match="transductive_bn"):
        get_norm_method("batchnorm")
    with pytest.raises(mk.ConfigError, match="one_at_a_time"):
        NORM_METHODS["metabn"].placement("two_at_a_time")


def test_run_normalisations_table_shape_and_stability(tmp_path):
    exp = mk.preset("quick", train={"iterations": 2, "meta_batch": 2}, test_tasks=3, test_inner_steps=2)
    res = run_normalisations(exp, ["transductive_bn", "metabn", "conventional_bn"], progress=False)
    assert set(res.results) == {"transductive_bn", "metabn", "conventional_bn"}
    assert all(set(by) == set(PROTOCOLS) for by in res.results.values())
    assert res.spread("metabn") < 1e-9  # identical under every protocol, by construction
    assert res.spread("conventional_bn") < 1e-9  # eval mode: each example on its own
    assert set(res.train_seconds) == {"bn", "metabn"}
    text = str(res.table())
    assert "one class at a time" in text and "metabn" in text
    saved = json.loads(res.save_json(tmp_path / "n.json").read_text())
    assert len(saved["results"]["metabn"]["batch"]["values"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.json"]  # written whole, no partial file left


def test_norms_command_reports_bad_method_names(capsys):
    with pytest.raises(SystemExit):
        main(["norms", "--methods", "batchnorm"])
    assert "invalid choice" in capsys.readouterr().err


def test_across_seeds_averages_seed_means_with_a_t_interval():
    from mamlkit.experiments import Experiment, ResultsRecord, across_seeds
    from mamlkit.experiments.intervals import t_quantile

    def record(seed, values):
        exp = Experiment().with_changes(train={"seed": seed})
        result = mk.EvalResult("x", np.asarray(values), task_indices=(0, 1))
        return ResultsRecord(exp, {"row": {"col": result}}, {}, 0.0)

    records = [record(0, [0.6, 0.8]), record(1, [0.5, 0.5]), record(2, [0.9, 0.7])]
    table = across_seeds(records)
    means = np.array([70.0, 50.0, 80.0])
    half = t_quantile(0.95, 2) * means.std(ddof=1) / math.sqrt(3)
    assert table.rows[0] == ["row", f"{means.mean():.1f} ± {half:.1f} (70.0 / 50.0 / 80.0)"]
    with pytest.raises(mk.ConfigError):
        across_seeds(records[:1])


def test_trainings_in_two_lanes_equal_trainings_here(tmp_path):
    """Meta-trainings the cache does not hold run side by side in worker processes: same weights as here,
    and meta-testing them in lanes afterwards gives what one process gives (no memory shared with a worker)."""
    import numpy as np
    import torch

    from mamlkit.experiments import get_meta_trained_many

    torch.set_num_threads(1)
    exp = mk.preset("quick", train={"iterations": 2, "meta_batch": 2})
    data = mk.load_dataset("glyphs")
    here = get_meta_trained_many(exp, ["standard", "query_eval"], data, progress=False, cache=False)
    lanes = get_meta_trained_many(exp, ["standard", "query_eval"], data, progress=False, cache=True,
                                  cache_dir=tmp_path, lanes=2)
    assert len(list(tmp_path.glob("*.pt"))) == 2, "each lane writes its model to the cache"
    test = exp.test_sampler(data)
    for name in here:
        a, b = here[name].model.state_dict(), lanes[name].model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert here[name].history.loss == lanes[name].history.loss
        one = mk.meta_test(here[name], test, mk.PLACEMENTS, n_tasks=6, inner_steps=2, progress=False)
        two = mk.meta_test(lanes[name], test, mk.PLACEMENTS, n_tasks=6, inner_steps=2, progress=False, lanes=2)
        assert all(np.array_equal(one[p].values, two[p].values) for p in one), name
