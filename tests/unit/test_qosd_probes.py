"""Real probes against local things: an http.server on 127.0.0.1, sockets, files in tmp_path."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from qosd.actions import SystemActions
from qosd.clock import FakeClock
from qosd.config import Commands, FilesParams, HttpParams, LogParams, SystemdParams, Target, TcpParams
from qosd.probes import CommandResult, FilesProbe, HttpProbe, LogRateProbe, Runner, SystemdProbe, TcpProbe


class App:
    """What the fake app answers; the handler reads it on every request."""

    status = 200
    body = b'{"status": "ok", "version": "1.2.3"}'
    hang = threading.Event()  # set: requests hang until released
    release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if App.hang.is_set():
            App.release.wait(10)
        self.send_response(App.status)
        self.send_header("Content-Length", str(len(App.body)))
        self.end_headers()
        self.wfile.write(App.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def app_url() -> Iterator[str]:
    App.status, App.body = 200, b'{"status": "ok", "version": "1.2.3"}'
    App.hang.clear()
    App.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health/"
    App.release.set()
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_ok_with_status_and_body(app_url: str) -> None:
    result = HttpProbe(HttpParams(url=app_url, status=(200,), body=r'"status": "ok"'), timeout=2)()
    assert result.ok, result.detail
    assert result.latency > 0


def test_http_unexpected_status_is_named(app_url: str) -> None:
    App.status = 502
    result = HttpProbe(HttpParams(url=app_url), timeout=2)()
    assert not result.ok
    assert result.symptom == "status_502"
    assert "502" in result.detail


def test_http_allowed_status_list(app_url: str) -> None:
    App.status = 403
    assert HttpProbe(HttpParams(url=app_url, status=(200, 403)), timeout=2)().ok
    assert HttpProbe(HttpParams(url=app_url), timeout=2)().symptom == "status_403"


def test_http_body_mismatch(app_url: str) -> None:
    App.body = b"maintenance"
    result = HttpProbe(HttpParams(url=app_url, body=r'"status": "ok"'), timeout=2)()
    assert result.symptom == "body"


def test_http_hung_app_times_out(app_url: str) -> None:
    App.hang.set()
    result = HttpProbe(HttpParams(url=app_url), timeout=0.3)()
    assert result.symptom == "timeout"
    assert 0.3 <= result.latency < 2


def test_http_latency_threshold(app_url: str) -> None:
    App.hang.set()
    threading.Timer(0.2, App.release.set).start()
    result = HttpProbe(HttpParams(url=app_url, max_latency=0.05), timeout=2)()
    assert result.symptom == "slow"
    assert "max 50 ms" in result.detail


def test_http_connection_refused() -> None:
    result = HttpProbe(HttpParams(url=f"http://127.0.0.1:{free_port()}/"), timeout=1)()
    assert result.symptom == "refused"


def test_http_ignores_proxy_environment(app_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    assert HttpProbe(HttpParams(url=app_url), timeout=2)().ok


def test_tcp_open_and_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert TcpProbe(TcpParams("127.0.0.1", port), timeout=1)().ok
    refused = TcpProbe(TcpParams("127.0.0.1", free_port()), timeout=1)()
    assert refused.symptom == "refused"


def fake_runner(answers: dict[str, CommandResult], calls: list[list[str]]) -> Runner:
    def run(argv: Sequence[str], timeout: float) -> CommandResult:
        calls.append(list(argv))
        for key, answer in answers.items():
            if key in " ".join(argv):
                return answer
        return CommandResult(0, "")

    return run


@pytest.mark.parametrize(
    ("output", "code", "ok"),
    [("active\n", 0, True), ("reloading\n", 0, True), ("failed\n", 3, False), ("inactive\n", 3, False)],
)
def test_systemd_unit_state(output: str, code: int, ok: bool) -> None:
    calls: list[list[str]] = []
    probe = SystemdProbe(
        SystemdParams("scheduler.service"),
        2,
        "/usr/bin/systemctl",
        fake_runner({"is-active": CommandResult(code, output)}, calls),
    )
    result = probe()
    assert result.ok is ok
    assert calls == [["/usr/bin/systemctl", "is-active", "scheduler.service"]]
    if not ok:
        assert result.symptom == "inactive"
        assert output.strip() in result.detail


def test_restart_runs_exactly_the_sudoers_commands() -> None:
    calls: list[list[str]] = []
    actions = SystemActions(Commands(), fake_runner({}, calls))
    outcome = actions.perform(Target("app", "restart", "scheduler"))
    assert outcome.result == "ok"
    assert calls == [
        ["/usr/bin/sudo", "-n", "/usr/bin/systemctl", "reset-failed", "scheduler.service"],
        ["/usr/bin/sudo", "-n", "/usr/bin/systemctl", "restart", "scheduler.service"],
    ]
    assert [
        ["/usr/bin/sudo", "-n", *line]
        for line in actions.command_lines([Target("app", "restart", "scheduler")])
    ] == calls


def test_restart_failure_is_reported() -> None:
    calls: list[list[str]] = []
    actions = SystemActions(Commands(), fake_runner({"restart": CommandResult(1, "Job failed")}, calls))
    outcome = actions.perform(Target("app", "restart", "scheduler.service"))
    assert outcome.result == "failed"
    assert "Job failed" in outcome.detail


def test_nginx_reload_only_after_nginx_t_passes() -> None:
    calls: list[list[str]] = []
    actions = SystemActions(Commands(use_sudo=False), fake_runner({}, calls))
    assert actions.perform(Target("nginx", "reload_nginx")).result == "ok"
    assert calls == [["/usr/sbin/nginx", "-t"], ["/usr/bin/systemctl", "reload", "nginx.service"]]


def test_nginx_not_reloaded_when_nginx_t_fails() -> None:
    calls: list[list[str]] = []
    broken = CommandResult(1, 'nginx: [emerg] unknown directive "sever" in /etc/nginx/sites-enabled/app:3')
    actions = SystemActions(Commands(), fake_runner({"-t": broken}, calls))
    outcome = actions.perform(Target("nginx", "reload_nginx"))
    assert outcome.result == "rejected"
    assert "unknown directive" in outcome.detail
    assert all("reload" not in call for call in calls)


# -- log rate -----------------------------------------------------------------------------------


def log_probe(path: Path, clock: FakeClock, max_matches: int = 2) -> LogRateProbe:
    return LogRateProbe(
        LogParams(path=str(path), patterns=("ERROR", r"Traceback"), max_matches=max_matches, window=60), clock
    )


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def test_log_rate_ignores_history_and_counts_new_errors(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    append(path, *["ERROR old"] * 50)
    probe = log_probe(path, clock)
    assert probe().ok
    append(path, "INFO fine", "ERROR one", "Traceback (most recent call last):")
    assert probe().ok  # 2 matches, max 2
    append(path, "ERROR three")
    result = probe()
    assert result.symptom == "error_rate"
    assert "3 line(s)" in result.detail


def test_log_rate_window_slides(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    path.touch()
    probe = log_probe(path, clock)
    probe()
    append(path, "ERROR a", "ERROR b", "ERROR c")
    assert not probe().ok
    clock.advance(61)
    assert probe().ok


def test_log_rate_follows_rotation_by_rename(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    path.touch()
    probe = log_probe(path, clock)
    probe()
    append(path, "ERROR before rotation")
    os.rename(path, tmp_path / "app.log.1")  # logrotate: rename, then the app writes a new file
    append(path, "ERROR new 1", "ERROR new 2")
    result = probe()
    assert "3 line(s)" in result.detail  # the old file's tail and the whole new file
    append(path, "ERROR new 3")
    assert "4 line(s)" in probe().detail


def test_log_rate_follows_truncation(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    append(path, *["INFO padding line"] * 20)
    probe = log_probe(path, clock, max_matches=0)
    probe()
    path.write_text("")  # copytruncate
    append(path, "ERROR after truncate")
    result = probe()
    assert result.symptom == "error_rate"
    assert "1 line(s)" in result.detail


def test_log_rate_waits_for_a_missing_file(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    probe = log_probe(path, clock, max_matches=0)
    assert probe().ok
    append(path, "ERROR first line of a new file")
    assert probe().symptom == "error_rate"


def test_log_rate_acknowledge_forgets_counted_errors(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    path.touch()
    probe = log_probe(path, clock, max_matches=0)
    probe()
    append(path, "ERROR x")
    assert not probe().ok
    probe.acknowledge()
    assert probe().ok


def test_log_rate_waits_for_the_end_of_a_line(tmp_path: Path) -> None:
    path, clock = tmp_path / "app.log", FakeClock()
    path.touch()
    probe = log_probe(path, clock, max_matches=0)
    probe()
    with path.open("a") as handle:
        handle.write("ERR")
    assert probe().ok
    with path.open("a") as handle:
        handle.write("OR split line\n")
    assert probe().symptom == "error_rate"


# -- config files -------------------------------------------------------------------------------


def test_files_change_fails_after_settling_and_acknowledge_accepts_it(tmp_path: Path) -> None:
    conf = tmp_path / "site.conf"
    conf.write_text("server { listen 80; }\n")
    clock = FakeClock()
    probe = FilesProbe(FilesParams(paths=(str(tmp_path / "*.conf"),), settle=5), clock)
    assert probe().ok
    conf.write_text("server { listen 8080; }\n")
    assert probe().ok  # settling
    clock.advance(5)
    assert probe().symptom == "changed"
    probe.acknowledge()
    assert probe().ok


def test_files_new_file_matching_the_glob_is_a_change(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("a")
    clock = FakeClock()
    probe = FilesProbe(FilesParams(paths=(str(tmp_path / "*.conf"),), settle=0), clock)
    probe()
    (tmp_path / "b.conf").write_text("b")
    assert probe().symptom == "changed"
