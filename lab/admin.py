"""Client for the lab's admin socket: health and fault injection."""

from __future__ import annotations

import http.client
import json
import socket

from lab.config import LabPaths


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class AdminError(RuntimeError):
    """The admin socket refused or is not there."""


class AdminClient:
    def __init__(self, paths: LabPaths | None = None, timeout: float = 10) -> None:
        self.paths = paths or LabPaths.default()
        self.timeout = timeout

    def request(self, method: str, path: str, body: object = None) -> dict:
        conn = _UnixConnection(str(self.paths.admin_socket), self.timeout)
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(method, path, body=payload,
                         headers={"Content-Type": "application/json"} if payload else {})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        except OSError as exc:
            raise AdminError(f"lab admin socket {self.paths.admin_socket}: {exc}") from exc
        finally:
            conn.close()
        if resp.status >= 400:
            raise AdminError(f"lab admin {method} {path}: {data.get('error', resp.status)}")
        return data

    def health(self) -> dict:
        return self.request("GET", "/health")

    def faults(self) -> dict:
        return self.request("GET", "/faults")

    def set_faults(self, **spec: object) -> dict:
        return self.request("POST", "/faults", spec)

    def clear_faults(self) -> dict:
        return self.request("DELETE", "/faults")
