"""Time of each notebook and of the whole nbval suite, as ``make test-notebooks`` runs them.

Runs ``pytest -n 2 --dist loadfile --nbval-lax --nbval-current-env -p no:cacheprovider <notebooks>
--durations=0`` once (two workers, one torch thread per kernel, as ``make test-notebooks``), reads
pytest's per-cell durations (setup, call and teardown of every cell item), adds them up per
notebook, and records them with the suite's wall time in ``benchmarks/recorded/notebooks.json``.
Run it on a quiet machine with the model cache filled (``python -m mamlkit train --preset
lesson``), otherwise the first notebook that needs a model also pays for training it.

Usage: python benchmarks/notebook_times.py [notebooks/01_train_eval_basics.ipynb ...]   (default: all, deep dives too)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine, record

# e.g. "12.34s call     notebooks/02_maml_placements.ipynb::Cell 5", "… notebooks/deep_dives/does_it_hold.ipynb::Cell 3"
DURATION = re.compile(r"^\s*([0-9.]+)s\s+(setup|call|teardown)\s+(\S+?\.ipynb)::")


def per_notebook(pytest_output: str) -> dict[str, float]:
    """Seconds per notebook: the sum of the durations pytest lists for its cells, in order of appearance."""
    totals: dict[str, float] = {}
    for line in pytest_output.splitlines():
        match = DURATION.match(line)
        if match:
            seconds, _, path = match.groups()
            name = path.split("notebooks/", 1)[-1]          # 02_….ipynb, or deep_dives/….ipynb
            totals[name] = totals.get(name, 0.0) + float(seconds)
    return dict(sorted(totals.items()))


def main(notebooks: list[str], threads: int = 1, jobs: int = 2) -> dict:
    targets = notebooks or ["notebooks"]
    command = [sys.executable, "-m", "pytest", "-n", str(jobs), "--dist", "loadfile",
               "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
               "--durations=0", "-q", *targets]
    env = {**os.environ, "MAMLKIT_THREADS": str(threads), "MAMLKIT_PROGRESS": "0"}
    begin = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - begin
    output = done.stdout + done.stderr
    times = per_notebook(output)
    where = machine()
    where["torch_threads"] = f"MAMLKIT_THREADS={threads} per notebook kernel, {jobs} pytest-xdist workers"
    result = {
        "machine": where,
        "command": " ".join(["pytest", *command[3:]]),
        "exit_code": done.returncode,
        "passed": done.returncode == 0,
        "suite_wall_s": wall,
        "per_notebook_s": times,
        "summary_line": output.strip().splitlines()[-1] if output.strip() else "",
    }
    record("notebooks", result)
    return result


def from_log(path: str, source: str) -> dict:
    """Record the times from an existing log of the same pytest command (e.g. a CI run's output)."""
    output = Path(path).read_text(errors="replace")
    start = output.rfind("nbval-lax")  # the notebooks' pytest run, when the log holds more than it
    part = output[start:] if start >= 0 else output
    summary = re.findall(r"=+ (\d+ passed.*?) in ([0-9.]+)s", part)
    where = machine()
    where["torch_threads"] = "1 torch thread per notebook kernel, 2 pytest-xdist workers (make test)"
    result = {
        "machine": where,
        "command": f"make test-notebooks, read from {source}",
        "exit_code": 0 if summary and "failed" not in summary[0][0] else 1,
        "passed": bool(summary) and "failed" not in summary[0][0],
        "suite_wall_s": float(summary[0][1]) if summary else float("nan"),
        "per_notebook_s": per_notebook(part),
        "summary_line": summary[0][0] if summary else "",
    }
    record("notebooks", result)
    return result


def report(result: dict) -> str:
    lines = [f"{seconds:7.1f} s  {name}" for name, seconds in result["per_notebook_s"].items()]
    lines.append(f"{result['suite_wall_s']:7.1f} s  whole nbval suite (wall time; exit code {result['exit_code']})")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to time (default: the notebooks folder)")
    parser.add_argument("--threads", type=int, default=1, help="MAMLKIT_THREADS for the notebooks")
    parser.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("--from-log", help="read the durations from this log of `make test` instead of running")
    parser.add_argument("--source", default="a make test log", help="where the log came from (for the record)")
    args = parser.parse_args()
    if args.from_log:
        print(report(from_log(args.from_log, args.source)))
    else:
        print(report(main(args.notebooks, args.threads, args.jobs)))
