"""Wait on any platform's remote instance: poke, reschedule or deferrable, with the same meaning."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_flowinst._compat import AirflowSensorTimeout, AirflowSkipException
from airflow_provider_flowinst.failures import PermanentFailure, failing_fast
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.links import FlowInstanceLink, push_instance_url
from airflow_provider_flowinst.models import FlowInstance
from airflow_provider_flowinst.openlineage_methods import RemoteRunLineage
from airflow_provider_flowinst.trigger_start import refuse_unless_supported, start_trigger_args
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from airflow_provider_flowinst.waits import (
    DEFAULT_FAILURE_STATES,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
    ConsecutiveFailures,
    EndsWaits,
    Verdict,
    WaitEvent,
    WaitSettings,
    Watch,
    deadline,
    deferral_timed_out,
    execution_end,
    execution_timeout_error,
    past_execution_timeout,
)


class FlowInstanceSensor(EndsWaits, RemoteRunLineage, BaseSensorOperator):
    """Waits until a remote flow or process instance reaches a success state; returns its dict.

    The platform is chosen by the connection's type. A failure state fails the task (or skips it under
    ``soft_fail``); an instance that does not exist yet is waited for unless ``fail_if_missing``.

    :param conn_id: a connection of any platform's type (see the README's platform table; templated).
    :param instance_id: the remote instance's id (templated).
    :param success_states: FlowState values that end the wait successfully.
    :param failure_states: FlowState values that fail the task.
    :param include_graph: also read the instance's graph of remote tasks.
    :param fail_if_missing: fail at once when the platform says the instance does not exist.
    :param deferrable: wait in the triggerer instead of a worker slot. The deferred wait also ends at the try's
        start + ``execution_timeout`` if that comes first (Airflow 3 does not enforce it while deferred), failing
        the try as timed out: unlike the sensor's own ``timeout``, the task's retries then apply.
    :param max_consecutive_failures: looks that may fail in a row (5xx, resets, timeouts, after the
        transport's own retries) before the task fails; a permanent refusal fails it at once.
    :param start_from_trigger: start the wait in the triggerer straight from the scheduler (Airflow 3.3+;
        refused, naming the release, on older ones): no worker is started for a wait that succeeds (its XCom
        is the same); any other end resumes the task in a worker, which fails it with the same messages.
        Implies ``deferrable``.
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
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        if start_from_trigger:
            refuse_unless_supported(kwargs.get("task_id", "FlowInstanceSensor"))
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.instance_id = instance_id
        self.wait_settings = WaitSettings.of(
            success_states, failure_states, include_graph, fail_if_missing, max_consecutive_failures
        )
        self.deferrable = deferrable
        self._failures = ConsecutiveFailures(self.max_consecutive_failures)
        if start_from_trigger:
            # The scheduler starts this trigger; dag.test() (which runs tasks itself) takes the deferrable path.
            self.deferrable = True
            self.start_from_trigger = True
            trigger = FlowInstanceTrigger.waiting_on(
                self.wait_settings,
                self.instance_id,
                conn_id=self.conn_id,
                poke_interval=self.poke_interval,
                ends=None,
            )
            self.start_trigger_args = start_trigger_args(trigger.serialize()[1], self.timeout, self.execution_timeout)

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

    def on_kill(self) -> None:
        """Killed mid-poke: close the hook now (LSF logs out), since a SIGKILL may follow before ``execute``'s
        own ``finally`` runs."""
        self.close_hook()

    def watch(self) -> Watch:
        """The wait on the (rendered) instance; failed looks are counted across the pokes of this process."""
        return self.wait_settings.watch(self.instance_id, self._failures)

    # -- poke and reschedule -------------------------------------------------------------------------

    def poke(self, context: Any) -> PokeReturnValue | bool:
        return self._settle(self._look(context))

    def _look(self, context: Any) -> Verdict:
        with failing_fast():  # Airflow's sensor skips a PermanentFailure under soft_fail, or fails it at once
            hook = self.hook()
            push_instance_url(context, hook.client.instance_url(self.instance_id))
            return self.watch().look(hook, self.log)

    def _judge(self, instance: FlowInstance) -> PokeReturnValue | bool:
        return self._settle(self.watch().judge(instance))

    def _settle(self, verdict: Verdict) -> PokeReturnValue | bool:
        if not verdict.done:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._conclude(verdict.event(), self.conn_id))

    def _timed_out(self, event: WaitEvent) -> None:
        if not self.soft_fail:
            raise AirflowSensorTimeout(event.message)

    def _fail(self, message: str, *, permanent: bool = False) -> NoReturn:
        # Airflow 3 does not turn a sensor's own failure into a skip, so soft_fail is honoured here.
        if self.soft_fail:
            raise AirflowSkipException(message)
        super()._fail(message, permanent=permanent)

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
        try:
            verdict = self._look(context)
        except PermanentFailure as failure:
            if self.soft_fail:  # as Airflow's poke loop does
                raise AirflowSkipException(str(failure)) from failure
            raise
        if verdict.done:
            return self._conclude(verdict.event(), self.conn_id)
        ends = deadline(
            self.timeout, self.hook().attempt_seconds, execution_end=execution_end(context, self.execution_timeout)
        )
        self.defer(
            trigger=FlowInstanceTrigger.waiting_on(
                self.wait_settings,
                self.instance_id,
                conn_id=self.conn_id,
                poke_interval=self.poke_interval,
                ends=ends,
            ),
            method_name="execute_complete",
            timeout=ends.deferral_timeout,
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except (AirflowSensorTimeout, AirflowSkipException) as exc:
            # Airflow's own deferral timeout (the trigger's event never came) when the try's time was up anyway.
            if deferral_timed_out(exc) and past_execution_timeout(context, self.execution_timeout):
                raise execution_timeout_error(
                    self.task_id, self.execution_timeout, "Airflow's deferral timed out"
                ) from exc
            raise

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the trigger's event into the same outcome a poke would have had."""
        return self._conclude(WaitEvent.received(event, self.task_id), self.conn_id)
