"""Automatic rollback benchmark (JSON lines): from a failed verification to the old release.

Issue 7 asks for the time from a failed verification to the old release serving. The lab
is converged first (site.yml); then a release whose reports page answers 500 goes out
through site.yml. Its deploy succeeds (health is fine), verification fails on the page, and
the automatic rollback switches every app host back. Meanwhile each app host's /health/ is
polled every 0.2 s. Figures: from the moment the failing verification wrote its report to
the first host, and to every host, answering with the old release again; and the whole
site.yml run. The lab ends on app/VERSION, where it started.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import requests
from benchlib import REPO, emit, timed_site

APP_HOSTS = {"app1": "10.92.3.121", "app2": "10.92.3.122"}
BROKEN_VIEW = '\n\ndef reports(request):\n    raise RuntimeError("this release breaks one page")\n'
POLL_LIMIT = 900  # seconds: the poller stops by itself


class Poller(threading.Thread):
    """Records (wall time, version) per host from /health/ until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.seen: dict[str, list[tuple[float, str]]] = {host: [] for host in APP_HOSTS}

    def run(self) -> None:
        http = requests.Session()
        http.trust_env = False
        started = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - started < POLL_LIMIT:
            for host, address in APP_HOSTS.items():
                try:
                    resp = http.get(f"http://{address}:8000/health/", timeout=2)
                    version = resp.json().get("version", "") if resp.status_code == 200 else ""
                except (requests.RequestException, ValueError):
                    version = ""
                self.seen[host].append((time.time(), version))
            self.stop.wait(0.2)

    def back_on(self, version: str, after: float) -> dict[str, float]:
        """When each host answered `version` again, for good, after `after`."""
        back = {}
        for host, samples in self.seen.items():
            since = None
            for when, answered in samples:
                if when < after:
                    continue
                if answered != version:
                    since = None
                elif since is None:
                    since = when
            if since is not None:
                back[host] = since
        return back


def main() -> None:
    from labtools import run_playbook  # noqa: PLC0415 - benchlib puts tests/ on the path

    timed_site()
    base = (REPO / "app" / "VERSION").read_text().strip()
    broken = f"{base}-bench-broken-page"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "app"
        shutil.copytree(REPO / "app", source, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "*.sqlite3", ".venv", "staticfiles", "media"))
        with (source / "events" / "views.py").open("a") as views:
            views.write(BROKEN_VIEW)
        poller = Poller()
        poller.start()
        started = time.monotonic()
        try:
            code, _, _ = run_playbook("site.yml", None, "-e", f"app_source_dir={source}",
                                      "-e", f"app_version={broken}")
        finally:
            poller.stop.set()
            poller.join(timeout=10)
        elapsed = time.monotonic() - started
    if code == 0:
        raise SystemExit(f"release {broken} passed verification: nothing was rolled back")
    verifications = (REPO / ".deploy" / "lab" / "verifications.jsonl").read_text().splitlines()
    failed = [json.loads(line) for line in verifications if json.loads(line)["version"] == broken]
    if not failed or failed[-1]["passed"]:
        raise SystemExit(f"no failed verification of {broken} in .deploy/lab/verifications.jsonl")
    report_dir = Path(failed[-1]["report_dir"])
    verdict_at = max(path.stat().st_mtime for path in report_dir.iterdir())
    back = poller.back_on(base, verdict_at)
    if set(back) != set(APP_HOSTS):
        raise SystemExit(f"not every app host answered {base} again after the rollback: {back}")
    emit("auto_rollback.site_run", elapsed, "s", release=broken,
         note="deploy of a release failing verification, verification, rollback, re-verification")
    emit("auto_rollback.failed_verification_to_first_host_on_old_release",
         min(back.values()) - verdict_at, "s", to=base)
    emit("auto_rollback.failed_verification_to_every_host_on_old_release",
         max(back.values()) - verdict_at, "s", to=base)


if __name__ == "__main__":
    main()
