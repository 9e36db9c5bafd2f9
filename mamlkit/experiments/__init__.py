"""The experiments behind the CLI and the notebooks: meta-train (or load from the cache), then meta-test.

``Experiment`` holds every setting and ``PRESETS`` names three (``quick``, ``lesson``, ``full``);
``get_meta_trained`` returns the meta-trained model for one meta-training placement (trained by
``meta_train`` the first time, then loaded from the cache). Every experiment's results are a
``ResultsRecord``: ``results[row][column]`` measured on the same tasks, with a table, a chart and a JSON
record; ``across_seeds`` makes one table of several meta-training seeds.

Two experiments live here (a third, ``mamlkit.lessons.why_eval``, in its own module):

- ``run_placements``: every meta-test placement on models meta-trained under each meta-training placement;
- ``run_normalisations``: normalisation x query protocol. Each *method* (``NORM_METHODS``) is a
  normalisation layer plus the way it is used at meta-test (for BatchNorm: running statistics in eval
  mode, batch statistics in train mode, or Reptile's protocol); each *protocol* is how the query set
  reaches the model (whole batch, one example at a time, one class at a time). Transductive BatchNorm is
  the best with a whole, balanced query batch and loses accuracy when the query arrives one at a time (how
  much depends on the network and the data: notebook 04, the deep dive does_it_hold);
  methods whose statistics come from the support set (MetaBN, TaskNorm-I) or from each example alone
  (instance, layer, group norm) give the same answer under every protocol, by construction, and the
  table shows at what accuracy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from mamlkit.adapt import History, MetaTrained, TrainConfig, meta_train
from mamlkit.data import FewShotDataset, load_dataset
from mamlkit.errors import ConfigError, check_choice
from mamlkit.evaluate import EvalResult, meta_test
from mamlkit.experiments.cache import cached_training, find_cached, tensor_fingerprint
from mamlkit.experiments.intervals import t_interval
from mamlkit.models import ModelConfig, build_model
from mamlkit.placements import (
    PLACEMENTS,
    PRESENTATIONS,
    TRAIN_PLACEMENTS,
    Placement,
    custom_placement,
    get_placement,
    get_train_placement,
)
from mamlkit.plumbing.files import write_json
from mamlkit.plumbing.lanes import run_in_lanes
from mamlkit.plumbing.machine import signature as machine_signature
from mamlkit.rates import InnerRates
from mamlkit.table import Table
from mamlkit.tasks import TaskSampler


@dataclass(frozen=True)
class Experiment:
    """Every setting of a placement experiment (5-way 1-shot on glyphs by default).

    Attributes:
        dataset: ``"glyphs"`` or ``"omniglot"``.
        data_dir: the Omniglot folder.
        n_way, k_shot, n_query: the task shape (query examples per class), for training and test.
        rotations: 90-degree rotation class augmentation at meta-training.
        model: the network (its ``n_out`` is set to ``n_way``).
        train: meta-training settings (its ``placement`` is chosen per run).
        test_tasks: meta-test tasks per placement.
        test_inner_steps: support steps at meta-test.
        test_lr_scale: the meta-test inner learning rate as a multiple of meta-training's (of every entry of a
            learned rate table too): 0.1 tests notebook 03's finding that eval mode needs a smaller step.
        test_dropout_off: at meta-test every Dropout layer drops nothing in every placement, so train-mode
            placements keep BatchNorm's batch statistics with Dropout off (deep dive does_it_hold); in the record
            only when set.
        test_seed: seed of the meta-test task stream.
    """

    dataset: str = "glyphs"
    data_dir: str | None = None
    n_way: int = 5
    k_shot: int = 1
    n_query: int = 5
    rotations: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test_tasks: int = 600
    test_inner_steps: int = 10
    test_seed: int = 1
    test_lr_scale: float = 1.0
    test_dropout_off: bool = False

    def with_changes(self, **changes: object) -> Experiment:
        """A copy with some settings changed (``train=`` / ``model=`` changes merge field by field)."""
        train = changes.pop("train", None)
        model = changes.pop("model", None)
        exp = replace(self, **changes)
        if isinstance(train, dict):
            exp = replace(exp, train=replace(exp.train, **train))
        elif train is not None:
            exp = replace(exp, train=train)
        if isinstance(model, dict):
            exp = replace(exp, model=replace(exp.model, **model))
        elif model is not None:
            exp = replace(exp, model=model)
        return exp

    def as_dict(self) -> dict:
        d = asdict(self)
        if not self.test_dropout_off:
            del d["test_dropout_off"]  # the default; left out so that records keep their form
        return d

    def load_data(self) -> FewShotDataset:
        """The dataset (glyphs are generated; Omniglot is read from ``data_dir``)."""
        return load_dataset(self.dataset, self.data_dir)

    def model_config(self) -> ModelConfig:
        """The network: ``n_out`` is the number of ways; a per-step norm keeps one set per meta-training step."""
        return replace(self.model, n_out=self.n_way, norm_steps=self.train.inner_steps)

    def train_sampler(self, data: FewShotDataset) -> TaskSampler:
        return TaskSampler(data["train"], self.n_way, self.k_shot, self.n_query, self.train.seed, self.rotations)

    def test_sampler(self, data: FewShotDataset, split: str = "test") -> TaskSampler:
        return TaskSampler(data[split], self.n_way, self.k_shot, self.n_query, self.test_seed)

    def training_config(self, data: FewShotDataset, placement: str) -> dict:
        """The full configuration a meta-trained model is cached under."""
        train_split = data["train"]
        return {
            "dataset": {"name": self.dataset, "train_data": tensor_fingerprint(train_split.images)},
            "tasks": {"n_way": self.n_way, "k_shot": self.k_shot, "n_query": self.n_query,
                      "rotations": self.rotations},
            "model": self.model_config().as_dict(),
            "train": replace(self.train, placement=placement).as_dict(),
        }


PRESETS: dict[str, Experiment] = {
    # For tests and a first look: under a minute of meta-training on 2 CPU cores; the central
    # result (transductive far above eval mode) is already clear. The outer learning rate is 3x
    # the papers' so that such short runs learn visibly.
    "quick": Experiment(train=TrainConfig(iterations=50, outer_lr=3e-3), test_tasks=100),
    # What the notebooks use: about a minute per meta-training placement, trained once and cached;
    # notebooks choose how many meta-test tasks they can afford.
    "lesson": Experiment(train=TrainConfig(iterations=100, outer_lr=3e-3), test_tasks=100),
    # The CLI default: 300 meta-iterations at the papers' Adam 1e-3, and the published protocol of
    # 600 meta-test tasks.
    "full": Experiment(train=TrainConfig(iterations=300), test_tasks=600),
}


def preset(name: str, **changes: object) -> Experiment:
    """A named experiment configuration (``quick``, ``lesson``, ``full``), optionally changed."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name].with_changes(**changes)


def get_meta_trained(
    exp: Experiment,
    placement: str = "standard",
    data: FewShotDataset | None = None,
    progress: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
) -> MetaTrained:
    """The model meta-trained under ``exp`` with the given meta-training placement.

    Loaded from the cache (or the shipped lesson models, ``mamlkit.experiments.cache.find_cached``) when a model with
    exactly this configuration was trained before; otherwise meta-trained now (and saved, if ``cache``).
    """
    get_train_placement(placement)
    data = data or exp.load_data()
    config = exp.training_config(data, placement)
    train = replace(exp.train, placement=placement)
    return cached_training(build_model(exp.model_config(), seed=exp.train.seed), config,
                           lambda model: meta_train(model, exp.train_sampler(data), train, progress), cache_dir,
                           cache=cache, rebuild=lambda: build_model(exp.model_config(), seed=exp.train.seed))


def get_meta_trained_many(
    exp: Experiment,
    placements: Sequence[str],
    data: FewShotDataset,
    progress: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
    lanes: int | None = None,
) -> dict[str, MetaTrained]:
    """``get_meta_trained`` for several meta-training placements; the ones not in the cache are meta-trained
    side by side in ``lanes`` worker processes (one torch thread each), the others loaded here."""
    missing = [p for p in placements if not (cache and find_cached(exp.training_config(data, p), cache_dir))]
    trained: dict[str, MetaTrained] = {}
    if lanes and lanes > 1 and len(missing) > 1:
        done = run_in_lanes(_training_lane, (exp, data, cache, cache_dir), _train_in_lane, missing, lanes)
        for placement, (state, collected, history, config, rates_state) in zip(missing, done):
            # copied into memory of this process: what a worker sends back lives in memory shared with it
            model = build_model(exp.model_config(), seed=exp.train.seed)
            model.load_state_dict(state)
            collected = {k: v.clone() for k, v in collected.items()}
            rates = exp.train.rates(model)
            if rates is not None:
                rates.load_state_dict({k: v.clone() for k, v in rates_state.items()})
            trained[placement] = MetaTrained(model, collected, History(**history), config, rates, machine_signature())
    return {p: trained.get(p) or get_meta_trained(exp, p, data, progress, cache, cache_dir) for p in placements}


def _training_lane(*state: object) -> tuple:
    return state


def _train_in_lane(state: tuple, placement: str) -> tuple:
    exp, data, cache, cache_dir = state
    trained = get_meta_trained(exp, placement, data, False, cache, cache_dir)
    rates = None if trained.inner_rates is None else trained.inner_rates.state_dict()
    return trained.model.state_dict(), trained.collected_stats, trained.history.as_dict(), trained.config, rates


@dataclass
class ResultsRecord:
    """What every experiment's results hold: the experiment, ``results[row][column]`` measured on the same
    tasks, and the time it took; saved as one JSON record (``results_to_dict``)."""

    experiment: Experiment
    results: dict[str, dict[str, EvalResult]]
    train_seconds: dict[str, float]
    test_seconds: float

    def to_dict(self) -> dict:
        return results_to_dict(self.experiment, self.results, self.train_seconds, self.test_seconds)

    def save_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` to ``path`` (through a temporary file, so never half-written)."""
        return write_json(path, self.to_dict())


@dataclass
class PlacementResults(ResultsRecord):
    """Meta-test results of every placement on models meta-trained under each training placement."""

    trained: dict[str, MetaTrained] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: tuple[str, str]) -> EvalResult:
        """``results["standard", "transductive"]``."""
        training, placement = key
        return self.results[training][placement]

    def table(self) -> Table:
        exp = self.experiment
        title = (
            f"MAML on {exp.dataset}, {exp.n_way}-way {exp.k_shot}-shot, {exp.test_tasks} meta-test tasks "
            f"({exp.train.iterations} meta-iterations)"
        )
        if exp.model.dropout:
            title += f"; Dropout p={exp.model.dropout:g}" + (", off at meta-test" if exp.test_dropout_off else "")
        return placement_table(self.results, title=title, n_way=exp.n_way)


def across_seeds(records: list[ResultsRecord], title: str = "", transpose: bool = False) -> Table:
    """One table for the same experiment meta-trained with several seeds.

    Each cell is the mean over seeds of the per-seed mean accuracies, ± a 95% t interval over those
    seed means (``mamlkit.experiments.intervals.t_interval``): it includes the seed-to-seed variance of meta-training
    as well as each seed's sampling of meta-test tasks, which a single model's interval does not. The
    per-seed means follow in brackets. Rows are the first key of ``results`` (``transpose``: the second,
    as in the placement table, whose rows are meta-test placements).
    """
    if len(records) < 2:
        raise ConfigError("a table across seeds needs at least two meta-training seeds")
    cells: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for outer, by in record.results.items():
            for inner, result in by.items():
                row, col = (inner, outer) if transpose else (outer, inner)
                cells.setdefault(row, {}).setdefault(col, []).append(100 * result.mean)
    columns = list(dict.fromkeys(col for by in cells.values() for col in by))
    seeds = [r.experiment.train.seed for r in records]
    table = Table(["row"] + [f"{c} (mean over seeds ± 95% t interval; per seed)" for c in columns],
                  title=title or f"{len(records)} meta-training seeds ({', '.join(map(str, seeds))})",
                  note="accuracy %; the interval is over the seed means, so it covers meta-training seeds too")
    for row, by in cells.items():
        shown = []
        for col in columns:
            means = by.get(col, [])
            if len(means) < 2:
                shown.append("-")
                continue
            mean, half = t_interval(means)
            shown.append(f"{mean:.1f} ± {half:.1f} ({' / '.join(f'{m:.1f}' for m in means)})")
        table.add_row(row, *shown)
    return table


def results_to_dict(exp: Experiment, results: dict[str, dict[str, EvalResult]], train_seconds: dict[str, float],
                    test_seconds: float) -> dict:
    """A JSON-ready record of a two-level table of results, per-task values included, and the machine that
    computed them (``mamlkit.plumbing.machine.signature``: the numbers are reproducible bit for bit only there)."""
    return {
        "experiment": exp.as_dict(),
        "machine": machine_signature(),
        "train_seconds": train_seconds,
        "test_seconds": test_seconds,
        "results": {
            row: {col: {"mean": r.mean, "ci95": r.ci95, "n": r.n, "values": r.values.tolist()} for col, r in by.items()}
            for row, by in results.items()
        },
    }


def run_placements(
    exp: Experiment,
    trainings: Iterable[str] = tuple(TRAIN_PLACEMENTS),
    placements: Iterable[str] = tuple(PLACEMENTS),
    progress: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
    lanes: int | None = None,
) -> PlacementResults:
    """Meta-train (or load) one model per training placement and meta-test every placement on it.

    ``lanes``: worker processes with one torch thread each (``mamlkit.plumbing.lanes``) for the meta-trainings the
    cache does not hold and for the meta-test tasks; the results equal one process at one thread.
    """
    trainings = [get_train_placement(t).name for t in trainings]
    placements = [get_placement(p).name for p in placements]
    data = exp.load_data()
    sampler = exp.test_sampler(data)
    results: dict[str, dict[str, EvalResult]] = {}
    train_seconds: dict[str, float] = {}
    trained_models = get_meta_trained_many(exp, trainings, data, progress, cache, cache_dir, lanes)
    for training, trained in trained_models.items():
        train_seconds[training] = trained.history.seconds
        rate = meta_test_rate(trained, exp)
        results[training] = meta_test(
            trained.model, sampler, list(placements), exp.test_tasks, exp.test_inner_steps, rate,
            collected_stats=trained.collected_stats, progress=progress, lanes=lanes, dropout_off=exp.test_dropout_off,
        )
    test_seconds = sum(r.seconds for by in results.values() for r in by.values())
    return PlacementResults(exp, results, train_seconds, test_seconds, trained_models)


def meta_test_rate(trained: MetaTrained, exp: Experiment) -> float | InnerRates:
    """The inner learning rate a meta-test of ``exp`` adapts with: the model's own rate table (learned, or ANIL's)
    or meta-training's fixed rate, times ``exp.test_lr_scale``."""
    if trained.inner_rates is None:
        return exp.train.inner_lr * exp.test_lr_scale
    if exp.test_lr_scale == 1.0:
        return trained.inner_rates
    scaled = copy.deepcopy(trained.inner_rates)
    with torch.no_grad():
        scaled.rates.mul_(exp.test_lr_scale)
    return scaled


# ------------------------------------------------------------------ normalisation x query protocol

#: How the query set is presented at meta-test, with the words tables use.
PROTOCOLS: dict[str, str] = {name: PRESENTATIONS[name] for name in ("batch", "one_at_a_time", "one_class_at_a_time")}


@dataclass(frozen=True)
class NormMethod:
    """A normalisation layer and how it is used at meta-test.

    Attributes:
        name: identifier (rows of the table).
        norm: the layer (``mamlkit.norms.NORMS``) the model is built and meta-trained with.
        mode: mode of the patched model at meta-test (adaptation and query).
        stats: ``"untouched"`` or ``"collected"`` running statistics (BatchNorm in eval mode).
        with_support: each query example is passed together with the support set (Reptile's
            protocol); the presentation of the query then makes no difference.
        description: one line for people.
    """

    name: str
    norm: str
    mode: str
    stats: str
    with_support: bool
    description: str

    def placement(self, protocol: str) -> Placement:
        """The meta-test placement that runs this method under ``protocol``."""
        check_choice("protocol", protocol, PROTOCOLS)
        if self.with_support:
            return PLACEMENTS["reptile_protocol"]
        return custom_placement(self.mode, self.mode, self.stats, protocol, name=f"{self.name}:{protocol}")


NORM_METHODS: dict[str, NormMethod] = {
    m.name: m
    for m in [
        NormMethod("conventional_bn", "bn", "eval", "collected", False,
                   "BatchNorm in eval mode with running statistics collected over meta-training tasks"),
        NormMethod("transductive_bn", "bn", "train", "untouched", False,
                   "BatchNorm in train mode: each presented batch normalised with its own statistics"),
        NormMethod("reptile_bn", "bn", "train", "untouched", True,
                   "BatchNorm in train mode, each query example normalised with the support set (Reptile)"),
        NormMethod("metabn", "metabn", "train", "untouched", False,
                   "MetaBN: support and query normalised with the support set's moments"),
        NormMethod("tasknorm_i", "tasknorm_i", "train", "untouched", False,
                   "TaskNorm-I: support moments blended with instance moments by a learned weight"),
        NormMethod("tasknorm_i_authors", "tasknorm_i_authors", "train", "untouched", False,
                   "TaskNorm-I as the authors' code: one blending weight per layer, unbiased variances"),
        NormMethod("instance", "instance", "train", "untouched", False,
                   "instance norm: every example normalised by its own statistics"),
        NormMethod("layer", "layer", "train", "untouched", False, "layer norm (GroupNorm with one group)"),
        NormMethod("group", "group", "train", "untouched", False, "group norm (4 groups)"),
        NormMethod("none", "none", "train", "untouched", False, "no normalisation"),
    ]
}


#: The methods a plain ``mamlkit norms`` runs: all but the authors' TaskNorm-I variant, which is run on request.
DEFAULT_NORM_METHODS: tuple[str, ...] = tuple(m for m in NORM_METHODS if m != "tasknorm_i_authors")


def get_norm_method(name: str | NormMethod) -> NormMethod:
    """The method with this name (a NormMethod is returned as it is)."""
    if isinstance(name, NormMethod):
        return name
    return NORM_METHODS[check_choice("normalisation method", name, NORM_METHODS)]


@dataclass
class NormResults(ResultsRecord):
    """Meta-test results of each normalisation method under each query protocol.

    ``results[method][protocol]`` is an EvalResult; all were measured on the same tasks.
    ``train_seconds[norm]`` is the meta-training time of the model with that layer (as recorded
    when it was trained, also when it now came from the cache).
    """

    methods: dict[str, NormMethod] = field(default_factory=dict)
    trained: dict[str, MetaTrained] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: tuple[str, str]) -> EvalResult:
        """``results["metabn", "one_at_a_time"]``."""
        method, protocol = key
        return self.results[method][protocol]

    def spread(self, method: str) -> float:
        """Largest minus smallest mean accuracy of a method across the protocols (0 = stable)."""
        means = [r.mean for r in self.results[method].values()]
        return max(means) - min(means)

    def table(self) -> Table:
        exp = self.experiment
        protocols = list(next(iter(self.results.values())))
        title = (
            f"Normalisation x query protocol: MAML on {exp.dataset}, {exp.n_way}-way {exp.k_shot}-shot, "
            f"{exp.test_tasks} meta-test tasks ({exp.train.iterations} meta-iterations)"
        )
        note = (
            "accuracy % over meta-test tasks, mean ± 95% interval; "
            f"chance is {100 / exp.n_way:.1f}%; training time per model in seconds"
        )
        table = Table(["method", "layer", *[PROTOCOLS[p] for p in protocols], "meta-training s"], title=title,
                      note=note)
        for name, by_protocol in self.results.items():
            method = self.methods.get(name) or NORM_METHODS[name]
            seconds = self.train_seconds.get(method.norm, float("nan"))
            table.add_row(name, method.norm, *[by_protocol[p].formatted() for p in protocols], f"{seconds:.0f}")
        return table


def run_normalisations(
    exp: Experiment,
    methods: Iterable[str | NormMethod] = DEFAULT_NORM_METHODS,
    protocols: Iterable[str] = tuple(PROTOCOLS),
    progress: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
    data: FewShotDataset | None = None,
    lanes: int | None = None,
) -> NormResults:
    """Meta-train (or load) one model per normalisation and meta-test each method under each protocol.

    Every model is meta-trained with ``exp`` (only the normalisation layer changes) under the
    standard placement (train mode throughout). All methods and protocols use the same meta-test
    tasks, so differences can be compared task by task. ``data`` saves loading the dataset again;
    the models stay available in ``NormResults.trained`` (by normalisation layer). ``lanes``: worker
    processes for the meta-test tasks (see ``run_placements``).
    """
    chosen = [get_norm_method(m) for m in methods]
    protocols = [check_choice("protocol", p, PROTOCOLS) for p in protocols]
    if not chosen or not protocols:
        raise ConfigError("give at least one normalisation method and one protocol")
    data = data or exp.load_data()
    sampler = exp.test_sampler(data)
    by_norm: dict[str, list[NormMethod]] = {}
    for method in chosen:
        by_norm.setdefault(method.norm, []).append(method)
    results: dict[str, dict[str, EvalResult]] = {m.name: {} for m in chosen}
    train_seconds: dict[str, float] = {}
    models: dict[str, MetaTrained] = {}
    test_seconds = 0.0
    for norm, group in by_norm.items():
        trained = get_meta_trained(exp.with_changes(model={"norm": norm}), "standard", data, progress, cache,
                                   cache_dir)
        train_seconds[norm] = trained.history.seconds
        models[norm] = trained
        placements: dict[str, Placement] = {}
        for method in group:
            for protocol in protocols:
                p = method.placement(protocol)
                placements[p.name] = p
        evaluated = meta_test(trained, sampler, list(placements.values()), exp.test_tasks,
                              exp.test_inner_steps, exp.train.inner_lr, progress=progress, lanes=lanes)
        test_seconds += sum(r.seconds for r in evaluated.values())
        for method in group:
            for protocol in protocols:
                result = evaluated[method.placement(protocol).name]
                results[method.name][protocol] = replace(result, name=f"{method.name} ({PROTOCOLS[protocol]})")
    return NormResults(exp, results, train_seconds, test_seconds, {m.name: m for m in chosen}, models)


def placement_table(results: dict[str, dict[str, EvalResult]], title: str = "", n_way: int | None = None) -> Table:
    """Rows: meta-test placements; columns: meta-training placements; cells: mean ± 95% interval."""
    trainings = list(results)
    names: list[str] = []
    for by_placement in results.values():
        names += [n for n in by_placement if n not in names]
    columns = ["meta-test placement", "adapt/query, stats, query"] + [f"trained: {t}" for t in trainings]
    note = "accuracy % over meta-test tasks, mean ± 95% interval (1.96 std / sqrt(N))"
    if n_way:
        note += f"; chance is {100 / n_way:.1f}%"
    table = Table(columns, title=title, note=note)
    for name in names:
        label = PLACEMENTS[name].label if name in PLACEMENTS else name
        cells = [results[t][name].formatted() if name in results[t] else "-" for t in trainings]
        table.add_row(name, label, *cells)
    return table
