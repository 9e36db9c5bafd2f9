"""The widgets, driven from code as a student would drive them with the mouse (no browser, no kernel).

Each test sets control values, clicks buttons with ``button.click()`` and asserts on what the widget
shows: its runs, its chart, its verdict and status lines, its error messages, and that the model it
looks at is left exactly as it was. Models are tiny (5 meta-iterations) and runs use a few tasks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import mamlkit as mk
from mamlkit.lessons import explorers, widget_parts, widgets
from mamlkit.placements import MODES, PRESENTATIONS, STATS

TINY = {"iterations": 5}


@pytest.fixture(scope="module")
def tiny():
    """A glyphs experiment and a model meta-trained for 5 iterations (not cached: built in-process)."""
    torch.set_num_threads(1)
    exp = mk.preset("quick", train=TINY)
    data = exp.load_data()
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache=False)
    return exp, data, trained


def model_state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, mk.get_modes(model)


def assert_unchanged(model, state):
    tensors, modes = state
    assert all(torch.equal(tensors[k], v) for k, v in model.state_dict().items()), "the model was changed"
    assert mk.get_modes(model) == modes, "the model's modes were changed"


# ------------------------------------------------------------------------------------------ playground


def test_playground_clicks_add_runs_bars_and_a_verdict(tiny):
    exp, _, trained = tiny
    before = model_state(trained.model)
    pg = widgets.PlacementPlayground(exp, trained=trained, n_tasks=4)
    assert pg.results == [] and pg.bar_count == 0

    pg.run_button.click()
    assert len(pg.results) == 1 and pg.bar_count == 1 and pg.error is None
    first = pg.results[0]
    assert first.placement.name == "transductive" and first.result.n == 4
    assert "Run #1" in pg.verdict.value and "train/train" in pg.verdict.value and "%" in pg.verdict.value
    assert "ms per task" in pg.status.value

    pg.adapt_mode.value = "eval"
    pg.query_mode.value = "eval"
    pg.stats.value = "collected"
    pg.run_button.click()
    assert len(pg.results) == 2 and pg.bar_count == 2
    second = pg.results[1]
    assert second.placement.name == "eval_collected"
    assert "eval/eval, collected stats" in second.verdict and "go stale" in second.verdict
    assert "run #1" in second.verdict, "a run on the same tasks is compared with the best earlier one"
    assert second.result.task_indices == first.result.task_indices
    assert_unchanged(trained.model, before)

    pg.clear_button.click()
    assert pg.results == [] and pg.bar_count == 0 and pg.verdict.value == ""


def test_playground_results_equal_the_package_meta_test(tiny):
    exp, data, trained = tiny
    pg = widgets.PlacementPlayground(exp, trained=trained)
    run = pg.run(adapt_mode="train", query_mode="eval", stats="collected", n_tasks=3)
    direct = mk.meta_test(trained.model, exp.test_sampler(data), "train_then_eval_collected", n_tasks=3,
                          inner_steps=exp.test_inner_steps, collected_stats=trained.collected_stats, progress=False)
    np.testing.assert_array_equal(run.result.values, direct.values)
    assert pg.progress.value == pg.progress.max == 3


def test_playground_runs_every_combination_of_its_controls(tiny):
    """Every mode, statistics source and presentation (PRESENTATIONS may grow) runs without an error."""
    exp, _, trained = tiny
    pg = widgets.PlacementPlayground(exp, trained=trained, n_tasks=1)
    assert [value for _, value in pg.presentation.options] == list(PRESENTATIONS)
    combos = [(a, q, s, p) for a in MODES for q in MODES for s in STATS for p in PRESENTATIONS]
    for a, q, s, p in combos:
        run = pg.run(adapt_mode=a, query_mode=q, stats=s, presentation=p)
        assert run is not None, f"{a}/{q}/{s}/{p}: {pg.error}"
        assert run.placement.label in run.verdict
    assert len(pg.results) == pg.bar_count == len(combos)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"n_tasks": 0}, "between 1 and 50"),
        ({"n_tasks": 51}, "between 1 and 50"),
        ({"n_tasks": "ten"}, "whole number"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
        ({"query_mode": "sideways"}, "unknown query mode"),
        ({"presentation": "shuffled"}, "unknown query presentation"),
        ({"dataset": "omniglot", "omniglot_dir": ""}, "omniglot needs its data folder"),
        ({"dataset": "omniglot", "omniglot_dir": "/no/such/folder"}, "Omniglot folder not found"),
    ],
)
def test_playground_invalid_values_give_a_message_not_a_traceback(tiny, values, words):
    exp, _, trained = tiny
    pg = widgets.PlacementPlayground(exp, trained=trained, n_tasks=2, max_tasks=50)
    assert pg.run() is not None
    assert pg.run(**values) is None
    assert words in pg.error and words in pg.status.value.replace("&#x27;", "'")
    assert len(pg.results) == 1 and pg.bar_count == 1, "a refused run changes nothing"
    assert pg.run(dataset="glyphs", n_tasks=2, query_mode="train", presentation="batch") is not None


def test_playground_typed_out_of_range_count_is_refused_on_click(tiny):
    exp, _, trained = tiny
    pg = widgets.PlacementPlayground(exp, trained=trained, max_tasks=20)
    pg.n_tasks.value = -3
    pg.run_button.click()
    assert pg.results == [] and "between 1 and 20" in pg.error
    assert not pg.run_button.disabled


def test_playground_trains_and_caches_the_model_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLKIT_CACHE", str(tmp_path / "cache"))
    exp = mk.preset("quick", train={"iterations": 2})
    pg = widgets.PlacementPlayground(exp, n_tasks=2, progress=False)
    assert pg.run() is not None
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


def test_playground_on_real_omniglot(omniglot_dir):
    exp = mk.preset("quick", train={"iterations": 2})
    pg = widgets.PlacementPlayground(exp, omniglot_dir=omniglot_dir, n_tasks=2, progress=False)
    run = pg.run(dataset="omniglot")
    assert run is not None, pg.error
    assert run.dataset == "omniglot" and "omniglot" in run.label


def test_verdict_reads_the_result():
    chance = 0.2
    good = mk.EvalResult("a", np.array([0.8, 0.9, 0.7, 0.85]), task_indices=(0, 1, 2, 3))
    bad = mk.EvalResult("b", np.array([0.2, 0.25, 0.15, 0.2]), task_indices=(0, 1, 2, 3))
    transductive, eval_untouched = mk.PLACEMENTS["transductive"], mk.PLACEMENTS["eval_untouched"]
    text = widgets.placement_verdict(transductive, good, chance)
    assert "well above chance" in text and "transductive" in text
    text = widgets.placement_verdict(eval_untouched, bad, chance)
    assert "near chance (20%)" in text and "0 and 1" in text
    text = widgets.placement_verdict(mk.PLACEMENTS["eval_collected"], bad, chance)
    assert "go stale" in text and "notebook 03" in text, "the verdict gives the measured mechanism"
    earlier = (f"run #1 ({transductive.label})", good)
    text = widgets.placement_verdict(eval_untouched, bad, chance, [earlier])
    assert "points below run #1" in text and "on the same 4 tasks" in text
    fewer = mk.EvalResult("c", np.array([0.2, 0.2, 0.25]), task_indices=(0, 1, 2))
    text = widgets.placement_verdict(eval_untouched, fewer, chance, [earlier])
    assert "run #1" in text and "on the same 3 tasks" in text, "runs of other sizes are paired on shared tasks"
    elsewhere = mk.EvalResult("d", np.array([0.2, 0.3]), task_indices=(7, 8))
    assert "run #1" not in widgets.placement_verdict(eval_untouched, elsewhere, chance, [earlier])
    one = mk.placements.custom_placement("train", "train", "untouched", "one_at_a_time")
    assert "one at a time" in widgets.placement_verdict(one, bad, chance)
    collected = mk.placements.custom_placement("train", "train", "collected")
    assert "changes nothing" in widgets.placement_verdict(collected, good, chance)


# ---------------------------------------------------------------------------------------------- BatchNorm


def test_bn_explorer_shows_tasks_against_running_statistics(tiny):
    exp, data, trained = tiny
    before = model_state(trained.model)
    explorer = explorers.BatchNormExplorer(trained, exp.test_sampler(data), n_tasks=3)
    res = explorer.update(layer="features.5")
    assert res["layer"] == "features.5" and len(res["tasks"]) == 3
    assert set(res["factor"]) == {"collected", "untouched"}
    assert all(f >= 1.0 for f in res["factor"].values())
    lines = explorer.figure.axes[0].get_lines()
    assert len(lines) == 3 + 2, "one line per task and one per running-statistics source"
    assert "features.5" in explorer.summary_text and "factor" in explorer.summary_text

    explorer.n_tasks.value = 5                    # moving the slider redraws
    assert len(explorer.results["tasks"]) == 5
    explorer.layer.value = "features.13"
    assert explorer.results["layer"] == "features.13"
    explorer.source.value = "query"
    assert explorer.results["source"] == "query"
    assert_unchanged(trained.model, before)


def test_bn_explorer_invalid_values_give_a_message(tiny):
    exp, data, trained = tiny
    explorer = explorers.BatchNormExplorer(trained, exp.test_sampler(data), max_tasks=6)
    assert explorer.update() is not None
    assert explorer.update(n_tasks=0) is None and "between 1 and 6" in explorer.error
    assert explorer.update(n_tasks=7) is None and "between 1 and 6" in explorer.error
    assert explorer.update(layer="features.2") is None and "unknown BatchNorm layer" in explorer.error
    assert "features.1" in explorer.error, "the message lists the layers to choose from"
    assert explorer.update(source="both") is None and "unknown batch source" in explorer.error
    assert explorer.update(n_tasks=2) is not None and explorer.error is None


def test_bn_explorer_on_a_model_without_batchnorm(tiny):
    exp, data, _ = tiny
    model = mk.build_model(mk.ModelConfig(norm="instance"), device="cpu")
    trained = mk.MetaTrained(model, {}, mk.adapt.History(), {})
    explorer = explorers.BatchNormExplorer(trained, exp.test_sampler(data))
    assert explorer.update() is None and "no BatchNorm layer" in explorer.error


# ---------------------------------------------------------------------------------- confidence intervals


def test_ci_explorer_interval_and_resampled_means():
    values = np.random.default_rng(1).binomial(25, 0.7, size=120) / 25
    explorer = explorers.ConfidenceExplorer(mk.EvalResult("t", values), n_tasks=120)
    res = explorer.update()
    assert res["half_width"] == pytest.approx(mk.confidence_interval(values)[1])
    assert 0.9 < res["coverage"] < 0.99
    assert res["means"].shape == (explorer.resamples.value,)
    quarter = explorer.update(n_tasks=30)["half_width"]
    assert quarter == pytest.approx(2 * res["half_width"]), "a quarter of the tasks doubles the interval"
    explorer.n_tasks.value = 480                    # moving the slider redraws
    assert explorer.results["n"] == 480 and explorer.results["half_width"] == pytest.approx(res["half_width"] / 2)
    assert "N = 480" in explorer.summary_text and "points" in explorer.summary_text
    assert len(explorer.figure.axes) == 2


def test_ci_explorer_is_reproducible_and_accepts_plain_arrays():
    a = explorers.ConfidenceExplorer([0.1, 0.5, 0.9, 0.4], n_tasks=10, seed=3).update()
    b = explorers.ConfidenceExplorer(np.array([0.1, 0.5, 0.9, 0.4]), n_tasks=10, seed=3).update()
    np.testing.assert_array_equal(a["means"], b["means"])
    mse = explorers.ConfidenceExplorer([1.5, 2.5, 0.7], n_tasks=5)     # not accuracies: shown as they are
    assert mse.update() is not None and mse.scale == 1.0


@pytest.mark.parametrize(
    "values, settings, words",
    [
        ([0.5, 0.7, 0.6], {"n_tasks": 0}, "between 1 and 600"),
        ([0.5, 0.7, 0.6], {"n_tasks": 601}, "between 1 and 600"),
        ([0.5, 0.7, 0.6], {"resamples": 10}, "between 100 and 5000"),
        ([], {}, "at least 2 tasks"),
        ([0.5], {}, "at least 2 tasks"),
        ([0.5, float("nan")], {}, "NaN"),
    ],
)
def test_ci_explorer_invalid_values_give_a_message(values, settings, words):
    explorer = explorers.ConfidenceExplorer(values)
    assert explorer.update(**settings) is None
    assert words in explorer.error and words in explorer.status.value


# ------------------------------------------------------------------ the lab as a student meets it (issue #39)


def test_playground_fits_one_screen_and_shows_no_machine_path(tiny):
    exp, _, trained = tiny
    pg = widgets.PlacementPlayground(exp, trained=trained, n_tasks=3)
    assert pg.omniglot_dir.layout.display == "none"                                   # glyphs: no folder box
    pg.dataset.value = "omniglot"
    assert pg.omniglot_dir.layout.display == ""
    assert not pg.omniglot_dir.value.startswith("/") and str(Path.home()) not in pg.omniglot_dir.value
    assert widget_parts.relative_folder(Path.cwd().parent / "x") == str(Path("..") / "x")
    assert widget_parts.relative_folder("") == ""
    pg.dataset.value = "glyphs"
    assert pg.omniglot_dir.layout.display == "none"
    for presentation in PRESENTATIONS:
        run = pg.run(adapt_mode="eval", query_mode="train", stats="collected", presentation=presentation)
        lines = run.short_label.split("\n")
        assert len(lines) <= 3 and all(len(line) <= 20 for line in lines), run.short_label
        assert lines[0] == f"#{run.number} eval/train" and "3 tasks" in lines[-1]
        assert "tasks" not in run.chart_label(with_tasks=False) and len(run.chart_label(False).split("\n")) <= 2
    assert "omniglot" in widgets.PlaygroundRun(9, run.placement, "omniglot", run.result, 1.0).short_label
    labels = [t.get_text() for t in pg.figure.axes[0].get_xticklabels()]
    assert labels == [r.chart_label(with_tasks=False) for r in pg.results]   # all on 3 tasks: said once, not per bar
    assert "3 tasks each" in pg.figure.axes[0].get_title()
    pg.run(n_tasks=2)
    labels = [t.get_text() for t in pg.figure.axes[0].get_xticklabels()]
    assert labels == [r.short_label for r in pg.results]                     # different counts: each bar says its own
    assert "each" not in pg.figure.axes[0].get_title()
    assert pg.figure.get_figheight() <= 2.6 and pg.bar_count == len(PRESENTATIONS) + 1


def test_a_runs_summary_wraps_at_words(tiny):
    exp, _, trained = tiny
    run = widgets.PlacementPlayground(exp, trained=trained, n_tasks=3).run(adapt_mode="eval", query_mode="eval")
    text = run.summary(width=60)
    assert len(text.split("\n")) >= 3 and all(len(line) <= 60 for line in text.split("\n"))
    timing = f"[{run.seconds:.1f} s, {1000 * run.seconds_per_task:.0f} ms per task]"
    assert text.replace("\n", " ") == f"{run.verdict} {timing}"


def test_bn_explorer_measure_ignores_where_the_controls_were_moved(tiny):
    exp, data, trained = tiny
    sampler = exp.test_sampler(data)
    fresh = explorers.BatchNormExplorer(trained, sampler, n_tasks=3).update(layer="features.1", source="support")
    moved = explorers.BatchNormExplorer(trained, sampler, n_tasks=3)
    moved.update(layer="features.5", n_tasks=1, source="query")                      # a student's clicks
    measured = moved.measure("features.1", 3, "support")
    assert measured["factor"] == fresh["factor"] and len(measured["tasks"]) == 3
    assert (moved.layer.value, moved.n_tasks.value, moved.source.value) == ("features.5", 1, "query")
    with pytest.raises(ValueError):
        moved.measure("features.1", 99)


def test_bn_explorer_axes_are_readable(tiny):
    exp, data, trained = tiny
    explorer = explorers.BatchNormExplorer(trained, exp.test_sampler(data), n_tasks=2)
    explorer.figure.canvas.draw()
    for ax in explorer.figure.axes:
        assert all(t.get_text().isdigit() for t in ax.get_xticklabels()), "channels are whole numbers"
    variance = [t.get_text() for t in explorer.figure.axes[1].get_yticklabels() if t.get_text()]
    assert variance and all(re.fullmatch(r"[0-9.]+", v) for v in variance), variance     # 0.5, 1, 2: no 6x10^-1


def test_ci_explorer_says_where_its_n_tasks_come_from():
    values = np.random.default_rng(0).uniform(0.4, 1.0, size=30)
    ci = explorers.ConfidenceExplorer(values, n_tasks=20)
    assert "drawn with replacement from the 30 tasks measured" in ci.summary_text
    assert "more than" not in ci.summary_text
    ci.update(n_tasks=200)
    assert "more than the 30 tasks measured" in ci.summary_text and "measure 200 tasks" in ci.summary_text
    ci.update(resamples=100)                                                          # a student's clicks
    fresh = explorers.ConfidenceExplorer(values, n_tasks=50).results
    measured = ci.measure(50)
    assert measured["half_width"] == fresh["half_width"] and measured["coverage"] == fresh["coverage"]
    assert (ci.n_tasks.value, ci.resamples.value) == (200, 100)
