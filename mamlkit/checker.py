"""A placement checker for your own MAML code: ``with mk.check_maml(model) as report: ...``.

Wrap your own meta-training or meta-test loop (written with ``higher``, with
``torch.func.functional_call``, or with mamlkit) in ``check_maml(model)``. While the block runs, the
checker watches the model, the patched copies ``higher`` makes of it, and the optimisers that update
its parameters. Afterwards ``print(report)`` lists each mistake it saw, in plain words, with what to
do about it and the lesson notebook that explains it; ``report.ok`` is True when it saw none.

What it watches, and how (global hooks, filtered to the model and its copies, so nothing is attached
to the model itself and ``torch.save(model)`` still works inside the block):

- forward passes of the model, of its BatchNorm layers, and of ``higher``'s patched copies of them
  (a global module forward pre-hook). ``torch.func.functional_call`` runs the model itself, so
  those calls are seen too, and told apart from plain calls because the parameters are not the
  model's own. Hooks registered on the model would not carry over to ``higher``'s copies (it builds
  new modules), so inside the block ``higher.monkeypatch``, which ``innerloop_ctx`` calls, is
  wrapped to learn which modules are copies of the model, their ``copy_initial_weights`` and the
  modes they were created with;
- every ``torch.optim`` optimiser step over the model's parameters (a global step pre-hook);
- ``backward()`` calls (``torch.autograd.backward`` is wrapped inside the block);
- saving: ``model.state_dict()`` and ``torch.save(model)`` (both wrapped inside the block).

Everything is put back when the block ends, even after an exception.

The mistakes it reports (``MISTAKES``), and when:

- ``eval_untouched_stats`` (notebook 04): a BatchNorm layer of the model or of a patched copy runs
  in eval mode while its running statistics were never updated (``num_batches_tracked == 0``).
- ``no_meta_gradient`` (03): an optimiser steps the model's parameters while every ``.grad`` is
  None or zero (``higher``'s default ``copy_initial_weights=True`` is the usual cause).
- ``inner_loop_on_meta_parameters`` (02): an optimiser steps the model's parameters after
  grad-enabled forward passes of the model itself and none of a patched copy or functional call;
  or the parameters change in place between two such forward passes.
- ``query_loss_without_graph`` (02): ``backward()`` is called on a tensor that does not require
  grad, after forward passes of the model ran under ``no_grad``/``inference_mode``.
- ``stale_patched_mode`` (03): a patched copy runs in the modes it was created with, while the
  model's modes were changed after it was created.
- ``meta_test_stats_saved`` (05): at meta-test, the model is saved (``state_dict()``,
  ``torch.save(model)``) with BatchNorm running statistics that train-mode passes of the model
  itself changed inside the block.
- ``train_mode_single_example`` (06): a BatchNorm layer runs in train mode on a batch of one.
- ``track_running_stats_flipped`` (13): a BatchNorm layer runs in eval mode with
  ``track_running_stats`` set to False after it was built (its running buffers still exist), so it
  normalises with those stored statistics, not with the batch's.

To avoid false alarms, a finding needs evidence that something went wrong, not just a suspicious pattern:
a forward pass under ``torch.no_grad()`` is fine (that is how meta-test predicts) and is only
reported when ``backward()`` is then called on a loss without a graph; running statistics that
change at meta-test are only reported when the model is saved with them.

"Meta-test" here means: no optimiser has stepped the model's parameters inside the block.
Only the model given to ``check_maml`` (and ``higher``'s copies of it) is watched: a
``copy.deepcopy`` of it is a different model.
"""

from __future__ import annotations

import textwrap
import weakref
from dataclasses import dataclass, field
from types import TracebackType

import higher
import higher.patch
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mamlkit.modes import get_modes, snapshot_bn_stats
from mamlkit.norms import is_batchnorm
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
            "after meta-training they are still mean 0, variance 1, which fit no task: about chance at any inner "
            "step size (notebook 12 also shows why better statistics alone do not rescue eval mode)."
            " To measure every placement on your own model and tasks: mk.placement_report "
            "(python -m mamlkit report).",
            "04_batchnorm_placements",
        ),
        Mistake(
            "no_meta_gradient",
            "The outer optimiser stepped, but the meta-parameters had no gradient",
            "Open higher.innerloop_ctx with copy_initial_weights=False, so that the fast weights start as "
            "the model's parameters and the query loss back-propagates into them; compute the query loss "
            "with gradients enabled and call backward() on it before the outer step.",
            "03_maml_with_higher",
        ),
        Mistake(
            "inner_loop_on_meta_parameters",
            "The inner loop changed the meta-parameters in place",
            "Adapt a patched copy, never the model: `with higher.innerloop_ctx(model, inner_opt, "
            "copy_initial_weights=False) as (fmodel, diffopt): diffopt.step(loss)` (or the torch.func "
            "equivalent). A torch.optim optimiser, or an in-place update, over model.parameters() "
            "overwrites the initial weights, and no meta-gradient flows through its steps: that is not MAML.",
            "02_train_eval_basics",
        ),
        Mistake(
            "query_loss_without_graph",
            "backward() was called on a loss computed without gradients",
            "Compute the query (meta) loss with gradients enabled. torch.no_grad() and "
            "torch.inference_mode() stop graph building whatever the mode; they belong to meta-test "
            "predictions only. .train()/.eval() have nothing to do with gradients.",
            "02_train_eval_basics",
        ),
        Mistake(
            "stale_patched_mode",
            "The patched model ran in the mode it was created with, not the one set on the model afterwards",
            "higher copies the training flags when innerloop_ctx opens; model.train()/model.eval() called "
            "later do not reach the patched copy. Set the mode before opening the context, or call "
            "fmodel.train()/fmodel.eval() on the patched model.",
            "03_maml_with_higher",
        ),
        Mistake(
            "meta_test_stats_saved",
            "Meta-test data was written into the running statistics, which were then saved",
            "Train-mode forward passes of the model itself (or functional_call with the model's own buffers) "
            "fold each batch into its BatchNorm running statistics. Restore them before saving "
            "(`with mk.preserved_bn_stats(model): ...` around the meta-test), give functional_call copies "
            "of the buffers, or adapt higher's patched copy; mk.meta_test leaves the model bit-identical.",
            "05_running_stats_contamination",
        ),
        Mistake(
            "train_mode_single_example",
            "Train-mode BatchNorm normalised a batch of a single example",
            "In train mode BatchNorm normalises with the statistics of the batch, so a prediction depends on "
            "the other examples (transduction), and one example alone is normalised by its own statistics: "
            "accuracy drops far. Predict the whole query set in one batch (and say the result is "
            "transductive), prepend the support set to each example (Reptile's protocol), or use a "
            "normalisation from the support set (norm='metabn' or 'tasknorm_i')."
            " To measure every placement on your own model and tasks: mk.placement_report "
            "(python -m mamlkit report).",
            "06_transductive_or_not",
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
            "13_answers_checked",
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
            "15_does_it_hold",
        ),
    ]
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
    """

    findings: list[Finding] = field(default_factory=list)
    observed: dict[str, int] = field(
        default_factory=lambda: {
            "forward passes of the model": 0,
            "higher patched copies": 0,
            "forward passes of patched copies": 0,
            "functional_call passes with other weights": 0,
            "optimiser steps on the model": 0,
        }
    )

    @property
    def ok(self) -> bool:
        """True when no mistake was seen."""
        return not self.findings

    @property
    def codes(self) -> list[str]:
        """The codes of the mistakes seen, in the order first seen."""
        return [f.code for f in self.findings]

    def add(self, code: str, message: str) -> None:
        """Record one occurrence of mistake ``code`` (a repeat only increases its count)."""
        for finding in self.findings:
            if finding.code == code:
                finding.count += 1
                return
        m = MISTAKES[code]
        self.findings.append(Finding(code, m.title, message, m.advice, m.notebook))

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


@dataclass
class _PatchedCopy:
    """What the checker knows about one of higher's patched copies of the model."""

    modes_at_creation: dict[str, bool]
    copy_initial_weights: bool
    stale_reported: bool = False


@dataclass(frozen=True)
class _Watched:
    """A watched module: its name in its root, whose it is, and what to check on its forward pass."""

    name: str
    original: bool
    copy: _PatchedCopy | None
    root: bool
    norm: bool
    dropout: bool = False


class MAMLChecker:
    """The context manager behind ``check_maml``; entering it returns the (live) ``Report``."""

    def __init__(self, model: nn.Module, raise_on_exit: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"check_maml needs the nn.Module your loop trains or tests, got {type(model).__name__}")
        self.model = model
        self.raise_on_exit = raise_on_exit
        self.report = Report()
        self._watched: weakref.WeakKeyDictionary[nn.Module, _Watched] = weakref.WeakKeyDictionary()
        self._handles: list = []
        self._restore: list = []
        self._active = False

    # ------------------------------------------------------------------ entering and leaving

    def __enter__(self) -> Report:
        if self._active:
            raise RuntimeError("this check_maml context is already active")
        self._active = True
        self.report = Report()
        self._params = list(self.model.parameters())
        self._param_ids = {id(p) for p in self._params}
        self._initial_stats = snapshot_bn_stats(self.model)
        self._own_running_means = {
            name: m.running_mean for name, m in self.model.named_modules() if is_batchnorm(m)
        }
        # what happened since the last optimiser step on the model
        self._plain_since_step = 0
        self._meta_since_step = 0
        self._nograd_since_step = 0
        self._copied_weights_since_step = False
        # what happened since the last grad-enabled plain forward pass
        self._last_plain_versions: tuple[int, ...] | None = None
        self._meta_since_plain = False
        self._stepped_since_plain = False
        self._nograd_forwards = 0
        self._stats_written = False
        self._model_steps = 0
        try:
            self._install()
        except BaseException:
            self._uninstall()
            raise
        return self.report

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._uninstall()
        if self.raise_on_exit and exc_type is None and not self.report.ok:
            raise MAMLMistakeError(str(self.report))

    def _install(self) -> None:
        # Global hooks, filtered by module: nothing is attached to the model itself, so it can still
        # be pickled (torch.save(model)) inside the block, and higher's copies need no hooks of their own.
        self._watch(self.model, original=True)
        self._handles.append(register_module_forward_pre_hook(self._on_module_forward))
        self._handles.append(register_optimizer_step_pre_hook(self._on_optimizer_step))
        for module in (higher, higher.patch):
            self._replace(module, "monkeypatch", self._wrap_monkeypatch(module.monkeypatch))
        self._replace(torch.autograd, "backward", self._wrap_backward(torch.autograd.backward))
        self._replace(torch, "save", self._wrap_save(torch.save))
        self._replace(nn.Module, "state_dict", self._wrap_state_dict(nn.Module.state_dict))

    def _replace(self, owner: object, name: str, value: object) -> None:
        self._restore.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._watched.clear()
        for owner, name, value in reversed(self._restore):
            setattr(owner, name, value)
        self._restore.clear()
        self._active = False

    # ------------------------------------------------------------------ hooks

    def _watch(self, root: nn.Module, original: bool, copy: _PatchedCopy | None = None) -> None:
        """Watch ``root`` (the model or a patched copy), its BatchNorm layers and its Dropout layers."""
        for name, m in root.named_modules():
            dropout = isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0
            if m is root or is_batchnorm(m) or dropout:
                self._watched[m] = _Watched(name, original, copy, m is root, is_batchnorm(m), dropout)

    def _on_module_forward(self, module: nn.Module, args: tuple) -> None:
        info = self._watched.get(module)
        if info is None:
            return
        if info.root:
            self._on_forward(module, info.original, info.copy)
        if info.norm:
            self._check_norm(info.name, module, args, info.original)
        if info.dropout and module.training and not torch.is_grad_enabled():
            where = "the model" if info.original else "higher's patched copy"
            self.report.add(
                "dropout_in_prediction",
                f"Dropout layer '{info.name}' of {where} (p={module.p:g}) was active in a forward pass without "
                "gradients: a prediction with random units dropped.",
            )

    def _wrap_monkeypatch(self, monkeypatch):
        def checked_monkeypatch(module, device=None, copy_initial_weights=True, track_higher_grads=True):
            fmodule = monkeypatch(
                module, device, copy_initial_weights=copy_initial_weights, track_higher_grads=track_higher_grads
            )
            if module is self.model:
                self.report.observed["higher patched copies"] += 1
                if copy_initial_weights:
                    self._copied_weights_since_step = True
                self._watch(fmodule, original=False, copy=_PatchedCopy(get_modes(module), copy_initial_weights))
            return fmodule

        return checked_monkeypatch

    def _wrap_backward(self, backward):
        def checked_backward(tensors, *args, **kwargs):
            self._check_backward(tensors)
            return backward(tensors, *args, **kwargs)

        return checked_backward

    def _wrap_save(self, save):
        def checked_save(obj, *args, **kwargs):
            if obj is self.model:
                self._check_saved("torch.save(model)")
            return save(obj, *args, **kwargs)

        return checked_save

    def _wrap_state_dict(self, state_dict):
        def checked_state_dict(module, *args, **kwargs):
            if module is self.model:
                self._check_saved("model.state_dict()")
            return state_dict(module, *args, **kwargs)

        return checked_state_dict

    # ------------------------------------------------------------------ observations and rules

    def _on_forward(self, module: nn.Module, original: bool, copy: _PatchedCopy | None) -> None:
        grad = torch.is_grad_enabled()
        if not grad:
            self._nograd_forwards += 1
            self._nograd_since_step += 1
        if copy is not None:
            self.report.observed["forward passes of patched copies"] += 1
            self._check_stale_mode(module, copy)
            kind = "meta"
        elif all(p is q for p, q in zip(module.parameters(), self._params)):
            self.report.observed["forward passes of the model"] += 1
            kind = "plain"
        else:
            self.report.observed["functional_call passes with other weights"] += 1
            kind = "meta"
        if not grad:
            return
        if kind == "meta":
            self._meta_since_step += 1
            self._meta_since_plain = True
            return
        self._plain_since_step += 1
        self._check_in_place_update()

    def _check_norm(self, name: str, module: nn.Module, args: tuple, original: bool) -> None:
        """``eval_untouched_stats``: a BatchNorm layer (of the model or of a patched copy) runs in eval
        mode while its running statistics were never updated (``num_batches_tracked == 0``).
        ``train_mode_single_example``: a BatchNorm layer runs in train mode on a batch of one example.
        ``track_running_stats_flipped``: eval mode with the flag cleared but the buffers still there.
        Also notes train-mode passes that write into the model's own running statistics."""
        tracks = module.track_running_stats and module.running_mean is not None
        where = "the model" if original else "higher's patched copy"
        if not module.training and tracks and int(module.num_batches_tracked.sum()) == 0:
            self.report.add(
                "eval_untouched_stats",
                f"BatchNorm layer '{name}' of {where} normalised a batch in eval mode with running statistics "
                "that were never updated (num_batches_tracked = 0: mean 0, variance 1).",
            )
        if not module.training and not module.track_running_stats and module.running_mean is not None:
            self.report.add(
                "track_running_stats_flipped",
                f"BatchNorm layer '{name}' of {where} ran in eval mode with track_running_stats=False but with its "
                "running buffers still in place, so it normalised with the stored statistics, not the batch's.",
            )
        if module.training and args and isinstance(args[0], torch.Tensor) and args[0].shape[0] == 1:
            self.report.add(
                "train_mode_single_example",
                f"BatchNorm layer '{name}' of {where} was given a batch of one example in train mode, so the "
                "example was normalised with its own statistics.",
            )
        if original and module.training and tracks and module.running_mean is self._own_running_means.get(name):
            self._stats_written = True

    def _on_optimizer_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if id(p) in self._param_ids]
        if not params:
            return
        self.report.observed["optimiser steps on the model"] += 1
        self._check_meta_gradient(optimizer, params)
        self._check_plain_inner_step(optimizer)
        self._plain_since_step = self._meta_since_step = self._nograd_since_step = 0
        self._copied_weights_since_step = False
        self._stepped_since_plain = True
        self._model_steps += 1

    def _check_meta_gradient(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        """``no_meta_gradient``: an optimiser steps the model's parameters while none of them has a
        gradient (every ``.grad`` is None or zero): the update does nothing."""
        if any(p.grad is not None and bool(p.grad.any()) for p in params):
            return
        if self._copied_weights_since_step:
            cause = ("higher.innerloop_ctx was opened with copy_initial_weights=True (its default): the fast "
                     "weights started as detached copies, so the query loss back-propagated into the copies "
                     "and never reached the model.")
        elif self._nograd_since_step and not self._meta_since_step:
            cause = "the forward passes since the last step ran under torch.no_grad(), so there was no graph."
        else:
            cause = "no backward() reached them since the last step (or zero_grad() ran after it)."
        self.report.add(
            "no_meta_gradient",
            f"{type(optimizer).__name__}.step() ran on {len(params)} parameters of the model, none of which had "
            f"a gradient (every .grad None or zero): {cause}",
        )

    def _check_plain_inner_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``inner_loop_on_meta_parameters``: an optimiser steps the model's parameters after a loss
        computed by the model itself (grad-enabled forward passes of the model, none of a patched copy
        or functional call since the last step): a plain inner loop on the meta-parameters."""
        if self._plain_since_step and not self._meta_since_step:
            self.report.add(
                "inner_loop_on_meta_parameters",
                f"{type(optimizer).__name__}.step() updated the model's own parameters after a loss computed by "
                "the model itself, with no patched copy or functional call in between: the meta-parameters "
                "were adapted in place.",
            )

    def _check_in_place_update(self) -> None:
        """``inner_loop_on_meta_parameters`` without an optimiser: the model's parameters changed in
        place between two grad-enabled forward passes of the model itself, with no optimiser step and
        no patched or functional pass in between (an inner loop written by hand on the model)."""
        versions = tuple(p._version for p in self._params)
        changed = self._last_plain_versions is not None and versions != self._last_plain_versions
        if changed and not self._meta_since_plain and not self._stepped_since_plain:
            self.report.add(
                "inner_loop_on_meta_parameters",
                "the model's own parameters were changed in place between two forward passes of the model "
                "(an inner-loop update written by hand): the meta-parameters were adapted in place.",
            )
        self._last_plain_versions = versions
        self._meta_since_plain = False
        self._stepped_since_plain = False

    def _check_backward(self, tensors: object) -> None:
        """``query_loss_without_graph``: ``backward()`` on a tensor that does not require grad, after
        forward passes of the model (or its copies) ran with gradients disabled."""
        if isinstance(tensors, torch.Tensor):
            tensors = [tensors]
        if not isinstance(tensors, (list, tuple)):
            return
        graphless = any(isinstance(t, torch.Tensor) and not t.requires_grad for t in tensors)
        if graphless and self._nograd_forwards:
            self.report.add(
                "query_loss_without_graph",
                "backward() was called on a loss with no graph behind it, after forward passes of the model ran "
                "under torch.no_grad() or torch.inference_mode() (it raises 'element 0 of tensors does not "
                "require grad').",
            )

    def _check_stale_mode(self, fmodule: nn.Module, copy: _PatchedCopy) -> None:
        """``stale_patched_mode``: a patched copy runs with the modes it was created with, while the
        model's modes were changed after it was created (and differ from the copy's)."""
        if copy.stale_reported:
            return
        copy_modes = get_modes(fmodule)
        model_modes = get_modes(self.model)
        if copy_modes == copy.modes_at_creation and model_modes != copy.modes_at_creation:
            copy.stale_reported = True
            then = "train" if copy.modes_at_creation.get("", True) else "eval"
            now = "train" if self.model.training else "eval"
            self.report.add(
                "stale_patched_mode",
                f"the model was switched to {now} mode after higher's innerloop_ctx created its patched copy; "
                f"the copy kept the {then} mode it was created with and ran in it.",
            )

    def _check_saved(self, how: str) -> None:
        """``meta_test_stats_saved``: at meta-test (no optimiser step on the model inside the block),
        the model is saved while its BatchNorm running statistics differ from those it had when the
        block began, after train-mode passes wrote into its own buffers."""
        if self._model_steps or not self._stats_written:
            return
        now = snapshot_bn_stats(self.model)
        changed = [k for k, v in now.items() if not torch.equal(v, self._initial_stats[k])]
        if changed:
            layers = sorted({k.rsplit(".", 1)[0] for k in changed})
            self.report.add(
                "meta_test_stats_saved",
                f"{how} saved running statistics of {len(layers)} BatchNorm layer(s) that train-mode passes of "
                "the model itself had changed during meta-test: they now contain meta-test data.",
            )


def check_maml(model: nn.Module, raise_on_exit: bool = False) -> MAMLChecker:
    """Watch a MAML loop on ``model`` and report placement mistakes: ``with check_maml(model) as report:``.

    Args:
        model: the model your loop meta-trains or meta-tests (the one you give ``higher.innerloop_ctx``,
            ``functional_call`` or ``mk.meta_train``).
        raise_on_exit: raise ``MAMLMistakeError`` (an AssertionError) with the report when the block
            ends and a mistake was seen (not when the block itself raised).

    Returns:
        A context manager; entering it gives the ``Report``, filled in while the block runs.

    Example::

        with mk.check_maml(model) as report:
            for task in tasks:
                with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                    ...
        print(report)
    """
    return MAMLChecker(model, raise_on_exit)
