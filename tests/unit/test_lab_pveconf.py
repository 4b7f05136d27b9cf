"""PVE's CT config file format: what GET .../config and its digest rest on."""

from __future__ import annotations

import hashlib

import pytest

from lab import pveconf

SAMPLE = """#web front
#second line
arch: amd64
cores: 2
hostname: app1
memory: 1024
net0: name=eth0,bridge=vmbr0923,hwaddr=BC:24:11:00:00:01,ip=10.92.3.121/24,type=veth
parent: before
rootfs: local:121/subvol-121-disk-0.subvol,size=8G

[pve:pending]
delete: swap
memory: 2048

[before]
arch: amd64
hostname: app1
memory: 512
snaptime: 1700000000
"""


def test_round_trip_is_byte_identical_so_the_digest_is_stable():
    conf = pveconf.parse(SAMPLE)
    assert conf.render() == SAMPLE
    assert conf.digest == hashlib.sha1(SAMPLE.encode()).hexdigest()  # noqa: S324


def test_description_pending_and_snapshots_are_parsed():
    conf = pveconf.parse(SAMPLE)
    assert conf.values["description"] == "web front\nsecond line"
    assert conf.pending == {"memory": "2048"}
    assert conf.pending_delete == ["swap"]
    assert conf.snapshots["before"]["memory"] == "512"
    merged = conf.with_pending()
    assert merged["memory"] == "2048"
    assert "swap" not in merged


def test_any_change_changes_the_digest():
    conf = pveconf.parse(SAMPLE)
    before = conf.digest
    conf.values["memory"] = "1025"
    assert conf.digest != before


def test_a_broken_line_is_named(tmp_path):
    path = tmp_path / "100.conf"
    path.write_text("arch: amd64\nthis is not a config line\n")
    with pytest.raises(pveconf.ConfigFormatError, match=r"100.conf line 2"):
        pveconf.load(path)


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "nodes" / "pve1" / "lxc" / "100.conf"
    pveconf.save(path, pveconf.parse(SAMPLE))
    assert path.read_text() == SAMPLE
    assert [p.name for p in path.parent.iterdir()] == ["100.conf"]
