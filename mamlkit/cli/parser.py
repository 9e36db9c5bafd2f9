"""The command line's arguments: ``build_parser`` and one function per sub-command (``mamlkit.cli`` runs them)."""

from __future__ import annotations

import argparse
import math

from mamlkit.experiments import DEFAULT_NORM_METHODS, NORM_METHODS
from mamlkit.models import DOWNSAMPLES
from mamlkit.norms import NORMS
from mamlkit.placements import PLACEMENTS, TRAIN_PLACEMENTS
from mamlkit.rates import ADAPTS, INNER_RATES


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive = _whole_number(1)
_seed = _whole_number(0)


def _finite(text: str) -> float:
    """A finite number (NaN and infinity refused here; the range is checked where the option is used)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _add_experiment_arguments(parser: argparse.ArgumentParser, default_preset: str) -> None:
    """The settings every measuring command shares: data, preset, task shape and counts."""
    parser.add_argument("--dataset", default="glyphs", choices=["glyphs", "omniglot"],
                        help="glyphs: offline procedural default; omniglot: real data from --data-dir")
    parser.add_argument("--data-dir", help="Omniglot folder (with images_background/ ... or the .zip files)")
    parser.add_argument("--download", action="store_true",
                        help="with --dataset omniglot: fetch the official archives into --data-dir (default "
                        "data/omniglot) first, md5-checked; nothing is fetched that is already there")
    parser.add_argument("--quick", action="store_true", help="small configuration for tests (--preset quick)")
    parser.add_argument("--preset", choices=["quick", "lesson", "full"], default=None,
                        help=f"named configuration (default: {default_preset})")
    parser.add_argument("--iterations", type=_positive, help="meta-training iterations")
    parser.add_argument("--tasks", type=_positive, help="meta-test tasks (default 600)")
    parser.add_argument("--n-way", type=_positive, help="classes per task (default 5)")
    parser.add_argument("--k-shot", type=_positive, help="support examples per class (default 1)")
    parser.add_argument("--n-query", type=_positive, help="query examples per class (default 5)")


def _add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """One meta-training seed, or several with a table across them."""
    parser.add_argument("--seed", type=_seed, help="meta-training seed (weights and tasks)")
    parser.add_argument("--seeds", type=_seed, nargs="+",
                        help="several meta-training seeds: one table per seed, then one across seeds "
                        "(mean ± t interval)")


def _add_lanes_argument(parser: argparse.ArgumentParser) -> None:
    """How many worker processes share the work (results do not depend on it)."""
    parser.add_argument("--lanes", type=_positive, default=None,
                        help="worker processes with one torch thread each for meta-training and meta-test "
                        "(default: $MAMLKIT_LANES, else the usable cores, at most 2); the results equal one "
                        "process at one thread")


def _add_inner_loop_arguments(parser: argparse.ArgumentParser) -> None:
    """The inner-loop remedies of the deep dive inner_loop_remedies: learned rates (MAML++'s LSLR) and ANIL's
    head-only adaptation."""
    parser.add_argument("--inner-rates", choices=list(INNER_RATES), default=None,
                        help="fixed (MAML, default) or learned per layer and step (MAML++'s LSLR)")
    parser.add_argument("--adapt", choices=list(ADAPTS), default=None,
                        help="which weights the inner loop adapts: all (MAML, default) or head (ANIL)")


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a measuring command writes, and whether it may use the model cache and show progress bars."""
    parser.add_argument("--out", default="results", help="folder for the charts, tables and JSON (default: results/)")
    parser.add_argument("--no-cache", action="store_true", help="always retrain; do not read or write the cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _placements_parser(sub: argparse._SubParsersAction) -> None:
    """The arguments of ``python -m mamlkit placements``."""
    p = sub.add_parser(
        "placements",
        help="meta-train (or load from the cache) and print the placement table with 95%% intervals",
        description="Meta-train MAML (or load the model from the cache) under each meta-training placement, "
        "meta-test every placement on the same tasks, print the table with 95% intervals and write a chart.",
        epilog=describe_placements(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_experiment_arguments(p, "full")
    p.add_argument("--norm", choices=list(NORMS), help="normalisation layer (default bn; bn_per_step: MAML++'s)")
    p.add_argument("--hidden", type=_positive, default=None,
                   help="channels per conv block (default 32; 64 in the papers, about 2x slower here)")
    p.add_argument("--downsample", choices=list(DOWNSAMPLES), default=None,
                   help="pool (default: 2x2 max-pool after each block) or stride (stride-2 convolutions, no "
                   "pooling: Finn et al.'s Omniglot network)")
    p.add_argument("--first-order", action="store_true",
                   help="first-order MAML (no gradient through the inner loop's gradients)")
    p.add_argument("--dropout", type=_finite, default=None,
                   help="Dropout probability before the classifier (default 0: no Dropout)")
    p.add_argument("--dropout-off", action="store_true",
                   help="at meta-test, Dropout drops nothing in every placement: train-mode placements become "
                   "'BatchNorm in train mode, Dropout off'")
    _add_inner_loop_arguments(p)
    p.add_argument("--test-steps", type=_positive, default=None, help="inner steps at meta-test (default 10)")
    p.add_argument("--test-lr-scale", type=_finite, default=None,
                   help="meta-test inner learning rate as a multiple of meta-training's (learned rates too; default 1)")
    _add_seed_arguments(p)
    _add_lanes_argument(p)
    p.add_argument("--trainings", nargs="+", choices=list(TRAIN_PLACEMENTS), default=list(TRAIN_PLACEMENTS),
                   help="meta-training placements (columns)")
    p.add_argument("--placements", nargs="+", choices=list(PLACEMENTS), default=list(PLACEMENTS),
                   help="meta-test placements (rows)")
    _add_output_arguments(p)


def _train_parser(sub: argparse._SubParsersAction) -> None:
    """The arguments of ``python -m mamlkit train``."""
    p = sub.add_parser(
        "train",
        help="meta-train (or find in the cache) the models of a preset, e.g. before a class or a notebook run",
        description="Meta-train the models a preset uses and store them in the cache, so that notebooks and "
        "later runs load them instead of training.",
    )
    p.add_argument("--preset", choices=["quick", "lesson", "full"], default="lesson",
                   help="configuration (default: lesson, what the notebooks use)")
    p.add_argument("--dataset", default="glyphs", choices=["glyphs", "omniglot"])
    p.add_argument("--data-dir", help="Omniglot folder")
    p.add_argument("--download", action="store_true", help="fetch the official Omniglot archives first")
    p.add_argument("--trainings", nargs="+", choices=list(TRAIN_PLACEMENTS), default=list(TRAIN_PLACEMENTS),
                   help="meta-training placements")
    _add_inner_loop_arguments(p)
    p.add_argument("--norms", nargs="+", choices=list(NORMS), default=["bn"],
                   help="normalisation layers: one model per layer and placement (default: bn)")
    p.add_argument("--downsample", choices=list(DOWNSAMPLES), default=None,
                   help="pool (default) or stride (stride-2 convolutions, no pooling)")
    p.add_argument("--n-way", type=_positive, help="classes per task (default 5)")
    p.add_argument("--n-query", type=_positive, help="query examples per class (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _norms_parser(sub: argparse._SubParsersAction) -> None:
    """The arguments of ``python -m mamlkit norms``."""
    p = sub.add_parser(
        "norms",
        help="meta-train one model per normalisation and print the normalisation x query-protocol table",
        description="Meta-train (or load from the cache) one model per normalisation layer and meta-test each "
        "method with the query presented as a whole batch, one example at a time and one class at a time, "
        "on the same tasks; print the table with 95% intervals and write a chart, Markdown and JSON.",
    )
    _add_experiment_arguments(p, "full")
    _add_seed_arguments(p)
    _add_lanes_argument(p)
    p.add_argument("--methods", nargs="+", choices=list(NORM_METHODS), default=list(DEFAULT_NORM_METHODS),
                   help="normalisation methods (rows; tasknorm_i_authors only when named)")
    _add_output_arguments(p)


def _why_eval_parser(sub: argparse._SubParsersAction) -> None:
    """The arguments of ``python -m mamlkit why-eval``."""
    p = sub.add_parser(
        "why-eval",
        help="separate the mechanisms behind eval mode's collapse at meta-test (statistics x step size)",
        description="Meta-test one meta-trained BatchNorm model (the standard placement) on the same tasks under "
        "conditions that separate why eval mode fails: which statistics eval mode reads (0/1, collected, "
        "population, the task's own at the initial weights, re-estimated before every step), train mode with "
        "and without the gradient through the batch statistics, and how the query is normalised, each at the "
        "meta-training inner learning rate and smaller ones. Prints the table, the paired comparisons and the "
        "explanation's claims with their margins; writes a chart, Markdown and JSON per seed.",
        epilog=_describe_conditions(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_experiment_arguments(p, "lesson, the model the notebooks load")
    p.add_argument("--seeds", type=_seed, nargs="+", default=[0],
                   help="meta-training seeds: one model and one table per seed (default: 0)")
    p.add_argument("--lr-factors", type=_finite, nargs="+", default=None,
                   help="inner learning rates as fractions of the meta-training one (default: 1 0.25 0.1 0.025)")
    p.add_argument("--no-remedies", action="store_true",
                   help="skip the model meta-trained with the query loss in eval mode")
    _add_output_arguments(p)


def _report_parser(sub: argparse._SubParsersAction) -> None:
    """The arguments of ``python -m mamlkit report``."""
    p = sub.add_parser(
        "report",
        help="meta-test YOUR model under every placement that applies: table, paired differences, verdict",
        description="Load your model and episodes from an entry file and meta-test every placement that applies, "
        "with the statistics your model holds, untouched ones and re-estimated ones, on the same tasks; print the "
        "table with 95% intervals and a verdict in plain words (mamlkit.your_code.diagnosis.placement_report).",
        epilog=ENTRY_FILE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--entry", required=True, help="a Python file defining build_model() and episodes() (below)")
    p.add_argument("--checkpoint", help="a state dict to load into build_model()'s network (overrides CHECKPOINT)")
    p.add_argument("--tasks", type=_positive, default=100, help="episodes to measure (default 100)")
    p.add_argument("--inner-steps", type=int, help="inner steps (overrides INNER_STEPS)")
    p.add_argument("--inner-lr", type=_finite, help="inner learning rate (overrides INNER_LR)")
    p.add_argument("--backend", choices=["higher", "torch.func"], default="higher")
    p.add_argument("--out", help="also write the table as Markdown and the report as JSON into this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _download_parser(sub: argparse._SubParsersAction) -> None:
    """The arguments of ``python -m mamlkit download``."""
    p = sub.add_parser(
        "download",
        help="fetch the official Omniglot archives (md5-checked, never half-written) where the network allows",
        description="Download the official Omniglot archives from github.com/brendenlake/omniglot into a folder, "
        "check each md5, and move each into place only when it is whole. Archives already there with the right "
        "md5 are kept. A failed download leaves nothing behind: run the same command again to restart it.",
    )
    p.add_argument("--data-dir", help="target folder (default: $MAMLKIT_OMNIGLOT, else data/omniglot)")
    p.add_argument("--sets", nargs="+", default=["images_background", "images_evaluation", "all_runs"],
                   help="archives to fetch (default: the full background and evaluation sets and the 20 runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: one sub-command per experiment (``python -m mamlkit --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m mamlkit",
        description="Where .train() and .eval() belong in MAML, measured.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _placements_parser(sub)
    _train_parser(sub)
    _norms_parser(sub)
    _why_eval_parser(sub)
    _report_parser(sub)
    _download_parser(sub)
    sub.add_parser("describe", help="list the placements and normalisations with one line each")
    return parser


#: What ``python -m mamlkit report --help`` says an entry file holds.
ENTRY_FILE_HELP = """the entry file (plain Python, run once):
  def build_model():     required: your network, built as before training (an nn.Module)
  CHECKPOINT = "m.pt"    optional: a state dict saved with torch.save(model.state_dict(), ...),
                         relative to the entry file; --checkpoint overrides it
  def episodes():        required: your meta-test episodes: a mamlkit sampler, a list, or any iterable
                         (a DataLoader too) of (support_x, support_y, query_x, query_y) tuples, dicts
                         with those keys, or mamlkit Tasks
  INNER_STEPS = 10       your adaptation: plain SGD steps on the support set's cross-entropy
  INNER_LR = 0.4         (--inner-steps and --inner-lr override them)
  def estimate_episodes():  optional: episodes whose support sets re-estimate the running statistics
                         (default: the support sets of the measured episodes)
"""


def _describe_conditions() -> str:
    from mamlkit.lessons.why_eval import CONDITIONS

    return "conditions:\n" + "\n".join(f"  {c.name:<26} {c.description}" for c in CONDITIONS.values())


def describe_placements() -> str:
    """Every placement with its one-line description, for ``--help`` and the README."""
    lines = ["meta-training placements:"]
    lines += [f"  {p.name:<26} {p.description}" for p in TRAIN_PLACEMENTS.values()]
    lines.append("meta-test placements:")
    lines += [f"  {p.name:<26} {p.description}" for p in PLACEMENTS.values()]
    return "\n".join(lines)
