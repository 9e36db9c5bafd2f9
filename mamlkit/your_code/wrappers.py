"""The functions ``check_maml`` wraps while a check runs (``higher``'s monkeypatch, ``torch.autograd.backward``,
``torch.save``, ``nn.Module.state_dict``, torch.func's reparametrisation), shared by all active checkers: installed
when the first check enters and put back when the last one leaves."""

from __future__ import annotations

import contextlib
import threading

import higher
import higher.patch
import torch
from torch import nn

# ---------------------------------------------------------------- what the checkers wrap, shared by all of them

#: The checkers whose blocks are running, in the order they were entered. The wrapped functions are installed
#: when the first one enters and put back when the last one leaves, whatever the order of leaving.
ACTIVE: list = []  # of mamlkit.your_code.checker.MAMLChecker (which imports this module)
_ORIGINALS: dict[tuple[int, str], tuple[object, object, object]] = {}
#: Per thread (mamlkit runs tasks side by side in threads): each functional_call running in it, with its module
#: and the ids of the buffers that module held before the call swapped them.
_THREAD = threading.local()


def functional_calls() -> list[tuple[nn.Module, set[int]]]:
    calls = getattr(_THREAD, "functional_calls", None)
    if calls is None:
        calls = _THREAD.functional_calls = []
    return calls


def in_functional_call() -> bool:
    return bool(functional_calls())


def install_wrappers() -> None:
    import torch.nn.utils.stateless as stateless

    wrappers = [(module, "monkeypatch", _checked_monkeypatch) for module in (higher, higher.patch)]
    wrappers += [(torch.autograd, "backward", _checked_backward), (torch, "save", _checked_save),
                 (nn.Module, "state_dict", _checked_state_dict)]
    if hasattr(stateless, "_reparametrize_module"):
        wrappers.append((stateless, "_reparametrize_module", _checked_reparametrize))
    for owner, name, wrapper in wrappers:
        original = getattr(owner, name)
        _ORIGINALS[(id(owner), name)] = (owner, original, wrapper)
        setattr(owner, name, wrapper)


def restore_wrappers() -> None:
    """Put back every wrapped function (only where the checker's wrapper is still the one in place: a wrapper
    someone installed over it afterwards is left alone, and ours passes through once no checker is active)."""
    for (_, name), (owner, original, wrapper) in _ORIGINALS.items():
        if getattr(owner, name) is wrapper:
            setattr(owner, name, original)
    _ORIGINALS.clear()


def _original(owner: object, name: str):
    return _ORIGINALS[(id(owner), name)][1]


def _checked_monkeypatch(module, device=None, copy_initial_weights=True, track_higher_grads=True):
    fmodule = _original(higher.patch, "monkeypatch")(
        module, device, copy_initial_weights=copy_initial_weights, track_higher_grads=track_higher_grads)
    for checker in list(ACTIVE):
        checker._on_monkeypatch(module, fmodule, copy_initial_weights)
    return fmodule


def _checked_backward(tensors, *args, **kwargs):
    for checker in list(ACTIVE):
        checker._check_backward(tensors)
    return _original(torch.autograd, "backward")(tensors, *args, **kwargs)


def _checked_save(obj, *args, **kwargs):
    for checker in list(ACTIVE):
        if obj is checker.model:
            checker._check_saved("torch.save(model)")
    return _original(torch, "save")(obj, *args, **kwargs)


def _checked_state_dict(module, *args, **kwargs):
    for checker in list(ACTIVE):
        if module is checker.model:
            checker._check_saved("model.state_dict()")
    return _original(nn.Module, "state_dict")(module, *args, **kwargs)


@contextlib.contextmanager
def _checked_reparametrize(module, *args, **kwargs):
    import torch.nn.utils.stateless as stateless

    held = {id(b) for b in module.buffers()}
    with _original(stateless, "_reparametrize_module")(module, *args, **kwargs):
        functional_calls().append((module, held))
        try:
            yield
        finally:
            functional_calls().pop()
