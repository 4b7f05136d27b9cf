"""Probes: one observation of one thing, returning ok or a named symptom.

A probe never raises for the condition it watches: a refused connection or a failed unit is
a result (`ok=False`, `symptom="refused"`), so the engine treats every check alike. The
symptom names are the keys a check's `remedies` can map to a target.
"""

from __future__ import annotations

import glob
import hashlib
import re
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import TextIOWrapper
from pathlib import Path
from typing import Protocol

import requests
import urllib3

from qosd.clock import Clock
from qosd.config import CheckSpec, FilesParams, HttpParams, LogParams, SystemdParams, TcpParams


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    latency: float = 0.0
    symptom: str | None = None

    @classmethod
    def passed(cls, detail: str, latency: float = 0.0) -> ProbeResult:
        return cls(ok=True, detail=detail, latency=latency)

    @classmethod
    def failed(cls, symptom: str, detail: str, latency: float = 0.0) -> ProbeResult:
        return cls(ok=False, detail=detail, latency=latency, symptom=symptom)


class Probe(Protocol):
    def __call__(self) -> ProbeResult:
        """Observes once; never raises for the condition it watches."""
        ...

    def acknowledge(self) -> None:
        """Called after an intervention on this check's target: forget what led to it."""
        ...


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


Runner = Callable[[Sequence[str], float], CommandResult]


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Runs a fixed argv (never a shell); a timeout or a missing program is a result, not a raise."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return CommandResult(124, f"{argv[0]} timed out after {timeout:g} s")
    except OSError as exc:
        return CommandResult(127, f"cannot run {argv[0]}: {exc.strerror or exc}")
    return CommandResult(done.returncode, (done.stdout + done.stderr).strip())


def _caused_by_refusal(exc: BaseException) -> bool:
    """True when a requests error comes from a refused TCP connection (urllib3 wraps it deeply)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        stack.extend(
            [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        )
    return "connection refused" in str(exc).lower()


class HttpProbe:
    """GET a URL: status in the allowed list, body matching a regex, answered within max_latency."""

    def __init__(self, params: HttpParams, timeout: float) -> None:
        self.params = params
        self.timeout = timeout
        self._body = re.compile(params.body) if params.body else None
        self._session = requests.Session()
        self._session.trust_env = False  # probe the service directly, never through a proxy from the env
        if not params.verify_tls:
            # Chosen in the config (e.g. a self-signed certificate probed on loopback): not worth
            # a warning on every `qosd test` and in the journal.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def __call__(self) -> ProbeResult:
        started = time.monotonic()
        try:
            response = self._session.get(
                self.params.url,
                timeout=self.timeout,
                allow_redirects=False,
                verify=self.params.verify_tls,
                headers={"Connection": "close", "User-Agent": "qosd", **self.params.headers},
            )
        except requests.Timeout:
            return ProbeResult.failed(
                "timeout", f"no answer within {self.timeout:g} s", time.monotonic() - started
            )
        except requests.RequestException as exc:
            latency = time.monotonic() - started
            if _caused_by_refusal(exc):
                return ProbeResult.failed("refused", "connection refused", latency)
            return ProbeResult.failed("error", f"{type(exc).__name__}: {_first_line(exc)}", latency)
        latency = time.monotonic() - started
        return self._judge(response, latency)

    def _judge(self, response: requests.Response, latency: float) -> ProbeResult:
        code = response.status_code
        if code not in self.params.status:
            allowed = ", ".join(str(item) for item in self.params.status)
            return ProbeResult.failed(f"status_{code}", f"HTTP {code} (expected {allowed})", latency)
        if self._body is not None and not self._body.search(response.text):
            return ProbeResult.failed(
                "body", f"HTTP {code} but the body does not match {self.params.body!r}", latency
            )
        if self.params.max_latency is not None and latency > self.params.max_latency:
            return ProbeResult.failed(
                "slow",
                f"HTTP {code} in {latency * 1000:.0f} ms (max {self.params.max_latency * 1000:.0f} ms)",
                latency,
            )
        return ProbeResult.passed(f"HTTP {code} in {latency * 1000:.0f} ms", latency)

    def acknowledge(self) -> None:
        """Nothing remembered between probes."""


class TcpProbe:
    """A TCP connect to host:port within the timeout."""

    def __init__(self, params: TcpParams, timeout: float) -> None:
        self.params = params
        self.timeout = timeout

    def __call__(self) -> ProbeResult:
        where = f"{self.params.host}:{self.params.port}"
        started = time.monotonic()
        try:
            with socket.create_connection((self.params.host, self.params.port), timeout=self.timeout):
                pass
        except ConnectionRefusedError:
            return ProbeResult.failed(
                "refused", f"{where} refused the connection", time.monotonic() - started
            )
        except TimeoutError:
            return ProbeResult.failed(
                "timeout", f"{where} did not answer within {self.timeout:g} s", time.monotonic() - started
            )
        except OSError as exc:
            return ProbeResult.failed("error", f"{where}: {exc.strerror or exc}", time.monotonic() - started)
        latency = time.monotonic() - started
        return ProbeResult.passed(f"{where} accepted in {latency * 1000:.0f} ms", latency)

    def acknowledge(self) -> None:
        """Nothing remembered between probes."""


class SystemdProbe:
    """`systemctl is-active <unit>`: active (or reloading) is ok, anything else is `inactive`."""

    def __init__(self, params: SystemdParams, timeout: float, systemctl: str, runner: Runner) -> None:
        self.params = params
        self.timeout = timeout
        self.systemctl = systemctl
        self.runner = runner

    def __call__(self) -> ProbeResult:
        started = time.monotonic()
        done = self.runner([self.systemctl, "is-active", self.params.unit], self.timeout)
        latency = time.monotonic() - started
        state = (
            done.output.strip().splitlines()[-1]
            if done.output.strip()
            else f"unknown (exit {done.returncode})"
        )
        if state in ("active", "reloading"):
            return ProbeResult.passed(f"{self.params.unit} is {state}", latency)
        return ProbeResult.failed("inactive", f"{self.params.unit} is {state}", latency)

    def acknowledge(self) -> None:
        """Nothing remembered between probes."""


class LogRateProbe:
    """Counts lines matching error patterns as they are appended; fails when more than
    max_matches were seen within the sliding window.

    Follows the file like `tail -F`: starts at its end (old errors are history), notices a
    rotation (the path now names another inode: the rest of the old file is read first) and
    a truncation (copytruncate: the size dropped below the read position).
    """

    def __init__(self, params: LogParams, clock: Clock) -> None:
        self.params = params
        self.clock = clock
        self._pattern = re.compile("|".join(f"(?:{pattern})" for pattern in params.patterns))
        self._matches: deque[float] = deque()
        self._handle: TextIOWrapper | None = None
        self._inode: int | None = None
        self._partial = ""
        self._started = False

    def __call__(self) -> ProbeResult:
        now = self.clock.monotonic()
        self._matches.extend([now] * self._read_new_lines())
        while self._matches and self._matches[0] <= now - self.params.window:
            self._matches.popleft()
        count = len(self._matches)
        detail = (
            f"{count} line(s) matching the error patterns in the last {self.params.window:g} s "
            f"(max {self.params.max_matches})"
        )
        if self._handle is None:
            detail = f"{self.params.path} does not exist yet; {detail}"
        if count > self.params.max_matches:
            return ProbeResult.failed("error_rate", detail)
        return ProbeResult.passed(detail)

    def acknowledge(self) -> None:
        """The errors that led to an intervention must not cause the next one."""
        self._matches.clear()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _read_new_lines(self) -> int:
        found = self._count(self._handle) if self._handle is not None else 0
        try:
            stat = Path(self.params.path).stat()
        except OSError:
            self.close()  # gone (rotated away, not yet recreated): reopen from its start when it returns
            self._started = True
            return found
        if self._handle is None or stat.st_ino != self._inode:
            found += self._reopen(stat.st_ino, from_end=not self._started)
        elif stat.st_size < self._handle.tell():
            self._handle.seek(0)  # truncated in place
            self._partial = ""
            found += self._count(self._handle)
        self._started = True
        return found

    def _reopen(self, inode: int, *, from_end: bool) -> int:
        self.close()
        try:
            self._handle = open(self.params.path, encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open to tail
        except OSError:
            return 0
        self._inode = inode
        self._partial = ""
        if from_end:
            self._handle.seek(0, 2)
            return 0
        return self._count(self._handle)

    def _count(self, handle: TextIOWrapper) -> int:
        found = 0
        chunk = handle.read()
        if not chunk:
            return 0
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        for line in lines:
            if self._pattern.search(line):
                found += 1
        return found


class FilesProbe:
    """Watches config files (globs) for a change: once their content differs from what was
    last acknowledged and has been stable for `settle` seconds, fails with `changed` (the
    remedy, an nginx reload, runs only after `nginx -t` passes)."""

    def __init__(self, params: FilesParams, clock: Clock) -> None:
        self.params = params
        self.clock = clock
        self._baseline: str | None = None
        self._pending: str | None = None
        self._pending_since = 0.0

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for pattern in self.params.paths:
            for path in sorted(glob.glob(pattern)):
                digest.update(path.encode())
                try:
                    digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
                except OSError as exc:
                    digest.update(f"unreadable: {exc.errno}".encode())
        return digest.hexdigest()

    def __call__(self) -> ProbeResult:
        now = self.clock.monotonic()
        current = self.fingerprint()
        if self._baseline is None:
            self._baseline = current
        if current == self._baseline:
            self._pending = None
            return ProbeResult.passed("unchanged since the last reload")
        if current != self._pending:
            self._pending, self._pending_since = current, now
        if now - self._pending_since < self.params.settle:
            return ProbeResult.passed(f"changed, settling for {self.params.settle:g} s")
        return ProbeResult.failed("changed", "config files changed since the last reload")

    def acknowledge(self) -> None:
        """The running config is now the files' content."""
        self._baseline = self.fingerprint()
        self._pending = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def build_probe(spec: CheckSpec, clock: Clock, systemctl: str, runner: Runner = run_command) -> Probe:
    """The real probe for a configured check."""
    params = spec.params
    if isinstance(params, HttpParams):
        return HttpProbe(params, spec.timeout)
    if isinstance(params, TcpParams):
        return TcpProbe(params, spec.timeout)
    if isinstance(params, SystemdParams):
        return SystemdProbe(params, spec.timeout, systemctl, runner)
    if isinstance(params, LogParams):
        return LogRateProbe(params, clock)
    return FilesProbe(params, clock)
