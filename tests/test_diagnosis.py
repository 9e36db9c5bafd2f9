"""The placement report on a user's own model and episodes, and ``python -m mamlkit report``."""

import re
import textwrap

import numpy as np
import pytest
import torch
from conftest import sampler_and_model
from torch import nn

import mamlkit as mk
from mamlkit.cli import main
from mamlkit.your_code.diagnosis import as_tasks, reestimated_stats
from mamlkit.your_code.entry import load_entry

STEPS, LR = 2, 0.4


def with_real_stats(model, sampler):
    """The model after a few train-mode passes: running statistics that are not 0 and 1."""
    with torch.no_grad():
        model.train()
        for i in range(3):
            model(sampler.task(100 + i).support_x)
    return model


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_report_equals_mamlkits_placements_where_they_overlap_and_leaves_the_model_as_it_was():
    sampler, model = sampler_and_model(0)
    with_real_stats(model, sampler).eval()
    held = mk.snapshot_bn_stats(model)
    before, modes = state(model), mk.get_modes(model)
    report = mk.placement_report(model, sampler, inner_steps=STEPS, inner_lr=LR, n_tasks=6, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and mk.get_modes(model) == modes

    ours = mk.meta_test(model, sampler, list(mk.PLACEMENTS), n_tasks=6, inner_steps=STEPS, inner_lr=LR,
                        collected_stats=held, progress=False)
    same = {"transductive": "transductive", "one_at_a_time": "one_at_a_time", "reptile_protocol": "reptile_protocol",
            "one_class_at_a_time": "one_class_at_a_time", "eval_untouched": "eval_untouched",
            "train_then_eval_untouched": "train_then_eval", "eval_held": "eval_collected",
            "train_then_eval_held": "train_then_eval_collected"}
    for row, placement in same.items():
        assert np.array_equal(report.results[row].values, ours[placement].values), row
    reestimated = mk.meta_test(model, sampler, "eval_collected", n_tasks=6, inner_steps=STEPS, inner_lr=LR,
                               collected_stats=reestimated_stats(model, as_tasks(sampler, 6)), progress=False)
    assert np.array_equal(report.results["eval_reestimated"].values, reestimated.values)
    assert not report.held_untouched
    diff = report.differences["eval_held"]
    assert diff.mean == pytest.approx(report.results["eval_held"].mean - report.results["transductive"].mean)


def test_reestimated_statistics_are_the_average_of_the_support_sets_and_leave_the_model_alone():
    sampler, model = sampler_and_model(1)
    before = state(model)
    tasks = as_tasks(sampler, 4)
    stats = reestimated_stats(model, tasks)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        first = [model.features[0](tasks.task(i).support_x) for i in range(4)]
        means = torch.stack([h.mean((0, 2, 3)) for h in first]).mean(0)
        variances = torch.stack([h.var((0, 2, 3), unbiased=True) for h in first]).mean(0)
    assert torch.allclose(stats["features.1.running_mean"], means, atol=1e-5)
    assert torch.allclose(stats["features.1.running_var"], variances, atol=1e-4)   # the unbiased batch variance
    deeper = [k for k in stats if k.endswith("running_mean") and not k.startswith("features.1.")]
    assert deeper and all(not torch.equal(stats[k], torch.zeros_like(stats[k])) for k in deeper)


class Foreign(nn.Module):
    """A network mamlkit did not build: a small convolutional body and a BatchNorm1d head."""

    def __init__(self, n_out=5):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4 * 13 * 13, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, n_out))

    def forward(self, x):
        return self.head(self.body(x))


def episodes_of(sampler, n, kind):
    for i in range(n):
        t = sampler.task(i)
        if kind == "tuple":
            yield t.support_x, t.support_y, t.query_x, t.query_y
        elif kind == "dict":
            yield {"support_x": t.support_x, "support_y": t.support_y, "query_x": t.query_x, "query_y": t.query_y}
        else:                                                   # a DataLoader with batch_size=1
            yield t.support_x[None], t.support_y[None], t.query_x[None], t.query_y[None]


def test_any_module_with_batchnorm_and_any_episode_source():
    sampler, _ = sampler_and_model(2)
    torch.manual_seed(0)
    model = Foreign()
    reports = {kind: mk.placement_report(model, episodes_of(sampler, 4, kind), inner_steps=1, inner_lr=0.1,
                                         n_tasks=None, progress=False) for kind in ("tuple", "dict", "loader")}
    from_sampler = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=4, progress=False)
    for report in reports.values():
        for name, result in from_sampler.results.items():
            assert np.array_equal(report.results[name].values, result.values), name
    assert from_sampler.held_untouched and len(from_sampler.results) == 9
    assert "batch of 1" in from_sampler.skipped["one_at_a_time"]        # BatchNorm1d refuses one example
    text = str(from_sampler)
    assert "Verdict:" in text and "check_maml" in text and "notebook 03" in text
    assert "cannot predict one example at a time" in text and "cannot run" in text
    loader = torch.utils.data.DataLoader([sampler.task(i) for i in range(3)], batch_size=1,
                                         collate_fn=lambda batch: batch[0])
    assert mk.placement_report(model, loader, inner_steps=1, inner_lr=0.1, n_tasks=None, progress=False).n_tasks == 3


def test_batchnorm_without_running_statistics_skips_what_reads_them():
    sampler, _ = sampler_and_model(3)
    model = Foreign()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    report = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, progress=False)
    assert set(report.results) == {"transductive", "one_class_at_a_time", "reptile_protocol"}
    assert any("keep no running statistics" in line for line in report.verdict)


@pytest.mark.parametrize("bad, message", [
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 5)), "no BatchNorm layer"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.BatchNorm1d(8)), r"class logits .* = \[15, 5\]"),
    (lambda: nn.Sequential(nn.Flatten(), nn.BatchNorm1d(784), nn.Linear(784, 5), nn.Unflatten(1, (5, 1))),
     "the model returned"),
])
def test_a_model_that_does_not_fit_gets_a_clear_error(bad, message):
    sampler, _ = sampler_and_model(0)
    with pytest.raises(mk.ConfigError, match=message):
        mk.placement_report(bad(), sampler, inner_steps=1, inner_lr=0.1, n_tasks=2, progress=False)


@pytest.mark.parametrize("tasks, n, message", [
    ("sampler", None, "say how many of its tasks"),
    ([], None, "gave no episodes"),
    ([("a", "b")], None, "an episode is a Task"),
    ("floats", None, "class indices"),
    (torch.zeros(3), None, "tasks must be a mamlkit sampler"),
])
def test_episodes_that_do_not_fit_get_a_clear_error(tasks, n, message):
    sampler, model = sampler_and_model(0)
    if tasks == "sampler":
        tasks = sampler
    elif tasks == "floats":
        t = sampler.task(0)
        tasks = [(t.support_x, t.support_y.float(), t.query_x, t.query_y.float())]
    with pytest.raises(mk.ConfigError, match=message):
        mk.placement_report(model, tasks, inner_steps=1, inner_lr=0.1, n_tasks=n, progress=False)


def test_inner_loop_settings_are_the_users_and_are_checked():
    sampler, model = sampler_and_model(0)
    with pytest.raises(TypeError):
        mk.placement_report(model, sampler, n_tasks=2)                 # no default step size: give yours
    with pytest.raises(mk.ConfigError, match="inner_lr"):
        mk.placement_report(model, sampler, inner_steps=1, inner_lr=0, n_tasks=2)


ENTRY = """
import torch
from torch import nn
import mamlkit as mk
from conftest import make_split

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * 13 * 13, {n_out})

    def forward(self, x):
        return self.head(self.body(x))

def build_model():
    torch.manual_seed(0)
    return Net()

CHECKPOINT = "net.pt"
INNER_STEPS = 1
INNER_LR = 0.1

def episodes():
    return mk.TaskSampler(make_split(seed=0), n_way=5, k_shot=1, n_query=3, seed=0)
"""


def write_entry(folder, n_out=5):
    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / "entry.py"
    entry.write_text(textwrap.dedent(ENTRY.format(n_out=n_out)))
    return entry


def test_the_command_line_report_on_a_saved_model(tmp_path, capsys):
    entry = write_entry(tmp_path)
    (tmp_path / "entry.py").write_text(entry.read_text().replace('CHECKPOINT = "net.pt"', ""))
    model = load_entry(entry).model
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    torch.save(model.state_dict(), tmp_path / "net.pt")
    (tmp_path / "entry.py").write_text(textwrap.dedent(ENTRY.format(n_out=5)))
    loaded = load_entry(entry)
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values()))

    out = tmp_path / "out"
    assert main(["report", "--entry", str(entry), "--tasks", "3", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Placements on your model" in printed and "Verdict:" in printed
    assert (out / "placement_report.md").is_file() and (out / "placement_report.json").is_file()
    assert not list(out.glob("*.part"))


def test_the_command_line_names_what_does_not_fit(tmp_path, capsys):
    cases = {}
    missing = tmp_path / "nothing.py"
    cases["no entry file"] = (missing, "no entry file")
    no_fn = tmp_path / "a" / "entry.py"
    no_fn.parent.mkdir()
    no_fn.write_text("x = 1\n")
    cases["no build_model"] = (no_fn, "defines no build_model")
    wrong_out = write_entry(tmp_path / "b", n_out=7)
    (wrong_out.parent / "entry.py").write_text(wrong_out.read_text().replace('CHECKPOINT = "net.pt"', ""))
    cases["wrong output size"] = (wrong_out, r"class logits .* = \[15, 5\]")
    no_bn = write_entry(tmp_path / "c")
    no_bn.write_text(no_bn.read_text().replace("nn.BatchNorm2d(4)", "nn.Identity()")
                     .replace('CHECKPOINT = "net.pt"', ""))
    cases["no BatchNorm"] = (no_bn, "no BatchNorm layer")
    bad_state = write_entry(tmp_path / "d")
    torch.save({"body.0.weight": torch.zeros(2, 2)}, bad_state.parent / "net.pt")
    cases["state dict does not load"] = (bad_state, "does not fit build_model")
    corrupt = write_entry(tmp_path / "e")
    (corrupt.parent / "net.pt").write_bytes(b"not a checkpoint")
    cases["corrupt checkpoint"] = (corrupt, "cannot read the checkpoint")
    no_ckpt = write_entry(tmp_path / "f")
    cases["missing checkpoint"] = (no_ckpt, "no checkpoint")
    for what, (entry, message) in cases.items():
        assert main(["report", "--entry", str(entry), "--tasks", "2", "--no-progress"]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, (what, err)
        assert re.search(message, err), (what, err)


def test_check_maml_points_to_the_report():
    from mamlkit.your_code.checker import MISTAKES

    assert {c for c, m in MISTAKES.items() if "placement_report" in m.advice} >= {"eval_untouched_stats"}


def test_episodes_of_different_sizes_are_refused_with_the_episode_named():
    sampler, model = sampler_and_model(0)
    other = mk.TaskSampler(sampler.split, n_way=4, k_shot=1, n_query=3, seed=0)
    with pytest.raises(mk.ConfigError, match="episode 1 has 4 classes and episode 0 has 5"):
        mk.placement_report(model, [sampler.task(0), other.task(0)], inner_steps=1, inner_lr=0.1, n_tasks=None)


def test_estimate_on_takes_any_source_and_reads_no_more_than_it_needs():
    import itertools

    sampler, model = sampler_and_model(0)
    endless = ((t.support_x, t.support_y, t.query_x, t.query_y)
               for t in (sampler.task(100 + i) for i in itertools.count()))
    report = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, estimate_on=endless,
                                 progress=False)
    assert "3 given tasks" in report.estimate_note
    expected = mk.meta_test(model, sampler, "eval_collected", n_tasks=3, inner_steps=1, inner_lr=0.1, progress=False,
                            collected_stats=reestimated_stats(model, mk.FixedTasks([sampler.task(100 + i)
                                                                                     for i in range(3)])))
    assert np.array_equal(report.results["eval_reestimated"].values, expected.values)
    with pytest.raises(mk.ConfigError, match="estimate_on: the task source gave no episodes"):
        mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=2, estimate_on=[])


def test_dropout_is_off_throughout_and_the_report_is_deterministic():
    sampler, _ = sampler_and_model(0)
    model = mk.build_model(mk.ModelConfig(norm="bn", hidden=8, dropout=0.5), seed=0, device="cpu")
    first = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, progress=False)
    second = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, progress=False)
    assert all(np.array_equal(first.results[k].values, second.results[k].values) for k in first.results)
    assert "Dropout (p = 0.5) was off throughout" in first.estimate_note and model.dropout.p == 0.5


def test_context_norms_are_not_called_transductive():
    sampler, model = sampler_and_model(0, "metabn")
    report = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, progress=False)
    assert "context normalisation" in report.verdict[0] and report.context_norm


def test_a_flag_flipped_after_construction_is_refused_and_mixed_tracking_is_said():
    sampler, model = sampler_and_model(0)
    model.features[1].track_running_stats = False
    with pytest.raises(mk.ConfigError, match="still holds its running buffers"):
        mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=2)
    model.features[1].running_mean = model.features[1].running_var = None
    model.features[1].num_batches_tracked = None
    report = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, progress=False)
    assert report.partly_transductive_eval and any("partly transductive" in line for line in report.verdict)
    assert not any(line.startswith("Use eval") for line in report.verdict)


def synthetic_report(values, held_untouched=False):
    """A report whose rows have the given per-task accuracies (the same tasks), for the verdict's branches."""
    from mamlkit.your_code.report import PlacementReport, verdict

    tasks = tuple(range(len(next(iter(values.values())))))
    results = {name: mk.EvalResult(name, np.array(v, dtype=float), task_indices=tasks) for name, v in values.items()}
    differences = {n: mk.paired_difference(r, results["transductive"])
                   for n, r in results.items() if n != "transductive"}
    report = PlacementReport(results, differences, 5, 1, 0.1, 0.0, held_untouched, "note")
    report.verdict = verdict(report, keeps_stats=True)
    return report


def rows(**overrides):
    base = {"transductive": [0.8, 0.7] * 20, "one_at_a_time": [0.3, 0.3] * 20, "one_class_at_a_time": [0.3] * 40,
            "reptile_protocol": [0.7, 0.6] * 20, "eval_held": [0.2, 0.24] * 20, "eval_untouched": [0.2] * 40,
            "eval_reestimated": [0.2] * 40, "train_then_eval_held": [0.6] * 40, "train_then_eval_untouched": [0.2] * 40,
            "train_then_eval_reestimated": [0.6] * 40}
    return {**base, **overrides}


def test_each_branch_of_the_verdict_says_what_the_numbers_say():
    plain = synthetic_report(rows()).verdict
    assert plain[0].startswith("Use train mode at meta-test: 75.0") and "best here is reptile_protocol" in plain[0]
    assert "cost 45.0" in plain[1] and "not usable" in plain[2] and "near chance" in plain[2]
    better = synthetic_report(rows(reptile_protocol=[0.9, 0.8] * 20)).verdict
    assert better[0].startswith("Use reptile_protocol: 85.0") and "above train mode" in better[0]
    same = synthetic_report(rows(reptile_protocol=[0.8, 0.7] * 19 + [0.7, 0.8])).verdict
    assert "no clear difference" in same[0]
    usable = synthetic_report(rows(eval_held=[0.8, 0.7] * 19 + [0.7, 0.8])).verdict
    assert any("usable with eval mode" in line for line in usable)
    untouched = synthetic_report(rows(), held_untouched=True).verdict
    assert any("still 0 and 1" in line and "no inner step size tried brought eval mode with them near train mode"
               in line for line in untouched)
    free = synthetic_report(rows(one_at_a_time=[0.8, 0.7] * 19 + [0.7, 0.8])).verdict
    assert "cost nothing measurable" in free[1]


def test_the_verdict_reads_the_user_s_numbers_and_cites_the_conv4_only_where_they_agree():
    # re-estimated statistics far below train mode (as a user's 71.8% against 88.4%): no "come close"
    far = synthetic_report(rows(eval_reestimated=[0.7, 0.74] * 20, transductive=[0.88, 0.89] * 20)).verdict
    line = next(line for line in far if line.startswith("Statistics re-estimated"))
    assert "come within" not in line and "do not replace train mode" in line and "recipe 2" in line
    close = synthetic_report(rows(eval_reestimated=[0.78, 0.7] * 20)).verdict
    assert any("come within 5 points of train mode" in line for line in close)
    above = synthetic_report(rows(eval_reestimated=[0.95, 0.9] * 20)).verdict
    assert any("beat train mode" in line for line in above)
    # statistics of 0 and 1 that happen to work for this model: no "far below", no "below" at all
    works = synthetic_report(rows(eval_held=[0.8, 0.7] * 19 + [0.7, 0.8]), held_untouched=True).verdict
    line = next(line for line in works if "still 0 and 1" in line)
    assert "far below" not in line and "below train mode" not in line and "+0.0 ± " in line


def test_rows_at_exactly_chance_on_every_task_are_named_as_possibly_diverged():
    verdict = synthetic_report(rows()).verdict                     # eval_untouched etc. are 0.2 on all 40 tasks
    line = next(line for line in verdict if "exactly chance on every task" in line)
    assert line.startswith("eval_untouched, eval_reestimated, train_then_eval_untouched")
    assert "eval_held" not in line                                  # 0.2 / 0.24: not flat
    assert not any("exactly chance" in line for line in synthetic_report(rows(eval_untouched=[0.2, 0.24] * 20,
                                                                               eval_reestimated=[0.7, 0.74] * 20,
                                                                               train_then_eval_untouched=[0.24] * 40))
                   .verdict)


def test_a_dataloader_with_the_default_collate_gives_the_same_report():
    sampler, model = sampler_and_model(0)
    episodes = [(t.support_x, t.support_y, t.query_x, t.query_y) for t in (sampler.task(i) for i in range(3))]
    loader = torch.utils.data.DataLoader(episodes, batch_size=1)               # adds a batch dimension of one
    from_loader = mk.placement_report(model, loader, inner_steps=1, inner_lr=0.1, n_tasks=None, progress=False)
    direct = mk.placement_report(model, sampler, inner_steps=1, inner_lr=0.1, n_tasks=3, progress=False)
    assert all(np.array_equal(from_loader.results[k].values, direct.results[k].values) for k in direct.results)


def test_the_entry_file_may_import_its_neighbours_late_and_checkpoints_come_in_common_shapes(tmp_path, capsys):
    folder = tmp_path / "project"
    entry = write_entry(folder)
    source = textwrap.dedent(ENTRY.format(n_out=5))
    (folder / "late_nets.py").write_text(source.split("def build_model")[0])   # the network in a module of its own
    text = source.replace("def build_model():\n    torch.manual_seed(0)\n    return Net()",
                          "def build_model():\n    from late_nets import Net          # imported when called\n"
                          "    torch.manual_seed(0)\n    return Net()")
    assert "from late_nets import Net" in text
    entry.write_text(text.replace('CHECKPOINT = "net.pt"', ""))
    model = load_entry(entry).model
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    entry.write_text(text.replace('CHECKPOINT = "net.pt"', 'CHECKPOINT = "wrapped.pt"'))
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, folder / "wrapped.pt")     # a training script's dict
    loaded = load_entry(entry).model
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    torch.save(model, folder / "wrapped.pt")                                            # the whole model, pickled
    with pytest.raises(mk.ConfigError, match="holds more than tensors"):
        load_entry(entry)
    entry.write_text(text.replace('CHECKPOINT = "net.pt"', "").replace("INNER_STEPS = 1", ""))
    assert main(["report", "--entry", str(entry), "--tasks", "2", "--no-progress"]) == 2
    assert "set INNER_STEPS and INNER_LR" in capsys.readouterr().err
