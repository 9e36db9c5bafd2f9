"""What ``placement_report`` returns: its rows, the ``PlacementReport`` (a table, JSON, Markdown) and its verdict in
plain words: which placement to use, what the running statistics the model holds are worth, each finding with
the notebook that explains it. Every sentence reads the user's own numbers (``tests/test_diagnosis.py`` checks
each branch)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from mamlkit.evaluate import EvalResult, PairedDifference
from mamlkit.placements import PLACEMENTS, PRESENTATIONS
from mamlkit.plumbing.files import write_json, write_text
from mamlkit.table import Table

#: Statistics sources for placements that read running statistics, with the words the table uses.
STATS_SOURCES: dict[str, str] = {
    "held": "the model's own",
    "untouched": "0 and 1 (untouched)",
    "reestimated": "re-estimated on support sets",
}

#: Rows of the report: (row name, mamlkit placement, statistics source or None where none is read).
ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("transductive", "transductive", None),
    ("one_at_a_time", "one_at_a_time", None),
    ("one_class_at_a_time", "one_class_at_a_time", None),
    ("reptile_protocol", "reptile_protocol", None),
    ("eval_held", "eval_collected", "held"),
    ("eval_untouched", "eval_untouched", "untouched"),
    ("eval_reestimated", "eval_collected", "reestimated"),
    ("train_then_eval_held", "train_then_eval_collected", "held"),
    ("train_then_eval_untouched", "train_then_eval", "untouched"),
    ("train_then_eval_reestimated", "train_then_eval_collected", "reestimated"),
)

@dataclass
class PlacementReport:
    """The placements of one model on one set of tasks; shows as a table and a verdict in a notebook.

    Attributes:
        results: one ``EvalResult`` per row name (see ``ROWS``), all on the same tasks.
        differences: each row's paired difference from ``transductive`` (train mode), on the same tasks.
        verdict: short findings in plain words, each naming the notebook that explains it.
        n_way: classes per task (chance is ``1 / n_way``).
        inner_steps, inner_lr: the adaptation used (the user's).
        seconds_per_task: wall time per task, all placements together.
        held_untouched: True when the model's own statistics are still 0 and 1.
        estimate_note: where the re-estimated statistics came from.
        skipped: rows that cannot run on this model, with the reason (e.g. BatchNorm1d refuses a batch of one
            example in train mode).
        context_norm: the model normalises with support-set statistics (MetaBN, TaskNorm-I): train mode is not
            transductive.
        partly_transductive_eval: some BatchNorm layers keep no running statistics, so eval mode still
            normalises those with the batch's statistics.
        momentum_one: every BatchNorm layer with running statistics has ``momentum=1`` (as higher's Omniglot
            example builds them): each train-mode pass replaces the running statistics with its batch's.
    """

    results: dict[str, EvalResult]
    differences: dict[str, PairedDifference]
    n_way: int
    inner_steps: int
    inner_lr: float
    seconds_per_task: float
    held_untouched: bool
    estimate_note: str
    verdict: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    context_norm: bool = False
    partly_transductive_eval: bool = False
    momentum_one: bool = False

    @property
    def n_tasks(self) -> int:
        return next(iter(self.results.values())).n

    def table(self) -> Table:
        """Rows: placements; columns: modes, statistics, presentation, accuracy ± 95% interval, paired difference."""
        columns = ["placement", "adapt/query", "running statistics", "query presented", "accuracy %",
                   "vs train mode (points)"]
        note = (f"{self.n_tasks} tasks, {self.n_way}-way (chance {100 / self.n_way:.1f}%); {self.inner_steps} inner "
                f"steps at lr {self.inner_lr:g}; mean ± 95% interval, differences paired on the same tasks")
        table = Table(columns, title="Placements on your model", note=note)
        for name, placement_name, source in ROWS:
            p = PLACEMENTS[placement_name]
            if name in self.skipped:
                table.add_row(name, f"{p.adapt_mode}/{p.query_mode}", STATS_SOURCES[source] if source else "not read",
                              PRESENTATIONS[p.presentation], "cannot run", "-")
            if name not in self.results:
                continue
            diff = self.differences.get(name)
            cell = "-" if diff is None else f"{100 * diff.mean:+.1f} ± {100 * diff.ci95:.1f}"
            table.add_row(name, f"{p.adapt_mode}/{p.query_mode}", STATS_SOURCES[source] if source else "not read",
                          PRESENTATIONS[p.presentation], self.results[name].formatted(), cell)
        return table

    def __str__(self) -> str:
        lines = [str(self.table()), "", "Verdict:"]
        lines += [f"- {line}" for line in self.verdict]
        lines += ["", f"Note: {self.estimate_note}."]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        """Everything measured, JSON-ready: per-task values, means, intervals, differences and the verdict."""
        return {
            "n_tasks": self.n_tasks, "n_way": self.n_way, "inner_steps": self.inner_steps, "inner_lr": self.inner_lr,
            "seconds_per_task": self.seconds_per_task, "held_untouched": self.held_untouched,
            "estimate_note": self.estimate_note,
            "results": {name: {"mean": r.mean, "ci95": r.ci95, "values": r.values.tolist()}
                        for name, r in self.results.items()},
            "vs_transductive": {name: {"mean": d.mean, "ci95": d.ci95} for name, d in self.differences.items()},
            "verdict": list(self.verdict),
            "skipped": dict(self.skipped),
        }

    def save_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` to ``path`` through a temporary file (never half-written)."""
        return write_json(path, self.to_dict())

    def save_markdown(self, path: str | Path) -> Path:
        """Write the table and the verdict as Markdown through a temporary file (never half-written)."""
        text = self.table().to_markdown() + "\n\n" + "\n".join(f"- {line}" for line in self.verdict) + "\n"
        return write_text(path, text)

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.verdict)
        return (self.table()._repr_html_() + f"<p><b>Verdict</b></p><ul>{items}</ul>"
                + f"<p><small>Note: {html.escape(self.estimate_note)}.</small></p>")


#: Why a meta-trained model's statistics can still be 0 and 1, in the verdict.
UNTOUCHED_WHY = "as a loop with higher's copies, or with TorchOpt's recover_state_dict, leaves them"

#: How near "close to train mode" is, in the verdict (notebook 03 asserts the same margin for its re-estimated row).
CLOSE = 0.05

#: The notebook that explains each finding of the verdict.
NOTEBOOKS = {
    "transduction": "notebook 04, one example at a time",
    "eval": "notebook 03, why eval fails",
    "contamination": "notebook 04, meta-test data in the running statistics",
    "checker": "notebook 06, check your code",
    "normalisation": "deep dive normalising_without_transduction",
}


def _fmt(result: EvalResult) -> str:
    return f"{result.formatted()}%"


def _points(diff: PairedDifference) -> str:
    return f"{abs(100 * diff.mean):.1f} ± {100 * diff.ci95:.1f} points"


def _reestimated_line(r: dict[str, EvalResult], d: dict[str, PairedDifference]) -> str:
    """What the ``eval_reestimated`` row gave, read from this model's own numbers only."""
    re_diff = d["eval_reestimated"]
    gain = r["eval_reestimated"].mean - r["eval_held"].mean
    said = (f"Statistics re-estimated on support sets at your model's weights before adaptation give "
            f"{_fmt(r['eval_reestimated'])} in eval mode ({100 * gain:+.1f} points against the held ones; "
            f"{100 * re_diff.mean:+.1f} ± {100 * re_diff.ci95:.1f} against train mode).")
    if re_diff.significant and re_diff.mean < -CLOSE:
        return (f"{said} Frozen while the inner steps move the weights, they do not replace train mode here "
                f"({NOTEBOOKS['eval']}). To predict without the other query examples, re-estimate them on each "
                f"task's support set after adaptation (notebook 06, recipe 2) or use Reptile's protocol (the "
                f"reptile_protocol row).")
    if re_diff.significant and re_diff.mean > CLOSE:
        return f"{said} For your model they beat train mode."
    return (f"{said} For your model they come within {100 * CLOSE:.0f} points of train mode, or show no clear "
            f"difference.")


def _placement_lines(report: PlacementReport) -> list[str]:
    """The verdict's findings on which placement to use, and on query examples that arrive one at a time."""
    r, d = report.results, report.differences
    lines = []
    train = _fmt(r["transductive"])
    if report.context_norm:
        lines.append(f"Your model normalises with statistics of the support set (a context normalisation), so train "
                     f"mode at meta-test ({train}) does not depend on the other query examples "
                     f"({NOTEBOOKS['normalisation']}).")
    stand_alone = [n for n in r if n not in ("transductive", "one_class_at_a_time")
                   and not (report.partly_transductive_eval and "eval" in n)]
    better = [n for n in stand_alone if d[n].significant and d[n].mean > 0]
    matching = [n for n in stand_alone if not d[n].significant]
    if better:
        top = max(better, key=lambda n: r[n].mean)
        lines.append(f"Use {top}: {_fmt(r[top])}, {_points(d[top])} above train mode ({train}) on the same tasks, "
                     f"and no prediction depends on the other query examples ({NOTEBOOKS['transduction']}).")
    elif matching:
        top = max(matching, key=lambda n: r[n].mean)
        lines.append(f"Use train mode at meta-test ({train}), or {top} ({_fmt(r[top])}; {100 * d[top].mean:+.1f} ± "
                     f"{100 * d[top].ci95:.1f} points on the same tasks, no clear difference), where no prediction "
                     f"depends on the other query examples ({NOTEBOOKS['transduction']}).")
    elif stand_alone:
        best = max(stand_alone, key=lambda n: r[n].mean)
        where = "" if report.context_norm else " Each prediction then depends on the other query examples."
        lines.append(f"Use train mode at meta-test: {train}.{where} If predictions must stand alone, the best here is "
                     f"{best} ({_fmt(r[best])}, {_points(d[best])} lower; {NOTEBOOKS['transduction']}, "
                     f"{NOTEBOOKS['normalisation']}).")
    one = d.get("one_at_a_time")
    if one is None:
        lines.append(f"Your model cannot predict one example at a time in train mode at all "
                     f"({report.skipped['one_at_a_time']}). Normalising each example together with the support set "
                     f"(Reptile's protocol) gives {_fmt(r['reptile_protocol'])} ({NOTEBOOKS['transduction']}).")
    elif one.significant and one.mean < 0:
        lines.append(f"Query examples that arrive one at a time cost {_points(one)} in train mode "
                     f"({_fmt(r['one_at_a_time'])}): the batch statistics of one example are not the task's. "
                     f"Normalising each example together with the support set (Reptile's protocol) gives "
                     f"{_fmt(r['reptile_protocol'])} ({NOTEBOOKS['transduction']}).")
    else:
        lines.append(f"Query examples that arrive one at a time cost nothing measurable here "
                     f"({_fmt(r['one_at_a_time'])}, {100 * one.mean:+.1f} ± {100 * one.ci95:.1f} points; "
                     f"{NOTEBOOKS['transduction']}).")
    return lines


def _statistics_lines(report: PlacementReport, keeps_stats: bool) -> list[str]:
    """The verdict's findings on the running statistics the model holds (none where it keeps none)."""
    r, d, chance = report.results, report.differences, 1 / report.n_way
    lines = []
    if not keeps_stats:
        lines.append("Your BatchNorm layers keep no running statistics, so eval mode normalises with batch "
                     "statistics like train mode: no placement here reads running statistics.")
    else:
        if report.partly_transductive_eval:
            lines.append("Some of your BatchNorm layers keep no running statistics: in eval mode they still normalise "
                         "with the batch's statistics, so the eval rows are partly transductive too.")
        held = d["eval_held"]
        near = ", near chance," if r["eval_held"].mean <= chance + 0.10 else ","
        below = held.significant and held.mean < 0
        if report.held_untouched and below:
            lines.append(f"The running statistics your model holds are still 0 and 1 ({UNTOUCHED_WHY}): eval mode "
                         f"with them gives {_fmt(r['eval_held'])}{near} {_points(held)} below "
                         f"train mode. Statistics of 0 and 1 do not fit your model's features; on the Conv4, no inner "
                         f"step size tried brought eval mode with them near train mode ({NOTEBOOKS['eval']}).")
        elif report.held_untouched:
            lines.append(f"The running statistics your model holds are still 0 and 1 ({UNTOUCHED_WHY}), yet eval "
                         f"mode with them gives {_fmt(r['eval_held'])}, "
                         f"{100 * held.mean:+.1f} ± {100 * held.ci95:.1f} points against train mode on the same tasks: "
                         f"your features happen to be near mean 0 and variance 1 (on the Conv4 they are not; "
                         f"{NOTEBOOKS['eval']}).")
        elif below:
            lines.append(f"The running statistics your model holds were written by training (shared buffers, a "
                         f"write-back or a plain training loop). With eval mode at this step size they are not usable: "
                         f"{_fmt(r['eval_held'])}{near} {_points(held)} below train mode. In MAML, statistics frozen "
                         f"while the inner steps move the weights go stale ({NOTEBOOKS['eval']}).")
        else:
            lines.append(f"The running statistics your model holds are usable with eval mode: {_fmt(r['eval_held'])}, "
                         f"{100 * held.mean:+.1f} ± {100 * held.ci95:.1f} points against train mode on the same tasks.")
        lines.append(_reestimated_line(r, d))
        if report.momentum_one and report.inner_steps > 0 and any(n.startswith("train_then_eval") for n in r):
            same = [n for n in ("train_then_eval_held", "train_then_eval_untouched", "train_then_eval_reestimated")
                    if n in r]
            lines.append(f"Your BatchNorm layers have momentum 1 (as higher's Omniglot example builds them): each "
                         f"train-mode pass replaces the running statistics with its batch's, so after the support "
                         f"steps they are the last support batch's, whatever the model held before. That is why "
                         f"{', '.join(same)} are equal here ({_fmt(r[same[0]])}).")
        if not report.held_untouched:
            lines.append("Your model's statistics were written by training: if they were also written during "
                         f"meta-test, a checkpoint carries test data ({NOTEBOOKS['contamination']}).")
    return lines


def verdict(report: PlacementReport, keeps_stats: bool) -> list[str]:
    """Findings in plain words, each with the notebook that explains it."""
    r, chance = report.results, 1 / report.n_way
    lines = _placement_lines(report) + _statistics_lines(report, keeps_stats)
    flat = [n for n, res in r.items()
            if res.n >= 5 and res.values.min() == res.values.max() and abs(res.mean - chance) < 1e-9]
    if flat:
        lines.append(f"{', '.join(flat)} scored exactly chance on every task, as a copy that predicts one class for "
                     f"every query does; a copy whose adapted weights are not finite numbers does that, so such a row "
                     f"may measure a diverged adaptation rather than a poor fit (the deep dive your_own_model shows "
                     f"how to check).")
    lines.append(f"To check the calls in your own loop, run it under mk.check_maml ({NOTEBOOKS['checker']}).")
    return lines
