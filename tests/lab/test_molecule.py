"""Every molecule scenario passes `molecule test` on the lab (create, converge,
idempotence, verify, destroy), through our own pve_lxc module.

Scenarios use disjoint VMIDs (200-249) and addresses, so they run side by side: the
module starts them all at once, at most MOLECULE_PARALLEL (default 3) at a time, longest
first, and each test waits for its own. Most of a scenario's time is spent waiting on
containers (boot, apt, systemd), not on the controller's CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from labtools import REPO

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
# Started first so the longest one does not end up running alone at the end.
LONGEST_FIRST = ("app", "qos_daemon", "monitoring", "exporters", "proxy", "postgresql")
TIMEOUT = 1800


def molecule_test(scenario: str) -> tuple[int, str]:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1",
               PY_COLORS="0", ANSIBLE_FORCE_COLOR="0")
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own per scenario
    try:
        proc = subprocess.run([str(bindir / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        return -1, f"timed out after {TIMEOUT} s: {str(exc.stdout or '')[-4000:]}"
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runs():
    rank = {scenario: place for place, scenario in enumerate(LONGEST_FIRST)}
    order = sorted(SCENARIOS, key=lambda scenario: rank.get(scenario, len(rank)))
    with ThreadPoolExecutor(max_workers=int(os.environ.get("MOLECULE_PARALLEL", "3"))) as pool:
        futures: dict[str, Future] = {scenario: pool.submit(molecule_test, scenario) for scenario in order}
        yield futures


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario_passes(scenario, runs):
    code, output = runs[scenario].result()
    assert code == 0, output[-6000:]
