"""The alert rules the monitoring role renders with its defaults: every alert (name and
severity) has a promtool case where it fires and one where it stays silent, in tests/rules;
the thresholds are the ones the service promises; the metrics they read are the ones the
app and the backup script export.

The rules are rendered by tests/rules/render.yml (the role's own template and defaults),
never copied. promtool itself runs in `make test-rules`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULE_TESTS = sorted((REPO / "tests" / "rules").glob("*.test.yml"))
RENDERED_RULES = "../../.cache/monitoring/rendered/scheduler.rules.yml"
Alert = tuple[str, str]  # alertname, severity


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("rendered")
    playbook = Path(sys.executable).parent / "ansible-playbook"
    command = [str(playbook), "-i", "localhost,", "tests/rules/render.yml", "-e", f"rendered_dir={out}"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return yaml.safe_load((out / "scheduler.rules.yml").read_text())


def _rules(rendered: dict) -> list[dict]:
    return [rule for group in rendered["groups"] for rule in group["rules"] if "alert" in rule]


def _alerts(rendered: dict) -> set[Alert]:
    return {(rule["alert"], rule["labels"]["severity"]) for rule in _rules(rendered)}


def _cases() -> list[tuple[str, dict, dict]]:
    """(test name, test group, alert_rule_test) of every promtool case in tests/rules."""
    cases = []
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.append((f"{path.name}: {group.get('name', '?')}", group, case))
    return cases


def _fires_and_silent(cases: list[tuple[str, dict, dict]]) -> tuple[set[Alert], set[Alert], set[str]]:
    """Alerts some case expects to fire; alerts some case (with input) expects to stay silent."""
    fires: set[Alert] = set()
    silent: set[Alert] = set()
    names: set[str] = set()
    for _, group, case in cases:
        name = case["alertname"]
        names.add(name)
        expected = {alert["exp_labels"]["severity"] for alert in case.get("exp_alerts") or []}
        fires |= {(name, severity) for severity in expected}
        if group.get("input_series"):
            silent |= {(name, severity) for severity in ("warning", "critical") if severity not in expected}
    return fires, silent, names


def test_the_rule_tests_exist_and_read_the_rendered_rules():
    assert RULE_TESTS, "no promtool tests in tests/rules"
    for path in RULE_TESTS:
        assert yaml.safe_load(path.read_text())["rule_files"] == [RENDERED_RULES], path.name


def test_every_alert_has_a_firing_and_a_silent_case(rendered):
    fires, silent, _ = _fires_and_silent(_cases())
    alerts = _alerts(rendered)
    assert alerts, "the rendered rules hold no alert"
    assert sorted(alerts - fires) == [], "alerts no promtool case expects to fire"
    assert sorted(alerts - silent) == [], "alerts no promtool case expects to stay silent"


def test_the_rule_tests_only_name_existing_alerts(rendered):
    _, _, names = _fires_and_silent(_cases())
    assert sorted(names - {name for name, _ in _alerts(rendered)}) == []


def test_every_alert_has_a_severity_and_a_summary(rendered):
    for rule in _rules(rendered):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert "for" in rule, f"{rule['alert']} has no for: duration"


def _threshold(rendered: dict, alert: str, severity: str) -> float:
    (rule,) = [r for r in _rules(rendered) if (r["alert"], r["labels"]["severity"]) == (alert, severity)]
    return float(re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip()).group(1))


@pytest.mark.parametrize(("alert", "warning", "critical"), [
    ("SchedulerHighLatency", 0.5, 1.0),   # seconds
    ("SchedulerHighErrorRate", 1, 5),     # percent of responses that are 5xx
    ("HostHighCpu", 70, 90),
    ("HostHighMemory", 70, 90),
    ("HostDiskFull", 80, 90),
])
def test_thresholds_are_the_service_levels(rendered, alert, warning, critical):
    """The levels of the QoS documents (shared DESIGN.md, 'Alerts')."""
    assert _threshold(rendered, alert, "warning") == warning
    assert _threshold(rendered, alert, "critical") == critical


def _metric_names(rendered: dict) -> set[str]:
    exprs = " ".join(rule["expr"] for rule in _rules(rendered))
    return set(re.findall(r"\b(scheduler_[a-z_]+)\b", exprs))


def test_app_metrics_in_the_rules_are_exported_by_the_app(rendered):
    source = (REPO / "app" / "scheduler" / "metrics.py").read_text()
    exported = set(re.findall(r'(?:Histogram|Counter)\(\s*"([a-z_]+)"', source))
    # prometheus_client adds _total to counters and _bucket/_sum/_count to histograms.
    app_metrics = {m for m in _metric_names(rendered) if m.startswith("scheduler_http_")}
    assert app_metrics
    for metric in app_metrics:
        assert re.sub(r"_(total|bucket|sum|count)$", "", metric) in exported, metric


def test_backup_metric_in_the_rules_is_written_by_the_backup_script(rendered):
    script = (REPO / "roles" / "postgresql" / "files" / "scheduler-db-backup").read_text()
    backup_metrics = {m for m in _metric_names(rendered) if m.startswith("scheduler_db_backup_")}
    assert backup_metrics
    for metric in backup_metrics:
        assert f"{metric}{{" in script, metric
