"""The SLA load test: locust, headless, from the controller against the proxy, bounded.

Users share one logged-in session made by the driver (one login, not one per user: a
password hash per simulated user would measure the login, not the site). The run is
bounded by `duration` (locust's --run-time) and a hard timeout on the subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from verify.results import CheckResult

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass
class LoadSettings:
    base_url: str
    users: int = 100
    spawn_rate: float = 50.0
    duration: int = 20
    wait_min: float = 1.0
    wait_max: float = 2.0
    paths: list[str] = field(default_factory=lambda: ["/"])
    p95_ms: float = 500.0
    max_error_percent: float = 0.1
    login_path: str = "/accounts/login/"
    verify: bool | str = True


@dataclass
class LoadStats:
    requests: int
    failures: int
    p95_ms: float
    average_ms: float
    rps: float
    failures_by_kind: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def error_percent(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 100.0


def read_stats(prefix: Path) -> LoadStats:
    """Aggregated figures from locust's CSV files (<prefix>_stats.csv, <prefix>_failures.csv)."""
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows.get("Aggregated")
    if total is None:
        raise ValueError(f"{prefix}_stats.csv has no Aggregated row")
    failures: list[tuple[str, str, int]] = []
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with failures_file.open(newline="") as handle:
            failures = [(row["Name"], row["Error"], int(row["Occurrences"]))
                        for row in csv.DictReader(handle)]
    p95 = total.get("95%", "N/A")
    return LoadStats(requests=int(total["Request Count"]), failures=int(total["Failure Count"]),
                     p95_ms=float(p95) if p95 not in ("N/A", "") else 0.0,
                     average_ms=float(total["Average Response Time"]),
                     rps=float(total["Requests/s"]), failures_by_kind=failures)


def judge(stats: LoadStats, settings: LoadSettings, result: CheckResult) -> CheckResult:
    """The SLA: requests were made, p95 below the limit, error rate below the limit."""
    target = f"{settings.users} users against {settings.base_url}"
    result.measurements.update({
        "requests": stats.requests, "failures": stats.failures, "p95_ms": stats.p95_ms,
        "average_ms": stats.average_ms, "requests_per_second": stats.rps,
        "error_percent": round(stats.error_percent, 4), "users": settings.users,
        "duration_seconds": settings.duration,
    })
    if not result.case("requests made", stats.requests > 0, f"{stats.requests} requests"):
        result.finding(target, "the load test made no request", kind="load")
        return result
    p95_ok = stats.p95_ms < settings.p95_ms
    if not result.case(f"p95 < {settings.p95_ms:g} ms", p95_ok, f"p95 {stats.p95_ms:g} ms"):
        result.finding(target, f"p95 response time {stats.p95_ms:g} ms, SLA < {settings.p95_ms:g} ms",
                       kind="load")
    errors_ok = stats.error_percent < settings.max_error_percent
    detail = f"{stats.failures}/{stats.requests} failed ({stats.error_percent:.3f} %)"
    if not result.case(f"error rate < {settings.max_error_percent:g} %", errors_ok, detail):
        worst = "; ".join(f"{name}: {error} x{count}" for name, error, count in
                          sorted(stats.failures_by_kind, key=lambda item: -item[2])[:5])
        result.finding(target, f"error rate {stats.error_percent:.3f} %, "
                       f"SLA < {settings.max_error_percent:g} % ({worst})", kind="load")
    return result


def locust_command(settings: LoadSettings, prefix: Path) -> list[str]:
    locust = Path(sys.executable).with_name("locust")
    return [str(locust), "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "--users", str(settings.users), "--spawn-rate", str(settings.spawn_rate),
            "--run-time", f"{settings.duration}s", "--stop-timeout", "5",
            "--host", settings.base_url, "--csv", str(prefix), "--html", f"{prefix}.html",
            "--loglevel", "WARNING"]


def locust_environment(settings: LoadSettings, cookies: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VERIFY_")}
    env.update({
        "VERIFY_LOAD_PATHS": json.dumps(settings.paths),
        "VERIFY_LOAD_WAIT_MIN": str(settings.wait_min), "VERIFY_LOAD_WAIT_MAX": str(settings.wait_max),
        "VERIFY_LOAD_CA": (str(settings.verify).lower() if isinstance(settings.verify, bool)
                           else settings.verify),
        "VERIFY_LOAD_COOKIES": json.dumps(cookies), "VERIFY_LOAD_LOGIN_PATH": settings.login_path,
    })
    return env


def run_load(settings: LoadSettings, run_dir: Path, cookies: dict[str, str]) -> CheckResult:
    result = CheckResult(name="load", title=f"Load test: {settings.users} users, {settings.duration} s")
    prefix = run_dir / "load"
    proc = subprocess.run(locust_command(settings, prefix), env=locust_environment(settings, cookies),
                          capture_output=True, text=True, timeout=settings.duration + 120, check=False)
    (run_dir / "load.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    try:
        stats = read_stats(prefix)
    except (OSError, ValueError, KeyError) as exc:
        result.case("locust ran", False, f"exit {proc.returncode}: {exc}")
        result.finding(settings.base_url, f"locust produced no statistics (exit {proc.returncode}): "
                       f"{proc.stderr.strip()[-300:]}", kind="load")
        return result.finish()
    return judge(stats, settings, result).finish()
