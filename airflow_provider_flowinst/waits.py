"""What a wait on a remote instance means, shared by the sensor, TriggerFlowOperator and the trigger."""

from __future__ import annotations

import math
from typing import Any

from airflow_provider_flowinst.errors import FlowPlatformError

#: Looks at a run that may fail in a row before the wait gives up (each after the transport's own retries).
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10


def positive_count(value: Any, name: str) -> int:
    """A whole number >= 1, or a ValueError naming the parameter (a DAG author's typo shows at parse time)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}") from None
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(number)


class ConsecutiveFailures:
    """Counts looks that failed in a row; a permanent refusal, or one failure too many, is raised."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def failed(self, error: FlowPlatformError) -> None:
        self.count += 1
        if not error.retryable or self.count >= self.limit:
            raise error

    def reset(self) -> None:
        self.count = 0
