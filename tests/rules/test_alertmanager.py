"""Routing and inhibition of the monitoring role's Alertmanager configuration, on a real
Alertmanager (Debian's binary, unpacked by `make test-rules`) bound to loopback.

The configuration is rendered by tests/rules/render.yml with the role's defaults; only the
webhook URL (a receiver in this test) and the waits are overridden, so the routes and the
inhibit rules under test are the ones the role deploys. promtool cannot test inhibition
(an Alertmanager feature), and `amtool config routes test` only shows routing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".cache" / "tools" / "root" / "usr" / "bin"
ALERTMANAGER = TOOLS / "prometheus-alertmanager"
AMTOOL = TOOLS / "amtool"
WAIT_SECONDS = 20


class Sink(ThreadingHTTPServer):
    """Records every webhook payload Alertmanager posts."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SinkHandler)
        self.payloads: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


class SinkHandler(BaseHTTPRequestHandler):
    server: Sink

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.payloads.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _render(rendered: Path, webhook_url: str) -> Path:
    playbook = Path(sys.executable).parent / "ansible-playbook"
    overrides = {"rendered_dir": str(rendered), "monitoring_alertmanager_webhook_url": webhook_url,
                 "monitoring_alertmanager_group_wait": "1s", "monitoring_alertmanager_group_interval": "2s"}
    command = [str(playbook), "-i", "localhost,", "tests/rules/render.yml", "-e", json.dumps(overrides)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return rendered / "alertmanager.yml"


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    server = Sink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> Path:
    if not ALERTMANAGER.exists():
        pytest.fail(f"{ALERTMANAGER} is missing: run `make test-rules`, which unpacks it")
    return _render(tmp_path_factory.mktemp("rendered"), sink.url)


@pytest.fixture(scope="module")
def alertmanager(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    address = f"127.0.0.1:{_free_port()}"
    storage = tmp_path_factory.mktemp("alertmanager")
    command = [str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={storage}",
               f"--web.listen-address={address}", "--cluster.listen-address="]
    # Debian's Alertmanager reads its notification templates from the fixed path
    # /usr/share/prometheus/alertmanager/, which the unpacked (not installed) package does not
    # provide. In a private mount namespace (nothing changes for the rest of the machine),
    # the package's usr/share is laid over /usr/share, read-only, for this process only.
    shared = TOOLS.parent / "share"
    script = f'mount -t overlay overlay -o lowerdir="{shared}":/usr/share /usr/share && exec "$0" "$@"'
    proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script, *command],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{address}"
    try:
        _wait(lambda: proc.poll() is not None or _ready(url), f"Alertmanager at {url} did not start")
        assert proc.poll() is None, f"Alertmanager exited with {proc.returncode}: {command}"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy from the environment
    return session


def _ready(url: str) -> bool:
    try:
        return _http().get(f"{url}/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def _wait(condition: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{message} within {WAIT_SECONDS}s")


def _alert(name: str, severity: str, instance: str) -> dict:
    return {"labels": {"alertname": name, "severity": severity, "instance": instance, "job": "node"},
            "annotations": {"summary": f"{name} {severity} on {instance}"}}


def _states(url: str) -> dict[tuple[str, str, str], dict]:
    alerts = _http().get(f"{url}/api/v2/alerts", timeout=5).json()
    return {(a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["instance"]): a["status"]
            for a in alerts}


def _delivered(sink: Sink) -> set[tuple[str, str, str, str]]:
    return {(p["receiver"], a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["instance"])
            for p in sink.payloads for a in p["alerts"] if a["status"] == "firing"}


def test_config_is_valid_for_amtool(config: Path):
    proc = subprocess.run([str(AMTOOL), "check-config", str(config)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("severity", "receiver"), [("critical", "critical"), ("warning", "warning"),
                                                    ("info", "default")])
def test_routes_by_severity(config: Path, severity: str, receiver: str):
    proc = subprocess.run([str(AMTOOL), "config", "routes", "test", f"--config.file={config}",
                           "alertname=HostHighCpu", f"severity={severity}"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [receiver]


def test_critical_mutes_the_warning_of_the_same_alert_and_instance(alertmanager: str, sink: Sink):
    alerts = [
        _alert("HostHighCpu", "critical", "10.92.3.121:9100"),
        _alert("HostHighCpu", "warning", "10.92.3.121:9100"),   # muted by the critical above
        _alert("HostHighCpu", "warning", "10.92.3.122:9100"),   # other instance: not muted
        _alert("HostHighMemory", "warning", "10.92.3.121:9100"),  # other alert: not muted
    ]
    assert _http().post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    expected = {
        ("critical", "HostHighCpu", "critical", "10.92.3.121:9100"),
        ("warning", "HostHighCpu", "warning", "10.92.3.122:9100"),
        ("warning", "HostHighMemory", "warning", "10.92.3.121:9100"),
    }
    _wait(lambda: expected <= _delivered(sink), f"notifications {expected} (got {_delivered(sink)})")

    states = _states(alertmanager)
    assert states[("HostHighCpu", "warning", "10.92.3.121:9100")]["inhibitedBy"]
    assert states[("HostHighCpu", "warning", "10.92.3.121:9100")]["state"] == "suppressed"
    unmuted = [("HostHighCpu", "critical", "10.92.3.121:9100"),
               ("HostHighCpu", "warning", "10.92.3.122:9100"),
               ("HostHighMemory", "warning", "10.92.3.121:9100")]
    for key in unmuted:
        assert states[key]["state"] == "active", (key, states[key])
    # Several group intervals later, the muted warning has still not been sent.
    time.sleep(3 * 2)
    assert ("warning", "HostHighCpu", "warning", "10.92.3.121:9100") not in _delivered(sink)
