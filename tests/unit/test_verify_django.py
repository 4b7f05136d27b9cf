"""Judging the Django checks the verify stage runs on each app host."""

from __future__ import annotations

import json

from verify.django_checks import PROBE_MARKER, judge_django


def _probe(**problems: list[str]) -> dict:
    report = {"database": [], "migrations": [], "static": [], "templates": [], "permissions": []} | problems
    return {"rc": 0, "stdout": f"some log line\n{PROBE_MARKER}{json.dumps(report)}\n", "stderr": ""}


def _ok(name: str) -> dict:
    return {"rc": 0, "stdout": f"{name}: no issues", "stderr": ""}


def test_healthy_hosts_pass():
    result = judge_django({host: {"check": _ok("check"), "makemigrations": _ok("mm"), "probe": _probe()}
                           for host in ("app1", "app2")})
    assert result.passed
    assert len(result.cases) == 2 * 7


def test_each_problem_is_a_finding_naming_the_host():
    result = judge_django({
        "app1": {"check": _ok("check"), "makemigrations": _ok("mm"),
                 "probe": _probe(migrations=["events.0003_add_room"], static=["site.css -> site.1.css"])},
        "app2": {"check": {"rc": 1, "stdout": "", "stderr": "SystemCheckError: ?: (urls.W005) URL namespace"},
                 "makemigrations": {"rc": 1, "stdout": "Migrations for 'events'", "stderr": ""},
                 "probe": _probe(database=["default: OperationalError"])},
    })
    assert not result.passed
    messages = sorted((f.target, f.message.split(":")[0]) for f in result.findings)
    assert messages == [
        ("app1", "missing static files"), ("app1", "unapplied migrations"),
        ("app2", "database connectivity"), ("app2", "model changes without a migration failed (exit 1)"),
        ("app2", "system checks (settings, URLs, templates, database) failed (exit 1)"),
    ]
    assert "urls.W005" in next(f.message for f in result.findings if "system checks" in f.message)


def test_a_probe_without_an_answer_fails():
    result = judge_django({"app1": {"check": _ok("c"), "makemigrations": _ok("m"),
                                    "probe": {"rc": 1, "stdout": "", "stderr": "ImportError: boom"}}})
    assert not result.passed
    assert "ImportError: boom" in result.findings[0].message


def test_no_app_host_fails():
    assert not judge_django({}).passed
