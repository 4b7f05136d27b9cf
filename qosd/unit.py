"""Text of the systemd unit and the sudoers file (`qosd install`); the Ansible role templates
the same content, these are the reference."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from qosd.actions import SystemActions
from qosd.config import Config

UNIT_NAME = "qosd.service"


def unit_text(
    config_path: str, *, python: str | None = None, user: str = "qosd", watchdog_sec: int = 30
) -> str:
    python = python or sys.executable
    # --config is an option of `qosd` itself: it goes before the command.
    return f"""[Unit]
Description=QoS daemon: probes the service, repairs it, exports metrics (qosd)
After=network-online.target
Wants=network-online.target
# Loop protection for the daemon itself: at most 5 starts in 5 minutes.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
User={user}
Group={user}
ExecStart={shlex.quote(python)} -m qosd --config {shlex.quote(config_path)} run
WatchdogSec={watchdog_sec}
Restart=on-failure
RestartSec=5
StateDirectory=qosd
StateDirectoryMode=0755
LogsDirectory=qosd
LogsDirectoryMode=0750
# sudo must gain privileges for the allowed commands: no NoNewPrivileges, no capability
# bounding; the sudoers file is what limits the daemon to restarting and reloading.
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def sudoers_text(config: Config, user: str = "qosd") -> str:
    """Exactly the command lines this config can run, nothing else."""
    actions = SystemActions(config.commands)
    lines = [
        " ".join(argv).replace(",", "\\,") for argv in actions.command_lines(list(config.targets.values()))
    ]
    if not lines:
        return f"# qosd: no targets configured, no command allowed for {user}\n"
    body = ", \\\n    ".join(lines)
    return (
        f"# qosd may run exactly these commands as root, without a password (check: visudo -cf <file>)\n"
        f"Defaults:{user} !requiretty\n"
        f"Cmnd_Alias QOSD_COMMANDS = {body}\n"
        f"{user} ALL=(root) NOPASSWD: QOSD_COMMANDS\n"
    )


def write_text(path: Path, text: str, mode: int) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
