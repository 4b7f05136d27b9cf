"""The monitoring role's interface: defaults/main.yml and meta/argument_specs.yml agree, so
what `ansible-doc`-style readers and Ansible's argument validation see is what the role uses."""

from __future__ import annotations

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "monitoring"
TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def _defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def _options() -> dict:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def test_every_default_is_documented_and_every_option_has_a_default():
    assert sorted(_defaults()) == sorted(_options())


def test_documented_defaults_are_the_defaults():
    defaults = _defaults()
    for name, option in _options().items():
        assert option.get("default") == defaults[name], name


def test_literal_defaults_have_the_documented_type():
    for name, option in _options().items():
        value = option["default"]
        if isinstance(value, str) and "{{" in value:
            continue  # templated: Ansible converts the rendered value when the role runs
        assert isinstance(value, TYPES[option["type"]]), f"{name}: {value!r} is not {option['type']}"
        assert option.get("description"), name


def test_variables_carry_the_role_prefix():
    assert [name for name in _defaults() if not name.startswith("monitoring_")] == []
