"""Report writers: every file of a run, what a failing run says, and no secret in any of them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from verify.__main__ import main
from verify.report import RunInfo, read_testinfra_junit, write_reports
from verify.results import Case, CheckResult

SECRET = "hunter2-very-secret"


def _results() -> list[CheckResult]:
    crawl = CheckResult(name="crawl", title="crawl", measurements={"pages": 3, "forms": 1, "resources": 1})
    crawl.case("links", False, "1 broken")
    crawl.finding("https://p/broken/", "broken link: HTTP 404", status=404, source="https://p/",
                  kind="broken-link")
    crawl.finding("POST https://p/lax/", "an empty submission was accepted", status=302, kind="form-error")
    crawl.finding("POST https://p/logout/", "not submitted", severity="info", kind="form-skipped")
    load = CheckResult(name="load", title="load",
                       measurements={"requests": 900, "p95_ms": 120.0, "error_percent": 0.0})
    load.case("p95 < 500 ms", True, "p95 120 ms")
    gate = CheckResult(name="prometheus", title="gate", skipped="verify_prometheus_gate is false",
                       gated=False)
    return [crawl, load, gate]


def _write(tmp_path: Path, results: list[CheckResult]) -> dict:
    info = RunInfo(inventory="lab", version="1.2.3", started_at=1_700_000_000.0, finished_at=1_700_000_042.0)
    return write_reports(results, info, tmp_path, secrets=[SECRET])


def test_every_report_file_is_written(tmp_path):
    report = _write(tmp_path, _results())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "forms.csv", "junit.xml", "links.csv", "report.json", "summary.txt"]
    assert report["passed"] is False
    assert json.loads((tmp_path / "report.json").read_text())["version"] == "1.2.3"


def test_csv_files_hold_the_link_and_form_findings(tmp_path):
    _write(tmp_path, _results())
    links = list(csv.DictReader((tmp_path / "links.csv").open()))
    assert [(row["target"], row["status"], row["source"]) for row in links] == [
        ("https://p/broken/", "404", "https://p/")]
    forms = {row["target"]: row["severity"] for row in csv.DictReader((tmp_path / "forms.csv").open())}
    assert forms == {"POST https://p/lax/": "error", "POST https://p/logout/": "info"}


def test_junit_counts_failures_and_skips(tmp_path):
    _write(tmp_path, _results())
    root = ET.parse(tmp_path / "junit.xml").getroot()  # noqa: S314 - our own file
    suites = {suite.get("name"): suite for suite in root}
    assert suites["crawl"].get("failures") == "1"
    assert suites["load"].get("failures") == "0"
    assert suites["prometheus"].get("skipped") == "1"
    assert root.get("failures") == "1"


def test_summary_names_the_verdict_the_figures_and_the_findings(tmp_path):
    _write(tmp_path, _results())
    summary = (tmp_path / "summary.txt").read_text()
    assert summary.startswith("Verification FAILED: release 1.2.3 on lab")
    assert "https://p/broken/: broken link: HTTP 404" in summary
    assert "900 requests, p95 120 ms" in summary
    assert "prometheus  skipped" in summary
    assert "logout" not in summary  # info findings stay in the files


def test_secrets_never_reach_a_report(tmp_path):
    results = _results()
    results[0].finding("https://p/x/", f"echoed back: {SECRET}", kind="broken-link")
    _write(tmp_path, results)
    for path in tmp_path.iterdir():
        assert SECRET not in path.read_text(), path.name


def test_a_passing_run(tmp_path):
    ok = CheckResult(name="endpoints", title="endpoints", cases=[Case("health", True)])
    report = _write(tmp_path, [ok])
    assert report["passed"] is True
    assert (tmp_path / "summary.txt").read_text().startswith("Verification PASSED")


def test_testinfra_junit_becomes_one_case_per_test(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_demo.py").write_text(
        "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 1 == 2, 'nginx is not running'\n")
    junit = tmp_path / "testinfra.junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    str(suite)], capture_output=True, check=False, cwd=tmp_path)
    result = read_testinfra_junit(junit)
    assert not result.passed
    assert {case.name.rsplit("::", 1)[1]: case.passed for case in result.cases} == {"test_ok": True,
                                                                                    "test_bad": False}
    assert "nginx is not running" in result.findings[0].message
    assert not read_testinfra_junit(tmp_path / "missing.xml").passed


def test_report_command_records_the_run_and_exits_1_on_failure(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"inventory": "lab", "version": "1.2.3",
                                                     "started_at": 1_700_000_000.0}))
    for result in _results():
        result.write(run_dir)
    (run_dir / "testinfra.junit.xml").write_text('<testsuites><testsuite><testcase classname="t" name="ok"/>'
                                                 "</testsuite></testsuites>")
    monkeypatch.setenv("VERIFY_ADMIN_PASSWORD", SECRET)
    assert main(["report", "--run-dir", str(run_dir), "--record-dir", str(tmp_path)]) == 1
    assert "Verification FAILED" in capsys.readouterr().out
    record = json.loads((tmp_path / "verified.json").read_text())
    assert (record["version"], record["passed"], record["report_dir"]) == ("1.2.3", False, str(run_dir))
    assert len((tmp_path / "verifications.jsonl").read_text().splitlines()) == 1


def test_report_leaves_out_testinfra_when_the_run_did_not_ask_for_it(tmp_path, capsys):
    config = {"inventory": "lab", "version": "1.2.3", "testinfra": False, "started_at": 1_700_000_000.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    CheckResult(name="endpoints", title="endpoints", cases=[Case("health", True)]).write(tmp_path)
    assert main(["report", "--run-dir", str(tmp_path)]) == 0
    assert "testinfra" not in capsys.readouterr().out
