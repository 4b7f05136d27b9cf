"""The Prometheus gate against a fake Prometheus on 127.0.0.1: the math, the verdicts, and
what happens when Prometheus is missing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from verify.prometheus import GateSettings, Prometheus, default_criteria, run_gate, window_seconds


class FakePrometheus(ThreadingHTTPServer):
    """Answers /api/v1/query from `answers`: the first key found in the query wins."""

    answers: dict[str, list[tuple[dict[str, str], float]]]
    queries: list[tuple[str, float]]


class _Handler(BaseHTTPRequestHandler):
    server: FakePrometheus

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        params = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        query, at = params["query"], float(params["time"])
        self.server.queries.append((query, at))
        result = next((series for key, series in self.server.answers.items() if key in query), [])
        body = {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": labels, "value": [at, str(value)]} for labels, value in result]}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


HEALTHY = {
    "timestamp(up": [({}, 4e9)],  # every app target scraped long after the load
    "request_duration_seconds_sum": [({}, 120.0)],
    "server_errors_total": [({}, 0.2)],
    "node_cpu_seconds_total": [({"host": "app1"}, 35.0), ({"host": "db1"}, 20.0)],
    "node_memory_MemAvailable_bytes": [({"host": "app1"}, 40.0), ({"host": "db1"}, 30.0)],
}


@contextmanager
def fake_prometheus(answers: dict) -> Iterator[tuple[str, FakePrometheus]]:
    server = FakePrometheus(("127.0.0.1", 0), _Handler)
    server.answers, server.queries = answers, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


def _settings(url: str, **extra) -> GateSettings:
    return GateSettings(url=url, started_at=extra.pop("started_at", 1.0e9), settle_timeout=1, **extra)


def test_healthy_service_passes_every_criterion():
    with fake_prometheus(HEALTHY) as (url, _):
        result = run_gate(_settings(url))
    assert result.passed, result.findings
    assert [case.passed for case in result.cases] == [True] * 4
    assert result.measurements["cpu_percent"] == {"app1": 35.0, "db1": 20.0}


@pytest.mark.parametrize(("key", "value", "criterion"), [
    ("request_duration_seconds_sum", 300.0, "average response time"),
    ("server_errors_total", 1.0, "5xx error rate"),
    ("node_cpu_seconds_total", 80.0, "CPU busy per host"),
    ("node_memory_MemAvailable_bytes", 93.5, "memory used per host"),
])
def test_a_value_at_or_over_its_threshold_fails_naming_the_host(key, value, criterion):
    answers = dict(HEALTHY)
    labels = {"host": "app2"} if key.startswith("node") else {}
    answers[key] = [*answers[key], (labels, value)] if labels else [(labels, value)]
    with fake_prometheus(answers) as (url, _):
        result = run_gate(_settings(url))
    assert not result.passed
    [finding] = [f for f in result.findings if f.severity == "error"]
    assert finding.message.startswith(criterion)
    assert finding.target == ("app2" if labels else "service")


def test_a_criterion_not_gated_is_reported_but_does_not_fail():
    answers = dict(HEALTHY, node_cpu_seconds_total=[({"host": "app1"}, 99.0)])
    criteria = default_criteria()
    criteria[2].gated, criteria[2].reason = False, "lab machine"
    with fake_prometheus(answers) as (url, _):
        result = run_gate(_settings(url, criteria=criteria))
    assert result.passed
    [finding] = result.findings
    assert finding.severity == "warning"
    assert "not gated here: lab machine" in finding.message


def test_no_data_fails_the_gate():
    answers = {key: value for key, value in HEALTHY.items() if key != "request_duration_seconds_sum"}
    with fake_prometheus(answers) as (url, _):
        result = run_gate(_settings(url))
    assert not result.passed
    assert "no data" in result.findings[0].message


def test_queries_cover_the_whole_window_at_its_end():
    with fake_prometheus(HEALTHY) as (url, server):
        started = 1.7e9
        run_gate(_settings(url, started_at=started))
    gate_queries = [(query, at) for query, at in server.queries if "timestamp(up" not in query]
    assert len(gate_queries) == 4
    for query, at in gate_queries:
        window = window_seconds(started, at, 30)
        assert f"[{window}s" in query
    assert window_seconds(100.0, 100.5, 30) == 30
    assert window_seconds(100.0, 190.2, 30) == 91


def test_waits_for_a_scrape_after_the_load_then_gives_up_at_the_timeout():
    with fake_prometheus(dict(HEALTHY, **{"timestamp(up": [({}, 50.0)]})) as (url, server):
        result = run_gate(_settings(url, load_finished_at=100.0, started_at=10.0))
    polls = [query for query, _ in server.queries if "timestamp(up" in query]
    assert len(polls) >= 2  # polled again, bounded by settle_timeout (1 s)
    assert result.passed


def test_missing_prometheus_fails_when_the_gate_is_on():
    result = run_gate(_settings("http://127.0.0.1:9"), prom=Prometheus("http://127.0.0.1:9", timeout=1))
    assert not result.passed
    assert "Prometheus gate could not run" in result.findings[0].message


def test_gate_off_is_a_clear_no_prometheus_finding_that_does_not_fail():
    result = run_gate(_settings("http://127.0.0.1:9"), enabled=False)
    assert result.passed
    assert result.skipped
    assert "no Prometheus gate" in result.findings[0].message
    assert result.findings[0].severity == "info"
