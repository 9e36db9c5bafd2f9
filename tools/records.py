"""What the tools that write and read ``data/records`` share: loading a record, a table cell, and for the tools
that measure, the record's header (the command, commit and thread count) and its atomic write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mamlkit.evaluate import confidence_interval  # noqa: E402
from mamlkit.plumbing.machine import signature  # noqa: E402

RECORDS = ROOT / "data" / "records"


def load(name: str) -> dict:
    """``data/records/<name>.json``."""
    return json.loads((RECORDS / f"{name}.json").read_text())


def cell(percents: list[int]) -> str:
    """Mean ± 95% half-width of per-task accuracies in whole percent, as the README's tables show them."""
    mean, half = confidence_interval([p / 100 for p in percents])
    return f"{100 * mean:.1f} ± {100 * half:.1f}"


def datasets(data_dir: str | None) -> dict[str, dict]:
    """Glyphs, and the Omniglot subset where a folder is given: the extra ``preset`` settings of each."""
    found = {"glyphs": {}}
    if data_dir:
        found["omniglot"] = {"data_dir": str(Path(data_dir).resolve())}
    return found


def header(about: str) -> dict:
    """A new record's first fields; sets torch's threads to ``$MAMLKIT_THREADS`` (1 by default), as the CLI runs."""
    import torch

    torch.set_num_threads(int(os.environ.get("MAMLKIT_THREADS", "1")))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {"about": about, "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
            "commit": commit.stdout.strip(), "threads": torch.get_num_threads(), "machine": signature()}


def write(record: dict, out: Path) -> None:
    """Write ``record`` to ``out`` whole or not at all."""
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


def measure_then_print(description: str, record: str, measure, table, measure_help: str,
                       argv: list[str] | None = None) -> int:
    """The command line of a record-making tool: ``--measure`` runs ``measure(out)`` and writes the record
    ``data/records/<record>`` (or ``--out``) first; then the record's ``table()`` is printed."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--measure", action="store_true", help=measure_help)
    parser.add_argument("--out", type=Path, default=RECORDS / record)
    args = parser.parse_args(argv)
    if args.measure:
        measure(args.out)
    print(table())
    return 0
