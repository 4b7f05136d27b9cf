"""qosd on the lab: time from fault to healthy for a hung app, and the daemon's RSS and CPU.

The fault is the one tests/lab/test_qos_faults.py checks for correctness: the gunicorn
master and workers of app2 (10.92.3.122) SIGSTOPped. The daemon runs with the role's
defaults (2 s interval, 2 s timeout, threshold 3), so the repair is detection, then
`systemctl restart` of the app (gunicorn's graceful stop of stopped workers, bounded by the
unit's stop timeout), then gunicorn's start. Target (issue 6): healthy again within 15 s.

Needs the lab converged with the qos stage (site.yml, or playbooks/qos.yml alone).
Prints JSON lines: qosd_lab_hung_app_detect_seconds (fault -> the daemon starts the
restart), qosd_lab_hung_app_restart_seconds (the restart command), qosd_lab_hung_app_
recovery_seconds (fault -> /health/ answers 200 again; each run and the worst), and
qosd_lab_rss_mib / qosd_lab_cpu_percent of the daemon on app2 and proxy1 over a steady window.
"""

from __future__ import annotations

import re
import time

import requests
from benchlib import emit
from labtools import load_credentials, ssh

RUNS = 3
STEADY_SECONDS = 30.0
APP = "10.92.3.122"
HOSTS = {"app2": APP, "proxy1": "10.92.3.110"}
HEALTH = f"http://{APP}:8000/health/"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \w+ (intervening|intervention)\b")


def remote(address: str, command: str, timeout: float = 120) -> str:
    done = ssh(load_credentials(), address, command, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{address}: {command}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def healthy() -> bool:
    http = requests.Session()
    http.trust_env = False
    try:
        return http.get(HEALTH, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_healthy(timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if healthy():
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"{HEALTH} not healthy within {timeout:.0f} s")


def log_times(since: float) -> dict[str, float]:
    """Unix times of the daemon's last 'intervening' and 'intervention' lines after `since`,
    converted by the container itself (its log is in its local time)."""
    found: dict[str, float] = {}
    for line in remote(APP, "tail -n 200 /var/log/qosd/qosd.log").splitlines():
        match = LOG_TIME.match(line)
        if match:
            stamp = float(remote(APP, f"date -d '{match.group(1)}.{match.group(2)}' +%s.%N"))
            if stamp >= since:
                found[match.group(3)] = stamp
    return found


def hung_app_run() -> tuple[float, float, float]:
    remote(APP, "qosd resume >/dev/null; qosd reset >/dev/null")
    wait_healthy(60)
    time.sleep(3)  # the reset is applied at the daemon's next cycle
    started = time.monotonic()
    fault_at = float(remote(APP, "m=$(systemctl show -p MainPID --value scheduler);"
                                 " date +%s.%N; kill -STOP $m $(pgrep -P $m)").split()[0])
    while healthy():  # the request in flight when the signal landed may still have been answered
        time.sleep(0.1)
    wait_healthy(120)
    recovery = time.monotonic() - started
    times = log_times(fault_at)
    if set(times) != {"intervening", "intervention"}:
        raise SystemExit(f"healthy again without a logged qosd restart ({times}): not the daemon's repair")
    return times["intervening"] - fault_at, times["intervention"] - times["intervening"], recovery


def resources(address: str) -> tuple[float, float]:
    """RSS (MiB) and CPU (% of one core) of the daemon over STEADY_SECONDS."""
    pid = remote(address, "systemctl show -p MainPID --value qosd").strip()
    probe = f"getconf CLK_TCK; cut -d' ' -f14,15 /proc/{pid}/stat; grep VmRSS /proc/{pid}/status"
    tick, first, _ = remote(address, probe).splitlines()
    time.sleep(STEADY_SECONDS)
    _, second, rss = remote(address, probe).splitlines()
    used = sum(map(int, second.split())) - sum(map(int, first.split()))
    return int(rss.split()[1]) / 1024, 100 * used / int(tick) / STEADY_SECONDS


def main() -> None:
    recoveries = []
    for run in range(1, RUNS + 1):
        detect, restart, recovery = hung_app_run()
        recoveries.append(recovery)
        emit("qosd_lab_hung_app_detect_seconds", detect, "s", run=run, host="app2")
        emit("qosd_lab_hung_app_restart_seconds", restart, "s", run=run, host="app2")
        emit("qosd_lab_hung_app_recovery_seconds", recovery, "s", run=run, host="app2", target=15)
        time.sleep(20)  # past the grace period: the next run starts from a quiet daemon
    emit("qosd_lab_hung_app_recovery_seconds_max", max(recoveries), "s", runs=RUNS, target=15)
    remote(APP, "qosd reset >/dev/null")
    for name, address in HOSTS.items():
        rss, cpu = resources(address)
        emit("qosd_lab_rss_mib", rss, "MiB", host=name)
        emit("qosd_lab_cpu_percent", cpu, "%", host=name, window_seconds=STEADY_SECONDS)


if __name__ == "__main__":
    main()
