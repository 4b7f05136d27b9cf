"""testinfra suites run by playbooks/verify.yml over the inventory, one file per role.

verify.yml runs them with `--ansible-inventory=<run>/testinfra-inventory.json`: a rendered copy
of the inventory with each host's connection settings and, under `verify_expect`, the values
of the role variables the suites check (the inventory's, else the role's default). Each suite
runs on its role's inventory groups (`testinfra_hosts = hosts_of("<group>")`); a `--hosts`
option would override that and run every suite everywhere, so verify.yml gives none.
"""

from __future__ import annotations

from typing import Any

import pytest


def hosts_of(*groups: str) -> list[str]:
    """testinfra host specs for the hosts of these inventory groups."""
    return [f"ansible://{group}" for group in groups]


@pytest.fixture
def hostvars(host: Any) -> dict[str, Any]:
    return host.ansible.get_variables()


@pytest.fixture
def expect(hostvars: dict[str, Any]) -> dict[str, Any]:
    """The role variables of this host the suites check."""
    return hostvars["verify_expect"]


@pytest.fixture
def address(hostvars: dict[str, Any]) -> str:
    return hostvars["ansible_host"]


def listening(host: Any) -> set[str]:
    """Local addresses of TCP listeners, e.g. {"10.92.3.121:8000", "0.0.0.0:22"}."""
    return {line.split()[3] for line in host.check_output("ss -H -ltn").splitlines()}


def assert_enabled_and_running(host: Any, unit: str) -> None:
    service = host.service(unit)
    assert service.is_enabled, f"{unit} is not enabled"
    assert service.is_running, f"{unit} is not running"


def assert_owned(host: Any, path: str, user: str, group: str, mode: int) -> None:
    item = host.file(path)
    assert item.exists, f"{path} is missing"
    found = (item.user, item.group, oct(item.mode))
    assert found == (user, group, oct(mode)), f"{path}: {found}, expected {(user, group, oct(mode))}"
