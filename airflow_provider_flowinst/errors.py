"""Errors that name the platform, the call and the platform's own message, and never a secret."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from airflow_provider_flowinst._compat import AirflowException
from airflow_provider_flowinst.redaction import mentions, redact_text, secret_forms
from airflow_provider_flowinst.registry import PLATFORMS

#: How messages name each platform (the registry's titles).
PLATFORM_TITLES = {entry.key: entry.title for entry in PLATFORMS}
#: 4xx answers that a later try may not meet: the request timed out (408) or was throttled (429).
PASSING_CLIENT_STATUSES = frozenset({408, 429})
#: The platforms' own "invalid parameter" codes, answered with HTTP 200 (docs/platforms.md): EnOS Batch 62102
#: (on a start it may also mean "triggered within the last minute": that one is a RunOutcomeUnknown), BPM 33400.
INVALID_PARAMETER_CODES = {"enos_batch": frozenset({"62102"}), "enos_bpm": frozenset({"33400"})}


def refused_for_good(platform: str, http_status: int | None, code: str | None, retryable: bool) -> bool:
    """Whether the platform refused a call as invalid, so that sending it again later meets the same refusal:
    a 4xx other than 408 and 429, or the platform's own invalid-parameter code."""
    if retryable:
        return False
    if code is not None and code in INVALID_PARAMETER_CODES.get(platform, ()):
        return True
    return http_status is not None and 400 <= http_status < 500 and http_status not in PASSING_CLIENT_STATUSES


class FlowPlatformError(AirflowException):
    """A platform refused a call, or answered something this provider cannot read.

    ``retryable`` marks faults that may pass (5xx, throttling, resets); the transport retries those, and
    ``retry_after`` is the delay the platform last asked for (seconds; None when it asked none).
    ``permanent`` marks failures no later try can change (see :func:`refused_for_good`, and the subclasses):
    the provider's tasks then fail without spending their retries. A caller who knows better passes it.
    """

    #: ``permanent`` of this kind of error whatever the answer (None: judged from the answer).
    permanent_by_default: ClassVar[bool | None] = None

    def __init__(
        self,
        platform: str,
        call: str,
        platform_message: str,
        *,
        code: str | int | None = None,
        http_status: int | None = None,
        retryable: bool = False,
        permanent: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.platform = platform
        self.call = call
        self.platform_message = platform_message
        self.code = None if code is None else str(code)
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after
        decided = permanent if permanent is not None else self.permanent_by_default
        self.permanent = (
            decided if decided is not None else refused_for_good(platform, http_status, self.code, retryable)
        )
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

    def redact(self, secrets: Iterable[str]) -> None:
        """Hide every one of ``secrets`` in this error's text, in place (the traceback stays as it was).

        A chained exception that shows one of them is dropped from the chain: a traceback prints it too.
        """
        forms = secret_forms(secrets)
        if not forms:
            return
        message = redact_text(self.platform_message, forms)
        code = None if self.code is None else redact_text(self.code, forms)
        if (message, code) != (self.platform_message, self.code):
            self.platform_message, self.code = message, code
            self.args = (self._compose(),)
        if any(mentions(str(link), forms) for link in _chain(self)):
            self.__cause__ = None
            self.__context__ = None
            self.__suppress_context__ = True

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default exception pickling (used by Airflow's runners).
        return (
            _rebuild,
            (
                type(self),
                self.platform,
                self.call,
                self.platform_message,
                self.code,
                self.http_status,
                self.retryable,
                self.permanent,
                self.retry_after,
            ),
        )


class FlowInstanceNotFound(FlowPlatformError):
    """The platform says the instance (or flow) does not exist.

    Not permanent by itself (an instance may yet appear); an unknown flow at start is (the operator says so).
    """

    permanent_by_default = False


def unknown_flow(error: FlowInstanceNotFound) -> FlowInstanceNotFound:
    """``error``, raised by a start: the flow (or process definition) does not exist, which no retry changes."""
    error.permanent = True
    return error


class RunOutcomeUnknown(FlowPlatformError):
    """A call that may change the platform (start, submit, create, trigger, rerun) may or may not have acted.

    Its answer was lost (a 5xx, a dropped connection, a timeout after the request went out), or the platform
    refused it as a repeat of a call it already carried out. It is never sent again blindly: the run it may
    have made is looked for first (``PlatformClient.find_started_run``).
    """

    permanent_by_default = False  # the next try looks for the run and carries on

    def after_looking(self, what_was_seen: str) -> RunOutcomeUnknown:
        """The same unclear outcome, still unclear after looking: ``what_was_seen`` is added to its message."""
        return RunOutcomeUnknown(
            self.platform,
            self.call,
            f"{self.platform_message}. {what_was_seen}",
            code=self.code,
            http_status=self.http_status,
        )


class RerunNotSupported(FlowPlatformError):
    """The platform cannot rerun a run's failed nodes in place, or the run is not in a failure state (a
    running or successful run is never touched)."""


class AmbiguousStart(FlowPlatformError):
    """Several runs could be the one a start made, and the platform gives no way to tell them apart.

    Permanent: a retry would meet the same runs; a person has to decide which is this task's.
    """

    permanent_by_default = True


def _rebuild(
    cls: type[FlowPlatformError],
    platform: str,
    call: str,
    platform_message: str,
    code: str | None,
    http_status: int | None,
    retryable: bool,
    permanent: bool | None = None,
    retry_after: float | None = None,
) -> FlowPlatformError:
    return cls(
        platform,
        call,
        platform_message,
        code=code,
        http_status=http_status,
        retryable=retryable,
        permanent=permanent,
        retry_after=retry_after,
    )


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link = error.__cause__ or error.__context__
    while link is not None and link not in seen and len(seen) < 20:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen
