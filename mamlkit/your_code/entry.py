"""The entry file of ``python -m mamlkit report``: a plain Python file that builds the user's model (a checkpoint
loaded into it) and gives their episodes; ``load_entry`` runs it and says clearly what does not fit."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mamlkit.errors import ConfigError


@dataclass
class Entry:
    """What an entry file gives ``python -m mamlkit report``: the model (checkpoint loaded) and its episodes."""

    model: nn.Module
    episodes: object
    inner_steps: int | None
    inner_lr: float | None
    estimate_episodes: object | None


def load_entry(path: str | Path, checkpoint: str | Path | None = None) -> Entry:
    """Run an entry file and collect what it defines (see ``python -m mamlkit report --help``), with a clear
    error for each thing that does not fit: no file, a file that fails, a missing function, a checkpoint that
    does not exist, cannot be read or does not load into the network."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no entry file {path}: write a Python file that defines build_model() and episodes() "
                          "(python -m mamlkit report --help shows the form)")
    name = f"mamlkit_entry_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)        # the entry file's neighbours stay importable for the rest of the run
    sys.modules[name] = module            # (its functions and its episodes may import them later)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"running the entry file {path} failed: {type(exc).__name__}: {exc}") from exc
    for name in ("build_model", "episodes"):
        if not callable(getattr(module, name, None)):
            raise ConfigError(f"{path} defines no {name}() function; the entry file needs build_model() and episodes()")
    try:
        model = module.build_model()
    except Exception as exc:
        raise ConfigError(f"{path}: build_model() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{path}: build_model() returned a {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is None and getattr(module, "CHECKPOINT", None):
        checkpoint = path.parent / Path(module.CHECKPOINT).expanduser()
    if checkpoint is not None:
        _load_checkpoint(model, Path(checkpoint))
    try:
        episodes = module.episodes()
        estimate = module.estimate_episodes() if callable(getattr(module, "estimate_episodes", None)) else None
    except Exception as exc:
        raise ConfigError(f"{path}: episodes() failed: {type(exc).__name__}: {exc}") from exc
    return Entry(model, episodes, getattr(module, "INNER_STEPS", None), getattr(module, "INNER_LR", None), estimate)


def _load_checkpoint(model: nn.Module, path: Path) -> None:
    """Load a state dict (or a dict holding one under ``state_dict``, ``model_state_dict`` or ``model``) into
    ``model``."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint {path}: save one with torch.save(model.state_dict(), path), or fix the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if first.startswith("Weights only load failed") and zipfile.is_zipfile(path):
            raise ConfigError(f"the checkpoint {path} holds more than tensors (a whole model saved with "
                              "torch.save(model)?): save model.state_dict() instead; it is loaded with "
                              "torch.load(weights_only=True), which runs no code from the file") from exc
        raise ConfigError(f"cannot read the checkpoint {path} (corrupt, truncated, or not a file saved with "
                          f"torch.save: {first})") from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} holds no state dict (a dict of tensors); save model.state_dict(), not the model")
    result = _try_load(model, state)
    if result:
        raise ConfigError(f"the checkpoint {path} does not fit build_model()'s network: {result}. "
                          "Build the network exactly as it was when the checkpoint was saved.")


def _try_load(model: nn.Module, state: dict) -> str:
    """Load ``state`` strictly; return what did not fit in one line ('' when it loaded)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the network"
              for k in own if k in state and state[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({shapes[0]})")
    if parts:
        return "; ".join(parts)
    model.load_state_dict(state)
    return ""
