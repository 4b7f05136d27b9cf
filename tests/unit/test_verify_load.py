"""The SLA load test: locust's statistics read and judged, and one real, short locust run
against a local server (the command line and the files it writes are the real ones)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from verify.load import LoadSettings, LoadStats, judge, locust_environment, read_stats, run_load
from verify.results import CheckResult

HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
          "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
          "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n")


def _stats_files(tmp_path: Path, requests: int, failures: int, p95: str) -> Path:
    prefix = tmp_path / "load"
    figures = f"{requests},{failures},50,61.5,3,900,100,12.5,0,50,60,70,80,90,{p95},300,400,800,900,900"
    Path(f"{prefix}_stats.csv").write_text(f"{HEADER}GET,/,{figures}\n,Aggregated,{figures}\n")
    failed = "GET,/,HTTPError('503 Server Error'),2\n" if failures else ""
    Path(f"{prefix}_failures.csv").write_text("Method,Name,Error,Occurrences\n" + failed)
    return prefix


def _judge(tmp_path, requests=2000, failures=0, p95="120") -> CheckResult:
    stats = read_stats(_stats_files(tmp_path, requests, failures, p95))
    return judge(stats, LoadSettings(base_url="https://proxy"), CheckResult(name="load", title="load"))


def test_within_the_sla_passes(tmp_path):
    result = _judge(tmp_path)
    assert result.passed
    assert result.measurements["p95_ms"] == 120.0
    assert result.measurements["requests"] == 2000


def test_p95_at_the_limit_fails(tmp_path):
    result = _judge(tmp_path, p95="500")
    assert not result.passed
    assert "p95 response time 500 ms, SLA < 500 ms" in result.findings[0].message


def test_error_rate_at_the_limit_fails_and_names_the_errors(tmp_path):
    result = _judge(tmp_path, requests=2000, failures=2)  # 0.1 %
    assert not result.passed
    assert "error rate 0.100 %" in result.findings[0].message
    assert "503 Server Error" in result.findings[0].message


def test_one_error_in_two_thousand_passes(tmp_path):
    assert _judge(tmp_path, requests=2000, failures=1).passed  # 0.05 %


def test_no_requests_fails(tmp_path):
    result = judge(LoadStats(0, 0, 0.0, 0.0, 0.0), LoadSettings(base_url="x"), CheckResult("load", "load"))
    assert not result.passed


def test_the_session_reaches_locust_only_through_its_environment():
    settings = LoadSettings(base_url="https://proxy", verify="/run/ca.pem")
    env = locust_environment(settings, {"sessionid": "abc"})
    assert env["VERIFY_LOAD_COOKIES"] == '{"sessionid": "abc"}'
    assert env["VERIFY_LOAD_CA"] == "/run/ca.pem"


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        cookie_ok = "sessionid=abc" in self.headers.get("Cookie", "")
        status = 200 if self.path == "/ok/" and cookie_ok else 500
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.mark.slow
@pytest.mark.parametrize(("path", "passes"), [("/ok/", True), ("/broken/", False)])
def test_a_real_locust_run_is_bounded_and_judged(tmp_path, path, passes):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = LoadSettings(base_url=f"http://127.0.0.1:{server.server_address[1]}", users=5,
                                spawn_rate=5, duration=2, wait_min=0.1, wait_max=0.2, paths=[path])
        result = run_load(settings, tmp_path, {"sessionid": "abc"})
    finally:
        server.shutdown()
        server.server_close()
    assert result.passed is passes, result.findings
    assert result.measurements["requests"] > 10
    assert (tmp_path / "load_stats.csv").exists()
    assert (tmp_path / "load.html").exists()
    assert result.seconds < 30
