"""What the qos_daemon role promises, seen by an operator on the app and proxy containers:
the daemon runs as its own unprivileged user, its metrics listen on the container's address
only, sudo lets it restart and reload exactly the named units, its config is not world
readable, and `qosd test` passes on a healthy service.

molecule.yml: mol-qos-db (CT 235), mol-qos-app (CT 236; mol-qos-app2, CT 238, is the second
app server the rolling deploy needs), mol-qos-proxy (CT 237), converged through the database,
app, proxy and qos stage playbooks. Requests go to lab addresses only.
"""

from __future__ import annotations

import json
import re

import requests
from conftest import APP_ADDRESS, DB_ADDRESS

QOSD_USER = "qosd"
CONFIG = "/etc/qosd/config.json"
SUDOERS = "/etc/sudoers.d/qosd"
QOSD = "/usr/local/bin/qosd"
# The privileged command lines each kind of host needs, and nothing else.
ALLOWED = {
    "app": {
        "/usr/bin/systemctl reset-failed scheduler.service",
        "/usr/bin/systemctl restart scheduler.service",
    },
    "proxy": {"/usr/sbin/nginx -t", "/usr/bin/systemctl reload nginx.service"},
}


def as_qosd(host, command: str):
    return host.run("cd / && runuser -u %s -- sh -c %s", QOSD_USER, command)


def sudoers_commands(text: str) -> set[str]:
    """The command lines of the Cmnd_Alias, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    alias = re.search(r"^Cmnd_Alias QOSD_COMMANDS = (.+)$", joined, re.MULTILINE)
    assert alias, text
    return {" ".join(part.split()) for part in alias.group(1).split(", ")}


def test_unit_enabled_and_running_as_the_unprivileged_qosd_user(host):
    service = host.service("qosd")
    assert service.is_enabled
    assert service.is_running
    main_pid = host.check_output("systemctl show -p MainPID --value qosd")
    assert host.check_output("ps -o user= -p %s", main_pid).strip() == QOSD_USER
    account = host.user(QOSD_USER)
    assert 0 < account.uid < 1000  # a system account
    assert account.shell == "/usr/sbin/nologin"
    assert host.check_output("systemctl show -p Type --value qosd") == "notify"
    assert host.check_output("systemctl show -p WatchdogUSec --value qosd") == "30s"


def test_metrics_listen_on_the_container_address_only(host, address):
    listening = [line.split()[3] for line in host.check_output("ss -H -ltn").splitlines()]
    assert [local for local in listening if local.endswith(":9310")] == [f"{address}:9310"]
    session = requests.Session()
    session.trust_env = False
    metrics = session.get(f"http://{address}:9310/metrics", timeout=10)
    assert metrics.status_code == 200
    assert re.search(r'^qosd_check_success\{check="[a-z_]+",type="\w+"\} 1\.0$', metrics.text, re.MULTILINE)
    assert "qosd_paused 0.0" in metrics.text


def test_sudoers_file_allows_exactly_the_named_commands(host, role):
    sudoers = host.file(SUDOERS)
    assert (sudoers.user, sudoers.group, sudoers.mode) == ("root", "root", 0o440)
    content = sudoers.content_string
    assert sudoers_commands(content) == ALLOWED[role]
    grants = re.findall(r"^\S+ ALL=.*$", content, re.MULTILINE)
    assert grants == [f"{QOSD_USER} ALL=(root) NOPASSWD: QOSD_COMMANDS"]
    # The daemon's own reference (qosd install) derives the same list from the same config.
    reference = host.check_output("%s install", QOSD).split(f"# {SUDOERS}\n", 1)[1]
    assert sudoers_commands(reference) == ALLOWED[role]


def test_sudo_lists_only_the_named_commands_for_qosd(host, role):
    listing = host.check_output("sudo -l -U %s", QOSD_USER)
    allowed = listing.split("may run the following commands on", 1)[1].splitlines()[1:]
    commands = {item.strip() for line in allowed for item in line.replace("(root) NOPASSWD:", "").split(",")}
    assert commands - {""} == ALLOWED[role], listing


def test_qosd_cannot_run_anything_else_as_root(host, role):
    refused = as_qosd(host, "sudo -n /usr/bin/systemctl restart ssh.service")
    assert refused.rc != 0
    other = "/usr/sbin/nginx -t" if role == "app" else "/usr/bin/systemctl restart scheduler.service"
    assert as_qosd(host, f"sudo -n {other}").rc != 0
    allowed = sorted(ALLOWED[role])[0]
    assert as_qosd(host, f"sudo -n -l {allowed}").rc == 0  # listed as allowed, not run


def test_config_is_readable_by_qosd_only(host):
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", QOSD_USER, 0o640)
    directory = host.file("/etc/qosd")
    assert (directory.user, directory.group, directory.mode) == ("root", QOSD_USER, 0o750)
    assert as_qosd(host, f"cat {CONFIG} >/dev/null").rc == 0
    assert host.run("cd / && runuser -u nobody -- cat %s", CONFIG).rc != 0
    assert host.file("/opt/qosd/src/qosd/engine.py").user == "root"
    assert as_qosd(host, "touch /opt/qosd/src/qosd/engine.py").rc != 0


def test_checks_are_wired_from_the_inventory(host, role):
    config = json.loads(host.file(CONFIG).content_string)
    checks = {check["name"]: check for check in config["checks"]}
    if role == "app":
        assert set(checks) == {"db", "app_health", "app_unit"}
        assert (checks["db"]["host"], checks["db"]["port"]) == (DB_ADDRESS, 5432)
        assert checks["app_health"]["url"] == f"http://{APP_ADDRESS}:8000/health/"
        assert checks["app_health"]["depends_on"] == ["db"]
        assert config["targets"] == {"app": {"action": "restart", "unit": "scheduler"}}
    else:
        assert set(checks) == {"proxy", "nginx_config"}
        assert checks["proxy"]["remedies"] == {"status_403": "nginx"}
        assert config["targets"] == {"nginx": {"action": "reload_nginx"}}


def test_qosd_test_passes_on_a_healthy_host(host):
    result = as_qosd(host, f"{QOSD} test")
    assert result.rc == 0, result.stdout + result.stderr
    assert re.search(r"^(\d+)/\1 checks ok$", result.stdout, re.MULTILINE), result.stdout


def test_qosd_test_fails_when_the_app_is_down(app):
    """The report is not a constant: with the app stopped the app host's check cycle fails."""
    app.check_output("%s pause --for 2m --reason molecule", QOSD)  # the daemon must not repair it meanwhile
    try:
        app.check_output("systemctl stop scheduler")
        result = as_qosd(app, f"{QOSD} test")
    finally:
        app.check_output("systemctl start scheduler && %s resume", QOSD)
    assert result.rc == 1, result.stdout
    assert re.search(r"^FAIL app_unit\s", result.stdout, re.MULTILINE), result.stdout
