"""Hosts of the exporters scenario, reached over SSH with the lab's key.

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

MON_ADDRESS = "10.92.3.225"  # mol-exp-mon: monitoring group, alert sink
TARGET_ADDRESS = "10.92.3.226"  # mol-exp-target: proxy and db groups
OTHER_ADDRESS = "10.92.3.227"  # mol-exp-other: app group, not allowed to scrape
_SSH_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
             "-o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPersist=30s "
             "-o ControlPath=/tmp/molecule-testinfra-%C")


def _lab_host(address: str) -> testinfra.host.Host:
    creds = json.loads((Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".lab"
                        / "credentials.json").read_text())
    return testinfra.get_host(f"ssh://root@{address}", ssh_identity_file=creds["ssh_private_key"],
                              ssh_extra_args=_SSH_ARGS)


@pytest.fixture(scope="session")
def mon() -> testinfra.host.Host:
    """The monitoring host (mol-exp-mon): allowed to scrape, runs the alert sink."""
    return _lab_host(MON_ADDRESS)


@pytest.fixture(scope="session")
def target() -> testinfra.host.Host:
    """The proxy and database host (mol-exp-target): node, nginx and postgres exporters."""
    return _lab_host(TARGET_ADDRESS)


@pytest.fixture(scope="session")
def other() -> testinfra.host.Host:
    """An app container (mol-exp-other): runs a node exporter, may scrape nothing."""
    return _lab_host(OTHER_ADDRESS)
