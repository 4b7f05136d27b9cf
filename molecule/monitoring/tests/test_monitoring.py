"""What the monitoring role promises, seen by an operator: the services run and listen on
the container's address only, the files are owned and protected as they should, the
configuration passes promtool on the host, and Prometheus scrapes what the inventory says
(every target up, the probes through the proxy verified against its certificate)."""

from __future__ import annotations

import time

import pytest
import requests
from conftest import MON_ADDRESS, TARGET_ADDRESS

PROMETHEUS = f"http://{MON_ADDRESS}:9090"
SERVICES = ["prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"]
WAIT_SECONDS = 60


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _query(expr: str) -> list[dict]:
    resp = _http().get(f"{PROMETHEUS}/api/v1/query", params={"query": expr}, timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]["result"]


def _targets() -> dict[tuple[str, str], dict]:
    resp = _http().get(f"{PROMETHEUS}/api/v1/targets", timeout=10)
    resp.raise_for_status()
    return {(t["labels"]["job"], t["labels"]["instance"]): t for t in resp.json()["data"]["activeTargets"]}


@pytest.mark.parametrize("service", SERVICES)
def test_services_enabled_and_running(host, service):
    assert host.service(service).is_enabled
    assert host.service(service).is_running


def test_listeners_bind_the_container_address_only(host):
    sockets = host.check_output("ss -H -ltn | awk '{print $4}'").split()
    ports = {s.rsplit(":", 1)[1]: s.rsplit(":", 1)[0] for s in sockets}
    # Prometheus, Alertmanager, blackbox exporter; alert sink and node exporter of the
    # monitoring stage. No Alertmanager cluster port (9094) at all.
    for port in ("9090", "9093", "9115", "9099", "9100"):
        assert ports.get(port) == MON_ADDRESS, (port, sockets)
    assert "9094" not in ports
    assert set(ports) <= {"22", "9090", "9093", "9115", "9099", "9100"}, sockets


@pytest.mark.parametrize(("path", "owner", "group", "mode"), [
    ("/etc/prometheus/prometheus.yml", "root", "root", 0o644),
    ("/etc/prometheus/rules/scheduler.rules.yml", "root", "root", 0o644),
    ("/etc/prometheus/alertmanager.yml", "root", "prometheus", 0o640),
    ("/etc/prometheus/blackbox.yml", "root", "root", 0o644),
    ("/etc/prometheus/blackbox-ca.pem", "root", "root", 0o644),
])
def test_configuration_files(host, path, owner, group, mode):
    config = host.file(path)
    assert (config.user, config.group, config.mode) == (owner, group, mode)


def test_configuration_passes_promtool_and_amtool_on_the_host(host):
    checked = host.run("promtool check config /etc/prometheus/prometheus.yml")
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0


def test_retention_and_listen_address_from_the_inventory(host):
    args = host.file("/etc/default/prometheus").content_string
    assert f"--web.listen-address={MON_ADDRESS}:9090" in args
    assert "--storage.tsdb.retention.time=15d" in args


def test_blackbox_trusts_the_proxy_certificate(host, target):
    served = target.file("/etc/nginx/tls/scheduler.crt").content_string.strip()
    assert served in host.file("/etc/prometheus/blackbox-ca.pem").content_string


def test_every_inventory_target_is_up():
    expected = {
        ("prometheus", f"{MON_ADDRESS}:9090"), ("alertmanager", f"{MON_ADDRESS}:9093"),
        ("blackbox_exporter", f"{MON_ADDRESS}:9115"),
        ("node", f"{MON_ADDRESS}:9100"), ("node", f"{TARGET_ADDRESS}:9100"),
        ("nginx", f"{TARGET_ADDRESS}:9113"), ("app", f"{TARGET_ADDRESS}:8000"),
        ("blackbox", f"https://{TARGET_ADDRESS}/health/"),
        ("blackbox", f"https://{TARGET_ADDRESS}/accounts/login/"),
    }
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        targets = _targets()
        down = {key: t["lastError"] for key, t in targets.items() if t["health"] != "up"}
        if set(targets) == expected and not down:
            break
        assert time.monotonic() < deadline, f"targets {sorted(targets)} not all up: {down}"
        time.sleep(2)


def test_probes_succeed_over_verified_https():
    """probe_success 1 means the TLS handshake verified the proxy's certificate and the
    endpoint answered 2xx through nginx."""
    results = {r["metric"]["instance"]: r["value"][1] for r in _query('probe_success{job="blackbox"}')}
    assert results == {f"https://{TARGET_ADDRESS}/health/": "1",
                       f"https://{TARGET_ADDRESS}/accounts/login/": "1"}
    assert _query('probe_ssl_earliest_cert_expiry{job="blackbox"} - time() > 86400')


def test_alert_rules_loaded_and_alertmanager_connected():
    resp = _http().get(f"{PROMETHEUS}/api/v1/rules", timeout=10).json()
    groups = {g["name"] for g in resp["data"]["groups"]}
    assert groups == {"scheduler-app", "hosts", "availability", "database", "qosd", "prometheus"}
    managers = _http().get(f"{PROMETHEUS}/api/v1/alertmanagers", timeout=10).json()
    assert [a["url"] for a in managers["data"]["activeAlertmanagers"]] == [
        f"http://{MON_ADDRESS}:9093/api/v2/alerts"]
