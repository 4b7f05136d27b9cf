"""The issue's acceptance path: create, start, SSH, snapshot/rollback, destroy."""

from __future__ import annotations

from pathlib import Path

import pytest
from labtools import create_ct, ssh, task_ok, wait_ssh

from lab.config import LabPaths


@pytest.mark.slow
@pytest.mark.parametrize("unprivileged", [0, 1], ids=["privileged", "unprivileged"])
def test_ct_boots_answers_ssh_snapshots_and_is_destroyed(pve, creds, ids, unprivileged):
    vmid = ids.take()
    ip = f"10.92.3.{vmid}"
    create_ct(pve, creds, vmid, unprivileged=unprivileged)
    config = pve.nodes("pve1").lxc(vmid).config.get()
    assert config["net0"].startswith("name=eth0,bridge=vmbr0923,")
    assert f"ip={ip}/24" in config["net0"]
    assert "hwaddr=BC:24:11:" in config["net0"]
    assert config.get("unprivileged", 0) == unprivileged

    task_ok(pve, "pve1", pve.nodes("pve1").lxc(vmid).status.start.post())
    assert pve.nodes("pve1").lxc(vmid).status.current.get()["status"] == "running"
    wait_ssh(creds, ip, timeout=30)
    state = ssh(creds, ip, "systemctl is-system-running --wait")
    assert state.stdout.strip() == "running", ssh(creds, ip, "systemctl --failed").stdout
    uid_map = ssh(creds, ip, "cat /proc/self/uid_map").stdout.split()
    assert uid_map[1] == ("100000" if unprivileged else "0")
    assert ssh(creds, ip, "hostname").stdout.strip() == f"t{vmid}"

    # Snapshot, change a file, roll back: the file is as it was.
    assert ssh(creds, ip, "echo before > /root/marker && sync").returncode == 0
    task_ok(pve, "pve1", pve.nodes("pve1").lxc(vmid).snapshot.post(snapname="clean"))
    assert ssh(creds, ip, "echo after > /root/marker && rm /etc/motd && sync").returncode == 0
    task_ok(pve, "pve1", pve.nodes("pve1").lxc(vmid).snapshot("clean").rollback.post(start=1))
    wait_ssh(creds, ip, timeout=30)
    assert ssh(creds, ip, "cat /root/marker").stdout.strip() == "before"
    assert ssh(creds, ip, "test -e /etc/motd").returncode == 0
    names = [s["name"] for s in pve.nodes("pve1").lxc(vmid).snapshot.get()]
    assert names == ["clean", "current"]

    # Destroy removes the config, the LXC container and its volume.
    task_ok(pve, "pve1", pve.nodes("pve1").lxc(vmid).delete(force=1))
    paths = LabPaths.default()
    assert vmid not in [ct["vmid"] for ct in pve.nodes("pve1").lxc.get()]
    assert not Path(paths.lxcpath / str(vmid)).exists()
    assert not Path(paths.images / str(vmid)).exists()
    assert not paths.node_config_dir("pve1").joinpath(f"{vmid}.conf").exists()
