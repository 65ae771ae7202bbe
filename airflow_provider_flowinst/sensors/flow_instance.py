"""Wait on any platform's remote instance: poke, reschedule or deferrable, with the same meaning."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_flowinst._compat import AirflowException, AirflowSensorTimeout, AirflowSkipException
from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.links import FlowInstanceLink, push_instance_url
from airflow_provider_flowinst.models import FlowInstance, FlowState
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger, describe
from airflow_provider_flowinst.waits import DEFAULT_MAX_CONSECUTIVE_FAILURES, ConsecutiveFailures, positive_count

DEFAULT_SUCCESS_STATES = (FlowState.SUCCESS.value,)
DEFAULT_FAILURE_STATES = (FlowState.FAILED.value, FlowState.CANCELLED.value)


class FlowInstanceSensor(BaseSensorOperator):
    """Waits until a remote flow or process instance reaches a success state; returns its dict.

    The platform is chosen by the connection's type. A failure state fails the task (or skips it under
    ``soft_fail``); an instance that does not exist yet is waited for unless ``fail_if_missing``.

    :param conn_id: an ``enos_batch``, ``enos_bpm``, ``lsf_pm`` or ``dataworks`` connection (templated).
    :param instance_id: the remote instance's id (templated).
    :param success_states: FlowState values that end the wait successfully.
    :param failure_states: FlowState values that fail the task.
    :param include_graph: also read the instance's graph of remote tasks.
    :param fail_if_missing: fail at once when the platform says the instance does not exist.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param max_consecutive_failures: looks that may fail in a row (5xx, resets, timeouts, after the
        transport's own retries) before the task fails; a permanent refusal fails it at once.
    """

    template_fields: Sequence[str] = ("conn_id", "instance_id")
    operator_extra_links = (FlowInstanceLink(),)
    ui_color = "#d8e9f4"

    def __init__(
        self,
        *,
        conn_id: str,
        instance_id: str,
        success_states: Iterable[str] = DEFAULT_SUCCESS_STATES,
        failure_states: Iterable[str] = DEFAULT_FAILURE_STATES,
        include_graph: bool = True,
        fail_if_missing: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.instance_id = instance_id
        self.success_states = FlowState.parse_many(success_states, argument="success_states")
        self.failure_states = FlowState.parse_many(failure_states, argument="failure_states")
        overlap = set(self.success_states) & set(self.failure_states)
        if overlap:
            raise ValueError(f"states cannot both succeed and fail: {sorted(s.value for s in overlap)}")
        self.include_graph = include_graph
        self.fail_if_missing = fail_if_missing
        self.deferrable = deferrable
        self.max_consecutive_failures = positive_count(max_consecutive_failures, "max_consecutive_failures")
        self._failures = ConsecutiveFailures(self.max_consecutive_failures)

    def hook(self) -> FlowPlatformHook[Any]:
        # One hook per task run, closed when it ends (LSF then logs out).
        if getattr(self, "_hook", None) is None:
            self._hook: FlowPlatformHook[Any] | None = get_hook(self.conn_id)
        assert self._hook is not None
        return self._hook

    def close_hook(self) -> None:
        hook, self._hook = getattr(self, "_hook", None), None
        if hook is not None:
            hook.close()

    # -- poke and reschedule -------------------------------------------------------------------------

    def poke(self, context: Any) -> PokeReturnValue | bool:
        instance = self._look(context)
        if instance is None:
            return False
        return self._judge(instance)

    def _look(self, context: Any) -> FlowInstance | None:
        hook = self.hook()
        push_instance_url(context, hook.client.instance_url(self.instance_id))
        try:
            instance = hook.get_instance(self.instance_id, include_graph=self.include_graph)
        except FlowInstanceNotFound as exc:
            if self.fail_if_missing:
                self._fail(f"{exc}; fail_if_missing is set")
            self.log.info("Instance %s does not exist yet; waiting for it", self.instance_id)
            return None
        except FlowPlatformError as exc:
            # Counted within one process: poke mode; each reschedule (and the triggerer) counts afresh.
            self._failures.failed(exc)
            self.log.warning("Could not look at %s (%d in a row): %s", self.instance_id, self._failures.count, exc)
            return None
        self._failures.reset()
        self.log.info("%s is %s (%s)", describe(instance), instance.state.value, instance.raw_state)
        return instance

    def _judge(self, instance: FlowInstance) -> PokeReturnValue | bool:
        if instance.state in self.success_states:
            return PokeReturnValue(is_done=True, xcom_value=instance.to_dict())
        if instance.state in self.failure_states:
            self._fail(failure_message(instance))
        return False

    def _fail(self, message: str) -> None:
        # Airflow 3 does not turn a sensor's own failure into a skip, so soft_fail is honoured here.
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowException(message)

    # -- deferrable ----------------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        try:
            return self._execute(context)
        finally:
            self.close_hook()

    def _execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One look first: an instance that has already ended needs no trip through the triggerer.
        instance = self._look(context)
        if instance is not None:
            verdict = self._judge(instance)
            if isinstance(verdict, PokeReturnValue):
                return verdict.xcom_value
        self.defer(
            trigger=FlowInstanceTrigger(
                conn_id=self.conn_id,
                instance_id=self.instance_id,
                success_states=[state.value for state in self.success_states],
                failure_states=[state.value for state in self.failure_states],
                include_graph=self.include_graph,
                fail_if_missing=self.fail_if_missing,
                poke_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
                max_consecutive_failures=self.max_consecutive_failures,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the trigger's event into the same outcome a poke would have had."""
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"{self.task_id}: the trigger sent no usable event: {event!r}")
        status, message = event["status"], str(event.get("message", ""))
        instance = event.get("instance")
        if status == "success" and isinstance(instance, dict):
            self.log.info("%s", message)
            return instance
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        if status == "failure" and isinstance(instance, dict):
            self._fail(failure_message(FlowInstance.from_dict(instance)))
        self._fail(message or f"the wait on instance {self.instance_id} ended with {status!r}")
        raise AssertionError("unreachable")  # pragma: no cover


def failure_message(instance: FlowInstance) -> str:
    return f"{describe(instance)} ended in state {instance.state.value} (platform state {instance.raw_state!r})"
