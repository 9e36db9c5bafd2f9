"""Command line: ``python -m mamlkit placements`` reproduces the placement table.

Examples::

    python -m mamlkit placements --dataset glyphs
    python -m mamlkit placements --dataset omniglot --data-dir ../shared/data/omniglot
    python -m mamlkit placements --quick
    python -m mamlkit norms --dataset glyphs
    python -m mamlkit why-eval --dataset glyphs --seeds 0 1 2
    python -m mamlkit report --entry my_report.py --tasks 100
    python -m mamlkit download --data-dir data/omniglot
    python -m mamlkit placements --dataset omniglot --download
    python -m mamlkit describe
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mamlkit.cli.parser import build_parser, describe_placements
from mamlkit.errors import ConfigError, DataError
from mamlkit.norms import NORMS
from mamlkit.plumbing import checks
from mamlkit.plumbing.files import write_text
from mamlkit.plumbing.lanes import default_lanes

#: Tasks the notebooks' why-eval cells measure (the first tasks of the CLI's run): claims are also checked on them.
NOTEBOOK_TASKS = 30

#: The error for ``--dataset omniglot`` without a folder.
NEEDS_DATA_DIR = ("--dataset omniglot needs --data-dir PATH (e.g. --data-dir ../shared/data/omniglot), or --download "
                  "to fetch the official archives where you have internet")


def _data_changes(args: argparse.Namespace) -> dict:
    """The preset changes every command that meta-trains takes from its options: the dataset, its folder and the
    shape of the tasks (``--n-way``, ``--k-shot``, ``--n-query`` where the command has them)."""
    changes: dict = {"dataset": args.dataset}
    if args.data_dir:
        changes["data_dir"] = str(Path(args.data_dir).expanduser().resolve())
    for option in ("n_way", "k_shot", "n_query"):
        if getattr(args, option, None):
            changes[option] = getattr(args, option)
    return changes


def _experiment(args: argparse.Namespace, default_preset: str = "full"):
    from mamlkit.experiments import preset

    name = "quick" if args.quick else (args.preset or default_preset)
    changes = _data_changes(args)
    if args.tasks:
        changes["test_tasks"] = args.tasks
    train = {}
    if args.iterations:
        train["iterations"] = args.iterations
    if args.seed is not None:
        train["seed"] = args.seed
    for option in ("inner_rates", "adapt"):
        if getattr(args, option, None):
            train[option] = getattr(args, option)
    if getattr(args, "first_order", False):
        train["first_order"] = True
    if getattr(args, "test_steps", None):
        changes["test_inner_steps"] = args.test_steps
    if getattr(args, "test_lr_scale", None) is not None:
        checks.rate("--test-lr-scale", args.test_lr_scale, "0.5")
        changes["test_lr_scale"] = args.test_lr_scale
    if train:
        changes["train"] = train
    model = {option: getattr(args, option) for option in ("norm", "hidden", "downsample")
             if getattr(args, option, None)}
    if getattr(args, "dropout", None) is not None:
        if not 0 <= args.dropout < 1:
            raise ConfigError(f"--dropout must be at least 0 and below 1, got {args.dropout}")
        model["dropout"] = args.dropout
    if getattr(args, "dropout_off", False):
        if not model.get("dropout"):
            raise ConfigError("--dropout-off turns off the model's Dropout at meta-test: give the model Dropout "
                              "with --dropout P (e.g. --dropout 0.3)")
        changes["test_dropout_off"] = True
    if model:
        changes["model"] = model
    return preset(name, **changes)


def _over_seeds(args: argparse.Namespace, stem: str, run, transpose: bool = False) -> int:
    """Run ``run(exp)`` for the experiment of ``args`` once per seed (``--seeds``) or once (``--seed``)."""
    from mamlkit.experiments import across_seeds

    base = _experiment(args)
    seeds = args.seeds or [None]
    stems = [f"{stem}-{base.dataset}{'' if seed is None else f'-seed{seed}'}" for seed in seeds]
    names = [f"{s}.{kind}" for s in stems for kind in ("png", "md", "json")]
    checks.output_folder(args.out, names + ([f"{stem}-{base.dataset}-seeds.md"] if len(seeds) > 1 else []))
    records = []
    begin = time.perf_counter()
    for seed in seeds:
        exp = base if seed is None else base.with_changes(train={"seed": seed})
        res = run(exp)
        timings = [f"meta-training {name}: {seconds:.0f} s (0 s of it now if loaded from the cache)"
                   for name, seconds in res.train_seconds.items()]
        suffix = "" if seed is None else f"-seed{seed}"
        _report(res, Path(args.out), f"{stem}-{exp.dataset}{suffix}", timings, time.perf_counter() - begin)
        records.append(res)
    if len(records) > 1:
        table = across_seeds(records, title=f"{stem} on {base.dataset}, {base.test_tasks} meta-test tasks per seed, "
                                            f"meta-training seeds {', '.join(map(str, seeds))}", transpose=transpose)
        print(table)
        path = Path(args.out) / f"{stem}-{base.dataset}-seeds.md"
        write_text(path, table.to_markdown() + "\n")
        print(f"wrote {path}")
    return 0


def _prepare_data(args: argparse.Namespace) -> None:
    """Fetch Omniglot first for ``--download`` (then ``args.data_dir`` names its folder); check a folder is named."""
    if args.download:
        from mamlkit.data.omniglot import FULL_SETS, download_omniglot

        if args.dataset != "omniglot":
            raise ConfigError("--download fetches Omniglot: add --dataset omniglot (glyphs need no download)")
        folder = download_omniglot(args.data_dir, FULL_SETS, progress=not args.no_progress)
        args.data_dir = str(folder)
    if args.dataset == "omniglot" and not args.data_dir:
        raise DataError(NEEDS_DATA_DIR)


def download_command(args: argparse.Namespace) -> int:
    from mamlkit.data.omniglot import download_omniglot

    folder = download_omniglot(args.data_dir, args.sets, progress=not args.no_progress)
    print(f"Omniglot archives in {folder}: {', '.join(f'{name}.zip' for name in args.sets)} (md5 checked)")
    print(f"use them with: --dataset omniglot --data-dir {folder}")
    return 0


def run_placements_command(args: argparse.Namespace) -> int:
    from mamlkit.experiments import run_placements

    _prepare_data(args)
    lanes = args.lanes or default_lanes()
    return _over_seeds(args, "placements", lambda exp: run_placements(
        exp, args.trainings, args.placements, progress=not args.no_progress, cache=not args.no_cache, lanes=lanes),
        transpose=True)


def norms_command(args: argparse.Namespace) -> int:
    from mamlkit.experiments import run_normalisations

    _prepare_data(args)
    args.norm = None
    lanes = args.lanes or default_lanes()
    return _over_seeds(args, "norms", lambda exp: run_normalisations(
        exp, args.methods, progress=not args.no_progress, cache=not args.no_cache, lanes=lanes))


def why_eval_command(args: argparse.Namespace) -> int:
    from mamlkit.lessons.why_eval import CONDITIONS, LR_FACTORS, run_why_eval

    _prepare_data(args)
    factors = tuple(args.lr_factors or LR_FACTORS)
    if any(not 0 < f <= 1 for f in factors):
        raise ConfigError(f"--lr-factors must be in (0, 1], got {list(factors)}")
    args.seed = None
    base = _experiment(args, default_preset="lesson")
    if not args.tasks and not args.quick:
        base = base.with_changes(test_tasks=600)  # the published protocol, whatever the preset's default
    checks.output_folder(args.out, [f"why-eval-{base.dataset}-seed{seed}.{kind}" for seed in args.seeds
                                    for kind in ("png", "md", "json")])
    begin = time.perf_counter()
    records = []
    for seed in args.seeds:
        exp = base.with_changes(train={"seed": seed})
        res = run_why_eval(exp, tuple(CONDITIONS), factors, remedies=not args.no_remedies,
                           progress=not args.no_progress, cache=not args.no_cache)
        _report(res, Path(args.out), f"why-eval-{exp.dataset}-seed{seed}", [], time.perf_counter() - begin)
        print("paired differences at the meta-training learning rate:")
        for diff, question in res.comparisons(1.0):
            print(f"  {question}\n    {diff}")
        print(res.divergence_table())
        print(res.claims_table())
        if exp.test_tasks > NOTEBOOK_TASKS:
            print(res.claims_table(n_tasks=NOTEBOOK_TASKS))
        print()
        records.append(res)
    if len(records) > 1:
        from mamlkit.experiments import across_seeds

        print(across_seeds(records, title=f"why-eval on {base.dataset}, {base.test_tasks} tasks per seed, "
                                          f"meta-training seeds {', '.join(map(str, args.seeds))}"))
    return 0


def _report(res, out: Path, stem: str, timings: list[str], wall: float) -> None:
    """Print a results table and its timings; write its chart, Markdown table and JSON record to ``out``."""
    from mamlkit.lessons.plots import results_chart

    out.mkdir(parents=True, exist_ok=True)
    table = res.table()
    print(table)
    for line in timings:
        print(line)
    print(f"meta-test: {res.test_seconds:.0f} s; total wall time {wall:.0f} s")
    results_chart(res, out / f"{stem}.png")
    write_text(out / f"{stem}.md", table.to_markdown() + "\n")
    res.save_json(out / f"{stem}.json")
    print(f"wrote {out / (stem + '.png')}, {stem}.md and {stem}.json")


def train_command(args: argparse.Namespace) -> int:
    from mamlkit.experiments import get_meta_trained, preset
    from mamlkit.experiments.cache import cached_path, find_cached, shipped_dir

    _prepare_data(args)
    changes = _data_changes(args)
    train = {option: getattr(args, option) for option in ("inner_rates", "adapt") if getattr(args, option)}
    if train:
        changes["train"] = train
    base = preset(args.preset, **changes)
    data = base.load_data()
    model = {"downsample": args.downsample} if args.downsample else {}
    for norm in args.norms:
        exp = base.with_changes(model={"norm": norm, **model})
        for training in args.trainings:
            config = exp.training_config(data, training)
            found = find_cached(config)
            path = found or cached_path(config)
            status = ("meta-training now" if found is None
                      else "shipped with the collection" if found.parent == shipped_dir() else "found in the cache")
            extra = "".join(f"/{option}={value}" for option, value in {**train, **model}.items())
            print(f"{args.preset}/{exp.dataset}/{exp.n_way}-way/{norm}/{training}{extra}: {status} ({path})",
                  flush=True)
            trained = get_meta_trained(exp, training, data, progress=not args.no_progress)
            last = trained.history.accuracy[-10:]
            when = "meta-trained" if found is None else "stored after meta-training"
            print(f"  {when} in {trained.history.seconds:.0f} s; "
                  f"query accuracy {100 * sum(last) / len(last):.1f}% over the last {len(last)} iterations")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from mamlkit.your_code.diagnosis import placement_report
    from mamlkit.your_code.entry import load_entry

    entry = load_entry(args.entry, args.checkpoint)
    steps = args.inner_steps if args.inner_steps is not None else entry.inner_steps
    lr = args.inner_lr if args.inner_lr is not None else entry.inner_lr
    if steps is None or lr is None:
        raise ConfigError(f"{args.entry}: say how your model adapts: set INNER_STEPS and INNER_LR in the entry file, "
                          "or pass --inner-steps and --inner-lr")
    if args.out:  # checked before the work, so that a run's results are never lost to a folder that cannot hold them
        checks.output_folder(args.out, ["placement_report.md", "placement_report.json"])
    begin = time.perf_counter()
    report = placement_report(entry.model, entry.episodes, inner_steps=steps, inner_lr=lr, n_tasks=args.tasks,
                              estimate_on=entry.estimate_episodes, backend=args.backend,
                              progress=not args.no_progress)
    print(report)
    print(f"{1000 * report.seconds_per_task:.0f} ms per task for all placements; "
          f"total wall time {time.perf_counter() - begin:.0f} s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report.save_markdown(out / "placement_report.md")
        report.save_json(out / "placement_report.json")
        print(f"wrote {out / 'placement_report.md'} and placement_report.json")
    return 0


def _check_environment() -> None:
    """The environment variables the package reads, checked before any work (one line each where wrong)."""
    for variable in ("MAMLKIT_THREADS", "MAMLKIT_LANES", "MAMLKIT_TASK_THREADS"):
        checks.env_whole_number(variable, 1)
    checks.env_device("MAMLKIT_DEVICE")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 with a one-line error for a bad input, 130 after Ctrl-C."""
    try:
        return _main(argv)
    except (DataError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check_environment()
    threads = checks.env_whole_number("MAMLKIT_THREADS", 1)
    import torch

    if threads:
        torch.set_num_threads(threads)
    # In one process, tasks side by side at one torch thread each: the numbers of one thread, as in the lanes.
    os.environ.setdefault("MAMLKIT_TASK_THREADS", str(torch.get_num_threads()))
    if args.command == "describe":
        print(describe_placements())
        print("normalisations:")
        for name, text in NORMS.items():
            print(f"  {name:<26} {text}")
        return 0
    if args.command == "train":
        return train_command(args)
    if args.command == "norms":
        return norms_command(args)
    if args.command == "why-eval":
        return why_eval_command(args)
    if args.command == "report":
        return report_command(args)
    if args.command == "download":
        return download_command(args)
    return run_placements_command(args)
