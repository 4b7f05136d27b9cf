"""Lab snapshots copy a running CT's upper layer live, then settle the differences frozen."""

from __future__ import annotations

import os
from pathlib import Path

from lab.backend import LxcBackend
from lab.config import LabPaths


def test_writes_during_the_live_copy_end_up_in_the_snapshot_exactly(tmp_path, monkeypatch):
    backend = LxcBackend(LabPaths(tmp_path / "lab"))
    upper = backend.volume_dir(300) / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "motd").write_text("before")
    (upper / "etc" / "removed-while-copying").write_text("x")
    os.mknod(upper / "etc" / "whiteout", 0o020600, os.makedev(0, 0))  # overlayfs deletion mark
    os.setxattr(upper / "etc", "trusted.overlay.opaque", b"y")
    events = []
    partial = Path(f"{backend.snapshot_dir(300, 'predeploy-1')}.partial")

    def freeze(vmid: int) -> bool:
        # The CT kept running during the bulk copy: these writes happened after it.
        (upper / "etc" / "motd").write_text("written during the copy")
        (upper / "etc" / "removed-while-copying").unlink()
        # Only the differences are copied frozen: the bulk copy is already there.
        events.append(f"freeze after the bulk copy: {(partial / 'etc' / 'motd').exists()}")
        return True

    monkeypatch.setattr(backend, "freeze", freeze)
    monkeypatch.setattr(backend, "unfreeze", lambda vmid: events.append("unfreeze"))

    backend.snapshot(300, "predeploy-1")

    snap = backend.snapshot_dir(300, "predeploy-1")
    assert events == ["freeze after the bulk copy: True", "unfreeze"]
    assert (snap / "etc" / "motd").read_text() == "written during the copy"
    assert not (snap / "etc" / "removed-while-copying").exists()
    assert os.stat(snap / "etc" / "whiteout").st_rdev == os.makedev(0, 0)
    assert os.getxattr(snap / "etc", "trusted.overlay.opaque") == b"y"
    assert not partial.exists()
