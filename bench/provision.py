"""Provisioning benchmarks (JSON lines): the five lab containers from nothing, then no-op.

Destroys the lab inventory's containers (VMIDs 110-141) first, then times
`ansible-playbook site.yml --tags validate,provision` twice on the lab inventory: the
first run creates and starts all five and waits for SSH; the second changes nothing.
"""

from __future__ import annotations

from benchlib import destroy_lab_inventory_containers, emit, timed_site
from labtools import changed_by_host

STAGES = ("--tags", "validate,provision")


def main() -> None:
    destroy_lab_inventory_containers()
    cold, result = timed_site(*STAGES)
    emit("provision.site_create_five", cold, "s", changed=sum(changed_by_host(result).values()))
    noop, result = timed_site(*STAGES)
    changed = sum(changed_by_host(result).values())
    emit("provision.site_noop_five", noop, "s", changed=changed, ok=changed == 0)


if __name__ == "__main__":
    main()
