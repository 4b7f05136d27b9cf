"""Hosts of the monitoring scenario, reached over SSH with the lab's key.

testinfra's ansible backend cannot render the shared molecule inventory's templated key
path, so these fixtures build plain SSH hosts from .lab/credentials.json (as the
postgresql scenario does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra

MON_ADDRESS = "10.92.3.215"
TARGET_ADDRESS = "10.92.3.216"
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
    """The monitoring host (mol-mon)."""
    return _lab_host(MON_ADDRESS)


@pytest.fixture(scope="session")
def target() -> testinfra.host.Host:
    """The proxy and app container (mol-mon-target)."""
    return _lab_host(TARGET_ADDRESS)
