"""Shared Proxmox VE API client for this project's modules (library/pve_*).

One place for: the auth argument spec (token or password, environment fallbacks,
secrets no_log), TLS verified against a CA file, retries with backoff on transient
failures only, and task waiting that returns as soon as a task stops and puts the
task's log into the failure message.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import ResourceException
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None

PVE_AUTH_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "api_host": {"type": "str", "required": True, "fallback": (env_fallback, ["PROXMOX_HOST"])},
    "api_port": {"type": "int", "default": 8006, "fallback": (env_fallback, ["PROXMOX_PORT"])},
    "api_user": {"type": "str", "fallback": (env_fallback, ["PROXMOX_USER"])},
    "api_password": {"type": "str", "no_log": True,
                     "fallback": (env_fallback, ["PROXMOX_PASSWORD"])},
    "api_token_id": {"type": "str", "no_log": False,
                     "fallback": (env_fallback, ["PROXMOX_TOKEN_ID"])},
    "api_token_secret": {"type": "str", "no_log": True,
                         "fallback": (env_fallback, ["PROXMOX_TOKEN_SECRET"])},
    "validate_certs": {"type": "bool", "default": True,
                       "fallback": (env_fallback, ["PROXMOX_VALIDATE_CERTS"])},
    "ca_path": {"type": "path", "fallback": (env_fallback, ["PROXMOX_CA_PATH"])},
    "api_timeout": {"type": "int", "default": 30},
    "api_retries": {"type": "int", "default": 4},
}

# Five-hundreds that are not transient: PVE answers most logical errors with 500.
TRANSIENT_500 = re.compile(r"locked|got timeout|temporarily|try again later|connection refused",
                           re.IGNORECASE)
TRANSIENT_STATUS = {502, 503, 504, 595, 596}


class PveError(Exception):
    """A PVE API call that failed for good: status, message and per-field errors."""

    def __init__(self, message: str, status: int | None = None,
                 errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or {}


class PveTaskError(PveError):
    """A worker task that stopped with an error; the message carries its log."""


def auth_argument_spec(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = {key: dict(value) for key, value in PVE_AUTH_ARGUMENT_SPEC.items()}
    spec.update(extra)
    return spec


def describe(exc: Exception) -> str:
    """PVE's reason phrase plus per-parameter errors, on one line."""
    if HAS_PROXMOXER and isinstance(exc, ResourceException):
        text = f"{exc.status_code} {exc.status_message}".strip()
        errors = getattr(exc, "errors", None)
        if isinstance(errors, dict) and errors:
            text += " (" + "; ".join(f"{k}: {v}".strip() for k, v in sorted(errors.items())) + ")"
        elif exc.content and exc.content not in text:
            text += f": {exc.content}".rstrip()
        return text
    return str(exc) or exc.__class__.__name__


def is_transient(exc: Exception) -> bool:
    if HAS_PROXMOXER and isinstance(exc, ResourceException):
        if exc.status_code in TRANSIENT_STATUS:
            return True
        return exc.status_code == 500 and bool(TRANSIENT_500.search(describe(exc)))
    return HAS_PROXMOXER and isinstance(exc, (requests.ConnectionError, requests.Timeout))


class PveClient:
    """proxmoxer with retries, clear errors and task waiting."""

    def __init__(self, module: AnsibleModule, sleep: Callable[[float], None] = time.sleep) -> None:
        if not HAS_PROXMOXER:
            module.fail_json(msg=missing_required_lib("proxmoxer"), exception=PROXMOXER_IMPORT_ERROR)
        self.module = module
        self.sleep = sleep
        self.retries = max(0, module.params["api_retries"])
        self.api = self._connect(module.params)

    def _connect(self, params: dict[str, Any]) -> Any:
        verify: bool | str = params["validate_certs"]
        if verify and params.get("ca_path"):
            verify = params["ca_path"]
        kwargs: dict[str, Any] = {"port": params["api_port"], "verify_ssl": verify,
                                  "timeout": params["api_timeout"]}
        token_id = params.get("api_token_id")
        user = params.get("api_user")
        if token_id:
            if "!" in token_id:
                token_user, token_name = token_id.split("!", 1)
                if user and user != token_user:
                    self.module.fail_json(msg=f"api_user '{user}' does not match the user of "
                                              f"api_token_id '{token_id}'")
                user = token_user
            else:
                token_name = token_id
            if not params.get("api_token_secret"):
                self.module.fail_json(msg="api_token_id is set but api_token_secret is missing "
                                          "(or PROXMOX_TOKEN_SECRET)")
            kwargs.update(token_name=token_name, token_value=params["api_token_secret"])
        elif params.get("api_password"):
            kwargs["password"] = params["api_password"]
        else:
            self.module.fail_json(msg="no PVE credentials: set api_token_id and api_token_secret, "
                                      "or api_user and api_password")
        if not user:
            self.module.fail_json(msg="api_user is required (or give api_token_id as "
                                      "'user@realm!name')")
        try:
            return self._retry("connect", lambda: ProxmoxAPI(params["api_host"], user=user,
                                                              **kwargs))
        except PveError as exc:
            self.module.fail_json(msg=f"Failed to connect to the PVE API at "
                                      f"{params['api_host']}:{params['api_port']}: {exc}")
        return None  # unreachable: fail_json exits

    # -- calls ------------------------------------------------------------------
    def _retry(self, what: str, call: Callable[[], Any]) -> Any:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as exc:
                if not is_transient(exc) or attempt == self.retries:
                    raise PveError(f"{what}: {describe(exc)}",
                                   getattr(exc, "status_code", None),
                                   getattr(exc, "errors", None) or None) from exc
                self.sleep(delay)
                delay = min(delay * 2, 8)
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self._retry(f"GET {path}", lambda: self.api(path).get(**params))

    def post(self, path: str, **params: Any) -> Any:
        return self._retry(f"POST {path}", lambda: self.api(path).post(**params))

    def put(self, path: str, **params: Any) -> Any:
        return self._retry(f"PUT {path}", lambda: self.api(path).put(**params))

    def delete(self, path: str, **params: Any) -> Any:
        return self._retry(f"DELETE {path}", lambda: self.api(path).delete(**params))

    # -- tasks ------------------------------------------------------------------
    def wait_task(self, node: str, upid: str, timeout: float, what: str) -> dict[str, Any]:
        """Returns the final status once the task stops; raises with its log if it failed."""
        deadline = time.monotonic() + timeout
        interval = 0.1
        while True:
            status = self.get(f"nodes/{node}/tasks/{upid}/status")
            if status.get("status") == "stopped":
                break
            if time.monotonic() >= deadline:
                raise PveTaskError(f"{what}: task {upid} still running after {timeout:.0f}s")
            self.sleep(interval)
            interval = min(interval * 1.5, 1.0)
        if status.get("exitstatus") != "OK":
            raise PveTaskError(f"{what}: {status.get('exitstatus')}; task log:\n"
                               + self.task_log(node, upid))
        return status

    def task_log(self, node: str, upid: str, tail: int = 40) -> str:
        try:
            lines = self.get(f"nodes/{node}/tasks/{upid}/log", limit=5000)
        except PveError as exc:
            return f"(task log unavailable: {exc})"
        return "\n".join(str(line.get("t", "")) for line in lines[-tail:])

    def run_task(self, method: str, path: str, node: str, timeout: float, what: str,
                 **params: Any) -> dict[str, Any]:
        upid = getattr(self, method)(path, **params)
        return self.wait_task(node, upid, timeout, what)
