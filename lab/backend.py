"""Backs each PVE container with a real LXC container on this machine.

A container's root filesystem is an overlay: the unpacked template is the
read-only lower layer (one copy per template, plus a copy shifted to host uid
100000 for unprivileged containers) and the container's own volume holds the
upper layer, so creating a container copies nothing. Snapshots copy the upper
layer; rollback puts the copy back. LXC runs the container from the mounted
overlay, in the lab's own lxcpath, with a veth on the named bridge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.config import UNPRIV_BASE, UNPRIV_RANGE, LabPaths


class BackendError(RuntimeError):
    """An LXC or filesystem operation failed; the message says which and why."""


USAGE_TTL = 10.0


@dataclass(frozen=True)
class Runtime:
    state: str
    pid: int | None
    memory: int


@dataclass(frozen=True)
class NetDevice:
    index: int
    name: str
    bridge: str
    hwaddr: str
    ip: str | None = None
    gw: str | None = None
    ip6: str | None = None
    gw6: str | None = None
    mtu: int | None = None


@dataclass(frozen=True)
class GuestSpec:
    """What a container needs at start, derived from its PVE config."""

    vmid: int
    hostname: str
    unprivileged: bool
    memory_mb: int
    swap_mb: int
    cores: int | None
    cpulimit: float | None
    nets: tuple[NetDevice, ...]
    nameserver: str | None = None
    searchdomain: str | None = None
    nesting: bool = False


def _run(cmd: list[str], what: str, timeout: float = 120) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BackendError(f"Failed to {what}: '{cmd[0]}' timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BackendError(f"Failed to {what}: {' / '.join(detail) or f'exit {proc.returncode}'}")
    return proc.stdout


def _cgroup_v1_memory() -> bool:
    return Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()


def _apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


class LxcBackend:
    def __init__(self, paths: LabPaths) -> None:
        self.paths = paths
        self._base_lock = threading.Lock()
        self._usage: dict[int, tuple[float, int]] = {}

    # -- layout ---------------------------------------------------------------
    def volume_dir(self, vmid: int) -> Path:
        return self.paths.images / str(vmid) / f"subvol-{vmid}-disk-0.subvol"

    def mountpoint(self, vmid: int) -> Path:
        return self.paths.rootfs / str(vmid)

    def lxc_dir(self, vmid: int) -> Path:
        return self.paths.lxcpath / str(vmid)

    def _lxc(self, tool: str, vmid: int, *args: str) -> list[str]:
        return [tool, "-P", str(self.paths.lxcpath), "-n", str(vmid), *args]

    # -- templates ------------------------------------------------------------
    def base_for(self, template: Path, unprivileged: bool) -> Path:
        """The unpacked template, shifted to the unprivileged range when asked."""
        name = template.name.removesuffix(".tar.zst")
        target = self.paths.base / name / ("unpriv" if unprivileged else "priv")
        with self._base_lock:
            if (target / ".complete").exists():
                return target
            plain = self.paths.base / name / "priv"
            if not (plain / ".complete").exists():
                self._unpack(template, plain)
            if unprivileged:
                self._shifted_copy(plain, target)
        return target

    def _unpack(self, template: Path, target: Path) -> None:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        _run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd",
              "-C", str(target), "-xf", str(template)], f"unpack template {template.name}", 600)
        (target / ".complete").touch()

    def _shifted_copy(self, source: Path, target: Path) -> None:
        shutil.rmtree(target, ignore_errors=True)
        _run(["cp", "-a", str(source), str(target)], "copy template for unprivileged use", 600)
        (target / ".complete").unlink()
        for path in _walk(target):
            st = os.lstat(path)
            if st.st_uid >= UNPRIV_BASE and st.st_gid >= UNPRIV_BASE:
                continue
            mode = st.st_mode & 0o7777
            os.lchown(path, _shift(st.st_uid), _shift(st.st_gid))
            if not os.path.islink(path) and mode & 0o6000:
                os.chmod(path, mode)  # chown drops setuid/setgid bits
        os.chown(target, UNPRIV_BASE, UNPRIV_BASE)
        (target / ".complete").touch()

    # -- volumes --------------------------------------------------------------
    def create_volume(self, vmid: int, base: Path, unprivileged: bool) -> None:
        vol = self.volume_dir(vmid)
        if vol.exists():
            raise BackendError(f"Failed to allocate volume for CT {vmid}: '{vol}' already exists")
        (vol / "upper").mkdir(parents=True)
        (vol / "work").mkdir()
        (vol / "lower").symlink_to(base)
        if unprivileged:
            os.chown(vol / "upper", UNPRIV_BASE, UNPRIV_BASE)
        self.mount(vmid)

    def is_mounted(self, vmid: int) -> bool:
        return os.path.ismount(self.mountpoint(vmid))

    def mount(self, vmid: int) -> Path:
        target = self.mountpoint(vmid)
        if self.is_mounted(vmid):
            return target
        vol = self.volume_dir(vmid)
        lower = (vol / "lower").resolve()
        if not (lower / ".complete").exists():
            raise BackendError(f"Failed to mount rootfs of CT {vmid}: template layer '{lower}' is missing")
        target.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={lower},upperdir={vol / 'upper'},workdir={vol / 'work'}"
        _run(["mount", "-t", "overlay", f"pvelab-{vmid}", "-o", options, str(target)],
             f"mount rootfs of CT {vmid}")
        return target

    def unmount(self, vmid: int) -> None:
        if self.is_mounted(vmid):
            _run(["umount", str(self.mountpoint(vmid))], f"unmount rootfs of CT {vmid}")

    def volume_usage(self, vmid: int) -> int:
        """Bytes the container wrote on top of its template.

        Walking the upper layer costs milliseconds per call, so like PVE's pvestatd the
        figure is refreshed at most every USAGE_TTL seconds.
        """
        now = time.monotonic()
        cached = self._usage.get(vmid)
        if cached and now - cached[0] < USAGE_TTL:
            return cached[1]
        total = self._walk_usage(vmid)
        self._usage[vmid] = (now, total)
        return total

    def _walk_usage(self, vmid: int) -> int:
        total = 0
        for path in _walk(self.volume_dir(vmid) / "upper"):
            try:
                total += os.lstat(path).st_size
            except OSError:
                continue
        return total

    # -- guest setup (what PVE's LXC::Setup does at create and start) --------
    def setup_guest(self, spec: GuestSpec, ssh_keys: str | None = None,
                    password_hash: str | None = None) -> None:
        root = self.mount(spec.vmid)
        owner = UNPRIV_BASE if spec.unprivileged else 0
        write = _GuestWriter(root, owner)
        short = spec.hostname.split(".", 1)[0]
        write.file("etc/hostname", f"{short}\n")
        write.file("etc/hosts", _hosts_file(spec))
        write.file("etc/network/interfaces", _interfaces_file(spec.nets))
        write.file("etc/resolv.conf", _resolv_conf(spec))
        if not (root / "etc/ssh/ssh_host_ed25519_key").exists():
            write.host_keys(spec.hostname)
        if ssh_keys:
            write.directory("root/.ssh", 0o700)
            write.file("root/.ssh/authorized_keys", ssh_keys.rstrip("\n") + "\n", 0o600)
        if password_hash:
            write.set_root_password(password_hash)

    # -- LXC ------------------------------------------------------------------
    def write_lxc_config(self, spec: GuestSpec) -> None:
        lines = [
            "# generated by the PVE lab from its CT config; edits are overwritten at start",
            "lxc.include = /usr/share/lxc/config/common.conf",
        ]
        if spec.unprivileged:
            lines += [
                "lxc.include = /usr/share/lxc/config/userns.conf",
                f"lxc.idmap = u 0 {UNPRIV_BASE} {UNPRIV_RANGE}",
                f"lxc.idmap = g 0 {UNPRIV_BASE} {UNPRIV_RANGE}",
            ]
        if spec.nesting:
            lines.append("lxc.include = /usr/share/lxc/config/nesting.conf")
        if not _apparmor_enabled():
            lines.append("lxc.apparmor.profile = unconfined")
        lines += [
            "lxc.arch = amd64",
            f"lxc.uts.name = {spec.hostname.split('.', 1)[0]}",
            f"lxc.rootfs.path = dir:{self.mountpoint(spec.vmid)}",
            "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed",
            "lxc.tty.max = 2",
            "lxc.pty.max = 1024",
            f"lxc.log.file = {self.lxc_dir(spec.vmid) / 'lxc.log'}",
            "lxc.log.level = WARN",
        ]
        lines += _limits(spec)
        for net in spec.nets:
            prefix = f"lxc.net.{net.index}"
            lines += [
                f"{prefix}.type = veth",
                f"{prefix}.link = {net.bridge}",
                f"{prefix}.flags = up",
                f"{prefix}.name = {net.name}",
                f"{prefix}.hwaddr = {net.hwaddr}",
                f"{prefix}.veth.pair = veth{spec.vmid}i{net.index}",
            ]
            if net.mtu:
                lines.append(f"{prefix}.mtu = {net.mtu}")
        target = self.lxc_dir(spec.vmid)
        target.mkdir(parents=True, exist_ok=True)
        (target / "config").write_text("\n".join(lines) + "\n")

    def state(self, vmid: int) -> str:
        """'running' or 'stopped', as PVE reports it."""
        return self.runtime(vmid).state

    def start(self, spec: GuestSpec) -> None:
        for net in spec.nets:
            if not Path(f"/sys/class/net/{net.bridge}/bridge").exists():
                raise BackendError(f"bridge '{net.bridge}' does not exist")
        self.forget_neighbours(spec)
        self.mount(spec.vmid)
        self.write_lxc_config(spec)
        _run(self._lxc("lxc-start", spec.vmid), f"start CT {spec.vmid}", 60)
        _run(self._lxc("lxc-wait", spec.vmid, "-s", "RUNNING", "-t", "30"),
             f"wait for CT {spec.vmid} to run", 40)

    @staticmethod
    def forget_neighbours(spec: GuestSpec) -> None:
        """Drops the host's ARP entries for the CT's addresses before it starts.

        A CT re-created at the address of one just destroyed has a new MAC; the host would
        keep sending to the old MAC while its entry stays REACHABLE (up to 45 s), so SSH to
        the new CT would hang that long. Nothing in the guest announces the change (ifupdown
        sends no gratuitous ARP).
        """
        for net in spec.nets:
            if net.ip and "/" in net.ip:
                subprocess.run(["ip", "neigh", "flush", "to", net.ip.split("/")[0], "dev", net.bridge],
                               capture_output=True, check=False, timeout=10)

    def stop(self, vmid: int) -> None:
        if self.state(vmid) == "running":
            _run(self._lxc("lxc-stop", vmid, "-k"), f"stop CT {vmid}", 60)

    def shutdown(self, vmid: int, timeout: int, force: bool) -> None:
        if self.state(vmid) != "running":
            return
        proc = subprocess.run(self._lxc("lxc-stop", vmid, "-t", str(timeout), "--nokill"),
                              capture_output=True, text=True, check=False, timeout=timeout + 30)
        if proc.returncode != 0 and self.state(vmid) == "running":
            if not force:
                raise BackendError(f"CT {vmid} did not shut down within {timeout}s")
            self.stop(vmid)

    def apply_limits(self, spec: GuestSpec) -> None:
        """Live resource changes on a running container, as PVE hot-plugs them."""
        if self.state(spec.vmid) != "running":
            return
        settings = []
        for line in _limits(spec):
            key, value = line.split(" = ", 1)
            settings.append((key.removeprefix("lxc.cgroup2.").removeprefix("lxc.cgroup."), value))
        # memsw must stay >= memory: one more pass settles either order of change.
        for key, value in settings + settings:
            subprocess.run(self._lxc("lxc-cgroup", spec.vmid, key, value), capture_output=True,
                           check=False, timeout=30)

    def freeze(self, vmid: int) -> bool:
        if self.state(vmid) != "running":
            return False
        _run(self._lxc("lxc-freeze", vmid), f"freeze CT {vmid}")
        return True

    def unfreeze(self, vmid: int) -> None:
        _run(self._lxc("lxc-unfreeze", vmid), f"unfreeze CT {vmid}")

    def runtime(self, vmid: int) -> Runtime:
        """State, init PID and memory use from one lxc-info call (status reads are hot)."""
        if not (self.lxc_dir(vmid) / "config").exists():
            return Runtime("stopped", None, 0)
        proc = subprocess.run(self._lxc("lxc-info", vmid, "-s", "-p", "-S", "-H"),
                              capture_output=True, text=True, check=False, timeout=30)
        fields = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        state = "running" if fields.get("State") in {"RUNNING", "FROZEN"} else "stopped"
        pid = fields.get("PID", "")
        memory = fields.get("Memory use", "")
        return Runtime(state, int(pid) if pid.isdigit() else None,
                       int(memory) if memory.isdigit() else 0)

    # -- snapshots --------------------------------------------------------------
    def snapshot_dir(self, vmid: int, name: str) -> Path:
        return self.paths.images / str(vmid) / "snapshots" / name

    def snapshot(self, vmid: int, name: str) -> None:
        """Copy the overlay's upper layer: in bulk while the CT runs, then the differences
        with it frozen. PVE's snapshots on ZFS or LVM-thin pause a CT for milliseconds; a
        copy made entirely frozen stalled every request for seconds (a release's venvs
        weigh hundreds of MB), so the snapshot stage itself failed user requests."""
        target = self.snapshot_dir(vmid, name)
        if target.exists():
            raise BackendError(f"snapshot '{name}' of CT {vmid} already has data at '{target}'")
        target.parent.mkdir(parents=True, exist_ok=True)
        upper, partial = self.volume_dir(vmid) / "upper", target.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted snapshot
        _run(["cp", "-a", "--reflink=auto", str(upper), str(partial)], f"snapshot CT {vmid}", 600)
        frozen = self.freeze(vmid)
        try:
            os.sync()
            _run(["rsync", "-aHAX", "--numeric-ids", "--delete", f"{upper}/", f"{partial}/"],
                 f"snapshot CT {vmid}", 600)
        finally:
            if frozen:
                self.unfreeze(vmid)
        partial.rename(target)

    def rollback(self, vmid: int, name: str) -> None:
        source = self.snapshot_dir(vmid, name)
        if not source.exists():
            raise BackendError(f"snapshot '{name}' of CT {vmid} has no data at '{source}'")
        self.stop(vmid)
        self.unmount(vmid)
        vol = self.volume_dir(vmid)
        shutil.rmtree(vol / "upper")
        shutil.rmtree(vol / "work")
        (vol / "work").mkdir()
        _run(["cp", "-a", "--reflink=auto", str(source), str(vol / "upper")],
             f"roll back CT {vmid}", 600)
        self.mount(vmid)

    def delete_snapshot(self, vmid: int, name: str) -> None:
        shutil.rmtree(self.snapshot_dir(vmid, name), ignore_errors=True)

    # -- removal --------------------------------------------------------------
    def destroy(self, vmid: int) -> None:
        if (self.lxc_dir(vmid) / "config").exists():
            subprocess.run(self._lxc("lxc-stop", vmid, "-k"), capture_output=True, check=False,
                           timeout=60)
        self.unmount(vmid)
        for path in (self.paths.images / str(vmid), self.lxc_dir(vmid), self.mountpoint(vmid)):
            shutil.rmtree(path, ignore_errors=True)

    def known_vmids(self) -> set[int]:
        """Every CT that left traces on disk, whether or not it has a config."""
        found: set[int] = set()
        for parent in (self.paths.images, self.paths.lxcpath, self.paths.rootfs):
            if parent.is_dir():
                found |= {int(p.name) for p in parent.iterdir() if p.name.isdigit()}
        return found


class _GuestWriter:
    """Writes files into a container's rootfs as the container's root owns them."""

    def __init__(self, root: Path, owner: int) -> None:
        self.root = root
        self.owner = owner

    def _target(self, relpath: str) -> Path:
        target = self.root / relpath
        # A container can plant symlinks; never follow one out of its rootfs.
        resolved = target.parent.resolve()
        if resolved != self.root.resolve() and self.root.resolve() not in resolved.parents:
            raise BackendError(f"refusing to write '{relpath}': it leaves the container's rootfs")
        if target.is_symlink():
            target.unlink()
        return target

    def directory(self, relpath: str, mode: int) -> None:
        target = self._target(relpath)
        target.mkdir(mode=mode, exist_ok=True)
        os.chown(target, self.owner, self.owner)
        target.chmod(mode)

    def file(self, relpath: str, content: str, mode: int = 0o644) -> None:
        target = self._target(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.pvelab")
        tmp.write_text(content)
        os.chown(tmp, self.owner, self.owner)
        tmp.chmod(mode)
        os.replace(tmp, target)

    def host_keys(self, hostname: str) -> None:
        """SSH host keys made on the host at create time, as PVE's setup does.

        ed25519 and ECDSA only: an RSA-3072 key costs about a CPU-second per
        container and every current client speaks one of these two.
        """
        for kind in ("ed25519", "ecdsa"):
            with tempfile.TemporaryDirectory() as tmp:
                key = Path(tmp) / "key"
                _run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{hostname}",
                      "-f", str(key)], f"generate the {kind} SSH host key")
                self.file(f"etc/ssh/ssh_host_{kind}_key", key.read_text(), 0o600)
                self.file(f"etc/ssh/ssh_host_{kind}_key.pub",
                          key.with_suffix(".pub").read_text(), 0o644)

    def set_root_password(self, password_hash: str) -> None:
        shadow = self._target("etc/shadow")
        lines = []
        for line in shadow.read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "root":
                fields[1] = password_hash
            lines.append(":".join(fields))
        st = shadow.stat()
        self.file("etc/shadow", "\n".join(lines) + "\n", st.st_mode & 0o7777)
        os.chown(shadow, self.owner, st.st_gid if st.st_gid >= self.owner else self.owner + 42)


def _hosts_file(spec: GuestSpec) -> str:
    short = spec.hostname.split(".", 1)[0]
    fqdn = spec.hostname if "." in spec.hostname else (
        f"{short}.{spec.searchdomain}" if spec.searchdomain else short)
    names = f"{fqdn} {short}" if fqdn != short else short
    return (
        "127.0.0.1 localhost.localdomain localhost\n"
        f"127.0.1.1 {names}\n"
        "::1 localhost ip6-localhost ip6-loopback\n"
        "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
    )


def _interfaces_file(nets: tuple[NetDevice, ...]) -> str:
    out = ["auto lo", "iface lo inet loopback", ""]
    for net in nets:
        if net.ip in (None, "manual") and net.ip6 in (None, "manual"):
            continue
        out.append(f"auto {net.name}")
        if net.ip == "dhcp":
            out += [f"iface {net.name} inet dhcp", ""]
        elif net.ip:
            out += [f"iface {net.name} inet static", f"\taddress {net.ip}"]
            if net.gw:
                out.append(f"\tgateway {net.gw}")
            out.append("")
        if net.ip6 and net.ip6 not in ("manual",):
            method = net.ip6 if net.ip6 in ("auto", "dhcp") else "static"
            out.append(f"iface {net.name} inet6 {method}")
            if method == "static":
                out.append(f"\taddress {net.ip6}")
                if net.gw6:
                    out.append(f"\tgateway {net.gw6}")
            out.append("")
    return "\n".join(out) + "\n"


def _resolv_conf(spec: GuestSpec) -> str:
    out = ["# written by the PVE lab from the CT's nameserver/searchdomain"]
    if spec.searchdomain:
        out.append(f"search {spec.searchdomain}")
    for server in (spec.nameserver or "").split():
        out.append(f"nameserver {server}")
    return "\n".join(out) + "\n"


def _limits(spec: GuestSpec) -> list[str]:
    memory = spec.memory_mb * 2**20
    swap = spec.swap_mb * 2**20
    ncpu = os.cpu_count() or 1
    lines = []
    if _cgroup_v1_memory():
        lines.append(f"lxc.cgroup.memory.limit_in_bytes = {memory}")
        if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
            lines.append(f"lxc.cgroup.memory.memsw.limit_in_bytes = {memory + swap}")
        if spec.cores:
            lines.append(f"lxc.cgroup.cpuset.cpus = 0-{min(spec.cores, ncpu) - 1}")
        if spec.cpulimit:
            lines += ["lxc.cgroup.cpu.cfs_period_us = 100000",
                      f"lxc.cgroup.cpu.cfs_quota_us = {int(spec.cpulimit * 100000)}"]
    else:
        lines += [f"lxc.cgroup2.memory.max = {memory}", f"lxc.cgroup2.memory.swap.max = {swap}"]
        if spec.cores:
            lines.append(f"lxc.cgroup2.cpuset.cpus = 0-{min(spec.cores, ncpu) - 1}")
        if spec.cpulimit:
            lines.append(f"lxc.cgroup2.cpu.max = {int(spec.cpulimit * 100000)} 100000")
    return lines


def _shift(ident: int) -> int:
    return ident + UNPRIV_BASE if ident < UNPRIV_RANGE else ident


def _walk(top: Path):
    for dirpath, dirnames, filenames in os.walk(top):
        yield dirpath
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                yield full
        for name in filenames:
            yield os.path.join(dirpath, name)
