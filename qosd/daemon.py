"""The long-running loop (`qosd run`): metrics server, check cycles, sd_notify and watchdog."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from qosd import state
from qosd.actions import SystemActions
from qosd.clock import Clock, SystemClock
from qosd.config import Config
from qosd.engine import Engine
from qosd.logs import INTERVENTIONS_LOG, InterventionLog, setup_daemon_logging
from qosd.metrics import Metrics
from qosd.notify import Notifier
from qosd.probes import build_probe

log = logging.getLogger("qosd")


class Heartbeat:
    """The loop promises to be back by `deadline`; the watchdog thread pings systemd only while
    that promise holds, so a stuck loop (not just a dead process) gets the daemon restarted."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.deadline = clock.monotonic()

    def promise(self, seconds: float) -> None:
        self.deadline = self.clock.monotonic() + seconds

    def alive(self) -> bool:
        return self.clock.monotonic() <= self.deadline


def stall_limit(config: Config) -> float:
    """The longest a healthy cycle can take: probes (in parallel), dependency re-probes,
    and two commands per target intervened on."""
    probe = max(spec.timeout for spec in config.checks)
    return 2 * probe + 2 * config.commands.timeout * max(1, len(config.targets)) + 10.0


def build_engine(
    config: Config, clock: Clock, metrics: Metrics, events: Callable[[dict[str, object]], None]
) -> Engine:
    probes = {spec.name: build_probe(spec, clock, config.commands.systemctl) for spec in config.checks}
    return Engine(config, probes, SystemActions(config.commands), clock, metrics, events)


def _watchdog_loop(notifier: Notifier, heartbeat: Heartbeat, stop: threading.Event) -> None:
    interval = notifier.watchdog_interval or 0.0
    while not stop.wait(interval):
        if heartbeat.alive():
            notifier.watchdog()
        else:
            log.error("check loop stuck past its deadline: not pinging the systemd watchdog")


def run(
    config: Config,
    *,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
    stop: threading.Event | None = None,
) -> int:
    clock = clock or SystemClock()
    notifier = notifier or Notifier()
    stop = stop or threading.Event()
    for directory in (config.state_dir, config.log_dir):
        Path(directory).mkdir(parents=True, exist_ok=True)
    setup_daemon_logging(config)
    events = InterventionLog(
        Path(config.log_dir) / INTERVENTIONS_LOG, config.log_max_bytes, config.log_backups
    )
    metrics = Metrics()
    try:
        port = metrics.serve(config.metrics_address, config.metrics_port)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d: %s", config.metrics_address, config.metrics_port, exc)
        return 1
    engine = build_engine(config, clock, metrics, events)
    heartbeat = Heartbeat(clock)
    heartbeat.promise(stall_limit(config))
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    if notifier.watchdog_interval:
        threading.Thread(
            target=_watchdog_loop, args=(notifier, heartbeat, stop), name="watchdog", daemon=True
        ).start()
    log.info(
        "qosd started: %d checks, %d targets, metrics on %s:%d",
        len(config.checks),
        len(config.targets),
        config.metrics_address,
        port,
    )
    notifier.ready(f"watching {len(config.checks)} checks, metrics on port {port}")
    try:
        _loop(config, engine, heartbeat, notifier, stop)
    finally:
        notifier.stopping()
        metrics.shutdown()
        engine.close()
        events.close()
        log.info("qosd stopped")
    return 0


def _loop(
    config: Config, engine: Engine, heartbeat: Heartbeat, notifier: Notifier, stop: threading.Event
) -> None:
    limit = stall_limit(config)
    last_status = ""
    while not stop.is_set():
        heartbeat.promise(limit)
        report = engine.tick()
        if not report.results:
            stop.wait(engine.seconds_until_due())
            continue
        status = engine.status()
        try:
            state.write_json(config.state_dir / state.STATUS_FILE, status)
        except OSError as exc:
            log.error("cannot write %s: %s", state.STATUS_FILE, exc)
        summary = _summary(status)
        if summary != last_status:
            notifier.status(summary)
            last_status = summary
        stop.wait(engine.seconds_until_due())


def _summary(status: dict[str, object]) -> str:
    checks = status["checks"]
    assert isinstance(checks, dict)  # noqa: S101 - built by Engine.status
    failing = sorted(name for name, item in checks.items() if item["ok"] is False)
    parts = [
        "paused" if status["paused"] else "active",
        f"failing: {', '.join(failing)}" if failing else "all checks ok",
    ]
    if status["escalated"]:
        parts.append(f"escalated: {', '.join(status['escalated'])}")  # type: ignore[arg-type]
    return "; ".join(parts)
