#!/usr/bin/python
"""Ansible module: the controller's record of deployed releases, for rollbacks."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_release_record
short_description: Record deployed releases and plan rollbacks on the controller
description:
  - Keeps one JSON file per inventory (by default C(.deploy/<inventory>/releases.json)) with
    the stack of releases the app stage deployed, oldest first, and an audit log of every
    deploy and rollback.
  - O(state=deployed) pushes a release on the stack after a successful rollout. Deploying the
    version already on top changes nothing (a re-run), except that a pre-migration backup
    taken by this run is recorded.
  - O(state=planned) answers, without writing, what a rollback would do - the release to go
    back to (the one below the top, or O(version)) and the pre-migration backup to restore,
    if a release being undone migrated the database - and fails when there is nothing to
    roll back to.
  - O(state=rolled_back) pops the stack down to O(version) after a successful rollback.
  - The file is written atomically (temporary file and rename), mode 0600.
author:
  - Platform team
options:
  path:
    description: The record file. Its directory is created when missing.
    type: path
    required: true
  state:
    description: What happened, or C(planned) to ask.
    type: str
    choices: [deployed, planned, rolled_back]
    required: true
  version:
    description:
      - C(deployed) - the release rolled out. C(rolled_back) - the release rolled back to.
      - C(planned) - the release to roll back to; the one below the top when unset.
    type: str
  backup:
    description:
      - C(deployed) only - the pre-migration backup this rollout took, when it migrated the
        database (C(host), C(path) on that host).
    type: dict
  reason:
    description: Free text kept in the audit log (for example why a rollback happened).
    type: str
    default: ""
  keep:
    description: Releases kept on the stack (older ones fall off; the audit log keeps 200 events).
    type: int
    default: 20
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode).
    support: none
"""

EXAMPLES = r"""
- name: Record the release just rolled out
  app_release_record:
    path: .deploy/lab/releases.json
    state: deployed
    version: 0.2.0
    backup: {host: db1, path: /var/backups/postgresql/scheduler-pre-0.2.0-20310501T120000Z.dump}

- name: Plan a rollback to the previous release
  app_release_record:
    path: .deploy/lab/releases.json
    state: planned
  register: plan

- name: Record the rollback
  app_release_record:
    path: .deploy/lab/releases.json
    state: rolled_back
    version: "{{ plan.target }}"
    reason: verification failed
"""

RETURN = r"""
current:
  description: The release on top of the stack (before the change for C(planned)), or null.
  returned: always
  type: str
target:
  description: C(planned) - the release a rollback goes back to.
  returned: when state is planned
  type: str
undone:
  description: C(planned) - the releases a rollback undoes, newest first.
  returned: when state is planned
  type: list
  elements: str
restore:
  description:
    - C(planned) - the pre-migration backup to restore (C(release), C(host), C(path)), taken
      by the oldest undone release that migrated the database; null when none migrated.
  returned: when state is planned
  type: dict
previous:
  description: C(deployed) and C(rolled_back) - the release on top before the change, or null.
  returned: when state is deployed or rolled_back
  type: str
releases:
  description: The stack after the change, oldest first.
  returned: always
  type: list
  elements: dict
"""

import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

AUDIT_KEEP = 200


class RecordError(Exception):
    """The record cannot do what was asked; the message says why."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return {"releases": [], "events": []}
    except (OSError, ValueError) as exc:
        raise RecordError(f"cannot read the release record {path}: {exc}") from exc
    if not isinstance(record.get("releases"), list) or not isinstance(record.get("events"), list):
        raise RecordError(f"{path}: expected an object with 'releases' and 'events' lists")
    return record


def save(path: str, record: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".releases-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=2)
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def current(record: dict[str, Any]) -> str | None:
    return record["releases"][-1]["version"] if record["releases"] else None


def deployed(record: dict[str, Any], version: str, backup: dict | None, reason: str,
             keep: int) -> bool:
    """Push `version` (a re-run of the top release only adds a backup it took)."""
    stack = record["releases"]
    if stack and stack[-1]["version"] == version:
        if not backup or stack[-1].get("backup") == backup:
            return False
        stack[-1]["backup"] = backup
    else:
        stack.append({"version": version, "deployed_at": now(), "backup": backup or None})
        del stack[:-keep]
    record["events"].append({"event": "deployed", "version": version, "at": now(),
                             "backup": backup or None, "reason": reason})
    del record["events"][:-AUDIT_KEEP]
    return True


def plan(record: dict[str, Any], version: str | None) -> dict[str, Any]:
    """What a rollback to `version` (default: the release below the top) does."""
    stack = record["releases"]
    top = current(record)
    if top is None:
        raise RecordError("nothing to roll back to: no release has been deployed with this inventory yet")
    older = [entry["version"] for entry in stack[:-1]]
    if version is None:
        if not older:
            raise RecordError(f"nothing to roll back to: {top} is the only release deployed so far")
        version = older[-1]
    elif version == top:
        raise RecordError(f"release {version} is already the current release: nothing to roll back")
    elif version not in older:
        known = ", ".join(reversed(older)) or "none"
        raise RecordError(f"release {version} was not deployed before {top}; releases to go back to: {known}")
    index = len(older) - 1 - older[::-1].index(version)
    undone = stack[index + 1:]
    restore = next(({"release": entry["version"], **entry["backup"]}
                    for entry in undone if entry.get("backup")), None)
    return {"current": top, "target": version, "restore": restore,
            "undone": [entry["version"] for entry in reversed(undone)]}


def rolled_back(record: dict[str, Any], version: str, reason: str) -> bool:
    """Pop the stack down to `version` (already on top: a re-run, nothing to do)."""
    if current(record) == version:
        return False
    undone = plan(record, version)["undone"]
    del record["releases"][len(record["releases"]) - len(undone):]
    record["events"].append({"event": "rolled_back", "version": version, "at": now(),
                             "undone": undone, "reason": reason})
    del record["events"][:-AUDIT_KEEP]
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "required": True, "choices": ["deployed", "planned", "rolled_back"]},
            "version": {"type": "str"},
            "backup": {"type": "dict"},
            "reason": {"type": "str", "default": ""},
            "keep": {"type": "int", "default": 20},
        },
        required_if=[("state", "deployed", ["version"]), ("state", "rolled_back", ["version"])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        record = load(params["path"])
        before = current(record)
        if params["state"] == "planned":
            module.exit_json(changed=False, releases=record["releases"], **plan(record, params["version"]))
        if params["state"] == "deployed":
            if params["keep"] < 2:
                raise RecordError(f"keep must be 2 or more to allow a rollback, got {params['keep']}")
            changed = deployed(record, params["version"], params["backup"], params["reason"], params["keep"])
        else:
            changed = rolled_back(record, params["version"], params["reason"])
        if changed and not module.check_mode:
            save(params["path"], record)
    except (RecordError, OSError) as exc:
        if params["state"] == "planned":
            module.fail_json(msg=f"Cannot roll back ({params['path']}): {exc}")
        module.fail_json(msg=f"Failed to update the release record '{params['path']}': {exc}")
    module.exit_json(changed=changed, current=before if module.check_mode else current(record),
                     previous=before, releases=record["releases"])


if __name__ == "__main__":
    main()
