"""Issue 7 on the lab: playbooks/verify.yml passes on the converged lab and writes every
report; a fault users would meet (a stylesheet the proxy refuses) fails it, naming the file.

Runs verify.yml alone against the lab inventory (site.yml converged it: tests/lab/
test_site_service.py runs first). Reports and the verified record go to a temporary folder.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from labtools import REPO, changed_by_host, failures, load_credentials, run_playbook, ssh

pytestmark = pytest.mark.slow
PROXY_ADDRESS = "10.92.3.110"
APP_ADDRESS = "10.92.3.121"
REPORT_FILES = {"report.json", "junit.xml", "links.csv", "forms.csv", "summary.txt"}


def _verify(tmp: Path, *extra: str) -> tuple[int, dict, str, Path]:
    code, result, stderr = run_playbook("playbooks/verify.yml", None,
                                        "-e", f"verify_report_root={tmp}/reports",
                                        "-e", f"verify_record_dir={tmp}", *extra)
    runs = sorted((tmp / "reports").iterdir()) if (tmp / "reports").is_dir() else []
    assert runs, failures(result, stderr)
    return code, result, stderr, runs[-1]


def _deployed_version() -> str:
    """The release app1's `current` link points to, read on the host."""
    link = ssh(load_credentials(), APP_ADDRESS, "readlink /srv/scheduler/current")
    assert link.returncode == 0, link.stderr
    return Path(link.stdout.strip()).name


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, site_converged):
    tmp = tmp_path_factory.mktemp("verify-good")
    code, result, stderr, run_dir = _verify(tmp)
    return code, result, stderr, run_dir, tmp


def test_converged_lab_passes_verification(good_run):
    code, result, stderr, run_dir, _ = good_run
    assert code == 0, (run_dir / "summary.txt").read_text() if (run_dir / "summary.txt").exists() else (
        failures(result, stderr))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["passed"] is True
    # Verifying changes nothing: a second site.yml run stays at changed=0 with this stage in it.
    assert set(changed_by_host(result).values()) == {0}, changed_by_host(result)
    assert {check["name"] for check in report["checks"]} == {
        "testinfra", "django", "endpoints", "crawl", "load", "prometheus"}
    load = next(check for check in report["checks"] if check["name"] == "load")
    assert load["measurements"]["users"] == 100
    assert load["measurements"]["p95_ms"] < 500
    assert load["measurements"]["requests"] > 100


def test_run_folder_is_named_by_release_and_time_and_holds_every_report(good_run):
    _, _, _, run_dir, _ = good_run
    assert re.fullmatch(rf"{re.escape(_deployed_version())}-\d{{8}}T\d{{6}}Z", run_dir.name)
    assert {path.name for path in run_dir.iterdir()} >= REPORT_FILES
    suites = {suite.get("name"): suite for suite in ET.parse(run_dir / "junit.xml").getroot()}  # noqa: S314
    assert int(suites["testinfra"].get("tests")) > 20
    assert all(suite.get("failures") == "0" for suite in suites.values())
    with (run_dir / "forms.csv").open() as handle:
        assert {row["kind"] for row in csv.DictReader(handle)} >= {"form-ok", "form-skipped"}
    assert (run_dir / "summary.txt").read_text().startswith("Verification PASSED")


def test_result_is_recorded_for_the_promotion_gate(good_run):
    _, _, _, run_dir, tmp = good_run
    record = json.loads((tmp / "verified.json").read_text())
    assert record["passed"] is True
    assert record["version"] == _deployed_version()
    assert record["report_dir"] == str(run_dir)


def test_no_secret_in_any_file_of_the_run_or_the_output(good_run):
    _, result, stderr, run_dir, _ = good_run
    password = (REPO / ".lab" / "secrets" / "app_admin_password").read_text().split()[0]
    for path in run_dir.iterdir():
        assert password not in path.read_text(errors="replace"), path.name
    assert password not in json.dumps(result)
    assert password not in stderr


@pytest.fixture
def stylesheet_refused(site_converged):
    """The proxy cannot read the app's stylesheets: every page loads without its CSS (403)."""
    creds = load_credentials()
    directory = "/srv/scheduler/static/scheduler"
    assert ssh(creds, PROXY_ADDRESS, f"chmod 0700 {directory}").returncode == 0
    try:
        yield
    finally:
        restored = ssh(creds, PROXY_ADDRESS, f"chmod 0755 {directory}")
        assert restored.returncode == 0, restored.stderr


def test_a_stylesheet_users_cannot_load_fails_verification_naming_it(tmp_path, stylesheet_refused):
    # Only what finds this fault, to keep the lab run short.
    code, result, stderr, run_dir = _verify(tmp_path, "-e", "verify_testinfra=false",
                                            "-e", "verify_load=false")
    assert code != 0
    message = failures(result, stderr)
    assert "Verification FAILED" in message
    stylesheet = r"https://10\.92\.3\.110/static/scheduler/site\.[0-9a-f]+\.css"
    assert re.search(rf"\[crawl\] {stylesheet}: broken link: HTTP 403", message), message
    with (run_dir / "links.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    refused = [(row["status"], row["kind"]) for row in rows if "/static/scheduler/" in row["target"]]
    assert refused == [("403", "broken-link")]
    assert json.loads((tmp_path / "verified.json").read_text())["passed"] is False
    report = json.loads((run_dir / "report.json").read_text())
    assert {check["name"] for check in report["checks"] if not check["passed"]} == {"crawl"}
