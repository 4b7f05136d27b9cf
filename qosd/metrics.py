"""Prometheus metrics, in a registry of their own (tests build one per engine).

Names (all prefixed `qosd_`):

- `qosd_check_success{check,type}` 1 when the last probe passed, 0 otherwise
- `qosd_check_latency_seconds{check,type}` duration of the last probe
- `qosd_check_consecutive_failures{check}` failures counted towards the threshold
- `qosd_interventions_total{target,kind,result}` kind: restart|reload_nginx;
  result: ok|failed|rejected (rejected: `nginx -t` failed, nothing reloaded)
- `qosd_interventions_suppressed_total{check,reason}` reason: paused|dependency|backoff|escalated
- `qosd_escalated{target}` 1 while a target needs a human (no more interventions)
- `qosd_paused` 1 while interventions are paused
- `qosd_last_cycle_timestamp_seconds` unix time of the last completed check cycle
- `qosd_build_info{version}` always 1
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from qosd import __version__


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._server: WSGIServer | None = None
        r = self.registry
        self.check_success = Gauge(
            "qosd_check_success", "1 when the last probe of a check passed", ["check", "type"], registry=r
        )
        self.check_latency = Gauge(
            "qosd_check_latency_seconds",
            "Duration of the last probe of a check",
            ["check", "type"],
            registry=r,
        )
        self.consecutive = Gauge(
            "qosd_check_consecutive_failures",
            "Consecutive failures of a check counted towards its threshold",
            ["check"],
            registry=r,
        )
        self.interventions = Counter(
            "qosd_interventions",
            "Interventions by target, kind and result",
            ["target", "kind", "result"],
            registry=r,
        )
        self.suppressed = Counter(
            "qosd_interventions_suppressed",
            "Interventions a failing check needed but did not get, by reason",
            ["check", "reason"],
            registry=r,
        )
        self.escalated = Gauge(
            "qosd_escalated", "1 while a target is escalated: it needs a human", ["target"], registry=r
        )
        self.paused = Gauge("qosd_paused", "1 while interventions are paused", registry=r)
        self.last_cycle = Gauge(
            "qosd_last_cycle_timestamp_seconds", "Unix time of the last check cycle", registry=r
        )
        Gauge("qosd_build_info", "qosd version", ["version"], registry=r).labels(__version__).set(1)

    def serve(self, address: str, port: int) -> int:
        """Serves /metrics on a daemon thread; returns the bound port (port 0 picks a free one)."""
        self._server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return int(self._server.server_port)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
