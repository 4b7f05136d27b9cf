"""qosd on loopback: fault-to-healthy time for a hung app, and the daemon's RSS and CPU.

No lab needed. The "app" is `python -m http.server` on 127.0.0.1; the hang is SIGSTOP.
qosd runs with its default check timing (2 s interval, 2 s timeout, threshold 3) and
`commands.systemctl` pointing at a shim that plays systemd for this one fake unit
(`restart` = SIGKILL + start again). So the figure is qosd's own share of a repair:
detection plus the restart command; the lab fault test adds real gunicorn and systemd.
Target (issue 6): hung app healthy again within 15 s.

Prints JSON lines: qosd_hung_app_recovery_seconds (each run and the worst),
qosd_rss_mib, qosd_cpu_percent (over a steady window at the default interval).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from benchlib import REPO, emit

RUNS = 3
STEADY_SECONDS = 30.0
SHIM = '''#!{python}
"""systemctl for one fake unit: the http.server whose pid is in {pidfile}."""
import os, signal, socket, subprocess, sys, time
verb = sys.argv[1]
pidfile = {pidfile!r}
if verb == "is-active":
    print("active"); sys.exit(0)
if verb == "restart":
    try:
        os.kill(int(open(pidfile).read()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    child = subprocess.Popen([{python!r}, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    open(pidfile, "w").write(str(child.pid))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=0.2).close(); break
        except OSError:
            time.sleep(0.05)
sys.exit(0)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def wait_until(predicate: Callable[[], bool], limit: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"bench: {what} not reached within {limit:g} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="qosd-bench-"))
    app_port, metrics_port = free_port(), free_port()
    pidfile = work / "app.pid"
    shim = work / "systemctl"
    shim.write_text(SHIM.format(python=sys.executable, pidfile=str(pidfile), port=app_port))
    shim.chmod(0o755)
    config = work / "config.json"
    config.write_text(json.dumps({
        "state_dir": str(work / "state"), "log_dir": str(work / "log"),
        "metrics": {"address": "127.0.0.1", "port": metrics_port},
        "commands": {"systemctl": str(shim), "use_sudo": False, "timeout": 30},
        "targets": {"app": {"action": "restart", "unit": "fake-app.service"}},
        "checks": [{"name": "app", "type": "http", "url": f"http://127.0.0.1:{app_port}/", "remedy": "app"}],
    }))
    url = f"http://127.0.0.1:{app_port}/"
    subprocess.run([str(shim), "restart", "fake-app.service"], check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    daemon = subprocess.Popen([sys.executable, "-m", "qosd", "--config", str(config), "run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{metrics_port}/metrics"), 15, "qosd metrics")
        worst = 0.0
        for run in range(RUNS):
            wait_until(lambda: healthy(url), 15, "a healthy app")
            time.sleep(16)  # past the grace period of the previous repair
            os.kill(int(pidfile.read_text()), signal.SIGSTOP)
            fault = time.monotonic()
            wait_until(lambda: not healthy(url), 5, "the hang")
            wait_until(lambda: healthy(url), 60, "the repair")
            seconds = time.monotonic() - fault
            worst = max(worst, seconds)
            emit("qosd_hung_app_recovery_seconds", seconds, "s", run=run + 1, target=15)
        emit("qosd_hung_app_recovery_seconds_worst", worst, "s", runs=RUNS, target=15, ok=worst <= 15)
        time.sleep(16)
        before, started = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(STEADY_SECONDS)
        cpu = (cpu_seconds(daemon.pid) - before) / (time.monotonic() - started) * 100
        emit("qosd_rss_mib", rss_mib(daemon.pid), "MiB", interval_s=2)
        emit("qosd_cpu_percent", cpu, "%", interval_s=2, window_s=STEADY_SECONDS)
    finally:
        daemon.terminate()
        daemon.wait(15)
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


if __name__ == "__main__":
    main()
