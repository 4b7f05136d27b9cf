"""Every molecule scenario passes `molecule test` on the lab (create, converge,
idempotence, verify, destroy), through our own pve_lxc module.

The runs themselves live in tests/molecule_runs.py: they start in the background before
this module (see conftest.py), and each test here waits for its scenario's outcome.
"""

from __future__ import annotations

import molecule_runs
import pytest


@pytest.mark.slow
@pytest.mark.parametrize("scenario", molecule_runs.SCENARIOS)
def test_molecule_scenario_passes(scenario):
    code, output = molecule_runs.start()[scenario].result()
    assert code == 0, output[-6000:]
