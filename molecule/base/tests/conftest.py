"""The base scenario's container, reached over SSH with the lab's key.

testinfra's ansible backend cannot render the shared molecule inventory's templated key
path ("{{ _lab.ssh_private_key }}"), so the `host` fixture is a plain SSH host built from
.lab/credentials.json: the tests then pass whether or not an Ansible SSH master
connection happens to be open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra

ADDRESS = "10.92.3.203"
_SSH_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
             "-o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPersist=30s "
             "-o ControlPath=/tmp/molecule-testinfra-%C")


@pytest.fixture(scope="session")
def lab_key() -> str:
    creds = json.loads((Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".lab"
                        / "credentials.json").read_text())
    return creds["ssh_private_key"]


@pytest.fixture(scope="session")
def host(lab_key) -> testinfra.host.Host:
    return testinfra.get_host(f"ssh://root@{ADDRESS}", ssh_identity_file=lab_key, ssh_extra_args=_SSH_ARGS)
