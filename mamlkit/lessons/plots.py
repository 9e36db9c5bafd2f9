"""Matplotlib figures for the lessons: placement bars with intervals, training curves, sinusoids."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from mamlkit.evaluate import EvalResult
from mamlkit.experiments import PROTOCOLS, NormResults, PlacementResults
from mamlkit.placements import PLACEMENTS, PRESENTATIONS
from mamlkit.plumbing.files import save_figure


def _save(fig: plt.Figure, path: str | Path | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, path, dpi=120, bbox_inches="tight")


def results_chart(res: PlacementResults | NormResults | object, path: str | Path | None = None) -> plt.Figure:
    """The chart of a run: grouped bars for placements (``PlacementResults``), bars per protocol for normalisations
    (``NormResults``); anything else draws its own (``res.chart``, e.g. the why-eval experiment's curves)."""
    if isinstance(res, PlacementResults):
        return placement_chart(res.results, chance=1 / res.experiment.n_way, path=path)
    if isinstance(res, NormResults):
        return protocol_chart(res.results, PROTOCOLS, chance=1 / res.experiment.n_way, path=path)
    return res.chart(path)  # type: ignore[attr-defined]


def _inner_keys(results: dict[str, dict[str, EvalResult]]) -> list[str]:
    """The keys of the inner dicts, in order of first appearance."""
    keys: list[str] = []
    for by in results.values():
        keys += [k for k in by if k not in keys]
    return keys


def _grouped_bars(ax: plt.Axes, cell: Callable[[str, str], EvalResult | None], groups: list[str],
                  series: list[str], labels: list[str], horizontal: bool, capsize: int) -> np.ndarray:
    """Grouped bars with 95% intervals: one group per entry of ``groups``, one bar per entry of ``series``
    (``cell(group, one_of_series)``; None leaves a gap). Returns the groups' positions."""
    size = 0.8 / len(series)
    at = np.arange(len(groups))
    for i, (name, label) in enumerate(zip(series, labels)):
        found = [cell(group, name) for group in groups]
        means = [np.nan if r is None else 100 * r.mean for r in found]
        errs = [0 if r is None else 100 * r.ci95 for r in found]
        offset = at + (i - (len(series) - 1) / 2) * size
        if horizontal:
            ax.barh(offset, means, size, xerr=errs, capsize=capsize, label=label)
        else:
            ax.bar(offset, means, size, yerr=errs, capsize=capsize, label=label)
    return at


def placement_chart(
    results: dict[str, dict[str, EvalResult]],
    chance: float | None = None,
    path: str | Path | None = None,
    title: str = "Meta-test accuracy by placement (95% intervals)",
) -> plt.Figure:
    """Grouped horizontal bars: one group per meta-test placement, one bar per training placement."""
    trainings, names = list(results), _inner_keys(results)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) * max(1, len(trainings)) + 1.2))
    y = _grouped_bars(ax, lambda name, training: results[training].get(name), names, trainings,
                      [f"meta-trained: {training}" for training in trainings], horizontal=True, capsize=3)
    ax.set_yticks(y, [f"{n}\n({PLACEMENTS[n].label})" if n in PLACEMENTS else n for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("meta-test accuracy (%)")
    if chance is not None:       # in the legend: a label above the axes ran into the title
        ax.axvline(100 * chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({100 * chance:g}%)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


def result_bars(results: list[EvalResult], chance: float | None = None, path: str | Path | None = None,
                title: str = "", labels: list[str] | None = None, height: float = 3.2) -> plt.Figure:
    """One bar per result with its 95% interval (accuracy in %); ``labels`` replace the names (wrapped at spaces,
    unless a label holds its own line breaks)."""
    fig, ax = plt.subplots(figsize=(min(12, max(4.5, 1.4 * len(results))), height))
    x = np.arange(len(results))
    ax.bar(x, [100 * r.mean for r in results], yerr=[100 * r.ci95 for r in results], capsize=4,
           color=[f"C{i % 10}" for i in range(len(results))])
    if labels is None:
        ax.set_xticks(x, [r.name.replace("_", " ") for r in results], rotation=20, ha="right", fontsize=8)
    else:
        ax.set_xticks(x, [label if "\n" in label else _wrap(label) for label in labels], fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    if chance is not None:       # inside the axes, at the right end of the line, on a white ground over any bar
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1)
        ax.annotate("chance", (1.0, 100 * chance), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                    textcoords="offset points", ha="right", va="bottom", color="dimgrey", fontsize=7,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    if title:                    # small enough to fit the figure's width (a 4.5-inch chart cut a longer one off)
        ax.set_title(_wrap(title, int(fig.get_figwidth() * 13)), fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def _wrap(label: str, width: int = 18) -> str:
    """``label`` broken into lines of about ``width`` characters, at spaces."""
    lines, line = [], ""
    for word in label.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def image_grid(images, titles: list[str] | None = None, path: str | Path | None = None, size: float = 0.9):
    """Show a ``[rows, cols, 1, H, W]`` tensor (e.g. ``split.images[:6, :8]``) as a grid of images."""
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(images[r, c, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        if titles:
            axes[r][0].set_ylabel(titles[r], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.2)
    _save(fig, path)
    return fig


def bn_stats_mismatch(
    task_stats: dict[str, dict[str, tuple]],
    running: dict[str, tuple],
    layer: str,
    path: str | Path | None = None,
    channels: int = 16,
) -> plt.Figure:
    """Per-channel batch statistics of several tasks against the running statistics, for one layer.

    Args:
        task_stats: label -> ``mamlkit.lessons.conv4_stats.batch_statistics`` output, for several tasks.
        running: label -> ``(running_mean, running_var)`` of the layer (e.g. "collected", "untouched").
        layer: the BatchNorm layer name, e.g. ``"features.5"``.
        channels: how many channels to show.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    x = np.arange(channels)
    total = None
    for i, (label, stats) in enumerate(task_stats.items()):
        mean, var = stats[layer]
        total = mean.numel()
        axes[0].plot(x, mean[:channels].cpu().numpy(), "o", color=f"C{i}", alpha=0.7, markersize=4, label=label)
        axes[1].plot(x, var[:channels].cpu().numpy(), "o", color=f"C{i}", alpha=0.7, markersize=4, label=label)
    for j, (label, (mean, var)) in enumerate(running.items()):
        style = dict(marker=["_", "x", "+"][j % 3], linestyle="", color="k", markersize=12, mew=2,
                     label=f"running: {label}")
        axes[0].plot(x, mean[:channels].cpu().numpy(), **style)
        axes[1].plot(x, var[:channels].cpu().numpy(), **style)
    shown = f"channels 0-{channels - 1}" + (f" of {total}" if total else "")
    axes[0].set_title(f"{layer}: per-channel mean ({shown})", fontsize=9)
    axes[1].set_title(f"{layer}: per-channel variance ({shown})", fontsize=9)
    axes[0].set_ylabel("mean of the layer's input")
    axes[1].set_ylabel("variance (log scale)")
    axes[1].set_yscale("log")
    axes[1].yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes[1].yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))      # 0.5, 1, 2: no 6x10^-1
    axes[1].yaxis.set_minor_formatter(NullFormatter())
    for ax in axes:
        ax.set_xlabel("channel (each one separate: no order)")
        ax.set_xticks(x, [str(c) for c in x], fontsize=7)                          # whole channel numbers
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    _save(fig, path)
    return fig


def training_curves(histories: dict[str, object], path: str | Path | None = None, window: int = 10) -> plt.Figure:
    """Query loss and accuracy (%) during meta-training, each a moving average over ``window`` iterations."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for name, h in histories.items():
        for ax, values, scale in zip(axes, (h.loss, h.accuracy), (1.0, 100.0)):
            v = scale * np.asarray(values, dtype=float)
            if v.size >= window:
                v = np.convolve(v, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(v.size) + (window if len(values) >= window else 1), v, label=name)
    axes[0].set_title(f"query loss after adaptation (moving average of {window})", fontsize=9)
    axes[1].set_title(f"query accuracy after adaptation (moving average of {window})", fontsize=9)
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("accuracy (%)")
    for ax in axes:
        ax.set_xlabel("meta-iteration")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return fig


def sinusoid_fits(
    model: object,
    sampler: object,
    task_indices: list[int] | tuple[int, ...],
    steps: tuple[int, ...] = (0, 1, 10),
    inner_lr: float = 0.02,
    path: str | Path | None = None,
    title: str = "",
) -> plt.Figure:
    """One panel per sinusoid task: the true curve, the support points and the model's fit after
    each number of inner SGD steps in ``steps`` (0 = the prediction before any adaptation).

    Adaptation runs on a deep copy of ``model`` (which keeps the model's modes), so the model
    itself is not changed; a plain optimizer is fine here because no meta-gradient is needed. Each
    panel's title gives the query-set mean squared error after each number of steps, in order.
    """
    import copy

    import torch

    from mamlkit.adapt import task_loss

    device = next(model.parameters()).device
    lo, hi = sampler.x_range
    grid = torch.linspace(lo, hi, 200).unsqueeze(1)
    wanted = sorted(set(int(s) for s in steps))
    fig, axes = plt.subplots(1, len(task_indices), figsize=(3.4 * len(task_indices), 3.2), sharey=True,
                             squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(wanted)))
    for ax, index in zip(axes[0], task_indices):
        task = sampler.task(index).to(device)
        fast = copy.deepcopy(model)
        opt = torch.optim.SGD(fast.parameters(), lr=inner_lr)
        ax.plot(grid.squeeze(1), sampler.curve(index, grid).squeeze(1), color="black", linewidth=2.2,
                label="true function")
        done = 0
        errors = []
        for k, color in zip(wanted, colors):
            while done < k:
                opt.zero_grad()
                task_loss(fast(task.support_x), task.support_y).backward()
                opt.step()
                done += 1
            with torch.no_grad():
                fit = fast(grid.to(device)).cpu().squeeze(1)
                errors.append(task_loss(fast(task.query_x), task.query_y).item())
            name = "before adaptation" if k == 0 else f"after {k} step{'s' if k > 1 else ''}"
            ax.plot(grid.squeeze(1), fit, color=color, linestyle="--" if k == 0 else "-", linewidth=1.6, label=name)
        ax.scatter(task.support_x.cpu().squeeze(1), task.support_y.cpu().squeeze(1), color="red", zorder=5,
                   s=22, label="support points")
        amp, phase = sampler.parameters(index)
        trail = " \u2192 ".join(f"{e:.2f}" for e in errors)
        ax.set_title(f"task {index}: A={amp:.1f}, phase={phase:.1f}\nquery MSE {trail}", fontsize=9)
        ax.set_xlabel("x")
    axes[0][0].set_ylabel("y")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, path)
    return fig


def loss_curves(histories: dict[str, object], path: str | Path | None = None, window: int = 20,
                ylabel: str = "query loss", log: bool = False) -> plt.Figure:
    """Meta-training query loss only (moving average over ``window`` iterations), for regression,
    where ``training_curves``' accuracy panel would be empty. Faint lines are the raw values."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (name, h) in enumerate(histories.items()):
        v = np.asarray(h.loss, dtype=float)
        ax.plot(v, color=f"C{i}", alpha=0.25, linewidth=0.8)
        if v.size >= window:
            smooth = np.convolve(v, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window - 1, v.size), smooth, color=f"C{i}", label=f"{name} (mean of {window})")
        else:
            ax.plot(v, color=f"C{i}", label=name)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("meta-training: query loss after adaptation")
    fig.tight_layout()
    _save(fig, path)
    return fig


def protocol_chart(
    results: dict[str, dict[str, EvalResult]],
    protocol_names: dict[str, str] | None = None,
    chance: float | None = None,
    path: str | Path | None = None,
    title: str = "Meta-test accuracy by normalisation and query protocol (95% intervals)",
) -> plt.Figure:
    """Grouped vertical bars: one group per method, one bar per query protocol."""
    methods, protocols = list(results), _inner_keys(results)
    names = protocol_names or {}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 1.5), 3.8))
    x = _grouped_bars(ax, lambda method, protocol: results[method].get(protocol), methods, protocols,
                      [names.get(p, PRESENTATIONS.get(p, p)) for p in protocols], horizontal=False, capsize=2)
    ax.set_xticks(x, [m.replace("_", " ") for m in methods], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("meta-test accuracy (%)")
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1)
        ax.annotate("chance", (1.0, 100 * chance), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", color="grey", fontsize=8)
    ax.legend(fontsize=8, title="query presented", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return fig


def lr_curves(results, path: str | Path | None = None, conditions: list[str] | None = None) -> plt.Figure:
    """Accuracy against the inner learning rate, one line per condition (``mamlkit.lessons.why_eval``).

    Left: accuracy (%) with 95% intervals, log-scaled learning rate; right: for the same conditions
    at the meta-training learning rate, the median over tasks of the standard deviation of the first
    BatchNorm layer's normalised input across the inner steps (1 means the normalisation matches the
    batch; a line ends where the median task's activations stopped being finite numbers).
    """
    names = conditions or [n for n in results.results if n in results.spread]
    rates = [results.inner_lr * f for f in results.lr_factors]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, name in enumerate(names):
        by_lr = results.results[name]
        cells = [by_lr[k] for k in by_lr]
        style = "-" if name.startswith(("train", "eval_fresh")) else "--"
        ax.errorbar(rates, [100 * r.mean for r in cells], yerr=[100 * r.ci95 for r in cells], marker="o",
                    linestyle=style, capsize=3, color=f"C{i % 10}", label=name)
        spread = results.spread[name][next(iter(by_lr))]
        bx.plot(np.arange(1, spread.shape[0] + 1), spread[:, 0], marker=".", linestyle=style, color=f"C{i % 10}")
    chance = 100 / results.experiment.n_way
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1)
    ax.annotate("chance", (rates[-1], chance), textcoords="offset points", xytext=(2, 3), color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.minorticks_off()
    ax.set_xlabel(f"inner learning rate at meta-test (meta-training used {results.inner_lr:g})")
    ax.set_ylabel("meta-test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="condition", title_fontsize=7)
    ax.set_title(f"Accuracy vs inner learning rate ({results.experiment.test_tasks} tasks, 95% intervals)",
                 fontsize=9)
    bx.axhline(1, color="grey", linestyle=":", linewidth=1)
    bx.set_yscale("log")
    bx.set_xlabel("inner step")
    bx.set_ylabel("std of the normalised input, first BN layer")
    bx.set_title(f"Scale drift at lr {results.inner_lr:g} (median task)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def accuracy_lines(xs: list[float], lines: dict[str, list[EvalResult]], xlabel: str, chance: float | None = None,
                   title: str = "", path: str | Path | None = None) -> plt.Figure:
    """Accuracy (%) with 95% intervals against a setting ``xs``, one line per entry of ``lines`` (e.g. the query
    batch size, one line per order of arrival)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, (label, results) in enumerate(lines.items()):
        ax.errorbar(xs, [100 * r.mean for r in results], yerr=[100 * r.ci95 for r in results], marker="o",
                    capsize=3, color=f"C{i % 10}", label=label)
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1)
        ax.annotate("chance", (xs[-1], 100 * chance), textcoords="offset points", xytext=(-30, 3), color="grey",
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("meta-test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def interval_figure(r: dict, s: float = 100.0, max_tasks: int = 600, path: str | Path | None = None) -> plt.Figure:
    """Resampled means of N tasks against the 95% interval, and the half-width against N.

    ``r`` is what ``mamlkit.lessons.explorers.interval_coverage`` returns; ``s`` scales the values (100: percent).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.hist(s * r["means"], bins=40, color="C0", alpha=0.75)
    for edge in (r["mean"] - r["half_width"], r["mean"] + r["half_width"]):
        left.axvline(s * edge, color="k", linestyle="--", linewidth=1.2)
    left.axvline(s * r["mean"], color="C3", linewidth=1.5)
    left.set_xlabel(f"mean of N = {r['n']} resampled tasks" + (" (%)" if s == 100 else ""))
    left.set_ylabel("resampled means")
    left.set_title(f"{100 * r['coverage']:.1f}% of {r['resamples']} means inside the interval", fontsize=9)
    sizes = np.arange(1, max_tasks + 1)
    right.plot(sizes, s * 1.96 * r["std"] / np.sqrt(sizes), "k-", label="1.96 std / sqrt(N)")
    right.plot([r["n"]], [s * r["half_width"]], "o", color="C3", label=f"N = {r['n']}")
    if r["measured"] <= max_tasks:
        right.axvline(r["measured"], color="grey", linestyle=":", label=f"tasks measured ({r['measured']})")
    right.set_xscale("log")
    right.set_xlabel("tasks N")
    right.set_ylabel("95% half-width" + (" (points)" if s == 100 else ""))
    right.legend(fontsize=8)
    right.set_title("the interval shrinks as 1/sqrt(N)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def inner_rates(table: dict[str, list[float]], fixed: float | None = None, title: str = "",
                path: str | Path | None = None) -> plt.Figure:
    """Learned inner learning rates (``InnerRates.table()``) against the inner step: one line per layer's weight
    (left) and bias (right); ``fixed`` draws the rate they started from."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, kind in zip(axes, ("weight", "bias")):
        names = [n for n in table if n.endswith("." + kind)]
        for i, name in enumerate(names):
            values = table[name]
            ax.plot(range(len(values)), values, marker="o", color=f"C{i % 10}", label=name.rsplit(".", 1)[0])
        if fixed is not None:
            ax.axhline(fixed, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("inner step")
        ax.set_xticks(range(len(next(iter(table.values())))))
        ax.set_title({"weight": "weights", "bias": "biases"}[kind], fontsize=9)
    axes[0].set_ylabel("inner learning rate")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def step_lines(lines: dict[str, list[float]], ylabel: str, title: str = "", path: str | Path | None = None
               ) -> plt.Figure:
    """One line per entry of ``lines`` against the inner step (0, 1, ...), e.g. a statistic measured at each step."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (label, values) in enumerate(lines.items()):
        ax.plot(range(len(values)), values, marker="o", color=f"C{i % 10}", label=label)
    ax.set_xlabel("inner step")
    ax.set_xticks(range(max(len(v) for v in lines.values())))
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig
