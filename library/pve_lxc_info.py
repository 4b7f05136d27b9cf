#!/usr/bin/python
"""Ansible module: status, config and addresses of Proxmox VE containers (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_lxc_info
short_description: Status, configuration and addresses of Proxmox VE containers
description:
  - Reads LXC containers through the Proxmox VE REST API, for later plays to use.
  - Finds containers with C(/cluster/resources), then reads each one's configuration.
  - Filters combine; without any, every container the API user may audit is returned.
  - Read-only, never reports a change.
  - A O(vmid) or O(hostname) that matches no container returns an empty list, not an error,
    so a play can ask whether a container exists.
author:
  - Platform team
options:
  node:
    description:
      - Only containers on this cluster node. All nodes when unset.
      - A node the API user can see but that is not in the cluster is an error.
    type: str
  vmid:
    description:
      - Only the container with this VMID.
    type: int
  hostname:
    description:
      - Only containers with this hostname.
    type: str
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - The module only reads; check mode returns the same data.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode).
    support: none
notes:
  - Requires C(proxmoxer) and C(requests) on the host that runs the module (usually the controller).
  - Needs C(VM.Audit) on the containers (for example the C(PVEAuditor) role); containers the
    user may not audit are left out, as PVE leaves them out of its own listings.
  - Addresses come from the container's C(net<N>) configuration. For C(dhcp), C(auto) or
    C(manual) interfaces PVE does not know the address; RV(containers[].addresses[].address)
    is then null.
requirements:
  - proxmoxer
  - requests
seealso:
  - module: pve_lxc_snapshot
extends_documentation_fragment:
  - pve_api
"""

EXAMPLES = r"""
- name: Read the database container
  pve_lxc_info:
    api_host: pve1.example.org
    api_token_id: "auditor@pve!ro"
    api_token_secret: "{{ vault_pve_audit_token_secret }}"
    vmid: 113
  register: db_info

- name: Use its address
  ansible.builtin.debug:
    msg: "db1 listens on {{ db_info.containers[0].addresses[0].address }}"
  when: db_info.containers | length == 1

# The tasks below take their credentials from the PROXMOX_* environment variables.
- name: Every container on pve2
  pve_lxc_info:
    api_host: pve1.example.org
    node: pve2
  register: pve2_containers

- name: Find a container by hostname
  pve_lxc_info:
    api_host: pve1.example.org
    hostname: app1
  register: app1_info
"""

RETURN = r"""
containers:
  description: The matching containers, by VMID. Empty when none matches.
  returned: always
  type: list
  elements: dict
  contains:
    vmid:
      description: VMID.
      type: int
      sample: 113
    node:
      description: Cluster node the container is on.
      type: str
      sample: pve1
    hostname:
      description: Hostname from the configuration.
      type: str
      sample: db1
    status:
      description: C(running) or C(stopped).
      type: str
      sample: running
    tags:
      description: Tags, in configuration order.
      type: list
      elements: str
      sample: [db, production]
    config:
      description:
        - The configuration as PVE's C(GET /nodes/{node}/lxc/{vmid}/config) returns it (pending
          changes included, like C(pct config)), with its C(digest).
      type: dict
      sample: {"hostname": "db1", "memory": 1024, "net0": "name=eth0,bridge=vmbr0923,ip=10.92.3.13/24"}
    addresses:
      description:
        - One entry per configured address family of each C(net<N>) interface (C(ip) and C(ip6)),
          by interface index; an interface without either has one entry with null addresses.
      type: list
      elements: dict
      contains:
        net:
          description: Configuration key of the interface.
          type: str
          sample: net0
        iface:
          description: Interface name inside the container.
          type: str
          sample: eth0
        family:
          description: C(4) or C(6); null for an interface without addresses.
          type: int
          sample: 4
        ip:
          description: Address with prefix length (CIDR) as configured, or C(dhcp), C(auto), C(manual).
          type: str
          sample: 10.92.3.13/24
        address:
          description: The address without prefix length; null unless it is static.
          type: str
          sample: 10.92.3.13
        gw:
          description: Gateway of this address family (C(gw) or C(gw6)), null if none.
          type: str
          sample: 10.92.3.1
        hwaddr:
          description: MAC address.
          type: str
          sample: BC:24:11:2A:3B:4C
        bridge:
          description: Host bridge.
          type: str
          sample: vmbr0923
    uptime:
      description: Seconds since the container started; 0 when stopped.
      type: int
      sample: 3600
    lock:
      description: The configuration lock (for example C(backup), C(snapshot)), null if none.
      type: str
      sample: null
"""

# Imports follow DOCUMENTATION/EXAMPLES/RETURN, as Ansible's validate-modules sanity test requires.
import ipaddress  # noqa: E402
import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.pve_api import PveClient, PveError, auth_argument_spec  # noqa: E402

NET_KEY = re.compile(r"net(\d+)")
# PVE writes tags separated by ';' and accepts ',' and spaces too.
TAG_SEPARATORS = re.compile(r"[;,\s]+")
NOT_STATIC = ("dhcp", "auto", "manual")  # what ip/ip6 hold when PVE does not know the address


def parse_property_string(value: str) -> dict[str, str]:
    """PVE property string `k=v,k=v` (the net<N> format has no default key) into a dict."""
    out: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip()
    return out


def addresses(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The addresses of every net<N> interface, by interface index."""
    keys = sorted((k for k in config if NET_KEY.fullmatch(k)), key=lambda k: int(k[3:]))
    out: list[dict[str, Any]] = []
    for key in keys:
        net = parse_property_string(str(config[key]))
        base = {"net": key, "iface": net.get("name"), "hwaddr": net.get("hwaddr"),
                "bridge": net.get("bridge")}
        families = [(4, net.get("ip"), net.get("gw")), (6, net.get("ip6"), net.get("gw6"))]
        entries = [dict(base, family=family, ip=ip, address=address_of(ip), gw=gw)
                   for family, ip, gw in families if ip]
        out += entries or [dict(base, family=None, ip=None, address=None, gw=None)]
    return out


def address_of(ip: str) -> str | None:
    """`10.92.3.13/24` -> `10.92.3.13`; None for dhcp/auto/manual (or anything unparsable)."""
    if ip in NOT_STATIC:
        return None
    try:
        return str(ipaddress.ip_interface(ip).ip)
    except ValueError:
        return None


def split_tags(tags: object) -> list[str]:
    return [t for t in TAG_SEPARATORS.split(str(tags or "")) if t]


class LxcInfo:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.client = PveClient(module)

    def run(self) -> dict[str, Any]:
        params = self.module.params
        node, vmid, hostname = params["node"], params["vmid"], params["hostname"]
        what = describe_filter(node, vmid, hostname)
        try:
            resources = self.client.get("cluster/resources", type="vm")
            if node:
                self.check_node(node)
        except PveError as exc:
            self.module.fail_json(msg=f"Failed to list containers {what}: {exc}", containers=[])
        found = [r for r in resources
                 if r.get("type") == "lxc"
                 and (node is None or r.get("node") == node)
                 and (vmid is None or int(r["vmid"]) == vmid)
                 and (hostname is None or r.get("name") == hostname)]
        containers = []
        for resource in sorted(found, key=lambda r: int(r["vmid"])):
            container = self.describe(resource)
            if container is not None:
                containers.append(container)
        return {"changed": False, "containers": containers}

    def check_node(self, node: str) -> None:
        """Refuses a node the cluster does not have - when the user may see the node list.

        A token without Sys.Audit sees no nodes; it then gets what it asked for, filtered.
        """
        nodes = sorted(str(r["node"]) for r in self.client.get("cluster/resources", type="node")
                       if r.get("type") == "node")
        if nodes and node not in nodes:
            self.module.fail_json(msg=f"Failed to list containers on node '{node}': no such "
                                      f"cluster node (nodes: {', '.join(nodes)})", containers=[])

    def describe(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        node, vmid = str(resource["node"]), int(resource["vmid"])
        try:
            config = self.client.get(f"nodes/{node}/lxc/{vmid}/config")
        except PveError as exc:
            if "does not exist" in str(exc):
                return None  # destroyed (or migrated) between the listing and this read
            self.module.fail_json(msg=f"Failed to read the configuration of CT '{vmid}' on node "
                                      f"'{node}': {exc}", containers=[])
        return {
            "vmid": vmid,
            "node": node,
            "hostname": config.get("hostname") or resource.get("name"),
            "status": resource.get("status"),
            "tags": split_tags(config.get("tags", resource.get("tags"))),
            "config": config,
            "addresses": addresses(config),
            "uptime": int(resource.get("uptime") or 0),
            "lock": config.get("lock") or resource.get("lock") or None,
        }


def describe_filter(node: str | None, vmid: int | None, hostname: str | None) -> str:
    parts = [f"node '{node}'" if node else "all nodes"]
    if vmid is not None:
        parts.append(f"vmid {vmid}")
    if hostname is not None:
        parts.append(f"hostname '{hostname}'")
    return "(" + ", ".join(parts) + ")"


def main() -> None:
    module = AnsibleModule(
        argument_spec=auth_argument_spec(
            node={"type": "str"},
            vmid={"type": "int"},
            hostname={"type": "str"},
        ),
        supports_check_mode=True,
    )
    module.exit_json(**LxcInfo(module).run())


if __name__ == "__main__":
    main()
