"""The Prometheus gate: the service's own metrics over the verification window.

The window runs from the start of the verification run to the moment every app target
has been scraped after the load test ended, so it covers the checks and the load. Each
criterion is one PromQL expression evaluated at the end of the window; `{window}` is
replaced by its length. Expressions returning several series (one per host) must all be
below the threshold. A criterion with `gated: false` is measured and reported, never fails.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from verify.results import ERROR, INFO, WARNING, Case, CheckResult

APP_SELECTOR = 'job="app",view!="metrics"'


def default_criteria(app_selector: str = APP_SELECTOR, node_selector: str = 'job="node"',
                     thresholds: dict[str, float] | None = None) -> list[Criterion]:
    """The original process's four gates, on the metric names of app/scheduler/metrics.py and the
    node exporter (the same expressions as the monitoring role's alert rules)."""
    limits = {"response_time_ms": 300.0, "error_rate_percent": 1.0, "cpu_percent": 80.0,
              "memory_percent": 80.0} | (thresholds or {})
    app = "{" + app_selector + "}[{window}]"
    latency = "scheduler_http_request_duration_seconds"
    idle = "{" + node_selector + ',mode="idle"}[{window}]'
    node = "{" + node_selector + "}"
    return [
        Criterion("response_time_ms", "average response time", "ms", limits["response_time_ms"],
                  f"1000 * sum(increase({latency}_sum{app})) / sum(increase({latency}_count{app}))"),
        Criterion("error_rate_percent", "5xx error rate", "%", limits["error_rate_percent"],
                  f"100 * (sum(increase(scheduler_http_server_errors_total{app})) or vector(0))"
                  f" / sum(increase(scheduler_http_requests_total{app}))"),
        Criterion("cpu_percent", "CPU busy per host", "%", limits["cpu_percent"],
                  f"100 * (1 - avg by (host, instance) (rate(node_cpu_seconds_total{idle})))"),
        Criterion("memory_percent", "memory used per host (peak)", "%", limits["memory_percent"],
                  f"100 * max by (host, instance) (max_over_time((1 - node_memory_MemAvailable_bytes{node}"
                  f" / node_memory_MemTotal_bytes{node})[{{window}}:]))"),
    ]


@dataclass
class Criterion:
    name: str
    title: str
    unit: str
    threshold: float
    query: str
    gated: bool = True
    reason: str = ""


@dataclass
class GateSettings:
    url: str
    started_at: float
    load_finished_at: float = 0.0
    criteria: list[Criterion] = field(default_factory=default_criteria)
    app_job: str = "app"
    min_window_seconds: int = 30
    settle_timeout: float = 60.0
    timeout: float = 10.0


class PrometheusError(RuntimeError):
    """Prometheus could not answer a query."""


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False

    def query(self, expression: str, at: float) -> list[tuple[dict[str, str], float]]:
        """Instant query: (labels, value) per series."""
        try:
            answer = self.session.get(f"{self.url}/api/v1/query", timeout=self.timeout,
                                      params={"query": expression, "time": f"{at:.3f}"})
        except requests.RequestException as exc:
            raise PrometheusError(f"no answer from {self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = answer.json()
        except ValueError as exc:
            raise PrometheusError(f"{self.url} answered HTTP {answer.status_code}, not JSON") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"query failed ({body.get('errorType')}): {body.get('error')}: "
                                  f"{expression}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(series["metric"], float(series["value"][1])) for series in data["result"]]


def window_seconds(started_at: float, ended_at: float, minimum: int) -> int:
    return max(minimum, math.ceil(ended_at - started_at))


def wait_for_scrape(prom: Prometheus, settings: GateSettings, clock: Callable[[], float] = time.time,
                    sleep: Callable[[float], None] = time.sleep) -> float:
    """Waits (bounded) until every app target was scraped after the load ended; returns that time."""
    deadline = clock() + settings.settle_timeout
    since = settings.load_finished_at or settings.started_at
    while True:
        now = clock()
        samples = prom.query(f'min(timestamp(up{{job="{settings.app_job}"}}))', now)
        if samples and samples[0][1] >= since:
            return now
        if now >= deadline:
            return now
        sleep(1.0)


def _label(labels: dict[str, str]) -> str:
    return labels.get("host") or labels.get("instance") or "service"


def evaluate(prom: Prometheus, settings: GateSettings, ended_at: float, result: CheckResult) -> None:
    window = window_seconds(settings.started_at, ended_at, settings.min_window_seconds)
    result.measurements["window_seconds"] = window
    for criterion in settings.criteria:
        expression = criterion.query.replace("{window}", f"{window}s")
        samples = [(labels, value) for labels, value in prom.query(expression, ended_at)
                   if not math.isnan(value)]
        name = f"{criterion.title} < {criterion.threshold:g} {criterion.unit}"
        if not samples:
            result.finding(criterion.name, f"no data in the {window} s window for {criterion.title}: "
                           "are the targets scraped?", severity=ERROR if criterion.gated else WARNING,
                           kind="gate")
            result.cases.append(_case(name, False, "no data", criterion))
            continue
        values = {_label(labels): round(value, 3) for labels, value in samples}
        result.measurements[criterion.name] = values
        over = {where: value for where, value in values.items() if value >= criterion.threshold}
        detail = ", ".join(f"{where} {value:g} {criterion.unit}" for where, value in sorted(values.items()))
        if over:
            severity = ERROR if criterion.gated else WARNING
            note = "" if criterion.gated else f" (not gated here: {criterion.reason or 'gated: false'})"
            for where, value in sorted(over.items()):
                result.finding(where, f"{criterion.title} {value:g} {criterion.unit} over the window, "
                               f"limit < {criterion.threshold:g} {criterion.unit}{note}", severity=severity,
                               kind="gate")
        result.cases.append(_case(name, not over, detail, criterion))


def _case(name: str, passed: bool, detail: str, criterion: Criterion) -> Case:
    if criterion.gated:
        return Case(name=name, passed=passed, detail=detail)
    return Case(name=f"{name} (not gated)", passed=True, skipped=not passed,
                detail=f"{detail}; not gated: {criterion.reason or 'gated: false'}")


def run_gate(settings: GateSettings, enabled: bool = True, prom: Prometheus | None = None) -> CheckResult:
    result = CheckResult(name="prometheus", title="Prometheus gate over the verification window")
    if not enabled:
        result.skipped = "verify_prometheus_gate is false: no Prometheus gate in this inventory"
        result.gated = False
        result.finding(settings.url or "prometheus", "no Prometheus gate: verify_prometheus_gate is false",
                       severity=INFO, kind="gate")
        return result.finish()
    prom = prom or Prometheus(settings.url, settings.timeout)
    try:
        ended_at = wait_for_scrape(prom, settings)
        evaluate(prom, settings, ended_at, result)
    except PrometheusError as exc:
        result.case("Prometheus answers", False, str(exc))
        result.finding(settings.url, f"Prometheus gate could not run: {exc}", kind="gate")
    return result.finish()
