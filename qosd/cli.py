"""`python -m qosd <command>`: the operator's and Ansible's interface to the daemon.

    test                 one check cycle, a readable report; exit 0 all ok, 1 failures, 2 bad config
    check-config [PATH]  validate a config file (Ansible: validate: python3 -m qosd check-config %s)
    run                  the daemon in the foreground (systemd Type=notify)
    start|stop|status    systemctl for qosd.service; status adds what the daemon last saw
    pause [--for 15m]    no interventions until resumed or the pause expires (probes go on)
    resume               interventions again
    reset [TARGET...]    clear escalations and intervention history (all targets by default)
    install              print (or --write) the systemd unit and the sudoers file

The config is `--config`, else $QOSD_CONFIG, else /etc/qosd/config.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from qosd import __version__, state
from qosd.actions import SystemActions
from qosd.clock import SystemClock
from qosd.config import Config, ConfigError, load, parse_duration
from qosd.engine import Engine
from qosd.logs import setup_console_logging
from qosd.metrics import Metrics
from qosd.probes import build_probe
from qosd.unit import UNIT_NAME, sudoers_text, unit_text

DEFAULT_CONFIG = "/etc/qosd/config.json"
EXIT_OK, EXIT_FAILING, EXIT_BAD_CONFIG = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.path or args.config)
    if args.command in ("start", "stop"):
        return _systemctl(args.command, UNIT_NAME)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_CONFIG
    return _COMMANDS[args.command](config, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qosd", description="QoS daemon: probes, repairs, never loops.")
    parser.add_argument("--version", action="version", version=f"qosd {__version__}")
    parser.add_argument(
        "--config",
        default=os.environ.get("QOSD_CONFIG", DEFAULT_CONFIG),
        help="config file (default: $QOSD_CONFIG or %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    test = sub.add_parser("test", help="one check cycle and a report (exit 0 ok, 1 failing, 2 bad config)")
    test.add_argument("--json", action="store_true", help="print the results as JSON")
    check = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 2 invalid)")
    check.add_argument("path", nargs="?", help="the file (default: --config)")
    sub.add_parser("run", help="run the daemon in the foreground (systemd Type=notify)")
    sub.add_parser("start", help=f"systemctl start {UNIT_NAME}")
    sub.add_parser("stop", help=f"systemctl stop {UNIT_NAME}")
    sub.add_parser("status", help="the unit's state, the pause and what the daemon last saw")
    pause = sub.add_parser("pause", help="no interventions until resumed or the pause expires")
    pause.add_argument("--for", dest="duration", help="how long, e.g. 90s, 15m, 1h (default: pause.default)")
    pause.add_argument("--reason", default="", help="recorded in the pause file and the logs")
    sub.add_parser("resume", help="end a pause now")
    reset = sub.add_parser("reset", help="clear escalations and intervention history")
    reset.add_argument("targets", nargs="*", help="target names (default: all)")
    install = sub.add_parser("install", help="print the systemd unit (and sudoers) or --write them")
    install.add_argument(
        "--write", action="store_true", help="write the files and run systemctl daemon-reload"
    )
    install.add_argument("--user", default="qosd", help="the unprivileged user the daemon runs as")
    install.add_argument("--unit-path", default=f"/etc/systemd/system/{UNIT_NAME}")
    install.add_argument("--sudoers-path", default="/etc/sudoers.d/qosd")
    install.add_argument("--python", default=sys.executable, help="the interpreter that has qosd installed")
    return parser


def _check_config(path: str) -> int:
    try:
        config = load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(f"{path}: valid ({len(config.checks)} checks, {len(config.targets)} targets)")
    return EXIT_OK


def _test(config: Config, args: argparse.Namespace) -> int:
    setup_console_logging("ERROR")
    clock = SystemClock()
    probes = {spec.name: build_probe(spec, clock, config.commands.systemctl) for spec in config.checks}
    engine = Engine(config, probes, SystemActions(config.commands), clock, Metrics())
    try:
        results = engine.probe_once()
    finally:
        engine.close()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "check": spec.name,
                        "type": spec.type,
                        "ok": result.ok,
                        "symptom": result.symptom,
                        "detail": result.detail,
                        "latency": round(result.latency, 4),
                        "remedy": spec.target_for(result.symptom) if result.symptom else None,
                    }
                    for spec, result in results
                ],
                indent=2,
            )
        )
    else:
        width = max(len(spec.name) for spec, _ in results)
        for spec, result in results:
            remedy = spec.target_for(result.symptom) if result.symptom else None
            action = f"  -> would act on {remedy} after {spec.threshold} failures" if remedy else ""
            mark = "OK  " if result.ok else "FAIL"
            print(f"{mark} {spec.name:<{width}} {spec.type:<7} {result.detail}{action}")
        failed = sum(1 for _, result in results if not result.ok)
        print(f"{len(results) - failed}/{len(results)} checks ok" + (f", {failed} failing" if failed else ""))
    return EXIT_FAILING if any(not result.ok for _, result in results) else EXIT_OK


def _run(config: Config, args: argparse.Namespace) -> int:
    from qosd.daemon import run  # noqa: PLC0415 - only the daemon needs the metrics server and signals

    return run(config)


def _systemctl(verb: str, unit: str) -> int:
    return subprocess.run(["systemctl", verb, unit], check=False).returncode


def _status(config: Config, args: argparse.Namespace) -> int:
    active = subprocess.run(
        ["systemctl", "is-active", UNIT_NAME], capture_output=True, text=True, check=False
    )
    print(f"{UNIT_NAME}: {active.stdout.strip() or 'unknown'}")
    _print_pause(config)
    try:
        status = state.read_json(config.state_dir / state.STATUS_FILE)
    except state.StateFileError as exc:
        print(f"last cycle: unreadable ({exc})")
        status = None
    if isinstance(status, dict):
        age = time.time() - float(status.get("at", 0))
        print(f"last cycle: {age:.0f} s ago; escalated: {', '.join(status.get('escalated', [])) or 'none'}")
        for name, check in sorted(status.get("checks", {}).items()):
            mark = {True: "OK  ", False: "FAIL", None: "--  "}[check.get("ok")]
            print(
                f"  {mark} {name}: {check.get('detail')} ({check.get('consecutive_failures')}/"
                f"{check.get('threshold')} failures)"
            )
    return active.returncode


def _print_pause(config: Config) -> None:
    try:
        pause = state.read_pause(config.state_dir)
    except state.StateFileError as exc:
        print(f"pause: unreadable ({exc})")
        return
    if pause is None or pause.remaining(time.time()) <= 0:
        print("interventions: enabled")
    else:
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pause.until))
        print(
            f"interventions: paused until {until} ({pause.remaining(time.time()):.0f} s left)"
            + (f": {pause.reason}" if pause.reason else "")
        )


def _pause(config: Config, args: argparse.Namespace) -> int:
    try:
        seconds = parse_duration(args.duration) if args.duration else config.pause_default
    except ValueError as exc:
        print(f"--for: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if not 0 < seconds <= config.pause_max:
        print(
            f"--for: expected a duration above 0 and at most pause.max ({config.pause_max:g} s), "
            f"got {seconds:g} s",
            file=sys.stderr,
        )
        return EXIT_BAD_CONFIG
    now = time.time()
    state.write_pause(config.state_dir, state.Pause(until=now + seconds, since=now, reason=args.reason))
    until = time.strftime("%H:%M:%S", time.localtime(now + seconds))
    print(f"qosd paused for {seconds:g} s (until {until}): probes go on, no interventions")
    return EXIT_OK


def _resume(config: Config, args: argparse.Namespace) -> int:
    had = state.clear_pause(config.state_dir)
    print("qosd resumed: interventions enabled" if had else "qosd was not paused")
    return EXIT_OK


def _reset(config: Config, args: argparse.Namespace) -> int:
    unknown = [name for name in args.targets if name not in config.targets]
    if unknown:
        print(
            f"unknown target(s) {', '.join(unknown)} (expected: {', '.join(config.targets)})", file=sys.stderr
        )
        return EXIT_BAD_CONFIG
    state.request_reset(config.state_dir, list(args.targets))
    print(
        f"reset requested for {', '.join(args.targets) or 'all targets'}: applied at the daemon's next cycle"
    )
    return EXIT_OK


def _install(config: Config, args: argparse.Namespace) -> int:
    unit = unit_text(str(Path(args.config).resolve()), python=args.python, user=args.user)
    sudoers = sudoers_text(config, user=args.user)
    if not args.write:
        print(f"# {args.unit_path}\n{unit}\n# {args.sudoers_path}\n{sudoers}", end="")
        return EXIT_OK
    candidate = Path(args.sudoers_path).with_name(".qosd.sudoers.new")
    candidate.write_text(sudoers, encoding="utf-8")
    candidate.chmod(0o440)
    checked = subprocess.run(["visudo", "-cf", str(candidate)], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        candidate.unlink()
        print(
            f"sudoers rejected by visudo, nothing installed: {checked.stdout}{checked.stderr}",
            file=sys.stderr,
        )
        return EXIT_FAILING
    candidate.replace(args.sudoers_path)
    Path(args.unit_path).write_text(unit, encoding="utf-8")
    Path(args.unit_path).chmod(0o644)
    print(f"wrote {args.unit_path} and {args.sudoers_path}")
    return subprocess.run(["systemctl", "daemon-reload"], check=False).returncode


_COMMANDS = {
    "test": _test,
    "run": _run,
    "status": _status,
    "pause": _pause,
    "resume": _resume,
    "reset": _reset,
    "install": _install,
}
