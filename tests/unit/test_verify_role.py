"""The verify role's interface: defaults and argument specs agree, and the values the testinfra
suites fall back to are the other roles' real defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE = ROLES / "verify"
TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


def _defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def _specs() -> dict:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def test_every_entry_point_documents_every_default_with_its_value():
    defaults = _defaults()
    for entry, spec in _specs().items():
        options = spec["options"]
        assert sorted(options) == sorted(defaults), entry
        for name, option in options.items():
            assert option["default"] == defaults[name], name
            assert option.get("description"), name
            value = option["default"]
            if not (isinstance(value, str) and "{{" in value):
                assert isinstance(value, TYPES[option["type"]]), name


def test_variables_carry_the_role_prefix():
    assert [name for name in _defaults() if not name.startswith("verify_")] == []


def test_every_listed_suite_exists():
    suites = ROLES.parent / "tests" / "testinfra"
    for suite in _defaults()["verify_testinfra_suites"]:
        assert (suites / f"test_{suite}.py").is_file(), suite


@pytest.mark.parametrize("name", sorted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
                                        ["_verify_expect_defaults"]))
def test_testinfra_fallbacks_are_the_roles_defaults(name):
    expected = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_verify_expect_defaults"][name]
    role = name.split("_", 1)[0] if not name.startswith("qos_daemon") else "qos_daemon"
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    assert defaults[name] == expected
