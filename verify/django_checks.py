"""Judges the Django checks playbooks/verify.yml ran on each app host.

Input (written by the playbook): {host: {command: {rc, stdout, stderr}}} with the commands
`check` (manage.py check --deploy --database default --fail-level WARNING: settings, URL
conflicts, template configuration, database), `makemigrations` (makemigrations --check
--dry-run: model changes without a migration) and `probe` (remote/django_probe.py through
manage.py shell: database, unapplied migrations, static manifest, templates, permissions).
"""

from __future__ import annotations

import json
from typing import Any

from verify.results import CheckResult

PROBE_MARKER = "VERIFY-DJANGO-PROBE "
PROBE_TITLES = {
    "database": "database connectivity",
    "migrations": "unapplied migrations",
    "static": "missing static files",
    "templates": "template errors",
    "permissions": "media and static permissions",
}


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _command_case(result: CheckResult, host: str, name: str, title: str, run: dict[str, Any] | None) -> None:
    if run is None:
        result.case(f"{host}: {title}", False, "not run")
        result.finding(host, f"{title}: not run", kind="django")
        return
    ok = run.get("rc") == 0
    output = _tail(f"{run.get('stdout', '')}\n{run.get('stderr', '')}")
    if not ok:
        result.finding(host, f"{title} failed (exit {run.get('rc')}): {output}", kind="django")
    result.case(f"{host}: {title}", ok, output if not ok else f"manage.py {name}: ok")


def _probe_cases(result: CheckResult, host: str, run: dict[str, Any] | None) -> None:
    lines = [line for line in (run or {}).get("stdout", "").splitlines() if line.startswith(PROBE_MARKER)]
    if not lines:
        detail = _tail(f"{(run or {}).get('stdout', '')}\n{(run or {}).get('stderr', '')}") or "not run"
        result.case(f"{host}: Django probe", False, detail)
        result.finding(host, f"the Django probe gave no answer (exit {(run or {}).get('rc')}): {detail}",
                       kind="django")
        return
    report = json.loads(lines[-1][len(PROBE_MARKER):])
    for key, title in PROBE_TITLES.items():
        problems = report.get(key)
        if problems is None:
            result.case(f"{host}: {title}", False, "not reported by the probe")
            continue
        for problem in problems:
            result.finding(host, f"{title}: {problem}", kind="django")
        result.case(f"{host}: {title}", not problems, "; ".join(problems[:5]) or "ok")


def judge_django(hosts: dict[str, dict[str, Any]]) -> CheckResult:
    result = CheckResult(name="django", title="Django checks on every app host")
    if not hosts:
        result.case("app hosts", False, "no app host was checked")
        result.finding("app", "no Django check ran: the inventory's app group is empty?", kind="django")
    for host, runs in sorted(hosts.items()):
        _command_case(result, host, "check --deploy", "system checks (settings, URLs, templates, database)",
                      runs.get("check"))
        _command_case(result, host, "makemigrations --check", "model changes without a migration",
                      runs.get("makemigrations"))
        _probe_cases(result, host, runs.get("probe"))
    return result.finish()
