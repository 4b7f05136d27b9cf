"""Prometheus instrumentation: request latency, request and 5xx counters, database time.

Labels carry the resolved view name (`events:event-detail`), never the raw path, so
`/event/1/` and `/event/2/` share one series. Requests that resolve to no view
(404s, redirects made before resolution) are labelled `unmatched`.

Multi-process gunicorn: when PROMETHEUS_MULTIPROC_DIR is set before the process
starts, prometheus_client keeps every worker's values in files there and the
/metrics view aggregates them (see gunicorn.conf.py for the hooks that clean the
directory at start and drop dead workers' live gauges).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_VIEW = "unmatched"

# Bucket edges include the deploy gate (0.3 s), the SLA and warning (0.5 s) and the
# critical alert (1 s), so those thresholds are exact in histogram_quantile().
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

REQUEST_DURATION = Histogram(
    "scheduler_http_request_duration_seconds",
    "Time from the first middleware to the response, by view.",
    ["view"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "scheduler_http_requests",
    "Requests answered, by view, method and status code.",
    ["view", "method", "status"],
)
SERVER_ERRORS = Counter(
    "scheduler_http_server_errors",
    "Responses with a 5xx status code, by view.",
    ["view"],
)
DB_DURATION = Histogram(
    "scheduler_db_duration_seconds",
    "Seconds spent in database queries during one request, by view.",
    ["view"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DB_QUERIES = Counter(
    "scheduler_db_queries",
    "Database queries executed while answering requests, by view.",
    ["view"],
)
BUILD_INFO = Gauge(
    "scheduler_build_info",
    "Always 1; the label tells which release this process runs.",
    ["version"],
    multiprocess_mode="livemax",
)


class QueryTimer:
    """A `connection.execute_wrapper` that adds up the time spent in queries."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.queries = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.queries += 1


def view_label(request: HttpRequest) -> str:
    """The resolved view's name, bounded in number whatever paths clients send."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED_VIEW
    return match.view_name or UNMATCHED_VIEW


class PrometheusMetricsMiddleware:
    """Times every request and the database queries it makes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        BUILD_INFO.labels(version=settings.APP_VERSION).set(1)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        timer = QueryTimer()
        started = time.perf_counter()
        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(timer))
            # Django turns exceptions into 500 responses before they reach us.
            response = self.get_response(request)
        elapsed = time.perf_counter() - started
        view = view_label(request)
        REQUEST_DURATION.labels(view=view).observe(elapsed)
        REQUESTS.labels(view=view, method=request.method or "", status=str(response.status_code)).inc()
        if response.status_code >= 500:
            SERVER_ERRORS.labels(view=view).inc()
        if timer.queries:
            DB_DURATION.labels(view=view).observe(timer.seconds)
            DB_QUERIES.labels(view=view).inc(timer.queries)
        return response


def exposition_registry() -> CollectorRegistry:
    """The registry to expose: every worker's files in multi-process mode, else this process."""
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY
