#!/usr/bin/python3
"""Lab-only webhook receiver for Alertmanager: records what it is sent, for tests to read.

    POST   /alerts     record one webhook payload (a JSON object with an "alerts" list)
    GET    /alerts     every recorded payload, oldest first, as a JSON list
    DELETE /alerts     forget every recorded payload
    GET    /-/healthy  200 while the server runs

Payloads are appended, one JSON document a line, to a file (JSON lines) whose size is
bounded: when a new payload would make it larger than --max-bytes, the oldest payloads are
dropped. Standard library only: lab containers cannot download packages.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ALERTS_PATH = "/alerts"
HEALTH_PATH = "/-/healthy"


class PayloadError(ValueError):
    """A request body that is not an Alertmanager webhook payload."""


def parse_payload(body: bytes) -> dict[str, Any]:
    """The webhook payload in `body`, or PayloadError saying what is wrong with it."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not UTF-8 JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"expected a JSON object, got {type(payload).__name__}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError('expected an "alerts" list in the object (Alertmanager webhook format)')
    if not all(isinstance(alert, dict) for alert in alerts):
        raise PayloadError('every item of "alerts" must be a JSON object')
    return payload


class AlertLog:
    """Recorded payloads in a JSON-lines file of at most `max_bytes` bytes (thread-safe)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _lines(self) -> list[bytes]:
        try:
            return [line for line in self.path.read_bytes().splitlines(keepends=True) if line.strip()]
        except FileNotFoundError:
            return []

    def _write(self, lines: list[bytes]) -> None:
        """Replace the file atomically (a reader never sees half a file)."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.writelines(lines)
            os.chmod(tmp, 0o640)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def append(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        if len(line) > self.max_bytes:
            raise PayloadError(f"payload of {len(line)} bytes exceeds the store's {self.max_bytes} bytes")
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) <= self.max_bytes:
                with self.path.open("ab") as out:
                    out.write(line)
                return
            # Full: keep the newest payloads that fit together with the new one.
            kept = self._lines()
            total = sum(map(len, kept)) + len(line)
            while kept and total > self.max_bytes:
                total -= len(kept.pop(0))
            self._write([*kept, line])

    def read(self) -> list[Any]:
        with self._lock:
            lines = self._lines()
        return [json.loads(line) for line in lines]

    def clear(self) -> None:
        with self._lock:
            self._write([])


class AlertSinkHandler(BaseHTTPRequestHandler):
    """HTTP front of an AlertLog (the server's `alert_log` and `max_body_bytes`)."""

    server: AlertSinkServer
    protocol_version = "HTTP/1.1"
    server_version = "alert-sink"

    def _send_json(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error_json(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        self._send_json(status, {"error": message})

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a missing or oversized one."""
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._send_error_json(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            return None
        length = int(length_header)
        if length > self.server.max_body_bytes:
            self._send_error_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                  f"body of {length} bytes exceeds {self.server.max_body_bytes} bytes")
            return None
        return self.rfile.read(length)

    def do_POST(self) -> None:
        if self.path != ALERTS_PATH:
            self._send_error_json(HTTPStatus.NOT_FOUND, f"POST goes to {ALERTS_PATH}")
            return
        body = self._read_body()
        if body is None:
            return
        try:
            self.server.alert_log.append(parse_payload(body))
        except PayloadError as exc:
            self._send_error_json(HTTPStatus.BAD_REQUEST, str(exc))
            return
        self._send_json(HTTPStatus.OK, {"status": "recorded"})

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif self.path == ALERTS_PATH:
            self._send_json(HTTPStatus.OK, self.server.alert_log.read())
        else:
            self._send_error_json(HTTPStatus.NOT_FOUND, f"GET {ALERTS_PATH} or {HEALTH_PATH}")

    def do_DELETE(self) -> None:
        if self.path != ALERTS_PATH:
            self._send_error_json(HTTPStatus.NOT_FOUND, f"DELETE goes to {ALERTS_PATH}")
            return
        self.server.alert_log.clear()
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Content-Length", "0")
        self.end_headers()


class AlertSinkServer(ThreadingHTTPServer):
    """The HTTP server with its store and body limit."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], alert_log: AlertLog, max_body_bytes: int) -> None:
        super().__init__(address, AlertSinkHandler)
        self.alert_log = alert_log
        self.max_body_bytes = max_body_bytes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Record Alertmanager webhook payloads (lab only).")
    parser.add_argument("--listen-address", required=True, help="IP address to listen on")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--data-file", type=Path, default=Path("/var/lib/alert-sink/alerts.jsonl"))
    parser.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024,
                        help="size bound of the data file; the oldest payloads are dropped past it")
    parser.add_argument("--max-body-bytes", type=int, default=1024 * 1024,
                        help="largest request body accepted (413 beyond)")
    args = parser.parse_args(argv)
    if args.max_bytes < 1 or args.max_body_bytes < 1:
        parser.error("--max-bytes and --max-body-bytes must be positive")
    return args


def make_server(args: argparse.Namespace) -> AlertSinkServer:
    return AlertSinkServer((args.listen_address, args.port), AlertLog(args.data_file, args.max_bytes),
                           args.max_body_bytes)


def main(argv: list[str] | None = None) -> None:
    server = make_server(parse_args(argv))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
