"""What the pve_lxc role promises, seen from inside the container and through the API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from proxmoxer import ProxmoxAPI

SPEC = {"mol-pve-lxc-1": (201, "pve1"), "mol-pve-lxc-2": (202, "pve2")}


@pytest.fixture(scope="module")
def pve() -> ProxmoxAPI:
    creds = json.loads((Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".lab"
                        / "credentials.json").read_text())
    user, name = creds["token_id"].split("!")
    return ProxmoxAPI("127.0.0.1", port=8006, user=user, token_name=name,
                      token_value=creds["token_secret"], verify_ssl=creds["ca_cert"])


def _name(host) -> str:
    return host.backend.get_hostname()


def test_hostname_and_address(host):
    vmid, _ = SPEC[_name(host)]
    assert host.check_output("hostname") == _name(host)
    assert f"inet 10.92.3.{vmid}/24" in host.check_output("ip -4 addr show dev eth0")
    assert "default via 10.92.3.1 dev eth0" in host.check_output("ip route")


def test_dns_settings_written_inside(host):
    resolv = host.file("/etc/resolv.conf").content_string
    assert "nameserver 10.92.3.1" in resolv
    assert "search lab.internal" in resolv


def test_unprivileged_and_memory_limit(host):
    assert host.check_output("cat /proc/self/uid_map").split()[:2] == ["0", "100000"]
    limit = host.run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                     "2>/dev/null || cat /sys/fs/cgroup/memory.max")
    assert int(limit.stdout.strip()) == 384 * 2**20


def test_sshd_runs_and_boot_is_clean(host):
    assert host.service("ssh").is_running
    assert host.check_output("systemctl is-system-running") == "running"


def test_pve_config_matches_the_role_spec(host, pve):
    vmid, node = SPEC[_name(host)]
    config = pve.nodes(node).lxc(vmid).config.get()
    assert config["memory"] == 384
    assert config["swap"] == 128
    assert set(config["tags"].split(";")) == {"molecule", "provisioned"}
    assert config["features"] == "nesting=1"
    assert config["onboot"] == 1
    assert config["description"] == "provisioned by the pve_lxc role (molecule)"
    assert pve.nodes(node).lxc(vmid).status.current.get()["status"] == "running"
