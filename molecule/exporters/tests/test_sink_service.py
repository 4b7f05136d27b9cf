"""The alert sink as deployed on the monitoring host (mol-exp-mon, CT 225): what
Alertmanager (on the same host) and the lab tests (from the controller) see."""

from __future__ import annotations

import json

import pytest
import requests
from conftest import MON_ADDRESS

SINK = f"http://{MON_ADDRESS}:9099/alerts"
DATA_DIR = "/var/lib/alert-sink"


def payload(alertname: str) -> dict:
    return {"version": "4", "status": "firing", "receiver": "lab-webhook",
            "groupLabels": {"alertname": alertname}, "commonLabels": {"alertname": alertname},
            "alerts": [{"status": "firing", "labels": {"alertname": alertname, "severity": "critical"}}]}


@pytest.fixture
def empty_sink(mon):
    mon.check_output(f"curl -sSf -X DELETE {SINK}")
    yield
    mon.check_output(f"curl -sSf -X DELETE {SINK}")


def post_from(host, body: str) -> int:
    """POST `body` to the sink with curl on `host`; the HTTP status."""
    out = host.check_output(f"curl -sS -o /dev/null -w '%{{http_code}}' -H 'Content-Type: application/json' "
                            f"--data-binary @- {SINK} <<'EOF'\n{body}\nEOF")
    return int(out)


def test_sink_is_enabled_running_and_unprivileged(mon):
    service = mon.service("alert-sink")
    assert service.is_enabled
    assert service.is_running
    pid = mon.check_output("systemctl show -p MainPID --value alert-sink")
    assert mon.check_output(f"ps -o user= -p {pid}") == "alert-sink"
    user = mon.user("alert-sink")
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000


def test_sink_listens_on_the_container_address_only(mon):
    sockets = [line.split()[3] for line in mon.check_output("ss -Htln").splitlines()
               if line.split()[3].endswith(":9099")]
    assert sockets == [f"{MON_ADDRESS}:9099"]


def test_data_directory_belongs_to_the_service_user(mon):
    directory = mon.file(DATA_DIR)
    assert directory.is_directory
    assert (directory.user, directory.group, directory.mode) == ("alert-sink", "alert-sink", 0o750)


@pytest.mark.usefixtures("empty_sink")
def test_post_then_get_round_trip_from_the_monitoring_host(mon):
    first, second = payload("TargetDown"), payload("PostgresqlDown")
    assert post_from(mon, json.dumps(first)) == 200
    assert post_from(mon, json.dumps(second)) == 200
    assert json.loads(mon.check_output(f"curl -sSf {SINK}")) == [first, second]
    # The same record from the controller, as the lab tests read it.
    assert requests.get(SINK, timeout=10).json() == [first, second]
    record = mon.file(f"{DATA_DIR}/alerts.jsonl")
    assert (record.user, record.mode) == ("alert-sink", 0o640)
    assert len(record.content_string.splitlines()) == 2


@pytest.mark.usefixtures("empty_sink")
def test_bad_input_is_refused_with_400_and_not_recorded(mon):
    assert post_from(mon, "{not json") == 400
    assert post_from(mon, '{"status": "firing"}') == 400
    assert requests.get(SINK, timeout=10).json() == []


@pytest.mark.usefixtures("empty_sink")
def test_delete_clears_the_record(mon):
    assert post_from(mon, json.dumps(payload("TargetDown"))) == 200
    assert requests.delete(SINK, timeout=10).status_code == 204
    assert requests.get(SINK, timeout=10).json() == []


@pytest.mark.usefixtures("empty_sink")
def test_the_record_survives_a_restart_of_the_service(mon):
    assert post_from(mon, json.dumps(payload("TargetDown"))) == 200
    mon.check_output("systemctl restart alert-sink")
    mon.check_output(f"curl -sS --retry 10 --retry-connrefused --retry-delay 1 -o /dev/null {SINK}")
    assert [p["groupLabels"]["alertname"] for p in requests.get(SINK, timeout=10).json()] == ["TargetDown"]
