"""The lab's Alertmanager webhook sink (roles/alert_sink/files/alert_sink.py), run for real
on 127.0.0.1 on an ephemeral port: what Alertmanager and the lab tests see over HTTP."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SINK_SOURCE = Path(__file__).resolve().parents[2] / "roles" / "alert_sink" / "files" / "alert_sink.py"


def _load_sink() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alert_sink", SINK_SOURCE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


alert_sink = _load_sink()


def webhook(alertname: str, status: str = "firing") -> dict[str, Any]:
    """A payload shaped like Alertmanager's webhook (version 4)."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "status": status,
        "receiver": "lab-webhook",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": status, "labels": {"alertname": alertname, "instance": "10.92.3.1:9100"},
                    "annotations": {"summary": "down"}, "startsAt": "2025-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "abc"}],
    }


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    port: int
    data_file: Path

    def request(self, method: str, path: str = "/alerts", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        conn = HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(response.status, response.read())
        finally:
            conn.close()

    def post(self, payload: Any) -> Answer:
        return self.request("POST", body=json.dumps(payload).encode(),
                            headers={"Content-Type": "application/json"})

    def recorded(self) -> list[Any]:
        answer = self.request("GET")
        assert answer.status == 200
        return answer.json()


def start_sink(data_file: Path, max_bytes: int = 1 << 20, max_body_bytes: int = 64 << 10) -> Iterator[Sink]:
    args = alert_sink.parse_args(["--listen-address", "127.0.0.1", "--port", "0",
                                  "--data-file", str(data_file), "--max-bytes", str(max_bytes),
                                  "--max-body-bytes", str(max_body_bytes)])
    server = alert_sink.make_server(args)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Sink(server.server_address[1], data_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    yield from start_sink(tmp_path / "alerts.jsonl")


def test_a_posted_payload_is_returned_unchanged(sink: Sink) -> None:
    payload = webhook("TargetDown")
    assert sink.post(payload).status == 200
    assert sink.recorded() == [payload]


def test_payloads_come_back_in_arrival_order(sink: Sink) -> None:
    payloads = [webhook("TargetDown"), webhook("TargetDown", "resolved"), webhook("DiskFull")]
    for payload in payloads:
        assert sink.post(payload).status == 200
    assert sink.recorded() == payloads


def test_nothing_recorded_is_an_empty_list(sink: Sink) -> None:
    assert sink.recorded() == []


def test_delete_clears_the_record(sink: Sink) -> None:
    sink.post(webhook("TargetDown"))
    assert sink.request("DELETE").status == 204
    assert sink.recorded() == []
    sink.post(webhook("DiskFull"))
    assert [p["groupLabels"]["alertname"] for p in sink.recorded()] == ["DiskFull"]


def test_payloads_are_kept_as_json_lines_in_the_data_file(sink: Sink) -> None:
    sink.post(webhook("TargetDown"))
    sink.post(webhook("DiskFull"))
    lines = sink.data_file.read_text().splitlines()
    assert [json.loads(line)["groupLabels"]["alertname"] for line in lines] == ["TargetDown", "DiskFull"]


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    data_file = tmp_path / "alerts.jsonl"
    for sink in start_sink(data_file):
        sink.post(webhook("TargetDown"))
    for sink in start_sink(data_file):
        assert [p["groupLabels"]["alertname"] for p in sink.recorded()] == ["TargetDown"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"status": "firing"}', '"alerts" list'),
        (b'{"alerts": {"a": 1}}', '"alerts" list'),
        (b'{"alerts": [1]}', "must be a JSON object"),
    ],
)
def test_bad_payloads_are_refused_with_400_and_not_recorded(sink: Sink, body: bytes, reason: str) -> None:
    answer = sink.request("POST", body=body, headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert reason in answer.json()["error"]
    assert sink.recorded() == []


def test_a_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    for sink in start_sink(tmp_path / "alerts.jsonl", max_body_bytes=512):
        payload = webhook("TargetDown")
        payload["commonAnnotations"] = {"description": "x" * 1024}
        assert sink.post(payload).status == 413
        assert sink.recorded() == []


def test_a_post_without_content_length_is_refused(sink: Sink) -> None:
    conn = HTTPConnection("127.0.0.1", sink.port, timeout=10)
    try:
        conn.putrequest("POST", "/alerts")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"0\r\n\r\n")
        assert conn.getresponse().status == 411
    finally:
        conn.close()
    assert sink.recorded() == []


def test_the_data_file_stays_under_its_bound_dropping_the_oldest(tmp_path: Path) -> None:
    line_size = len(json.dumps(webhook("Alert00"), separators=(",", ":"), sort_keys=True)) + 1
    max_bytes = line_size * 5 + line_size // 2  # room for five payloads, not six
    for sink in start_sink(tmp_path / "alerts.jsonl", max_bytes=max_bytes):
        for number in range(12):
            assert sink.post(webhook(f"Alert{number:02d}")).status == 200
            assert sink.data_file.stat().st_size <= max_bytes
        names = [p["groupLabels"]["alertname"] for p in sink.recorded()]
    assert names == [f"Alert{number:02d}" for number in range(7, 12)]


def test_a_payload_larger_than_the_whole_store_is_refused(tmp_path: Path) -> None:
    for sink in start_sink(tmp_path / "alerts.jsonl", max_bytes=256, max_body_bytes=64 << 10):
        sink.post({"alerts": []})
        assert sink.post(webhook("TargetDown")).status == 400
        assert sink.recorded() == [{"alerts": []}]


def test_unknown_paths_are_404(sink: Sink) -> None:
    assert sink.request("GET", "/").status == 404
    assert sink.request("POST", "/other", body=b"{}").status == 404
    assert sink.request("DELETE", "/").status == 404


def test_health_endpoint(sink: Sink) -> None:
    assert sink.request("GET", "/-/healthy").status == 200


def test_concurrent_posts_are_all_recorded(sink: Sink) -> None:
    names = [f"Alert{number:02d}" for number in range(20)]
    threads = [threading.Thread(target=sink.post, args=(webhook(name),)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(p["groupLabels"]["alertname"] for p in sink.recorded()) == names
