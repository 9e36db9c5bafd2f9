"""Normalisation x query protocol: which normalisations survive non-transductive meta-test.

Each *method* is a normalisation layer plus the way it is used at meta-test (for BatchNorm:
running statistics in eval mode, batch statistics in train mode, or Reptile's protocol). Each
*protocol* is how the query set reaches the model: as one batch, one example at a time, or one
class at a time. ``run_normalisations`` meta-trains (or loads from the cache) one model per
normalisation and meta-tests every method under every protocol on the same tasks.

Transductive BatchNorm is the best with a whole, balanced query batch and collapses when the
query arrives one at a time; methods whose statistics come from the support set (MetaBN,
TaskNorm-I) or from each example alone (instance, layer, group norm) give the same answer under
every protocol, by construction, and the table shows at what accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mamlkit.adapt import MetaTrained
from mamlkit.data import FewShotDataset
from mamlkit.errors import ConfigError, check_choice
from mamlkit.evaluate import EvalResult, meta_test
from mamlkit.experiment import Experiment, ResultsRecord, get_meta_trained
from mamlkit.placements import PLACEMENTS, PRESENTATIONS, Placement, custom_placement
from mamlkit.table import Table

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
        NormMethod("instance", "instance", "train", "untouched", False,
                   "instance norm: every example normalised by its own statistics"),
        NormMethod("layer", "layer", "train", "untouched", False, "layer norm (GroupNorm with one group)"),
        NormMethod("group", "group", "train", "untouched", False, "group norm (4 groups)"),
        NormMethod("none", "none", "train", "untouched", False, "no normalisation"),
    ]
}


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

    def chart(self, path: str | Path | None = None):  # -> matplotlib Figure
        from mamlkit.plots import protocol_chart

        return protocol_chart(self.results, PROTOCOLS, chance=1 / self.experiment.n_way, path=path)


def run_normalisations(
    exp: Experiment,
    methods: Iterable[str | NormMethod] = tuple(NORM_METHODS),
    protocols: Iterable[str] = tuple(PROTOCOLS),
    progress: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
    data: FewShotDataset | None = None,
) -> NormResults:
    """Meta-train (or load) one model per normalisation and meta-test each method under each protocol.

    Every model is meta-trained with ``exp`` (only the normalisation layer changes) under the
    standard placement (train mode throughout). All methods and protocols use the same meta-test
    tasks, so differences can be compared task by task. ``data`` saves loading the dataset again;
    the models stay available in ``NormResults.trained`` (by normalisation layer).
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
                              exp.test_inner_steps, exp.train.inner_lr, progress=progress)
        test_seconds += sum(r.seconds for r in evaluated.values())
        for method in group:
            for protocol in protocols:
                result = evaluated[method.placement(protocol).name]
                results[method.name][protocol] = replace(result, name=f"{method.name} ({PROTOCOLS[protocol]})")
    return NormResults(exp, results, train_seconds, test_seconds, {m.name: m for m in chosen}, models)


__all__ = ["PROTOCOLS", "NormMethod", "NORM_METHODS", "get_norm_method", "NormResults", "run_normalisations"]
