"""The qos_daemon role's interface: defaults/main.yml and meta/argument_specs.yml agree, and the
config it renders for the stage's hosts is one qosd itself accepts."""

from __future__ import annotations

from pathlib import Path

import yaml

from qosd.config import parse

ROLE = Path(__file__).resolve().parents[2] / "roles" / "qos_daemon"
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
    assert [name for name in _defaults() if not name.startswith("qos_daemon_")] == []


def test_default_timing_and_protection_are_valid_for_qosd():
    """The literal defaults, as the role renders them, pass qosd's own validation."""
    d = _defaults()
    config = parse(
        {
            "defaults": {
                key: d[f"qos_daemon_{key}"] for key in ("interval", "timeout", "threshold", "grace")
            },
            "protection": {
                key: d[f"qos_daemon_{key}"]
                for key in ("max_interventions", "window", "backoff_initial", "backoff_factor", "backoff_max")
            },
            "pause": {"default": d["qos_daemon_pause_default"], "max": d["qos_daemon_pause_max"]},
            "commands": {"timeout": d["qos_daemon_command_timeout"]},
            "targets": {"app": {"action": "restart", "unit": "scheduler"}},
            "checks": [{"name": "app_health", "type": "http", "url": "http://10.92.3.121:8000/health/",
                        "body": d["qos_daemon_app_health_body"], "remedy": "app"}],
        }
    )
    spec = config.check("app_health")
    # A hung app is seen within threshold x interval + timeout: under 15 s with the defaults.
    assert spec.threshold * spec.interval + spec.timeout < 15
    assert config.protection.max_interventions >= 1
