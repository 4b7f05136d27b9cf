"""The pure diff logic of library/pve_lxc.py: what a run would send to PVE for a config and a spec."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The module imports `ansible.module_utils.pve_api`, which Ansible resolves through
# ansible.cfg's module_utils; here the project's file stands in for it.
if "ansible.module_utils.pve_api" not in sys.modules:
    _load("ansible.module_utils.pve_api", REPO / "module_utils" / "pve_api.py")
pve_lxc = _load("pve_lxc_under_test", REPO / "library" / "pve_lxc.py")

MAC = "BC:24:11:0F:07:A6"
NET0 = f"name=eth0,bridge=vmbr0923,gw=10.92.3.1,hwaddr={MAC},ip=10.92.3.160/24,type=veth"
ETH0 = {"name": "eth0", "bridge": "vmbr0923", "ip": "10.92.3.160/24", "gw": "10.92.3.1"}


def config(**extra: object) -> dict[str, object]:
    """A config as GET /nodes/{node}/lxc/{vmid}/config answers it."""
    base: dict[str, object] = {
        "arch": "amd64", "cores": 1, "hostname": "web", "memory": 256, "swap": 0,
        "net0": NET0, "ostype": "debian", "unprivileged": 1,
        "rootfs": "local:160/subvol-160-disk-0.subvol,size=4G", "digest": "0" * 40,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def spec(**extra: object) -> dict[str, Any]:
    """Module params as AnsibleModule hands them over (unset options are None)."""
    params: dict[str, Any] = {
        "hostname": "web", "storage": "local", "rootfs_size": 4, "unprivileged": True,
        "cores": None, "cpulimit": None, "memory": None, "swap": None, "netif": None,
        "nameserver": None, "searchdomain": None, "features": None, "onboot": None,
        "startup": None, "tags": None, "description": None,
    }
    params.update(extra)
    return params


def nic(**props: object) -> dict[str, object]:
    """A netif entry with every suboption present, as AnsibleModule fills them in."""
    keys = ("name", "index", "bridge", "ip", "gw", "ip6", "gw6", "hwaddr", "firewall", "mtu",
            "tag", "rate")
    return {key: props.get(key) for key in keys}


def features(**flags: object) -> dict[str, object]:
    keys = ("nesting", "keyctl", "fuse", "mknod", "force_rw_sys", "mount")
    return {key: flags.get(key) for key in keys}


def plan(cfg: dict[str, object], params: dict[str, Any]):
    return pve_lxc.plan_update(cfg, params, 160, "pve1")


def test_unmanaged_and_equal_spec_is_a_no_op():
    result = plan(config(tags="a;b", features="nesting=1"),
                  spec(memory=256, swap=0, cores=1, netif=[nic(**ETH0)], tags=["b", "a"],
                       features=features(nesting=True, keyctl=False)))
    assert result.changes == {}
    assert result.put == {}
    assert result.delete == []
    assert result.resize_gib is None
    assert result.before == result.after


def test_memory_change_sends_only_memory():
    result = plan(config(), spec(memory=512, swap=0))
    assert result.put == {"memory": "512"}
    assert result.changes == {"memory": {"before": 256, "after": 512}}
    assert result.restart_keys() == []  # memory is hot-plugged


def test_pve_defaults_count_as_values():
    # No memory/onboot/cpulimit in the config means PVE's defaults: 512, off, no limit.
    cfg = config(memory=None, swap=None)
    assert plan(cfg, spec(memory=512, swap=512, onboot=False, cpulimit=0)).changes == {}
    assert plan(cfg, spec(cpulimit=1.5)).put == {"cpulimit": "1.5"}


def test_net_without_hwaddr_keeps_the_current_mac():
    result = plan(config(), spec(netif=[nic(**ETH0)]))
    assert result.put == {}
    changed = plan(config(), spec(netif=[nic(**dict(ETH0, ip="10.92.3.161/24"))]))
    assert changed.put == {"net0": f"name=eth0,bridge=vmbr0923,gw=10.92.3.1,hwaddr={MAC},"
                                   "ip=10.92.3.161/24,type=veth"}
    assert changed.changes["net0"]["before"]["hwaddr"] == MAC
    assert changed.changes["net0"]["after"]["hwaddr"] == MAC
    assert changed.restart_keys() == ["net0"]


def test_net_compared_as_dicts_not_strings():
    # Other key order, lower-case MAC, no type=veth, explicit firewall=0: the same device.
    reordered = f"type=veth,ip=10.92.3.160/24,hwaddr={MAC.lower()},firewall=0,gw=10.92.3.1," \
                "bridge=vmbr0923,name=eth0"
    assert plan(config(net0=reordered), spec(netif=[nic(**ETH0, firewall=False)])).changes == {}


def test_explicit_hwaddr_wins():
    result = plan(config(), spec(netif=[nic(**ETH0, hwaddr="bc:24:11:aa:bb:cc")]))
    assert "hwaddr=BC:24:11:AA:BB:CC" in result.put["net0"]


def test_net_properties_are_typed_and_formatted():
    result = plan(config(), spec(netif=[nic(**ETH0, firewall=True, mtu=1400, tag=12, rate=2.0)]))
    assert result.put["net0"] == (f"name=eth0,bridge=vmbr0923,firewall=1,gw=10.92.3.1,hwaddr={MAC},"
                                  "ip=10.92.3.160/24,mtu=1400,rate=2,tag=12,type=veth")


def test_removed_net_device_is_deleted_and_new_one_gets_no_mac():
    cfg = config(net1=f"name=eth1,bridge=vmbr0923,hwaddr={MAC[:-2]}FF,ip=dhcp,type=veth")
    result = plan(cfg, spec(netif=[nic(**ETH0)]))
    assert result.delete == ["net1"]
    assert result.put == {}
    assert result.changes["net1"]["after"] is None

    added = plan(config(), spec(netif=[nic(**ETH0), nic(name="eth1", bridge="vmbr0923", ip="dhcp")]))
    assert added.put == {"net1": "name=eth1,bridge=vmbr0923,ip=dhcp,type=veth"}  # PVE picks a MAC


def test_explicit_index_and_duplicate_index():
    result = plan(config(), spec(netif=[nic(**ETH0), nic(name="eth3", index=3, bridge="vmbr0923")]))
    assert list(result.put) == ["net3"]
    with pytest.raises(pve_lxc.PlanError, match="net0 twice"):
        plan(config(), spec(netif=[nic(**ETH0), nic(name="eth1", index=0)]))


def test_tags_compared_as_sets_removed_tag_rewrites_empty_deletes():
    assert plan(config(tags="b;a"), spec(tags=["a", "b", "a"])).changes == {}
    removed = plan(config(tags="a;b;old"), spec(tags=["a", "b"]))
    assert removed.put == {"tags": "a;b"}
    assert removed.changes == {"tags": {"before": ["a", "b", "old"], "after": ["a", "b"]}}
    emptied = plan(config(tags="a;b"), spec(tags=[]))
    assert emptied.delete == ["tags"]
    assert emptied.put == {}
    assert plan(config(), spec(tags=[])).changes == {}


def test_removed_feature_rewrites_and_none_left_deletes():
    result = plan(config(features="keyctl=1,nesting=1"), spec(features=features(nesting=True)))
    assert result.put == {"features": "nesting=1"}
    assert result.restart_keys() == ["features"]
    gone = plan(config(features="nesting=1"), spec(features=features(nesting=False)))
    assert gone.delete == ["features"]
    mount = plan(config(), spec(features=features(nesting=True, mount="nfs; cifs")))
    assert mount.put == {"features": "mount=nfs;cifs,nesting=1"}


def test_description_verbatim_and_empty_deletes():
    text = "line one\n  indented: yes, with commas"
    assert plan(config(description=text + "\n"), spec(description=text)).changes == {}
    assert plan(config(), spec(description=text)).put == {"description": text}
    assert plan(config(description=text), spec(description="")).delete == ["description"]


def test_startup_parsed_with_bare_order():
    assert plan(config(startup="2,up=30"), spec(startup={"order": 2, "up": 30, "down": None})).changes == {}
    result = plan(config(startup="2,up=30"), spec(startup={"order": 1, "up": None, "down": 60}))
    assert result.put == {"startup": "order=1,down=60"}
    cleared = plan(config(startup="2"), spec(startup={"order": None, "up": None, "down": None}))
    assert cleared.delete == ["startup"]


def test_rootfs_grows_and_never_shrinks():
    grow = plan(config(), spec(rootfs_size=6))
    assert grow.resize_gib == 6
    assert grow.changes == {"rootfs": {"before": {"storage": "local", "size": "4G"},
                                       "after": {"storage": "local", "size": "6G"}}}
    assert grow.put == {}
    same_in_mib = config(rootfs="local:160/subvol-160-disk-0.subvol,size=4096M")
    assert plan(same_in_mib, spec(rootfs_size=4)).resize_gib is None
    with pytest.raises(pve_lxc.PlanError) as info:
        plan(config(), spec(rootfs_size=2))
    assert str(info.value) == ("Failed to resize CT 160 rootfs: it is 4G, the spec asks 2G; "
                               "a rootfs cannot shrink")


def test_other_storage_refused():
    with pytest.raises(pve_lxc.PlanError, match="storage 'local', the spec asks 'fast'"):
        plan(config(), spec(storage="fast"))


def test_hostname_mismatch_and_unprivileged_change_refused():
    with pytest.raises(pve_lxc.PlanError, match="is 'web', not 'db': another container owns"):
        plan(config(), spec(hostname="db"))
    with pytest.raises(pve_lxc.PlanError, match="unprivileged is true, the spec asks false"):
        plan(config(), spec(unprivileged=False))


def test_create_plan_and_post_parameters():
    params = spec(vmid=160, ostemplate="local:vztmpl/t.tar.zst", memory=256, tags=["a"],
                  netif=[nic(**ETH0)], features=features(nesting=True), description="",
                  ssh_public_keys="ssh-ed25519 AAAA k", password="secret-pw")
    result, post = pve_lxc.plan_create(params, 160)
    assert post == {
        "vmid": 160, "hostname": "web", "ostemplate": "local:vztmpl/t.tar.zst", "storage": "local",
        "rootfs": "local:4", "unprivileged": "1", "memory": "256", "tags": "a",
        "features": "nesting=1",
        "net0": "name=eth0,bridge=vmbr0923,gw=10.92.3.1,ip=10.92.3.160/24,type=veth",
        "ssh-public-keys": "ssh-ed25519 AAAA k", "password": "secret-pw",
    }
    assert all(change["before"] is None for change in result.changes.values())
    assert "password" not in result.after


def test_pending_keys_from_pending_endpoint():
    entries = [{"key": "memory", "value": 256}, {"key": "net0", "value": "a", "pending": "b"},
               {"key": "features", "value": "nesting=1", "delete": 1}]
    assert pve_lxc.pending_keys(entries) == ["features", "net0"]


# -- orchestration with a fake client: what is written, in which order ------------------------
class Exited(Exception):
    """exit_json / fail_json of the fake module."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result


class FakeModule:
    def __init__(self, params: dict[str, Any], check_mode: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self._diff = True
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def exit_json(self, **result: Any) -> None:
        raise Exited(result)

    def fail_json(self, **result: Any) -> None:
        raise Exited(dict(result, failed=True))


class FakeClient:
    """GET config answers the given configs in turn (the last one repeats); PUTs are recorded."""

    def __init__(self, configs: list[dict[str, object]], status: str = "stopped",
                 put_errors: list[Exception] | None = None) -> None:
        self.configs = configs
        self.ct_status = status
        self.put_errors = put_errors or []
        self.puts: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, **_: Any) -> Any:
        if path == "cluster/resources":
            return [{"vmid": 160, "node": "pve1", "type": "lxc", "status": self.ct_status}]
        if path.endswith("/config"):
            return self.configs.pop(0) if len(self.configs) > 1 else self.configs[0]
        if path.endswith("/status/current"):
            return {"status": self.ct_status}
        if path.endswith("/pending"):
            return []
        raise AssertionError(f"unexpected GET {path}")

    def put(self, path: str, **params: Any) -> None:
        self.puts.append((path, params))
        if self.put_errors:
            raise self.put_errors.pop(0)

    def post(self, path: str, **params: Any) -> None:
        raise AssertionError(f"unexpected POST {path} {params}")

    def sleep(self, _: float) -> None:
        return None


def run(client: FakeClient, params: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    module_params = dict(spec(**params), node="pve1", vmid=160, state=params.get("state", "present"),
                         timeout=5, allow_restart=False, purge=False)
    ct = pve_lxc.PveLxc(FakeModule(module_params, check_mode), client)
    with pytest.raises(Exited) as info:
        ct.run()
    return info.value.result


def test_modified_config_is_read_again_and_rediffed():
    other_writer = pve_lxc.PveError("PUT nodes/pve1/lxc/160/config: 500 Internal Server Error: "
                                    "detected modified configuration - file changed by other user? "
                                    "Try again.", 500)
    client = FakeClient([config(tags="a", digest="d1"), config(tags="a;b", digest="d2")],
                        put_errors=[other_writer])
    result = run(client, {"memory": 512, "tags": ["a"]})
    assert not result.get("failed"), result
    assert [params for _, params in client.puts] == [
        {"memory": "512", "digest": "d1"},
        {"memory": "512", "tags": "a", "digest": "d2"},  # the other writer's tag is diffed too
    ]
    assert set(result["changes"]) == {"memory", "tags"}
    assert result["changed"] is True


def test_other_errors_are_not_retried_and_name_the_ct():
    denied = pve_lxc.PveError("PUT nodes/pve1/lxc/160/config: 403 Forbidden: Permission check "
                              "failed (/vms/160, VM.Config.Memory)", 403)
    client = FakeClient([config()], put_errors=[denied])
    result = run(client, {"memory": 512})
    assert result["failed"] is True
    assert len(client.puts) == 1
    assert result["msg"] == ("Failed to update CT '160': PUT nodes/pve1/lxc/160/config: 403 Forbidden: "
                             "Permission check failed (/vms/160, VM.Config.Memory)")


def test_check_mode_predicts_restart_and_writes_nothing():
    client = FakeClient([config()], status="running")
    result = run(client, {"memory": 512, "netif": [nic(**dict(ETH0, mtu=1400))]}, check_mode=True)
    assert client.puts == []
    assert result["changed"] is True
    assert result["restart_required"] is True
    assert result["pending"] == ["net0"]
    assert result["restarted"] is False
    assert result["diff"]["after"]["memory"] == 512
