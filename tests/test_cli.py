"""The command line, end to end: the central result on glyphs, determinism, help and clear errors."""

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import seed_spread

import mamlkit as mk

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, check=True):
    env = {**os.environ, "MAMLKIT_PROGRESS": "0", "MAMLKIT_THREADS": os.environ.get("MAMLKIT_THREADS", "2")}
    out = subprocess.run([sys.executable, "-m", "mamlkit", *args], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=900)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_help_explains_every_placement_in_one_line():
    text = run_cli("placements", "--help").stdout
    for p in list(mk.PLACEMENTS.values()) + list(mk.TRAIN_PLACEMENTS.values()):
        assert f"{p.name}" in text and p.description[:40] in text


#: The quick run's three placements; its seed-0 run is shared by the two tests that need it.
QUICK_ARGS = ["placements", "--quick", "--trainings", "standard", "--placements", "transductive", "eval_untouched",
              "one_at_a_time"]


@pytest.fixture(scope="module")
def quick_seed0(tmp_path_factory):
    """One end-to-end quick run with seed 0: its stdout and its output folder."""
    out_dir = tmp_path_factory.mktemp("quick-seed0")
    out = run_cli(*QUICK_ARGS, "--seed", "0", "--out", str(out_dir))
    return out, out_dir


@pytest.mark.slow
@pytest.mark.xdist_group("quick")  # with `pytest -n 2 --dist loadgroup`: one worker, one seed-0 run
def test_quick_run_shows_transductive_far_above_eval_mode(quick_seed0):
    """The central result, end to end: 5-way 1-shot on glyphs, quick configuration."""
    out, out_dir = quick_seed0
    assert "transductive" in out.stdout and "chance is 20.0%" in out.stdout
    data = json.loads((out_dir / "placements-glyphs.json").read_text())
    res = data["results"]["standard"]
    assert res["transductive"]["n"] == 100
    gap = res["transductive"]["mean"] - res["eval_untouched"]["mean"]
    # The margin: over the ten meta-training seeds of data/records/seeds-quick.json the gap is 50 points on
    # average with a standard deviation of 2, so 30 points lies ten standard deviations below (checked here).
    record = json.loads((ROOT / "data" / "records" / "seeds-quick.json").read_text())["placements"]["results"]
    gaps = [sum(a) / len(a) - sum(b) / len(b) for a, b in zip(record["standard"]["transductive"],
                                                              record["standard"]["eval_untouched"])]
    assert statistics.mean(gaps) - 4 * statistics.stdev(gaps) > 30
    assert gap >= 0.30, f"transductive beats eval-with-untouched-stats by only {100 * gap:.1f} points"
    assert (out_dir / "placements-glyphs.png").stat().st_size > 10_000
    assert (out_dir / "placements-glyphs.md").read_text().startswith("| meta-test placement")


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_train_command_reuses_the_cache(tmp_path):
    """After the quick run above, its model is in this session's cache: ``train`` finds it."""
    run_cli("placements", "--quick", "--trainings", "standard", "--placements", "transductive", "--tasks", "2",
            "--out", str(tmp_path))
    out = run_cli("train", "--preset", "quick", "--trainings", "standard", "--no-progress")
    assert "quick/glyphs/5-way/bn/standard: found in the cache" in out.stdout
    assert "query accuracy" in out.stdout


@pytest.mark.slow
def test_same_seed_gives_identical_tables_in_separate_processes(tmp_path):
    args = ["placements", "--iterations", "4", "--tasks", "8", "--trainings", "standard", "--no-cache",
            "--placements", "transductive", "eval_collected", "one_at_a_time"]
    tables = []
    for i in range(2):
        run_cli(*args, "--out", str(tmp_path / str(i)))
        tables.append(json.loads((tmp_path / str(i) / "placements-glyphs.json").read_text())["results"])
    assert tables[0] == tables[1]  # per-task values, bit for bit
    run_cli(*args, "--seed", "1", "--out", str(tmp_path / "other"))
    other = json.loads((tmp_path / "other" / "placements-glyphs.json").read_text())["results"]
    assert other != tables[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["placements", "--dataset", "omniglot"], ["--data-dir"]),
        (["placements", "--dataset", "omniglot", "--data-dir", "/no/such/folder"], ["does not exist"]),
        (["placements", "--tasks", "0"], ["must be at least 1"]),
        (["placements", "--placements", "eval_everything"], ["invalid choice", "transductive"]),
        (["placements", "--norm", "batchnorm"], ["invalid choice", "bn_batch"]),
    ],
)
def test_bad_input_gives_a_clear_error_not_a_traceback(args, words):
    out = run_cli(*args, check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    for w in words:
        assert w in out.stderr


def test_describe_lists_placements_and_norms():
    text = run_cli("describe").stdout
    assert "transductive" in text and "bn_batch" in text


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_a_different_seed_changes_the_numbers_by_no_more_than_seeds_do(quick_seed0, tmp_path):
    """Another meta-training seed (other initial weights, other training tasks) changes every per-task number,
    and each placement's mean by no more than seeds do: at most 4 standard deviations of the difference of two
    seeds' means, sqrt(2) times the spread across the ten seeds of data/records/seeds-quick.json (the same
    command). The tasks' 95% intervals are no margin for this: they cover the sampling of meta-test tasks for one
    trained model, not the seed. The nominal false-failure rate is that of a normal variable beyond 4 standard
    deviations, 6e-5 per placement (below 1e-2 even if ten seeds underestimate the spread by 35%)."""
    runs = [json.loads((quick_seed0[1] / "placements-glyphs.json").read_text())["results"]["standard"]]
    out = run_cli(*QUICK_ARGS, "--seeds", "0", "1", "--out", str(tmp_path))
    seed0 = json.loads((tmp_path / "placements-glyphs-seed0.json").read_text())["results"]["standard"]
    assert seed0 == runs[0], "--seeds 0 gives what --seed 0 gave"
    runs.append(json.loads((tmp_path / "placements-glyphs-seed1.json").read_text())["results"]["standard"])
    assert "meta-training seeds 0, 1" in out.stdout and "t interval" in out.stdout
    across = (tmp_path / "placements-glyphs-seeds.md").read_text()
    mean = 100 * (runs[0]["transductive"]["mean"] + runs[1]["transductive"]["mean"]) / 2
    assert f"| transductive | {mean:.1f} ± " in across
    assert set(runs[0]) == set(runs[1]) == {"transductive", "eval_untouched", "one_at_a_time"}
    for name in runs[0]:
        a, b = runs[0][name], runs[1][name]
        assert a["values"] != b["values"], name
        margin = 4 * math.sqrt(2) * seed_spread("seeds-quick", name)
        assert abs(a["mean"] - b["mean"]) <= margin, (name, a["mean"], b["mean"], margin)
