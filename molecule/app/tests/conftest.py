"""Hosts and facts of the app scenario (molecule.yml), reached over SSH with the lab's key.

testinfra's ansible backend cannot render the shared molecule inventory's templated key
path ("{{ _lab.ssh_private_key }}"), so these fixtures build plain SSH hosts from
.lab/credentials.json, one multiplexed connection per container.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra
import yaml

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
SCENARIO = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])

DB_ADDRESS = "10.92.3.209"
APP_ADDRESSES = {"mol-app-1": "10.92.3.210", "mol-app-2": "10.92.3.211"}
PROXY_ADDRESS = "10.92.3.212"

_SSH_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
             "-o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPersist=30s "
             "-o ControlPath=/tmp/molecule-app-testinfra-%C")


def _lab_host(address: str) -> testinfra.host.Host:
    creds = json.loads((PROJECT / ".lab" / "credentials.json").read_text())
    return testinfra.get_host(f"ssh://root@{address}", ssh_identity_file=creds["ssh_private_key"],
                              ssh_extra_args=_SSH_ARGS)


def _app_group_vars() -> dict[str, object]:
    config = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    return config["provisioner"]["inventory"]["group_vars"]["app"]


def deployed_versions() -> list[str]:
    """Every version rolled out, oldest first: side_effect.yml records the converge's
    (app/VERSION) and its own two; before side_effect only app/VERSION is deployed."""
    record = EPHEMERAL / "deployed_versions.json"
    if record.is_file():
        return json.loads(record.read_text())
    return [(PROJECT / "app" / "VERSION").read_text().strip()]


KEEP_RELEASES = int(_app_group_vars()["app_keep_releases"])


@pytest.fixture(scope="session")
def versions() -> list[str]:
    return deployed_versions()


@pytest.fixture(scope="session", params=sorted(APP_ADDRESSES), ids=sorted(APP_ADDRESSES))
def app_address(request: pytest.FixtureRequest) -> str:
    """The address of each app container in turn."""
    return APP_ADDRESSES[request.param]


@pytest.fixture(scope="session")
def app(app_address: str) -> testinfra.host.Host:
    """Each app container in turn (mol-app-1, mol-app-2)."""
    return _lab_host(app_address)


@pytest.fixture(scope="session")
def db() -> testinfra.host.Host:
    return _lab_host(DB_ADDRESS)


@pytest.fixture(scope="session")
def proxy() -> testinfra.host.Host:
    return _lab_host(PROXY_ADDRESS)
