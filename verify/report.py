"""Reports of one verification run: report.json, junit.xml, links.csv, forms.csv, summary.txt.

Secrets never reach a report: the checks never put one in a result, and `scrub` replaces
any value of the given secrets that would still appear (belt and braces) before writing.
"""

from __future__ import annotations

import csv
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verify.results import ERROR, Case, CheckResult, Finding

LINK_KINDS = {"broken-link", "server-error", "logged-out", "limit"}
FORM_KINDS = {"form-error", "form-skipped", "form-ok"}
CSV_COLUMNS = ["severity", "kind", "target", "status", "source", "message"]


@dataclass
class RunInfo:
    inventory: str
    version: str
    started_at: float
    finished_at: float

    @property
    def stamp(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))


def read_testinfra_junit(junit_file: Path) -> CheckResult:
    """pytest's JUnit XML of the testinfra suites as one check, a case per test."""
    result = CheckResult(name="testinfra", title="testinfra suites over the inventory")
    if not junit_file.is_file():
        result.case("testinfra ran", False, f"{junit_file.name} is missing")
        result.finding("testinfra", "the testinfra suites did not run (no JUnit file)", kind="testinfra")
        return result
    tests = 0
    # pytest's own output on this machine, not untrusted input.
    for testcase in ET.parse(junit_file).getroot().iter("testcase"):  # noqa: S314
        tests += 1
        name = f"{testcase.get('classname', '')}::{testcase.get('name', '')}".strip(":")
        problem = testcase.find("failure")
        if problem is None:
            problem = testcase.find("error")
        skipped = testcase.find("skipped")
        seconds = float(testcase.get("time", "0") or 0)
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            result.cases.append(Case(name=name, passed=False, detail="\n".join(message[:6]), seconds=seconds))
            result.finding(name, (message[0] if message else "failed")[:500], kind="testinfra")
        else:
            result.cases.append(Case(name=name, passed=True, skipped=skipped is not None,
                                     detail=(skipped.get("message", "") if skipped is not None else ""),
                                     seconds=seconds))
    if tests == 0:
        result.case("tests collected", False, "no test ran")
        result.finding("testinfra", "the testinfra suites ran no test", kind="testinfra")
    result.measurements["tests"] = tests
    return result


def passed(results: Iterable[CheckResult]) -> bool:
    return all(result.passed for result in results)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "********")
    return text


def _findings(results: Iterable[CheckResult], kinds: set[str]) -> list[Finding]:
    return [finding for result in results for finding in result.findings if finding.kind in kinds]


def write_csv(path: Path, findings: list[Finding]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for finding in findings:
            writer.writerow({"severity": finding.severity, "kind": finding.kind, "target": finding.target,
                             "status": "" if finding.status is None else finding.status,
                             "source": finding.source, "message": finding.message})


def junit_xml(results: list[CheckResult], info: RunInfo) -> ET.Element:
    suites = ET.Element("testsuites", name=f"verify {info.inventory} {info.version}")
    for result in results:
        cases = result.cases or [Case(name=result.title, passed=result.passed, skipped=bool(result.skipped),
                                      detail=result.skipped)]
        failures = sum(1 for case in cases if not case.passed and not case.skipped)
        skipped = sum(1 for case in cases if case.skipped)
        suite = ET.SubElement(suites, "testsuite", name=result.name, tests=str(len(cases)),
                              failures=str(failures), errors="0", skipped=str(skipped),
                              time=f"{result.seconds:.3f}", timestamp=info.stamp)
        for case in cases:
            element = ET.SubElement(suite, "testcase", classname=f"verify.{result.name}", name=case.name,
                                    time=f"{case.seconds:.3f}")
            if case.skipped:
                ET.SubElement(element, "skipped", message=case.detail[:500])
            elif not case.passed:
                failure = ET.SubElement(element, "failure", message=case.detail.splitlines()[0][:500]
                                        if case.detail else "failed")
                failure.text = case.detail
    suites.set("tests", str(sum(int(suite.get("tests", "0")) for suite in suites)))
    suites.set("failures", str(sum(int(suite.get("failures", "0")) for suite in suites)))
    return suites


def summary_text(results: list[CheckResult], info: RunInfo, report_dir: Path, limit: int = 15) -> str:
    verdict = "PASSED" if passed(results) else "FAILED"
    lines = [f"Verification {verdict}: release {info.version} on {info.inventory} "
             f"({info.stamp}, {info.finished_at - info.started_at:.0f} s)"]
    for result in results:
        state = "skipped" if result.skipped else "ok" if result.passed else "FAILED"
        failed_cases = sum(1 for case in result.cases if not case.passed and not case.skipped)
        figures = _figures(result)
        lines.append(f"  {result.name:<11} {state:<7} {len(result.cases) - failed_cases}/{len(result.cases)} "
                     f"checks ok{figures} - {result.skipped or result.title}")
    errors = [finding for result in results for finding in result.findings if finding.severity == ERROR]
    if errors:
        lines.append(f"Findings ({len(errors)}):")
        lines.extend("  " + " ".join(f"[{finding.check}] {finding.target}: {finding.message}".split())[:400]
                     for finding in errors[:limit])
        if len(errors) > limit:
            lines.append(f"  ... and {len(errors) - limit} more in report.json")
    lines.append(f"Reports: {report_dir}")
    return "\n".join(lines)


def _figures(result: CheckResult) -> str:
    m = result.measurements
    if result.name == "load" and "requests" in m:
        return (f" ({m['requests']} requests, p95 {m.get('p95_ms', 0):g} ms, "
                f"errors {m.get('error_percent', 0):g} %)")
    if result.name == "crawl" and "pages" in m:
        return f" ({m['pages']} pages, {m.get('forms', 0)} forms, {m.get('resources', 0)} resources)"
    if result.name == "prometheus" and "window_seconds" in m:
        return f" (window {m['window_seconds']} s)"
    return ""


def write_reports(results: list[CheckResult], info: RunInfo, report_dir: Path,
                  secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Writes every report file; returns the JSON report."""
    secrets = list(secrets)
    report = {
        "inventory": info.inventory, "version": info.version, "started_at": info.stamp,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.finished_at)),
        "seconds": round(info.finished_at - info.started_at, 1), "passed": passed(results),
        "checks": [result.to_dict() for result in results],
    }
    files = {
        "report.json": json.dumps(report, indent=2, sort_keys=True) + "\n",
        "junit.xml": ET.tostring(junit_xml(results, info), encoding="unicode", xml_declaration=True) + "\n",
        "summary.txt": summary_text(results, info, report_dir) + "\n",
    }
    for name, text in files.items():
        (report_dir / name).write_text(scrub(text, secrets))
    for name, kinds in (("links.csv", LINK_KINDS), ("forms.csv", FORM_KINDS)):
        path = report_dir / name
        write_csv(path, _findings(results, kinds))
        path.write_text(scrub(path.read_text(), secrets))
    return report

