#!/usr/bin/python3
"""Keep the metrics exporters' TCP ports reachable from the allowed sources only.

Enforced by the kernel's policy routing (`ip rule`), which an unprivileged LXC container
may change in its own network namespace with the tools of every Debian system (iproute2);
see roles/exporters/README.md for why not systemd's IPAddressDeny= or a packet filter.
With base priority P (from the configuration file):

    P     from all iif lo goto P+3                             locally sent: never filtered
    P+1   from <source> ipproto tcp dport <port> goto P+3      each allowed source, each port
    P+2   from all ipproto tcp dport <port> prohibit           everyone else: dropped
    P+3   from all lookup local                                the kernel's local table...
    0     from all lookup local                                ...moved from here (removed)

A packet for an exporter port from another source never reaches the local routing table,
so it is dropped before any socket sees it. Other ports are untouched.

    exporters-access [-c CONFIG] apply    converge the rules (idempotent; no gap while changing)
    exporters-access [-c CONFIG] check    exit 0 when the rules in force are exactly those, 1 if not
    exporters-access [-c CONFIG] clear    remove them and put the local table back at priority 0

CONFIG (JSON, default /etc/exporters-access.json):
    {"priority": 1000, "ports": [9100, 9113], "sources": ["10.92.3.225/32", "127.0.0.1/32"]}
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/exporters-access.json")
IP = "/usr/sbin/ip"


class ConfigError(ValueError):
    """A configuration file that does not say what to enforce."""


@dataclass(frozen=True, order=True)
class Rule:
    """One IPv4 routing policy rule, in the fields `ip -j rule show` reports."""

    priority: int
    src: str = "all"  # CIDR or "all"
    iif: str = ""
    dport: int = 0  # with ipproto tcp
    action: str = ""  # "goto N", "prohibit" or "table NAME"

    def args(self) -> list[str]:
        """Selector and action for `ip rule add|del`."""
        args = ["pref", str(self.priority), "from", self.src]
        if self.iif:
            args += ["iif", self.iif]
        if self.dport:
            args += ["ipproto", "tcp", "dport", str(self.dport)]
        return args + self.action.split()

    def __str__(self) -> str:
        return " ".join(self.args())


@dataclass(frozen=True)
class Config:
    priority: int
    ports: tuple[int, ...]
    sources: tuple[str, ...]


LOCAL_AT_ZERO = Rule(0, action="table local")


def load_config(path: Path) -> Config:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        priority = int(data["priority"])
        ports = tuple(sorted({int(port) for port in data["ports"]}))
        sources = tuple(sorted({str(ipaddress.IPv4Network(source)) for source in data["sources"]}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: expected {{priority, ports, sources (IPv4 CIDRs)}}: {exc}") from exc
    if not 1 <= priority <= 32000:
        raise ConfigError(f"{path}: priority must be within 1-32000, got {priority}")
    if not all(1 <= port <= 65535 for port in ports):
        raise ConfigError(f"{path}: ports must be within 1-65535, got {list(ports)}")
    return Config(priority, ports, sources)


def wanted_rules(config: Config) -> set[Rule]:
    base = config.priority
    passed = f"goto {base + 3}"
    rules = {Rule(base, iif="lo", action=passed), Rule(base + 3, action="table local")}
    for port in config.ports:
        rules |= {Rule(base + 1, src=source, dport=port, action=passed) for source in config.sources}
        rules.add(Rule(base + 2, dport=port, action="prohibit"))
    return rules


def rule_from_json(entry: dict[str, Any]) -> Rule:
    src = entry.get("src", "all")
    if src != "all":
        src = f"{src}/{entry.get('srclen', 32)}"
    if "goto" in entry:
        action = f"goto {entry['goto']}"
    elif "table" in entry:
        action = f"table {entry['table']}"
    else:
        action = str(entry.get("action", ""))
    return Rule(int(entry["priority"]), src=src, iif=entry.get("iif", ""),
                dport=int(entry.get("dport", 0)), action=action)


def rules_in_force(config: Config) -> tuple[set[Rule], bool]:
    """Rules within the managed priorities, and whether the local table is still at 0."""
    shown = subprocess.run([IP, "-j", "-4", "rule", "show"], capture_output=True, text=True, check=True)
    rules = {rule_from_json(entry) for entry in json.loads(shown.stdout or "[]")}
    managed = {rule for rule in rules if config.priority <= rule.priority <= config.priority + 3}
    return managed, LOCAL_AT_ZERO in rules


def ip_rule(verb: str, rule: Rule) -> None:
    subprocess.run([IP, "-4", "rule", verb, *rule.args()], check=True)


def apply(config: Config) -> None:
    """Add what is missing before removing what is extra, so nothing is open meanwhile."""
    wanted = wanted_rules(config)
    current, local_at_zero = rules_in_force(config)
    # The local table's new place first, then what passes, then what is refused.
    first = {config.priority + 3: 0, config.priority: 1, config.priority + 1: 2, config.priority + 2: 3}
    for rule in sorted(wanted - current, key=lambda rule: (first[rule.priority], rule)):
        ip_rule("add", rule)
    for rule in sorted(current - wanted):
        ip_rule("del", rule)
    if local_at_zero:
        ip_rule("del", LOCAL_AT_ZERO)


def check(config: Config) -> int:
    wanted = wanted_rules(config)
    current, local_at_zero = rules_in_force(config)
    problems = [f"missing: {rule}" for rule in sorted(wanted - current)]
    problems += [f"unexpected: {rule}" for rule in sorted(current - wanted)]
    if local_at_zero:
        problems.append(f"still in force: {LOCAL_AT_ZERO} (filter bypassed)")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def clear(config: Config) -> None:
    current, local_at_zero = rules_in_force(config)
    if not local_at_zero:
        ip_rule("add", LOCAL_AT_ZERO)
    for rule in sorted(current):
        ip_rule("del", rule)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("command", choices=["apply", "check", "clear", "validate"])
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"exporters-access: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        return 0
    if args.command == "check":
        return check(config)
    try:
        apply(config) if args.command == "apply" else clear(config)
    except subprocess.CalledProcessError as exc:
        command = " ".join(exc.cmd)
        print(f"exporters-access: {command} failed with exit code {exc.returncode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
