"""Pack the per-seed JSON records of a multi-seed CLI run into one small file the notebooks can read.

Usage:
    python tools/pack_seed_record.py data/records/seeds-glyphs.json \\
        --section placements results/seeds/placements-glyphs-seed{0,1,2}.json \\
        --section norms results/seeds/norms-glyphs-seed{0,1,2}.json \\
        --command "python -m mamlkit placements --dataset glyphs --seeds 0 1 2" ...

The CLI writes one JSON record per meta-training seed (``--seeds``), 250 kB each with every task's
accuracy as a float. This keeps, per section, ``results[row][column]`` as one list per seed of each
task's accuracy in whole percent (a task of 25 queries scores a multiple of 4%, so nothing is rounded:
the tool refuses values that are not whole percents), plus the experiment and the commands that made
it. The deep dive `confidence_intervals` reads the packed file to separate the two sources of variance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def whole_percents(values: list[float], where: str) -> list[int]:
    """Each accuracy in [0, 1] as a whole percent; refuse values that are not whole percents."""
    out = []
    for v in values:
        p = round(100 * v)
        if abs(100 * v - p) > 1e-3:
            raise SystemExit(f"{where}: accuracy {v!r} is not a whole percent; this packer keeps whole percents only")
        out.append(p)
    return out


def pack_section(paths: list[Path]) -> dict:
    records = [json.loads(p.read_text()) for p in paths]
    seeds = [r["experiment"]["train"]["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"the records {', '.join(map(str, paths))} repeat a seed: {seeds}")
    first = dict(records[0]["experiment"])
    first["train"] = {k: v for k, v in first["train"].items() if k != "seed"}
    for path, record in zip(paths, records):
        exp = dict(record["experiment"])
        exp["train"] = {k: v for k, v in exp["train"].items() if k != "seed"}
        if exp != first:
            raise SystemExit(f"{path}: a different experiment from {paths[0]} (beyond the seed)")
    results: dict[str, dict[str, list[list[int]]]] = {}
    for path, record in zip(paths, records):
        for row, by in record["results"].items():
            for col, r in by.items():
                values = whole_percents(r["values"], f"{path} [{row}][{col}]")
                results.setdefault(row, {}).setdefault(col, []).append(values)
    return {
        "experiment": first,
        "machine": records[0].get("machine"),
        "seeds": seeds,
        "train_seconds": [r["train_seconds"] for r in records],
        "test_seconds": [r["test_seconds"] for r in records],
        "results": results,
    }


def dump(record: dict) -> str:
    """JSON with each list of task values on one line, so that the file and its diffs stay readable."""
    inline: dict[str, str] = {}

    def mark(x: object) -> object:
        if isinstance(x, list) and x and all(isinstance(v, int) for v in x):
            key = f"@inline{len(inline)}@"
            inline[key] = json.dumps(x, separators=(",", ":"))
            return key
        if isinstance(x, dict):
            return {k: mark(v) for k, v in x.items()}
        if isinstance(x, list):
            return [mark(v) for v in x]
        return x

    text = json.dumps(mark(record), indent=1)
    for key, value in inline.items():
        text = text.replace(f'"{key}"', value)
    return text + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--section", nargs="+", action="append", required=True, metavar=("NAME", "JSON"),
                        help="a section name then the per-seed JSON records of one CLI run")
    parser.add_argument("--command", action="append", default=[], help="the command(s) that made the records")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {
        "about": "per-task accuracy (whole %) of each meta-training seed; packed by tools/pack_seed_record.py",
        "commands": args.command,
        "packed_at_commit": commit,
    }
    for name, *paths in args.section:
        if not paths:
            raise SystemExit(f"--section {name}: no JSON records given")
        record[name] = pack_section([Path(p) for p in paths])
    machines = [section.pop("machine") for section in (record[name] for name, *_ in args.section)]
    if any(m != machines[0] for m in machines):
        raise SystemExit("the records were computed on different machines; pack each machine's runs apart")
    record["machine"] = machines[0]         # mamlkit.plumbing.machine.signature of the machine that computed them
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".part")
    partial.write_text(dump(record))
    json.loads(partial.read_text())  # still valid JSON
    os.replace(partial, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
