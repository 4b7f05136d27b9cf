#!/usr/bin/python
"""Ansible module: snapshots of a Proxmox VE container (create, remove, roll back, list, retention)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_lxc_snapshot
short_description: Create, remove, roll back and list snapshots of a Proxmox VE container
description:
  - Manages the snapshots of one LXC container through the Proxmox VE REST API.
  - C(state=present) creates a snapshot when it is missing and can prune older snapshots
    that share a name prefix (O(retention)).
  - C(state=absent) removes a snapshot when it exists.
  - C(state=rollback) rolls the container back to a snapshot. PVE stops the container for a
    rollback; by default the module starts it again when it was running before.
  - C(state=list) only reads.
  - Every snapshot operation is a PVE worker task; the module waits for it and, when it fails,
    reports the task's log.
  - Snapshot names are checked against PVE's rules before the API is contacted.
author:
  - Platform team
options:
  node:
    description:
      - The cluster node the container lives on.
    type: str
    required: true
  vmid:
    description:
      - The container's VMID.
    type: int
    required: true
  state:
    description:
      - V(present) creates O(snapname) when missing, then applies O(retention).
        O(snapname) may be left out when O(retention) is given; then only the pruning happens.
      - V(absent) removes O(snapname) when it exists.
      - V(rollback) rolls the container back to O(snapname). Always reports a change.
      - V(list) returns the snapshots and changes nothing.
    type: str
    choices: [present, absent, rollback, list]
    default: present
  snapname:
    description:
      - Snapshot name. Required for V(absent) and V(rollback), and for V(present) unless
        O(retention) is given. Ignored by V(list).
      - PVE's rule for a configuration ID applies, and is checked before any API call
        (a letter, then letters, digits, C(-) or C(_); 2 to 40 characters).
      - V(current) and V(pending) are reserved by PVE.
    type: str
  description:
    description:
      - Description of a snapshot that V(present) creates.
      - Only set on creation; an existing snapshot with another description is left as it is
        (with a warning).
    type: str
  start:
    description:
      - For V(rollback) only - start the container after the rollback.
      - When unset, the container is started again if it was running before the rollback,
        and left stopped otherwise.
    type: bool
  retention:
    description:
      - For V(present) only - after O(snapname) is created (or on its own), remove the oldest
        snapshots whose name starts with O(retention.prefix) until at most O(retention.keep)
        of them remain.
      - Age is PVE's C(snaptime); snapshots taken in the same second are ordered along their
        parent chain (a child is newer than its parent).
      - O(snapname) is never removed by retention and counts as one of the kept snapshots.
      - Snapshots whose name does not start with the prefix are never touched.
    type: dict
    suboptions:
      prefix:
        description:
          - Name prefix of the snapshots under retention. Must not be empty.
        type: str
        required: true
      keep:
        description:
          - How many of the newest matching snapshots to keep; C(0) removes them all.
          - Must be at least C(1) when O(snapname) itself starts with the prefix.
        type: int
        required: true
  timeout:
    description:
      - Seconds to wait for each PVE task (create, delete, rollback).
    type: int
    default: 120
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - Predicts creations, the snapshots O(retention) would remove, and rollbacks; writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode).
    support: full
    details:
      - Before and after lists of snapshot names and the snapshot the container runs on.
notes:
  - Requires C(proxmoxer) and C(requests) on the host that runs the module (usually the controller).
  - PVE refuses snapshot operations on a locked container (C(CT is locked)); the module retries
    those with backoff, then fails naming the container and the snapshot.
requirements:
  - proxmoxer
  - requests
seealso:
  - module: pve_lxc_info
extends_documentation_fragment:
  - pve_api
"""

EXAMPLES = r"""
- name: Snapshot the database container before the release
  pve_lxc_snapshot:
    api_host: pve1.example.org
    api_token_id: "ansible@pve!provision"
    api_token_secret: "{{ vault_pve_token_secret }}"
    node: pve1
    vmid: 113
    snapname: "pre-{{ release_version | replace('.', '-') }}"
    description: "Before release {{ release_version }}"
    retention:
      prefix: pre-
      keep: 3

# The tasks below take their credentials from the PROXMOX_* environment variables.
- name: Prune old release snapshots without taking a new one
  pve_lxc_snapshot:
    api_host: pve1.example.org
    node: pve1
    vmid: 113
    retention:
      prefix: pre-
      keep: 3

- name: Roll back to the last good snapshot (started again if it was running)
  pve_lxc_snapshot:
    api_host: pve1.example.org
    node: pve1
    vmid: 113
    state: rollback
    snapname: pre-1-4-0

- name: Remove a snapshot
  pve_lxc_snapshot:
    api_host: pve1.example.org
    node: pve1
    vmid: 113
    state: absent
    snapname: scratch

- name: List the snapshots
  pve_lxc_snapshot:
    api_host: pve1.example.org
    node: pve1
    vmid: 113
    state: list
  register: db_snapshots
"""

RETURN = r"""
snapshots:
  description:
    - The container's snapshots after the task (predicted in check mode), oldest first.
    - PVE's C(current) pseudo-entry is not part of the list, see RV(current_parent).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Snapshot name.
      type: str
      sample: pre-1-4-0
    description:
      description: Snapshot description, empty when none.
      type: str
      sample: Before release 1.4.0
    snaptime:
      description: Creation time, seconds since the epoch; null for a snapshot check mode predicts.
      type: int
      sample: 1767225600
    parent:
      description: The snapshot this one was taken on top of; null for the first.
      type: str
      sample: pre-1-3-0
current_parent:
  description: The snapshot the container's current state descends from, null if none.
  returned: success
  type: str
  sample: pre-1-4-0
created:
  description: Names of the snapshots created (would be created in check mode).
  returned: always
  type: list
  elements: str
  sample: [pre-1-4-0]
deleted:
  description: Names of the snapshots removed (would be removed in check mode), oldest first.
  returned: always
  type: list
  elements: str
  sample: [pre-1-1-0]
rolled_back:
  description: Whether the container was (would be) rolled back.
  returned: always
  type: bool
  sample: false
started:
  description: For a rollback, whether the container was (would be) started after it.
  returned: when O(state=rollback)
  type: bool
  sample: true
was_running:
  description: For a rollback, whether the container was running before it.
  returned: when O(state=rollback)
  type: bool
  sample: true
"""

# Imports follow DOCUMENTATION/EXAMPLES/RETURN, as Ansible's validate-modules sanity test requires.
import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.pve_api import PveClient, PveError, auth_argument_spec  # noqa: E402

# PVE's `pve-configid` format (`[a-z][a-z0-9_-]+`, case-insensitive) with the API's maxLength 40.
SNAPNAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]{1,39}")
RESERVED_SNAPNAMES = ("current", "pending")

Snapshot = dict[str, Any]


def snapname_problem(name: str) -> str | None:
    """Why PVE would refuse `name` as a snapshot name, or None."""
    if SNAPNAME_RE.fullmatch(name):
        return f"'{name}' is reserved by PVE" if name.lower() in RESERVED_SNAPNAMES else None
    rule = "PVE wants a letter, then 1 to 39 letters, digits, '-' or '_'"
    if not 2 <= len(name) <= 40:
        return f"{rule}; got {len(name)} character{'' if len(name) == 1 else 's'}"
    if not name[0].isascii() or not name[0].isalpha():
        return f"{rule}; got '{name[0]}' first"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_"))})
    return f"{rule}; got {', '.join(repr(c) for c in bad)}"


def by_age(snapshots: list[Snapshot]) -> list[Snapshot]:
    """Oldest first: by snaptime, then along the parent chain (same second), then by name.

    A snapshot without snaptime (one check mode predicts) counts as the newest.
    """
    parents = {s["name"]: s.get("parent") for s in snapshots}

    def depth(name: str) -> int:
        seen: set[str] = set()
        parent = parents.get(name)
        while parent and parent not in seen:  # `seen` guards against a corrupt, cyclic tree
            seen.add(parent)
            parent = parents.get(parent)
        return len(seen)

    def key(snap: Snapshot) -> tuple[float, int, str]:
        snaptime = snap.get("snaptime")
        return (float("inf") if snaptime is None else float(snaptime), depth(snap["name"]),
                snap["name"])

    return sorted(snapshots, key=key)


def retention_victims(snapshots: list[Snapshot], prefix: str, keep: int,
                      protected: str | None) -> list[str]:
    """Names to remove, oldest first, so that at most `keep` names with `prefix` remain.

    `protected` (the snapshot state=present asks for) is kept and counts as one of `keep`:
    removing it would contradict the task, and re-creating it next run would never settle.
    """
    matching = [s["name"] for s in by_age(snapshots) if s["name"].startswith(prefix)]
    excess = len(matching) - keep
    if excess <= 0:
        return []
    return [name for name in matching if name != protected][:excess]


class LxcSnapshots:
    """Converges the snapshots of one container; every write goes through `_task`."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.node: str = params["node"]
        self.vmid: int = params["vmid"]
        self.snapname: str | None = params["snapname"]
        self.path = f"nodes/{self.node}/lxc/{self.vmid}"
        self.ct = f"CT '{self.vmid}' on node '{self.node}'"
        self.result: dict[str, Any] = {"changed": False, "created": [], "deleted": [],
                                       "rolled_back": False}
        self.client = PveClient(module)

    # -- reading -----------------------------------------------------------------
    def read(self) -> tuple[list[Snapshot], str | None]:
        """The snapshots oldest first, and the parent of PVE's `current` entry."""
        try:
            entries = self.client.get(f"{self.path}/snapshot")
        except PveError as exc:
            self.module.fail_json(msg=f"Failed to list snapshots of {self.ct}: {exc}", **self.result)
        snapshots = [{"name": str(e["name"]), "description": str(e.get("description") or ""),
                      "snaptime": int(e["snaptime"]) if e.get("snaptime") is not None else None,
                      "parent": e.get("parent") or None}
                     for e in entries if e.get("name") != "current"]
        current = next((e for e in entries if e.get("name") == "current"), {})
        return by_age(snapshots), current.get("parent") or None

    def is_running(self) -> bool:
        try:
            status = self.client.get(f"{self.path}/status/current")
        except PveError as exc:
            self.module.fail_json(msg=f"Failed to read the status of {self.ct}: {exc}", **self.result)
        return status.get("status") == "running"

    # -- writing -----------------------------------------------------------------
    def _task(self, verb: str, name: str, method: str, path: str, **params: Any) -> None:
        """Runs one PVE task and waits for it; a failure names the CT, the snapshot and the log."""
        what = f"{verb} snapshot '{name}' of {self.ct}"
        try:
            self.client.run_task(method, path, self.node, self.module.params["timeout"], what,
                                 **params)
        except PveError as exc:
            cause = str(exc).removeprefix(f"{what}: ")
            self.module.fail_json(msg=f"Failed to {what}: {cause}", **self.result)

    def create(self, name: str) -> None:
        params: dict[str, Any] = {"snapname": name}
        if self.module.params["description"]:
            params["description"] = self.module.params["description"]
        self._task("create", name, "post", f"{self.path}/snapshot", **params)

    def remove(self, name: str) -> None:
        self._task("remove", name, "delete", f"{self.path}/snapshot/{name}")

    def rollback(self, name: str, start: bool) -> None:
        self._task("roll back to", name, "post", f"{self.path}/snapshot/{name}/rollback",
                   start=int(start))

    # -- states ------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        before, parent = self.read()
        state = self.module.params["state"]
        if state == "list":
            return dict(self.result, snapshots=before, current_parent=parent)
        handler = {"present": self.present, "absent": self.absent, "rollback": self.roll_back}[state]
        after, after_parent, extra = handler(before, parent)
        if self.result["changed"] and not self.module.check_mode:
            after, after_parent = self.read()  # what PVE holds now, not what we expect
        if self.module._diff:
            self.result["diff"] = {
                "before": {"snapshots": [s["name"] for s in before], "current_parent": parent},
                "after": {"snapshots": [s["name"] for s in after], "current_parent": after_parent,
                          **extra},
            }
        return dict(self.result, snapshots=after, current_parent=after_parent)

    def present(self, snapshots: list[Snapshot], parent: str | None
                ) -> tuple[list[Snapshot], str | None, dict[str, Any]]:
        name = self.snapname
        existing = {s["name"]: s for s in snapshots}
        wanted_description = self.module.params["description"]
        if name and name in existing:
            if wanted_description is not None and existing[name]["description"] != wanted_description:
                self.module.warn(f"snapshot '{name}' of {self.ct} exists with another description; "
                                 "the description is only set when a snapshot is created")
        elif name:
            if not self.module.check_mode:
                self.create(name)
            self.result.update(changed=True, created=[name])
            snapshots = [*snapshots, {"name": name, "description": wanted_description or "",
                                      "snaptime": None, "parent": parent}]
            parent = name
        retention = self.module.params["retention"]
        if retention:
            victims = retention_victims(snapshots, retention["prefix"], retention["keep"], name)
            for victim in victims:
                if not self.module.check_mode:
                    self.remove(victim)
                self.result["changed"] = True
                self.result["deleted"].append(victim)
            snapshots, parent = without(snapshots, parent, victims)
        return snapshots, parent, {}

    def absent(self, snapshots: list[Snapshot], parent: str | None
               ) -> tuple[list[Snapshot], str | None, dict[str, Any]]:
        name = str(self.snapname)
        if any(s["name"] == name for s in snapshots):
            if not self.module.check_mode:
                self.remove(name)
            self.result.update(changed=True, deleted=[name])
            snapshots, parent = without(snapshots, parent, [name])
        return snapshots, parent, {}

    def roll_back(self, snapshots: list[Snapshot], parent: str | None
                  ) -> tuple[list[Snapshot], str | None, dict[str, Any]]:
        name = str(self.snapname)
        if not any(s["name"] == name for s in snapshots):
            known = ", ".join(s["name"] for s in snapshots) or "none"
            self.module.fail_json(msg=f"Failed to roll back {self.ct} to snapshot '{name}': "
                                      f"the snapshot does not exist (snapshots: {known})",
                                  **self.result)
        was_running = self.is_running()
        start = self.module.params["start"]
        start = was_running if start is None else start
        if not self.module.check_mode:
            self.rollback(name, start)
        self.result.update(changed=True, rolled_back=True, started=start, was_running=was_running)
        return snapshots, name, {"rolled_back_to": name, "started": start}


def without(snapshots: list[Snapshot], parent: str | None,
            names: list[str]) -> tuple[list[Snapshot], str | None]:
    """The snapshot list after PVE removed `names`: children are re-parented to the grandparent."""
    remaining = [dict(s) for s in snapshots]
    for name in names:
        removed = next(s for s in remaining if s["name"] == name)
        remaining.remove(removed)
        for snap in remaining:
            if snap["parent"] == name:
                snap["parent"] = removed["parent"]
        if parent == name:
            parent = removed["parent"]
    return remaining, parent


def check_params(module: AnsibleModule) -> None:
    """Everything that can be refused without asking PVE, refused before connecting."""
    params = module.params
    state = params["state"]
    name = params["snapname"]
    if name is not None and (problem := snapname_problem(name)):
        module.fail_json(msg=f"Invalid snapname '{name}' for CT '{params['vmid']}': {problem}")
    retention = params["retention"]
    if retention is None:
        return
    if state != "present":
        module.fail_json(msg=f"retention is only supported with state=present, not state={state}")
    if not retention["prefix"]:
        module.fail_json(msg="retention.prefix must not be empty: it would put every snapshot "
                             "of the container under retention")
    if retention["keep"] < 0:
        module.fail_json(msg=f"retention.keep must be 0 or more, got {retention['keep']}")
    if retention["keep"] == 0 and name and name.startswith(retention["prefix"]):
        module.fail_json(msg=f"retention.keep is 0 but snapname '{name}' starts with the prefix "
                             f"'{retention['prefix']}': the new snapshot would be removed at once; "
                             "use keep >= 1")


def main() -> None:
    module = AnsibleModule(
        argument_spec=auth_argument_spec(
            node={"type": "str", "required": True},
            vmid={"type": "int", "required": True},
            state={"type": "str", "default": "present",
                   "choices": ["present", "absent", "rollback", "list"]},
            snapname={"type": "str"},
            description={"type": "str"},
            start={"type": "bool"},
            retention={"type": "dict", "options": {
                "prefix": {"type": "str", "required": True},
                "keep": {"type": "int", "required": True},
            }},
            timeout={"type": "int", "default": 120},
        ),
        required_if=[
            ("state", "absent", ["snapname"]),
            ("state", "rollback", ["snapname"]),
            ("state", "present", ["snapname", "retention"], True),
        ],
        supports_check_mode=True,
    )
    check_params(module)
    if module.params["start"] is not None and module.params["state"] != "rollback":
        module.warn("start is only used with state=rollback; ignored")
    module.exit_json(**LxcSnapshots(module).run())


if __name__ == "__main__":
    main()
