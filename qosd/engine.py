"""The check cycle: probes due checks, counts failures, decides and runs interventions.

Rules, in the order they apply to a check that reached its threshold:

1. its symptom maps to a target (the check's `remedy`, or a `remedies` override); none: report only;
2. paused (`qosd pause`): no intervention;
3. a dependency (`depends_on`, transitively) fails - probed again right now if it was not
   probed in this cycle: no intervention, the dependency is the thing to fix;
4. the target's guard (backoff, cap per window, escalation) decides.

After an intervention on a target, every check that can act on it gets its grace period:
its probes still run and are exported, but failures do not count until the grace ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from qosd import state
from qosd.actions import ActionResult, Actions
from qosd.clock import Clock
from qosd.config import CheckSpec, Config, dependency_order
from qosd.guard import Decision, TargetGuard
from qosd.metrics import Metrics
from qosd.probes import Probe, ProbeResult

log = logging.getLogger("qosd")
EventSink = Callable[[dict[str, object]], None]


@dataclass
class CheckState:
    spec: CheckSpec
    probe: Probe
    next_due: float
    consecutive: int = 0
    last: ProbeResult | None = None
    last_at: float | None = None
    grace_until: float = float("-inf")
    suppressed: str | None = None


@dataclass
class CycleReport:
    results: list[tuple[CheckSpec, ProbeResult]] = field(default_factory=list)
    interventions: list[tuple[str, ActionResult]] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        config: Config,
        probes: Mapping[str, Probe],
        actions: Actions,
        clock: Clock,
        metrics: Metrics | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.config = config
        self.actions = actions
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.events = events or (lambda event: None)
        now = clock.monotonic()
        self.order = [
            CheckState(spec, probes[spec.name], next_due=now) for spec in dependency_order(config.checks)
        ]
        self.checks = {item.spec.name: item for item in self.order}
        self.guards = {name: TargetGuard(config.protection) for name in config.targets}
        self.paused = False
        self._cycle_started = now
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.order)), thread_name_prefix="probe")
        self._load_guards()
        for name in self.guards:
            self.metrics.escalated.labels(name).set(int(self.guards[name].escalated))

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the cycle ---------------------------------------------------------------------------

    def tick(self) -> CycleReport:
        """Probes every due check, then intervenes where the rules allow."""
        report = CycleReport()
        self._cycle_started = self.clock.monotonic()
        self._apply_reset_request()
        self._refresh_pause()
        due = [item for item in self.order if item.next_due <= self._cycle_started]
        for item, result in zip(due, self._probe_all(due), strict=True):
            self._record(item, result, started=self._cycle_started)
            report.results.append((item.spec, result))
        for item in due:
            if item.consecutive >= item.spec.threshold and item.last is not None:
                outcome = self._consider(item)
                if outcome is not None:
                    report.interventions.append(outcome)
        self._recover_escalations()
        self.metrics.last_cycle.set(self.clock.wall())
        return report

    def seconds_until_due(self) -> float:
        return max(0.0, min(item.next_due for item in self.order) - self.clock.monotonic())

    def probe_once(self) -> list[tuple[CheckSpec, ProbeResult]]:
        """Every check once, no intervention: `qosd test`."""
        return list(zip([item.spec for item in self.order], self._probe_all(self.order), strict=True))

    def _probe_all(self, items: list[CheckState]) -> list[ProbeResult]:
        futures = [self._pool.submit(_safe_probe, item.probe) for item in items]
        return [future.result() for future in futures]

    def _record(self, item: CheckState, result: ProbeResult, started: float) -> None:
        """Counts a result; the next probe is due `interval` after this one started, so a probe
        that times out does not stretch the cycle (a hung app is seen after ~threshold x interval)."""
        now = self.clock.monotonic()
        spec = item.spec
        previous = item.last
        item.last, item.last_at = result, now
        item.next_due = started + spec.interval
        if result.ok:
            if item.consecutive:
                log.info("check %s recovered: %s", spec.name, result.detail)
            item.consecutive, item.suppressed = 0, None
        elif now < item.grace_until:
            log.info("check %s failed during its grace period (not counted): %s", spec.name, result.detail)
        else:
            item.consecutive += 1
            # Up to the threshold every failure is news; after it, only a change of symptom is.
            news = item.consecutive <= spec.threshold or (
                previous is not None and previous.symptom != result.symptom
            )
            log.log(
                logging.WARNING if news else logging.DEBUG,
                "check %s failed (%d/%d): %s",
                spec.name,
                item.consecutive,
                spec.threshold,
                result.detail,
            )
        self.metrics.check_success.labels(spec.name, spec.type).set(int(result.ok))
        self.metrics.check_latency.labels(spec.name, spec.type).set(result.latency)
        self.metrics.consecutive.labels(spec.name).set(item.consecutive)

    # -- interventions ------------------------------------------------------------------------

    def _consider(self, item: CheckState) -> tuple[str, ActionResult] | None:
        spec, result = item.spec, item.last
        assert result is not None  # noqa: S101 - callers only pass probed checks
        target_name = spec.target_for(result.symptom or "")
        if target_name is None:
            return None
        if self.paused or self._pause_appeared():
            self._suppress(item, "paused", f"{spec.name} needs {target_name} but qosd is paused")
            return None
        failing = self._failing_dependency(spec, set())
        if failing:
            self._suppress(
                item,
                "dependency",
                f"{spec.name} fails but its dependency {failing} fails too: not touching {target_name}",
            )
            return None
        guard = self.guards[target_name]
        now = self.clock.monotonic()
        decision = guard.decide(now)
        if decision is Decision.ALLOW:
            return target_name, self._intervene(item, target_name)
        if decision is Decision.ESCALATE:
            self._escalate(item, target_name)
        reason = "escalated" if decision is not Decision.BACKOFF else "backoff"
        wait = f" for {guard.next_allowed(now) - now:.0f} s" if decision is Decision.BACKOFF else ""
        self._suppress(item, reason, f"{spec.name} needs {target_name}: holding off ({reason}{wait})")
        return None

    def _failing_dependency(self, spec: CheckSpec, seen: set[str]) -> str | None:
        for name in spec.depends_on:
            if name in seen:
                continue
            seen.add(name)
            dep = self.checks[name]
            if dep.last_at is None or dep.last_at < self._cycle_started:
                started = self.clock.monotonic()
                self._record(dep, _safe_probe(dep.probe), started)  # confirm before acting on the dependent
            if dep.last is not None and not dep.last.ok:
                return name
            deeper = self._failing_dependency(dep.spec, seen)
            if deeper:
                return deeper
        return None

    def _intervene(self, item: CheckState, target_name: str) -> ActionResult:
        target = self.config.targets[target_name]
        symptom = item.last.symptom if item.last else None
        log.warning(
            "intervening: %s %s because %s failed %d times (%s)",
            target.action,
            target_name,
            item.spec.name,
            item.consecutive,
            item.last.detail if item.last else "",
        )
        outcome = self.actions.perform(target)
        now = self.clock.monotonic()
        guard = self.guards[target_name]
        guard.record(now)
        self.metrics.interventions.labels(target_name, target.action, outcome.result).inc()
        level = logging.WARNING if outcome.result == "ok" else logging.ERROR
        log.log(
            level,
            "intervention %s on %s: %s (%s)",
            target.action,
            target_name,
            outcome.result,
            outcome.detail,
        )
        self.events(
            {
                "event": "intervention",
                "target": target_name,
                "kind": target.action,
                "result": outcome.result,
                "detail": outcome.detail,
                "check": item.spec.name,
                "symptom": symptom,
                "failures": item.consecutive,
                "count_in_window": len(guard.history),
            }
        )
        self._start_grace(target_name, acknowledge=outcome.result == "ok")
        self._save_guards()
        return outcome

    def _start_grace(self, target_name: str, *, acknowledge: bool) -> None:
        now = self.clock.monotonic()
        for other in self.order:
            if target_name in other.spec.targets():
                other.grace_until = now + other.spec.grace
                other.consecutive, other.suppressed = 0, None
                self.metrics.consecutive.labels(other.spec.name).set(0)
                if acknowledge:
                    other.probe.acknowledge()

    def _escalate(self, item: CheckState, target_name: str) -> None:
        guard = self.guards[target_name]
        log.error(
            "ESCALATED %s: %d interventions within %g s did not fix %s (%s); no more interventions, "
            "it needs a human (then `qosd reset %s`)",
            target_name,
            len(guard.history),
            self.config.protection.window,
            item.spec.name,
            item.last.detail if item.last else "",
            target_name,
        )
        self.metrics.escalated.labels(target_name).set(1)
        self.events(
            {
                "event": "escalation",
                "target": target_name,
                "check": item.spec.name,
                "detail": item.last.detail if item.last else "",
                "interventions_in_window": len(guard.history),
            }
        )
        self._save_guards()

    def _suppress(self, item: CheckState, reason: str, message: str) -> None:
        self.metrics.suppressed.labels(item.spec.name, reason).inc()
        if item.suppressed != reason:
            log.warning("%s", message)
            self.events({"event": "suppressed", "check": item.spec.name, "reason": reason, "detail": message})
        item.suppressed = reason

    def _recover_escalations(self) -> None:
        now = self.clock.monotonic()
        for name, guard in self.guards.items():
            if not guard.escalated:
                continue
            healthy = all(
                item.last is not None and item.last.ok for item in self.order if name in item.spec.targets()
            )
            if guard.try_recover(now, healthy=healthy):
                log.warning("%s is healthy again and its window is clean: back under automatic care", name)
                self.events({"event": "recovered", "target": name})
                self.metrics.escalated.labels(name).set(0)
                self._save_guards()

    # -- pause, reset, persistence ------------------------------------------------------------

    def _refresh_pause(self) -> None:
        paused = self._read_pause_state()
        if self.paused and not paused:
            # Failures seen while paused (a deploy restarting the app) do not count afterwards.
            for item in self.order:
                item.consecutive, item.suppressed = 0, None
                self.metrics.consecutive.labels(item.spec.name).set(0)
        self.paused = paused
        self.metrics.paused.set(int(paused))

    def _pause_appeared(self) -> bool:
        """Checked again right before acting: a pause written during this cycle wins."""
        if self._read_pause_state():
            self.paused = True
            self.metrics.paused.set(1)
        return self.paused

    def _read_pause_state(self) -> bool:
        try:
            pause = state.read_pause(self.state_dir)
        except state.StateFileError as exc:
            log.error("ignoring an unreadable pause file: %s", exc)
            return False
        if pause is None:
            if self.paused:
                log.warning("resumed: interventions enabled")
            return False
        if pause.remaining(self.clock.wall()) <= 0:
            state.clear_pause(self.state_dir)
            log.warning("pause expired (%s): interventions enabled", pause.reason or "no reason given")
            self.events({"event": "pause_expired", "reason": pause.reason})
            return False
        if not self.paused:
            log.warning(
                "paused for %.0f s more (%s)", pause.remaining(self.clock.wall()), pause.reason or "no reason"
            )
        return True

    def _apply_reset_request(self) -> None:
        targets = state.take_reset_request(self.state_dir)
        if targets is None:
            return
        for name in targets or list(self.guards):
            guard = self.guards.get(name)
            if guard is None:
                log.error("reset requested for unknown target %r", name)
                continue
            guard.reset()
            self.metrics.escalated.labels(name).set(0)
            log.warning("reset by an operator: %s is back under automatic care", name)
            self.events({"event": "reset", "target": name})
        self._save_guards()

    def _save_guards(self) -> None:
        offset = self.clock.wall() - self.clock.monotonic()
        data = {
            name: {"escalated": guard.escalated, "interventions": [t + offset for t in guard.history]}
            for name, guard in self.guards.items()
        }
        try:
            state.write_json(self.state_dir / state.TARGETS_FILE, data)
        except OSError as exc:
            log.error("cannot save the loop-protection state: %s", exc)

    def _load_guards(self) -> None:
        try:
            data = state.read_json(self.state_dir / state.TARGETS_FILE) or {}
        except state.StateFileError as exc:
            log.error("ignoring unreadable loop-protection state: %s", exc)
            return
        offset = self.clock.wall() - self.clock.monotonic()
        for name, saved in data.items() if isinstance(data, dict) else []:
            guard = self.guards.get(name)
            if guard is None or not isinstance(saved, dict):
                continue
            guard.escalated = bool(saved.get("escalated", False))
            guard.history.extend(sorted(float(t) - offset for t in saved.get("interventions", [])))

    def status(self) -> dict[str, object]:
        """What `qosd status` shows: written to status.json after each cycle by the daemon."""
        return {
            "at": self.clock.wall(),
            "paused": self.paused,
            "escalated": sorted(name for name, guard in self.guards.items() if guard.escalated),
            "checks": {item.spec.name: _check_status(item) for item in self.order},
        }


def _check_status(item: CheckState) -> dict[str, object]:
    return {
        "ok": item.last.ok if item.last else None,
        "detail": item.last.detail if item.last else "not probed yet",
        "consecutive_failures": item.consecutive,
        "threshold": item.spec.threshold,
    }


def _safe_probe(probe: Probe) -> ProbeResult:
    """A bug in a probe is a failed probe, not a dead daemon."""
    try:
        return probe()
    except Exception as exc:
        log.exception("probe crashed")
        return ProbeResult.failed("error", f"probe crashed: {type(exc).__name__}: {exc}")


def failing(results: Iterable[tuple[CheckSpec, ProbeResult]]) -> list[str]:
    return [spec.name for spec, result in results if not result.ok]
