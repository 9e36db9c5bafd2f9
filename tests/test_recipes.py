"""Every code block of docs/recipes.md runs as written and does what the page says."""

import re
import textwrap
from pathlib import Path

import higher
import torch
import torch.nn.functional as F
from conftest import sampler_and_model
from test_libraries import need

import mamlkit as mk
from mamlkit.your_code import libraries

RECIPES = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def blocks() -> list[str]:
    return [textwrap.dedent(m.group(2)) for m in BLOCK.finditer(RECIPES.read_text())]


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def adapted_copy(model, task, stack):
    """What the page's 'inside the innerloop_ctx block, after the support steps' means."""
    fmodel, diffopt = stack.enter_context(
        higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=0.4), track_higher_grads=False))
    fmodel.train()
    for _ in range(3):
        diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
    return fmodel


def test_every_recipe_runs_and_does_what_it_says():
    from contextlib import ExitStack

    sampler, model = sampler_and_model(0, "bn", n_query=3)
    task = sampler.task(0)
    ns = {"model": model, "task": task, "tasks": sampler.batch(1, 2)}
    code = blocks()
    assert len(code) >= 8
    n_query = len(task.query_x)
    for block in code:
        ns["task"] = task
        if "import learn2learn" in block:
            need(libraries.learn2learn_unavailable_reason())
            libraries.load_learn2learn()           # the whole package where it imports, else its MAML part
        if "def meta_test_task" in block:
            model.eval()                               # a caller's mode that a meta-test must leave as it was
        before, modes = state(model), mk.get_modes(model)
        with ExitStack() as stack:
            if "fmodel" in block and "innerloop_ctx" not in block:
                ns["fmodel"] = adapted_copy(model, task, stack)
            exec(block, ns)
        if "meta_opt.step()" in block:                                   # meta-training: the weights moved ...
            assert not same(before, state(model))
            assert mk.bn_stats_untouched(model)                           # ... the statistics did not
        elif "saved = " in block or "def meta_test_task" in block:        # meta-test leaves the model as it was
            assert same(before, state(model)), block[:60]
            if "def meta_test_task" in block:
                assert mk.get_modes(model) == modes, block[:60]       # ... modes included
        if "logits" in block and "running_mean = None" not in block:
            assert ns["logits"].shape == (n_query, 5), block[:60]
        if "running_mean = None" in block:                               # eval mode now uses batch statistics
            x = task.query_x
            with torch.no_grad():
                evaluated = model.eval()(x)
                trained = model.train()(x)
            assert torch.allclose(evaluated, trained, atol=1e-6)
        if "check_maml" in block:
            assert ns["report"].ok, str(ns["report"])
    assert isinstance(ns["checkpoint"].getvalue(), bytes) and ns["checkpoint"].getvalue()


def test_the_recipes_link_only_to_notebooks_that_exist():
    root = RECIPES.parents[1]
    links = re.findall(r"\]\(\.\./(notebooks/[^)]+)\)", RECIPES.read_text())
    assert links and all((root / link).is_file() for link in links)
