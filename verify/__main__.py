"""`python -m verify <check|report> --run-dir DIR`: one step of a verification run.

DIR/config.json holds the run's settings (written by playbooks/verify.yml, no secrets). The
admin password comes from the environment variable VERIFY_ADMIN_PASSWORD only. Each check
writes DIR/<check>.result.json and exits 0 when it passed, 1 when it did not, 2 when it could
not run at all (bad configuration). `report` writes the reports and the controller's record
and exits 1 when the run failed, printing the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from verify.crawl import CrawlSettings, LinkChecker
from verify.django_checks import judge_django
from verify.endpoints import EndpointSettings, check_endpoints
from verify.load import LoadSettings, run_load
from verify.prometheus import GateSettings, default_criteria, run_gate
from verify.report import RunInfo, read_testinfra_junit, scrub, write_reports
from verify.results import CheckResult, load_results

PASSWORD_VARIABLE = "VERIFY_ADMIN_PASSWORD"  # noqa: S105 - a variable name
_secrets: dict[str, str] = {}


def _config(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "config.json").read_text())


def _truthy(value: object) -> bool:
    """Booleans as Ansible may render them into config.json ("True", "false", 1)."""
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _tls(config: dict[str, Any]) -> bool | str:
    return config.get("ca_file") or config.get("verify_tls", True)


def _password() -> str:
    password = _secrets.get("password") or os.environ.get(PASSWORD_VARIABLE, "")
    if not password:
        raise SystemExit(f"no admin password: give it on standard input (--password-stdin) or in "
                         f"{PASSWORD_VARIABLE}, never on the command line")
    return password


def _crawl_settings(config: dict[str, Any]) -> CrawlSettings:
    crawl = config["crawl"]
    return CrawlSettings(base_url=config["base_url"], username=crawl["username"], password=_password(),
                         login_path=config["login_path"], start_path=crawl.get("start_path", "/"),
                         max_pages=int(crawl["max_pages"]), max_depth=int(crawl["max_depth"]),
                         exclude=list(crawl["exclude"]), timeout=float(config.get("timeout", 10)),
                         verify=_tls(config))


def endpoints(config: dict[str, Any], run_dir: Path) -> CheckResult:
    settings = EndpointSettings(base_url=config["base_url"], http_url=config["http_url"],
                                health_path=config["health_path"], login_path=config["login_path"],
                                expected_version=config.get("version", ""),
                                restricted_paths=list(config.get("restricted_paths", [])),
                                timeout=float(config.get("timeout", 10)), verify=_tls(config))
    return check_endpoints(settings)


def crawl(config: dict[str, Any], run_dir: Path) -> CheckResult:
    return LinkChecker(_crawl_settings(config)).run()


def load(config: dict[str, Any], run_dir: Path) -> CheckResult:
    spec = config["load"]
    settings = LoadSettings(base_url=config["base_url"], users=int(spec["users"]),
                            spawn_rate=float(spec["spawn_rate"]), duration=int(spec["duration"]),
                            wait_min=float(spec["wait_min"]), wait_max=float(spec["wait_max"]),
                            paths=list(spec["paths"]), p95_ms=float(spec["p95_ms"]),
                            max_error_percent=float(spec["max_error_percent"]),
                            login_path=config["login_path"], verify=_tls(config))
    # One login for every simulated user (see verify/load.py); the cookies go to locust
    # through its environment.
    checker = LinkChecker(_crawl_settings(config))
    if not checker.login():
        result = CheckResult(name="load", title="Load test")
        result.cases = checker.result.cases
        result.finding(config["base_url"], "the load test could not log in", kind="load")
        return result.finish()
    result = run_load(settings, run_dir, checker.session.cookies.get_dict())
    log = run_dir / "load.log"
    if log.exists():
        log.write_text(scrub(log.read_text(), [_password(), *checker.session.cookies.get_dict().values()]))
    return result


def django(config: dict[str, Any], run_dir: Path) -> CheckResult:
    return judge_django(json.loads((run_dir / "django.hosts.json").read_text()))


def gate(config: dict[str, Any], run_dir: Path) -> CheckResult:
    spec = config["prometheus"]
    load_finished = 0.0
    load_file = run_dir / "load.result.json"
    if load_file.exists():
        data = json.loads(load_file.read_text())
        load_finished = float(data["started_at"]) + float(data["seconds"])
    criteria = default_criteria(app_selector=spec["app_selector"], node_selector=spec["node_selector"],
                                thresholds={name: float(value) for name, value in spec["thresholds"].items()})
    ungated: dict[str, str] = spec.get("not_gated", {})
    for criterion in criteria:
        if criterion.name in ungated:
            criterion.gated, criterion.reason = False, ungated[criterion.name]
    settings = GateSettings(url=spec["url"], started_at=float(config["started_at"]),
                            load_finished_at=load_finished, criteria=criteria,
                            app_job=spec.get("app_job", "app"),
                            min_window_seconds=int(spec.get("min_window_seconds", 30)),
                            settle_timeout=float(spec.get("settle_timeout", 60)))
    return run_gate(settings, enabled=_truthy(spec["enabled"]))


def report(config: dict[str, Any], run_dir: Path, record_dir: Path | None) -> int:
    results = []
    if _truthy(config.get("testinfra", True)):
        results.append(read_testinfra_junit(run_dir / "testinfra.junit.xml"))
    results += [result for result in load_results(run_dir) if result.name != "testinfra"]
    order = ["testinfra", "django", "endpoints", "crawl", "load", "prometheus"]
    results.sort(key=lambda result: order.index(result.name) if result.name in order else len(order))
    info = RunInfo(inventory=config["inventory"], version=config["version"],
                   started_at=float(config["started_at"]), finished_at=time.time())
    secrets = [_secrets.get("password") or os.environ.get(PASSWORD_VARIABLE, "")]
    document = write_reports(results, info, run_dir, secrets)
    if record_dir is not None:
        _record(record_dir, document, run_dir)
    print((run_dir / "summary.txt").read_text(), end="")
    return 0 if document["passed"] else 1


def _record(record_dir: Path, document: dict[str, Any], run_dir: Path) -> None:
    """The controller's record the promotion gate reads: the latest run, and every run."""
    record = {"inventory": document["inventory"], "version": document["version"],
              "time": document["finished_at"], "passed": document["passed"], "report_dir": str(run_dir)}
    record_dir.mkdir(parents=True, exist_ok=True)
    latest = record_dir / "verified.json"
    partial = latest.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(latest)
    with (record_dir / "verifications.jsonl").open("a") as history:
        history.write(json.dumps(record) + "\n")


CHECKS = {"endpoints": endpoints, "crawl": crawl, "load": load, "django": django, "gate": gate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=[*CHECKS, "report"])
    parser.add_argument("--run-dir", type=Path, required=True, help="the run's folder (config.json in it)")
    parser.add_argument("--record-dir", type=Path, help="report: where verified.json is kept")
    parser.add_argument("--password-stdin", action="store_true",
                        help=f"read the admin password from standard input (else {PASSWORD_VARIABLE})")
    args = parser.parse_args(argv)
    if args.password_stdin:
        _secrets["password"] = sys.stdin.readline().rstrip("\n")
    config = _config(args.run_dir)
    if args.step == "report":
        return report(config, args.run_dir, args.record_dir)
    result = CHECKS[args.step](config, args.run_dir)
    result.write(args.run_dir)
    verdict = "passed" if result.passed else "FAILED"
    print(f"{result.name}: {verdict} ({len(result.cases)} checks, "
          f"{sum(1 for f in result.findings if f.severity == 'error')} findings, {result.seconds:.1f} s)")
    for finding in result.findings:
        if finding.severity == "error":
            print(f"  {finding.target}: {finding.message}"[:400])
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
