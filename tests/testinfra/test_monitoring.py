"""The monitoring role on the monitoring group: Prometheus, Alertmanager and the blackbox
exporter enabled and running on the host's address, their configurations valid."""

from __future__ import annotations

import pytest
from conftest import assert_enabled_and_running, hosts_of, listening

testinfra_hosts = hosts_of("monitoring")

SERVICES = [("prometheus", "monitoring_prometheus_port"),
            ("prometheus-alertmanager", "monitoring_alertmanager_port"),
            ("prometheus-blackbox-exporter", "monitoring_blackbox_port")]


@pytest.mark.parametrize(("unit", "port_variable"), SERVICES, ids=[unit for unit, _ in SERVICES])
def test_service_enabled_running_on_the_host_address(host, expect, address, unit, port_variable):
    assert_enabled_and_running(host, unit)
    port = expect[port_variable]
    assert {s for s in listening(host) if s.endswith(f":{port}")} == {f"{address}:{port}"}


def test_configurations_are_valid(host):
    for command in ("promtool check config /etc/prometheus/prometheus.yml",
                    "amtool check-config /etc/prometheus/alertmanager.yml"):
        result = host.run(command)
        assert result.rc == 0, f"{command}: {result.stdout}{result.stderr}"
