"""The check cycle on a fake clock with fake probes and actions: no sleeping, no systemd."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from qosd import state
from qosd.actions import ActionResult
from qosd.clock import FakeClock
from qosd.config import Config, Target, parse
from qosd.engine import Engine
from qosd.metrics import Metrics
from qosd.probes import ProbeResult


class FakeProbe:
    def __init__(self) -> None:
        self.result = ProbeResult.passed("fine")
        self.calls = 0
        self.acknowledged = 0

    def fail(self, symptom: str = "timeout") -> None:
        self.result = ProbeResult.failed(symptom, f"fake {symptom}")

    def heal(self) -> None:
        self.result = ProbeResult.passed("fine")

    def __call__(self) -> ProbeResult:
        self.calls += 1
        return self.result

    def acknowledge(self) -> None:
        self.acknowledged += 1


class FakeActions:
    def __init__(self) -> None:
        self.performed: list[str] = []
        self.outcome = ActionResult("ok", "done")

    def perform(self, target: Target) -> ActionResult:
        self.performed.append(target.name)
        return self.outcome


class Harness:
    """An engine on a fake clock; `step()` advances to the next due probe and runs a cycle."""

    def __init__(self, tmp_path: Path, **overrides: object) -> None:
        self.clock = FakeClock()
        self.actions = FakeActions()
        self.events: list[dict[str, object]] = []
        self.config = make_config(tmp_path, **overrides)
        self.probes = {spec.name: FakeProbe() for spec in self.config.checks}
        self.metrics = Metrics()
        self.engine = self.new_engine()

    def new_engine(self) -> Engine:
        return Engine(self.config, self.probes, self.actions, self.clock, self.metrics, self.events.append)

    def step(self) -> None:
        self.clock.advance(self.engine.seconds_until_due())
        self.engine.tick()

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.step()

    def run_for(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() + self.engine.seconds_until_due() <= end:
            self.step()

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def make_config(tmp_path: Path, **overrides: object) -> Config:
    """app (http, depends on db) and db (tcp); both 2 s apart; app restarts the app unit."""
    data: dict[str, object] = {
        "state_dir": str(tmp_path / "state"),
        "log_dir": str(tmp_path / "log"),
        "defaults": {"interval": 2, "timeout": 2, "threshold": 3, "grace": 10},
        "protection": {
            "max_interventions": 3,
            "window": 600,
            "backoff_initial": 30,
            "backoff_factor": 2,
            "backoff_max": 300,
        },
        "targets": {
            "app": {"action": "restart", "unit": "scheduler.service"},
            "nginx": {"action": "reload_nginx"},
        },
        "checks": [
            {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 5432},
            {
                "name": "app",
                "type": "http",
                "url": "http://127.0.0.1:8000/health/",
                "depends_on": ["db"],
                "remedy": "app",
                "remedies": {"status_403": "nginx"},
            },
        ],
    }
    data.update(overrides)
    return parse(data)


@pytest.fixture
def lab(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_threshold_minus_one_failures_do_not_intervene(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.steps(2)
    assert lab.actions.performed == []
    assert lab.metric("qosd_check_consecutive_failures", check="app") == 2
    assert lab.metric("qosd_check_success", check="app", type="http") == 0


def test_threshold_failures_restart_the_app(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.steps(3)
    assert lab.actions.performed == ["app"]
    assert lab.metric("qosd_interventions_total", target="app", kind="restart", result="ok") == 1
    assert lab.events[-1]["event"] == "intervention"
    assert lab.events[-1]["symptom"] == "timeout"


def test_a_success_resets_the_count(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.steps(2)
    lab.probes["app"].heal()
    lab.step()
    lab.probes["app"].fail()
    lab.steps(2)
    assert lab.actions.performed == []


def test_hung_app_is_restarted_within_the_default_timing(tmp_path: Path) -> None:
    """Defaults (2 s interval, threshold 3): a probe failing since t=0 leads to a restart by t=6."""
    lab = Harness(tmp_path, defaults={})
    lab.step()  # first cycle, all healthy
    fault_at = lab.clock.monotonic()
    lab.probes["app"].fail("timeout")
    while not lab.actions.performed:
        lab.step()
    assert lab.clock.monotonic() - fault_at <= 3 * lab.config.check("app").interval


def test_symptom_override_reloads_nginx_on_403(lab: Harness) -> None:
    lab.probes["app"].fail("status_403")
    lab.steps(3)
    assert lab.actions.performed == ["nginx"]
    assert lab.metric("qosd_interventions_total", target="nginx", kind="reload_nginx", result="ok") == 1


def test_rejected_nginx_reload_counts_towards_escalation(lab: Harness) -> None:
    lab.actions.outcome = ActionResult("rejected", "nginx -t failed")
    lab.probes["app"].fail("status_403")
    lab.run_for(1000)
    assert lab.actions.performed == ["nginx"] * 3
    assert lab.metric("qosd_interventions_total", target="nginx", kind="reload_nginx", result="rejected") == 3
    assert lab.metric("qosd_escalated", target="nginx") == 1


def test_grace_period_suppresses_counting_after_an_intervention(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.steps(3)
    calls = lab.probes["app"].calls
    lab.run_for(9.5)  # grace is 10 s: the probes in it still run and fail, none counts
    assert lab.probes["app"].calls - calls == 4
    assert lab.actions.performed == ["app"]
    assert lab.metric("qosd_check_consecutive_failures", check="app") == 0
    assert lab.probes["app"].acknowledged == 1


def test_counting_resumes_when_the_grace_period_ends(tmp_path: Path) -> None:
    lab = Harness(tmp_path, protection={"backoff_initial": 0})
    lab.probes["app"].fail()
    lab.steps(3)
    restarted_at = lab.clock.monotonic()
    while len(lab.actions.performed) < 2:
        lab.step()
    # grace 10 s, then 3 counted failures 2 s apart (the first at the end of the grace)
    assert lab.clock.monotonic() - restarted_at == pytest.approx(10 + 2 * 2)


def test_backoff_doubles_between_interventions(lab: Harness) -> None:
    times: list[float] = []
    lab.probes["app"].fail()
    for _ in range(200):
        before = len(lab.actions.performed)
        lab.step()
        if len(lab.actions.performed) > before:
            times.append(lab.clock.monotonic())
        if len(times) == 3:
            break
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # backoff 30 s then 60 s dominates grace (10 s) + threshold (3 x 2 s)
    assert 30 <= gaps[0] < 34
    assert 60 <= gaps[1] < 64
    assert lab.metric("qosd_interventions_suppressed_total", check="app", reason="backoff") > 0


def test_escalation_after_max_interventions_and_no_further_action(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.run_for(3600)  # an hour of a permanently broken app
    assert lab.actions.performed == ["app", "app", "app"]
    assert lab.metric("qosd_escalated", target="app") == 1
    escalations = [event for event in lab.events if event["event"] == "escalation"]
    assert len(escalations) == 1
    assert escalations[0]["target"] == "app"


def test_window_expiry_forgets_old_interventions(tmp_path: Path) -> None:
    lab = Harness(tmp_path, protection={"max_interventions": 2, "window": 100, "backoff_initial": 0})
    for _ in range(3):  # one fault every 150 s: never two within the 100 s window
        lab.probes["app"].fail()
        while lab.actions.performed.count("app") < _ + 1:
            lab.step()
        lab.probes["app"].heal()
        lab.run_for(150)
    assert lab.actions.performed == ["app"] * 3
    assert lab.metric("qosd_escalated", target="app") == 0


def test_escalation_clears_once_healthy_and_the_window_is_clean(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.run_for(500)
    assert lab.metric("qosd_escalated", target="app") == 1
    lab.probes["app"].heal()
    lab.run_for(50)
    assert lab.metric("qosd_escalated", target="app") == 1  # interventions still in the window
    lab.run_for(600)
    assert lab.metric("qosd_escalated", target="app") == 0
    lab.probes["app"].fail()
    lab.steps(3)
    assert lab.actions.performed == ["app"] * 4


def test_escalation_survives_a_daemon_restart(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.run_for(500)
    restarted = lab.new_engine()
    lab.engine = restarted
    lab.run_for(500)
    assert lab.actions.performed == ["app"] * 3
    saved = json.loads((lab.config.state_dir / state.TARGETS_FILE).read_text())
    assert saved["app"]["escalated"] is True


def test_reset_request_puts_an_escalated_target_back_under_care(lab: Harness) -> None:
    lab.probes["app"].fail()
    lab.run_for(500)
    state.request_reset(lab.config.state_dir, ["app"])
    lab.steps(3)
    assert lab.actions.performed == ["app"] * 4
    assert lab.metric("qosd_escalated", target="app") == 0


def test_dependency_down_means_no_app_restart(lab: Harness) -> None:
    lab.probes["db"].fail("refused")
    lab.probes["app"].fail("status_502")
    lab.run_for(120)
    assert lab.actions.performed == []
    assert lab.metric("qosd_interventions_suppressed_total", check="app", reason="dependency") > 0


def test_dependency_is_probed_again_before_acting(tmp_path: Path) -> None:
    """db is probed every 60 s: it went down after its last probe; the app must not be restarted."""
    lab = Harness(
        tmp_path,
        checks=[
            {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 5432, "interval": 60},
            {
                "name": "app",
                "type": "http",
                "url": "http://127.0.0.1:8000/",
                "depends_on": ["db"],
                "remedy": "app",
            },
        ],
    )
    lab.step()
    lab.probes["db"].fail("refused")
    lab.probes["app"].fail("status_502")
    lab.steps(3)
    assert lab.actions.performed == []
    assert lab.metric("qosd_check_success", check="db", type="tcp") == 0


def test_dependency_healthy_app_restarted(lab: Harness) -> None:
    lab.probes["app"].fail("refused")
    lab.steps(3)
    assert lab.actions.performed == ["app"]


def test_pause_stops_interventions_and_expires_by_itself(lab: Harness) -> None:
    wall = lab.clock.wall()
    state.write_pause(lab.config.state_dir, state.Pause(until=wall + 60, since=wall, reason="deploy app1"))
    lab.probes["app"].fail()
    lab.run_for(58)
    assert lab.actions.performed == []
    assert lab.metric("qosd_paused") == 1
    assert lab.metric("qosd_interventions_suppressed_total", check="app", reason="paused") > 0
    lab.run_for(10)  # the pause has expired: counting starts afresh, then the restart
    assert lab.metric("qosd_paused") == 0
    assert not (lab.config.state_dir / state.PAUSE_FILE).exists()
    assert lab.actions.performed == ["app"]


def test_failures_during_a_pause_do_not_count_after_it(lab: Harness) -> None:
    wall = lab.clock.wall()
    state.write_pause(lab.config.state_dir, state.Pause(until=wall + 20, since=wall, reason="deploy"))
    lab.probes["app"].fail()
    lab.run_for(19)
    state.clear_pause(lab.config.state_dir)  # `qosd resume`
    lab.step()
    assert lab.metric("qosd_paused") == 0
    assert lab.actions.performed == []
    lab.steps(3)
    assert lab.actions.performed == ["app"]


def test_pause_written_during_a_cycle_wins(lab: Harness) -> None:
    class PausingProbe(FakeProbe):
        """Simulates `qosd pause` landing while the probes of a cycle run."""

        def __call__(self) -> ProbeResult:
            if self.calls == 2:
                wall = lab.clock.wall()
                state.write_pause(lab.config.state_dir, state.Pause(until=wall + 60, since=wall, reason="x"))
            return super().__call__()

    lab.probes["app"] = PausingProbe()
    lab.engine = lab.new_engine()
    lab.probes["app"].fail()
    lab.steps(3)
    assert lab.actions.performed == []


def test_check_without_remedy_reports_only(tmp_path: Path) -> None:
    lab = Harness(tmp_path, checks=[{"name": "site", "type": "http", "url": "http://127.0.0.1/"}])
    lab.probes["site"].fail("status_500")
    lab.run_for(60)
    assert lab.actions.performed == []
    assert lab.metric("qosd_check_consecutive_failures", check="site") >= 3


def test_a_crashing_probe_is_a_failure_not_a_dead_loop(lab: Harness) -> None:
    class Broken(FakeProbe):
        def __call__(self) -> ProbeResult:
            raise RuntimeError("bug")

    lab.probes["app"] = Broken()
    lab.engine = lab.new_engine()
    lab.steps(3)
    assert lab.actions.performed == ["app"]


def test_probes_that_time_out_do_not_stretch_the_cycle(tmp_path: Path) -> None:
    """A hung app makes every probe last its whole timeout (2 s): still restarted within 8 s."""
    lab = Harness(tmp_path, defaults={})

    class HangingProbe(FakeProbe):
        def __call__(self) -> ProbeResult:
            if not self.result.ok:
                lab.clock.advance(lab.config.check("app").timeout)
            return super().__call__()

    lab.probes["app"] = HangingProbe()
    lab.engine = lab.new_engine()
    lab.step()
    lab.clock.advance(1.9)  # the hang starts just before the next probe
    fault_at = lab.clock.monotonic()
    lab.probes["app"].fail("timeout")
    while not lab.actions.performed:
        lab.step()
    assert lab.clock.monotonic() - fault_at <= 8
