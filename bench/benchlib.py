"""Shared by the bench scripts: import paths and the JSON-lines output format."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (str(REPO), str(REPO / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    """One figure, one JSON object per line."""
    print(json.dumps({"bench": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def timed_site(*args: str, playbook: str = "site.yml") -> tuple[float, dict]:
    """Wall time and JSON result of `ansible-playbook <playbook> <args>` on the lab inventory."""
    import time  # noqa: PLC0415 - keeps the module's import-time path setup first

    from labtools import failures, run_playbook  # noqa: PLC0415 - needs the path set up above

    started = time.monotonic()
    code, result, stderr = run_playbook(playbook, None, *args)
    elapsed = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{playbook} {' '.join(args)} failed (exit {code}): {failures(result, stderr)}")
    return elapsed, result


def destroy_lab_inventory_containers() -> None:
    """Removes the five containers of inventories/lab, so the next site.yml creates them."""
    from labtools import LAB_HOSTS, api_for, destroy_ct, load_credentials  # noqa: PLC0415

    pve = api_for(load_credentials())
    for resource in pve.cluster.resources.get(type="vm"):
        if int(resource["vmid"]) in LAB_HOSTS.values():
            destroy_ct(pve, resource["node"], int(resource["vmid"]))
