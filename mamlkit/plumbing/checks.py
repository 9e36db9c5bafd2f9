"""The validation layer at the package's public doors: one place that decides what an input may be.

The command line, ``meta_train``, ``meta_test``, ``placement_report``, ``TaskSampler``, ``ModelConfig``,
``TrainConfig``, the mode context managers and the environment variables the package reads all check their
inputs here, before any work starts. Each refusal is a ``ConfigError`` or ``DataError`` (``mamlkit.errors``) of one
line that names the argument (or variable) and says what to do; no input reaches torch or numpy unchecked and
fails there instead.

The rules: learning rates and scales are finite numbers above 0; counts are whole numbers (never ``True`` or
``False``) of at least 1, or 0 where 0 means something (inner steps); seeds are whole numbers of at least 0;
probabilities are in [0, 1); every episode has matching shapes, integer labels in range and finite inputs; the
model's head has an output per class; the device exists on this machine.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from pathlib import Path

import torch
from torch import nn

from mamlkit.errors import ConfigError, DataError

#: An error class of the package's own (``ConfigError`` or ``DataError``).
ErrorType = type[ValueError]


def _shown(value: object) -> str:
    """A value for a one-line message: its repr, cut short."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def is_whole(value: object) -> bool:
    """True for ``int`` and numpy integers; False for bools (``True`` is not a count) and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole_number(name: str, value: object, minimum: int = 1, error: ErrorType = ConfigError) -> int:
    """``value`` as an ``int`` if it is a whole number (not a bool) of at least ``minimum``, else ``error``."""
    if not is_whole(value) or int(value) < minimum:  # type: ignore[call-overload]
        what = "a positive whole number (1 or more)" if minimum == 1 else f"a whole number of at least {minimum}"
        raise error(f"{name} must be {what}, got {_shown(value)}")
    return int(value)  # type: ignore[call-overload]


def seed(name: str, value: object, error: ErrorType = ConfigError) -> int:
    """A seed: a whole number of at least 0."""
    if not is_whole(value) or int(value) < 0:  # type: ignore[call-overload]
        raise error(f"{name} must be a whole number of at least 0 (e.g. 0), got {_shown(value)}")
    return int(value)  # type: ignore[call-overload]


def is_real(value: object) -> bool:
    """True for ints and floats (numpy's too), False for bools, strings, tensors and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def rate(name: str, value: object, example: str = "0.4", error: ErrorType = ConfigError) -> float:
    """A learning rate or a scale: a finite number above 0 (NaN, infinity, 0 and negative numbers are refused)."""
    if not is_real(value) or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        raise error(f"{name} must be a finite number above 0 (e.g. {example}), got {_shown(value)}")
    return float(value)  # type: ignore[arg-type]


def probability(name: str, value: object, error: ErrorType = ConfigError) -> float:
    """A probability that may not be 1 (Dropout's): a number in [0, 1)."""
    if not is_real(value) or not 0 <= float(value) < 1:  # type: ignore[arg-type]
        raise error(f"{name} must be a number at least 0 and below 1 (e.g. 0.3), got {_shown(value)}")
    return float(value)  # type: ignore[arg-type]


def task_sizes(split: str, n_classes: int, n_examples: int, n_way: object, k_shot: object, n_query: object,
               seed_value: object, rotations: object) -> None:
    """``TaskSampler``'s settings against a split of ``n_classes`` classes of ``n_examples`` examples each: whole
    numbers, at least 2 ways, a query example left per class, and enough classes and examples (``DataError``)."""
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
        whole_number(name, value, 1, DataError)
    seed("seed", seed_value, DataError)
    if not isinstance(rotations, bool):
        raise DataError(f"rotations must be True or False, got {rotations!r}")
    if n_way < 2:
        raise DataError(f"n_way must be at least 2 for a classification task, got {n_way}")
    classes = n_classes * (4 if rotations else 1)
    if n_way > classes:
        raise DataError(
            f"n_way={n_way} is more than the {classes} classes in split {split!r}"
            f"{' (with rotations)' if rotations else ''}; use n_way <= {classes}"
            + ("" if rotations else " or turn on rotations=True to get 4x the classes")
        )
    if k_shot >= n_examples:
        raise DataError(
            f"k_shot={k_shot} leaves no query example: split {split!r} has only {n_examples} "
            f"examples per class; use k_shot of at most {n_examples - 1}, and k_shot + n_query of at most "
            f"{n_examples}"
        )
    if k_shot + n_query > n_examples:
        raise DataError(
            f"k_shot + n_query = {k_shot} + {n_query} = {k_shot + n_query} examples per class, "
            f"but split {split!r} has only {n_examples} per class; "
            f"lower n_query to at most {n_examples - k_shot}"
        )


def task_source(sampler: object, method: str, such_as: str) -> None:
    """A task source has the one method its user calls (``batch`` for ``meta_train``, ``task`` for ``meta_test``)."""
    if not callable(getattr(sampler, method, None)):
        raise ConfigError(f"sampler must be {such_as}, got {type(sampler).__name__}")

def train_config(config: object) -> None:
    """``TrainConfig``'s settings other than its placement (``ConfigError``): known names, whole numbers, rates, a
    seed, and learned inner rates only with second-order meta-training."""
    from mamlkit.rates import ADAPTS, INNER_RATES

    if config.inner_rates not in INNER_RATES:
        raise ConfigError(f"inner_rates must be one of {', '.join(INNER_RATES)}, got {config.inner_rates!r}")
    if config.adapt not in ADAPTS:
        raise ConfigError(f"adapt must be one of {', '.join(ADAPTS)}, got {config.adapt!r}")
    if config.inner_rates == "learned" and config.first_order:
        raise ConfigError("learned inner rates need second-order meta-training (first_order=False): "
                          "first-order MAML passes no gradient to them")
    if config.running_stats not in ("copies", "write_back"):
        raise ConfigError(f"running_stats must be 'copies' or 'write_back', got {config.running_stats!r}")
    for name in ("iterations", "meta_batch"):
        whole_number(name, getattr(config, name), 1)
    whole_number("inner_steps", config.inner_steps, 0)
    rate("inner_lr", config.inner_lr, "0.4")
    rate("outer_lr", config.outer_lr, "1e-3")
    seed("seed", config.seed)
    if not isinstance(config.first_order, bool):
        raise ConfigError(f"first_order must be True or False, got {config.first_order!r}")


def env_whole_number(variable: str, minimum: int = 1) -> int | None:
    """The environment variable ``variable`` as a whole number of at least ``minimum``; None where it is unset."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:  # "²".isdigit() is True
        raise ConfigError(f"{variable} must be a whole number of at least {minimum}, got {text!r}: fix or unset it")
    return int(text)


def device(name: str, value: object) -> torch.device:
    """A device that exists on this machine (``"cpu"``, ``"cuda"``, ``"cuda:0"``, ``"mps"``...)."""
    try:
        found = torch.device(value)  # type: ignore[call-overload]
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{name} must name a torch device such as 'cpu' or 'cuda', got {_shown(value)}") from None
    if found.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (found.index is not None and found.index >= count):
            raise ConfigError(f"{name} is {_shown(value)} but this machine has {count} CUDA device(s): "
                              "use 'cpu' (or unset it)")
    elif found.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"{name} is {_shown(value)} but MPS is not available here: use 'cpu' (or unset it)")
    return found


def env_device(variable: str = "MAMLKIT_DEVICE") -> torch.device | None:
    """The device the environment variable names (None where it is unset): CPU, CUDA or MPS, checked like
    ``device``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    found = device(variable, text)
    if found.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{variable} is {_shown(text)}: mamlkit runs on 'cpu', 'cuda' or 'mps'; fix or unset it")
    return found


def model_device(model: object, name: str = "model") -> torch.device:
    """The device of a model that can be adapted: an ``nn.Module`` with parameters, none on the meta device."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    parameters = list(model.parameters())
    if not parameters:
        raise ConfigError(f"{name} has no parameters, so there is nothing to adapt: give it learnable layers "
                          "(e.g. a Linear head, or BatchNorm with affine=True)")
    if any(p.is_meta for p in parameters):
        raise ConfigError(f"{name} is on the meta device (its weights hold no values): build it on a real device, "
                          "or load its weights with load_state_dict(..., assign=True)")
    return parameters[0].device


def task(episode: object, where: str, n_way: int | None = None, error: ErrorType = DataError) -> None:
    """Check one episode (a ``Task`` or anything with its four tensors) before it reaches a model.

    ``where`` names it in the message (``"task 3"``); with ``n_way``, its labels must be in 0 .. n_way - 1.
    """
    parts = {name: getattr(episode, name, None) for name in ("support_x", "support_y", "query_x", "query_y")}
    for name, value in parts.items():
        if not isinstance(value, torch.Tensor):
            raise error(f"{where}: {name} must be a tensor, got {type(value).__name__}")
    sx, sy, qx, qy = parts.values()
    if min(sx.dim(), qx.dim(), sy.dim(), qy.dim()) < 1:
        raise error(f"{where}: inputs and labels must be at least one-dimensional (one row per example), got "
                    f"support_y {tuple(sy.shape)} and query_y {tuple(qy.shape)}")
    if len(sx) != len(sy) or len(qx) != len(qy) or len(sy) == 0 or len(qy) == 0:
        raise error(f"{where}: {len(sx)} support inputs for {len(sy)} labels and {len(qx)} query inputs for "
                    f"{len(qy)} labels; give each at least one example, with one label per input")
    if sx.shape[1:] != qx.shape[1:]:
        raise error(f"{where}: support inputs {tuple(sx.shape[1:])} and query inputs {tuple(qx.shape[1:])} differ in "
                    "shape")
    for name, x in (("support_x", sx), ("query_x", qx)):
        if not x.dtype.is_floating_point:
            raise error(f"{where}: {name} must hold floating-point inputs, got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise error(f"{where}: {name} holds NaN or infinite values; clean the data (every input must be finite)")
    if sy.dtype.is_floating_point != qy.dtype.is_floating_point:
        raise error(f"{where}: support_y is {sy.dtype} and query_y {qy.dtype}; give both class indices (integers) "
                    "or both real-valued targets")
    if sy.dtype.is_floating_point:  # regression targets
        if not (bool(torch.isfinite(sy).all()) and bool(torch.isfinite(qy).all())):
            raise error(f"{where}: the targets hold NaN or infinite values; every target must be finite")
        return
    if sy.dtype == torch.bool or qy.dtype == torch.bool:
        raise error(f"{where}: labels must be class indices (integers), got booleans")
    if sy.dim() != 1 or qy.dim() != 1:
        raise error(f"{where}: class labels must be one-dimensional (one index per example), got support_y "
                    f"{tuple(sy.shape)} and query_y {tuple(qy.shape)}")
    low = min(int(sy.min()), int(qy.min()))
    high = max(int(sy.max()), int(qy.max()))
    if low < 0 or (n_way is not None and high >= n_way):
        top = "N - 1" if n_way is None else str(n_way - 1)
        raise error(f"{where}: labels must be class indices 0 .. {top}, got labels from {low} to {high}")


_PROBES = [0]


@contextlib.contextmanager
def unwatched():
    """Forward passes inside this block are not the user's loop: mamlkit's own probes (e.g. the check of a
    model's head before meta-training) run here, and no active ``check_maml`` counts or judges them."""
    _PROBES[0] += 1
    try:
        yield
    finally:
        _PROBES[0] -= 1


def probing() -> bool:
    """True inside ``unwatched()``: the forward pass running now is mamlkit's own probe."""
    return bool(_PROBES[0])


def head(model: nn.Module, episode: object, n_way: int, where: str = "the first task") -> None:
    """Refuse a classifier whose head has fewer outputs than the tasks have classes (``n_way``).

    One forward pass of ``episode``'s first query example in eval mode, without gradients; the model's modes,
    running statistics and torch's random state are left as they were (a layer may draw random numbers even in eval
    mode). A model that fails on it is left for the real run to report.
    """
    from mamlkit.modes import mode, preserved_bn_stats
    from mamlkit.norms import uses_context

    dev = model_device(model)
    sx, qx = episode.support_x, episode.query_x  # type: ignore[attr-defined]
    try:
        rng_devices = [dev] if dev.type == "cuda" else []
        with (torch.no_grad(), preserved_bn_stats(model), mode(model, False), unwatched(),  # not the user's loop
              torch.random.fork_rng(rng_devices)):
            if uses_context(model):
                out = model(torch.cat([sx, qx[:1]]).to(dev), n_context=len(sx))
            else:
                out = model(qx[:1].to(dev))
    except Exception:  # noqa: BLE001 - only the head is checked here; the run itself reports other failures
        return
    if isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[-1] < n_way:
        raise ConfigError(f"the model's head has {out.shape[-1]} outputs but {where} has {n_way} classes: build the "
                          f"model with {n_way} outputs (e.g. ModelConfig(n_out={n_way})), or use {out.shape[-1]}-way "
                          "tasks")


def output_folder(path: str | Path, names: list[str], option: str = "--out") -> Path:
    """Create ``path`` if needed and check that the files ``names`` can be written into it, before any work.

    Refused: a path that is a file, a folder that cannot be created or written, a target name taken by a folder.
    """
    from mamlkit.plumbing.files import write_bytes

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder} is a file, not a folder: choose a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = write_bytes(folder / ".mamlkit-write-check", b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{option} {folder} cannot be written ({reason}): choose a writable folder") from None
    for name in names:
        if (folder / name).is_dir():
            raise ConfigError(f"{option} {folder}: {name} is a folder, so the result cannot be written there: move "
                              "it away or choose another folder")
    return folder
