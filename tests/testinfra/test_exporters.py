"""The exporters role: the node exporter on every container, the nginx exporter on the proxy,
the postgres exporter on the database, each on the container's own address only."""

from __future__ import annotations

from conftest import assert_enabled_and_running, hosts_of, listening

testinfra_hosts = hosts_of("pve_lxc")


def _exporter(host, hostvars, unit: str, port: int, address: str) -> None:
    assert_enabled_and_running(host, unit)
    sockets = {s for s in listening(host) if s.endswith(f":{port}")}
    assert sockets == {f"{address}:{port}"}, f"{unit} listens on {sockets}"


def test_node_exporter(host, hostvars, expect, address):
    if expect["exporters_node_enabled"]:
        _exporter(host, hostvars, "prometheus-node-exporter", expect["exporters_node_port"], address)


def test_nginx_exporter_on_proxies(host, hostvars, expect, address):
    if "proxy" in hostvars["group_names"]:
        _exporter(host, hostvars, "prometheus-nginx-exporter", expect["exporters_nginx_port"], address)


def test_postgres_exporter_on_databases(host, hostvars, expect, address):
    if "db" in hostvars["group_names"]:
        _exporter(host, hostvars, "prometheus-postgres-exporter", expect["exporters_postgres_port"], address)
