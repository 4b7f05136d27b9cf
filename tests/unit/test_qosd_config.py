"""Config validation: every problem names the field, what was expected and what was found."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from qosd.config import ConfigError, dependency_order, load, parse, parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "qosd" / "example-config.json"

MINIMAL: dict[str, object] = {
    "targets": {"app": {"action": "restart", "unit": "scheduler.service"}},
    "checks": [{"name": "app", "type": "http", "url": "http://127.0.0.1:8000/health/", "remedy": "app"}],
}


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    return caught.value.problems


def with_check(**fields: object) -> dict[str, object]:
    data = copy.deepcopy(MINIMAL)
    data["checks"][0].update(fields)  # type: ignore[index]
    return data


def test_the_shipped_example_is_valid() -> None:
    config = load(EXAMPLE)
    assert {spec.type for spec in config.checks} == {"http", "tcp", "systemd", "log", "files"}


def test_defaults_repair_a_hung_app_well_under_15_seconds() -> None:
    spec = parse(MINIMAL).checks[0]
    assert (spec.interval, spec.timeout, spec.threshold) == (2.0, 2.0, 3)
    worst_detection = spec.threshold * max(spec.interval, spec.timeout) + spec.interval
    assert worst_detection <= 8


def test_defaults_and_durations() -> None:
    config = parse({**MINIMAL, "defaults": {"interval": "500ms", "grace": "1m"}, "pause": {"default": "10m"}})
    spec = config.checks[0]
    assert (spec.interval, spec.grace) == (0.5, 60.0)
    assert config.pause_default == 600
    assert config.metrics_port == 9310
    assert spec.params.status == (200,)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(2, 2.0), (1.5, 1.5), ("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("250ms", 0.25)],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-1s", True, None, "1 week"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        (with_check(timeout="x"), "checks[0].timeout", "expected a duration"),
        (with_check(interval=0), "checks[0].interval", "greater than 0"),
        (with_check(threshold=0), "checks[0].threshold", "at least 1"),
        (with_check(threshold=2.5), "checks[0].threshold", "integer"),
        (with_check(treshold=3), "checks[0].treshold", "did you mean 'threshold'"),
        (with_check(type="ping"), "checks[0].type", "expected one of http, tcp, systemd, log, files"),
        (with_check(url="ftp://x"), "checks[0].url", "http:// or https://"),
        (with_check(status=[200, 999]), "checks[0].status", "HTTP status codes"),
        (with_check(body="(unclosed"), "checks[0].body", "regular expression"),
        (with_check(remedy="db"), "checks[0].remedy", "expected one of the targets (app), got 'db'"),
        (with_check(remedies={"status_502": "nope"}), "checks[0].remedies.status_502", "targets"),
        (with_check(remedies={"inactive": "app"}), "checks[0].remedies.inactive", "unknown symptom"),
        (with_check(depends_on=["db"]), "checks[0].depends_on", "unknown 'db'"),
        (with_check(depends_on=["app"]), "checks[0].depends_on", "cannot depend on itself"),
        (with_check(name="App Health"), "checks[0].name", "lowercase"),
        ({**MINIMAL, "metrics": {"port": 70000}}, "metrics.port", "at most 65535"),
        ({**MINIMAL, "targets": {"app": {"action": "restart"}}}, "targets.app.unit", "required"),
        ({**MINIMAL, "targets": {"app": {"action": "kill", "unit": "x"}}}, "targets.app.action", "restart"),
        ({**MINIMAL, "protection": {"backoff_factor": 0.5}}, "protection.backoff_factor", "at least 1"),
        ({**MINIMAL, "commands": {"systemctl": "systemctl"}}, "commands.systemctl", "absolute path"),
        ({**MINIMAL, "pause": {"default": "2d", "max": "1d"}}, "pause.default", "at most pause.max"),
        ({"targets": {}}, "checks", "required field is missing"),
        ({**MINIMAL, "checks": []}, "checks", "at least one check"),
        ({**MINIMAL, "checks": {}}, "checks", "expected a list"),
        ([], "top level", "expected an object"),
    ],
)
def test_each_problem_names_its_field(data: object, field: str, expected: str) -> None:
    problems = problems_of(data)
    matching = [problem for problem in problems if problem.startswith(f"{field}:")]
    assert matching, problems
    assert expected in matching[0]


def test_type_specific_required_fields() -> None:
    data = {
        "targets": {},
        "checks": [
            {"name": "t", "type": "tcp", "host": "127.0.0.1"},
            {"name": "s", "type": "systemd"},
            {"name": "l", "type": "log", "path": "/var/log/x", "patterns": []},
            {"name": "f", "type": "files"},
        ],
    }
    problems = problems_of(data)
    for field in ("checks[0].port", "checks[1].unit", "checks[2].patterns", "checks[3].paths"):
        assert any(problem.startswith(field + ":") for problem in problems), (field, problems)


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(with_check(timeout="x", threshold=0, remedy="nope"))
    assert len(problems) == 3


def test_dependency_cycle_is_named() -> None:
    data = {
        "targets": {},
        "checks": [
            {"name": "a", "type": "tcp", "host": "h", "port": 1, "depends_on": ["b"]},
            {"name": "b", "type": "tcp", "host": "h", "port": 2, "depends_on": ["a"]},
        ],
    }
    problems = problems_of(data)
    assert any("a -> b -> a" in problem for problem in problems), problems


def test_duplicate_check_names() -> None:
    data = copy.deepcopy(MINIMAL)
    data["checks"].append(copy.deepcopy(data["checks"][0]))  # type: ignore[union-attr]
    assert any(problem.startswith("checks[1].name:") and "unique" in problem for problem in problems_of(data))


def test_dependencies_are_ordered_first() -> None:
    data = {
        "targets": {},
        "checks": [
            {"name": "app", "type": "tcp", "host": "h", "port": 1, "depends_on": ["db"]},
            {"name": "db", "type": "tcp", "host": "h", "port": 2},
        ],
    }
    assert [spec.name for spec in dependency_order(parse(data).checks)] == ["db", "app"]


def test_symptom_override_and_null_remedy() -> None:
    spec = parse(with_check(remedies={"status_403": None, "timeout": "app"}, remedy=None)).checks[0]
    assert spec.target_for("status_403") is None
    assert spec.target_for("timeout") == "app"
    assert spec.target_for("status_502") is None


def test_load_reports_bad_json_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"checks": [,]}')
    with pytest.raises(ConfigError, match=r"not valid JSON: .* line 1 column 13"):
        load(path)


def test_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path / "absent.json")


def test_round_trip_of_the_example_through_json() -> None:
    data = json.loads(EXAMPLE.read_text())
    assert parse(data).check("app_health").depends_on == ("db",)
