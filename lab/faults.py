"""Fault injection for tests, off by default.

Reachable only through the lab's admin socket (see lab/server.py), never through
the PVE API. Every fault has a count and is used up as it fires.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field


@dataclass
class ApiFault:
    status: int = 500
    message: str = "lab fault injection: internal error"
    count: int = 1
    method: str | None = None
    path: str | None = None  # regex searched in the path below /api2/json


@dataclass
class FaultState:
    fail_tasks: int = 0
    fail_message: str = "lab fault injection: task failed"
    slow_tasks: int = 0
    slow_seconds: float = 0.0
    # When set, task faults fire only for tasks on this VMID, so a test's fault cannot
    # land on another test's container.
    vmid: int | None = None
    api_errors: list[ApiFault] = field(default_factory=list)


class Faults:
    def __init__(self) -> None:
        self._state = FaultState()
        self._lock = threading.Lock()

    def show(self) -> dict[str, object]:
        with self._lock:
            return asdict(self._state)

    def clear(self) -> None:
        with self._lock:
            self._state = FaultState()

    def configure(self, spec: dict[str, object]) -> dict[str, object]:
        """Adds faults; refuses unknown keys so a typo in a test is loud."""
        allowed = {"fail_tasks", "fail_message", "slow_tasks", "slow_seconds", "api_error", "vmid"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}; "
                             f"expected some of {', '.join(sorted(allowed))}")
        with self._lock:
            state = self._state
            state.fail_tasks += int(spec.get("fail_tasks", 0))
            state.fail_message = str(spec.get("fail_message", state.fail_message))
            state.slow_tasks += int(spec.get("slow_tasks", 0))
            state.slow_seconds = float(spec.get("slow_seconds", state.slow_seconds))
            if "vmid" in spec:
                state.vmid = None if spec["vmid"] is None else int(spec["vmid"])  # type: ignore[arg-type]
            if isinstance(spec.get("api_error"), dict):
                fault = ApiFault(**spec["api_error"])  # type: ignore[arg-type]
                if fault.path:
                    re.compile(fault.path)
                state.api_errors.append(fault)
        return self.show()

    def _applies(self, vmid: int | None) -> bool:
        return self._state.vmid is None or vmid is None or self._state.vmid == vmid

    def take_task_failure(self, vmid: int | None = None) -> str | None:
        with self._lock:
            if self._state.fail_tasks <= 0 or not self._applies(vmid):
                return None
            self._state.fail_tasks -= 1
            return self._state.fail_message

    def task_delay(self, vmid: int | None = None) -> None:
        with self._lock:
            if self._state.slow_tasks <= 0 or not self._applies(vmid):
                return
            self._state.slow_tasks -= 1
            seconds = self._state.slow_seconds
        time.sleep(seconds)

    def take_api_error(self, method: str, path: str) -> ApiFault | None:
        with self._lock:
            for fault in self._state.api_errors:
                if fault.method and fault.method.upper() != method.upper():
                    continue
                if fault.path and not re.search(fault.path, path):
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self._state.api_errors.remove(fault)
                return fault
        return None
