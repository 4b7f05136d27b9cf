"""rollback.yml benchmark (JSON lines): going back to the previous release on the lab.

Target (issue 7): rollback.yml <= 15 s. The lab is converged first (site.yml), a second
version of the same source is rolled out through the app stage, then rollback.yml is
timed going back; the lab ends on app/VERSION, where it started.
"""

from __future__ import annotations

import time

from benchlib import REPO, emit, timed_site


def main() -> None:
    timed_site()
    base = (REPO / "app" / "VERSION").read_text().strip()
    version = f"{base}.post{int(time.time())}"
    deploy, _ = timed_site("-e", f"app_version={version}", playbook="playbooks/app.yml")
    emit("app_stage.deploy_new_version", deploy, "s", version=version,
         note="includes building the release on the controller")
    rollback, _ = timed_site(playbook="rollback.yml")
    emit("rollback.previous_release", rollback, "s", target="<= 15", ok=rollback <= 15, to=base)


if __name__ == "__main__":
    main()
