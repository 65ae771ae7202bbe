"""DAGs the tests run with ``dag.test()``, and what they share."""

from __future__ import annotations

import datetime as dt
from typing import Any

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
#: What makes a DAG a test's: run only when a test runs it (no schedule, no catch-up), tagged "test".
TEST_DAG: dict[str, Any] = {"schedule": None, "start_date": START, "catchup": False, "tags": ["test"]}
#: A sensor's arguments for each of its modes.
SENSOR_MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke"},
    "reschedule": {"mode": "reschedule"},
    "deferrable": {"deferrable": True},
}


def retries(count: int) -> dict[str, Any]:
    """A task's arguments for ``count`` retries, each at once."""
    return {"retries": count, "retry_delay": dt.timedelta(seconds=0)}
