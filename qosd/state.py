"""Files in the state directory shared by the CLI (run by operators and Ansible) and the daemon.

- `pause.json`: `{"until": <unix time>, "since": ..., "reason": ...}`. Written by
  `qosd pause`, removed by `qosd resume` or by the daemon once it has expired. A pause
  always has an end: a forgotten pause cannot switch the healing off for good.
- `reset.json`: `{"targets": [...]}` (empty: all), written by `qosd reset`, consumed by the
  daemon: clears escalations and intervention history.
- `targets.json`: the daemon's intervention history and escalations (unix times), so a
  restarted daemon keeps its loop protection.
- `status.json`: what the daemon saw at its last cycle, for `qosd status`.

Every write is atomic (temporary file + rename) and readable by all (mode 0644).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAUSE_FILE = "pause.json"
RESET_FILE = "reset.json"
TARGETS_FILE = "targets.json"
STATUS_FILE = "status.json"


class StateFileError(ValueError):
    """A state file exists but cannot be understood."""


@dataclass(frozen=True)
class Pause:
    until: float
    since: float
    reason: str

    def remaining(self, wall_now: float) -> float:
        return max(0.0, self.until - wall_now)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """The decoded file, None when it does not exist; StateFileError when it is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{path}: not valid JSON ({exc.msg})") from exc


def read_pause(state_dir: Path) -> Pause | None:
    data = read_json(state_dir / PAUSE_FILE)
    if data is None:
        return None
    try:
        return Pause(
            until=float(data["until"]),
            since=float(data.get("since", 0.0)),
            reason=str(data.get("reason", "")),
        )
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise StateFileError(
            f"{state_dir / PAUSE_FILE}: expected {{'until': <unix time>, ...}}, got {data!r}"
        ) from exc


def write_pause(state_dir: Path, pause: Pause) -> None:
    write_json(state_dir / PAUSE_FILE, {"until": pause.until, "since": pause.since, "reason": pause.reason})


def clear_pause(state_dir: Path) -> bool:
    """Removes the pause; True when there was one."""
    try:
        (state_dir / PAUSE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def request_reset(state_dir: Path, targets: list[str]) -> None:
    write_json(state_dir / RESET_FILE, {"targets": targets})


def take_reset_request(state_dir: Path) -> list[str] | None:
    """The targets to reset ([] = all) and removes the request; None when there is none."""
    path = state_dir / RESET_FILE
    try:
        data = read_json(path)
    except StateFileError:
        data = {"targets": []}
    if data is None:
        return None
    path.unlink(missing_ok=True)
    targets = data.get("targets", []) if isinstance(data, dict) else []
    return [str(name) for name in targets] if isinstance(targets, list) else []
