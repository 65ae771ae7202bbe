"""Failures no retry can change end the task at once, its retries unspent.

A platform error marked ``permanent`` (``errors.FlowPlatformError``: an ambiguous start, an unknown flow at
start, credentials refused after a fresh login, a call refused as invalid) leaves a task as an
``AirflowFailException``, which every Airflow 3 release fails without retrying (and a sensor under
``soft_fail`` skips). Airflow 3.3's ``retry_policy`` decides the same for users' own tasks: see ``retry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_provider_flowinst._compat import AirflowFailException
from airflow_provider_flowinst.errors import FlowPlatformError

#: What a task's log says after a permanent failure's own message.
NO_RETRY = "no retry can change this, so the task fails without retrying"


class PermanentFailure(AirflowFailException):
    """The task's failure that no retry can change; raised from the platform's error (its ``__cause__``)."""


def permanent_failure(message: str) -> PermanentFailure:
    return PermanentFailure(f"{message} ({NO_RETRY})")


@contextmanager
def failing_fast() -> Iterator[None]:
    """A permanent platform error raised inside becomes a ``PermanentFailure``; any other passes unchanged."""
    try:
        yield
    except FlowPlatformError as error:
        if not error.permanent:
            raise
        raise permanent_failure(str(error)) from error
