"""`make lab` after a killed run: dead server, missing bridge, half-created and stray CTs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from labtools import REPO, create_ct, wait_ssh

from lab.cli import process_alive, server_healthy, server_pid
from lab.config import LabPaths
from lab.hostsetup import bridge_present


@pytest.mark.slow
def test_lab_up_recovers_from_a_killed_run(pve, creds, ids):
    paths = LabPaths.default()
    kept = ids.take()
    create_ct(pve, creds, kept, start=1)
    half = ids.take()
    paths.node_config_dir("pve1").joinpath(f"{half}.conf").write_text(
        "arch: amd64\nhostname: half\nlock: create\n")
    (paths.images / str(half) / f"subvol-{half}-disk-0.subvol" / "upper").mkdir(parents=True)
    stray = ids.take()
    (paths.lxcpath / str(stray)).mkdir(parents=True)

    old_pid = server_pid(paths)
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_alive(old_pid):
        assert time.monotonic() < deadline, f"server {old_pid} survived SIGKILL"
        time.sleep(0.05)
    subprocess.run(["ip", "link", "del", "vmbr0923"], check=True)

    up = subprocess.run([sys.executable, "-m", "lab", "up"], cwd=REPO, capture_output=True,
                        text=True, timeout=600, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    assert bridge_present()
    assert server_healthy(paths)
    assert server_pid(paths) not in (None, old_pid)
    assert pve.nodes("pve1").lxc(kept).config.get()["hostname"] == f"t{kept}"
    # The running CT was cut off with the bridge and is reachable again.
    wait_ssh(creds, f"10.92.3.{kept}", timeout=30)
    assert not paths.node_config_dir("pve1").joinpath(f"{half}.conf").exists()
    assert not (paths.images / str(half)).exists()
    assert not (paths.lxcpath / str(stray)).exists()


def test_lab_up_twice_changes_nothing(pve):
    paths = LabPaths.default()
    pid = server_pid(paths)
    up = subprocess.run([sys.executable, "-m", "lab", "up"], cwd=REPO, capture_output=True,
                        text=True, timeout=300, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    assert server_pid(paths) == pid
    assert "already running" in up.stdout
