"""site.yml benchmarks (JSON lines): cold run, no-op re-run, rolling deploy of a new version.

Targets (issue 4): cold <= 150 s (template cached), no-op <= 30 s.
Destroys the lab inventory's five containers first, so the cold run creates everything.
The rolling deploy builds and rolls out a new version (`-e app_version=...`) through the
app stage only.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchlib import destroy_lab_inventory_containers, emit, timed_site
from labtools import changed_by_host


def main() -> None:
    destroy_lab_inventory_containers()
    cold, _ = timed_site()
    emit("site.cold", cold, "s", target="<= 150", ok=cold <= 150)
    noop, result = timed_site()
    changed = sum(changed_by_host(result).values())
    emit("site.noop", noop, "s", target="<= 30", ok=noop <= 30 and changed == 0, changed=changed)
    base = (Path(__file__).resolve().parent.parent / "app" / "VERSION").read_text().strip()
    version = f"{base}.post{int(time.time())}"
    deploy, _ = timed_site("--tags", "app", "-e", f"app_version={version}")
    emit("site.rolling_deploy_new_version", deploy, "s", version=version,
         note="includes building the release on the controller")


if __name__ == "__main__":
    main()
