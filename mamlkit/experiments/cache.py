"""Meta-trained models, stored on disk under a key made from their full configuration.

A notebook or the CLI asks for "the model meta-trained with this configuration"; the first time it
is trained by ``mamlkit``'s own code and saved, afterwards it is loaded. The key is a hash of the
configuration (data fingerprint, task shape, model, training settings, format version) and the
stored file also holds the configuration itself, which is compared on load: a file is never
served for a configuration other than its own. Files are written atomically (temporary file, then
rename) and loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from mamlkit.adapt import History, MetaTrained, TrainConfig
from mamlkit.errors import CacheError
from mamlkit.plumbing.files import CHECKOUT, default_folder, save_torch

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$MAMLKIT_CACHE``, else ``data/cache`` in a source checkout, else ``~/.cache/mamlkit``."""
    return default_folder("MAMLKIT_CACHE", "cache", "mamlkit")


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    text = json.dumps({"format": FORMAT_VERSION, **config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """A hash of tensor contents (used to key models by the exact data they were trained on)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:20]


def save_trained(trained: MetaTrained, path: Path) -> Path:
    """Write a meta-trained model atomically: a reader sees the old file, the new one, or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "config": json.dumps(trained.config, sort_keys=True),
        "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
        "collected_stats": {k: v.detach().cpu() for k, v in trained.collected_stats.items()},
        "history": trained.history.as_dict(),
        "machine": json.dumps(trained.machine, sort_keys=True),          # "null" where it is not known
    }
    if trained.inner_rates is not None:
        payload["inner_rates"] = {k: v.detach().cpu() for k, v in trained.inner_rates.state_dict().items()}
    return save_torch(path, payload)


#: Cache folders already warned about (``store``): one warning each per process.
_WARNED: set[str] = set()


def store(trained: MetaTrained, path: Path) -> bool:
    """``save_trained``, where the cache can be written; else one warning per folder and False (the run goes on:
    a cache is an optimisation, and the model is still returned to the caller)."""
    try:
        save_trained(trained, path)
        return True
    except OSError as exc:
        folder = str(Path(path).parent)
        if folder not in _WARNED:
            _WARNED.add(folder)
            warnings.warn(f"mamlkit: the model cache {folder} cannot be written ({exc.strerror or exc}); models are "
                          "not stored, so they are meta-trained again next time (set MAMLKIT_CACHE to a writable "
                          "folder)", stacklevel=2)
        return False


def load_trained(path: Path, model: torch.nn.Module, config: dict) -> MetaTrained:
    """Load a saved model into ``model`` (built for ``config``), checking it is the same config.

    Raises:
        CacheError: unreadable file, or a file saved for a different configuration or architecture.
    """
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or truncated file, or not a torch file at all
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if first_line.startswith("Weights only load failed"):
            first_line = "refused by torch.load(weights_only=True)"
        first_line = first_line.split(". ")[0].rstrip(".")[:160]  # torch's first sentence, not its advice
        raise CacheError(
            f"cannot read cached model {path} (corrupt, truncated or not a mamlkit file: {first_line}); "
            "delete it to retrain"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CacheError(f"{path} is not a mamlkit cache file of format {FORMAT_VERSION}; delete it to retrain")
    stored = json.loads(payload["config"])
    wanted = json.loads(json.dumps(config, sort_keys=True))
    if stored != wanted:
        diffs = _differences(stored, wanted)
        shown = "; ".join(f"{k}: saved {_shown(a)}, wanted {_shown(b)}" for k, a, b in diffs[:4])
        if len(diffs) > 4:
            shown += f"; and {len(diffs) - 4} more"
        raise CacheError(
            f"{path} was saved for another configuration ({shown}); refusing to use it "
            "(ask for the saved configuration, or delete the file to retrain)"
        )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        saved_model = stored.get("model", {}) if isinstance(stored, dict) else {}
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)  # the first mismatch
        raise CacheError(
            f"{path} holds weights of another architecture than the model given "
            f"({detail[:160]}); it was saved for ModelConfig({saved_model}): build the "
            "model with mk.build_model(mk.ModelConfig(**that)) to load it"
        ) from exc
    device = next(model.parameters()).device
    collected = {k: v.to(device) for k, v in payload["collected_stats"].items()}
    h = payload["history"]
    history = History(list(h["loss"]), list(h["accuracy"]), float(h["seconds"]))
    rates = _load_rates(model, stored, payload.get("inner_rates"), path)
    machine = json.loads(payload["machine"]) if isinstance(payload.get("machine"), str) else None
    return MetaTrained(model, collected, history, stored, rates, machine)


def _load_rates(model: torch.nn.Module, stored: dict, state: dict | None, path: Path):  # -> InnerRates | None
    """The inner-rate table a model was meta-trained with, rebuilt from its configuration and stored values."""
    train = stored.get("train", {}) if isinstance(stored, dict) else {}
    if not isinstance(train, dict) or not {"inner_steps", "inner_lr"} <= set(train):
        return None
    rates = TrainConfig(**train).rates(model)
    if rates is None:
        return None
    if state is None:
        raise CacheError(f"{path} lacks the inner rates its configuration names; delete it to retrain")
    rates.load_state_dict(state)
    return rates


def _shown(value: object) -> str:
    """A configuration value for an error message; a key absent on one side reads as such."""
    return "(not set)" if value is None else repr(value)


def _differences(a: object, b: object, prefix: str = "") -> list[tuple[str, object, object]]:
    """The dotted keys where two nested configurations differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, object, object]] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def cached_path(config: dict, cache_dir: Path | None = None) -> Path:
    """Where the model for ``config`` is (or would be) stored."""
    return Path(cache_dir or default_cache_dir()) / f"maml-{config_key(config)}.pt"


def shipped_dir() -> Path:
    """``data/models`` in a source checkout: the lesson models that come with the collection (read-only use)."""
    return CHECKOUT / "data" / "models"


def find_cached(config: dict, cache_dir: Path | None = None) -> Path | None:
    """The stored model for ``config``: in the cache, else (for the default cache) among the shipped models.

    A shipped file is named like a cache file, by the key of its full configuration, and ``load_trained``
    compares the configuration stored inside it, so a shipped model is only ever served for its own
    configuration. ``MAMLKIT_SHIPPED=0`` ignores the shipped models (everything is trained here).
    """
    path = cached_path(config, cache_dir)
    if path.exists():
        return path
    if cache_dir is None and os.environ.get("MAMLKIT_SHIPPED", "1") != "0":
        shipped = shipped_dir() / path.name
        if shipped.exists():
            return shipped
    return None


def cached_training(
    model: torch.nn.Module,
    config: dict,
    train: Callable[[torch.nn.Module], MetaTrained | History | None],
    cache_dir: Path | None = None,
    cache: bool = True,
    rebuild: Callable[[], torch.nn.Module] | None = None,
) -> MetaTrained:
    """``model`` trained by ``train(model)``, stored under ``config``'s key; loaded on later calls.

    ``mk.get_meta_trained`` meta-trains mamlkit's own models through it. For a network and a training loop that are
    not mamlkit's (deep dive your_own_model): put into ``config`` everything that decides the result (the loop's
    settings, the architecture's name and width, ``tensor_fingerprint`` of the data), so that another configuration
    never gets this file. ``train`` may return a ``MetaTrained`` or a ``History`` (its wall time is then measured
    here, and the model's running statistics are stored as they are: ``collected_stats`` stays empty).
    ``cache=False`` neither reads nor writes the cache. ``rebuild`` makes a fresh model when a cached file cannot be
    used (it is then trained again); without it that file's ``CacheError`` is raised.
    """
    found = find_cached(config, cache_dir) if cache else None
    if found is not None:
        try:
            return load_trained(found, model, config)
        except CacheError as exc:
            if rebuild is None:
                raise
            print(f"mamlkit: ignoring unusable cache file ({exc}); retraining")
            model = rebuild()
    begin = time.perf_counter()
    out = train(model)
    if isinstance(out, MetaTrained):
        trained = out
    else:
        history = out or History()
        history.seconds = time.perf_counter() - begin
        trained = MetaTrained(model, {}, history, config)
    trained.config = config
    if cache:
        store(trained, cached_path(config, cache_dir))  # an unwritable cache warns once; the run goes on
    return trained
