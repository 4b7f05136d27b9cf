"""Typed readers for the environment variables the settings are built from.

Every reader names the variable and quotes what it found when the value is wrong,
so a bad environment file fails at start-up with a message an operator can act on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_str(name: str, default: str = "", environ: Mapping[str, str] = os.environ) -> str:
    """The variable's value with surrounding blanks removed, or `default` when unset."""
    value = environ.get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """1/0, true/false, yes/no, on/off (any case); unset means `default`, empty means false."""
    value = environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (1/0, true/false, yes/no, on/off), found {value!r}"
    )


def env_int(name: str, default: int, environ: Mapping[str, str] = os.environ, minimum: int = 0) -> int:
    """A whole number not below `minimum`; unset or empty means `default`."""
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, found {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, found {number}")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """A comma-separated list with blanks and empty items dropped; unset means `default`."""
    value = environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]
