"""Hosts of the postgresql scenario, reached over SSH with the lab's key.

testinfra's ansible backend cannot render the shared molecule inventory's templated key
path ("{{ _lab.ssh_private_key }}"), so these fixtures build plain SSH hosts from
.lab/credentials.json: the tests then pass whether or not an Ansible SSH master
connection happens to be open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra

DB_ADDRESS = "10.92.3.204"
CLIENT_ADDRESS = "10.92.3.205"
_SSH_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
             "-o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPersist=30s "
             "-o ControlPath=/tmp/molecule-testinfra-%C")


def _lab_host(address: str) -> testinfra.host.Host:
    creds = json.loads((Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".lab"
                        / "credentials.json").read_text())
    return testinfra.get_host(f"ssh://root@{address}", ssh_identity_file=creds["ssh_private_key"],
                              ssh_extra_args=_SSH_ARGS)


@pytest.fixture(scope="session")
def host() -> testinfra.host.Host:
    """The database container (mol-pg-db)."""
    return _lab_host(DB_ADDRESS)


@pytest.fixture(scope="session")
def client() -> testinfra.host.Host:
    """The container standing for an app host (mol-pg-client)."""
    return _lab_host(CLIENT_ADDRESS)
