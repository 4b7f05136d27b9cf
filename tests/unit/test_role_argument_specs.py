"""Every role's interface: defaults/main.yml and meta/argument_specs.yml agree, so
what operators read and what Ansible validates is what the role uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(p.parent.parent.name for p in ROLES_DIR.glob("*/defaults/main.yml"))


def _load(role: str, *parts: str) -> dict:
    return yaml.safe_load(ROLES_DIR.joinpath(role, *parts).read_text()) or {}


def _options(role: str) -> dict:
    """The options of every entry point (a role used only through tasks_from has no `main`)."""
    options: dict = {}
    for entry in _load(role, "meta", "argument_specs.yml")["argument_specs"].values():
        options.update(entry.get("options", {}))
    return options


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented(role):
    missing = sorted(set(_load(role, "defaults", "main.yml")) - set(_options(role)))
    assert missing == [], f"defaults of roles/{role} missing from its argument_specs"


@pytest.mark.parametrize("role", ROLES)
def test_documented_defaults_are_the_defaults(role):
    defaults = _load(role, "defaults", "main.yml")
    for name, option in _options(role).items():
        templated = isinstance(defaults.get(name), str) and "{{" in defaults[name]
        if name in defaults and "default" in option and not templated:
            assert option["default"] == defaults[name], \
                f"{name}: argument_specs says {option['default']!r}, defaults/main.yml {defaults[name]!r}"
