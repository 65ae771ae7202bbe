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
#: Faults that let the platform carry the call out first, then spoil its answer: the call acted, but the
#: caller cannot know it (``act_then_503``: a 503 instead of the answer; ``act_then_reset``: the connection
#: drops; ``act_then_slow``: the answer is held back ``delay`` seconds, past the caller's read timeout).
AFTER_ACTION_FAULT_KINDS = ("act_then_503", "act_then_reset", "act_then_slow")
#: Faults of the answer itself, on any call (the login calls too), matched by ``call_contains`` like the
#: faults after the action: ``trickle``: the real answer, its headers at once, then one byte per ``delay``;
#: ``echo``: an error answer in the platform's shape that quotes the request (headers and body), as some
#: servers do; ``redirect``: 302 to ``location``; ``oversized``: a 200 answer of ``size`` bytes;
#: ``gzip_bomb``: a few kB on the wire (``Content-Encoding: gzip``) that decompress to ``size`` bytes.
ANSWER_FAULT_KINDS = ("trickle", "echo", "redirect", "oversized", "gzip_bomb")
#: Faults the middleware serves (every other kind is served by the platform emulators themselves).
MIDDLEWARE_FAULT_KINDS = AFTER_ACTION_FAULT_KINDS + ANSWER_FAULT_KINDS


@dataclass
class Fault:
    platform: str  # a platform key, or "*" for any
    kind: str
    remaining: int = 1
    retry_after: float | None = None
    delay: float = 5.0  # for "timeout": how long the answer is held back
    path_contains: str | None = None
    #: For faults after the action: the call it meets, matched in the path, the query or the DataWorks
    #: ``x-acs-action`` header (e.g. "action=trigger", "/submit", "CreateWorkflowInstances").
    call_contains: str | None = None
    location: str = "https://sso.example.invalid/login?service=api"  # for "redirect"
    size: int = 1024**3  # for "oversized" and "gzip_bomb": bytes of the (decompressed) answer


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
        if kind not in FAULT_KINDS + MIDDLEWARE_FAULT_KINDS:
            known = ", ".join(FAULT_KINDS + MIDDLEWARE_FAULT_KINDS)
            raise ValueError(f"unknown fault kind {kind!r}; known: {known}")
        fault = Fault(
            platform=str(spec.get("platform", "*")),
            kind=kind,
            remaining=int(spec.get("count", 1)),
            retry_after=None if spec.get("retry_after") is None else float(spec["retry_after"]),
            delay=float(spec.get("delay", 5.0)),
            path_contains=spec.get("path_contains"),
            call_contains=spec.get("call_contains"),
            location=str(spec.get("location") or Fault.location),
            size=int(spec.get("size") or Fault.size),
        )
        self.faults.append(fault)
        return fault

    def take_fault(self, platform: str, path: str) -> Fault | None:
        """The next fault due for a call of ``platform`` on ``path``, used up one at a time."""
        for fault in self.faults:
            if fault.kind in MIDDLEWARE_FAULT_KINDS or fault.platform not in ("*", platform):
                continue
            if fault.path_contains and fault.path_contains not in path:
                continue
            return self._use(fault)
        return None

    def take_after_action_fault(self, platform: str, call: str) -> Fault | None:
        """The next fault the middleware serves for a call of ``platform`` (see ``MIDDLEWARE_FAULT_KINDS``)."""
        for fault in self.faults:
            if fault.kind not in MIDDLEWARE_FAULT_KINDS or fault.platform not in ("*", platform):
                continue
            if fault.call_contains and fault.call_contains not in call:
                continue
            return self._use(fault)
        return None

    def _use(self, fault: Fault) -> Fault:
        fault.remaining -= 1
        if fault.remaining <= 0:
            self.faults.remove(fault)
        return fault

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
