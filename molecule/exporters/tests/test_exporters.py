"""What the exporters role promises, seen from the lab network: each exporter runs, listens
on its container's address only, serves real metrics to the monitoring host, and nothing
else can reach it.

mol-exp-mon (CT 225) is the monitoring host; mol-exp-target (CT 226) is proxy and db;
mol-exp-other (CT 227) is an app container. Requests are made with curl on those
containers (and from the controller, 10.92.3.1, which is not allowed either).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import MON_ADDRESS, OTHER_ADDRESS, TARGET_ADDRESS

NODE, NGINX, POSTGRES = 9100, 9113, 9187
SERVICES = {NODE: "prometheus-node-exporter", NGINX: "prometheus-nginx-exporter",
            POSTGRES: "prometheus-postgres-exporter"}
ACCESS_SERVICE = "exporters-access"
SCENARIO = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])


def fetch(client, url: str) -> tuple[int, str]:
    """curl's exit code and the body, run on `client`; a dropped connection times out (28)."""
    result = client.run(f"curl -sS --connect-timeout 3 --max-time 8 {url}")
    return result.rc, result.stdout


def metrics(client, address: str, port: int) -> str:
    rc, body = fetch(client, f"http://{address}:{port}/metrics")
    assert rc == 0, f"{client.backend.hostname} could not scrape {address}:{port} (curl exit {rc})"
    return body


def sample(body: str, name: str) -> float:
    """The value of the first sample of metric `name` in a Prometheus text exposition."""
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", body, re.MULTILINE)
    assert match, f"{name} not in the metrics"
    return float(match.group(1))


def listeners(host, port: int) -> set[str]:
    """Local addresses with a TCP listener on `port`."""
    out = host.check_output("ss -Htln")
    return {fields[3].rsplit(":", 1)[0] for fields in (line.split() for line in out.splitlines())
            if fields[3].rsplit(":", 1)[1] == str(port)}


# --- services -----------------------------------------------------------------------------


@pytest.mark.parametrize("port", [NODE, NGINX, POSTGRES])
def test_every_exporter_of_the_target_is_enabled_and_running(target, port):
    service = target.service(SERVICES[port])
    assert service.is_enabled
    assert service.is_running


@pytest.mark.parametrize("fixture", ["mon", "other"])
def test_hosts_outside_proxy_and_db_run_the_node_exporter_only(request, fixture):
    host = request.getfixturevalue(fixture)
    assert host.service(SERVICES[NODE]).is_running
    for port in (NGINX, POSTGRES):
        assert not host.service(SERVICES[port]).is_running
        assert not host.service(SERVICES[port]).is_enabled


@pytest.mark.parametrize("fixture", ["mon", "target", "other"])
def test_the_access_rules_are_in_force_on_every_host(request, fixture):
    host = request.getfixturevalue(fixture)
    assert host.service(ACCESS_SERVICE).is_enabled
    assert host.run(f"systemctl is-active {ACCESS_SERVICE}").stdout.strip() == "active"
    check = host.run(f"{ACCESS_SERVICE} check")
    assert check.rc == 0, check.stdout


def test_exporters_run_as_the_unprivileged_prometheus_user(target):
    for service in SERVICES.values():
        pid = target.check_output(f"systemctl show -p MainPID --value {service}")
        assert target.check_output(f"ps -o user= -p {pid}") == "prometheus"


# --- where they listen ---------------------------------------------------------------------


@pytest.mark.parametrize("port", [NODE, NGINX, POSTGRES])
def test_target_exporters_listen_on_the_container_address_only(target, port):
    assert listeners(target, port) == {TARGET_ADDRESS}


@pytest.mark.parametrize(("fixture", "address"), [("mon", MON_ADDRESS), ("other", OTHER_ADDRESS)])
def test_node_exporter_listens_on_the_container_address_only(request, fixture, address):
    assert listeners(request.getfixturevalue(fixture), NODE) == {address}


# --- configuration files -------------------------------------------------------------------


@pytest.mark.parametrize(("path", "group", "mode"), [
    ("/etc/default/prometheus-node-exporter", "root", 0o644),
    ("/etc/default/prometheus-nginx-exporter", "root", 0o644),
    ("/etc/default/prometheus-postgres-exporter", "prometheus", 0o640),
    ("/etc/exporters-access.json", "root", 0o644),
    ("/usr/local/sbin/exporters-access", "root", 0o755),
    ("/etc/systemd/system/exporters-access.service", "root", 0o644),
    ("/etc/systemd/system/prometheus-node-exporter.service.d/50-exporters.conf", "root", 0o644),
])
def test_managed_files_owner_and_mode(target, path, group, mode):
    managed = target.file(path)
    assert managed.is_file
    assert managed.user == "root"
    assert managed.group == group
    assert managed.mode == mode


def test_flags_name_the_container_address_and_the_textfile_directory(target):
    args = target.file("/etc/default/prometheus-node-exporter").content_string
    assert f"--web.listen-address={TARGET_ADDRESS}:{NODE}" in args
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter" in args


def test_postgres_exporter_connects_over_the_socket_without_password(target):
    dsn = target.file("/etc/default/prometheus-postgres-exporter").content_string
    assert "host=/var/run/postgresql" in dsn
    assert "password" not in dsn


# --- metrics reach the monitoring host ------------------------------------------------------


def test_monitoring_host_scrapes_the_node_exporters(mon):
    for address in (TARGET_ADDRESS, OTHER_ADDRESS, MON_ADDRESS):
        assert sample(metrics(mon, address, NODE), "node_exporter_build_info") == 1


def test_backup_age_metric_comes_through_the_textfile_collector(mon):
    body = metrics(mon, TARGET_ADDRESS, NODE)
    assert 'scheduler_db_backup_last_success_timestamp_seconds{database="scheduler",kind="scheduled"}' in body
    assert sample(body, "node_textfile_scrape_error") == 0


def test_nginx_exporter_reads_stub_status(mon):
    body = metrics(mon, TARGET_ADDRESS, NGINX)
    assert sample(body, "nginx_up") == 1
    assert sample(body, "nginx_connections_accepted") >= 1


def test_postgres_exporter_is_connected(mon):
    body = metrics(mon, TARGET_ADDRESS, POSTGRES)
    assert sample(body, "pg_up") == 1
    assert 'pg_stat_database_numbackends{datid=' in body


def test_exporter_database_role_is_pg_monitor_only(target):
    query = ("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, "
             "pg_has_role('prometheus', 'pg_monitor', 'member'), "
             "(SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
             " WHERE m.member = 'prometheus'::regrole) "
             "FROM pg_roles WHERE rolname = 'prometheus'")
    out = target.check_output(f'runuser -u postgres -- psql -XAtq -d postgres -c "{query}"')
    assert out == "f|f|f|f|t|1"


def test_exporter_database_role_cannot_log_in_over_the_network(target):
    attempt = target.run(f"runuser -u prometheus -- psql -XAtq -h {TARGET_ADDRESS} -d postgres "
                         "-w -c 'SELECT 1'")
    assert attempt.rc != 0
    assert "pg_hba.conf rejects" in attempt.stderr


# --- and nothing else reaches them ----------------------------------------------------------


@pytest.mark.parametrize("port", [NODE, NGINX, POSTGRES])
def test_a_container_outside_monitoring_is_refused(other, port):
    rc, _ = fetch(other, f"http://{TARGET_ADDRESS}:{port}/metrics")
    assert rc == 28, f"expected the connection to be dropped (curl exit 28), got exit {rc}"


def test_the_monitoring_hosts_own_exporter_refuses_other_containers(target):
    rc, _ = fetch(target, f"http://{MON_ADDRESS}:{NODE}/metrics")
    assert rc == 28


def test_the_controller_is_refused():
    # Dropped, not refused: the connection attempt times out.
    with pytest.raises(TimeoutError), socket.create_connection((TARGET_ADDRESS, NODE), timeout=3):
        pass


def test_other_ports_stay_open_to_everyone(other):
    # The filter is per port: the proxy still answers a container that may not scrape.
    rc, _ = fetch(other, f"http://{TARGET_ADDRESS}/")
    assert rc == 0


def playbook(path: Path, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook on the scenario's inventory, in the verifier's environment."""
    return subprocess.run(
        ["ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent), str(path), *args],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True, timeout=300,
        check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})


def test_rules_lost_are_put_back_by_the_role(other, target):
    """A rule removed by hand opens the port; the next converge closes it and says so."""
    other.check_output(f"ip -4 rule del pref 1002 ipproto tcp dport {NODE} prohibit")
    try:
        assert fetch(target, f"http://{OTHER_ADDRESS}:{NODE}/metrics")[0] == 0
        assert other.run(f"{ACCESS_SERVICE} check").rc == 1
        run = playbook(SCENARIO / "converge.yml", "--limit", "mol-exp-other", "--tags", "exporters_access")
        assert run.returncode == 0, run.stdout[-3000:]
        assert re.search(r"mol-exp-other\s*:.*changed=1\b", run.stdout), run.stdout[-3000:]
        assert fetch(target, f"http://{OTHER_ADDRESS}:{NODE}/metrics")[0] == 28
    finally:
        other.run(f"systemctl reload {ACCESS_SERVICE}")


def test_stopping_the_access_rules_stops_the_exporters(other):
    """Fail closed: an exporter never runs without its rules."""
    try:
        other.check_output(f"systemctl stop {ACCESS_SERVICE}")
        assert not other.service(SERVICES[NODE]).is_running
        other.check_output(f"systemctl start {SERVICES[NODE]}")
        assert other.run(f"systemctl is-active {ACCESS_SERVICE}").stdout.strip() == "active"
        assert other.run(f"{ACCESS_SERVICE} check").rc == 0
    finally:
        other.run(f"systemctl start {ACCESS_SERVICE} {SERVICES[NODE]}")


def test_rules_and_exporter_come_back_after_a_restart_of_the_container(mon, other, target):
    """The rules are applied at boot, before the exporter starts: a restarted container
    serves its metrics to the monitoring host only, as before."""
    run = playbook(SCENARIO / "restart.yml", "-e", "vmid=227 name=mol-exp-other node=pve1")
    assert run.returncode == 0, run.stdout[-3000:]
    other.check_output("systemctl is-system-running --wait || true")
    assert other.service(SERVICES[NODE]).is_running
    assert other.run(f"{ACCESS_SERVICE} check").rc == 0
    assert fetch(target, f"http://{OTHER_ADDRESS}:{NODE}/metrics")[0] == 28
    assert sample(metrics(mon, OTHER_ADDRESS, NODE), "node_exporter_build_info") == 1
