"""The checker's vocabulary: the placement mistakes it knows (``MISTAKES``), what it found (``Finding``), its
``Report`` and ``MAMLMistakeError``. ``mamlkit.your_code.checker`` watches a loop and fills a report with them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from mamlkit.table import Table


@dataclass(frozen=True)
class Mistake:
    """A kind of mistake the checker recognises.

    Attributes:
        code: short identifier, e.g. ``"no_meta_gradient"``.
        title: one line saying what went wrong.
        advice: what to do about it.
        notebook: the lesson notebook that explains it.
    """

    code: str
    title: str
    advice: str
    notebook: str


MISTAKES: dict[str, Mistake] = {
    m.code: m
    for m in [
        Mistake(
            "eval_untouched_stats",
            "BatchNorm ran in eval mode with running statistics that were never updated",
            "Keep the (patched) model in train mode at meta-test, as during meta-training (original MAML "
            "does; mk.meta_test's 'transductive' placement). Eval mode normalises with running statistics, "
            "and higher never updates the model's own: its patched copies get copies of the buffers, so "
            "after meta-training they are still mean 0, variance 1, which do not describe the features of a "
            "model meta-trained in train mode: on the Conv4 of notebook 03, even at its best inner step size eval "
            "mode with them stays far below train mode (notebook 03 also shows why better statistics alone do "
            "not rescue eval mode)."
            " To measure every placement on your own model and tasks: mk.placement_report "
            "(python -m mamlkit report).",
            "02_maml_placements",
        ),
        Mistake(
            "no_meta_gradient",
            "The outer optimiser stepped, but the meta-parameters had no gradient",
            "Open higher.innerloop_ctx with copy_initial_weights=False, so that the fast weights start as "
            "the model's parameters and the query loss back-propagates into them; compute the query loss "
            "with gradients enabled and call backward() on it before the outer step.",
            "deep_dives/maml_on_sinusoids",
        ),
        Mistake(
            "inner_loop_on_meta_parameters",
            "The inner loop changed the meta-parameters in place",
            "Adapt a patched copy, never the model: `with higher.innerloop_ctx(model, inner_opt, "
            "copy_initial_weights=False) as (fmodel, diffopt): diffopt.step(loss)` (or the torch.func "
            "equivalent). A torch.optim optimiser, or an in-place update, over model.parameters() "
            "overwrites the initial weights, and no meta-gradient flows through its steps: that is not MAML.",
            "deep_dives/maml_on_sinusoids",
        ),
        Mistake(
            "query_loss_without_graph",
            "backward() was called on a loss computed without gradients",
            "Compute the query (meta) loss with gradients enabled. torch.no_grad() and "
            "torch.inference_mode() stop graph building whatever the mode; they belong to meta-test "
            "predictions only. .train()/.eval() have nothing to do with gradients.",
            "01_train_eval_basics",
        ),
        Mistake(
            "stale_patched_mode",
            "The patched model ran in the mode it was created with, not the one set on the model afterwards",
            "higher copies the training flags when innerloop_ctx opens; model.train()/model.eval() called "
            "later do not reach the patched copy. Set the mode before opening the context, or call "
            "fmodel.train()/fmodel.eval() on the patched model.",
            "deep_dives/maml_on_sinusoids",
        ),
        Mistake(
            "meta_test_stats_saved",
            "Meta-test data was written into the running statistics, which were then saved",
            "Train-mode forward passes of the model itself (or functional_call with the model's own buffers) "
            "fold each batch into its BatchNorm running statistics. Restore them before saving "
            "(`with mk.preserved_bn_stats(model): ...` around the meta-test), give functional_call copies "
            "of the buffers, or adapt higher's patched copy; mk.meta_test leaves the model bit-identical.",
            "04_one_example_at_a_time",
        ),
        Mistake(
            "train_mode_single_example",
            "Train-mode BatchNorm normalised a batch of a single example",
            "In train mode BatchNorm normalises with the statistics of the batch, so a prediction depends on "
            "the other examples (transduction), and one example alone is normalised by its own statistics: "
            "accuracy can drop far (how far depends on the network). Predict the whole query set in one batch "
            "(and say the result is transductive), prepend the support set to each example (Reptile's "
            "protocol), or use a normalisation from the support set (norm='metabn' or 'tasknorm_i')."
            " To measure every placement on your own model and tasks: mk.placement_report "
            "(python -m mamlkit report).",
            "04_one_example_at_a_time",
        ),
        Mistake(
            "track_running_stats_flipped",
            "Eval-mode BatchNorm read its stored running statistics although track_running_stats was set to False",
            "Setting layer.track_running_stats = False on a layer that was built with running statistics only "
            "stops their updates in train mode; eval mode still normalises with the stored buffers. For batch "
            "statistics keep the layer in train mode (fmodel.train()), build it with "
            "BatchNorm2d(..., track_running_stats=False), or set its running_mean and running_var to None."
            " To measure every placement on your own model and tasks: mk.placement_report "
            "(python -m mamlkit report).",
            "deep_dives/claims_checked",
        ),
        Mistake(
            "dropout_in_prediction",
            "Dropout was active in a prediction (a forward pass without gradients)",
            "In train mode Dropout zeroes random units, so predictions change from run to run and lose accuracy. "
            "model.eval() turns it off, but it also switches BatchNorm to running statistics, which fails at "
            "meta-test: the two decisions are coupled in one call. Turn Dropout off alone and keep BatchNorm in "
            "train mode: fmodel.train(), then m.eval() for every nn.Dropout m in fmodel.modules() (with mamlkit: "
            "`with mk.eval_mode(fmodel), mk.train_mode(fmodel, norm_only=True):` around the passes). Ignore this "
            "only for deliberate Monte Carlo dropout.",
            "deep_dives/does_it_hold",
        ),
        Mistake(
            "adapted_from_previous_task",
            "A task was adapted from the weights the previous task's adaptation ended with",
            "Start every task's inner loop from the meta-parameters: with TorchOpt, "
            "`state = torchopt.extract_state_dict(net, by='reference', detach_buffers=True)` before the tasks and "
            "`torchopt.recover_state_dict(net, state)` after each one; with learn2learn, a fresh "
            "`learner = maml.clone()` per task; with functional_call, `params = dict(model.named_parameters())` "
            "at the start of each task. Otherwise each task starts where the last one ended and the meta-gradient "
            "runs through every earlier task's inner loop.",
            "06_check_your_code",
        ),
    ]
}

#: Advice in the terms of the style of loop where a mistake was seen (the style is read from the loop's
#: structure, never by importing a library): ``clone`` (learn2learn's ``maml.clone()``, modules sharing the
#: model's buffers), ``wrapper`` (a MAML wrapper holding the model), ``replaced`` (the model's own parameters
#: replaced by adapted tensors, as TorchOpt's ``MetaSGD`` does), ``functional_call`` (``torch.func``).
STYLE_ADVICE: dict[tuple[str, str], str] = {
    ("inner_loop_on_meta_parameters", "wrapper"):
        "Adapt a clone, never the wrapper: per task `learner = maml.clone()`, then `learner.adapt(loss)` and "
        "`learner(x)`. maml.adapt(loss) replaces the model's own parameters by adapted tensors, so the "
        "meta-parameters are lost for the next task and for saving.",
    ("stale_patched_mode", "clone"):
        "learn2learn's maml.clone() copies the model's training flags when it runs; model.train()/model.eval() "
        "called later do not reach the clone. Set the mode before cloning, or call learner.train()/learner.eval() "
        "on the clone.",
    ("adapted_from_previous_task", "clone"):
        "Make a fresh clone for every task (`learner = maml.clone()` inside the task loop): a clone keeps its "
        "adapted weights, so a reused clone starts each task where the last one ended.",
    ("adapted_from_previous_task", "replaced"):
        "TorchOpt's MetaSGD adapts the model's own parameters: take `state = torchopt.extract_state_dict(net, "
        "by='reference', detach_buffers=True)` before the tasks and call `torchopt.recover_state_dict(net, "
        "state)` after each task (and before saving), so that every task starts from the meta-parameters.",
    ("adapted_from_previous_task", "functional_call"):
        "Start each task from `params = dict(model.named_parameters())`; keep the adapted dictionary inside "
        "the task.",
    ("meta_test_stats_saved", "clone"):
        "learn2learn's clones share the model's BatchNorm buffers, so every train-mode pass of a clone "
        "(learner = maml.clone()) writes into the model's running statistics, at meta-test as at "
        "meta-training. Save the checkpoint before meta-test, or restore the statistics before saving "
        "(`with mk.preserved_bn_stats(model): ...` around the meta-test). Train-mode predictions never read them.",
    ("meta_test_stats_saved", "functional_call"):
        "functional_call writes the running statistics into whatever buffers it is given: pass clones "
        "(`{k: v.clone() for k, v in model.named_buffers()}`), or restore them before saving "
        "(`with mk.preserved_bn_stats(model): ...`).",
    ("eval_untouched_stats", "replaced"):
        "TorchOpt's loop adapts the model itself, and recover_state_dict puts back the buffers it extracted, "
        "so the running statistics are still mean 0, variance 1 after meta-training. Keep `net.train()` at "
        "meta-test, as during meta-training (transductive batch statistics), and say so.",
    ("eval_untouched_stats", "functional_call"):
        "With torch.func keep the model in train mode at meta-test, or build BatchNorm with "
        "track_running_stats=False as PyTorch's own MAML example does (batch statistics in both modes): "
        "running statistics that were never written are mean 0, variance 1.",
    ("eval_untouched_stats", "clone"):
        "Keep the clone in train mode at meta-test (learner.train()), as during meta-training.",
    ("train_mode_single_example", "clone"):
        "Predict the whole query set in one call of the adapted clone (`learner(task.query_x)`) and say the "
        "result is transductive, or normalise each query example with the support set "
        "(`learner(torch.cat([support_x, x[None]]))[-1]`, Reptile's protocol). One example alone in train "
        "mode is normalised by its own statistics.",
}


@dataclass
class Finding:
    """One mistake seen while the block ran.

    Attributes:
        code: the mistake's code (a key of ``MISTAKES``).
        title: one line.
        message: what happened (the first time it was seen).
        advice: what to do about it.
        notebook: the lesson that explains it.
        count: how many times it was seen (a layer-level mistake counts once per layer and pass).
    """

    code: str
    title: str
    message: str
    advice: str
    notebook: str
    count: int = 1

    @property
    def lesson(self) -> str:
        """The lesson's path in the repository."""
        return f"notebooks/{self.notebook}.ipynb"

    def __str__(self) -> str:
        times = f" (seen {self.count} times)" if self.count > 1 else ""
        wrap = textwrap.TextWrapper(width=100, initial_indent="   ", subsequent_indent="   ")
        return "\n".join(
            [
                f"{self.code}: {self.title}{times}",
                wrap.fill(f"What happened: {self.message}"),
                wrap.fill(f"What to do: {self.advice}"),
                f"   Lesson: {self.lesson}",
            ]
        )


@dataclass(repr=False)
class Report:
    """What ``check_maml`` saw: the mistakes (``findings``) and what it observed.

    ``print(report)`` lists the findings; in a notebook the report displays as a table.

    Attributes:
        findings: one entry per kind of mistake seen, in the order first seen.
        observed: counts of what the checker saw (forward passes, patched copies, optimiser steps),
            so that a clean report can be told apart from a loop the checker never saw.
        stats_writes: train-mode forward passes that wrote into the model's own BatchNorm running statistics,
            by what ran them: ``"model"`` (the model itself), ``"clone"`` (a clone sharing its buffers, as
            learn2learn's) or ``"functional_call"`` (given the model's own buffers). A pass that wrote and whose
            statistics were put back afterwards (TorchOpt's ``recover_state_dict``) counts too.
    """

    findings: list[Finding] = field(default_factory=list)
    observed: dict[str, int] = field(
        default_factory=lambda: {
            "forward passes of the model": 0,
            "higher patched copies": 0,
            "forward passes of patched copies": 0,
            "functional_call passes with other weights": 0,
            "clones of the model": 0,
            "forward passes of clones": 0,
            "forward passes of the model with adapted weights in place": 0,
            "optimiser steps on the model": 0,
        }
    )
    stats_writes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no mistake was seen."""
        return not self.findings

    @property
    def codes(self) -> list[str]:
        """The codes of the mistakes seen, in the order first seen."""
        return [f.code for f in self.findings]

    def add(self, code: str, message: str, advice: str | None = None) -> None:
        """Record one occurrence of mistake ``code`` (a repeat only increases its count); ``advice`` in the
        terms of the loop's style replaces the mistake's general advice."""
        for finding in self.findings:
            if finding.code == code:
                finding.count += 1
                return
        m = MISTAKES[code]
        self.findings.append(Finding(code, m.title, message, advice or m.advice, m.notebook))

    def summary(self) -> str:
        """One line: how many mistakes, and what was observed."""
        seen = ", ".join(f"{what}: {n}" for what, n in self.observed.items())
        if not any(self.observed.values()):
            return "MAML check: nothing observed (did the loop use this model?)"
        head = "no mistakes seen" if self.ok else f"{len(self.findings)} kind(s) of mistake seen"
        return f"MAML check: {head} (observed: {seen})"

    def table(self) -> Table:
        """The findings as a table: mistake, what happened, what to do, lesson."""
        table = Table(["mistake", "what happened", "what to do", "lesson"], title=self.summary())
        for f in self.findings:
            times = f" ({f.count} times)" if f.count > 1 else ""
            table.add_row(f"{f.code}{times}", f.message, f.advice, f.lesson)
        return table

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"{i}. {f}" for i, f in enumerate(self.findings, 1)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


class MAMLMistakeError(AssertionError):
    """Raised on leaving ``check_maml(..., raise_on_exit=True)`` when a mistake was seen."""
