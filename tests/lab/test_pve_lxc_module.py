"""library/pve_lxc against the lab, through the real `ansible` CLI.

One container (`web`) is created once per module and reused by the tests that only change
its config or power state; each such test keeps `web.spec` equal to what the container is,
so any test also passes on its own. Tests that need a container in a particular state of
their own (absent, on another node, never created) allocate one. VMIDs 160-174 only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from labtools import (
    Allocator,
    create_ct,
    destroy_ct,
    pve_auth_args,
    run_module,
    ssh,
    task_ok,
    wait_ssh,
    wait_task,
)
from proxmoxer import ProxmoxAPI

from lab.admin import AdminClient

NODE = "pve1"
ROOT_PASSWORD = "lab-root-pw-7Qx"
# The lab's task faults (fail_tasks, slow_tasks) are global: a test session running beside this
# one may take a fault meant for our task. A test that sees its fault go elsewhere tries again.
FAULT_ATTEMPTS = 3


@dataclass
class Ct:
    vmid: int
    spec: dict[str, Any]
    created: dict[str, Any]

    @property
    def ip(self) -> str:
        return f"10.92.3.{self.vmid}"


def base_spec(creds: dict, vmid: int, node: str = NODE) -> dict[str, Any]:
    return {
        **pve_auth_args(creds), "node": node, "vmid": vmid, "hostname": f"pvelxc{vmid}",
        "state": "started", "ostemplate": creds["ostemplate"], "storage": "local",
        "rootfs_size": 2, "cores": 1, "memory": 256, "swap": 0,
        "netif": [{"name": "eth0", "bridge": creds["bridge"], "ip": f"10.92.3.{vmid}/24",
                   "gw": "10.92.3.1"}],
        "nameserver": "10.92.3.1", "searchdomain": "lab.internal",
        "features": {"nesting": True, "keyctl": True}, "tags": ["pvelxc", "web", "extra"],
        "description": "pve_lxc module test\n  second line, verbatim: yes", "onboot": False,
        "startup": {"order": 5, "up": 10}, "ssh_public_keys": creds["ssh_public_key"],
        "password": ROOT_PASSWORD, "timeout": 60,
    }


def converge(args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
    result = run_module("pve_lxc", args, check=check, diff=diff)
    assert not result.get("failed"), result.get("msg")
    return result


def refuse(args: dict[str, Any], check: bool = False) -> dict[str, Any]:
    result = run_module("pve_lxc", args, check=check)
    assert result.get("failed"), f"expected a failure, got {result}"
    assert result["changed"] is False
    return result


def config(pve: ProxmoxAPI, vmid: int, node: str = NODE, current: bool = False) -> dict[str, Any]:
    return pve.nodes(node).lxc(vmid).config.get(**({"current": 1} if current else {}))


def mac(pve: ProxmoxAPI, vmid: int) -> str:
    return dict(p.split("=", 1) for p in config(pve, vmid)["net0"].split(","))["hwaddr"]


def status(pve: ProxmoxAPI, vmid: int, node: str = NODE) -> dict[str, Any]:
    return pve.nodes(node).lxc(vmid).status.current.get()


def pending(pve: ProxmoxAPI, vmid: int) -> list[str]:
    return sorted(e["key"] for e in pve.nodes(NODE).lxc(vmid).pending.get()
                  if "pending" in e or e.get("delete"))


def vmids(pve: ProxmoxAPI) -> dict[int, str]:
    return {int(r["vmid"]): r["node"] for r in pve.cluster.resources.get(type="vm")}


@pytest.fixture(scope="module")
def alloc(pve: ProxmoxAPI) -> Iterator[Allocator]:
    allocator = Allocator(pve, ids=range(160, 175))
    yield allocator
    allocator.cleanup()


@pytest.fixture(scope="module")
def web(pve: ProxmoxAPI, creds: dict, alloc: Allocator) -> Ct:
    vmid = alloc.take()
    spec = base_spec(creds, vmid)
    return Ct(vmid, spec, converge(spec))


def test_create_gives_a_running_ct_reachable_over_ssh(web, pve, creds):
    result = web.created
    assert result["changed"] is True
    assert result["created"] is True
    assert result["status"] == "running"
    conf = config(pve, web.vmid)
    assert conf["hostname"] == f"pvelxc{web.vmid}"
    assert conf["memory"] == 256
    assert conf["tags"] == "pvelxc;web;extra"
    assert conf["features"] == "keyctl=1,nesting=1"
    assert conf["description"].rstrip("\n") == "pve_lxc module test\n  second line, verbatim: yes"
    assert conf["startup"] == "order=5,up=10"
    assert f"ip={web.ip}/24" in conf["net0"]
    assert "hwaddr=" in conf["net0"]
    assert result["config"]["net0"] == conf["net0"]
    assert "size=2G" in conf["rootfs"]
    assert conf["unprivileged"] == 1
    wait_ssh(creds, web.ip, timeout=30)
    assert ssh(creds, web.ip, "hostname").stdout.strip() == f"pvelxc{web.vmid}"
    # Secrets never reach the result.
    dumped = json.dumps(result)
    assert ROOT_PASSWORD not in dumped
    assert creds["token_secret"] not in dumped


def test_second_run_changes_nothing(web, pve):
    before_mac = mac(pve, web.vmid)
    for check in (True, False):
        result = converge(web.spec, check=check, diff=True)
        assert result["changed"] is False
        assert result["changes"] == {}
        assert result["deleted"] == []
        assert result["diff"]["before"] == result["diff"]["after"]
    assert mac(pve, web.vmid) == before_mac


def test_memory_update_check_diff_then_apply(web, pve):
    old = web.spec["memory"]
    args = dict(web.spec, memory=old + 128)

    check = converge(args, check=True, diff=True)
    assert check["changed"] is True
    assert check["changes"] == {"memory": {"before": old, "after": old + 128}}
    before, after = check["diff"]["before"], check["diff"]["after"]
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {"memory"}
    assert config(pve, web.vmid)["memory"] == old  # check mode wrote nothing

    applied = converge(args, diff=True)
    assert applied["changed"] is True
    assert applied["changes"] == {"memory": {"before": old, "after": old + 128}}
    assert applied["restart_required"] is False  # memory is hot-plugged
    assert config(pve, web.vmid, current=True)["memory"] == old + 128
    web.spec = args

    assert converge(args)["changed"] is False


def test_removed_tag_and_feature_are_removed(web, pve):
    before_mac = mac(pve, web.vmid)
    args = dict(web.spec, tags=["pvelxc", "web"], features={"nesting": True})
    result = converge(args)
    assert result["changed"] is True
    assert set(result["changes"]) == {"tags", "features"}
    assert result["changes"]["features"] == {"before": {"keyctl": True, "nesting": True},
                                             "after": {"nesting": True}}
    conf = config(pve, web.vmid)
    assert conf["tags"] == "pvelxc;web"
    assert conf["features"] == "nesting=1"
    # features is not hot-plugged: it waits for a restart, which was not allowed.
    assert result["restart_required"] is True
    assert result["pending"] == ["features"]
    assert result["restarted"] is False
    assert pending(pve, web.vmid) == ["features"]

    restarted = converge(dict(args, allow_restart=True))
    assert restarted["restarted"] is True
    assert pending(pve, web.vmid) == []
    assert config(pve, web.vmid, current=True)["features"] == "nesting=1"

    # An empty list / string removes the key through delete=.
    args = dict(args, tags=[], description="")
    emptied = converge(args)
    assert sorted(emptied["deleted"]) == ["description", "tags"]
    conf = config(pve, web.vmid)
    assert "tags" not in conf
    assert "description" not in conf
    web.spec = args
    assert converge(args)["changed"] is False
    assert mac(pve, web.vmid) == before_mac


def test_non_hotplug_change_is_pending_until_allowed_restart(web, pve, creds):
    before_mac = mac(pve, web.vmid)
    args = copy.deepcopy(web.spec)
    args["netif"][0]["mtu"] = 1400
    pid = status(pve, web.vmid)["pid"]

    predicted = converge(args, check=True)
    assert predicted["restart_required"] is True
    assert predicted["pending"] == ["net0"]
    assert pending(pve, web.vmid) == []

    result = converge(args)
    assert result["changed"] is True
    assert result["restart_required"] is True
    assert result["pending"] == ["net0"]
    assert result["restarted"] is False
    assert status(pve, web.vmid)["pid"] == pid  # not restarted
    assert pending(pve, web.vmid) == ["net0"]
    wait_ssh(creds, web.ip)
    assert ssh(creds, web.ip, "cat /sys/class/net/eth0/mtu").stdout.strip() == "1500"

    # Pending already: nothing to change, but the restart is still reported as needed.
    again = converge(args)
    assert again["changed"] is False
    assert again["restart_required"] is True

    applied = converge(dict(args, allow_restart=True))
    assert applied["changed"] is True
    assert applied["restarted"] is True
    assert applied["status"] == "running"
    assert pending(pve, web.vmid) == []
    wait_ssh(creds, web.ip, timeout=30)
    inside = ssh(creds, web.ip, "cat /sys/class/net/eth0/mtu /sys/class/net/eth0/address").stdout.split()
    assert inside == ["1400", before_mac.lower()]
    assert mac(pve, web.vmid) == before_mac
    web.spec = args


def test_rootfs_grows_and_never_shrinks(web, pve):
    size = web.spec["rootfs_size"]
    grown = converge(dict(web.spec, rootfs_size=size + 1))
    assert grown["changes"] == {"rootfs": {"before": {"storage": "local", "size": f"{size}G"},
                                           "after": {"storage": "local", "size": f"{size + 1}G"}}}
    assert f"size={size + 1}G" in config(pve, web.vmid)["rootfs"]
    web.spec = dict(web.spec, rootfs_size=size + 1)

    shrink = refuse(dict(web.spec, rootfs_size=size, memory=web.spec["memory"] + 64))
    assert shrink["msg"] == (f"Failed to resize CT {web.vmid} rootfs: it is {size + 1}G, the spec asks "
                             f"{size}G; a rootfs cannot shrink")
    conf = config(pve, web.vmid)
    assert f"size={size + 1}G" in conf["rootfs"]
    assert conf["memory"] == web.spec["memory"]  # refused before anything was written


def test_hostname_mismatch_is_refused(web, pve):
    digest = config(pve, web.vmid)["digest"]
    result = refuse(dict(web.spec, hostname="intruder", memory=web.spec["memory"] + 64))
    assert result["msg"] == (f"Failed to update CT '{web.vmid}': CT {web.vmid} on {NODE} is "
                             f"'pvelxc{web.vmid}', not 'intruder': another container owns this VMID; "
                             "nothing was changed (fix vmid or hostname in the inventory)")
    assert config(pve, web.vmid)["digest"] == digest


def test_power_states(web, pve, creds):
    stopped = dict(web.spec, state="stopped")
    predicted = converge(stopped, check=True, diff=True)
    assert predicted["changed"] is True
    assert predicted["status"] == "stopped"
    assert predicted["diff"]["before"]["status"] == "running"
    assert predicted["diff"]["after"]["status"] == "stopped"
    assert status(pve, web.vmid)["status"] == "running"

    assert converge(stopped)["status"] == "stopped"
    assert status(pve, web.vmid)["status"] == "stopped"
    assert converge(stopped)["changed"] is False

    started = converge(dict(web.spec, state="started"))
    assert started["changed"] is True
    assert status(pve, web.vmid)["status"] == "running"
    pid = status(pve, web.vmid)["pid"]

    restarted = converge(dict(web.spec, state="restarted"))
    assert restarted["changed"] is True
    assert restarted["restarted"] is True
    assert status(pve, web.vmid)["pid"] != pid
    wait_ssh(creds, web.ip, timeout=30)


@contextmanager
def snapshot_in_progress(pve: ProxmoxAPI, admin: AdminClient, vmid: int) -> Iterator[str]:
    """A slow snapshot task holding the CT's 'snapshot' lock while the block runs."""
    for _ in range(FAULT_ATTEMPTS):
        admin.set_faults(slow_tasks=1, slow_seconds=4)
        upid = pve.nodes(NODE).lxc(vmid).snapshot.post(snapname="busy")
        locked = config(pve, vmid).get("lock") == "snapshot"
        if locked:
            try:
                yield upid
            finally:
                task_ok(pve, NODE, upid)
                task_ok(pve, NODE, pve.nodes(NODE).lxc(vmid).snapshot("busy").delete())
            return
        wait_task(pve, NODE, upid)  # the slow fault went to another session's task
        task_ok(pve, NODE, pve.nodes(NODE).lxc(vmid).snapshot("busy").delete())
    pytest.fail(f"could not hold a snapshot lock on CT {vmid} in {FAULT_ATTEMPTS} attempts")


def test_lock_held_by_a_snapshot_is_waited_for(web, pve, admin: AdminClient):
    args = dict(web.spec, memory=web.spec["memory"] + 32)
    with snapshot_in_progress(pve, admin, web.vmid):
        result = converge(args)
    assert result["changed"] is True
    assert any("locked (snapshot)" in w for w in result.get("warnings", [])), result
    assert config(pve, web.vmid)["memory"] == args["memory"]
    web.spec = args


def test_lock_that_outlasts_the_timeout_fails_clearly(web, pve, admin: AdminClient):
    with snapshot_in_progress(pve, admin, web.vmid):
        result = refuse(dict(web.spec, memory=web.spec["memory"] + 32, timeout=1))
        assert result["msg"] == (f"Failed to update CT '{web.vmid}': CT is locked (snapshot) and the "
                                 "lock did not clear within 1s")
        assert config(pve, web.vmid)["memory"] == web.spec["memory"]


def test_transient_api_errors_are_retried(web, pve, admin: AdminClient):
    path = f"/lxc/{web.vmid}/config$"
    admin.set_faults(api_error={"status": 503, "count": 2, "path": path, "method": "GET"})
    admin.set_faults(api_error={"status": 503, "count": 2, "path": path, "method": "PUT"})
    args = dict(web.spec, memory=web.spec["memory"] + 32)
    result = converge(args)
    assert result["changed"] is True
    assert admin.faults()["api_errors"] == []  # all four errors were hit, and retried
    assert config(pve, web.vmid)["memory"] == args["memory"]
    web.spec = args


def test_check_mode_create_writes_nothing(pve, creds, alloc):
    vmid = alloc.take()
    result = converge(base_spec(creds, vmid), check=True, diff=True)
    assert result["changed"] is True
    assert result["created"] is True
    assert result["diff"]["before"] == {"status": "absent"}
    assert result["diff"]["after"]["memory"] == 256
    assert vmid not in vmids(pve)


def test_failed_create_task_reports_its_log_and_leaves_nothing(pve, creds, alloc, admin: AdminClient):
    for _ in range(FAULT_ATTEMPTS):
        vmid = alloc.take()
        admin.set_faults(fail_tasks=1, fail_message="lab fault: no space left on device")
        result = run_module("pve_lxc", base_spec(creds, vmid))
        if result.get("failed") or not result.get("created"):
            break
        destroy_ct(pve, NODE, vmid)  # the fault went to another session's task
    else:
        pytest.fail(f"the injected create failure never reached our task in {FAULT_ATTEMPTS} attempts")
    assert result.get("failed"), result
    assert result["changed"] is False
    msg = result["msg"]
    assert msg.startswith(f"Failed to create CT '{vmid}': create task: lab fault: no space left")
    assert "task log:" in msg
    assert "extracting archive" in msg  # a line of the task's log
    assert msg.endswith(f"No container was left behind: CT {vmid} does not exist.")
    assert vmid not in vmids(pve)


def test_permission_denied_reports_pve_message(pve, creds, alloc):
    vmid = alloc.take()
    args = dict(base_spec(creds, vmid), **pve_auth_args(creds, "noalloc@pve!test"))
    result = refuse(args)
    assert result["msg"].startswith(f"Failed to create CT '{vmid}': ")
    assert f"Permission check failed (/vms/{vmid}, VM.Allocate)" in result["msg"]
    assert creds["tokens"]["noalloc@pve!test"] not in json.dumps(result)
    assert vmid not in vmids(pve)


def test_ct_on_another_node_is_refused(pve, creds, alloc):
    vmid = alloc.take(node="pve2")
    spec = dict(base_spec(creds, vmid, node="pve2"), state="present")
    created = converge(spec)
    assert created["created"] is True
    assert created["status"] == "stopped"
    assert vmids(pve)[vmid] == "pve2"

    result = refuse(dict(spec, node=NODE, memory=512))
    assert result["msg"] == (f"Failed to update CT '{vmid}': it exists on node 'pve2', not on "
                             f"'{NODE}'; moving a container between nodes is not supported by this "
                             "module (migrate it in PVE first, or fix the node in the inventory); "
                             "nothing was changed")
    assert config(pve, vmid, node="pve2")["memory"] == 256
    assert vmids(pve)[vmid] == "pve2"


def test_absent_stops_and_destroys(pve, creds, alloc):
    vmid = alloc.take()
    create_ct(pve, creds, vmid, hostname=f"gone{vmid}")
    task_ok(pve, NODE, pve.nodes(NODE).lxc(vmid).status.start.post())
    args = {**pve_auth_args(creds), "node": NODE, "vmid": vmid, "state": "absent", "purge": True}

    assert refuse(dict(args, hostname="someone-else"))["msg"].endswith(
        "another container owns this VMID; nothing was changed")
    predicted = converge(args, check=True)
    assert predicted["changed"] is True
    assert status(pve, vmid)["status"] == "running"

    removed = converge(dict(args, hostname=f"gone{vmid}"))
    assert removed["changed"] is True
    assert removed["status"] == "absent"
    assert vmid not in vmids(pve)
    assert converge(args)["changed"] is False
