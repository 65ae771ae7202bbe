"""What a wait on a remote instance means, shared by the sensor, TriggerFlowOperator and the trigger.

One home for the default states, describing and judging an instance, counting looks that fail, the
deadline of a deferred wait and the event its trigger sends back. The sensor's poke, the operator's own
poke loop and the trigger's poll all decide "done, failed or keep waiting" through :func:`judge`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, Protocol, cast, get_args

from airflow_provider_flowinst._compat import AirflowException, AirflowTaskTimeout, TaskDeferralTimeout
from airflow_provider_flowinst.diagnosis import explain_failure
from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.failures import permanent_failure
from airflow_provider_flowinst.models import FlowInstance, FlowState

DEFAULT_SUCCESS_STATES = (FlowState.SUCCESS.value,)
DEFAULT_FAILURE_STATES = (FlowState.FAILED.value, FlowState.CANCELLED.value)
#: Looks at a run that may fail in a row before the wait gives up (each after the transport's own retries).
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10
#: Time after the trigger's last read for its event to reach the task (triggerer → database → worker).
EVENT_DELIVERY_SECONDS = 60.0

EventStatus = Literal["success", "failure", "timeout", "error"]
VerdictStatus = Literal["success", "failure", "error", "waiting"]
EVENT_STATUSES: tuple[str, ...] = get_args(EventStatus)
#: Which limit ends a deferred wait at its ``end_time``: the task's own ``timeout`` (a sensor's is final) or
#: Airflow's ``execution_timeout`` (a timed-out try, which the task's retries may repeat).
Limit = Literal["timeout", "execution_timeout"]
LIMITS: tuple[str, ...] = get_args(Limit)


def positive_count(value: Any, name: str) -> int:
    """A whole number >= 1, or a ValueError naming the parameter (a DAG author's typo shows at parse time)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}") from None
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(number)


def parse_states(
    success_states: Iterable[str], failure_states: Iterable[str]
) -> tuple[tuple[FlowState, ...], tuple[FlowState, ...]]:
    """The states that end a wait well and badly; a state cannot be both."""
    success = FlowState.parse_many(success_states, argument="success_states")
    failure = FlowState.parse_many(failure_states, argument="failure_states")
    overlap = set(success) & set(failure)
    if overlap:
        raise ValueError(f"states cannot both succeed and fail: {sorted(s.value for s in overlap)}")
    return success, failure


# -- describing an instance ----------------------------------------------------------------------------


def describe(instance: FlowInstance) -> str:
    return f"{instance.platform} instance {instance.instance_id}"


def status_line(instance: FlowInstance) -> str:
    """What a look saw, for the task log."""
    return f"{describe(instance)} is {instance.state.value} ({instance.raw_state})"


def failure_message(instance: FlowInstance) -> str:
    return f"{describe(instance)} ended in state {instance.state.value} (platform state {instance.raw_state!r})"


def missing_message(error: FlowInstanceNotFound) -> str:
    return f"{error}; a missing instance ends this wait (the sensor's fail_if_missing, or a run the operator started)"


def timeout_message(instance_id: str, last: FlowInstance | None, limit: Limit = "timeout") -> str:
    why = "the try's execution_timeout passed while" if limit == "execution_timeout" else "timed out"
    if last is None:
        return f"{why} waiting for instance {instance_id} (never seen)"
    return f"{why} waiting for {describe(last)} (last seen {last.state.value})"


# -- judging it ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What one look decided: ``waiting``, or the end of the wait (``success``, ``failure``, ``error``)."""

    status: VerdictStatus
    instance: FlowInstance | None
    message: str
    #: For an ``error`` that a failed look ended the wait with: that look's error.
    cause: FlowPlatformError | None = None

    @property
    def done(self) -> bool:
        return self.status != "waiting"

    def event(self) -> WaitEvent:
        """The end of the wait as the trigger reports it (a ValueError while still waiting)."""
        permanent = self.cause is not None and self.cause.permanent
        return WaitEvent(cast(EventStatus, self.status), _as_dict(self.instance), self.message, permanent=permanent)


def judge(instance: FlowInstance, success_states: Iterable[FlowState], failure_states: Iterable[FlowState]) -> Verdict:
    """Done, failed or keep waiting: the one decision every way of waiting makes."""
    if instance.state in tuple(success_states):
        return Verdict("success", instance, f"{describe(instance)} reached {instance.state.value}")
    if instance.state in tuple(failure_states):
        return Verdict("failure", instance, failure_message(instance))
    return Verdict("waiting", instance, status_line(instance))


class ConsecutiveFailures:
    """Counts looks that failed in a row; a permanent refusal, or one failure too many, ends the wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def give_up(self, error: FlowPlatformError) -> str | None:
        """Count a failed look: why the wait ends now, or None to look again."""
        self.count += 1
        if error.retryable and self.count < self.limit:
            return None
        return f"{error} ({self.count} polls in a row failed)" if error.retryable else str(error)

    def failed(self, error: FlowPlatformError) -> None:
        """Count a failed look; raise ``error`` when the wait ends on it (the sync waits fail with it as is)."""
        if self.give_up(error) is not None:
            raise error

    def reset(self) -> None:
        self.count = 0


class InstanceReader(Protocol):
    def get_instance(self, instance_id: str, *, include_graph: bool = True) -> FlowInstance: ...


@dataclass(frozen=True)
class WaitSettings:
    """The parameters of a wait, declared once: ``FlowInstanceSensor``, ``TriggerFlowOperator``,
    ``RerunFailedNodesOperator`` and ``FlowInstanceTrigger`` take them as keyword arguments with these
    defaults, build theirs with :meth:`of` (which checks them) and read them as attributes (``WaitsOn``)."""

    success_states: tuple[FlowState, ...] = (FlowState.SUCCESS,)
    failure_states: tuple[FlowState, ...] = (FlowState.FAILED, FlowState.CANCELLED)
    include_graph: bool = True
    fail_if_missing: bool = False
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES

    @classmethod
    def of(
        cls,
        success_states: Iterable[str] = DEFAULT_SUCCESS_STATES,
        failure_states: Iterable[str] = DEFAULT_FAILURE_STATES,
        include_graph: bool = True,
        fail_if_missing: bool = False,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> WaitSettings:
        """The settings from a task's or a trigger's keyword arguments; a ValueError names a wrong one."""
        success, failure = parse_states(success_states, failure_states)
        limit = positive_count(max_consecutive_failures, "max_consecutive_failures")
        return cls(success, failure, include_graph, fail_if_missing, limit)

    def to_kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments of :meth:`of` (and of the trigger): JSON values only."""
        return {
            "success_states": [state.value for state in self.success_states],
            "failure_states": [state.value for state in self.failure_states],
            "include_graph": self.include_graph,
            "fail_if_missing": self.fail_if_missing,
            "max_consecutive_failures": self.max_consecutive_failures,
        }

    def watch(self, instance_id: str, failures: ConsecutiveFailures | None = None) -> Watch:
        """A wait on ``instance_id`` with these settings, counting failed looks in ``failures`` (or anew)."""
        counted = ConsecutiveFailures(self.max_consecutive_failures) if failures is None else failures
        return Watch(
            instance_id,
            self.success_states,
            self.failure_states,
            counted,
            include_graph=self.include_graph,
            fail_if_missing=self.fail_if_missing,
        )


class WaitsOn:
    """A task or trigger whose wait takes ``wait_settings``: its settings read as its own attributes."""

    wait_settings: WaitSettings

    @property
    def success_states(self) -> tuple[FlowState, ...]:
        return self.wait_settings.success_states

    @property
    def failure_states(self) -> tuple[FlowState, ...]:
        return self.wait_settings.failure_states

    @property
    def include_graph(self) -> bool:
        return self.wait_settings.include_graph

    @property
    def fail_if_missing(self) -> bool:
        return self.wait_settings.fail_if_missing

    @property
    def max_consecutive_failures(self) -> int:
        return self.wait_settings.max_consecutive_failures


@dataclass(frozen=True)
class Watch:
    """One wait: the instance, the states that end it, and the count of looks that failed in a row."""

    instance_id: str
    success_states: tuple[FlowState, ...]
    failure_states: tuple[FlowState, ...]
    failures: ConsecutiveFailures
    include_graph: bool = True
    fail_if_missing: bool = False

    def judge(self, instance: FlowInstance) -> Verdict:
        return judge(instance, self.success_states, self.failure_states)

    def seen(self, instance: FlowInstance) -> Verdict:
        """A look that read the instance: the count of failed looks starts again."""
        self.failures.reset()
        return self.judge(instance)

    def missing(self, error: FlowInstanceNotFound) -> Verdict:
        """The platform says the instance does not exist: an error under ``fail_if_missing``, else wait."""
        if self.fail_if_missing:
            return Verdict("error", None, missing_message(error))
        return Verdict("waiting", None, f"Instance {self.instance_id} does not exist yet; waiting for it")

    def failed(self, error: FlowPlatformError, log: logging.Logger | Any, last: FlowInstance | None = None) -> Verdict:
        """A look that raised ``error``, judged the same by every way of waiting: a missing instance (see
        :meth:`missing`), or a failure counted, which ends the wait when permanent or one too many; a wait
        that goes on says why in ``log``."""
        if isinstance(error, FlowInstanceNotFound):
            verdict = self.missing(error)
            if not verdict.done:
                log.info("%s", verdict.message)
            return verdict
        reason = self.failures.give_up(error)
        if reason is not None:
            return Verdict("error", last, reason, cause=error)
        log.warning("Poll %d failed (%s); will poll %s again", self.failures.count, error, self.instance_id)
        return Verdict("waiting", last, str(error))

    def look(self, hook: InstanceReader, log: logging.Logger | Any) -> Verdict:
        """One look in a worker (poke or reschedule); a look that fails once too often raises its error."""
        try:
            instance = hook.get_instance(self.instance_id, include_graph=self.include_graph)
        except FlowPlatformError as exc:
            # Counted within one process: poke mode; each reschedule (and the triggerer) counts afresh.
            verdict = self.failed(exc, log)
            if verdict.cause is not None:
                raise  # a wait in a worker fails with the platform's error itself
            return verdict
        log.info("%s", status_line(instance))
        return self.seen(instance)


# -- the deadline of a deferred wait -------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """When the trigger stops polling (``end_time``), which limit that is, and when Airflow gives up on it
    (``deferral_timeout``)."""

    end_time: float
    deferral_timeout: dt.timedelta
    limit: Limit = "timeout"


def deadline(
    timeout: float, attempt_seconds: float, now: float | None = None, *, execution_end: float | None = None
) -> Deadline:
    """The wait ends ``timeout`` from now, or at ``execution_end`` (see :func:`execution_end`) if that is sooner.

    The trigger times out first: its last read may end one attempt after ``end_time`` (see
    :func:`read_cutoff`), and its event then needs time to arrive; only past both does Airflow step in."""
    start = time.time() if now is None else now
    end_time: float = start + timeout
    limit: Limit = "timeout"
    if execution_end is not None and execution_end < end_time:
        end_time, limit = execution_end, "execution_timeout"
    waited = max(0.0, end_time - start)
    return Deadline(
        end_time=end_time,
        deferral_timeout=dt.timedelta(seconds=waited + attempt_seconds + EVENT_DELIVERY_SECONDS),
        limit=limit,
    )


def try_started(context: Mapping[str, Any]) -> float | None:
    """When this try of the task began (epoch seconds): its TaskInstance's ``start_date``, which Airflow keeps
    across a deferral (a resumed try is not a new one); None where the context has none."""
    started = getattr(context.get("ti"), "start_date", None)
    return started.timestamp() if isinstance(started, dt.datetime) else None


def execution_end(context: Mapping[str, Any], execution_timeout: dt.timedelta | None) -> float | None:
    """When ``execution_timeout`` ends this try: its start + the timeout (None without one).

    Airflow 3 enforces ``execution_timeout`` only while a worker runs the task, and counts afresh on each
    resume (apache/airflow#69678, and #19382 before it); a deferred wait keeps it through this deadline."""
    if execution_timeout is None:
        return None
    started = try_started(context)
    return (time.time() if started is None else started) + execution_timeout.total_seconds()


def past_execution_timeout(context: Mapping[str, Any], execution_timeout: dt.timedelta | None) -> bool:
    """Whether this try is past its execution_timeout (for Airflow's own deferral timeout, which says not why)."""
    ends = execution_end(context, execution_timeout) if try_started(context) is not None else None
    return ends is not None and time.time() >= ends


def deferral_timed_out(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised from, Airflow's deferral timeout (a sensor re-raises it as its own)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TaskDeferralTimeout):
            return True
        seen = seen.__cause__
    return False


def execution_timeout_error(task_id: str, execution_timeout: dt.timedelta | None, why: str) -> AirflowTaskTimeout:
    """The error of a try that its execution_timeout ended while deferred: Airflow retries it like any timeout."""
    return AirflowTaskTimeout(f"{task_id}: execution_timeout ({execution_timeout}) passed: {why}")


def read_cutoff(end_time: float | None, attempt_seconds: float, now: float | None = None) -> float | None:
    """Seconds one read may take: until ``end_time``, plus one attempt begun just before it (None: no limit)."""
    if end_time is None:
        return None
    return max(0.0, end_time - (time.time() if now is None else now)) + attempt_seconds


def _as_dict(instance: FlowInstance | None) -> dict[str, Any] | None:
    return None if instance is None else instance.to_dict()


# -- the event a trigger sends back --------------------------------------------------------------------


@dataclass(frozen=True)
class WaitEvent:
    """The one event a ``FlowInstanceTrigger`` yields; its dict is the ``TriggerEvent`` payload.

    ``instance`` is the instance's XCom dict (``None`` when it was never seen); ``success`` and ``failure``
    always carry it.
    """

    status: EventStatus
    instance: dict[str, Any] | None
    message: str
    #: For a ``timeout``: which limit passed (None is the task's own ``timeout``, as from older triggers).
    limit: Limit | None = None
    #: For an ``error``: no later try can change it (``errors.FlowPlatformError.permanent``).
    permanent: bool = False

    def __post_init__(self) -> None:
        if self.status not in EVENT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(EVENT_STATUSES)}, got {self.status!r}")
        if self.limit is not None and (self.status != "timeout" or self.limit not in LIMITS):
            raise ValueError(f"limit must be one of {', '.join(LIMITS)} on a timeout, got {self.limit!r}")
        if self.permanent and self.status != "error":
            raise ValueError(f"only an error is permanent, not a {self.status!r}")
        if self.instance is not None and not isinstance(self.instance, dict):
            raise ValueError(f"instance must be a dict or None, got {type(self.instance).__name__}")
        if self.instance is None and self.status in ("success", "failure"):
            raise ValueError(f"a {self.status} event must carry its instance")
        if not isinstance(self.message, str):
            raise ValueError(f"message must be text, got {type(self.message).__name__}")

    @classmethod
    def timed_out(cls, instance_id: str, last: FlowInstance | None, limit: Limit = "timeout") -> WaitEvent:
        return cls("timeout", _as_dict(last), timeout_message(instance_id, last, limit), limit)

    @property
    def execution_timed_out(self) -> bool:
        """The try's execution_timeout ended the wait: a timed-out try, which the task's retries may repeat."""
        return self.status == "timeout" and self.limit == "execution_timeout"

    @classmethod
    def error(cls, message: str, last: FlowInstance | None, *, permanent: bool = False) -> WaitEvent:
        """The wait could not go on (polls failing, an unexpected fault); ``last`` is what was last seen."""
        return cls("error", _as_dict(last), message, permanent=permanent)

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"status": self.status, "instance": self.instance, "message": self.message}
        if self.limit is not None:
            payload["limit"] = self.limit
        if self.permanent:
            payload["permanent"] = True
        return payload

    @classmethod
    def from_dict(cls, payload: object) -> WaitEvent:
        """The event from its payload; a ValueError says what is wrong with it. Unknown keys are ignored."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"an event is a dict, got {type(payload).__name__}")
        if "status" not in payload:
            raise ValueError("it has no status")
        return cls(
            payload["status"],
            payload.get("instance"),
            payload.get("message", ""),
            payload.get("limit"),
            payload.get("permanent") is True,
        )

    @classmethod
    def received(cls, event: object, task_id: str) -> WaitEvent:
        """The event handed to ``execute_complete``; one that cannot be read fails the task saying why."""
        try:
            return cls.from_dict(event)
        except ValueError as exc:
            raise AirflowException(f"{task_id}: the trigger sent no usable event: {event!r} ({exc})") from None

    def flow_instance(self) -> FlowInstance | None:
        return None if self.instance is None else FlowInstance.from_dict(self.instance)


def failure_reason(event: WaitEvent, hook: Any, log: logging.Logger | Any) -> str:
    """What a task whose wait did not succeed fails with.

    A failed instance is explained (its first failed node named, node logs in the task log, through
    ``hook``: a platform hook or a connection id); a timeout or an error says the event's own message.
    """
    instance = event.flow_instance() if event.status == "failure" else None
    if instance is not None:
        return explain_failure(hook, instance, failure_message(instance), log)
    return event.message or f"the wait ended with {event.status!r}"


def leave_running(why: str) -> None:
    """What a wait that did not start its run does with it at its end: nothing."""


class EndsWaits(WaitsOn):
    """A task whose wait ends the same whether a look in its worker or its trigger saw it: the sensor and the
    operators. Subclasses say what a timeout raises (``_timed_out``) and what a failure does (``_fail``)."""

    task_id: str
    execution_timeout: dt.timedelta | None
    remote_instance: dict[str, Any] | None
    log: Any

    def _conclude(
        self,
        event: WaitEvent,
        hook: Any,
        stop: Callable[[str], None] = leave_running,
        succeeded: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The end of the wait: the instance dict, or raise. ``hook`` (or a connection id) explains a failed
        run; ``stop`` is told why a run that did not end in time is left behind; ``succeeded`` runs on success."""
        self.remote_instance = event.instance
        if event.status == "success" and event.instance is not None:
            self.log.info("%s", event.message)
            if succeeded is not None:
                succeeded()
            return event.instance
        if event.execution_timed_out:  # a timed-out try, never a skip
            stop("it did not end within the try's execution_timeout")
            raise execution_timeout_error(self.task_id, self.execution_timeout, event.message)
        if event.status == "timeout":
            stop("it did not end within the timeout")
            self._timed_out(event)
        self._fail(failure_reason(event, hook, self.log), permanent=event.permanent)

    def _timed_out(self, event: WaitEvent) -> None:
        """A wait's own timeout: by default it fails the task as any other end does (``_fail``)."""

    def _fail(self, message: str, *, permanent: bool = False) -> NoReturn:
        raise permanent_failure(message) if permanent else AirflowException(message)
