"""The package's errors, in one place: each says what went wrong and what to do about it.

- ``ConfigError``: a setting the package does not know (a norm, a placement, a preset...);
- ``DataError``: a dataset that cannot be loaded or used as asked (a missing folder, too many ways);
- ``CacheError``: a cached model that does not match the configuration asked for, or cannot be read.

``MAMLMistakeError`` (a placement mistake found in the user's own code) lives with the checker that
raises it, ``mamlkit.your_code.checker``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is not one the package knows; the message lists the valid ones."""


class DataError(ValueError):
    """A dataset could not be loaded or used; the message says what to do about it."""


class CacheError(RuntimeError):
    """A cache file does not match the configuration asked for, or cannot be read."""


def check_choice(kind: str, value: T, choices: Collection[object]) -> T:
    """Return ``value`` if it is one of ``choices``, else raise a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of: {', '.join(map(str, choices))}")
    return value
