"""Issue 5 acceptance on the lab: after site.yml, Prometheus on mon1 scrapes every target the
inventory implies and has every rule group loaded; an app stopped on one container raises
TargetDown, which Alertmanager delivers to the alert sink, and starting it again delivers
the resolution. (The second site.yml run reporting changed=0, monitoring included, is
tests/lab/test_site_service.py's.)

The lab inventory shortens the waits (inventories/lab/group_vars/monitoring): 5 s scrapes
and evaluations, `for: 15s`, 5 s group wait, so each wait below is bounded to a minute or two.
The QoS daemon on the faulted host is paused meanwhile, or it would repair the fault first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import product
from typing import Any

import pytest
import requests
import yaml
from labtools import REPO, load_credentials, ssh

pytestmark = pytest.mark.slow
INVENTORY = REPO / "inventories" / "lab"
FAULT_HOST = "app2"
ALERT_WAIT = 120
TARGET_WAIT = 90


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _inventory() -> dict[str, Any]:
    binary = sys.executable.rsplit("/", 1)[0] + "/ansible-inventory"
    proc = subprocess.run([binary, "-i", str(INVENTORY), "--list"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(proc.stdout)


def _group(inventory: dict[str, Any], name: str) -> list[str]:
    """Hosts of a group, its children's included."""
    group = inventory.get(name, {})
    hosts = list(group.get("hosts", []))
    for child in group.get("children", []):
        hosts += _group(inventory, child)
    return sorted(set(hosts))


@pytest.fixture(scope="module")
def lab() -> dict[str, Any]:
    inventory = _inventory()
    hostvars = inventory["_meta"]["hostvars"]
    address = {host: hostvars[host]["ansible_host"] for host in _group(inventory, "pve_lxc")}
    mon = address[_group(inventory, "monitoring")[0]]
    return {"inventory": inventory, "address": address, "prometheus": f"http://{mon}:9090",
            "sink": f"http://{mon}:9099/alerts"}


@pytest.fixture(scope="module")
def converged(site_converged: dict) -> dict:
    return site_converged


def _expected_targets(lab: dict[str, Any]) -> set[tuple[str, str]]:
    inventory, address = lab["inventory"], lab["address"]
    mon = lab["prometheus"].removeprefix("http://").removesuffix(":9090")

    def on(group: str, port: int) -> set[str]:
        return {f"{address[host]}:{port}" for host in _group(inventory, group)}

    expected = {("prometheus", f"{mon}:9090"), ("alertmanager", f"{mon}:9093"),
                ("blackbox_exporter", f"{mon}:9115")}
    for job, group, port in [("node", "pve_lxc", 9100), ("nginx", "proxy", 9113), ("postgres", "db", 9187),
                             ("app", "app", 8000)]:
        expected |= {(job, target) for target in on(group, port)}
    for host, path in product(_group(inventory, "proxy"), ("/health/", "/accounts/login/")):
        expected.add(("blackbox", f"https://{address[host]}{path}"))
    return expected


def _wait_for(condition: Callable[[], Any], seconds: float, message: Callable[[], str]) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message()} (after {seconds}s)")
        time.sleep(2)


def _targets(lab: dict[str, Any]) -> dict[tuple[str, str], dict]:
    resp = _http().get(f"{lab['prometheus']}/api/v1/targets", timeout=10)
    resp.raise_for_status()
    return {(t["labels"]["job"], t["labels"]["instance"]): t for t in resp.json()["data"]["activeTargets"]}


def test_every_expected_target_is_up(converged, lab):
    expected = _expected_targets(lab)

    def all_up() -> bool:
        targets = _targets(lab)
        return expected <= set(targets) and all(t["health"] == "up" for t in targets.values())

    def report() -> str:
        targets = _targets(lab)
        down = {key: t["lastError"] for key, t in targets.items() if t["health"] != "up"}
        return f"missing targets {sorted(expected - set(targets))}, down {down}"

    _wait_for(all_up, TARGET_WAIT, report)


def test_every_rule_group_is_loaded_and_healthy(converged, lab):
    mon = lab["prometheus"].removeprefix("http://").removesuffix(":9090")
    installed = ssh(load_credentials(), mon, "cat /etc/prometheus/rules/*.yml")
    assert installed.returncode == 0, installed.stderr
    wanted = {group["name"] for group in yaml.safe_load(installed.stdout)["groups"]}
    assert wanted

    def loaded() -> list[dict]:
        groups = _http().get(f"{lab['prometheus']}/api/v1/rules", timeout=10).json()["data"]["groups"]
        evaluated = all(not g["lastEvaluation"].startswith("0001-") for g in groups)  # zero time: not yet
        return groups if {g["name"] for g in groups} == wanted and evaluated else []

    groups = _wait_for(loaded, 60, lambda: f"rule groups {sorted(wanted)} not all loaded and evaluated")
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"} == {}


def _notifications(lab: dict[str, Any]) -> list[dict]:
    resp = _http().get(lab["sink"], timeout=10)
    resp.raise_for_status()
    return resp.json()


def _target_down(payloads: list[dict], instance: str, status: str) -> bool:
    return any(alert["status"] == status and alert["labels"].get("alertname") == "TargetDown"
               and alert["labels"].get("job") == "app" and alert["labels"].get("instance") == instance
               for payload in payloads for alert in payload.get("alerts", []))


def test_stopped_app_alerts_the_sink_then_resolves(converged, lab):
    unit = yaml.safe_load((REPO / "roles" / "app" / "defaults" / "main.yml").read_text())["app_name"]
    address = lab["address"][FAULT_HOST]
    instance = f"{address}:8000"
    _wait_for(lambda: _targets(lab).get(("app", instance), {}).get("health") == "up", TARGET_WAIT,
              lambda: f"app target {instance} is not up before the fault")
    before = len(_notifications(lab))

    paused = ssh(load_credentials(), address, "/usr/local/bin/qosd pause --for 5m --reason test_monitoring")
    assert paused.returncode == 0, paused.stderr
    stopped = ssh(load_credentials(), address, f"systemctl stop {unit}")
    assert stopped.returncode == 0, stopped.stderr
    try:
        _wait_for(lambda: _target_down(_notifications(lab)[before:], instance, "firing"), ALERT_WAIT,
                  lambda: f"no TargetDown for {instance} at the sink: {_notifications(lab)[before:]}")
    finally:
        started = ssh(load_credentials(), address, f"systemctl start {unit}")
        ssh(load_credentials(), address, "/usr/local/bin/qosd resume")
    assert started.returncode == 0, started.stderr

    fired = len(_notifications(lab))
    _wait_for(lambda: _target_down(_notifications(lab)[fired:], instance, "resolved"), ALERT_WAIT,
              lambda: f"no resolved TargetDown for {instance} at the sink: {_notifications(lab)[fired:]}")
