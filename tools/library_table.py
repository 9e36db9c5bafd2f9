"""Where each MAML library leaves the model's BatchNorm statistics, measured: docs/libraries.md's table.

For each library (higher, learn2learn 0.2.0, TorchOpt 0.7.3, torch.func as PyTorch's own MAML example and with
the model's own buffers, and mamlkit) this meta-trains a Conv4 with its usual loop, then meta-tests it in train
mode, and reads: whether the model's running statistics were written (counted by ``mk.check_maml``, which
also says by what: the model's own passes, clones sharing its buffers, or functional_call given them), what a
checkpoint (``state_dict``) saved after each phase carries, and what ``check_maml`` says of a train-mode meta-test
followed by saving the model. The counts depend on the loops' sizes only, not on the data, so
tests/test_library_table.py measures again on a small synthetic set and compares with the page.

    python tools/library_table.py --dataset omniglot --data-dir ../shared/data/omniglot --write docs/libraries.md

With ``--reports`` it also meta-trains a working Conv4 with the loops of learn2learn, TorchOpt and torch.func and
writes ``mk.placement_report`` on each into the page (about ten minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mamlkit as mk  # noqa: E402
from mamlkit.your_code import libraries  # noqa: E402
from mamlkit.your_code.checker import check_maml  # noqa: E402

#: The loops' sizes: meta-iterations, tasks per meta-batch, inner steps; meta-test tasks and their steps.
ITERATIONS, META_BATCH, INNER_STEPS, TEST_TASKS, TEST_STEPS = 3, 2, 1, 2, 2
LR = 0.4


class Sizes(NamedTuple):
    """How long each library's meta-training loop runs."""

    iterations: int = ITERATIONS
    meta_batch: int = META_BATCH
    inner_steps: int = INNER_STEPS
    outer_lr: float = 1e-3


#: The table's loops, and the meta-training behind the reports: mamlkit's lesson preset (100 meta-iterations of
#: 4 tasks, 5 inner steps at 0.4, Adam at 0.003), so that each library's model is a working one.
TABLE, REPORTS = Sizes(), Sizes(iterations=100, meta_batch=4, inner_steps=5, outer_lr=3e-3)
REPORT_TASKS, REPORT_STEPS = 100, 10
BEGIN, END = "<!-- library_table: written by tools/library_table.py -->", "<!-- /library_table -->"
REPORTS_BEGIN = "<!-- library_reports: written by tools/library_table.py --reports -->"
REPORTS_END = "<!-- /library_reports -->"


def conv4(hidden: int, track_running_stats: bool = True, seed: int = 0, n_way: int = 5,
          example: torch.Tensor | None = None) -> nn.Module:
    """mamlkit's Conv4 (default BatchNorm), or as PyTorch's own MAML example builds it: no running statistics
    (its head is lazy: ``example``, a batch of images, gives it its size before any optimiser sees it)."""
    if track_running_stats:
        return mk.build_model(mk.ModelConfig(norm="bn", hidden=hidden), seed=seed, device="cpu")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for c_in in (1, hidden, hidden, hidden):
        layers += [nn.Conv2d(c_in, hidden, 3, padding=1), nn.BatchNorm2d(hidden, track_running_stats=False),
                   nn.ReLU(), nn.MaxPool2d(2)]
    model = nn.Sequential(*layers, nn.Flatten(), nn.LazyLinear(n_way))
    if example is not None:
        with torch.no_grad():
            model(example)
    return model


def _tasks(sampler, first: int, n: int):
    return sampler.batch(first, n)


# ------------------------------------------------------------------------------------------ the libraries' loops


def higher_loops():
    import higher

    def train(model, sampler, sizes=TABLE):
        opt = torch.optim.Adam(model.parameters(), lr=sizes.outer_lr)
        inner = torch.optim.SGD(model.parameters(), lr=LR)
        for it in range(sizes.iterations):
            opt.zero_grad()
            for task in _tasks(sampler, it * sizes.meta_batch, sizes.meta_batch):
                with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
                    for _ in range(sizes.inner_steps):
                        diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
                    (F.cross_entropy(fmodel(task.query_x), task.query_y) / sizes.meta_batch).backward()
            opt.step()

    def test(model, sampler):
        inner = torch.optim.SGD(model.parameters(), lr=LR)
        for task in _tasks(sampler, 1000, TEST_TASKS):
            with higher.innerloop_ctx(model, inner, track_higher_grads=False) as (fmodel, diffopt):
                fmodel.train()
                for _ in range(TEST_STEPS):
                    diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
                with torch.no_grad():
                    fmodel(task.query_x)

    return train, test


def learn2learn_loops():
    l2l = libraries.load_learn2learn()
    wrappers: dict[int, nn.Module] = {}

    def maml(model):
        return wrappers.setdefault(id(model), l2l.MAML(model, lr=LR))

    def train(model, sampler, sizes=TABLE):
        opt = torch.optim.Adam(maml(model).parameters(), lr=sizes.outer_lr)
        for it in range(sizes.iterations):
            opt.zero_grad()
            for task in _tasks(sampler, it * sizes.meta_batch, sizes.meta_batch):
                learner = maml(model).clone()
                for _ in range(sizes.inner_steps):
                    learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
                (F.cross_entropy(learner(task.query_x), task.query_y) / sizes.meta_batch).backward()
            opt.step()

    def test(model, sampler):
        for task in _tasks(sampler, 1000, TEST_TASKS):
            learner = maml(model).clone()
            for _ in range(TEST_STEPS):
                learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
            with torch.no_grad():
                learner(task.query_x)

    return train, test


def torchopt_loops():
    import torchopt

    def tasks_of(model, sampler, first, n, steps, keep_graph):
        inner = torchopt.MetaSGD(model, lr=LR)
        net_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
        inner_state = torchopt.extract_state_dict(inner, by="reference")
        losses = []
        for task in _tasks(sampler, first, n):
            for _ in range(steps):
                inner.step(F.cross_entropy(model(task.support_x), task.support_y))
            with torch.set_grad_enabled(keep_graph):
                losses.append(F.cross_entropy(model(task.query_x), task.query_y))
            torchopt.recover_state_dict(model, net_state)
            torchopt.recover_state_dict(inner, inner_state)
        return losses

    def train(model, sampler, sizes=TABLE):
        opt = torch.optim.Adam(model.parameters(), lr=sizes.outer_lr)
        for it in range(sizes.iterations):
            losses = tasks_of(model, sampler, it * sizes.meta_batch, sizes.meta_batch, sizes.inner_steps, True)
            opt.zero_grad()
            torch.stack(losses).mean().backward()
            opt.step()

    def test(model, sampler):
        tasks_of(model, sampler, 1000, TEST_TASKS, TEST_STEPS, False)

    return train, test


def _func_adapt(model, params, buffers, x, y, steps):
    from torch.func import functional_call, grad

    def loss(p, b):
        return F.cross_entropy(functional_call(model, (p, b), (x,)), y)

    for _ in range(steps):
        grads = grad(loss)(params, buffers)
        params = {k: v - LR * grads[k] for k, v in params.items()}
    return params


def torch_func_example_loops():
    """PyTorch's own MAML example: no running statistics, functional_call + grad, vmap over the meta-batch."""
    from torch.func import functional_call, vmap

    def meta_batch(model, tasks, steps):
        params = dict(model.named_parameters())
        stack = [torch.stack([getattr(t, f) for t in tasks]) for f in ("support_x", "support_y", "query_x", "query_y")]

        def one(x, y, xq, yq):
            fast = _func_adapt(model, params, {}, x, y, steps)
            return F.cross_entropy(functional_call(model, fast, (xq,)), yq)

        return vmap(one)(*stack).mean()

    def train(model, sampler, sizes=TABLE):
        opt = torch.optim.Adam(model.parameters(), lr=sizes.outer_lr)
        for it in range(sizes.iterations):
            opt.zero_grad()
            meta_batch(model, _tasks(sampler, it * sizes.meta_batch, sizes.meta_batch), sizes.inner_steps).backward()
            opt.step()

    def test(model, sampler):
        loss = meta_batch(model, _tasks(sampler, 1000, TEST_TASKS), TEST_STEPS)
        loss.detach()

    return train, test


def torch_func_own_buffers_loops():
    """functional_call + grad on a model with running statistics, given the model's own buffers."""
    from torch.func import functional_call

    def train(model, sampler, sizes=TABLE):
        opt = torch.optim.Adam(model.parameters(), lr=sizes.outer_lr)
        for it in range(sizes.iterations):
            opt.zero_grad()
            for task in _tasks(sampler, it * sizes.meta_batch, sizes.meta_batch):
                buffers = dict(model.named_buffers())
                fast = _func_adapt(model, dict(model.named_parameters()), buffers, task.support_x, task.support_y,
                                   sizes.inner_steps)
                loss = F.cross_entropy(functional_call(model, (fast, buffers), (task.query_x,)), task.query_y)
                (loss / sizes.meta_batch).backward()
            opt.step()

    def test(model, sampler):
        for task in _tasks(sampler, 1000, TEST_TASKS):
            buffers = dict(model.named_buffers())
            params = {k: v.detach() for k, v in model.named_parameters()}
            fast = _func_adapt(model, params, buffers, task.support_x, task.support_y, TEST_STEPS)
            with torch.no_grad():
                functional_call(model, (fast, buffers), (task.query_x,))

    return train, test


def mamlkit_loops():
    def train(model, sampler, sizes=TABLE):
        mk.meta_train(model, sampler, mk.TrainConfig(iterations=sizes.iterations, meta_batch=sizes.meta_batch,
                                                     inner_steps=sizes.inner_steps, inner_lr=LR,
                                                     outer_lr=sizes.outer_lr), progress=False)

    def test(model, sampler):
        mk.meta_test(model, sampler, "transductive", n_tasks=TEST_TASKS, inner_steps=TEST_STEPS, inner_lr=LR,
                     start=1000, progress=False)

    return train, test


#: (library, its loop, how it treats the buffers (from its source), loops factory, a model with running statistics)
LIBRARIES: list[tuple[str, str, str, Callable, bool]] = [
    ("higher 0.2.1", "`innerloop_ctx(copy_initial_weights=False)`", "the patched copy gets copies of the buffers",
     higher_loops, True),
    ("learn2learn 0.2.0", "`MAML(model, lr)`, per task `maml.clone()`, `adapt`",
     "`clone_module` shares the model's buffer tensors with every clone", learn2learn_loops, True),
    ("TorchOpt 0.7.3", "`MetaSGD(net)`, `extract_state_dict` / `recover_state_dict` per task",
     "the net itself runs; `recover_state_dict` puts back the buffers `extract_state_dict` took",
     torchopt_loops, True),
    ("torch.func, PyTorch's example", "`functional_call` + `grad`, `vmap` over the meta-batch",
     "`BatchNorm2d(track_running_stats=False)`: no running statistics", torch_func_example_loops, False),
    ("torch.func, the model's own buffers", "`functional_call(model, (params, dict(model.named_buffers())))`",
     "`functional_call` writes into the buffers it is given", torch_func_own_buffers_loops, True),
    ("mamlkit", "`mk.meta_train`, `mk.meta_test`", "higher's copies (or cloned buffers with torch.func)",
     mamlkit_loops, True),
]

WRITERS = {"model": "the model's own passes", "clone": "the clones' passes",
           "functional_call": "functional_call's passes"}


def carries(model: nn.Module) -> str:
    """What a checkpoint of ``model`` holds of its BatchNorm running statistics, in words."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m for m in layers if m.track_running_stats and m.running_mean is not None]
    if not tracked:
        return "no running statistics"
    n = int(tracked[0].num_batches_tracked)
    fresh = all(int(m.num_batches_tracked) == 0 and not m.running_mean.any() and bool((m.running_var == 1).all())
                for m in tracked)
    return "mean 0, variance 1 (never written)" if fresh else f"statistics of {n} batches"


def wrote(report, before: dict, model: nn.Module) -> str:
    """Whether the phase wrote the model's statistics, by what, and whether they stayed."""
    if not report.stats_writes:
        return "no"
    by = ", ".join(f"{WRITERS[w]} ({n})" for w, n in sorted(report.stats_writes.items()))
    after = {k: v for k, v in model.named_buffers()}
    kept = any(not torch.equal(before[k], after[k]) for k in before)
    return f"yes, by {by}" + ("" if kept else "; put back after each task")


def measure(sampler, hidden: int = 32, libs: list[str] | None = None) -> list[dict[str, str]]:
    """Run every library's loops on ``sampler`` (5-way tasks) and return one row per library."""
    rows = []
    for name, loop, mechanism, loops, tracks in LIBRARIES:
        if libs is not None and name not in libs:
            continue
        train, test = loops()
        model = conv4(hidden, tracks, example=sampler.task(0).support_x)
        before = {k: v.clone() for k, v in model.named_buffers()}
        with check_maml(model) as trained:
            train(model, sampler)
        after_training = carries(model)
        row = {"library": name, "loop": loop, "buffers": mechanism,
               "meta-training wrote them": wrote(trained, before, model), "checkpoint then": after_training}
        before = {k: v.clone() for k, v in model.named_buffers()}
        with check_maml(model) as tested:
            test(model, sampler)
            torch.save(model.state_dict(), io.BytesIO())
        row["train-mode meta-test wrote them"] = wrote(tested, before, model)
        row["checkpoint then "] = carries(model)
        row["check_maml: meta-test, then save"] = ", ".join(f"`{c}`" for c in tested.codes) or "silent"
        if not trained.ok:
            row["check_maml: meta-test, then save"] += f" (meta-training: {', '.join(trained.codes)})"
        rows.append(row)
    return rows


def render(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(h.strip() for h in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    return "\n".join(lines)


def block(rows: list[dict[str, str]]) -> str:
    sizes = (f"{ITERATIONS} meta-iterations of {META_BATCH} tasks, {INNER_STEPS} inner step; meta-test "
             f"{TEST_TASKS} tasks of {TEST_STEPS} steps, in train mode")
    return f"{BEGIN}\n{render(rows)}\n\nLoops: {sizes}.\n{END}"


#: The libraries whose meta-trained models get a placement report (higher's and mamlkit's: notebooks 02-03).
REPORTED = ["learn2learn 0.2.0", "TorchOpt 0.7.3", "torch.func, PyTorch's example",
            "torch.func, the model's own buffers"]


def reports(train_sampler, test_sampler, hidden: int = 32, libs: list[str] | None = None) -> str:
    """Meta-train a Conv4 with each library's loop (``REPORTS`` sizes), then ``mk.placement_report`` on it.

    Returns Markdown: per library, the report's table and its verdict, as a user of that library would see them.
    """
    parts = []
    for name, loop, _mechanism, loops, tracks in LIBRARIES:
        if name not in (libs or REPORTED):
            continue
        train, _test = loops()
        model = conv4(hidden, tracks, example=train_sampler.task(0).support_x)
        train(model, train_sampler, REPORTS)
        report = mk.placement_report(model, test_sampler, inner_steps=REPORT_STEPS, inner_lr=LR,
                                     n_tasks=REPORT_TASKS, progress=False)
        verdict = "\n".join(f"- {line}" for line in report.verdict)
        parts.append(f"### {name}: {loop}\n\n{report.table().to_markdown()}\n\n{verdict}")
        print(f"reported {name}", file=sys.stderr)
    sizes = (f"Meta-training: {REPORTS.iterations} meta-iterations of {REPORTS.meta_batch} tasks, "
             f"{REPORTS.inner_steps} inner steps at {LR}, Adam at {REPORTS.outer_lr:g} (mamlkit's lesson preset), "
             f"on the training alphabets; reports on {REPORT_TASKS} tasks of the test alphabets, {REPORT_STEPS} "
             f"inner steps.")
    return f"{REPORTS_BEGIN}\n{sizes}\n\n" + "\n\n".join(parts) + f"\n{REPORTS_END}"


def replace_block(path: Path, begin: str, end: str, text: str) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of that block of ``path``."""
    page = path.read_text()
    start, stop = page.index(begin), page.index(end) + len(end)
    path.write_text(page[:start] + text + page[stop:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="glyphs", choices=["glyphs", "omniglot"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--write", type=Path, default=None, help="replace the table in this Markdown file")
    parser.add_argument("--reports", action="store_true",
                        help="also meta-train a working model with each library and write its placement report")
    args = parser.parse_args(argv)
    data = mk.load_dataset(args.dataset, args.data_dir)
    sampler = mk.TaskSampler(data["train"], n_way=5, k_shot=1, n_query=5, seed=0)
    blocks = [(BEGIN, END, block(measure(sampler, args.hidden)))]
    if args.reports:
        test_sampler = mk.TaskSampler(data["test"], n_way=5, k_shot=1, n_query=5, seed=1)
        blocks.append((REPORTS_BEGIN, REPORTS_END, reports(sampler, test_sampler, args.hidden)))
    for begin, end, text in blocks:
        if args.write is None:
            print(text)
        else:
            replace_block(args.write, begin, end, text)
            print(f"wrote {begin} into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
