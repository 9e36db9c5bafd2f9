"""Copy the models a fresh-clone ``make test`` trained into ``data/models``, the lesson models that ship.

    python tools/ship_models.py /path/to/fresh/clone/data/cache

Every ``maml-<key>.pt`` file of the folder is checked (a readable mamlkit cache file whose name is the key of
the configuration stored inside it, naming the machine that trained it) and copied; files already shipped with
the same contents are left alone. ``tests/test_shipped_models.py`` checks the shipped files and retrains one:
bit for bit where the machine is the one recorded in the file, equivalent within stated margins elsewhere.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mamlkit.experiments.cache import config_key, shipped_dir  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    target = shipped_dir()
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(argv[0]).glob("maml-*.pt")):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        config = json.loads(payload["config"])
        if path.name != f"maml-{config_key(config)}.pt":
            print(f"skipped {path.name}: its name is not the key of the configuration inside it", file=sys.stderr)
            continue
        if not isinstance(payload.get("machine"), str) or json.loads(payload["machine"]) is None:
            print(f"skipped {path.name}: it does not name the machine that trained it (retrain it)", file=sys.stderr)
            continue
        dest = target / path.name
        if dest.exists() and filecmp.cmp(path, dest, shallow=False):
            print(f"unchanged {dest.name}")
            continue
        shutil.copyfile(path, dest)
        print(f"shipped   {dest.name} ({dest.stat().st_size // 1000} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
