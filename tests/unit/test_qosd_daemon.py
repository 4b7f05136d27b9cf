"""The daemon as systemd and operators see it: sd_notify, /metrics, the CLI, the logs."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from qosd import state
from qosd.cli import _parser, main
from qosd.clock import FakeClock
from qosd.config import parse
from qosd.daemon import Heartbeat, run
from qosd.logs import InterventionLog
from qosd.notify import Notifier
from qosd.unit import sudoers_text, unit_text

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp_path: Path, checks: list[dict[str, object]], **extra: object) -> Path:
    data = {
        "state_dir": str(tmp_path / "state"),
        "log_dir": str(tmp_path / "log"),
        "metrics": {"address": "127.0.0.1", "port": 0},
        "targets": {"app": {"action": "restart", "unit": "scheduler.service"}},
        "checks": checks,
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        yield sock, path


def receive_until(sock: socket.socket, field: str, seen: list[str] | None = None) -> str:
    """The first datagram holding `field` (a whole line); every datagram read is added to `seen`."""
    for message in seen or []:
        if field in message.split("\n"):
            return message
    while True:
        message = sock.recv(4096).decode()
        if seen is not None:
            seen.append(message)
        if field in message.split("\n"):
            return message


# -- sd_notify and the watchdog -----------------------------------------------------------------


def test_notifier_sends_ready_and_watchdog(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval == 15
    assert notifier.ready("up")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=up"
    assert notifier.watchdog()
    assert sock.recv(4096).decode() == "WATCHDOG=1"


def test_notifier_abstract_socket_address() -> None:
    assert Notifier({"NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify"}).address.startswith("\0")


def test_notifier_without_systemd_is_silent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert notifier.watchdog_interval is None


def test_watchdog_of_another_process_is_ignored() -> None:
    assert (
        Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval
        is None
    )


def test_heartbeat_stops_vouching_for_a_stuck_loop() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(clock)
    heartbeat.promise(30)
    clock.advance(29)
    assert heartbeat.alive()
    clock.advance(2)
    assert not heartbeat.alive()


# -- the daemon end to end (loopback only) -------------------------------------------------------


def test_run_notifies_ready_serves_metrics_and_stops(
    tmp_path: Path, listener: int, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    config = parse(
        json.loads(
            write_config(
                tmp_path,
                [
                    {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": listener},
                    {"name": "gone", "type": "tcp", "host": "127.0.0.1", "port": free_port()},
                ],
            ).read_text()
        )
    )
    stop = threading.Event()
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    codes: list[int] = []
    daemon = threading.Thread(target=lambda: codes.append(run(config, notifier=notifier, stop=stop)))
    daemon.start()
    try:
        seen: list[str] = []
        ready = receive_until(sock, "READY=1", seen)
        port = int(ready.rsplit("port ", 1)[1])
        receive_until(sock, "STATUS=active; failing: gone", seen)
        receive_until(sock, "WATCHDOG=1", seen)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'qosd_check_success{check="db",type="tcp"} 1.0' in text
        assert 'qosd_check_success{check="gone",type="tcp"} 0.0' in text
        assert "qosd_paused 0.0" in text
        assert 'qosd_escalated{target="app"} 0.0' in text
        assert "qosd_check_latency_seconds" in text
    finally:
        stop.set()
        daemon.join(10)
    assert codes == [0]
    assert "STOPPING=1" in receive_until(sock, "STOPPING=1")
    saved = json.loads((config.state_dir / state.STATUS_FILE).read_text())
    assert saved["checks"]["gone"]["ok"] is False
    assert "qosd started" in (config.log_dir / "qosd.log").read_text()


def test_run_fails_clearly_when_the_metrics_port_is_taken(tmp_path: Path, listener: int) -> None:
    config = parse(
        json.loads(
            write_config(
                tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 1}]
            ).read_text()
        )
    )
    config = type(config)(**{**config.__dict__, "metrics_port": listener})
    assert run(config, notifier=Notifier({}), stop=threading.Event()) == 1
    assert "cannot serve metrics" in (config.log_dir / "qosd.log").read_text()


def test_intervention_log_is_json_lines_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "interventions.jsonl"
    sink = InterventionLog(path, max_bytes=1024, backups=2)
    for number in range(40):
        sink({"event": "intervention", "target": "app", "number": number})
    sink.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["number"] == 39
    assert all(json.loads(line)["event"] == "intervention" for line in lines)
    assert (tmp_path / "interventions.jsonl.1").exists()
    assert not (tmp_path / "interventions.jsonl.3").exists()


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_test_exit_status_and_report(
    tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": listener}])
    assert main(["--config", str(config), "test"]) == 0
    assert "OK   db" in capsys.readouterr().out
    refused = free_port()
    config = write_config(
        tmp_path,
        [
            {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": listener},
            {"name": "app", "type": "http", "url": f"http://127.0.0.1:{refused}/", "remedy": "app"},
        ],
    )
    assert main(["--config", str(config), "test"]) == 1
    out = capsys.readouterr().out
    assert "FAIL app" in out
    assert "connection refused" in out
    assert "would act on app" in out
    assert "1/2 checks ok, 1 failing" in out


def test_cli_test_json(tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": listener}])
    assert main(["--config", str(config), "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ok"] is True


def test_cli_bad_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": "x"}])
    assert main(["--config", str(config), "test"]) == 2
    assert "checks[0].port: expected an integer" in capsys.readouterr().err
    assert main(["check-config", str(config)]) == 2


def test_cli_check_config_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO / "qosd" / "example-config.json")]) == 0
    assert "valid (6 checks, 2 targets)" in capsys.readouterr().out


def test_cli_pause_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 1}])
    assert main(["--config", str(config), "pause", "--for", "90s", "--reason", "deploy app1"]) == 0
    pause = state.read_pause(tmp_path / "state")
    assert pause is not None
    assert pause.reason == "deploy app1"
    assert pause.until - pause.since == pytest.approx(90)
    assert main(["--config", str(config), "resume"]) == 0
    assert state.read_pause(tmp_path / "state") is None
    assert "resumed" in capsys.readouterr().out


def test_cli_pause_defaults_and_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(
        tmp_path,
        [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 1}],
        pause={"default": "5m", "max": "1h"},
    )
    assert main(["--config", str(config), "pause"]) == 0
    pause = state.read_pause(tmp_path / "state")
    assert pause is not None
    assert pause.until - pause.since == pytest.approx(300)
    assert main(["--config", str(config), "pause", "--for", "2h"]) == 2
    assert "at most pause.max" in capsys.readouterr().err
    assert main(["--config", str(config), "pause", "--for", "soon"]) == 2


def test_cli_reset_writes_a_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 1}])
    assert main(["--config", str(config), "reset", "app"]) == 0
    assert state.take_reset_request(tmp_path / "state") == ["app"]
    assert main(["--config", str(config), "reset", "nope"]) == 2


def test_cli_install_prints_unit_and_sudoers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 1}])
    assert main(["--config", str(config), "install", "--python", "/opt/qosd/venv/bin/python"]) == 0
    out = capsys.readouterr().out
    assert "Type=notify" in out
    assert "WatchdogSec=30" in out
    exec_start = next(line for line in out.splitlines() if line.startswith("ExecStart="))
    python, dash_m, module, *args = shlex.split(exec_start.removeprefix("ExecStart="))
    assert (python, dash_m, module) == ("/opt/qosd/venv/bin/python", "-m", "qosd")
    parsed = _parser().parse_args(args)  # the unit's command line is one the CLI accepts
    assert (parsed.command, parsed.config) == ("run", str(config))
    assert "qosd ALL=(root) NOPASSWD: QOSD_COMMANDS" in out


def test_sudoers_allows_exactly_the_configured_commands() -> None:
    config = parse(
        {
            "targets": {"app": {"action": "restart", "unit": "scheduler"}, "web": {"action": "reload_nginx"}},
            "checks": [{"name": "db", "type": "tcp", "host": "h", "port": 1}],
        }
    )
    text = sudoers_text(config)
    commands = text.split("QOSD_COMMANDS = ", 1)[1].split("\nqosd ALL", 1)[0].replace("\\\n", "").split(", ")
    assert [command.strip() for command in commands] == [
        "/usr/bin/systemctl reset-failed scheduler.service",
        "/usr/bin/systemctl restart scheduler.service",
        "/usr/sbin/nginx -t",
        "/usr/bin/systemctl reload nginx.service",
    ]


def test_unit_keeps_sudo_usable() -> None:
    text = unit_text("/etc/qosd/config.json", python="/usr/bin/python3")
    assert "NoNewPrivileges=yes" not in text  # sudo would be refused
    assert "User=qosd" in text


def test_python_m_qosd_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qosd", "check-config", str(tmp_path / "absent.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot read the file" in done.stderr
