"""Loop protection for one target: backoff between interventions, a cap per window, escalation.

Interventions on a target are remembered for `window` seconds. The k-th one within the
window may only come `backoff_initial * backoff_factor**(k-1)` seconds (at most
`backoff_max`) after the previous one. When `max_interventions` were already made within
the window and another is needed, the target is escalated: no more interventions until
its checks are healthy again and the window holds no intervention (or an operator runs
`qosd reset`). A permanently broken target therefore gets a bounded number of restarts.
"""

from __future__ import annotations

from collections import deque
from enum import Enum

from qosd.config import Protection


class Decision(Enum):
    ALLOW = "allow"
    BACKOFF = "backoff"
    ESCALATE = "escalate"  # the cap is reached now: flag it once
    ESCALATED = "escalated"  # already flagged: stay hands off


class TargetGuard:
    def __init__(self, protection: Protection) -> None:
        self.protection = protection
        self.history: deque[float] = deque()
        self.escalated = False

    def decide(self, now: float) -> Decision:
        if self.escalated:
            return Decision.ESCALATED
        self._forget(now)
        if len(self.history) >= self.protection.max_interventions:
            self.escalated = True
            return Decision.ESCALATE
        if self.history and now < self.history[-1] + self.backoff(len(self.history)):
            return Decision.BACKOFF
        return Decision.ALLOW

    def backoff(self, count: int) -> float:
        """Seconds to wait after the count-th intervention within the window."""
        if count <= 0:
            return 0.0
        delay = self.protection.backoff_initial * self.protection.backoff_factor ** (count - 1)
        return min(delay, self.protection.backoff_max)

    def next_allowed(self, now: float) -> float:
        self._forget(now)
        return self.history[-1] + self.backoff(len(self.history)) if self.history else now

    def record(self, now: float) -> None:
        self.history.append(now)

    def try_recover(self, now: float, *, healthy: bool) -> bool:
        """Clears the escalation once the target is healthy and the window is clean."""
        self._forget(now)
        if self.escalated and healthy and not self.history:
            self.escalated = False
            return True
        return False

    def reset(self) -> None:
        self.history.clear()
        self.escalated = False

    def _forget(self, now: float) -> None:
        while self.history and self.history[0] <= now - self.protection.window:
            self.history.popleft()
