"""The lab raises the host's inotify and key limits while it is up, and puts them back."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import hostsetup
from lab.config import LabPaths


@pytest.fixture
def sysctl(tmp_path, monkeypatch) -> dict[str, Path]:
    files = {}
    for name in hostsetup.KERNEL_LIMITS:
        files[name] = tmp_path / "proc" / name
        files[name].parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(hostsetup, "_sysctl_path", lambda name: files[name])
    files["fs.inotify.max_user_instances"].write_text("128\n")  # Debian's default
    files["fs.inotify.max_user_watches"].write_text("1048576\n")  # already above the lab's
    files["kernel.keys.maxkeys"].write_text("200\n")
    return files


def value(sysctl: dict[str, Path], name: str) -> int:
    return int(sysctl[name].read_text())


def test_up_raises_low_limits_only_and_down_puts_back_what_it_found(tmp_path, sysctl):
    paths = LabPaths(tmp_path / "lab")

    hostsetup.ensure_kernel_limits(paths)

    assert value(sysctl, "fs.inotify.max_user_instances") == 1024
    assert value(sysctl, "kernel.keys.maxkeys") == 2000
    assert value(sysctl, "fs.inotify.max_user_watches") == 1048576  # never lowered

    hostsetup.ensure_kernel_limits(paths)  # a second `lab up` (or one after a killed run)
    hostsetup.restore_kernel_limits(paths)

    assert value(sysctl, "fs.inotify.max_user_instances") == 128
    assert value(sysctl, "kernel.keys.maxkeys") == 200
    assert value(sysctl, "fs.inotify.max_user_watches") == 1048576
    assert not (paths.root / "host-limits.json").exists()


def test_down_without_an_up_changes_nothing(tmp_path, sysctl):
    hostsetup.restore_kernel_limits(LabPaths(tmp_path / "lab"))

    assert value(sysctl, "fs.inotify.max_user_instances") == 128
