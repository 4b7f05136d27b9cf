"""`molecule test` of every scenario, run in the background of the lab session.

tests/lab/test_molecule.py asserts the outcome; tests/lab/conftest.py starts the runs
early, when the first module of MOLECULE_ALONGSIDE begins, so the scenarios (mostly
waiting on containers: boot, apt, systemd) overlap with tests that mostly wait too
(API tasks, alerts firing, the QoS daemon's detection windows, SSH). They never overlap with the
modules that restart the API server, delete the bridge or inject lab-wide faults, nor
with the load and SLA tests: those run before. The runs are niced, so the tests they
overlap with keep the controller's CPU first.

Scenarios use disjoint VMIDs (200-249) and addresses, so they run side by side, at most
MOLECULE_PARALLEL (default 3) at a time, longest first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from labtools import REPO

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
# Started first so the longest one does not end up running alone at the end.
LONGEST_FIRST = ("app", "qos_daemon", "monitoring", "exporters", "proxy", "postgresql")
TIMEOUT = 1800
# Modules whose tests the molecule runs may overlap with (see the module docstring).
# Their lab faults are scoped to their own VMIDs, so molecule's tasks never take one.
# test_pve_lxc_module.py is not among them: its lock tests time a 4 s task against the
# module's lock wait, which does not hold on a machine busy with molecule.
MOLECULE_ALONGSIDE = ("test_pve_lxc_info_module", "test_pve_lxc_snapshot_module",
                      "test_monitoring", "test_qos_faults", "test_site_provision", "test_validate_stage")

_lock = threading.Lock()
_runs: dict[str, Future] = {}
_pool: ThreadPoolExecutor | None = None
_procs: dict[str, subprocess.Popen] = {}


def molecule_test(scenario: str) -> tuple[int, str]:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1",
               PY_COLORS="0", ANSIBLE_FORCE_COLOR="0")
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own per scenario
    proc = subprocess.Popen(["nice", "-n", "10", str(bindir / "molecule"), "test", "-s", scenario],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    with _lock:
        _procs[scenario] = proc
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return -1, f"timed out after {TIMEOUT} s: {output[-4000:]}"
    finally:
        with _lock:
            _procs.pop(scenario, None)
    return proc.returncode, output


def start() -> dict[str, Future]:
    """Start every scenario once (later calls return the same runs)."""
    global _pool  # noqa: PLW0603 - one pool per test session
    with _lock:
        if _pool is None:
            rank = {scenario: place for place, scenario in enumerate(LONGEST_FIRST)}
            order = sorted(SCENARIOS, key=lambda scenario: rank.get(scenario, len(rank)))
            _pool = ThreadPoolExecutor(max_workers=int(os.environ.get("MOLECULE_PARALLEL", "3")),
                                       thread_name_prefix="molecule")
            _runs.update({scenario: _pool.submit(molecule_test, scenario) for scenario in order})
        return _runs


def stop() -> None:
    """End of session: stop the runs still going (only the process groups started here)."""
    with _lock:
        pool, procs = _pool, list(_procs.values())
    if pool is None:
        return
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
