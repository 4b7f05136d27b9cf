"""The lab's PVE cluster: container configs, locks and worker tasks on two nodes.

This is the behaviour behind the REST routes, independent of HTTP. Configs are
kept in PVE's file format under etc-pve/nodes/<node>/lxc/<vmid>.conf, so they
persist across restarts of the server; LXC does the real work (lab/backend.py).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lab import pveconf
from lab.backend import BackendError, GuestSpec, LxcBackend, NetDevice
from lab.config import BRIDGE, BRIDGE_CIDR, MAC_PREFIX, NODES, STORAGE, LabPaths
from lab.faults import Faults
from lab.pveconf import CtConfig
from lab.schema import ApiSchema, format_property_string, parse_property_string
from lab.tasks import TaskFailed, TaskLog, TaskManager

# Parameters of POST /nodes/{node}/lxc that are instructions, not config keys.
CREATE_ONLY = {"vmid", "node", "ostemplate", "password", "ssh-public-keys", "storage", "start",
               "pool", "unique", "force", "restore", "ignore-unpack-errors", "bwlimit",
               "ha-managed"}
# Keys a running container takes at once; the rest wait in [pve:pending] for a restart.
HOTPLUG = {"memory", "swap", "cores", "cpulimit", "cpuunits", "description", "tags", "onboot",
           "startup", "protection", "nameserver", "searchdomain", "lock"}
UNSUPPORTED = re.compile(r"^(mp|dev|unused)\d+$")
INT_KEYS = {"cores", "cpuunits", "memory", "swap", "onboot", "unprivileged", "protection",
            "template", "tty", "console", "snaptime", "debug"}
FLOAT_KEYS = {"cpulimit"}
DEFAULT_MEMORY = 512
DEFAULT_SWAP = 512
DEFAULT_ROOTFS_GB = 4


class ApiError(Exception):
    """An error answered in PVE's way: status, reason phrase, optional per-field errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(name: str, message: str) -> ApiError:
    return ApiError(400, "Parameter verification failed.", {name: message})


def typed(values: dict[str, str]) -> dict[str, object]:
    """Config values as PVE's JSON carries them: numbers as numbers."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if key in INT_KEYS and re.fullmatch(r"-?\d+", value):
            out[key] = int(value)
        elif key in FLOAT_KEYS:
            try:
                out[key] = float(value) if "." in value else int(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


class Cluster:
    def __init__(self, paths: LabPaths, schema: ApiSchema, tasks: TaskManager,
                 backend: LxcBackend, faults: Faults) -> None:
        self.paths = paths
        self.schema = schema
        self.tasks = tasks
        self.backend = backend
        self.faults = faults
        self._locks: dict[int, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        create = schema.match("POST", "/nodes/pve1/lxc")
        if create is None:
            raise RuntimeError("the PVE schema has no POST /nodes/{node}/lxc")
        self._formats = {name: schema.property_format(create, name)
                         for name in ("net0", "rootfs", "features")}

    # -- config store --------------------------------------------------------
    def conf_path(self, node: str, vmid: int) -> Path:
        return self.paths.node_config_dir(node) / f"{vmid}.conf"

    def node_of(self, vmid: int) -> str | None:
        for node in NODES:
            if self.conf_path(node, vmid).exists():
                return node
        return None

    def vmids(self, node: str | None = None) -> list[int]:
        found = []
        for name in [node] if node else list(NODES):
            folder = self.paths.node_config_dir(name)
            if folder.is_dir():
                found += [int(p.stem) for p in folder.glob("*.conf") if p.stem.isdigit()]
        return sorted(found)

    def configs(self, node: str) -> list[tuple[int, CtConfig]]:
        """Every CT config of a node, as of now.

        A listing must not fail because a CT was destroyed between finding its file and
        reading it (pmxcfs answers listings from one consistent view; so do we).
        """
        found = []
        for vmid in self.vmids(node):
            try:
                found.append((vmid, pveconf.load(self.conf_path(node, vmid))))
            except FileNotFoundError:
                continue
        return found

    def lock(self, vmid: int) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(vmid, threading.RLock())

    def load(self, node: str, vmid: int) -> CtConfig:
        path = self.conf_path(node, vmid)
        if not path.exists():
            raise ApiError(500, f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
        return pveconf.load(path)

    def save(self, node: str, vmid: int, conf: CtConfig) -> None:
        pveconf.save(self.conf_path(node, vmid), conf)

    def check_node(self, node: str) -> None:
        if node not in NODES:
            raise ApiError(500, f"no such cluster node '{node}'")

    def _fault_point(self, vmid: int) -> None:
        """Where an injected fault makes a worker slow or fail (tests only)."""
        self.faults.task_delay(vmid)
        if reason := self.faults.take_task_failure(vmid):
            raise TaskFailed(reason)

    @staticmethod
    def check_lock(conf: CtConfig) -> None:
        if conf.values.get("lock"):
            raise ApiError(500, f"CT is locked ({conf.values['lock']})")

    def check_no_task(self, vmid: int) -> None:
        """PVE workers hold a flock on the config; a second one times out on it."""
        if self.tasks.running_for(str(vmid)):
            raise ApiError(500, f"can't lock file '/run/lock/lxc/pve-config-{vmid}.conf' - got timeout")

    # -- specs ---------------------------------------------------------------
    def parse_net(self, key: str, value: str) -> dict[str, object]:
        return parse_property_string(value, self._formats["net0"], key)

    def guest_spec(self, vmid: int, values: dict[str, str]) -> GuestSpec:
        nets = []
        for key in sorted(k for k in values if re.fullmatch(r"net\d+", k)):
            net = self.parse_net(key, values[key])
            nets.append(NetDevice(
                index=int(key[3:]), name=str(net.get("name", f"eth{key[3:]}")),
                bridge=str(net.get("bridge", "")), hwaddr=str(net.get("hwaddr", "")),
                ip=_opt(net.get("ip")), gw=_opt(net.get("gw")), ip6=_opt(net.get("ip6")),
                gw6=_opt(net.get("gw6")), mtu=int(net["mtu"]) if net.get("mtu") else None,
            ))
        features = parse_property_string(values.get("features", ""), self._formats["features"],
                                         "features") if values.get("features") else {}
        return GuestSpec(
            vmid=vmid, hostname=values.get("hostname", f"CT{vmid}"),
            unprivileged=values.get("unprivileged") == "1",
            memory_mb=int(values.get("memory", DEFAULT_MEMORY)),
            swap_mb=int(values.get("swap", DEFAULT_SWAP)),
            cores=int(values["cores"]) if values.get("cores") else None,
            cpulimit=float(values["cpulimit"]) if values.get("cpulimit") else None,
            nets=tuple(nets), nameserver=values.get("nameserver"),
            searchdomain=values.get("searchdomain"), nesting=bool(features.get("nesting")),
        )

    def normalize_net(self, key: str, value: str) -> str:
        """Adds what PVE adds: `type=veth` and, when missing, a freshly generated MAC."""
        net = self.parse_net(key, value)
        if "name" not in net:
            raise param_error(key, "missing property - 'name'")
        net.setdefault("hwaddr", generate_mac())
        net["type"] = "veth"
        return format_property_string(net, self._formats["net0"])

    @staticmethod
    def normalize_tags(value: str) -> str:
        tags: list[str] = []
        for tag in re.split(r"[;, ]+", value.strip()):
            if tag and tag not in tags:
                tags.append(tag)
        return ";".join(tags)

    # -- templates and storage ----------------------------------------------
    def template_path(self, volid: str) -> Path:
        match = re.fullmatch(r"([^:]+):vztmpl/([^/]+)", volid)
        if not match:
            raise ApiError(500, f"unable to parse volume ID '{volid}'")
        if match.group(1) != STORAGE:
            raise ApiError(500, f"storage '{match.group(1)}' does not exist")
        path = self.paths.template_cache / match.group(2)
        if not path.exists():
            raise ApiError(500, f"volume '{volid}' does not exist")
        return path

    def storage_content(self, node: str, storage: str, content: str | None,
                        vmid: int | None) -> list[dict[str, object]]:
        self.check_storage(storage)
        items: list[dict[str, object]] = []
        if content in (None, "vztmpl") and self.paths.template_cache.is_dir():
            for path in sorted(self.paths.template_cache.glob("*.tar.*")):
                if path.name.endswith(".partial"):
                    continue
                st = path.stat()
                items.append({"volid": f"{STORAGE}:vztmpl/{path.name}", "content": "vztmpl",
                              "format": "t" + path.name.rsplit(".", 1)[-1], "size": st.st_size,
                              "ctime": int(st.st_mtime)})
        if content in (None, "rootdir"):
            for ct, conf in self.configs(node):
                if vmid is not None and ct != vmid:
                    continue
                volume = conf.values.get("rootfs", "").split(",", 1)[0]
                items.append({"volid": volume, "content": "rootdir", "format": "subvol",
                              "vmid": ct, "size": _size_bytes(conf.values.get("rootfs", "")),
                              "used": self.backend.volume_usage(ct)})
        return items

    @staticmethod
    def check_storage(storage: str) -> None:
        if storage != STORAGE:
            raise ApiError(500, f"storage '{storage}' does not exist")

    def storage_status(self) -> dict[str, object]:
        stat = os.statvfs(self.paths.root)
        total = stat.f_blocks * stat.f_frsize
        avail = stat.f_bavail * stat.f_frsize
        return {"storage": STORAGE, "type": "dir", "content": "images,rootdir,vztmpl,backup",
                "active": 1, "enabled": 1, "shared": 0, "total": total, "avail": avail,
                "used": total - avail, "used_fraction": round((total - avail) / total, 4)}

    # -- create --------------------------------------------------------------
    def create(self, node: str, params: dict[str, object], user: str) -> str:
        self.check_node(node)
        vmid = int(params["vmid"])  # type: ignore[arg-type]
        for key in params:
            if UNSUPPORTED.match(key):
                raise param_error(key, "not supported by the PVE lab (no extra volumes or devices)")
        template = self.template_path(str(params["ostemplate"]))
        storage = str(params.get("storage", STORAGE))
        values = self._create_values(vmid, params, storage)
        with self.lock(vmid):
            owner = self.node_of(vmid)
            if owner:
                raise ApiError(500, f"CT {vmid} already exists on node '{owner}'")
            if vmid in self.backend.known_vmids():
                self.backend.destroy(vmid)  # leftovers without a config: a killed earlier run
            conf = CtConfig(values=dict(values, lock="create"))
            self.save(node, vmid, conf)
        start = bool(params.get("start"))
        keys = str(params.get("ssh-public-keys") or "") or None
        password = params.get("password")

        def worker(log: TaskLog) -> None:
            self.faults.task_delay(vmid)
            try:
                self._build_ct(node, vmid, template, values, keys,
                               str(password) if password else None, log)
            except Exception:
                log.write(f"cleaning up after the failed create of CT {vmid}")
                self.backend.destroy(vmid)
                self.conf_path(node, vmid).unlink(missing_ok=True)
                raise
            if start:
                self._start(node, vmid, log)

        return self.tasks.start(node, "vzcreate", str(vmid), user, worker)

    def _create_values(self, vmid: int, params: dict[str, object], storage: str) -> dict[str, str]:
        values: dict[str, str] = {"arch": "amd64", "ostype": "debian",
                                  "memory": str(DEFAULT_MEMORY), "swap": str(DEFAULT_SWAP)}
        for key, value in params.items():
            if key in CREATE_ONLY or value is None:
                continue
            values[key] = str(value)
        values.setdefault("hostname", f"CT{vmid}")
        rootfs = str(params.get("rootfs") or f"{storage}:{DEFAULT_ROOTFS_GB}")
        values["rootfs"] = self._allocate_rootfs(vmid, rootfs)
        for key in [k for k in values if re.fullmatch(r"net\d+", k)]:
            values[key] = self.normalize_net(key, values[key])
        if "tags" in values:
            values["tags"] = self.normalize_tags(values["tags"])
        if values.get("unprivileged") == "0":
            del values["unprivileged"]
        return values

    def _allocate_rootfs(self, vmid: int, value: str) -> str:
        opts = parse_property_string(value, self._formats["rootfs"], "rootfs")
        volume = str(opts.pop("volume"))
        match = re.fullmatch(r"([a-zA-Z][-\w.]*):(\d+(?:\.\d+)?)", volume)
        if not match:
            raise param_error("rootfs", f"expected '<storage>:<size in GiB>' for a new CT, got '{volume}'")
        self.check_storage(match.group(1))
        size = float(match.group(2))
        if size <= 0:
            raise param_error("rootfs", "size must be larger than 0")
        opts["volume"] = f"{match.group(1)}:{vmid}/subvol-{vmid}-disk-0.subvol"
        opts["size"] = f"{size:g}G"
        return format_property_string(opts, self._formats["rootfs"])

    def _build_ct(self, node: str, vmid: int, template: Path, values: dict[str, str],
                  keys: str | None, password: str | None, log: TaskLog) -> None:
        spec = self.guest_spec(vmid, values)
        log.write(f"extracting archive '{template}'")
        base = self.backend.base_for(template, spec.unprivileged)
        self.backend.create_volume(vmid, base, spec.unprivileged)
        log.write(f"Total bytes written: {self.backend.volume_usage(vmid)} (overlay on the template)")
        if reason := self.faults.take_task_failure(vmid):
            raise TaskFailed(reason)
        log.write("Detected container architecture: amd64")
        log.write("Creating SSH host key pairs on first boot")
        self.backend.setup_guest(spec, keys, _hash_password(password) if password else None)
        self.backend.write_lxc_config(spec)
        with self.lock(vmid):
            conf = self.load(node, vmid)
            conf.values.pop("lock", None)
            self.save(node, vmid, conf)

    # -- config --------------------------------------------------------------
    def get_config(self, node: str, vmid: int, current: bool, snapshot: str | None) -> dict[str, object]:
        conf = self.load(node, vmid)
        if snapshot:
            if snapshot not in conf.snapshots:
                raise ApiError(500, f"snapshot '{snapshot}' does not exist")
            values = dict(conf.snapshots[snapshot])
        else:
            values = dict(conf.values) if current else conf.with_pending()
        values.pop("parent", None) if snapshot else None
        data = typed(values)
        data["digest"] = conf.digest
        return data

    def get_pending(self, node: str, vmid: int) -> list[dict[str, object]]:
        conf = self.load(node, vmid)
        out: list[dict[str, object]] = []
        keys = set(conf.values) | set(conf.pending) | set(conf.pending_delete)
        for key in sorted(keys):
            entry: dict[str, object] = {"key": key}
            if key in conf.values:
                entry["value"] = typed({key: conf.values[key]})[key]
            if key in conf.pending:
                entry["pending"] = typed({key: conf.pending[key]})[key]
            if key in conf.pending_delete:
                entry["delete"] = 1
            out.append(entry)
        return out

    def update_config(self, node: str, vmid: int, params: dict[str, object]) -> None:
        with self.lock(vmid):
            conf = self.load(node, vmid)
            if params.get("digest") and params["digest"] != conf.digest:
                raise ApiError(500, "detected modified configuration - file changed by other user? "
                                    "Try again.")
            if params.get("lock") is None:
                self.check_lock(conf)
            changes = {k: v for k, v in params.items()
                       if k not in {"node", "vmid", "digest", "delete", "revert"} and v is not None}
            deletes = _split_list(params.get("delete"))
            reverts = _split_list(params.get("revert"))
            self._check_update(conf, changes, deletes)
            running = self.backend.state(vmid) == "running"
            for key in reverts:
                conf.pending.pop(key, None)
                if key in conf.pending_delete:
                    conf.pending_delete.remove(key)
            for key, value in changes.items():
                text = str(value)
                if re.fullmatch(r"net\d+", key):
                    text = self.normalize_net(key, text)
                elif key == "tags":
                    text = self.normalize_tags(text)
                elif key == "rootfs":
                    text = self._merge_rootfs(conf.values.get("rootfs", ""), text)
                if running and key not in HOTPLUG:
                    conf.pending[key] = text
                else:
                    conf.values[key] = text
                    conf.pending.pop(key, None)
            for key in deletes:
                if running and key not in HOTPLUG:
                    if key not in conf.pending_delete:
                        conf.pending_delete.append(key)
                else:
                    conf.values.pop(key, None)
                conf.pending.pop(key, None)
            self.save(node, vmid, conf)
            if running:
                spec = self.guest_spec(vmid, conf.values)
                self.backend.apply_limits(spec)
                if {"nameserver", "searchdomain"} & (set(changes) | set(deletes)):
                    self.backend.setup_guest(spec)  # PVE rewrites resolv.conf live too

    def _check_update(self, conf: CtConfig, changes: dict[str, object], deletes: list[str]) -> None:
        for key, value in changes.items():
            if key == "unprivileged" and str(value) != conf.values.get("unprivileged", "0"):
                raise ApiError(500, "unable to modify read-only option: 'unprivileged'")
            if UNSUPPORTED.match(key):
                raise param_error(key, "not supported by the PVE lab (no extra volumes or devices)")
        for key in deletes:
            if key in changes:
                raise param_error("delete", f"unable to delete '{key}' while also setting it")
            if key in {"rootfs", "arch", "ostype", "unprivileged", "hostname"} and key in conf.values:
                raise param_error("delete", f"unable to delete required option '{key}'")

    def _merge_rootfs(self, old: str, new: str) -> str:
        """Only options may change through config; size and volume go through resize."""
        old_opts = parse_property_string(old, self._formats["rootfs"], "rootfs")
        new_opts = parse_property_string(new, self._formats["rootfs"], "rootfs")
        if new_opts["volume"] != old_opts["volume"]:
            raise param_error("rootfs", f"unable to change the rootfs volume from "
                                        f"'{old_opts['volume']}' to '{new_opts['volume']}'")
        new_opts["size"] = old_opts.get("size", new_opts.get("size"))
        return format_property_string(new_opts, self._formats["rootfs"])

    def resize(self, node: str, vmid: int, disk: str, size: str, user: str) -> str:
        if disk != "rootfs":
            raise param_error("disk", f"unable to resize '{disk}': the lab has only rootfs")
        with self.lock(vmid):
            conf = self.load(node, vmid)
            self.check_lock(conf)
            opts = parse_property_string(conf.values["rootfs"], self._formats["rootfs"], "rootfs")
            current = _size_bytes(conf.values["rootfs"])
            match = re.fullmatch(r"(\+)?(\d+(?:\.\d+)?)([KMGT]?)", size)
            if not match:
                raise param_error("size", f"unable to parse size '{size}'")
            amount = float(match.group(2)) * 1024 ** "KMGT".index(match.group(3) or "G") * 1024
            target = current + amount if match.group(1) else amount
            if target < current:
                raise ApiError(500, f"unable to shrink disk size (from {current} to {int(target)})")

        def worker(log: TaskLog) -> None:
            self._fault_point(vmid)
            with self.lock(vmid):
                conf = self.load(node, vmid)
                opts["size"] = _format_size(int(target))
                conf.values["rootfs"] = format_property_string(opts, self._formats["rootfs"])
                self.save(node, vmid, conf)
            log.write(f"resized rootfs of CT {vmid} to {opts['size']}")

        return self.tasks.start(node, "resize", str(vmid), user, worker)

    # -- status and power ----------------------------------------------------
    def status(self, node: str, vmid: int) -> dict[str, object]:
        conf = self.load(node, vmid)
        return self._status_entry(vmid, conf)

    def _status_entry(self, vmid: int, conf: CtConfig) -> dict[str, object]:
        values = conf.values
        runtime = self.backend.runtime(vmid)
        state, pid = runtime.state, runtime.pid
        entry: dict[str, object] = {
            "vmid": vmid, "name": values.get("hostname", f"CT{vmid}"), "status": state,
            "type": "lxc", "cpus": int(values.get("cores", os.cpu_count() or 1)),
            "maxmem": int(values.get("memory", DEFAULT_MEMORY)) * 2**20,
            "maxswap": int(values.get("swap", DEFAULT_SWAP)) * 2**20,
            "maxdisk": _size_bytes(values.get("rootfs", "")),
            "disk": self.backend.volume_usage(vmid) if state == "running" else 0,
            "mem": runtime.memory, "swap": 0,
            "cpu": 0, "uptime": _uptime(pid), "netin": 0, "netout": 0, "diskread": 0,
            "diskwrite": 0, "ha": {"managed": 0}, "template": int(values.get("template", 0)),
        }
        if pid:
            entry["pid"] = pid
        for key in ("lock", "tags"):
            if values.get(key):
                entry[key] = values[key]
        return entry

    def list_cts(self, node: str) -> list[dict[str, object]]:
        self.check_node(node)
        return [self._status_entry(vmid, conf) for vmid, conf in self.configs(node)]

    def start(self, node: str, vmid: int, user: str) -> str:
        with self.lock(vmid):
            conf = self.load(node, vmid)
            self.check_lock(conf)
            self.check_no_task(vmid)
            if self.backend.state(vmid) == "running":
                raise ApiError(500, f"CT {vmid} already running")
        return self.tasks.start(node, "vzstart", str(vmid), user,
                                lambda log: self._start(node, vmid, log))

    def _start(self, node: str, vmid: int, log: TaskLog) -> None:
        self._fault_point(vmid)
        with self.lock(vmid):
            conf = self.load(node, vmid)
            if conf.pending or conf.pending_delete:
                conf.values = conf.with_pending()
                conf.pending, conf.pending_delete = {}, []
                self.save(node, vmid, conf)
                log.write("applied pending changes")
            spec = self.guest_spec(vmid, conf.values)
        try:
            self.backend.setup_guest(spec)
            self.backend.start(spec)
        except BackendError as exc:
            raise TaskFailed(f"startup for container '{vmid}' failed: {exc}") from exc

    def _power(self, node: str, vmid: int, user: str, kind: str,
               action: Callable[[TaskLog], None], must_run: bool = True) -> str:
        with self.lock(vmid):
            conf = self.load(node, vmid)
            if kind != "vzstop":
                self.check_lock(conf)
            self.check_no_task(vmid)
            if must_run and self.backend.state(vmid) != "running":
                raise ApiError(500, f"CT {vmid} not running")

        def worker(log: TaskLog) -> None:
            self._fault_point(vmid)
            action(log)

        return self.tasks.start(node, kind, str(vmid), user, worker)

    def stop(self, node: str, vmid: int, user: str) -> str:
        return self._power(node, vmid, user, "vzstop", lambda log: self.backend.stop(vmid))

    def shutdown(self, node: str, vmid: int, user: str, timeout: int, force: bool) -> str:
        def action(log: TaskLog) -> None:
            try:
                self.backend.shutdown(vmid, timeout, force)
            except BackendError as exc:
                raise TaskFailed(str(exc)) from exc

        return self._power(node, vmid, user, "vzshutdown", action)

    def reboot(self, node: str, vmid: int, user: str, timeout: int) -> str:
        def action(log: TaskLog) -> None:
            self.backend.shutdown(vmid, timeout, force=True)
            self._start(node, vmid, log)

        return self._power(node, vmid, user, "vzreboot", action)

    # -- destroy -------------------------------------------------------------
    def destroy(self, node: str, vmid: int, user: str, force: bool) -> str:
        with self.lock(vmid):
            conf = self.load(node, vmid)
            self.check_lock(conf)
            self.check_no_task(vmid)
            if conf.values.get("protection") == "1":
                raise ApiError(500, f"can't remove CT {vmid} - protection mode enabled")
            if self.backend.state(vmid) == "running" and not force:
                raise ApiError(500, f"CT {vmid} is running - destroy failed")
            conf.values["lock"] = "destroyed"
            self.save(node, vmid, conf)

        def worker(log: TaskLog) -> None:
            self.faults.task_delay(vmid)
            if reason := self.faults.take_task_failure(vmid):
                with self.lock(vmid):
                    conf = self.load(node, vmid)
                    conf.values.pop("lock", None)
                    self.save(node, vmid, conf)
                raise TaskFailed(reason)
            self.backend.destroy(vmid)
            self.conf_path(node, vmid).unlink(missing_ok=True)
            log.write(f"purging CT {vmid} from related configurations..")

        return self.tasks.start(node, "vzdestroy", str(vmid), user, worker)

    # -- snapshots -----------------------------------------------------------
    def list_snapshots(self, node: str, vmid: int) -> list[dict[str, object]]:
        conf = self.load(node, vmid)
        out: list[dict[str, object]] = []
        for name, snap in conf.snapshots.items():
            entry: dict[str, object] = {"name": name, "description": snap.get("description", ""),
                                        "snaptime": int(snap.get("snaptime", 0))}
            if snap.get("parent"):
                entry["parent"] = snap["parent"]
            out.append(entry)
        current: dict[str, object] = {"name": "current", "description": "You are here!",
                                      "running": int(self.backend.state(vmid) == "running")}
        if conf.values.get("parent"):
            current["parent"] = conf.values["parent"]
        return [*out, current]

    def _locked_task(self, node: str, vmid: int, lock: str, kind: str, user: str,
                     check: Callable[[CtConfig], None], work: Callable[[TaskLog], None]) -> str:
        with self.lock(vmid):
            conf = self.load(node, vmid)
            self.check_lock(conf)
            self.check_no_task(vmid)
            check(conf)
            conf.values["lock"] = lock
            self.save(node, vmid, conf)

        def worker(log: TaskLog) -> None:
            try:
                self._fault_point(vmid)
                work(log)
            finally:
                with self.lock(vmid):
                    conf = self.load(node, vmid)
                    conf.values.pop("lock", None)
                    self.save(node, vmid, conf)

        return self.tasks.start(node, kind, str(vmid), user, worker)

    def snapshot(self, node: str, vmid: int, name: str, description: str | None, user: str) -> str:
        def check(conf: CtConfig) -> None:
            if name in conf.snapshots:
                raise ApiError(500, f"snapshot name '{name}' already used")

        def work(log: TaskLog) -> None:
            log.write(f"create snapshot '{name}'")
            self.backend.snapshot(vmid, name)
            with self.lock(vmid):
                conf = self.load(node, vmid)
                snap = {k: v for k, v in conf.values.items() if k not in {"lock", "parent"}}
                if conf.values.get("parent"):
                    snap["parent"] = conf.values["parent"]
                snap["snaptime"] = str(int(time.time()))
                snap.pop("description", None)
                if description:
                    snap["description"] = description
                conf.snapshots[name] = snap
                conf.values["parent"] = name
                self.save(node, vmid, conf)

        return self._locked_task(node, vmid, "snapshot", "vzsnapshot", user, check, work)

    def delete_snapshot(self, node: str, vmid: int, name: str, user: str) -> str:
        def check(conf: CtConfig) -> None:
            if name not in conf.snapshots:
                raise ApiError(500, f"snapshot '{name}' does not exist")

        def work(log: TaskLog) -> None:
            self.backend.delete_snapshot(vmid, name)
            with self.lock(vmid):
                conf = self.load(node, vmid)
                removed = conf.snapshots.pop(name)
                for section in [conf.values, *conf.snapshots.values()]:
                    if section.get("parent") == name:
                        if removed.get("parent"):
                            section["parent"] = removed["parent"]
                        else:
                            section.pop("parent")
                self.save(node, vmid, conf)
            log.write(f"removed snapshot '{name}'")

        return self._locked_task(node, vmid, "snapshot-delete", "vzdelsnapshot", user, check, work)

    def rollback(self, node: str, vmid: int, name: str, start: bool, user: str) -> str:
        def check(conf: CtConfig) -> None:
            if name not in conf.snapshots:
                raise ApiError(500, f"snapshot '{name}' does not exist")

        def work(log: TaskLog) -> None:
            log.write(f"rolling back CT {vmid} to snapshot '{name}'")
            self.backend.rollback(vmid, name)
            with self.lock(vmid):
                conf = self.load(node, vmid)
                snap = conf.snapshots[name]
                values = {k: v for k, v in snap.items() if k not in {"snaptime", "parent"}}
                values["parent"] = name
                values["lock"] = "rollback"
                conf.values, conf.pending, conf.pending_delete = values, {}, []
                self.save(node, vmid, conf)
            if start:
                with self.lock(vmid):
                    conf = self.load(node, vmid)
                    conf.values.pop("lock", None)
                    self.save(node, vmid, conf)
                self._start(node, vmid, log)

        return self._locked_task(node, vmid, "rollback", "vzrollback", user, check, work)

    # -- cluster ---------------------------------------------------------------
    def nextid(self, wanted: int | None) -> int:
        used = set(self.vmids()) | self.backend.known_vmids()
        if wanted is not None:
            if wanted in used:
                raise param_error("vmid", f"VM {wanted} already exists")
            return wanted
        vmid = 100
        while vmid in used:
            vmid += 1
        return vmid

    def resources(self, kind: str | None) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        if kind in (None, "node"):
            out += [dict(self.node_entry(node), id=f"node/{node}", type="node") for node in NODES]
        if kind in (None, "storage"):
            for node in NODES:
                st = self.storage_status()
                out.append({"id": f"storage/{node}/{STORAGE}", "type": "storage", "node": node,
                            "storage": STORAGE, "status": "available", "plugintype": "dir",
                            "content": st["content"], "disk": st["used"], "maxdisk": st["total"],
                            "shared": 0})
        if kind in (None, "vm"):
            for node in NODES:
                for vmid, conf in self.configs(node):
                    entry = self._status_entry(vmid, conf)
                    entry.update(id=f"lxc/{vmid}", node=node, type="lxc")
                    out.append(entry)
        return out

    def node_entry(self, node: str) -> dict[str, object]:
        mem = _meminfo()
        return {"node": node, "status": "online", "cpu": _loadavg() / (os.cpu_count() or 1),
                "maxcpu": os.cpu_count() or 1, "mem": mem["total"] - mem["available"],
                "maxmem": mem["total"], "uptime": int(_host_uptime()), "level": ""}

    def node_status(self, node: str) -> dict[str, object]:
        self.check_node(node)
        mem = _meminfo()
        stat = os.statvfs("/")
        return {
            "uptime": int(_host_uptime()), "loadavg": [f"{x:.2f}" for x in os.getloadavg()],
            "cpu": _loadavg() / (os.cpu_count() or 1), "wait": 0,
            "kversion": " ".join(os.uname()[i] for i in (0, 2, 3)),
            "pveversion": "pve-manager/9.1.3/pvelab",
            "cpuinfo": {"cpus": os.cpu_count() or 1, "cores": os.cpu_count() or 1, "sockets": 1,
                        "model": _cpu_model(), "mhz": "0", "hvm": "1", "user_hz": 100, "flags": ""},
            "memory": {"total": mem["total"], "free": mem["available"],
                       "used": mem["total"] - mem["available"]},
            "swap": {"total": 0, "free": 0, "used": 0},
            "rootfs": {"total": stat.f_blocks * stat.f_frsize, "avail": stat.f_bavail * stat.f_frsize,
                       "free": stat.f_bfree * stat.f_frsize,
                       "used": (stat.f_blocks - stat.f_bfree) * stat.f_frsize},
            "idle": 0, "current-kernel": {"sysname": os.uname().sysname,
                                          "release": os.uname().release,
                                          "version": os.uname().version,
                                          "machine": os.uname().machine},
            "boot-info": {"mode": "legacy-bios"},
        }

    @staticmethod
    def network(node: str, kind: str | None) -> list[dict[str, object]]:
        if kind not in (None, "bridge", "any_bridge"):
            return []
        active = Path(f"/sys/class/net/{BRIDGE}/bridge").exists()
        address, prefix = BRIDGE_CIDR.split("/")
        return [{
            "iface": BRIDGE, "type": "bridge", "method": "static", "families": ["inet"],
            "cidr": BRIDGE_CIDR, "address": address, "netmask": prefix,
            "bridge_ports": "", "bridge_stp": "off", "bridge_fd": "0", "autostart": 1,
            "active": 1 if active else 0, "priority": 5,
            "comments": "PVE lab bridge: containers use its address as their gateway\n",
        }]

    # -- start-up recovery -------------------------------------------------------
    def recover(self, log: Callable[[str], None]) -> None:
        """After a crash or reboot: drop half-created CTs and leftovers, remount, onboot."""
        configured = set()
        for node in NODES:
            for vmid in self.vmids(node):
                conf = self.load(node, vmid)
                if conf.values.get("lock") == "create":
                    log(f"CT {vmid}: removing a create that never finished")
                    self.backend.destroy(vmid)
                    self.conf_path(node, vmid).unlink()
                    continue
                configured.add(vmid)
                if self.backend.volume_dir(vmid).exists():
                    self.backend.mount(vmid)
        for vmid in sorted(self.backend.known_vmids() - configured):
            log(f"CT {vmid}: removing leftovers that have no config")
            self.backend.destroy(vmid)
        boot = []
        for node in NODES:
            for vmid in self.vmids(node):
                values = self.load(node, vmid).values
                if values.get("onboot") == "1" and self.backend.state(vmid) != "running":
                    boot.append((_startup_order(values.get("startup", "")), vmid, node))
        for _, vmid, node in sorted(boot):
            log(f"CT {vmid}: onboot=1, starting")
            self.tasks.start(node, "startall", str(vmid), "root@pam",
                             lambda task_log, n=node, v=vmid: self._start(n, v, task_log))


def generate_mac() -> str:
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + "".join(f":{b:02X}" for b in tail)


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _split_list(value: object) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else re.split(r"[,;\s]+", str(value))
    return [str(x) for x in items if str(x)]


def _size_bytes(rootfs: str) -> int:
    match = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)", rootfs)
    if not match:
        return 0
    return int(float(match.group(1)) * 1024 ** ("KMGT".index(match.group(2) or "K") + 1))


def _format_size(size: int) -> str:
    for unit, power in (("T", 4), ("G", 3), ("M", 2)):
        if size % 1024**power == 0:
            return f"{size // 1024**power}{unit}"
    return f"{size // 1024}K"


def _hash_password(password: str) -> str:
    proc = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _uptime(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        return max(0, int(time.time() - os.stat(f"/proc/{pid}").st_ctime))
    except OSError:
        return 0


def _meminfo() -> dict[str, int]:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0]) * 1024
    return {"total": info["MemTotal"], "available": info["MemAvailable"]}


def _loadavg() -> float:
    return os.getloadavg()[0]


def _host_uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _startup_order(value: str) -> int:
    match = re.search(r"(?:^|,)(?:order=)?(\d+)", value)
    return int(match.group(1)) if match else 2**31
