"""Where the lab keeps its state, and the constants every part agrees on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

BRIDGE = "vmbr0923"
BRIDGE_CIDR = "10.92.3.1/24"
GATEWAY = "10.92.3.1"
NODES = ("pve1", "pve2")
STORAGE = "local"
API_HOST = "127.0.0.1"
API_PORT = 8006
PVE_VERSION = {"version": "9.1.3", "release": "9.1", "repoid": "pvelab"}
# Unprivileged containers map container root to this host uid/gid, as PVE does.
UNPRIV_BASE = 100000
UNPRIV_RANGE = 65536
# Proxmox Server Solutions' OUI: PVE generates container MACs in it.
MAC_PREFIX = "BC:24:11"


@dataclass(frozen=True)
class LabPaths:
    """Every path the lab writes, under one root (default /var/lib/pve-lab)."""

    root: Path

    @classmethod
    def default(cls) -> LabPaths:
        return cls(Path(os.environ.get("PVE_LAB_DIR", "/var/lib/pve-lab")))

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.pki / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.pki / "pve-ssl.pem"

    @property
    def server_key(self) -> Path:
        return self.pki / "pve-ssl.key"

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def access_state(self) -> Path:
        return self.root / "priv" / "access.json"

    @property
    def secrets(self) -> Path:
        return self.root / "priv" / "secrets.json"

    @property
    def app_secrets(self) -> Path:
        """The service's lab secrets (database password, Django key, admin password).

        They belong to the lab's containers, not to one clone: every clone's .lab/secrets
        links here, so two clones converging the same lab agree on them.
        """
        return self.root / "priv" / "app-secrets"

    @property
    def admin_socket(self) -> Path:
        return self.root / "run" / "admin.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "run" / "server.pid"

    @property
    def server_log(self) -> Path:
        return self.root / "log" / "server.log"

    @property
    def template_cache(self) -> Path:
        """PVE's `local` storage keeps vztmpl volumes in template/cache/."""
        return self.storage / "template" / "cache"

    @property
    def storage(self) -> Path:
        return self.root / "storage" / STORAGE

    @property
    def images(self) -> Path:
        return self.storage / "images"

    @property
    def base(self) -> Path:
        """Unpacked templates used as read-only overlay lower layers."""
        return self.root / "base"

    @property
    def rootfs(self) -> Path:
        """Overlay mount points, one per container."""
        return self.root / "rootfs"

    @property
    def lxcpath(self) -> Path:
        return self.root / "lxc"

    @property
    def tasks(self) -> Path:
        return self.root / "tasks"

    def node_config_dir(self, node: str) -> Path:
        """Mirrors /etc/pve/nodes/<node>/lxc."""
        return self.root / "etc-pve" / "nodes" / node / "lxc"
