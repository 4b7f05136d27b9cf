"""Issue 6 acceptance on the lab: the QoS daemon repairs real faults on the lab inventory's
containers, and stops itself when repairing does not help.

Runs on the lab converged by site.yml (the session's `site_converged`), whose last
stage deploys the daemon. Faults go to app2 (10.92.3.122) and proxy1 (10.92.3.110); every
test puts the lab back to healthy at the end, pass or fail (the `restore_*` fixtures).
The waits are bounds, not speed assertions: bench/qos_lab.py measures the repair time.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import urllib3
from labtools import load_credentials, ssh
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow
# The proxy's certificate is self-signed by the proxy role (no operator certificate in the lab).
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

APP = "10.92.3.122"  # app2
PROXY = "10.92.3.110"  # proxy1
UNIT = "scheduler"
QOSD = "/usr/local/bin/qosd"
APP_HEALTH = f"http://{APP}:8000/health/"
PROXY_HEALTH = f"https://{PROXY}/health/"
# A unit drop-in in /run (gone at the next boot) that stands for a broken release: the
# unit starts, but what answers on the app's port is not the app.
BROKEN_APP_DROPIN = f"/run/systemd/system/{UNIT}.service.d/qos-fault.conf"
BROKEN_APP_ROOT = "/run/qos-fault-www"  # empty: every path answers 404
NGINX_FAULT = "/etc/nginx/conf.d/zz-qos-fault.conf"
REPAIR_WAIT = 90.0  # a hung app: detection, gunicorn's graceful stop (<= TimeoutStopSec 40 s), start
ESCALATION_WAIT = 240.0  # 3 interventions with grace and backoff between them


# --- helpers -------------------------------------------------------------------------------


def remote(address: str, command: str, timeout: float = 60) -> str:
    done = ssh(load_credentials(), address, command, timeout=timeout)
    assert done.returncode == 0, f"{address}: {command}: exit {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = False
    return http


def status_of(url: str) -> int | None:
    try:
        return session().get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def wait_for(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> float:
    """Seconds until condition() holds; fails with what() past the timeout. A container too
    busy to answer one request (gunicorn booting on it) is asked again."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what()}")


def metrics(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = session().get(f"http://{address}:9310/metrics", timeout=15).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(address: str, name: str, **labels: str) -> float:
    return metrics(address).get((name, tuple(sorted(labels.items()))), 0.0)


def interventions(address: str, target: str, kind: str, result: str) -> float:
    return metric(address, "qosd_interventions_total", target=target, kind=kind, result=result)


def suppressed(address: str, reason: str) -> float:
    return sum(
        value
        for (name, labels), value in metrics(address).items()
        if name == "qosd_interventions_suppressed_total" and ("reason", reason) in labels
    )


def events(address: str, since: str) -> list[dict]:
    """The interventions log's events at or after `since` (ISO time of the container's clock)."""
    lines = remote(address, "cat /var/log/qosd/interventions.jsonl").splitlines()
    return [event for event in map(json.loads, lines) if event["time"] >= since]


def now_on(address: str) -> str:
    return remote(address, "date -u +%Y-%m-%dT%H:%M:%S.%3N+00:00").strip()


def main_pid(address: str) -> str:
    return remote(address, f"systemctl show -p MainPID --value {UNIT}").strip()


def unit_state(address: str) -> str:
    return ssh(load_credentials(), address, f"systemctl is-active {UNIT}").stdout.strip()


def qosd_state(address: str) -> str:
    return remote(address, f"{QOSD} status; true")


def fresh_guard(address: str) -> None:
    """No pause, no escalation, no intervention history: each test starts from zero."""
    remote(address, f"{QOSD} resume && {QOSD} reset")
    wait_for(lambda: "escalated: none" in qosd_state(address) and metric(address, "qosd_paused") == 0,
             30, lambda: qosd_state(address))


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(site_converged: dict) -> None:
    """The lab converged by site.yml, whose last stage is the QoS daemon (playbooks/qos.yml)."""
    wait_for(lambda: status_of(APP_HEALTH) == 200, 60, lambda: f"{APP_HEALTH} is not healthy")
    wait_for(lambda: status_of(PROXY_HEALTH) == 200, 60, lambda: f"{PROXY_HEALTH} is not healthy")


@pytest.fixture
def restore_app(deployed: None) -> Iterator[None]:
    """app2 healthy under automatic care before and after the test, whatever it did."""
    fresh_guard(APP)
    yield
    remote(
        APP,
        f"if [ -e {BROKEN_APP_DROPIN} ]; then rm -f {BROKEN_APP_DROPIN} && systemctl daemon-reload"
        f" && systemctl restart {UNIT}; fi; rm -rf {BROKEN_APP_ROOT}; "
        f"pkill -CONT -u {UNIT} || true; systemctl reset-failed {UNIT}; "
        f"systemctl is-active --quiet {UNIT} || systemctl start {UNIT}",
    )
    wait_for(lambda: status_of(APP_HEALTH) == 200, 90, lambda: f"{APP_HEALTH} did not come back")
    fresh_guard(APP)


@pytest.fixture
def restore_proxy(deployed: None) -> Iterator[None]:
    fresh_guard(PROXY)
    yield
    remote(PROXY, f"rm -f {NGINX_FAULT} && nginx -t -q && systemctl reload nginx")
    wait_for(lambda: status_of(PROXY_HEALTH) == 200, 60, lambda: f"{PROXY_HEALTH} did not come back")
    fresh_guard(PROXY)


# --- the faults ----------------------------------------------------------------------------


def test_hung_app_is_detected_and_restarted(restore_app: None):
    before = interventions(APP, "app", "restart", "ok")
    since = now_on(APP)
    old_pid = main_pid(APP)
    # gunicorn's master and every worker stop answering: connections queue, nothing replies.
    remote(APP, f"kill -STOP {old_pid} $(pgrep -P {old_pid})")
    assert status_of(APP_HEALTH) is None  # hung: no answer within 2 s

    wait_for(lambda: interventions(APP, "app", "restart", "ok") > before, REPAIR_WAIT,
             lambda: f"no restart of the hung app: {qosd_state(APP)}")
    wait_for(lambda: status_of(APP_HEALTH) == 200, 30, lambda: f"{APP_HEALTH} not healthy after the restart")
    assert main_pid(APP) not in ("0", old_pid)
    restarts = [e for e in events(APP, since) if e["event"] == "intervention"]
    assert [(e["target"], e["result"], e["check"], e["symptom"]) for e in restarts] == [
        ("app", "ok", "app_health", "timeout")
    ]


def test_app_that_systemd_does_not_bring_back_is_restarted(restore_app: None):
    before = interventions(APP, "app", "restart", "ok")
    restarts_by_systemd = remote(APP, f"systemctl show -p NRestarts --value {UNIT}").strip()
    # SIGTERM: gunicorn shuts down cleanly and exits 0, so Restart=on-failure does not apply
    # and systemd leaves the unit inactive: only qosd brings it back.
    remote(APP, f"kill -TERM {main_pid(APP)}")
    wait_for(lambda: unit_state(APP) != "active", 30, lambda: f"{UNIT} still active after SIGTERM")

    wait_for(lambda: interventions(APP, "app", "restart", "ok") > before, REPAIR_WAIT,
             lambda: f"the stopped app was not restarted: {qosd_state(APP)}")
    wait_for(lambda: status_of(APP_HEALTH) == 200, 30, lambda: f"{APP_HEALTH} not healthy after the restart")
    assert unit_state(APP) == "active"
    assert remote(APP, f"systemctl show -p NRestarts --value {UNIT}").strip() == restarts_by_systemd


def load_denying_config() -> None:
    """nginx starts running a configuration that denies every client (403)."""
    remote(PROXY, f"echo 'deny all;' > {NGINX_FAULT} && nginx -t -q && systemctl reload nginx")


def test_403_at_the_proxy_is_repaired_by_a_reload(restore_proxy: None):
    """nginx runs a configuration that denies everything while the files on disk no longer do
    (an operator removed the bad include but did not reload): a reload repairs it.

    Others may reload nginx on the shared lab (a rolling deploy drains app servers), which
    repairs this fault too: the fault is injected again then, at most 3 times."""
    master = remote(PROXY, "cat /run/nginx.pid").strip()
    for _attempt in range(3):
        before = interventions(PROXY, "nginx", "reload_nginx", "ok")
        since = now_on(PROXY)
        load_denying_config()
        remote(PROXY, f"rm {NGINX_FAULT}")  # the files on disk are right again, not loaded
        assert status_of(PROXY_HEALTH) == 403
        wait_for(lambda: status_of(PROXY_HEALTH) == 200, 60, lambda: f"still 403: {qosd_state(PROXY)}")
        if interventions(PROXY, "nginx", "reload_nginx", "ok") > before:
            break
    else:
        pytest.fail("every 403 was repaired by someone else's reload before qosd's")
    reloads = [e for e in events(PROXY, since) if e["event"] == "intervention"]
    assert [(e["target"], e["result"], e["check"], e["symptom"]) for e in reloads] == [
        ("nginx", "ok", "proxy", "status_403")
    ]
    assert remote(PROXY, "cat /run/nginx.pid").strip() == master  # reloaded, not restarted


def test_proxy_config_that_fails_nginx_t_is_never_reloaded(restore_proxy: None):
    """The same 403, but the file on disk does not even parse: qosd refuses to reload it and
    nginx keeps running its last good configuration (a reload would have failed anyway;
    a restart would have taken the proxy down)."""
    rejected = interventions(PROXY, "nginx", "reload_nginx", "rejected")
    reloaded = interventions(PROXY, "nginx", "reload_nginx", "ok")
    master = remote(PROXY, "cat /run/nginx.pid").strip()
    load_denying_config()
    remote(PROXY, f"echo 'deny all' > {NGINX_FAULT}")
    wait_for(lambda: interventions(PROXY, "nginx", "reload_nginx", "rejected") > rejected, 60,
             lambda: f"no rejected reload: {qosd_state(PROXY)}")
    assert interventions(PROXY, "nginx", "reload_nginx", "ok") == reloaded
    assert remote(PROXY, "cat /run/nginx.pid").strip() == master
    assert status_of(PROXY_HEALTH) == 403  # still the running configuration, nginx still up
    log = remote(PROXY, "cat /var/log/qosd/qosd.log")
    assert re.search(r"ERROR intervention reload_nginx on nginx: rejected \(nginx -t failed", log)


def test_permanently_broken_app_is_escalated_after_a_bounded_number_of_restarts(restore_app: None):
    config = json.loads(remote(APP, "cat /etc/qosd/config.json"))
    cap = int(config["protection"]["max_interventions"])
    before = interventions(APP, "app", "restart", "ok")
    since = now_on(APP)
    # Whatever the release does, its port answers 404 to /health/: restarts cannot fix it.
    dropin = (
        "[Service]\nExecStart=\n"
        f"ExecStart=/usr/bin/python3 -m http.server --bind {APP} --directory {BROKEN_APP_ROOT} 8000\n"
    )
    dropin_dir = BROKEN_APP_DROPIN.rsplit("/", 1)[0]
    remote(APP, f"mkdir -p {BROKEN_APP_ROOT} {dropin_dir}"
                f" && printf %s {shlex.quote(dropin)} > {BROKEN_APP_DROPIN}"
                f" && systemctl daemon-reload && systemctl restart {UNIT}")
    wait_for(lambda: status_of(APP_HEALTH) == 404, 30, lambda: f"{APP_HEALTH} does not answer 404")

    wait_for(lambda: metric(APP, "qosd_escalated", target="app") == 1, ESCALATION_WAIT,
             lambda: f"no escalation: {qosd_state(APP)}")
    assert interventions(APP, "app", "restart", "ok") - before == cap
    log = remote(APP, "cat /var/log/qosd/qosd.log")
    assert re.search(r"ERROR ESCALATED app: \d+ interventions within", log)
    escalations = [e for e in events(APP, since) if e["event"] == "escalation"]
    assert [e["target"] for e in escalations] == ["app"]

    # No loop: the daemon keeps seeing the fault and keeps holding off.
    held = suppressed(APP, "escalated")
    wait_for(lambda: suppressed(APP, "escalated") >= held + 3, 60,
             lambda: f"the daemon stopped probing the escalated app: {qosd_state(APP)}")
    assert interventions(APP, "app", "restart", "ok") - before == cap
    assert status_of(APP_HEALTH) == 404


def test_nothing_is_restarted_while_paused(restore_app: None):
    before = interventions(APP, "app", "restart", "ok")
    remote(APP, f"{QOSD} pause --for 5m --reason 'lab fault test'")
    wait_for(lambda: metric(APP, "qosd_paused") == 1, 15, lambda: qosd_state(APP))
    held = suppressed(APP, "paused")
    remote(APP, f"systemctl stop {UNIT}")

    # The daemon saw the fault, would have restarted the app, and held off.
    wait_for(lambda: suppressed(APP, "paused") > held, 60,
             lambda: f"the paused daemon did not record a held-off restart: {qosd_state(APP)}")
    assert unit_state(APP) != "active"
    assert interventions(APP, "app", "restart", "ok") == before

    remote(APP, f"{QOSD} resume")
    wait_for(lambda: interventions(APP, "app", "restart", "ok") > before, REPAIR_WAIT,
             lambda: f"no restart after resume: {qosd_state(APP)}")
    wait_for(lambda: status_of(APP_HEALTH) == 200, 30, lambda: f"{APP_HEALTH} not healthy after resume")
