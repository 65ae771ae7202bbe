"""The one clock, and the one source of randomness, of the provider.

Pure modules (``platforms/``) never read the time or draw a random number themselves: their caller passes
them a clock, and by default that is ``SYSTEM``. Tests pass a ``Clock`` of their own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """Wall time (epoch seconds), monotonic time for deadlines, and uniform random draws for jitter."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    uniform: Callable[[float, float], float] = random.uniform

    def now_ms(self) -> int:
        """Wall time in epoch milliseconds."""
        return int(self.now() * 1000)


SYSTEM = Clock()
