"""Interventions: restart a unit, reload nginx after `nginx -t` passes.

Every command is a fixed argv run through `sudo -n` (never a shell, never a prompt); the
`qos_daemon` role installs a sudoers file allowing exactly these command lines
(`python -m qosd install --sudoers` prints them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from qosd.config import Commands, Target
from qosd.probes import CommandResult, Runner, run_command

NGINX_UNIT = "nginx.service"


@dataclass(frozen=True)
class ActionResult:
    """result: `ok`, `failed` (the command failed) or `rejected` (`nginx -t` refused the config,
    nothing was reloaded)."""

    result: str
    detail: str


class Actions(Protocol):
    def perform(self, target: Target) -> ActionResult:
        """Intervenes on a target once; never raises for a failing command."""
        ...


def unit_name(unit: str) -> str:
    """`scheduler` -> `scheduler.service`: sudoers matches the exact command line."""
    return unit if "." in unit else f"{unit}.service"


class SystemActions:
    def __init__(self, commands: Commands, runner: Runner = run_command) -> None:
        self.commands = commands
        self.runner = runner

    def command_lines(self, targets: Sequence[Target]) -> list[list[str]]:
        """Every privileged command line these targets can run (for the sudoers file)."""
        lines: list[list[str]] = []
        for target in targets:
            if target.action == "restart" and target.unit:
                lines += [
                    self._systemctl("reset-failed", target.unit),
                    self._systemctl("restart", target.unit),
                ]
            elif target.action == "reload_nginx":
                lines += [[self.commands.nginx, "-t"], self._systemctl("reload", NGINX_UNIT)]
        unique: list[list[str]] = []
        for line in lines:
            if line not in unique:
                unique.append(line)
        return unique

    def perform(self, target: Target) -> ActionResult:
        if target.action == "restart" and target.unit:
            return self.restart(target.unit)
        if target.action == "reload_nginx":
            return self.reload_nginx()
        return ActionResult("failed", f"unknown action {target.action!r} for target {target.name!r}")

    def restart(self, unit: str) -> ActionResult:
        # A unit that hit its start limit refuses `restart` until its failed state is reset.
        self._run(self._systemctl("reset-failed", unit))
        done = self._run(self._systemctl("restart", unit))
        if done.returncode != 0:
            return ActionResult(
                "failed",
                f"systemctl restart {unit_name(unit)} exited {done.returncode}: {_tail(done.output)}",
            )
        return ActionResult("ok", f"restarted {unit_name(unit)}")

    def reload_nginx(self) -> ActionResult:
        tested = self._run([self.commands.nginx, "-t"])
        if tested.returncode != 0:
            return ActionResult("rejected", f"nginx -t failed, not reloading: {_tail(tested.output)}")
        done = self._run(self._systemctl("reload", NGINX_UNIT))
        if done.returncode != 0:
            return ActionResult(
                "failed", f"systemctl reload nginx exited {done.returncode}: {_tail(done.output)}"
            )
        return ActionResult("ok", "nginx -t passed, nginx reloaded")

    def _systemctl(self, verb: str, unit: str) -> list[str]:
        return [self.commands.systemctl, verb, unit_name(unit)]

    def _run(self, argv: list[str]) -> CommandResult:
        full = [self.commands.sudo, "-n", *argv] if self.commands.use_sudo else argv
        return self.runner(full, self.commands.timeout)


def _tail(output: str, limit: int = 300) -> str:
    text = " | ".join(line.strip() for line in output.strip().splitlines() if line.strip())
    return text[-limit:] if text else "(no output)"
