"""The daemon's configuration: one JSON file, validated as a whole before anything runs.

Why JSON and not YAML: operators never edit this file by hand. They describe checks in the
Ansible inventory (YAML) and the `qos_daemon` role renders it with `to_nice_json`, then
validates it with `python -m qosd check-config %s` before it lands. JSON keeps the daemon
on the standard library plus requests and prometheus-client (no PyYAML in the wheelhouse),
and the file stays greppable and diffable. For hand-written configs YAML is a superset of
JSON, so nothing is lost if a YAML front-end is ever wanted.

Every problem is reported at once, each naming the field (`checks[2].timeout`), what was
expected and what was found. Unknown fields are errors: a typo such as `treshold` must not
silently fall back to a default.

Durations are seconds as numbers (`2`, `0.5`) or strings with a unit (`"90s"`, `"15m"`,
`"1h"`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIONS = ("restart", "reload_nginx")
CHECK_TYPES = ("http", "tcp", "systemd", "log", "files")
# Symptoms each check type reports; `remedies` may map any of them to a target (or null).
SYMPTOMS: dict[str, tuple[str, ...]] = {
    "http": ("refused", "timeout", "error", "body", "slow"),  # plus status_<code>
    "tcp": ("refused", "timeout", "error"),
    "systemd": ("inactive",),
    "log": ("error_rate",),
    "files": ("changed",),
}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
STATUS_SYMPTOM_RE = re.compile(r"^status_[1-5][0-9][0-9]$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(ValueError):
    """Every problem found in a config file, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid qosd config {source}:\n  " + "\n  ".join(problems))


def parse_duration(value: object) -> float:
    """Seconds from `2`, `1.5`, `"90s"`, `"15m"`, `"1h"`, `"250ms"`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration (seconds or a string like '15m'), got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"expected a duration (seconds or a string like '15m'), got {value!r}")


@dataclass(frozen=True)
class HttpParams:
    url: str
    status: tuple[int, ...] = (200,)
    body: str | None = None
    max_latency: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True


@dataclass(frozen=True)
class TcpParams:
    host: str
    port: int


@dataclass(frozen=True)
class SystemdParams:
    unit: str


@dataclass(frozen=True)
class LogParams:
    path: str
    patterns: tuple[str, ...]
    max_matches: int
    window: float


@dataclass(frozen=True)
class FilesParams:
    paths: tuple[str, ...]
    settle: float


CheckParams = HttpParams | TcpParams | SystemdParams | LogParams | FilesParams


@dataclass(frozen=True)
class CheckSpec:
    name: str
    type: str
    params: CheckParams
    interval: float
    timeout: float
    threshold: int
    grace: float
    depends_on: tuple[str, ...] = ()
    remedy: str | None = None
    remedies: Mapping[str, str | None] = field(default_factory=dict)

    def target_for(self, symptom: str) -> str | None:
        """The target to act on for this symptom: an override, else the check's remedy."""
        return self.remedies.get(symptom, self.remedy)

    def targets(self) -> set[str]:
        """Every target this check may act on (its grace starts when any of them is acted on)."""
        named = {self.remedy, *self.remedies.values()}
        return {name for name in named if name}


@dataclass(frozen=True)
class Target:
    name: str
    action: str
    unit: str | None = None


@dataclass(frozen=True)
class Protection:
    max_interventions: int = 3
    window: float = 900.0
    backoff_initial: float = 10.0
    backoff_factor: float = 2.0
    backoff_max: float = 300.0


@dataclass(frozen=True)
class Commands:
    sudo: str = "/usr/bin/sudo"
    systemctl: str = "/usr/bin/systemctl"
    nginx: str = "/usr/sbin/nginx"
    use_sudo: bool = True
    timeout: float = 90.0


@dataclass(frozen=True)
class Config:
    checks: tuple[CheckSpec, ...]
    targets: Mapping[str, Target]
    state_dir: Path = Path("/var/lib/qosd")
    log_dir: Path = Path("/var/log/qosd")
    metrics_address: str = "0.0.0.0"  # noqa: S104 - Prometheus on the monitoring host scrapes it
    metrics_port: int = 9310
    log_level: str = "INFO"
    log_max_bytes: int = 5 * 1024 * 1024
    log_backups: int = 5
    pause_default: float = 900.0
    pause_max: float = 86400.0
    protection: Protection = Protection()
    commands: Commands = Commands()

    def check(self, name: str) -> CheckSpec:
        return next(spec for spec in self.checks if spec.name == name)


@dataclass(frozen=True)
class CheckDefaults:
    """A hung app (requests time out) is seen after 3 probes 2 s apart with a 2 s timeout,
    i.e. 6-8 s, and restarted at once; the original daemon needed 90 s. The grace period
    covers a restart of the app (gunicorn up and answering) before failures count again."""

    interval: float = 2.0
    timeout: float = 2.0
    threshold: int = 3
    grace: float = 15.0


class _Reader:
    """Reads one JSON object field by field, recording problems instead of raising."""

    def __init__(self, data: object, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.ok = isinstance(data, dict)
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self._known: set[str] = set()
        if not self.ok:
            problems.append(f"{path or 'top level'}: expected an object, got {_kind(data)}")

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where(key)}: {message}")

    def raw(self, key: str, *, required: bool = False) -> object:
        self._known.add(key)
        if key not in self.data and required and self.ok:
            self.problem(key, "required field is missing")
        return self.data.get(key)

    def string(
        self, key: str, default: str | None = None, *, required: bool = False, choices: tuple[str, ...] = ()
    ) -> str | None:
        value = self.raw(key, required=required)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a non-empty string, got {_kind(value)}")
            return default
        if choices and value not in choices:
            self.problem(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_kind(value)}")
            return default
        return value

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None, required: bool = False
    ) -> int:
        value = self.raw(key, required=required)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            upper = f" and at most {maximum}" if maximum is not None else ""
            self.problem(key, f"expected an integer of at least {minimum}{upper}, got {_kind(value)}")
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            self.problem(key, f"expected a number of at least {minimum:g}, got {_kind(value)}")
            return default
        return float(value)

    def duration(self, key: str, default: float | None, *, positive: bool = True) -> float | None:
        value = self.raw(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.problem(key, str(exc))
            return default
        if positive and seconds <= 0:
            self.problem(key, f"expected a duration greater than 0, got {value!r}")
            return default
        return seconds

    def strings(self, key: str, *, required: bool = False, allow_empty: bool = True) -> tuple[str, ...]:
        value = self.raw(key, required=required)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.problem(key, f"expected a list of non-empty strings, got {_kind(value)}")
            return ()
        if not value and not allow_empty:
            self.problem(key, "expected at least one entry, got an empty list")
        return tuple(value)

    def finish(self) -> None:
        """Unknown keys are errors: a typo must not silently become a default."""
        for key in sorted(set(self.data) - self._known):
            close = difflib.get_close_matches(key, sorted(self._known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.problem(key, f"unknown field ({hint}expected one of: {', '.join(sorted(self._known))})")


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


def load(path: str | Path) -> Config:
    """Reads and validates a config file; raises ConfigError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            source, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        ) from exc
    return parse(data, source)


def parse(data: object, source: str = "<config>") -> Config:
    """Validates a decoded JSON document; raises ConfigError listing every problem."""
    problems: list[str] = []
    top = _Reader(data, "", problems)
    metrics = _Reader(top.raw("metrics") or {}, "metrics", problems)
    log = _Reader(top.raw("log") or {}, "log", problems)
    pause = _Reader(top.raw("pause") or {}, "pause", problems)
    defaults = _read_defaults(_Reader(top.raw("defaults") or {}, "defaults", problems))
    targets = _read_targets(top.raw("targets", required=True), problems)
    raw_checks = top.raw("checks", required=True)
    checks = _read_checks(raw_checks, defaults, problems)
    config = Config(
        checks=tuple(checks),
        targets=targets,
        state_dir=Path(top.string("state_dir", "/var/lib/qosd") or "/var/lib/qosd"),
        log_dir=Path(top.string("log_dir", "/var/log/qosd") or "/var/log/qosd"),
        metrics_address=metrics.string("address", Config.metrics_address) or Config.metrics_address,
        metrics_port=metrics.integer("port", 9310, minimum=0, maximum=65535),
        log_level=log.string("level", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")) or "INFO",
        log_max_bytes=log.integer("max_bytes", Config.log_max_bytes, minimum=1024),
        log_backups=log.integer("backups", Config.log_backups, minimum=1),
        pause_default=pause.duration("default", 900.0) or 900.0,
        pause_max=pause.duration("max", 86400.0) or 86400.0,
        protection=_read_protection(_Reader(top.raw("protection") or {}, "protection", problems)),
        commands=_read_commands(_Reader(top.raw("commands") or {}, "commands", problems)),
    )
    for reader in (metrics, log, pause):
        reader.finish()
    top.finish()
    if config.pause_default > config.pause_max:
        problems.append(
            f"pause.default: expected at most pause.max ({config.pause_max:g} s), "
            f"got {config.pause_default:g} s"
        )
    _check_references(config, problems)
    if isinstance(raw_checks, list) and not raw_checks:
        problems.append("checks: expected at least one check, got an empty list")
    if problems:
        raise ConfigError(source, problems)
    return config


def _read_defaults(reader: _Reader) -> CheckDefaults:
    base = CheckDefaults()
    values = _read_timing(reader, base)
    reader.finish()
    return values


def _read_timing(reader: _Reader, base: CheckDefaults) -> CheckDefaults:
    return CheckDefaults(
        interval=reader.duration("interval", base.interval) or base.interval,
        timeout=reader.duration("timeout", base.timeout) or base.timeout,
        threshold=reader.integer("threshold", base.threshold, minimum=1),
        grace=reader.duration("grace", base.grace, positive=False) or 0.0,
    )


def _read_protection(reader: _Reader) -> Protection:
    base = Protection()
    protection = Protection(
        max_interventions=reader.integer("max_interventions", base.max_interventions, minimum=1),
        window=reader.duration("window", base.window) or base.window,
        backoff_initial=reader.duration("backoff_initial", base.backoff_initial, positive=False) or 0.0,
        backoff_factor=reader.number("backoff_factor", base.backoff_factor, minimum=1.0),
        backoff_max=reader.duration("backoff_max", base.backoff_max, positive=False) or 0.0,
    )
    reader.finish()
    return protection


def _read_commands(reader: _Reader) -> Commands:
    base = Commands()
    commands = Commands(
        sudo=reader.string("sudo", base.sudo) or base.sudo,
        systemctl=reader.string("systemctl", base.systemctl) or base.systemctl,
        nginx=reader.string("nginx", base.nginx) or base.nginx,
        use_sudo=reader.boolean("use_sudo", base.use_sudo),
        timeout=reader.duration("timeout", base.timeout) or base.timeout,
    )
    for key in ("sudo", "systemctl", "nginx"):
        value = getattr(commands, key)
        if not value.startswith("/"):
            reader.problem(key, f"expected an absolute path (sudoers matches exact paths), got {value!r}")
    reader.finish()
    return commands


def _read_targets(raw: object, problems: list[str]) -> dict[str, Target]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"targets: expected an object of target name -> {{action, unit}}, got {_kind(raw)}")
        return {}
    targets: dict[str, Target] = {}
    for name, body in raw.items():
        path = f"targets.{name}"
        if not NAME_RE.match(name):
            problems.append(f"{path}: expected a name of lowercase letters, digits, '_', '.', '-'")
        reader = _Reader(body, path, problems)
        action = reader.string("action", None, required=True, choices=ACTIONS)
        unit = reader.string("unit", None, required=action == "restart")
        reader.finish()
        if unit and not re.match(r"^[A-Za-z0-9@_.:-]+$", unit):
            problems.append(f"{path}.unit: expected a systemd unit name, got {unit!r}")
        if action:
            targets[name] = Target(name=name, action=action, unit=unit)
    return targets


def _read_checks(raw: object, defaults: CheckDefaults, problems: list[str]) -> list[CheckSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"checks: expected a list of checks, got {_kind(raw)}")
        return []
    checks = []
    for index, body in enumerate(raw):
        spec = _read_check(_Reader(body, f"checks[{index}]", problems), defaults)
        if spec is not None:
            checks.append(spec)
    return checks


def _read_check(reader: _Reader, defaults: CheckDefaults) -> CheckSpec | None:
    if not reader.ok:
        return None
    name = reader.string("name", None, required=True)
    if name and not NAME_RE.match(name):
        reader.problem("name", f"expected lowercase letters, digits, '_', '.', '-', got {name!r}")
    kind = reader.string("type", None, required=True, choices=CHECK_TYPES)
    timing = _read_timing(reader, defaults)
    depends_on = reader.strings("depends_on")
    remedy = reader.string("remedy", None)
    remedies = _read_remedies(reader, kind)
    params = _PARAM_READERS[kind](reader) if kind else None
    reader.finish()
    if not name or not kind or params is None:
        return None
    return CheckSpec(
        name=name,
        type=kind,
        params=params,
        depends_on=depends_on,
        remedy=remedy,
        remedies=remedies,
        interval=timing.interval,
        timeout=timing.timeout,
        threshold=timing.threshold,
        grace=timing.grace,
    )


def _read_remedies(reader: _Reader, kind: str | None) -> dict[str, str | None]:
    raw = reader.raw("remedies")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        reader.problem("remedies", f"expected an object of symptom -> target name or null, got {_kind(raw)}")
        return {}
    remedies: dict[str, str | None] = {}
    known = SYMPTOMS.get(kind or "", ())
    for symptom, target in raw.items():
        is_status = kind == "http" and STATUS_SYMPTOM_RE.match(symptom)
        if symptom not in known and not is_status:
            extra = ", status_<code>" if kind == "http" else ""
            reader.problem(
                f"remedies.{symptom}",
                f"unknown symptom for a {kind} check (expected one of: {', '.join(known)}{extra})",
            )
        elif target is not None and not isinstance(target, str):
            reader.problem(f"remedies.{symptom}", f"expected a target name or null, got {_kind(target)}")
        else:
            remedies[symptom] = target
    return remedies


def _read_http(reader: _Reader) -> HttpParams | None:
    url = reader.string("url", None, required=True)
    if url and not re.match(r"^https?://[^/\s]+", url):
        reader.problem("url", f"expected an http:// or https:// URL, got {url!r}")
    status = reader.raw("status")
    codes: tuple[int, ...] = (200,)
    if status is not None:
        if (
            not isinstance(status, list)
            or not status
            or not all(
                isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 for code in status
            )
        ):
            reader.problem(
                "status", f"expected a non-empty list of HTTP status codes (100-599), got {_kind(status)}"
            )
        else:
            codes = tuple(status)
    body = reader.string("body", None)
    if body is not None:
        _check_regex(reader, "body", body)
    headers = reader.raw("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        reader.problem("headers", f"expected an object of header name -> string, got {_kind(headers)}")
        headers = {}
    max_latency = reader.duration("max_latency", None)
    verify_tls = reader.boolean("verify_tls", True)
    if not url:
        return None
    return HttpParams(
        url=url, status=codes, body=body, max_latency=max_latency, headers=headers, verify_tls=verify_tls
    )


def _read_tcp(reader: _Reader) -> TcpParams | None:
    host = reader.string("host", None, required=True)
    port = reader.integer("port", 0, minimum=1, maximum=65535, required=True)
    return TcpParams(host=host, port=port) if host and port else None


def _read_systemd(reader: _Reader) -> SystemdParams | None:
    unit = reader.string("unit", None, required=True)
    return SystemdParams(unit=unit) if unit else None


def _read_log(reader: _Reader) -> LogParams | None:
    path = reader.string("path", None, required=True)
    patterns = reader.strings("patterns", required=True, allow_empty=False)
    for index, pattern in enumerate(patterns):
        _check_regex(reader, f"patterns[{index}]", pattern)
    max_matches = reader.integer("max_matches", 10, minimum=0)
    window = reader.duration("window", 60.0) or 60.0
    if not path or not patterns:
        return None
    return LogParams(path=path, patterns=patterns, max_matches=max_matches, window=window)


def _read_files(reader: _Reader) -> FilesParams | None:
    paths = reader.strings("paths", required=True, allow_empty=False)
    settle = reader.duration("settle", 5.0, positive=False) or 0.0
    return FilesParams(paths=paths, settle=settle) if paths else None


_PARAM_READERS = {
    "http": _read_http,
    "tcp": _read_tcp,
    "systemd": _read_systemd,
    "log": _read_log,
    "files": _read_files,
}


def _check_regex(reader: _Reader, key: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        reader.problem(key, f"expected a regular expression, got {pattern!r} ({exc})")


def _check_references(config: Config, problems: list[str]) -> None:
    names = [spec.name for spec in config.checks]
    for index, spec in enumerate(config.checks):
        where = f"checks[{index}]"
        if names.count(spec.name) > 1 and names.index(spec.name) != index:
            problems.append(f"{where}.name: expected a unique check name, {spec.name!r} is used twice")
        for dep in spec.depends_on:
            if dep == spec.name:
                problems.append(f"{where}.depends_on: a check cannot depend on itself ({dep!r})")
            elif dep not in names:
                problems.append(f"{where}.depends_on: expected names of other checks, got unknown {dep!r}")
        if spec.remedy is not None and spec.remedy not in config.targets:
            problems.append(
                f"{where}.remedy: expected one of the targets "
                f"({', '.join(config.targets) or 'none defined'}), got {spec.remedy!r}"
            )
        for symptom, target in spec.remedies.items():
            if target is not None and target not in config.targets:
                problems.append(
                    f"{where}.remedies.{symptom}: expected one of the targets "
                    f"({', '.join(config.targets) or 'none defined'}), got {target!r}"
                )
    cycle = _find_cycle({spec.name: spec.depends_on for spec in config.checks})
    if cycle:
        problems.append(f"checks.depends_on: expected no dependency cycle, found {' -> '.join(cycle)}")


def _find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A dependency cycle as a path (first name repeated at the end), or [] when none."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done or node not in graph:
            return []
        visiting.append(node)
        for dep in graph[node]:
            found = visit(dep)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return []

    for name in graph:
        found = visit(name)
        if found:
            return found
    return []


def dependency_order(checks: tuple[CheckSpec, ...]) -> list[CheckSpec]:
    """Checks with every dependency before its dependents (config order otherwise)."""
    by_name = {spec.name: spec for spec in checks}
    ordered: list[CheckSpec] = []
    placed: set[str] = set()

    def place(spec: CheckSpec) -> None:
        if spec.name in placed:
            return
        placed.add(spec.name)
        for dep in spec.depends_on:
            if dep in by_name:
                place(by_name[dep])
        ordered.append(spec)

    for spec in checks:
        place(spec)
    return ordered
