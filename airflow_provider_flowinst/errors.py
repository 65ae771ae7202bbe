"""Errors that name the platform, the call and the platform's own message, and never a secret."""

from __future__ import annotations

from typing import Any

from airflow_provider_flowinst._compat import AirflowException

PLATFORM_TITLES = {
    "enos_batch": "EnOS Batch Processing",
    "enos_bpm": "EnOS BPM",
    "lsf_pm": "LSF Process Manager",
    "dataworks": "DataWorks",
}


class FlowPlatformError(AirflowException):
    """A platform refused a call, or answered something this provider cannot read.

    ``retryable`` marks faults that may pass (5xx, throttling, resets); the transport retries those.
    """

    def __init__(
        self,
        platform: str,
        call: str,
        platform_message: str,
        *,
        code: str | int | None = None,
        http_status: int | None = None,
        retryable: bool = False,
    ) -> None:
        self.platform = platform
        self.call = call
        self.platform_message = platform_message
        self.code = None if code is None else str(code)
        self.http_status = http_status
        self.retryable = retryable
        super().__init__(self._compose())

    def _compose(self) -> str:
        title = PLATFORM_TITLES.get(self.platform, self.platform)
        extras = []
        if self.code is not None:
            extras.append(f"code {self.code}")
        if self.http_status is not None:
            extras.append(f"HTTP {self.http_status}")
        suffix = f" ({', '.join(extras)})" if extras else ""
        return f"{title}: {self.call} failed: {self.platform_message}{suffix}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default exception pickling (used by Airflow's runners).
        return (
            _rebuild,
            (type(self), self.platform, self.call, self.platform_message, self.code, self.http_status, self.retryable),
        )


class FlowInstanceNotFound(FlowPlatformError):
    """The platform says the instance (or flow) does not exist."""


class RunOutcomeUnknown(FlowPlatformError):
    """A call that may change the platform (start, submit, create, trigger) may or may not have acted.

    Its answer was lost (a 5xx, a dropped connection, a timeout after the request went out), or the platform
    refused it as a repeat of a call it already carried out. It is never sent again blindly: the run it may
    have made is looked for first (``PlatformClient.find_started_run``).
    """


class AmbiguousStart(FlowPlatformError):
    """Several runs could be the one a start made, and the platform gives no way to tell them apart."""


def _rebuild(
    cls: type[FlowPlatformError],
    platform: str,
    call: str,
    platform_message: str,
    code: str | None,
    http_status: int | None,
    retryable: bool,
) -> FlowPlatformError:
    return cls(platform, call, platform_message, code=code, http_status=http_status, retryable=retryable)
