#!/usr/bin/python
# Copyright: pve-lxc-iac contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pve_lxc: declarative state of one Proxmox VE LXC container."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pve_api import PveClient, PveError, PveTaskError, auth_argument_spec

DOCUMENTATION = r"""
---
module: pve_lxc
short_description: Declarative state of a Proxmox VE LXC container
version_added: "0.1.0"
description:
  - Creates, updates, starts, stops, restarts and removes one LXC container on a named Proxmox VE
    node through the PVE REST API (proxmoxer). The container is identified by O(vmid) on O(node);
    O(hostname) is cross-checked so that a wrong VMID in the inventory never touches another
    container.
  - Updates are a true diff against the container's current configuration. Only changed keys are
    sent, in one C(PUT) guarded by the configuration digest; keys removed from the spec go through
    C(delete=); the MAC address of an existing network device is kept unless the spec sets one.
    A second run with the same spec reports no change.
  - Changes PVE cannot apply to a running container wait in its pending configuration. They are
    reported (RV(restart_required), RV(pending)) and applied with a restart only when
    O(allow_restart=true).
  - The root filesystem may grow, never shrink.
  - Moving a container between nodes is not supported. A VMID found on another node than O(node)
    is refused with a message; migrate the container in PVE first, or fix the inventory.
options:
  node:
    description: PVE node that holds (or is to hold) the container.
    type: str
    required: true
  vmid:
    description: VMID of the container; the key of this module.
    type: int
    required: true
  hostname:
    description:
      - Hostname of the container. Used to create it, and cross-checked against an existing
        container with O(vmid). A different hostname means another container owns the VMID, and
        the module fails without changing anything.
      - Required unless O(state=absent). With O(state=absent) it is optional, and cross-checked
        when given.
    type: str
  state:
    description:
      - V(present) creates the container if needed and converges its configuration, leaving its
        power state alone. V(started) and V(stopped) do the same and then make it run or stop.
        V(restarted) converges it and always restarts it (or starts it when stopped).
        V(absent) stops it if it runs and destroys it.
      - V(stopped) shuts the container down (O(timeout) seconds, then a forced stop) before the
        configuration is written, so that every change applies at once.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: present
  ostemplate:
    description:
      - Template volume to create the container from, for example
        V(local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst). Required to create; ignored once
        the container exists.
    type: str
  storage:
    description:
      - Storage of the root filesystem. An existing container whose root filesystem lives on
        another storage is refused (this module does not move volumes).
    type: str
    default: local
  rootfs_size:
    description:
      - Size of the root filesystem in GiB. An existing container's root filesystem grows to it
        (C(PUT .../resize)); asking for less than the current size fails, since a root
        filesystem cannot shrink.
    type: int
    default: 4
  cores:
    description: Number of CPU cores. Not managed when unset.
    type: int
  cpulimit:
    description: CPU time limit in cores (V(0) is no limit). Not managed when unset.
    type: float
  memory:
    description: Memory in MiB. Not managed when unset.
    type: int
  swap:
    description: Swap in MiB. Not managed when unset.
    type: int
  netif:
    description:
      - Network devices. When given, the list is the complete set of devices. A device that is
        configured but not listed is removed, a listed device that differs is rewritten with
        exactly the listed properties.
      - Entry I(i) of the list is C(net<i>) unless it has an O(netif[].index).
      - An existing device keeps its MAC address unless O(netif[].hwaddr) is set.
    type: list
    elements: dict
    suboptions:
      name:
        description: Device name inside the container, for example V(eth0).
        type: str
        required: true
      index:
        description: Use C(net<index>) instead of the list position.
        type: int
      bridge:
        description: Bridge on the node to attach the device to.
        type: str
      ip:
        description: IPv4 address in CIDR notation, V(dhcp) or V(manual).
        type: str
      gw:
        description: IPv4 default gateway.
        type: str
      ip6:
        description: IPv6 address in CIDR notation, V(auto), V(dhcp) or V(manual).
        type: str
      gw6:
        description: IPv6 default gateway.
        type: str
      hwaddr:
        description: MAC address. Leave unset to keep the current one (or let PVE pick one).
        type: str
      firewall:
        description: Use the PVE firewall on this device.
        type: bool
      mtu:
        description: MTU of the device.
        type: int
      tag:
        description: VLAN tag.
        type: int
      rate:
        description: Rate limit in MB/s.
        type: float
  nameserver:
    description: DNS servers, space separated. V('') removes the setting. Not managed when unset.
    type: str
  searchdomain:
    description: DNS search domains. V('') removes the setting. Not managed when unset.
    type: str
  features:
    description:
      - Container features. When given, this is the complete set. A feature that is enabled but
        not listed (or listed as V(false)) is disabled, and an empty dict removes the setting.
    type: dict
    suboptions:
      nesting:
        description: Allow nesting (needed by recent systemd services).
        type: bool
      keyctl:
        description: Allow the keyctl() system call (unprivileged containers).
        type: bool
      fuse:
        description: Allow FUSE file systems.
        type: bool
      mknod:
        description: Allow mknod() of some device nodes (experimental in PVE).
        type: bool
      force_rw_sys:
        description: Mount /sys read-write in unprivileged containers.
        type: bool
      mount:
        description: File system types the container may mount, separated by V(;).
        type: str
  onboot:
    description: Start the container when the node boots. Not managed when unset.
    type: bool
  startup:
    description:
      - Start-up and shutdown ordering. Not managed when unset; a dict without values removes
        the setting.
    type: dict
    suboptions:
      order:
        description: Start-up order (lower first; shutdown in reverse).
        type: int
      up:
        description: Seconds to wait after starting this container before the next one.
        type: int
      down:
        description: Seconds to wait for this container to shut down.
        type: int
  unprivileged:
    description:
      - Create an unprivileged container. PVE cannot change this afterwards; an existing container
        that differs is refused.
    type: bool
    default: true
  tags:
    description:
      - Tags of the container, compared as a set. When given, the list is the complete set;
        an empty list removes all tags. Not managed when unset.
    type: list
    elements: str
  description:
    description:
      - Notes of the container, kept verbatim (trailing newlines aside, which PVE does not keep).
        V('') removes them. Not managed when unset.
    type: str
  ssh_public_keys:
    description:
      - Public SSH keys for root, one per line. Used when the container is created only; PVE does
        not store them, so later changes are not seen.
    type: str
  password:
    description: Root password, used when the container is created only.
    type: str
  allow_restart:
    description:
      - Restart a running container when changes are pending that only a restart applies.
        When V(false), such changes are left pending and reported.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for each PVE task (create, start, shutdown, resize, destroy), and to wait
        for a lock held by another operation on the container to clear.
    type: int
    default: 120
  purge:
    description:
      - With O(state=absent), also remove the container from backup jobs, replication jobs and HA.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pve_api
attributes:
  check_mode:
    support: full
    details: Reads the container and predicts every change, including which ones need a restart.
  diff_mode:
    support: full
    details: Shows the managed configuration keys before and after.
  platform:
    support: full
    platforms: posix
    details: Talks to the PVE API only; run it on the controller (C(delegate_to) localhost).
notes:
  - Which changes PVE applies to a running container at once (hotplug) is predicted in check mode
    from PVE's rules (memory, swap, cores, cpulimit, description, tags, onboot, startup,
    nameserver, searchdomain are applied live); a real run reads PVE's pending configuration
    instead of guessing.
  - A container locked by another operation (a snapshot, a backup) is waited for, up to O(timeout).
    A configuration that changes between the read and the write (digest mismatch) is read again
    and the diff recomputed.
requirements:
  - proxmoxer >= 2.0
  - requests
seealso:
  - name: PVE API viewer
    description: The REST API this module uses (C(/nodes/{node}/lxc)).
    link: https://pve.proxmox.com/pve-docs/api-viewer/
author:
  - pve-lxc-iac maintainers
"""

EXAMPLES = r"""
- name: Converge app1 and make sure it runs
  pve_lxc:
    api_host: 127.0.0.1
    api_token_id: ansible@pve!provision
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: /etc/pve-ca.pem
    node: pve1
    vmid: 121
    hostname: app1
    state: started
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    rootfs_size: 8
    cores: 2
    memory: 1024
    swap: 512
    netif:
      - name: eth0
        bridge: vmbr0923
        ip: 10.92.3.121/24
        gw: 10.92.3.1
    features:
      nesting: true
    tags: [lab, app]
    ssh_public_keys: "{{ lookup('ansible.builtin.file', 'files/id_ed25519.pub') }}"
  delegate_to: localhost

- name: Apply a change that needs a restart, restarting if it runs
  pve_lxc:
    node: pve1
    vmid: 121
    hostname: app1
    netif:
      - name: eth0
        bridge: vmbr0923
        ip: 10.92.3.121/24
        gw: 10.92.3.1
        mtu: 1400
    allow_restart: true
  delegate_to: localhost
  register: app1_ct

- name: Remove every tag and the description
  pve_lxc:
    node: pve1
    vmid: 121
    hostname: app1
    tags: []
    description: ""
  delegate_to: localhost

- name: Destroy the container
  pve_lxc:
    node: pve1
    vmid: 121
    state: absent
    purge: true
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: VMID of the container.
  returned: always
  type: int
  sample: 121
node:
  description: Node of the container.
  returned: always
  type: str
  sample: pve1
status:
  description: Power state after the run (predicted in check mode).
  returned: always
  type: str
  choices: [running, stopped, absent]
  sample: running
created:
  description: Whether the container was (or, in check mode, would be) created.
  returned: always
  type: bool
config:
  description:
    - The container's configuration after the run, as PVE reports it (pending values included,
      without the digest). In check mode the current configuration; empty when absent.
  returned: always
  type: dict
  sample:
    hostname: app1
    memory: 1024
    net0: name=eth0,bridge=vmbr0923,hwaddr=BC:24:11:2F:3A:01,ip=10.92.3.121/24,type=veth
changes:
  description:
    - Changed configuration keys, each with its value before and after (network devices,
      features and startup as dicts, tags as lists, the root filesystem as storage and size).
      A removed key has C(after) null; on creation every key has C(before) null.
  returned: always
  type: dict
  sample: {"memory": {"before": 512, "after": 1024}, "tags": {"before": ["a", "old"], "after": ["a"]}}
deleted:
  description: Configuration keys removed through C(delete=).
  returned: always
  type: list
  elements: str
  sample: [net1, features]
restart_required:
  description:
    - Whether changes waited in PVE's pending configuration, to be applied by a restart.
      They were applied when RV(restarted) is true as well.
  returned: always
  type: bool
pending:
  description: Keys that were pending a restart (see RV(restart_required)).
  returned: always
  type: list
  elements: str
  sample: [net0, features]
restarted:
  description: Whether the container was (or would be) restarted.
  returned: always
  type: bool
diff:
  description: Managed keys before and after (with C(status) for O(state=started) and O(state=stopped)).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"memory": 512}, "after": {"memory": 1024}}
"""

# Keys PVE applies to a running container at once; the rest wait in [pve:pending].
HOTPLUG_KEYS = frozenset({"memory", "swap", "cores", "cpulimit", "cpuunits", "description", "tags",
                          "onboot", "startup", "protection", "nameserver", "searchdomain"})
# What PVE assumes when a key is not in the config.
PVE_DEFAULTS: dict[str, object] = {"memory": 512, "swap": 512, "cpulimit": 0, "onboot": False}
NET_KEY = re.compile(r"^net(\d+)$")
NET_BOOLS = frozenset({"firewall", "link_down", "host-managed"})
NET_INTS = frozenset({"mtu", "tag"})
FEATURE_FLAGS = ("nesting", "keyctl", "fuse", "mknod", "force_rw_sys")
TEXT_KEYS = ("nameserver", "searchdomain", "description")
MODIFIED_CONFIG = "detected modified configuration"
SIZE_UNITS = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
MAX_DIGEST_ATTEMPTS = 3


class PlanError(Exception):
    """A spec that cannot be applied to the container; the message is the whole failure."""


# -- property strings and values --------------------------------------------------------
def parse_property_string(text: str, default_key: str | None = None) -> dict[str, str]:
    """'name=eth0,bridge=vmbr0' -> {'name': 'eth0', 'bridge': 'vmbr0'}; a bare part is default_key."""
    out: dict[str, str] = {}
    for raw in str(text).split(","):
        part = raw.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            if default_key is None:
                raise ValueError(f"cannot parse '{part}' in '{text}': expected key=value")
            key, value = default_key, part
        out[key.strip()] = value.strip()
    return out


def wire_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(number(value))
    return str(value)


def format_property_string(values: Mapping[str, object], first: Sequence[str] = ()) -> str:
    """PVE's order: the leading keys given, then the rest sorted; booleans as 1/0."""
    keys = [k for k in first if k in values] + sorted(k for k in values if k not in first)
    return ",".join(f"{key}={wire_value(values[key])}" for key in keys if values[key] is not None)


def number(value: object) -> int | float:
    """2, '2', 2.0 -> 2; '1.5' -> 1.5: one spelling per value, for comparing and showing."""
    as_float = float(str(value))
    return int(as_float) if as_float.is_integer() else as_float


def truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in {"1", "true", "yes", "on"}


def split_tags(value: object) -> list[str]:
    """PVE stores tags ';'-separated (and accepts ',' and spaces); order kept, duplicates dropped."""
    items = value if isinstance(value, list) else re.split(r"[;,\s]+", str(value or ""))
    tags: list[str] = []
    for item in items:
        tag = str(item).strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def size_gib(text: str) -> float:
    """A PVE disk size ('4G', '512M', '1T', bytes when bare) in GiB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)\s*", str(text))
    if not match:
        raise ValueError(f"cannot parse disk size '{text}'")
    amount = float(match.group(1))
    unit = match.group(2)
    return amount * SIZE_UNITS[unit] if unit else amount / 1024**3


def format_gib(size: float) -> str:
    return f"{number(round(size, 3))}G"


# -- views: one comparable, YAML-friendly value per managed key --------------------------
def net_view(props: Mapping[str, object]) -> dict[str, object]:
    """A net device as a dict: typed values, booleans only when set, PVE's type=veth default."""
    view: dict[str, object] = {}
    for key, value in props.items():
        if value is None or key == "index":
            continue
        if key in NET_BOOLS:
            if truthy(value):
                view[key] = True
        elif key in NET_INTS:
            view[key] = int(str(value))
        elif key == "rate":
            view[key] = number(value)
        elif key == "hwaddr":
            view[key] = str(value).upper()
        else:
            view[key] = str(value)
    view.setdefault("type", "veth")
    return {**({"name": view.pop("name")} if "name" in view else {}), **dict(sorted(view.items()))}


def features_view(features: Mapping[str, object]) -> dict[str, object]:
    """Enabled features only: 'nesting=1,keyctl=0' and {'nesting': True} both give {'nesting': True}."""
    view: dict[str, object] = {}
    for key, value in sorted(features.items()):
        if value is None:
            continue
        if key == "mount":
            if str(value).strip():
                view[key] = ";".join(split_mount(str(value)))
        elif truthy(value):
            view[key] = True
    return view


def split_mount(value: str) -> list[str]:
    return [x for x in re.split(r"[;\s]+", value) if x]


def startup_view(startup: Mapping[str, object]) -> dict[str, int]:
    return {key: int(str(startup[key])) for key in ("order", "up", "down")
            if startup.get(key) is not None and str(startup[key]) != ""}


def current_view(config: Mapping[str, object], key: str) -> object:
    """The view of one key in a PVE config; None when the key is absent (and has no default)."""
    value = config.get(key)
    if value is None or value == "":
        default = PVE_DEFAULTS.get(key)
        return None if default is None else current_view({key: default}, key)
    if key in ("cores", "memory", "swap"):
        return int(str(value))
    if key == "cpulimit":
        return number(value)
    if key == "onboot":
        return truthy(value)
    if key == "description":
        return str(value).rstrip("\n") or None
    if key == "startup":
        return startup_view(parse_property_string(str(value), default_key="order")) or None
    if key == "tags":
        return split_tags(value) or None
    if key == "features":
        return features_view(parse_property_string(str(value))) or None
    if NET_KEY.match(key):
        return net_view(parse_property_string(str(value)))
    return str(value)


def config_view(config: Mapping[str, object]) -> dict[str, object]:
    """Views of every key this module manages that the config holds (for state=absent's diff)."""
    keys = ["hostname", "cores", "cpulimit", "memory", "swap", *TEXT_KEYS, "onboot", "startup",
            "tags", "features", *sorted((k for k in config if NET_KEY.match(k)), key=key_order)]
    view = {key: current_view(config, key) for key in keys if key in config}
    if config.get("rootfs"):
        view["rootfs"] = rootfs_view(*rootfs_of(config))
    return {key: value for key, value in view.items() if value is not None}


def key_order(key: str) -> tuple[str, int]:
    match = NET_KEY.match(key)
    return ("net", int(match.group(1))) if match else (key, -1)


def rootfs_of(config: Mapping[str, object]) -> tuple[str, float]:
    """(storage, size in GiB) of a config's rootfs."""
    props = parse_property_string(str(config.get("rootfs", "")), default_key="volume")
    storage = props.get("volume", "").split(":", 1)[0]
    return storage, size_gib(props["size"]) if props.get("size") else 0.0


def rootfs_view(storage: str, size: float) -> dict[str, object]:
    return {"storage": storage, "size": format_gib(size)}


def wire(key: str, view: object) -> str:
    """The value PVE takes for a key, from its view."""
    if NET_KEY.match(key) and isinstance(view, Mapping):
        return format_property_string(view, first=("name",))
    if key == "startup" and isinstance(view, Mapping):
        return format_property_string(view, first=("order",))
    if key == "features" and isinstance(view, Mapping):
        return format_property_string(view)
    if key == "tags" and isinstance(view, list):
        return ";".join(view)
    return wire_value(view)


def same(key: str, before: object, after: object) -> bool:
    if key == "tags" and isinstance(before, list) and isinstance(after, list):
        return set(before) == set(after)
    return before == after


# -- the plan ---------------------------------------------------------------------------------
@dataclass
class Plan:
    """What converging a container takes: one PUT (set and delete) and perhaps a resize."""

    before: dict[str, object] = field(default_factory=dict)
    after: dict[str, object] = field(default_factory=dict)
    changes: dict[str, dict[str, object]] = field(default_factory=dict)
    put: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    resize_gib: int | None = None

    @property
    def needs_put(self) -> bool:
        return bool(self.put or self.delete)

    def restart_keys(self) -> list[str]:
        """Keys a running container takes only at its next start."""
        return sorted({k for k in [*self.put, *self.delete] if k not in HOTPLUG_KEYS}, key=key_order)


def desired_nets(netif: Sequence[Mapping[str, Any]], config: Mapping[str, object],
                 vmid: int) -> dict[str, dict[str, object]]:
    """net<i> -> view of each device of the spec, the current MAC filled in where none is given."""
    nets: dict[str, dict[str, object]] = {}
    for position, device in enumerate(netif):
        index = device.get("index")
        key = f"net{position if index is None else index}"
        if key in nets:
            raise PlanError(f"Failed to update CT '{vmid}': netif gives {key} twice (list position "
                            f"{position} and an earlier entry); give each device its own index")
        view = net_view(device)
        if "hwaddr" not in view and config.get(key):
            current = net_view(parse_property_string(str(config[key])))
            if "hwaddr" in current:
                view["hwaddr"] = current["hwaddr"]
                view = net_view(view)
        nets[key] = view
    return nets


def desired_views(params: Mapping[str, Any], config: Mapping[str, object],
                  vmid: int) -> dict[str, object]:
    """Managed key -> the view the spec asks for; None asks for the key to be removed.

    Options left unset are not managed and do not appear.
    """
    want: dict[str, object] = {}
    for key in ("cores", "memory", "swap"):
        if params.get(key) is not None:
            want[key] = int(params[key])
    if params.get("cpulimit") is not None:
        want["cpulimit"] = number(params["cpulimit"])
    if params.get("onboot") is not None:
        want["onboot"] = bool(params["onboot"])
    for key in TEXT_KEYS:
        if params.get(key) is not None:
            text = str(params[key])
            text = text.rstrip("\n") if key == "description" else text.strip()
            want[key] = text or None
    if params.get("startup") is not None:
        want["startup"] = startup_view(params["startup"]) or None
    if params.get("tags") is not None:
        want["tags"] = split_tags(list(params["tags"])) or None
    if params.get("features") is not None:
        want["features"] = features_view(params["features"]) or None
    if params.get("netif") is not None:
        nets: dict[str, dict[str, object] | None] = dict(desired_nets(params["netif"], config, vmid))
        for key in (k for k in config if NET_KEY.match(k)):
            nets.setdefault(key, None)  # configured but not in the spec: removed
        want.update(sorted(nets.items(), key=lambda item: key_order(item[0])))
    return want


def check_identity(config: Mapping[str, object], params: Mapping[str, Any], vmid: int,
                   node: str) -> None:
    """Refuses a VMID owned by another container, and what PVE cannot change after creation."""
    hostname = params.get("hostname")
    current = str(config.get("hostname", ""))
    if hostname and current != hostname:
        raise PlanError(f"Failed to update CT '{vmid}': CT {vmid} on {node} is '{current}', not "
                        f"'{hostname}': another container owns this VMID; nothing was changed "
                        "(fix vmid or hostname in the inventory)")
    if params.get("unprivileged") is not None:
        is_unprivileged = truthy(config.get("unprivileged", 0))
        if is_unprivileged != bool(params["unprivileged"]):
            raise PlanError(f"Failed to update CT '{vmid}': unprivileged is "
                            f"{str(is_unprivileged).lower()}, the spec asks "
                            f"{str(bool(params['unprivileged'])).lower()}; PVE cannot change it after "
                            "creation (recreate the container to change it)")


def plan_rootfs(plan: Plan, config: Mapping[str, object], params: Mapping[str, Any], vmid: int) -> None:
    storage, size = rootfs_of(config)
    plan.before["rootfs"] = rootfs_view(storage, size)
    plan.after["rootfs"] = rootfs_view(storage, size)
    wanted_storage = params.get("storage")
    if wanted_storage and storage and storage != wanted_storage:
        raise PlanError(f"Failed to update CT '{vmid}' rootfs: it is on storage '{storage}', the spec "
                        f"asks '{wanted_storage}'; this module does not move volumes (move it in PVE "
                        "or fix the inventory)")
    wanted = params.get("rootfs_size")
    if wanted is None:
        return
    if size > wanted + 1e-9:
        raise PlanError(f"Failed to resize CT {vmid} rootfs: it is {format_gib(size)}, the spec asks "
                        f"{wanted}G; a rootfs cannot shrink")
    if size < wanted:
        plan.resize_gib = int(wanted)
        plan.after["rootfs"] = rootfs_view(storage, wanted)
        plan.changes["rootfs"] = {"before": plan.before["rootfs"], "after": plan.after["rootfs"]}


def plan_update(config: Mapping[str, object], params: Mapping[str, Any], vmid: int,
                node: str = "") -> Plan:
    """The diff between a container's config (GET .../config) and the spec.

    Raises PlanError, before anything is written, for what cannot be applied.
    """
    check_identity(config, params, vmid, node)
    plan = Plan()
    if config.get("hostname"):
        plan.before["hostname"] = plan.after["hostname"] = str(config["hostname"])
    for key, new in desired_views(params, config, vmid).items():
        old = current_view(config, key)
        if old is not None:
            plan.before[key] = old
        if same(key, old, new):
            if old is not None:
                plan.after[key] = old
            continue
        plan.changes[key] = {"before": old, "after": new}
        if new is None:
            if key in config:  # a PVE default shown as a value is not in the config to delete
                plan.delete.append(key)
        else:
            plan.after[key] = new
            plan.put[key] = wire(key, new)
    plan_rootfs(plan, config, params, vmid)
    return plan


def plan_create(params: Mapping[str, Any], vmid: int) -> tuple[Plan, dict[str, object]]:
    """The plan (every key from nothing) and the POST /nodes/{node}/lxc parameters."""
    plan = Plan()
    storage = params.get("storage") or "local"
    size = int(params.get("rootfs_size") or 4)
    post: dict[str, object] = {
        "vmid": vmid, "hostname": params["hostname"], "ostemplate": params["ostemplate"],
        "storage": storage, "rootfs": f"{storage}:{size}",
        "unprivileged": wire_value(bool(params.get("unprivileged", True))),
    }
    plan.after["hostname"] = params["hostname"]
    for key, view in desired_views(params, {}, vmid).items():
        if view is None:
            continue
        plan.after[key] = view
        post[key] = wire(key, view)
    plan.after["rootfs"] = rootfs_view(storage, size)
    plan.changes = {key: {"before": None, "after": value} for key, value in plan.after.items()}
    if params.get("ssh_public_keys"):
        post["ssh-public-keys"] = params["ssh_public_keys"]
    if params.get("password"):
        post["password"] = params["password"]
    return plan, post


def pending_keys(entries: Sequence[Mapping[str, object]]) -> list[str]:
    """Keys of GET .../pending that wait for a restart (a new value or a deletion)."""
    return sorted({str(e["key"]) for e in entries if "pending" in e or e.get("delete")}, key=key_order)


# -- the module -------------------------------------------------------------------------------
class PveLxc:
    """Converges one container; every method that writes is skipped in check mode."""

    def __init__(self, module: AnsibleModule, client: PveClient) -> None:
        self.module = module
        self.client = client
        self.params = module.params
        self.node: str = module.params["node"]
        self.vmid: int = module.params["vmid"]
        self.state: str = module.params["state"]
        self.timeout: int = module.params["timeout"]
        self.path = f"nodes/{self.node}/lxc/{self.vmid}"
        self.verb = "read"
        self.result: dict[str, Any] = {
            "changed": False, "vmid": self.vmid, "node": self.node, "status": "absent",
            "created": False, "config": {}, "changes": {}, "deleted": [], "restart_required": False,
            "pending": [], "restarted": False,
        }
        self.before: dict[str, object] = {}
        self.after: dict[str, object] = {}
        self.digest: str | None = None

    # -- helpers ------------------------------------------------------------------------------
    def fail(self, cause: str) -> None:
        self.module.fail_json(msg=f"Failed to {self.verb} CT '{self.vmid}': {cause}", **self.result)

    def locate(self) -> dict[str, Any] | None:
        """The cluster's resource entry of this VMID, wherever it lives."""
        for entry in self.client.get("cluster/resources", type="vm"):
            if str(entry.get("vmid")) == str(self.vmid):
                return entry
        return None

    def read_config(self) -> dict[str, Any]:
        """GET config, waiting up to `timeout` for a lock held by another operation to clear."""
        started = time.monotonic()
        interval = 0.25
        lock = None
        while True:
            config = self.client.get(f"{self.path}/config")
            if not config.get("lock"):
                break
            lock = config["lock"]
            if time.monotonic() - started >= self.timeout:
                self.fail(f"CT is locked ({lock}) and the lock did not clear within {self.timeout}s")
            self.client.sleep(interval)
            interval = min(interval * 1.5, 2.0)
        if lock:
            self.module.warn(f"CT {self.vmid} was locked ({lock}); waited "
                             f"{time.monotonic() - started:.1f}s for the lock to clear")
        self.digest = config.get("digest")
        return config

    def status(self) -> str:
        return str(self.client.get(f"{self.path}/status/current")["status"])

    def pending(self) -> list[str]:
        return pending_keys(self.client.get(f"{self.path}/pending"))

    def task(self, method: str, sub: str, what: str, wait: float | None = None,
             **params: Any) -> None:
        upid = getattr(self.client, method)(f"{self.path}{sub}", **params)
        self.client.wait_task(self.node, upid, wait or self.timeout, f"{what} task")

    def start(self) -> None:
        self.verb = "start"
        self.task("post", "/status/start", "start")

    def shutdown(self) -> None:
        """Clean shutdown for up to `timeout` seconds, then PVE stops it hard (forceStop)."""
        self.verb = "stop"
        self.task("post", "/status/shutdown", "shutdown", wait=self.timeout + 30,
                  timeout=self.timeout, forceStop=1)
        if self.status() == "running":
            self.task("post", "/status/stop", "stop")

    def restart(self) -> None:
        """Shutdown and start rather than reboot: a start is what applies pending changes."""
        self.shutdown()
        self.verb = "restart"
        self.task("post", "/status/start", "start")
        self.result["restarted"] = True

    def finish(self, config: Mapping[str, Any] | None = None) -> None:
        if config is not None:
            self.result["config"] = {k: v for k, v in config.items() if k != "digest"}
        if self.module._diff:
            self.result["diff"] = {"before": self.before, "after": self.after}
        self.module.exit_json(**self.result)

    def show_status(self, before: str, after: str) -> None:
        if self.state in ("started", "stopped"):
            self.before["status"] = before
            self.after["status"] = after

    # -- states -------------------------------------------------------------------------------
    def run(self) -> None:
        """Converges to the state; every failure ends in fail_json naming the CT."""
        try:
            self.apply_state()
        except PlanError as exc:
            self.module.fail_json(msg=str(exc), **self.result)
        except PveError as exc:
            self.fail(str(exc))
        except ValueError as exc:  # a config value this module cannot parse
            self.fail(f"unexpected value in its configuration: {exc}")

    def apply_state(self) -> None:
        entry = self.locate()
        if entry is not None and entry.get("type") not in (None, "lxc"):
            self.fail(f"VMID {self.vmid} is a {entry.get('type')} guest on node "
                      f"'{entry.get('node')}', not a container")
        if entry is not None and entry.get("node") != self.node:
            self.verb = "remove" if self.state == "absent" else "update"
            self.fail(f"it exists on node '{entry.get('node')}', not on '{self.node}'; moving a "
                      "container between nodes is not supported by this module (migrate it in PVE "
                      "first, or fix the node in the inventory); nothing was changed")
        if entry is not None:
            self.result["status"] = str(entry.get("status", "stopped"))
        if self.state == "absent":
            self.absent(entry is not None)
        elif entry is None:
            self.create()
        else:
            self.converge()

    def absent(self, exists: bool) -> None:
        if not exists:
            self.finish()
            return
        self.verb = "remove"
        config = self.read_config()
        hostname = self.params.get("hostname")
        if hostname and config.get("hostname") != hostname:
            self.fail(f"CT {self.vmid} on {self.node} is '{config.get('hostname')}', not "
                      f"'{hostname}': another container owns this VMID; nothing was changed")
        running = self.status() == "running"
        self.result.update(changed=True, status="absent")
        self.before = {**config_view(config), "status": "running" if running else "stopped"}
        if self.module.check_mode:
            self.finish(config)
            return
        if running:
            self.task("post", "/status/stop", "stop")
        self.task("delete", "", "destroy", **({"purge": 1} if self.params["purge"] else {}))
        self.finish({})

    def create(self) -> None:
        self.verb = "create"
        if not self.params.get("ostemplate"):
            self.fail("it does not exist and ostemplate is not set (required to create it)")
        plan, post = plan_create(self.params, self.vmid)
        start = self.state in ("started", "restarted")
        self.after = plan.after
        self.show_status("absent", "running" if start else "stopped")
        self.result.update(changes=plan.changes)
        if self.module.check_mode:
            self.result.update(changed=True, created=True, status="running" if start else "stopped")
            self.finish()
            return
        upid = self.client.post(f"nodes/{self.node}/lxc", **post)
        try:
            self.client.wait_task(self.node, upid, self.timeout, "create task")
        except PveTaskError as exc:
            self.fail(f"{exc}\n{self.leftover_note()}")
        self.result.update(changed=True, created=True, status="stopped")
        if start:
            self.start()
        self.result["status"] = self.status()
        self.finish(self.client.get(f"{self.path}/config"))

    def leftover_note(self) -> str:
        """After a failed create: PVE removes what it made; say so, or say what is left."""
        try:
            entry = self.locate()
        except PveError as exc:
            return f"Could not check for a half-created CT {self.vmid}: {exc}"
        if entry is None:
            return f"No container was left behind: CT {self.vmid} does not exist."
        lock = entry.get("lock")
        self.result.update(changed=True, status=str(entry.get("status", "stopped")))
        return (f"CT {self.vmid} was left behind on node '{entry.get('node')}'"
                + (f" (locked: {lock})" if lock else "")
                + "; remove it (pct destroy, or this module with state=absent) before retrying.")

    def converge(self) -> None:
        self.verb = "update"
        config = self.read_config()
        plan = plan_update(config, self.params, self.vmid, self.node)
        initial = self.status()
        stop_first = self.state == "stopped" and initial == "running"
        running = initial == "running" and not stop_first
        self.before, self.after = plan.before, plan.after
        self.result.update(changes=plan.changes, deleted=list(plan.delete), status=initial,
                           changed=bool(plan.changes) or stop_first)
        if self.module.check_mode:
            # Predicted from PVE's hotplug rules; a real run reads PVE's pending list instead.
            predicted = set(self.pending()) | set(plan.restart_keys()) if running else set()
            self.predict_power(initial, running, sorted(predicted, key=key_order))
            self.finish(config)
            return

        if stop_first:
            self.shutdown()
        self.verb = "update"
        plan = self.apply(plan)
        pending = self.pending() if running else []
        self.result.update(restart_required=bool(pending), pending=pending)
        if self.state == "started" and not running:
            self.start()
            self.result["changed"] = True
        elif self.state == "restarted" or (running and pending and self.params["allow_restart"]):
            if running:
                self.restart()
            else:
                self.start()
            self.result["changed"] = True
        self.result["status"] = self.status()
        self.show_status(initial, self.result["status"])
        self.finish(self.client.get(f"{self.path}/config"))

    def predict_power(self, initial: str, running: bool, pending: list[str]) -> None:
        """Check mode: what converge() would do after writing the config."""
        self.result.update(restart_required=bool(pending), pending=pending)
        final = "running" if running else "stopped"
        if self.state == "stopped":
            final = "stopped"
        elif self.state == "started" and not running:
            final = "running"
            self.result["changed"] = True
        elif self.state == "restarted" or (running and pending and self.params["allow_restart"]):
            self.result.update(changed=True, restarted=running)
            final = "running"
        self.result["status"] = final
        self.show_status(initial, final)

    def apply(self, plan: Plan) -> Plan:
        """One PUT with the digest; a config changed meanwhile is read again and re-diffed."""
        for attempt in range(1, MAX_DIGEST_ATTEMPTS + 1):
            if not plan.needs_put:
                break
            params: dict[str, Any] = dict(plan.put)
            if plan.delete:
                params["delete"] = ",".join(plan.delete)
            if self.digest:
                params["digest"] = self.digest
            try:
                self.client.put(f"{self.path}/config", **params)
            except PveError as exc:
                if MODIFIED_CONFIG not in str(exc) or attempt == MAX_DIGEST_ATTEMPTS:
                    raise
            else:
                self.result["changed"] = True
                break
            plan = plan_update(self.read_config(), self.params, self.vmid, self.node)
            self.before, self.after = plan.before, plan.after
            self.result.update(changes=plan.changes, deleted=list(plan.delete))
        if plan.resize_gib is not None:
            self.verb = "resize"
            self.task("put", "/resize", "resize", disk="rootfs", size=f"{plan.resize_gib}G")
            self.result["changed"] = True
        return plan


def argument_spec() -> dict[str, dict[str, Any]]:
    netif = {
        "name": {"type": "str", "required": True}, "index": {"type": "int"},
        "bridge": {"type": "str"}, "ip": {"type": "str"}, "gw": {"type": "str"},
        "ip6": {"type": "str"}, "gw6": {"type": "str"}, "hwaddr": {"type": "str"},
        "firewall": {"type": "bool"}, "mtu": {"type": "int"}, "tag": {"type": "int"},
        "rate": {"type": "float"},
    }
    features = {flag: {"type": "bool"} for flag in FEATURE_FLAGS}
    features["mount"] = {"type": "str"}
    return auth_argument_spec(
        node={"type": "str", "required": True},
        vmid={"type": "int", "required": True},
        hostname={"type": "str"},
        state={"type": "str", "default": "present",
               "choices": ["present", "started", "stopped", "restarted", "absent"]},
        ostemplate={"type": "str"},
        storage={"type": "str", "default": "local"},
        rootfs_size={"type": "int", "default": 4},
        cores={"type": "int"},
        cpulimit={"type": "float"},
        memory={"type": "int"},
        swap={"type": "int"},
        netif={"type": "list", "elements": "dict", "options": netif},
        nameserver={"type": "str"},
        searchdomain={"type": "str"},
        features={"type": "dict", "options": features},
        onboot={"type": "bool"},
        startup={"type": "dict", "options": {k: {"type": "int"} for k in ("order", "up", "down")}},
        unprivileged={"type": "bool", "default": True},
        tags={"type": "list", "elements": "str"},
        description={"type": "str"},
        ssh_public_keys={"type": "str", "no_log": False},
        password={"type": "str", "no_log": True},
        allow_restart={"type": "bool", "default": False},
        timeout={"type": "int", "default": 120},
        purge={"type": "bool", "default": False},
    )


def main() -> None:
    states_with_hostname = ("present", "started", "stopped", "restarted")
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", state, ["hostname"]) for state in states_with_hostname],
        supports_check_mode=True,
    )
    if module.params["rootfs_size"] is not None and module.params["rootfs_size"] < 1:
        module.fail_json(msg=f"Failed to check CT '{module.params['vmid']}': rootfs_size must be at "
                             f"least 1 (GiB), got {module.params['rootfs_size']}")
    PveLxc(module, PveClient(module)).run()


if __name__ == "__main__":
    main()
