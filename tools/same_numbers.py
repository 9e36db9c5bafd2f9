"""Record mamlkit's numbers before a refactor and check that they are bit-identical after it.

    MAMLKIT_THREADS=1 python tools/same_numbers.py --write before.json     # at the old commit
    MAMLKIT_THREADS=1 python tools/same_numbers.py --compare before.json   # at the new one

What is recorded, on small glyphs configurations (about two minutes at one thread):

- meta-training, 2 iterations, for every normalisation in {bn, metabn, tasknorm_i, none}, both backends, both
  meta-training placements, first and second order and both running-statistics policies: sha256 of the
  state_dict, of the collected statistics, of the history's losses and of every gradient of the last step;
  the gradients themselves go to ``FILE.pt`` (for checks "to 1e-6 relative" rather than bit for bit);
- meta-test: the per-task values of the 8 placements with both backends on 5 tasks, and the sha256 of the
  ``adapt_and_predict`` outputs on task 0;
- the command line (``--no-cache``): ``placements``, ``norms`` and ``why-eval`` at ``--quick``, their
  per-task values without the seconds.

Only public names and the command line are used, so the tool runs unchanged across the redesign.
The comparison is exact; it prints every key that differs and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MAMLKIT_THREADS", "1")
os.environ["MAMLKIT_PROGRESS"] = "0"

import torch  # noqa: E402

import mamlkit as mk  # noqa: E402

torch.set_num_threads(int(os.environ["MAMLKIT_THREADS"]))


def digest(tensors) -> str:
    """sha256 over tensors (or a dict or list of them), in order."""
    h = hashlib.sha256()
    if isinstance(tensors, dict):
        tensors = [tensors[k] for k in sorted(tensors)]
    for t in tensors:
        if t is None:
            h.update(b"None")
            continue
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def record_training(data, grads_out: dict) -> dict:
    out = {}
    sampler = mk.TaskSampler(data["train"], n_way=5, k_shot=1, n_query=5, seed=0)
    for norm, dropout in (("bn", 0.0), ("metabn", 0.0), ("tasknorm_i", 0.0), ("none", 0.0), ("bn", 0.3)):
        for backend in ("higher", "torch.func"):
            for placement in ("standard", "query_eval"):
                for first_order in (False, True):
                    for running in ("copies", "write_back"):
                        key = f"train/{norm}/p={dropout}/{backend}/{placement}/fo={first_order}/{running}"
                        model = mk.build_model(mk.ModelConfig(norm=norm, hidden=8, dropout=dropout))
                        config = mk.TrainConfig(iterations=2, meta_batch=2, inner_steps=2, placement=placement,
                                                first_order=first_order, running_stats=running, seed=0)
                        trained = mk.meta_train(model, sampler, config, progress=False, backend=backend)
                        grads = [p.grad for p in model.parameters()]
                        out[key] = {
                            "state_dict": digest(model.state_dict()),
                            "collected": digest(trained.collected_stats),
                            "history": hashlib.sha256(repr((trained.history.loss, trained.history.accuracy))
                                                      .encode()).hexdigest(),
                            "grads": digest(grads),
                        }
                        grads_out[key] = [None if g is None else g.detach().clone() for g in grads]
    return out


def record_meta_test(data) -> dict:
    out = {}
    train = mk.TaskSampler(data["train"], n_way=5, k_shot=1, n_query=5, seed=0)
    test = mk.TaskSampler(data["test"], n_way=5, k_shot=1, n_query=5, seed=1)
    for norm in ("bn", "metabn", "tasknorm_i"):
        model = mk.build_model(mk.ModelConfig(norm=norm, hidden=8))
        trained = mk.meta_train(model, train, mk.TrainConfig(iterations=3, meta_batch=2, inner_steps=2),
                                progress=False)
        for backend in ("higher", "torch.func"):
            for name in mk.PLACEMENTS:
                result = mk.meta_test(trained.model, test, name, n_tasks=5, inner_steps=3,
                                      collected_stats=trained.collected_stats, progress=False, backend=backend)
                out[f"test/{norm}/{backend}/{name}"] = [float(v) for v in result.values]
            outputs = mk.adapt_and_predict(trained.model, test.task(0), "transductive", 3, backend=backend)
            out[f"predict/{norm}/{backend}"] = digest([outputs])
        out[f"test/{norm}/model_after"] = digest(trained.model.state_dict())
    return out


def run_cli(args: list[str], folder: Path) -> dict:
    env = dict(os.environ, MAMLKIT_CACHE=str(folder / "cache"))
    out = folder / args[0]
    subprocess.run([sys.executable, "-m", "mamlkit", *args, "--no-cache", "--no-progress", "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    found = {}
    for path in sorted(out.rglob("*.json")):
        record = json.loads(path.read_text())
        found[path.name] = strip_seconds(record)
    return found


def strip_seconds(value):
    if isinstance(value, dict):
        return {k: strip_seconds(v) for k, v in value.items()
                if "second" not in k and k not in ("elapsed", "wall", "created", "commit", "packed_at_commit")}
    if isinstance(value, list):
        return [strip_seconds(v) for v in value]
    return value


def record_cli() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return {
            "cli/placements": run_cli(["placements", "--quick", "--tasks", "50"], folder),
            "cli/norms": run_cli(["norms", "--quick", "--tasks", "20", "--methods", "conventional_bn",
                                  "transductive_bn", "reptile_bn", "metabn"], folder),
            "cli/why-eval": run_cli(["why-eval", "--quick", "--tasks", "10", "--lr-factors", "1", "0.25"], folder),
        }


def record() -> tuple[dict, dict]:
    data = mk.load_dataset("glyphs")
    grads: dict = {}
    numbers = {}
    numbers.update(record_training(data, grads))
    numbers.update(record_meta_test(data))
    numbers.update(record_cli())
    return numbers, grads


def differences(before, after, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            if key not in before or key not in after:
                found.append(f"{prefix}{key}: only {'after' if key in after else 'before'}")
            else:
                found += differences(before[key], after[key], f"{prefix}{key}/")
        return found
    return [] if before == after else [f"{prefix.rstrip('/')}: {str(before)[:80]} != {str(after)[:80]}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, help="record into FILE (and FILE.pt)")
    action.add_argument("--compare", type=Path, help="compare with FILE; exit 1 on any difference")
    args = parser.parse_args()
    numbers, grads = record()
    if args.write:
        args.write.write_text(json.dumps(numbers, indent=1, sort_keys=True))
        torch.save(grads, args.write.with_suffix(args.write.suffix + ".pt"))
        print(f"recorded {len(numbers)} keys into {args.write}")
        return 0
    before = json.loads(args.compare.read_text())
    found = differences(before, json.loads(json.dumps(numbers)))
    old_grads = torch.load(args.compare.with_suffix(args.compare.suffix + ".pt"))
    worst = 0.0
    for key, old in old_grads.items():
        for a, b in zip(old, grads.get(key, [])):
            if a is not None and b is not None:
                worst = max(worst, ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item())
    for line in found:
        print("DIFFERS", line)
    print(f"{len(numbers)} keys compared, {len(found)} differ; gradients: largest relative difference {worst:.1e}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
