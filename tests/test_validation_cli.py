"""The command line against a careless user (#38): NaN and bad settings refused in one line before any work, output
folders checked first, results written whole; a real Ctrl-C (SIGINT) prints one line, not a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mamlkit.cli import main
from mamlkit.plumbing import files

ROOT = Path(__file__).resolve().parents[1]

#: A tiny entry file for ``report``: a small BatchNorm network and 4 random 3-way episodes of 12x12 inputs.
ENTRY = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * 10 * 10, 3)

    def forward(self, x):
        return self.head(self.body(x))

def build_model():
    torch.manual_seed(0)
    return Net()

INNER_STEPS = 1
INNER_LR = 0.1

def episodes():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3)
    return [(torch.rand(3, 1, 12, 12, generator=g), y, torch.rand(6, 1, 12, 12, generator=g), y.repeat(2))
            for _ in range(4)]
"""


@pytest.fixture
def entry(tmp_path: Path) -> Path:
    path = tmp_path / "entry.py"
    path.write_text(textwrap.dedent(ENTRY))
    return path


def _one_line_error(capsys: pytest.CaptureFixture, *words: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("option", ["nan", "inf", "-inf"])
def test_report_refuses_a_nan_or_infinite_rate(entry: Path, option: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", "--entry", str(entry), f"--inner-lr={option}", "--no-progress"])
    assert info.value.code == 2 and "--inner-lr: must be a finite number" in capsys.readouterr().err


def test_report_refuses_a_negative_rate_from_the_entry_file(entry: Path, capsys: pytest.CaptureFixture) -> None:
    entry.write_text(entry.read_text().replace("INNER_LR = 0.1", "INNER_LR = -0.1"))
    assert main(["report", "--entry", str(entry), "--no-progress"]) == 2
    _one_line_error(capsys, "inner_lr", "above 0")


@pytest.mark.parametrize("args", [["placements", "--quick", "--test-lr-scale", "nan"],
                                  ["placements", "--quick", "--seed", "-1"],
                                  ["why-eval", "--quick", "--seeds", "0", "-2"],
                                  ["placements", "--quick", "--dropout", "nan"]])
def test_placements_refuses_nan_and_negative_seeds_before_any_work(args: list[str],
                                                                   capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and ("finite" in err or "at least 0" in err), err


def test_k_shot_too_large_is_refused_with_advice_that_can_be_followed(capsys: pytest.CaptureFixture,
                                                                     tmp_path: Path) -> None:
    assert main(["placements", "--quick", "--k-shot", "100", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    line = _one_line_error(capsys, "k_shot", "at most 19")
    assert "-8" not in line
    assert main(["placements", "--quick", "--k-shot", "5", "--n-query", "100", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2  # the option the advice names exists on the measuring commands
    _one_line_error(capsys, "lower n_query to at most 15")


def test_an_out_path_that_is_a_file_is_refused_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               entry: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    begin = time.perf_counter()
    assert main(["placements", "--quick", "--out", str(taken), "--no-progress"]) == 2
    _one_line_error(capsys, "--out", "is a file")
    assert main(["report", "--entry", str(entry), "--out", str(taken / "sub"), "--no-progress"]) == 2
    _one_line_error(capsys, "--out", "cannot be written")
    assert time.perf_counter() - begin < 10 and taken.read_text() == "mine"  # refused at once, nothing computed


def test_an_output_name_taken_by_a_folder_is_refused_before_the_work(tmp_path: Path, entry: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "out" / "placement_report.json").mkdir(parents=True)
    assert main(["report", "--entry", str(entry), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    _one_line_error(capsys, "placement_report.json", "is a folder")
    assert capsys.readouterr().out == ""  # no report was computed and then lost


@pytest.mark.parametrize(("variable", "value"), [("MAMLKIT_THREADS", "abc"), ("MAMLKIT_THREADS", "0"),
                                                 ("MAMLKIT_DEVICE", "gpu"), ("MAMLKIT_DEVICE", "cuda:9"),
                                                 ("MAMLKIT_LANES", "two")])
def test_bad_environment_variables_are_named_even_for_describe(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                               value: str, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["describe"]) == 2
    _one_line_error(capsys, variable)


def test_report_help_prints_a_single_percent_sign(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "95% intervals" in text and "%%" not in text


def test_report_end_to_end_writes_whole_files(entry: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["report", "--entry", str(entry), "--tasks", "4", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["placement_report.json", "placement_report.md"]
    assert json.loads((out / "placement_report.json").read_text())["results"]
    assert "Verdict" in capsys.readouterr().out


def _run(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "MAMLKIT_PROGRESS": "0", "MAMLKIT_THREADS": "1", "MAMLKIT_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-m", "mamlkit", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_as_in_a_terminal)


def _as_in_a_terminal() -> None:
    """Ctrl-C acts, as in a terminal: a shell starts background jobs (``make test &``, a CI runner) with SIGINT
    ignored, and a program started with it ignored keeps ignoring it, so the test would see no interrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(process: subprocess.Popen) -> tuple[int, str]:
    """A terminal's Ctrl-C: SIGINT to the whole process group (the CLI and its worker processes)."""
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_a_real_ctrl_c_in_a_run_with_workers_prints_one_line_and_leaves_whole_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = _run(["placements", "--quick", "--no-cache", "--lanes", "2", "--out", str(out)], tmp_path)
    deadline = time.monotonic() + 120
    while not out.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the output folder is checked (and made) before the work starts
    time.sleep(3)  # into the meta-training, worker processes started
    assert process.poll() is None, process.communicate()
    code, err = _interrupt(process)
    assert code == 130 and err.strip() == "interrupted", err
    assert not [p for p in out.iterdir() if p.name.endswith(files.TEMP_SUFFIX)]


def test_a_real_ctrl_c_while_starting_prints_no_traceback(tmp_path: Path) -> None:
    """On a loaded machine the interrupt can land as ``describe`` finishes, where Python no longer acts on it
    (exit 0, nothing printed): then it is tried again, up to three times, and must once end the start-up."""
    for _ in range(3):
        process = _run(["describe"], tmp_path)
        time.sleep(0.5)  # importing torch
        if process.poll() is not None:
            pytest.fail("describe finished within half a second: the interrupt cannot land while it starts")
        code, err = _interrupt(process)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        if code != 0:
            break
    assert code in (130, -signal.SIGINT), err
