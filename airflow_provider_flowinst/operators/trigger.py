"""Start a remote run on any platform and, if asked, wait for it to end."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from airflow_provider_flowinst._compat import TaskDeferralTimeout
from airflow_provider_flowinst.clock import SYSTEM
from airflow_provider_flowinst.durable import RunMemory
from airflow_provider_flowinst.errors import FlowInstanceNotFound, RerunNotSupported
from airflow_provider_flowinst.failures import failing_fast
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.links import FlowInstanceLink, push_instance_url
from airflow_provider_flowinst.models import XCOM_INSTANCE_ID_KEY, FlowInstance
from airflow_provider_flowinst.openlineage_methods import RemoteRunLineage
from airflow_provider_flowinst.protocol import StartAttempt
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from airflow_provider_flowinst.waits import (
    DEFAULT_FAILURE_STATES,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
    EndsWaits,
    WaitEvent,
    WaitSettings,
    deadline,
    execution_end,
    execution_timeout_error,
    past_execution_timeout,
)

DEFAULT_TIMEOUT = 7 * 24 * 3600.0
#: Seconds between looks at a run just rerun that still shows its failure, before its wait begins.
RERUN_SETTLE_PAUSES = (1.0, 2.0, 4.0)


class TriggerFlowOperator(EndsWaits, RemoteRunLineage, BaseOperator):
    """Starts a run of a remote flow and returns its instance dict, at its end or (without waiting) its start.

    ``flow`` is what the connection's platform runs: an EnOS flow id, an LSF ``owner:flowname``, a DataWorks
    workflow id or an EnOS BPM process definition id; ``parameters`` are the run's parameters (EnOS
    parameters, LSF variables, DataWorks workflow parameters, BPM values).

    Nothing is orphaned and nothing runs twice: the id of the run is kept across task retries, so a retried
    task reattaches to its run (or returns its result if it already succeeded) instead of starting a second
    one; a run that failed is started anew, or, with ``rerun_failed_on_retry`` on a platform that can
    (DataWorks, LSF Process Manager), repaired in place: its failed nodes are rerun and the same run is waited
    for. With ``cancel_on_kill`` the run is stopped when the task is
    killed or times out: in the worker through ``on_kill``, and while deferred through the trigger's
    ``on_kill`` (Airflow 3.3+; earlier 3.x releases do not tell a trigger that its task was killed, so a run
    whose deferred task is killed there keeps running).

    :param conn_id: the platform connection (templated).
    :param flow: the flow to run (templated).
    :param parameters: the run's parameters (templated).
    :param wait_for_completion: wait until the run ends; otherwise return as soon as it has started.
    :param deferrable: wait in the triggerer instead of a worker slot. The deferred wait also ends at the try's
        start + ``execution_timeout`` if that comes first (Airflow 3 does not enforce it while deferred): the run
        is stopped (``cancel_on_kill``) and the try fails as timed out, so the task's retries apply.
    :param poke_interval: seconds between two looks at the run.
    :param timeout: seconds to wait for the run; past them it is stopped (``cancel_on_kill``) and the task fails.
    :param cancel_on_kill: stop the remote run when the task is killed or times out.
    :param max_consecutive_failures: looks at the run that may fail in a row (5xx, resets, timeouts, after
        the transport's own retries) before the task fails; a permanent refusal fails it at once.
    :param rerun_failed_on_retry: a retry whose run ended in a failure state reruns that run's failed nodes
        and waits for the same run (same instance id, nothing resubmitted); where the platform cannot
        (EnOS Batch, EnOS BPM), it starts a new run as before and logs why. Never both.
    """

    template_fields: Sequence[str] = ("conn_id", "flow", "parameters")
    template_fields_renderers = {"parameters": "json"}
    operator_extra_links = (FlowInstanceLink(),)
    ui_color = "#c9e4de"

    def __init__(
        self,
        *,
        conn_id: str,
        flow: str,
        parameters: Mapping[str, Any] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60.0,
        timeout: float = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        success_states: Iterable[str] = DEFAULT_SUCCESS_STATES,
        failure_states: Iterable[str] = DEFAULT_FAILURE_STATES,
        include_graph: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        rerun_failed_on_retry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.flow = flow
        self.rerun_failed_on_retry = rerun_failed_on_retry
        self.parameters = parameters
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poke_interval = float(poke_interval)
        self.timeout = float(timeout)
        self.cancel_on_kill = cancel_on_kill
        # The run this task started has to exist: a missing run ends the wait.
        self.wait_settings = WaitSettings.of(
            success_states,
            failure_states,
            include_graph,
            fail_if_missing=True,
            max_consecutive_failures=max_consecutive_failures,
        )
        self.instance_id: str | None = None

    def execute(self, context: Any) -> dict[str, Any] | None:
        self._hook: FlowPlatformHook[Any] | None = get_hook(self.conn_id)
        try:
            with failing_fast():
                return self._execute(context, self._hook)
        finally:
            self._close_hook()  # done with the platform (LSF logs out), also when deferring

    def _close_hook(self) -> None:
        hook, self._hook = getattr(self, "_hook", None), None
        if hook is not None:
            hook.close()

    def _execute(self, context: Any, hook: FlowPlatformHook[Any]) -> dict[str, Any] | None:
        memory = RunMemory(context)
        instance = self._reattach(hook, memory)
        if instance is None:
            self.instance_id = self._start(hook, memory)
            self.log.info("Started %s run %s of %s", hook.platform, self.instance_id, self.flow)
        else:
            self.instance_id = instance.instance_id
        context["ti"].xcom_push(key=XCOM_INSTANCE_ID_KEY, value=self.instance_id)
        push_instance_url(context, hook.client.instance_url(self.instance_id))

        if not self.wait_for_completion:
            instance = instance or hook.get_instance(self.instance_id, include_graph=self.include_graph)
            self.remote_instance = instance.to_dict()
            return self.remote_instance
        if instance is not None and instance.state in self.success_states:
            memory.forget()
            self.remote_instance = instance.to_dict()
            return self.remote_instance
        if self.deferrable:
            self._defer_wait(context, hook, self.instance_id)
        return self._wait(hook, memory, self.instance_id)

    def _defer_wait(self, context: Any, hook: FlowPlatformHook[Any], instance_id: str) -> None:
        """Wait for the run in the triggerer, until the operator's ``timeout`` or the try's end by its
        ``execution_timeout``, whichever comes first; ``execute_complete`` judges its event."""
        ends = deadline(
            self.timeout, hook.attempt_seconds, execution_end=execution_end(context, self.execution_timeout)
        )
        self.defer(
            trigger=FlowInstanceTrigger.waiting_on(
                self.wait_settings,
                instance_id,
                conn_id=self.conn_id,
                poke_interval=self.poke_interval,
                ends=ends,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=ends.deferral_timeout,
        )

    def _start(self, hook: FlowPlatformHook[Any], memory: RunMemory) -> str:
        """Start a run; the attempt is stored first, so a try that dies mid-start is reconciled by the next."""
        attempt = StartAttempt.new(self.flow, SYSTEM.now_ms())
        memory.remember_attempt(attempt)
        instance_id = self._send_start(hook, attempt)
        memory.remember(instance_id, attempt)
        return instance_id

    def _send_start(self, hook: FlowPlatformHook[Any], attempt: StartAttempt) -> str:
        return hook.start_run(self.flow, self.parameters, attempt=attempt)

    def _reattach(self, hook: FlowPlatformHook[Any], memory: RunMemory) -> FlowInstance | None:
        """The run an earlier try of this task started, unless it is gone or has failed."""
        previous = self._previous_run(hook, memory)
        if previous is None:
            return None
        try:
            instance = hook.get_instance(previous, include_graph=self.include_graph)
        except FlowInstanceNotFound:
            self.log.warning("The run %s an earlier try started no longer exists; starting a new one", previous)
            return None
        if instance.state in self.failure_states:
            return self._repair(hook, instance)
        self.log.info("Reattaching to run %s, started by an earlier try (%s)", previous, instance.state.value)
        return instance

    def _repair(self, hook: FlowPlatformHook[Any], failed: FlowInstance) -> FlowInstance | None:
        """The earlier try's failed run with its failed nodes rerun, to wait for; None to start a new run."""
        ended = f"The run {failed.instance_id} of an earlier try ended {failed.state.value}"
        if not self.rerun_failed_on_retry:
            self.log.info("%s; starting a new one", ended)
            return None
        try:
            nodes = hook.rerun_failed_nodes(failed.instance_id)
        except RerunNotSupported as exc:
            self.log.warning("%s and cannot be repaired in place (%s); starting a new run instead", ended, exc)
            return None
        self.log.info(
            "%s; reran its failed nodes (%s) and waits for the same run",
            ended,
            ", ".join(nodes) or f"{hook.entry.title} reruns what failed without naming it",
        )
        return self._rerun_seen(hook, failed.instance_id)

    def _rerun_seen(self, hook: FlowPlatformHook[Any], instance_id: str) -> FlowInstance:
        """The run just rerun, once it no longer shows its failure (a platform may take a moment to show
        the rerun: a wait that began on the old state would end at once); as it is after a few looks."""
        instance = hook.get_instance(instance_id, include_graph=self.include_graph)
        for pause in RERUN_SETTLE_PAUSES:
            if instance.state not in self.failure_states:
                break
            time.sleep(pause)
            instance = hook.get_instance(instance_id, include_graph=self.include_graph)
        return instance

    def _previous_run(self, hook: FlowPlatformHook[Any], memory: RunMemory) -> str | None:
        """The id of the run an earlier try started: remembered, or found by the attempt it left behind."""
        remembered = memory.recall_start()
        if remembered.instance_id is not None or remembered.attempt is None:
            return remembered.instance_id
        attempt = remembered.attempt
        if attempt.flow != self.flow:
            return None
        found = hook.find_started_run(attempt, self.parameters)
        if found is None:
            self.log.info(
                "An earlier try's start of %s (attempt %s) made no run; starting one", self.flow, attempt.marker
            )
            return None
        self.log.warning("An earlier try stopped while starting %s; the run it made is %s", self.flow, found)
        memory.remember(found, attempt)
        return found

    def _wait(self, hook: FlowPlatformHook[Any], memory: RunMemory, instance_id: str) -> dict[str, Any]:
        """The wait in the worker: the sensor's looks, judged the same way, until the run ends or time is up."""
        ends = time.monotonic() + self.timeout
        watch = self.wait_settings.watch(instance_id)
        stop = functools.partial(self._stop, hook, instance_id)
        last: FlowInstance | None = None
        while True:
            verdict = watch.look(hook, self.log)
            last = verdict.instance or last
            if verdict.done:
                return self._conclude(verdict.event(), hook, stop, memory.forget)
            if time.monotonic() >= ends:
                return self._conclude(WaitEvent.timed_out(instance_id, last), hook, stop, memory.forget)
            time.sleep(min(self.poke_interval, max(0.0, ends - time.monotonic())))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """The trigger's event, judged as the worker-side wait would have."""
        stop = functools.partial(self._stop_remembered, context)
        return self._conclude(WaitEvent.received(event, self.task_id), self.conn_id, stop, RunMemory(context).forget)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout as exc:
            self._stop_remembered(context, "Airflow's deferral timeout passed")
            if past_execution_timeout(context, self.execution_timeout):
                raise execution_timeout_error(
                    self.task_id, self.execution_timeout, "Airflow's deferral timed out"
                ) from exc
            raise

    def on_kill(self) -> None:
        """The task is killed (or hit its execution_timeout) in the worker: stop the run it started, and close
        the hook (LSF logs out: Airflow SIGKILLs a task that outlives its SIGTERM, and ``execute``'s own
        ``finally`` never runs then)."""
        try:
            if self.instance_id is not None:
                hook = getattr(self, "_hook", None) or get_hook(self.conn_id)
                self._hook = hook
                self._stop(hook, self.instance_id, "the task was killed")
        finally:
            self._close_hook()

    def _stop_remembered(self, context: Any, why: str) -> None:
        instance_id = RunMemory(context).recall()
        if instance_id is not None:
            hook = get_hook(self.conn_id)
            try:
                self._stop(hook, instance_id, why)
            finally:
                hook.close()

    def _stop(self, hook: FlowPlatformHook[Any], instance_id: str, why: str) -> None:
        if not self.cancel_on_kill:
            self.log.info("Leaving run %s going (%s; cancel_on_kill is off)", instance_id, why)
            return
        self.log.warning("Stopping %s run %s: %s", hook.platform, instance_id, why)
        try:
            hook.stop_run(instance_id)
        except Exception:
            self.log.exception("Could not stop %s run %s", hook.platform, instance_id)
