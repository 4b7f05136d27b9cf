"""The qos_daemon role on the app and proxy groups: qosd enabled and running as its own
unprivileged user, its metrics on the container's address."""

from __future__ import annotations

from conftest import assert_enabled_and_running, hosts_of, listening

testinfra_hosts = hosts_of("app", "proxy")


def test_qosd_enabled_running_unprivileged(host, expect):
    assert_enabled_and_running(host, "qosd")
    main_pid = host.check_output("systemctl show -p MainPID --value qosd")
    assert host.check_output("ps -o user= -p %s", main_pid) == expect["qos_daemon_user"]


def test_qosd_metrics_on_the_container_address(host, expect, address):
    port = expect["qos_daemon_metrics_port"]
    assert {s for s in listening(host) if s.endswith(f":{port}")} == {f"{address}:{port}"}
