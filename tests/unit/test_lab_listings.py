"""Lab listings stay whole while CTs come and go (molecule destroys CTs during other runs)."""

from __future__ import annotations

import pytest

from lab.backend import LxcBackend, Runtime
from lab.cluster import Cluster
from lab.config import LabPaths
from lab.faults import Faults
from lab.schema import ApiSchema
from lab.tasks import TaskManager

CONF = "arch: amd64\nhostname: kept\nmemory: 512\nrootfs: local:300/vm-300-disk-0.raw,size=8G\n"


@pytest.fixture
def cluster(tmp_path, monkeypatch) -> Cluster:
    paths = LabPaths(tmp_path / "lab")
    backend = LxcBackend(paths)
    monkeypatch.setattr(backend, "runtime", lambda vmid: Runtime("stopped", None, 0))
    made = Cluster(paths, ApiSchema.load(), TaskManager(tmp_path / "tasks"), backend, Faults())
    made.conf_path("pve1", 300).parent.mkdir(parents=True, exist_ok=True)
    made.conf_path("pve1", 300).write_text(CONF)
    # CT 301 was listed, then destroyed before its config was read.
    found = made.vmids

    def listed(node: str | None = None) -> list[int]:
        return sorted([*found(node), 301]) if node in (None, "pve1") else found(node)

    monkeypatch.setattr(made, "vmids", listed)
    return made


def test_cluster_resources_skip_a_ct_destroyed_while_listing(cluster: Cluster) -> None:
    vms = cluster.resources("vm")
    assert [(vm["vmid"], vm["name"], vm["node"]) for vm in vms] == [(300, "kept", "pve1")]


def test_node_ct_list_skips_a_ct_destroyed_while_listing(cluster: Cluster) -> None:
    assert [ct["vmid"] for ct in cluster.list_cts("pve1")] == [300]
