"""The daemon log (human lines) and the interventions log (JSON lines), both rotated."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

from qosd.config import Config

DAEMON_LOG = "qosd.log"
INTERVENTIONS_LOG = "interventions.jsonl"
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_daemon_logging(config: Config, *, to_stderr: bool = True) -> logging.Logger:
    """`qosd` logs to <log_dir>/qosd.log and stderr (the journal under systemd)."""
    logger = logging.getLogger("qosd")
    logger.setLevel(config.log_level)
    logger.handlers.clear()
    logger.propagate = False
    handler = RotatingFileHandler(
        Path(config.log_dir) / DAEMON_LOG,
        maxBytes=config.log_max_bytes,
        backupCount=config.log_backups,
        encoding="utf-8",
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # the journal adds the time
        logger.addHandler(stream)
    return logger


def setup_console_logging(level: str) -> None:
    logger = logging.getLogger("qosd")
    logger.setLevel(level)
    logger.handlers.clear()
    logger.propagate = False
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(stream)


class InterventionLog:
    """One JSON object per line for every intervention, escalation, suppression and reset."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self._logger = logging.getLogger(f"qosd.interventions.{path}")
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False
        self._logger.handlers.clear()
        handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(handler)

    def __call__(self, event: dict[str, object]) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **event}
        self._logger.info(json.dumps(record, sort_keys=True))

    def close(self) -> None:
        for handler in self._logger.handlers:
            handler.close()
