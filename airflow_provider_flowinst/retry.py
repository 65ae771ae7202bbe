"""``FlowPlatformRetryPolicy``: Airflow 3.3's ``retry_policy`` (AIP-105) deciding as the provider's tasks do.

For any task that talks to a platform, your own ``@task`` code with a hook included::

    @task(retries=3, retry_policy=FlowPlatformRetryPolicy())
    def start(): ...

- a failure no retry can change (``errors.FlowPlatformError.permanent``: an ambiguous start, an unknown flow at
  start, credentials refused after a fresh login, a call refused as invalid) fails the task at once;
- a platform that throttled the call (and said how long to wait: Retry-After, or its own header) has the task
  retried after that delay (at most ``max_retry_delay``) instead of its ``retry_delay``;
- anything else is left to the task's own ``retries`` and ``retry_delay``.

Airflow before 3.3 has no retry policies: there the class refuses to be made, naming the release. The
provider's own operators and sensors fail permanent failures at once on every release (see ``failures``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_provider_flowinst.errors import FlowPlatformError

if TYPE_CHECKING:
    from airflow.sdk.definitions.retry_policy import RetryDecision

#: The longest delay a platform's Retry-After sets by default (a platform asking for days is not obeyed).
DEFAULT_MAX_RETRY_DELAY = dt.timedelta(hours=1)


def platform_error(exception: BaseException) -> FlowPlatformError | None:
    """The platform error behind ``exception``: itself, or the one it was raised from (a task's own wrapper)."""
    seen: BaseException | None = exception
    for _ in range(20):  # a chain is short; a cycle must not hang the worker
        if seen is None:
            return None
        if isinstance(seen, FlowPlatformError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


try:  # Airflow 3.3+
    from airflow.sdk.definitions.retry_policy import RetryDecision as _RetryDecision
    from airflow.sdk.definitions.retry_policy import RetryPolicy as _RetryPolicy
except ImportError:  # pragma: no cover - Airflow 3.1 and 3.2
    _RetryPolicy = None  # type: ignore[assignment,misc]


def _airflow_version() -> str:
    from airflow import __version__

    return str(__version__)


if _RetryPolicy is not None:

    class FlowPlatformRetryPolicy(_RetryPolicy):
        """Fail at once on a permanent platform failure; retry a throttled call after the platform's delay.

        :param max_retry_delay: the longest delay a platform's Retry-After may set.
        """

        def __init__(self, *, max_retry_delay: dt.timedelta = DEFAULT_MAX_RETRY_DELAY) -> None:
            self.max_retry_delay = max_retry_delay

        def evaluate(
            self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
        ) -> RetryDecision:
            error = platform_error(exception)
            if error is None:
                return _RetryDecision.default()
            if error.permanent:
                return _RetryDecision.fail(reason=f"no retry can change this: {error}")
            if error.retryable and error.retry_after is not None:
                delay = min(dt.timedelta(seconds=max(0.0, error.retry_after)), self.max_retry_delay)
                return _RetryDecision.retry(
                    delay=delay, reason=f"the platform asked to wait {delay.total_seconds():g} s: {error}"
                )
            return _RetryDecision.default()

        def serialize(self) -> dict[str, Any]:
            return {"max_retry_delay": self.max_retry_delay.total_seconds()}

        @classmethod
        def deserialize(cls, data: dict[str, Any]) -> FlowPlatformRetryPolicy:
            return cls(max_retry_delay=dt.timedelta(seconds=float(data["max_retry_delay"])))

else:  # pragma: no cover - Airflow 3.1 and 3.2

    class FlowPlatformRetryPolicy:  # type: ignore[no-redef]
        """Airflow before 3.3 has no retry policies: making one says so."""

        def __init__(self, **_: Any) -> None:
            raise RuntimeError(
                f"FlowPlatformRetryPolicy needs Airflow 3.3 or later (retry_policy, AIP-105); this is Airflow "
                f"{_airflow_version()}. The provider's operators and sensors already fail permanent platform "
                "failures without retrying on this release."
            )


__all__ = ["DEFAULT_MAX_RETRY_DELAY", "FlowPlatformRetryPolicy", "platform_error"]
