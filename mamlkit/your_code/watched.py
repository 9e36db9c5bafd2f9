"""What the checker keeps about the modules and fast weights it watches: higher's patched copies (``PatchedCopy``),
each watched module (``Watched``), each chain of fast weights (``Chain``), and how a tensor is traced back to the
one it was computed from (``derived_from``) whatever library made it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PatchedCopy:
    """What the checker knows about one of higher's patched copies of the model."""

    modes_at_creation: dict[str, bool]
    copy_initial_weights: bool
    stale_reported: bool = False


#: What wrote into the model's running statistics, in the words of the findings.
WRITERS = {"model": "the model itself", "clone": "clones sharing the model's buffers (learn2learn's maml.clone())",
            "functional_call": "functional_call given the model's own buffers"}

#: Where a watched module comes from, in the words of the findings.
WHERE = {
    "model": "the model",
    "higher": "higher's patched copy",
    "clone": "a clone of the model (learn2learn's maml.clone() / clone_module)",
}


@dataclass(frozen=True)
class Watched:
    """A watched module: its name in its root, whose it is, and what to check on its forward pass."""

    name: str
    original: bool
    copy: PatchedCopy | None
    root: bool
    norm: bool
    dropout: bool = False
    clone: bool = False

    @property
    def where(self) -> str:
        return WHERE["model" if self.original else "clone" if self.clone else "higher"]


@dataclass
class Chain:
    """One root's fast weights since they were last the meta-parameters (or since the clone was made): the
    weights of its last forward pass, the input of its last pass with gradients, and the inputs its steps used."""

    params: tuple[torch.Tensor, ...] | None = None
    last_input: tuple | None = None
    step_inputs: list[tuple] = field(default_factory=list)
    reported: bool = False


def unwrap(t: torch.Tensor) -> torch.Tensor:
    """The tensor under torch.func's wrappers (grad, vmap): the one the user passed in."""
    functorch = torch._C._functorch
    while isinstance(t, torch.Tensor) and functorch.is_functorch_wrapped_tensor(t):
        t = functorch.get_unwrapped(t)
    return t



def derived_from(new: torch.Tensor, old: torch.Tensor, depth: int = 4) -> bool:
    """True when ``new`` is computed from ``old`` through at most ``depth`` autograd nodes (a clone of it, or
    ``old`` minus a step): the structure of a fast weight, whatever library made it."""
    if new is old:
        return True
    if new.grad_fn is None:
        return False
    frontier, seen = [new.grad_fn], set()
    for _ in range(depth):
        following = []
        for node in frontier:
            for parent, _index in getattr(node, "next_functions", ()):
                if parent is None or id(parent) in seen:
                    continue
                seen.add(id(parent))
                if parent is old.grad_fn or getattr(parent, "variable", None) is old:
                    return True
                following.append(parent)
        frontier = following
    return False


def fingerprint(args: tuple) -> tuple | None:
    """What tells one input batch from another: its shape and where its data lives (no copy, no sync)."""
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    x = unwrap(args[0])
    try:
        return (tuple(x.shape), x.device.type, x.data_ptr())
    except RuntimeError:
        return None
