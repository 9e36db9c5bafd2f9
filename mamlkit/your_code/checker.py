"""A placement checker for your own MAML code: ``with mk.check_maml(model) as report: ...``.

Wrap your own meta-training or meta-test loop (written with ``higher``, learn2learn, TorchOpt,
``torch.func`` or mamlkit) in ``check_maml(model)``. While the block runs, the checker watches the model,
the patched copies ``higher`` makes of it, the clones learn2learn makes of it, and the optimisers that
update its parameters. It imports neither learn2learn nor TorchOpt: it recognises their objects by their
structure. Afterwards ``print(report)`` lists each mistake it saw, in plain words, with what to
do about it and the lesson notebook that explains it; ``report.ok`` is True when it saw none.

What it watches, and how (global hooks, filtered to the model and its copies, so nothing is attached
to the model itself and ``torch.save(model)`` still works inside the block):

- forward passes of the model, of its BatchNorm layers, and of ``higher``'s patched copies of them
  (a global module forward pre-hook). ``torch.func.functional_call`` runs the model itself, so
  those calls are seen too, and told apart from plain calls because the parameters are not the
  model's own (``functional_call`` is told from weights left in place, TorchOpt's ``MetaSGD`` style, by
  wrapping the context manager it swaps them with). Hooks registered on the model would not carry over to
  ``higher``'s copies (it builds new modules), so inside the block ``higher.monkeypatch``, which
  ``innerloop_ctx`` calls, is wrapped to learn which modules are copies of the model, their
  ``copy_initial_weights`` and the modes they were created with;
- clones: a module first seen running whose buffers are the model's own tensors, or whose parameters are
  computed from the model's (learn2learn's ``maml.clone()``/``clone_module`` makes both), is watched as a
  clone from then on: its passes, modes and batch sizes, and the statistics it writes into the model, which
  count as the model's. A module that holds the model itself (learn2learn's ``MAML`` wrapper) is noted;
- every ``torch.optim`` optimiser step over the model's parameters (a global step pre-hook);
- ``backward()`` calls (``torch.autograd.backward`` is wrapped inside the block);
- saving: ``model.state_dict()`` and ``torch.save(model)`` (both wrapped inside the block).

Everything is put back when the block ends, even after an exception; with several checkers at once, the
wrapped functions are put back when the last one leaves, in whatever order they leave. ``check_maml(model)``
used without ``with`` checks nothing and says so (``print(checker)``; ``checker.ok`` raises).

The mistakes it reports (``MISTAKES``), and when:

- ``eval_untouched_stats`` (notebook 02): a BatchNorm layer of the model or of a patched copy runs
  in eval mode while its running statistics were never updated (``num_batches_tracked == 0``).
- ``no_meta_gradient`` (deep dive maml_on_sinusoids): an optimiser steps the model's parameters while every ``.grad`` is
  None or zero (``higher``'s default ``copy_initial_weights=True`` is the usual cause).
- ``inner_loop_on_meta_parameters`` (deep dive maml_on_sinusoids): an optimiser steps the model's parameters after
  grad-enabled forward passes of the model itself and none of a patched copy or functional call;
  or the parameters change in place between two such forward passes; or a MAML wrapper ran while the
  model's parameters were replaced by adapted tensors (learn2learn's ``maml.adapt`` on the wrapper).
- ``adapted_from_previous_task`` (06): the fast weights of the model or of one clone take inner steps on
  a second input batch without going back to the meta-parameters (TorchOpt without ``recover_state_dict``,
  a learn2learn clone reused across tasks, a functional_call loop carrying its weights over), or the model
  still holds adapted weights when the outer optimiser steps, when it is saved or when the block ends.
- ``query_loss_without_graph`` (01): ``backward()`` is called on a tensor that does not require
  grad, after forward passes of the model ran under ``no_grad``/``inference_mode``.
- ``stale_patched_mode`` (deep dive maml_on_sinusoids): a patched copy (or a learn2learn clone) runs in the
  modes it was created with, while the model's modes were changed after it was created.
- ``meta_test_stats_saved`` (04): at meta-test, the model is saved (``state_dict()``,
  ``torch.save(model)``) with BatchNorm running statistics that train-mode passes changed inside the
  block: of the model itself, of a clone sharing its buffers, or of a functional_call given its buffers.
- ``train_mode_single_example`` (04): a BatchNorm layer runs in train mode on a batch of one.
- ``track_running_stats_flipped`` (deep dive claims_checked): a BatchNorm layer runs in eval mode with
  ``track_running_stats`` set to False after it was built (its running buffers still exist), so it
  normalises with those stored statistics, not with the batch's.

To avoid false alarms, a finding needs evidence that something went wrong, not just a suspicious pattern:
a forward pass under ``torch.no_grad()`` is fine (that is how meta-test predicts) and is only
reported when ``backward()`` is then called on a loss without a graph; running statistics that
change at meta-test are only reported when the model is saved with them.

Findings seen in a learn2learn, TorchOpt or torch.func loop carry advice in that library's terms.
"Meta-test" here means: no optimiser has stepped the model's parameters inside the block.
Only the model given to ``check_maml`` (and ``higher``'s copies and the clones of it) is watched: a
``copy.deepcopy`` of it is a different model. mamlkit's own probing passes run under
``mamlkit.plumbing.checks.unwatched()``.
"""

from __future__ import annotations

import weakref
from types import TracebackType

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mamlkit.modes import get_modes, snapshot_bn_stats
from mamlkit.norms import is_batchnorm
from mamlkit.plumbing.checks import probing
from mamlkit.your_code.mistakes import MISTAKES, STYLE_ADVICE, Finding, MAMLMistakeError, Report
from mamlkit.your_code.watched import WRITERS, Chain, PatchedCopy, Watched, derived_from, fingerprint, unwrap
from mamlkit.your_code.wrappers import (
    ACTIVE,
    functional_calls,
    in_functional_call,
    install_wrappers,
    restore_wrappers,
)

_NOT_ENTERED = ("check_maml(model) was not used with `with`, so nothing was checked: write "
                "`with mk.check_maml(model) as report:` around your loop, then print(report) or report.ok")


class MAMLChecker:
    """The context manager behind ``check_maml``; entering it returns the (live) ``Report``.

    Used without ``with``, it checks nothing and says so: ``print(checker)`` shows why, and ``checker.ok``
    (or ``.codes``, ``.findings``) raises a RuntimeError with what to write instead."""

    def __init__(self, model: nn.Module, raise_on_exit: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"check_maml needs the nn.Module your loop trains or tests, got {type(model).__name__}")
        self.model = model
        self.raise_on_exit = raise_on_exit
        self.report = Report()
        self._watched: weakref.WeakKeyDictionary[nn.Module, Watched] = weakref.WeakKeyDictionary()
        self._ignored: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        self._wrappers: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        self._chains: weakref.WeakKeyDictionary[nn.Module, Chain] = weakref.WeakKeyDictionary()
        self._handles: list = []
        self._active = False
        self._entered = False

    # ------------------------------------------------------------------ used without `with`

    def _require_entered(self, what: str) -> Report:
        if not self._entered:
            raise RuntimeError(f"{_NOT_ENTERED} ({what} asked of the checker itself)")
        return self.report

    @property
    def ok(self) -> bool:
        """The report's ``ok`` once the block has run; a RuntimeError that says why if it never ran."""
        return self._require_entered("ok").ok

    @property
    def codes(self) -> list[str]:
        """The report's ``codes`` once the block has run."""
        return self._require_entered("codes").codes

    @property
    def findings(self) -> list[Finding]:
        """The report's ``findings`` once the block has run."""
        return self._require_entered("findings").findings

    def __str__(self) -> str:
        return str(self.report) if self._entered else f"MAML check: {_NOT_ENTERED}."

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self.report._repr_html_() if self._entered else f"<p>MAML check: {_NOT_ENTERED}.</p>"

    # ------------------------------------------------------------------ entering and leaving

    def __enter__(self) -> Report:
        if self._active:
            raise RuntimeError("this check_maml context is already active")
        self._active = self._entered = True
        self.report = Report()
        self._params = list(self.model.parameters())
        self._param_ids = {id(p) for p in self._params}
        self._initial_stats = snapshot_bn_stats(self.model)
        self._own_running_means = {
            name: m.running_mean for name, m in self.model.named_modules() if is_batchnorm(m)
        }
        self._first_norm = next((name for name, m in self.model.named_modules() if is_batchnorm(m)), None)
        self._own_buffers = dict(self.model.named_buffers())
        self._param_names = [name for name, _ in self.model.named_parameters()]
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
        self._stats_writers: set[str] = set()
        self._model_steps = 0
        self._wrapper_seen = False
        self._replaced_seen = False
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
        try:
            if exc_type is None:
                self._check_weights_put_back("when the block ended")
                self._advise_in_the_loop_s_terms()
        finally:
            self._uninstall()
        if self.raise_on_exit and exc_type is None and not self.report.ok:
            raise MAMLMistakeError(str(self.report))

    def _own_buffer_ids(self) -> set[int]:
        """The ids of the buffers the model holds now (TorchOpt's recover_state_dict puts new tensors in their
        place), or, inside a functional_call of the model, those it held before the call swapped them."""
        for module, held in reversed(functional_calls()):
            if module is self.model:
                return held
        return {id(b) for b in self.model.buffers()}

    def _advise_in_the_loop_s_terms(self) -> None:
        """A finding on the model's own layers seen before the loop's style showed (the first pass of a TorchOpt
        loop runs the model with its meta-parameters) gets the advice of that style once it is known."""
        if not self._replaced_seen:
            return
        for finding in self.report.findings:
            advice = STYLE_ADVICE.get((finding.code, "replaced"))
            if advice and finding.advice == MISTAKES[finding.code].advice and "of the model " in finding.message:
                finding.advice = advice

    def _install(self) -> None:
        # Global hooks, filtered by module: nothing is attached to the model itself, so it can still
        # be pickled (torch.save(model)) inside the block, and the copies and clones need no hooks of their own.
        self._watch(self.model, original=True)
        for m in self.model.modules():
            if m not in self._watched:
                self._ignored.add(m)
        self._handles.append(register_module_forward_pre_hook(self._on_module_forward))
        self._handles.append(register_optimizer_step_pre_hook(self._on_optimizer_step))
        if not ACTIVE:
            install_wrappers()
        ACTIVE.append(self)

    def _uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._watched.clear()
        self._chains.clear()
        self._ignored.clear()
        self._wrappers.clear()
        if self in ACTIVE:
            ACTIVE.remove(self)
            if not ACTIVE:
                restore_wrappers()
        self._active = False

    # ------------------------------------------------------------------ hooks

    def _watch(self, root: nn.Module, original: bool, copy: PatchedCopy | None = None, clone: bool = False) -> None:
        """Watch ``root`` (the model, a patched copy or a clone), its BatchNorm layers and its Dropout layers."""
        for name, m in root.named_modules():
            dropout = isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0
            if m is root or is_batchnorm(m) or dropout:
                self._watched[m] = Watched(name, original, copy, m is root, is_batchnorm(m), dropout, clone)
            elif not original:
                self._ignored.add(m)

    def _classify(self, module: nn.Module) -> Watched | None:
        """A module first seen running: a clone of the model, watched from now on, when its buffers are the
        model's own tensors or its parameters are computed from the model's (learn2learn's ``clone_module``
        makes both: ``param.clone()`` and the buffers shared); a wrapper that holds the model itself (a MAML
        wrapper) is noted; anything else is ignored from now on."""
        if any(m is self.model for m in module.modules()):
            self._wrapper_seen = True
            self._wrappers.add(module)
            return None
        buffers = dict(module.named_buffers())
        shares_buffers = bool(buffers) and buffers.keys() == self._own_buffers.keys() and all(
            buffers[k] is self._own_buffers[k] for k in buffers)
        derived = False
        if not shares_buffers and self._param_names:
            params = dict(module.named_parameters())
            derived = list(params) == self._param_names and all(
                derived_from(params[name], own) for name, own in zip(self._param_names, self._params))
        if not (shares_buffers or derived):
            self._ignored.add(module)
            return None
        self.report.observed["clones of the model"] += 1
        # a clone copies the model's modes when it is made, as higher's copy does; first seen is when it first runs
        self._watch(module, original=False, copy=PatchedCopy(get_modes(module), False), clone=True)
        return self._watched.get(module)

    def _on_module_forward(self, module: nn.Module, args: tuple) -> None:
        if probing():
            return
        info = self._watched.get(module)
        if info is None:
            if module in self._ignored:
                return
            info = None if module in self._wrappers else self._classify(module)
            if info is None:
                if module in self._wrappers:
                    self._check_weights_put_back("when the MAML wrapper ran")
                return
        if info.root:
            self._on_forward(module, info, args)
        if info.norm:
            self._check_norm(info, module, args)
        if info.dropout and module.training and not torch.is_grad_enabled():
            self.report.add(
                "dropout_in_prediction",
                f"Dropout layer '{info.name}' of {info.where} (p={module.p:g}) was active in a forward pass without "
                "gradients: a prediction with random units dropped.",
            )

    def _on_monkeypatch(self, module: nn.Module, fmodule: nn.Module, copy_initial_weights: bool) -> None:
        if module is self.model:
            self.report.observed["higher patched copies"] += 1
            if copy_initial_weights:
                self._copied_weights_since_step = True
            self._watch(fmodule, original=False, copy=PatchedCopy(get_modes(module), copy_initial_weights))

    # ------------------------------------------------------------------ observations and rules

    def _on_forward(self, module: nn.Module, info: Watched, args: tuple) -> None:
        grad = torch.is_grad_enabled()
        if not grad:
            self._nograd_forwards += 1
            self._nograd_since_step += 1
        if info.clone:
            self.report.observed["forward passes of clones"] += 1
            self._check_stale_mode(module, info.copy, clone=True)
            self._follow_chain(module, args, grad)
            kind = "meta"
        elif info.copy is not None:
            self.report.observed["forward passes of patched copies"] += 1
            self._check_stale_mode(module, info.copy)
            kind = "meta"
        elif all(p is q for p, q in zip(module.parameters(), self._params)):
            self.report.observed["forward passes of the model"] += 1
            self._follow_chain(module, args, grad)
            kind = "plain"
        else:
            functional = in_functional_call()
            self.report.observed["functional_call passes with other weights" if functional
                                 else "forward passes of the model with adapted weights in place"] += 1
            if not functional:
                self._replaced_seen = True
            self._follow_chain(module, args, grad)
            kind = "meta"
        if not grad:
            return
        if kind == "meta":
            self._meta_since_step += 1
            self._meta_since_plain = True
            return
        self._plain_since_step += 1
        self._check_in_place_update()

    def _follow_chain(self, root: nn.Module, args: tuple, grad: bool) -> None:
        """``adapted_from_previous_task``: the fast weights of one root (the model, or one clone) took inner
        steps on two different input batches without going back to the meta-parameters in between: a task
        adapted from where the previous task's adaptation ended (TorchOpt without ``recover_state_dict``, a
        learn2learn clone reused across tasks, a functional_call loop that carries its weights over)."""
        params = tuple(unwrap(p) for p in root.parameters())
        chain = self._chains.get(root)
        if chain is None or all(p is q for p, q in zip(params, self._params)):
            chain = self._chains[root] = Chain(params)
        elif not all(p is q for p, q in zip(params, chain.params)):
            trainable = [(p, q) for p, q in zip(params, chain.params) if p.requires_grad]
            if trainable and all(derived_from(p, q) for p, q in trainable):
                if chain.last_input is not None and chain.last_input not in chain.step_inputs:
                    chain.step_inputs.append(chain.last_input)
                if len(chain.step_inputs) > 1 and not chain.reported:
                    chain.reported = True
                    self._report_previous_task(root)
            else:                                                   # fresh weights: a new adaptation
                chain = self._chains[root] = Chain(params)
            chain.params = params
        if grad:
            chain.last_input = fingerprint(args)

    def _report_previous_task(self, root: nn.Module) -> None:
        info = self._watched.get(root)
        if info is not None and info.clone:
            style, who = "clone", "a learn2learn-style clone"
        elif in_functional_call():
            style, who = "functional_call", "functional_call's weights"
        else:
            style, who = "replaced", "the model (its adapted weights in place, as TorchOpt's MetaSGD leaves them)"
        self.report.add(
            "adapted_from_previous_task",
            f"{who} took inner-loop steps on a second input batch without going back to the meta-parameters: "
            "the next task was adapted from the weights the previous task's adaptation ended with.",
            advice=STYLE_ADVICE.get(("adapted_from_previous_task", style)),
        )

    def _check_weights_put_back(self, when: str) -> None:
        """The model's parameters are its meta-parameters again (learn2learn's ``maml.adapt`` on the wrapper
        and TorchOpt's ``MetaSGD`` put adapted tensors in their place; a functional_call puts them back itself).
        Via a MAML wrapper: ``inner_loop_on_meta_parameters``; else ``adapted_from_previous_task``."""
        if in_functional_call() or all(p is q for p, q in zip(self.model.parameters(), self._params)):
            return
        if self._wrapper_seen:
            self.report.add(
                "inner_loop_on_meta_parameters",
                f"{when}, the model's parameters had been replaced by adapted tensors: adapt() was called on the "
                "MAML wrapper itself (maml.adapt(loss)), which adapts the model and so the meta-parameters in place.",
                advice=STYLE_ADVICE[("inner_loop_on_meta_parameters", "wrapper")],
            )
        elif "adapted_from_previous_task" not in self.report.codes:
            self.report.add(
                "adapted_from_previous_task",
                f"{when}, the model still held adapted weights in place of its meta-parameters (they were never "
                "put back): whatever runs next starts from the last task's adapted weights.",
                advice=STYLE_ADVICE[("adapted_from_previous_task", "replaced")],
            )

    def _check_norm(self, info: Watched, module: nn.Module, args: tuple) -> None:
        """``eval_untouched_stats``: a BatchNorm layer (of the model, a patched copy or a clone) runs in eval
        mode while its running statistics were never updated (``num_batches_tracked == 0``).
        ``train_mode_single_example``: a BatchNorm layer runs in train mode on a batch of one example.
        ``track_running_stats_flipped``: eval mode with the flag cleared but the buffers still there.
        Also notes train-mode passes that write into the model's own running statistics (the model's
        layers, a clone's, or a functional_call given the model's buffers)."""
        name, where = info.name, info.where
        tracks = module.track_running_stats and module.running_mean is not None
        style = ("clone" if info.clone else "functional_call" if in_functional_call()
                 else "replaced" if info.original and self._replaced_seen else None)
        if not module.training and tracks and int(module.num_batches_tracked.sum()) == 0:
            self.report.add(
                "eval_untouched_stats",
                f"BatchNorm layer '{name}' of {where} normalised a batch in eval mode with running statistics "
                "that were never updated (num_batches_tracked = 0: mean 0, variance 1).",
                advice=STYLE_ADVICE.get(("eval_untouched_stats", style)),
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
                advice=STYLE_ADVICE.get(("train_mode_single_example", style)),
            )
        if module.training and tracks and id(unwrap(module.running_mean)) in self._own_buffer_ids():
            self._stats_written = True
            writer = "clone" if info.clone else "functional_call" if in_functional_call() else "model"
            self._stats_writers.add(writer)
            if name == self._first_norm:                            # one count per pass, not per layer
                self.report.stats_writes[writer] = self.report.stats_writes.get(writer, 0) + 1

    def _on_optimizer_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if id(p) in self._param_ids]
        if not params:
            return
        self.report.observed["optimiser steps on the model"] += 1
        self._check_weights_put_back("when the outer optimiser stepped")
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

    def _check_stale_mode(self, fmodule: nn.Module, copy: PatchedCopy, clone: bool = False) -> None:
        """``stale_patched_mode``: a patched copy (or a clone) runs with the modes it was created with, while
        the model's modes were changed after it was created (and differ from the copy's)."""
        if copy.stale_reported:
            return
        copy_modes = get_modes(fmodule)
        model_modes = get_modes(self.model)
        if copy_modes == copy.modes_at_creation and model_modes != copy.modes_at_creation:
            copy.stale_reported = True
            then = "train" if copy.modes_at_creation.get("", True) else "eval"
            now = "train" if self.model.training else "eval"
            made = "a clone was made (maml.clone())" if clone else "higher's innerloop_ctx created its patched copy"
            self.report.add(
                "stale_patched_mode",
                f"the model was switched to {now} mode after {made}; "
                f"the {'clone' if clone else 'copy'} kept the {then} mode it was created with and ran in it.",
                advice=STYLE_ADVICE[("stale_patched_mode", "clone")] if clone else None,
            )

    def _check_saved(self, how: str) -> None:
        """``meta_test_stats_saved``: at meta-test (no optimiser step on the model inside the block),
        the model is saved while its BatchNorm running statistics differ from those it had when the
        block began, after train-mode passes wrote into its own buffers."""
        self._check_weights_put_back(f"when {how} saved the model")
        if self._model_steps or not self._stats_written:
            return
        now = snapshot_bn_stats(self.model)
        changed = [k for k, v in now.items() if not torch.equal(v, self._initial_stats[k])]
        if changed:
            layers = sorted({k.rsplit(".", 1)[0] for k in changed})
            self.report.add(
                "meta_test_stats_saved",
                f"{how} saved running statistics of {len(layers)} BatchNorm layer(s) that train-mode passes of "
                f"{' and '.join(sorted(WRITERS[w] for w in self._stats_writers))} had changed during meta-test: "
                "they now contain meta-test data.",
                advice=STYLE_ADVICE.get(("meta_test_stats_saved", next(iter(self._stats_writers - {"model"}), ""))),
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
