"""Hosts of the qos_daemon scenario (molecule.yml), reached over SSH with the lab's key.

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

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
DB_ADDRESS = "10.92.3.235"
APP_ADDRESS = "10.92.3.236"
PROXY_ADDRESS = "10.92.3.237"
# The daemon's hosts: what each is, by address.
DAEMON_HOSTS = {"app": APP_ADDRESS, "proxy": PROXY_ADDRESS}

_SSH_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
             "-o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPersist=30s "
             "-o ControlPath=/tmp/molecule-qos-testinfra-%C")


def _lab_host(address: str) -> testinfra.host.Host:
    creds = json.loads((PROJECT / ".lab" / "credentials.json").read_text())
    return testinfra.get_host(f"ssh://root@{address}", ssh_identity_file=creds["ssh_private_key"],
                              ssh_extra_args=_SSH_ARGS)


@pytest.fixture(scope="session", params=sorted(DAEMON_HOSTS), ids=sorted(DAEMON_HOSTS))
def role(request: pytest.FixtureRequest) -> str:
    """What the container is in the service: `app` or `proxy`."""
    return request.param


@pytest.fixture(scope="session")
def address(role: str) -> str:
    return DAEMON_HOSTS[role]


@pytest.fixture(scope="session")
def host(address: str) -> testinfra.host.Host:
    """Each container the daemon runs on in turn (mol-qos-app, mol-qos-proxy)."""
    return _lab_host(address)


@pytest.fixture(scope="session")
def app() -> testinfra.host.Host:
    return _lab_host(APP_ADDRESS)


@pytest.fixture(scope="session")
def proxy() -> testinfra.host.Host:
    return _lab_host(PROXY_ADDRESS)
