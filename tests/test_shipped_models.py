"""The lesson models that ship with the collection (``data/models``): each is what mamlkit trains.

A shipped file is a cache file named by the key of its full configuration (data fingerprint, task shape,
model, training settings), and it records the machine that trained it (``mamlkit.plumbing.machine.signature``).
These tests check that every name matches the configuration stored inside, that every model ``make models``
needs for glyphs is shipped, and retrain one of them here:

- on the machine that trained it (same torch build, CPU capability, kernels and arithmetic), the retrained
  model must be the shipped file **bit for bit**: a code change that alters training is caught there;
- on any other machine, bits cannot match (a long second-order optimisation drifts by rounding, then by
  chaos), so the retrained model must be **equivalent** within stated margins (``equivalence_problems``).

``make test`` also runs this file with the math libraries forced onto other kernels (``make test-kernels``),
so the developers' machine takes the second path too, as a user's would.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import seed_spread

import mamlkit as mk
from mamlkit.adapt import MetaTrained, meta_train
from mamlkit.evaluate import paired_difference
from mamlkit.experiments import preset
from mamlkit.experiments.cache import config_key, find_cached, load_trained, shipped_dir
from mamlkit.plumbing.machine import differences, same_machine, signature

SHIPPED = sorted(shipped_dir().glob("maml-*.pt"))

#: What ``make models`` trains on glyphs (the Makefile's models-glyphs target): (norm, training changes, meta-training
#: placement); the last three are the inner-loop remedies of the deep dive `inner_loop_remedies`.
GLYPH_MODELS = [("bn", {}, "standard"), ("bn", {}, "query_eval"), ("metabn", {}, "standard"),
                ("tasknorm_i", {}, "standard"), ("bn_per_step", {}, "standard"),
                ("bn", {"inner_rates": "learned"}, "standard"), ("bn", {"adapt": "head"}, "standard")]

#: First meta-iterations whose losses must agree across machines, and by how much (absolute, nats). Before the
#: second Adam step every weight that matters has moved by the same amount everywhere (Adam's first step is
#: ``lr * sign(gradient)``), so these losses differ by rounding only. Measured on the developers' machine
#: (tools/forced_kernels.py's switches one at a time, a full retrain each): at most 3.9e-7 in these two
#: iterations (ATEN_CPU_CAPABILITY=default 2.4e-7 and 2.7e-7, ONEDNN_MAX_CPU_ISA=SSE41 1.5e-7 and 3.9e-7); the
#: third iteration differs by up to 2e-6, the fourth by 8e-3: from there the runs separate by chaos. A model
#: meta-trained with another seed differs from the first iteration on by far more (checked below).
AGREEING_ITERATIONS = 2
LOSS_BOUND = 1e-4

#: Meta-test tasks on which the shipped and the retrained model are compared, and the margin of that
#: comparison in standard deviations of the difference between two models' means over the same tasks.
COMPARED_TASKS = 100
STANDARD_DEVIATIONS = 4.0


@pytest.fixture
def shipped_on(monkeypatch):
    monkeypatch.setenv("MAMLKIT_SHIPPED", "1")          # conftest turns the shipped models off for other tests


def test_models_are_shipped_and_small():
    assert len(SHIPPED) >= len(GLYPH_MODELS)
    size = sum(p.stat().st_size for p in SHIPPED)
    assert size < 4_000_000
    page = shipped_dir().parents[1] / "docs" / "reproducibility.md"
    assert page.is_file(), "docs/reproducibility.md (which states the shipped models' count and size) is gone"
    assert f"(`data/models`, {len(SHIPPED)} files, {size / 1e6:.1f} MB)" in page.read_text(), (
        "docs/reproducibility.md states a stale count or size of the shipped models")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_file_is_named_by_the_fingerprint_of_its_configuration_and_names_its_machine(path):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = json.loads(payload["config"])
    assert path.name == f"maml-{config_key(config)}.pt"
    machine = json.loads(payload["machine"])
    assert {"cpu", "torch", "cpu_capability", "blas", "onednn", "arithmetic"} <= set(machine), path.name


@pytest.mark.parametrize("norm, train, placement", GLYPH_MODELS)
def test_every_glyph_lesson_model_is_shipped(shipped_on, norm, train, placement):
    """Found by its key, which holds the fingerprint of the generated glyph data: the data must come out the
    same on every machine (numpy's kernels included), or no shipped model is ever found."""
    exp = preset("lesson").with_changes(model={"norm": norm}, train=train)
    config = exp.training_config(exp.load_data(), placement)
    found = find_cached(config)
    assert found is not None and found.parent == shipped_dir(), (norm, train, placement)
    trained = load_trained(found, mk.build_model(exp.model_config(), seed=exp.train.seed), config)
    assert trained.history.accuracy                                  # what meta-training recorded came along


# --- retraining one shipped model ---------------------------------------------------------------------------


def _lesson(seed: int = 0, iterations: int | None = None):
    train = {"seed": seed} | ({"iterations": iterations} if iterations else {})
    return preset("lesson").with_changes(train=train)


def _load_shipped(placement: str = "standard") -> MetaTrained:
    exp = _lesson()
    config = exp.training_config(exp.load_data(), placement)
    return load_trained(find_cached(config), mk.build_model(exp.model_config(), seed=exp.train.seed), config)


def _retrain(seed: int = 0, iterations: int | None = None) -> MetaTrained:
    """The lesson BatchNorm model meta-trained now, at one torch thread (as ``make models`` trains)."""
    exp = _lesson(seed, iterations)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return meta_train(mk.build_model(exp.model_config(), seed=exp.train.seed), exp.train_sampler(exp.load_data()),
                          exp.train, progress=False)
    finally:
        torch.set_num_threads(threads)


def transductive(trained: MetaTrained):
    """The model's transductive accuracy on the compared meta-test tasks, measured once per model object."""
    if id(trained.model) not in _MEASURED:
        exp = _lesson()
        _MEASURED[id(trained.model)] = (trained.model, mk.meta_test(
            trained, exp.test_sampler(exp.load_data()), "transductive", n_tasks=COMPARED_TASKS, progress=False))
    return _MEASURED[id(trained.model)][1]


_MEASURED: dict = {}


def equivalence_problems(shipped: MetaTrained, fresh: MetaTrained) -> list[str]:
    """How a model retrained on another machine (``fresh``) fails to be equivalent to ``shipped``; [] if it is.

    1. Its first ``AGREEING_ITERATIONS`` meta-training losses agree with the shipped history within
       ``LOSS_BOUND``: same initial weights, same tasks, same inner loop and meta-gradient, up to rounding.
    2. If ``fresh`` was meta-trained as long as the shipped model: their mean transductive accuracies on the
       same ``COMPARED_TASKS`` meta-test tasks differ by at most ``STANDARD_DEVIATIONS`` standard deviations of
       the difference between two models, ``sqrt(2)`` times the spread across meta-training seeds recorded in
       ``data/records/seeds-lesson.json`` (ten seeds, the same tasks). Models retrained on other machines
       separate by chaos, but no further than models of other seeds do, so the nominal rate of a false
       failure is that of a normal variable beyond 4 standard deviations, 6e-5 (below 1e-2 even if the
       record's ten seeds underestimate the spread by 35%).
    No elementwise comparison of weights: after a hundred chaotic iterations none is meaningful (and the
    convolution biases before BatchNorm, whose true gradient is 0, move by the sign of rounding noise).
    """
    problems = []
    ours, theirs = fresh.history.loss[:AGREEING_ITERATIONS], shipped.history.loss[:AGREEING_ITERATIONS]
    gaps = [abs(a - b) for a, b in zip(ours, theirs)]
    if len(gaps) < AGREEING_ITERATIONS or max(gaps) > LOSS_BOUND:
        problems.append(f"first meta-training losses {ours} here, {theirs} shipped: gaps {gaps} over {LOSS_BOUND}")
    if len(fresh.history.loss) == len(shipped.history.loss):
        results = [transductive(m) for m in (shipped, fresh)]
        gap = paired_difference(results[0], results[1]).mean
        margin = STANDARD_DEVIATIONS * math.sqrt(2) * seed_spread("seeds-lesson", "transductive", COMPARED_TASKS)
        if abs(gap) > margin:
            problems.append(f"transductive accuracy {100 * results[0].mean:.1f}% shipped, {100 * results[1].mean:.1f}%"
                            f" retrained: {100 * gap:+.1f} points, beyond the margin of {100 * margin:.1f}")
    return problems


@pytest.fixture(scope="module")
def retrained() -> MetaTrained:
    """The lesson BatchNorm model meta-trained here, in full (shared by the tests below)."""
    return _retrain()


@pytest.mark.slow
@pytest.mark.xdist_group("retrain")  # with `pytest -n 2 --dist loadgroup`: one worker, one retrain
def test_a_shipped_model_is_what_mamlkit_trains_here(shipped_on, retrained):
    """Bit for bit on the machine that trained the shipped model; equivalent within the margins elsewhere."""
    shipped = _load_shipped()
    if same_machine(shipped.machine, signature()):
        ours, theirs = retrained.model.state_dict(), shipped.model.state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
        assert all(torch.equal(retrained.collected_stats[k], shipped.collected_stats[k])
                   for k in shipped.collected_stats)
        assert retrained.history.loss == shipped.history.loss
    else:
        print("another machine than the shipped model's:", "; ".join(differences(shipped.machine, signature())))
        assert equivalence_problems(shipped, retrained) == []


@pytest.mark.slow
@pytest.mark.xdist_group("retrain")
def test_the_equivalence_check_refuses_wrong_shipped_files(shipped_on, retrained):
    """What a user's machine checks must fail on a wrong file: a model of another seed stored under this key,
    the model meta-trained under another placement, and the initial weights (never trained)."""
    shipped = _load_shipped()
    assert equivalence_problems(shipped, _retrain(iterations=AGREEING_ITERATIONS)) == []       # the right file
    other_seed = _retrain(seed=1, iterations=AGREEING_ITERATIONS)
    gaps = [abs(a - b) for a, b in zip(other_seed.history.loss, shipped.history.loss)]
    assert max(gaps) > 10 * LOSS_BOUND, "another seed must be far outside the bound, not just outside it"
    wrong = MetaTrained(other_seed.model, other_seed.collected_stats, other_seed.history, shipped.config)
    assert any("first meta-training losses" in p for p in equivalence_problems(wrong, retrained))
    query_eval = _load_shipped("query_eval")
    problems = equivalence_problems(query_eval, retrained)
    assert any("first meta-training losses" in p for p in problems)
    assert any("transductive accuracy" in p for p in problems)
    untrained = MetaTrained(mk.build_model(_lesson().model_config(), seed=0), {}, shipped.history, shipped.config)
    assert [p for p in equivalence_problems(untrained, retrained) if "transductive accuracy" in p]

