"""What every emulated platform shares: the clock, injected faults and request counts."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "503",
    "502",
    "500",
    "429",
    "reset",
    "timeout",
    "malformed",
    "html",
    "expired_token",
    "403",
)


@dataclass
class Fault:
    platform: str  # a platform key, or "*" for any
    kind: str
    remaining: int = 1
    retry_after: float | None = None
    delay: float = 5.0  # for "timeout": how long the answer is held back
    path_contains: str | None = None


@dataclass
class EmulatorState:
    """Shared, mutable state of one emulator process; touched only from its event loop."""

    time_scale: float = 1.0
    token_lifetime: int = 7200
    faults: list[Fault] = field(default_factory=list)
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    token_requests: collections.Counter[str] = field(default_factory=collections.Counter)
    started: float = field(default_factory=time.monotonic)
    #: The latest tokens and signatures callers sent: tests check that none of them reaches a log.
    credentials_seen: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=10000))

    def now(self) -> float:
        """Emulated seconds since start; schedules are written in these."""
        return (time.monotonic() - self.started) / max(self.time_scale, 1e-6)

    def advance(self, seconds: float) -> float:
        """Move the emulated clock ``seconds`` ahead: every run is that much further on. Returns the new now."""
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"the clock only moves forward by a finite number of seconds, not {seconds!r}")
        self.started -= seconds * self.time_scale
        return self.now()

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        kind = str(spec.get("kind"))
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        fault = Fault(
            platform=str(spec.get("platform", "*")),
            kind=kind,
            remaining=int(spec.get("count", 1)),
            retry_after=None if spec.get("retry_after") is None else float(spec["retry_after"]),
            delay=float(spec.get("delay", 5.0)),
            path_contains=spec.get("path_contains"),
        )
        self.faults.append(fault)
        return fault

    def take_fault(self, platform: str, path: str) -> Fault | None:
        """The next fault due for a call of ``platform`` on ``path``, used up one at a time."""
        for fault in self.faults:
            if fault.platform not in ("*", platform):
                continue
            if fault.path_contains and fault.path_contains not in path:
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.remove(fault)
            return fault
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "token_requests": dict(self.token_requests),
            "faults_pending": len(self.faults),
        }

    def reset_counters(self) -> None:
        self.requests.clear()
        self.token_requests.clear()
        self.faults.clear()
        self.credentials_seen.clear()
