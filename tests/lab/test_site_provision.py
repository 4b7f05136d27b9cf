"""Issue 3 acceptance: site.yml provisions the five lab containers and converges changes."""

from __future__ import annotations

import re

import pytest
import yaml
from labtools import LAB_HOSTS, changed_by_host, copy_lab_inventory, failures, run_playbook, task_results

pytestmark = pytest.mark.slow
# The provisioning part of site.yml; the later stages have their own tests.
STAGES = ("--tags", "validate,provision")
NODE = {"proxy1": "pve1", "app1": "pve1", "app2": "pve2", "db1": "pve1", "mon1": "pve2"}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    return copy_lab_inventory(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def macs(inventory, pve) -> dict[str, str]:
    """The MAC of every lab CT after the first run; later runs must keep them."""
    code, result, err = run_playbook("site.yml", inventory, *STAGES)
    assert code == 0, failures(result, err)
    return {host: _mac(pve, host) for host in LAB_HOSTS}


def _config(pve, host: str) -> dict:
    return pve.nodes(NODE[host]).lxc(LAB_HOSTS[host]).config.get()


def _mac(pve, host: str) -> str:
    return re.search(r"hwaddr=([0-9A-F:]{17})", _config(pve, host)["net0"]).group(1)


def _edit_host_vars(inventory, host: str, **changes: object) -> None:
    path = inventory / "host_vars" / f"{host}.yml"
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def test_all_five_containers_run_and_answer(inventory, pve, macs):
    for host, vmid in LAB_HOSTS.items():
        status = pve.nodes(NODE[host]).lxc(vmid).status.current.get()
        assert status["status"] == "running", host
        assert status["name"] == host


def test_second_run_changes_nothing(inventory, pve, macs):
    code, result, err = run_playbook("site.yml", inventory, *STAGES)
    assert code == 0, failures(result, err)
    assert set(changed_by_host(result).values()) == {0}, changed_by_host(result)
    assert {host: _mac(pve, host) for host in LAB_HOSTS} == macs


def test_memory_change_is_previewed_then_applied_once(inventory, pve, macs):
    before = _config(pve, "app2")["memory"]
    _edit_host_vars(inventory, "app2", pve_lxc_memory=before + 512)

    code, result, err = run_playbook("site.yml", inventory, *STAGES, "--check", "--diff")
    assert code == 0, failures(result, err)
    converge = task_results(result, "Converge container")
    assert converge["app2"]["changed"] is True
    assert [h for h, r in converge.items() if r.get("changed")] == ["app2"]
    diff = converge["app2"]["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    changed_keys = {k for k in set(diff["before"]) | set(diff["after"])
                    if diff["before"].get(k) != diff["after"].get(k)}
    assert changed_keys == {"memory"}
    assert _config(pve, "app2")["memory"] == before, "check mode must not change anything"

    code, result, err = run_playbook("site.yml", inventory, *STAGES)
    assert code == 0, failures(result, err)
    assert _config(pve, "app2")["memory"] == before + 512
    code, result, err = run_playbook("site.yml", inventory, *STAGES)
    assert code == 0, failures(result, err)
    assert set(changed_by_host(result).values()) == {0}
    assert _mac(pve, "app2") == macs["app2"]


def test_removed_tag_and_feature_are_removed(inventory, pve, macs):
    tags = yaml.safe_load((inventory / "host_vars" / "app1.yml").read_text())["pve_lxc_tags"]
    _edit_host_vars(inventory, "app1", pve_lxc_tags=[*tags, "canary"],
                    pve_lxc_features={"nesting": True, "keyctl": True})
    code, result, err = run_playbook("site.yml", inventory, *STAGES, "--limit", "app1,localhost")
    assert code == 0, failures(result, err)
    config = _config(pve, "app1")
    assert "canary" in config["tags"].split(";")
    assert config["features"] == "keyctl=1,nesting=1"

    _edit_host_vars(inventory, "app1", pve_lxc_tags=tags, pve_lxc_features={"nesting": True})
    code, result, err = run_playbook("site.yml", inventory, *STAGES, "--limit", "app1,localhost")
    assert code == 0, failures(result, err)
    config = _config(pve, "app1")
    assert "canary" not in config["tags"].split(";")
    assert config["features"] == "nesting=1"
    assert _mac(pve, "app1") == macs["app1"]
