"""library/pve_lxc_info against the lab, through the real `ansible` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import labtools
import pytest
from proxmoxer import ProxmoxAPI

MODULE = "pve_lxc_info"
OUR_IDS = range(175, 190)  # this file's VMIDs (and last octets of the CTs' addresses)


@dataclass(frozen=True)
class Cts:
    web: int  # pve1, running, tagged, two interfaces
    spare: int  # pve2, stopped


@pytest.fixture(scope="module")
def cts(pve: ProxmoxAPI, creds: dict) -> Iterator[Cts]:
    """Shared by every test here: they only read."""
    alloc = labtools.Allocator(pve, ids=OUR_IDS)
    try:
        web = alloc.take("pve1")
        labtools.create_ct(pve, creds, web, node="pve1", tags="web;blue",
                           net1="name=eth1,bridge=vmbr0923,ip=dhcp,ip6=fd92:3::b0/64,gw6=fd92:3::1")
        labtools.task_ok(pve, "pve1", pve.nodes("pve1").lxc(web).status.start.post())
        spare = alloc.take("pve2")
        labtools.create_ct(pve, creds, spare, node="pve2")
        yield Cts(web=web, spare=spare)
    finally:
        alloc.cleanup()


def info(creds: dict, tokenid: str | None = None, check: bool = False, **filters: object) -> dict:
    result = labtools.run_module(MODULE, {**labtools.pve_auth_args(creds, tokenid), **filters},
                                 check=check)
    assert not result.get("failed"), result
    assert result["changed"] is False
    return result


def vmids(result: dict) -> list[int]:
    return [c["vmid"] for c in result["containers"]]


def test_one_ct_by_vmid_with_parsed_addresses(pve, creds, cts):
    result = info(creds, vmid=cts.web, check=True)
    [ct] = result["containers"]
    config = pve.nodes("pve1").lxc(cts.web).config.get()
    hwaddr = {key: value.split("hwaddr=")[1].split(",")[0]
              for key, value in config.items() if key in ("net0", "net1")}
    assert (ct["vmid"], ct["node"], ct["hostname"]) == (cts.web, "pve1", f"t{cts.web}")
    assert ct["status"] == "running"
    assert isinstance(ct["uptime"], int)
    assert ct["lock"] is None
    assert ct["tags"] == ["web", "blue"]
    assert ct["config"] == config
    assert ct["addresses"] == [
        {"net": "net0", "iface": "eth0", "family": 4, "ip": f"10.92.3.{cts.web}/24",
         "address": f"10.92.3.{cts.web}", "gw": "10.92.3.1", "hwaddr": hwaddr["net0"],
         "bridge": "vmbr0923"},
        {"net": "net1", "iface": "eth1", "family": 4, "ip": "dhcp", "address": None, "gw": None,
         "hwaddr": hwaddr["net1"], "bridge": "vmbr0923"},
        {"net": "net1", "iface": "eth1", "family": 6, "ip": "fd92:3::b0/64", "address": "fd92:3::b0",
         "gw": "fd92:3::1", "hwaddr": hwaddr["net1"], "bridge": "vmbr0923"},
    ]


def test_by_hostname_and_filters_combine(creds, cts):
    [ct] = info(creds, hostname=f"t{cts.spare}")["containers"]
    assert (ct["vmid"], ct["node"], ct["status"], ct["uptime"]) == (cts.spare, "pve2", "stopped", 0)
    assert ct["tags"] == []
    assert ct["addresses"][0]["address"] == f"10.92.3.{cts.spare}"
    assert info(creds, hostname=f"t{cts.spare}", node="pve1")["containers"] == []


def test_all_containers_of_a_node_and_of_the_cluster(creds, cts):
    on_pve2 = info(creds, node="pve2")
    assert cts.spare in vmids(on_pve2)
    assert cts.web not in vmids(on_pve2)
    assert {c["node"] for c in on_pve2["containers"]} == {"pve2"}
    assert vmids(on_pve2) == sorted(vmids(on_pve2))

    everywhere = info(creds)
    assert {cts.web, cts.spare} <= set(vmids(everywhere))


def test_a_missing_vmid_is_an_empty_list_and_an_unknown_node_an_error(pve, creds, cts):
    used = {int(r["vmid"]) for r in pve.cluster.resources.get(type="vm")}
    missing = next(vmid for vmid in OUR_IDS if vmid not in used)
    assert info(creds, vmid=missing)["containers"] == []

    unknown = labtools.run_module(MODULE, {**labtools.pve_auth_args(creds), "node": "pve9"})
    assert unknown.get("failed"), unknown
    assert unknown["msg"] == ("Failed to list containers on node 'pve9': no such cluster node "
                              "(nodes: pve1, pve2)")


def test_a_least_privilege_auditor_token_reads_the_same(creds, cts):
    tokenid = "auditor@pve!ro"
    as_auditor = info(creds, tokenid, vmid=cts.web)
    as_root = info(creds, vmid=cts.web)
    strip = [{k: v for k, v in c.items() if k != "uptime"} for c in as_root["containers"]]
    assert [{k: v for k, v in c.items() if k != "uptime"} for c in as_auditor["containers"]] == strip
    output = json.dumps(as_auditor) + json.dumps(as_root)
    assert creds["tokens"][tokenid] not in output
    assert creds["token_secret"] not in output
