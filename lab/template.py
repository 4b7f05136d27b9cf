"""Builds the lab's container template once, with debootstrap, and caches it.

The template is a Debian 12 root filesystem carrying every package in
`template-packages.txt`, packed like a PVE vztmpl (`.tar.zst`) into the `local`
storage. Its file name holds a hash of the package list and of this builder's
recipe, so a changed list means a new template and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from lab.config import LabPaths

PACKAGES_FILE = Path(__file__).with_name("template-packages.txt")
MIRROR = os.environ.get("PVE_LAB_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# Bump when the recipe below changes in a way that must rebuild the template.
RECIPE_VERSION = "4"
# Packages debootstrap installs itself; the rest go through apt in the chroot,
# which resolves dependencies and honours policy-rc.d.
BOOTSTRAP_INCLUDE = ("systemd", "systemd-sysv", "dbus", "ca-certificates", "iproute2", "ifupdown")
# Units that cannot work inside a container; masked so `systemctl is-system-running`
# answers `running` instead of `degraded`.
MASKED_UNITS = (
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "systemd-journald-audit.socket",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "getty-static.service",
    # Host-side jobs with no meaning in a CT; they cost boot time in every container.
    "modprobe@.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "fstrim.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
)
# Installed but left for the roles to enable: a fresh container runs only sshd.
DISABLED_UNITS = (
    "nginx.service",
    "postgresql.service",
    "prometheus.service",
    "prometheus-alertmanager.service",
    "prometheus-node-exporter.service",
    "prometheus-blackbox-exporter.service",
    "prometheus-nginx-exporter.service",
    "prometheus-postgres-exporter.service",
    "cron.service",
)
# The lab writes host keys at create time, as PVE does; this unit only covers a CT
# whose keys were deleted.
HOSTKEY_UNIT = """\
[Unit]
Description=Generate missing SSH host keys (lab template)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
"""


class TemplateError(RuntimeError):
    """The template could not be built."""


def read_packages(path: Path = PACKAGES_FILE) -> list[str]:
    """The package list, without comments and blank lines."""
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def template_name(packages: Iterable[str]) -> str:
    """PVE-style vztmpl file name; the release field carries the recipe hash."""
    digest = hashlib.sha256()
    digest.update(RECIPE_VERSION.encode())
    for name in sorted(set(packages)):
        digest.update(name.encode() + b"\n")
    return f"debian-12-pvelab_12.0-{digest.hexdigest()[:8]}_amd64.tar.zst"


def current_template(paths: LabPaths) -> Path:
    return paths.template_cache / template_name(read_packages())


def _log(message: str, started: float) -> None:
    print(f"[template {time.monotonic() - started:6.1f}s] {message}", flush=True)


def _run(cmd: list[str], started: float, show: tuple[str, ...] = ()) -> None:
    """Runs a build step, printing only the lines that show progress."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    tail: list[str] = []
    for raw in proc.stdout or ():
        line = raw.rstrip()
        tail = [*tail, line][-30:]
        if show and line.startswith(show):
            _log(line, started)
    if proc.wait() != 0:
        raise TemplateError(
            f"Failed to build template: {' '.join(cmd[:3])} exited {proc.returncode}:\n"
            + "\n".join(tail)
        )


def _chroot(rootfs: Path, started: float, *args: str, show: tuple[str, ...] = ()) -> None:
    _run(["chroot", str(rootfs), *args], started, show)


def _install_packages(rootfs: Path, packages: list[str], started: float) -> None:
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts while the template is built\nexit 101\n")
    policy.chmod(0o755)
    mounts = [("proc", rootfs / "proc"), ("sysfs", rootfs / "sys")]
    for fstype, target in mounts:
        subprocess.run(["mount", "-t", fstype, fstype, str(target)], check=True)
    try:
        _chroot(rootfs, started, "apt-get", "update", "-q")
        _chroot(
            rootfs, started,
            "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages,
            show=("Setting up",),
        )
        _chroot(rootfs, started, "apt-get", "clean")
    finally:
        for _, target in reversed(mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)
        policy.unlink()


def _finish_rootfs(rootfs: Path, started: float) -> None:
    """Makes the tree a template: no host keys, no machine id, quiet units."""
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/systemd/system/pvelab-ssh-hostkeys.service").write_text(HOSTKEY_UNIT)
    (rootfs / "etc/ssh/sshd_config.d/pvelab-hostkeys.conf").write_text(
        "# Host keys the PVE lab writes at create time (no RSA: see lab/backend.py)\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n")
    _chroot(rootfs, started, "systemctl", "enable", "pvelab-ssh-hostkeys.service")
    _chroot(rootfs, started, "systemctl", "mask", *MASKED_UNITS)
    present = [u for u in DISABLED_UNITS if (rootfs / "lib/systemd/system" / u).exists()]
    if present:
        _chroot(rootfs, started, "systemctl", "disable", *present)
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (rootfs / "etc/default/locale").write_text("LANG=C.UTF-8\n")
    (rootfs / "etc/hostname").write_text("localhost\n")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    (rootfs / "etc/resolv.conf").write_text("")
    # journald in many containers on one host: keep each one small.
    journald = rootfs / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "pvelab.conf").write_text("[Journal]\nSystemMaxUse=64M\n")


def build(paths: LabPaths, force: bool = False) -> Path:
    """Returns the cached template, building it first when the list changed."""
    packages = read_packages()
    target = paths.template_cache / template_name(packages)
    if target.exists() and not force:
        return target
    started = time.monotonic()
    _log(f"building {target.name} ({len(packages)} packages); cached afterwards", started)
    workdir = paths.root / "build" / target.name.removesuffix(".tar.zst")
    if workdir.exists():
        _log("removing the leftovers of an interrupted build", started)
        subprocess.run(["umount", "-R", "-l", str(workdir / "rootfs")], check=False,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(workdir)
    rootfs = workdir / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        _log(f"debootstrap {SUITE} from {MIRROR}", started)
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BOOTSTRAP_INCLUDE)}",
             SUITE, str(rootfs), MIRROR],
            started, show=("I: Retrieving Release", "I: Base system installed", "I: Installing core"),
        )
        _log("installing the stack's packages", started)
        _install_packages(rootfs, packages, started)
        _finish_rootfs(rootfs, started)
        _log("packing", started)
        paths.template_cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        _run(
            ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3",
             "-C", str(rootfs), "-cf", str(partial), "."],
            started,
        )
        partial.rename(target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _log(f"done: {target} ({target.stat().st_size // 2**20} MiB)", started)
    return target


if __name__ == "__main__":
    print(build(LabPaths.default(), force="--force" in sys.argv))
