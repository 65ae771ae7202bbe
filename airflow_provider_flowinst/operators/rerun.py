"""Repair a remote run the DAG did not start: rerun its failed nodes in place, then wait for it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from airflow.configuration import conf

from airflow_provider_flowinst.durable import RunMemory
from airflow_provider_flowinst.hooks.base import FlowPlatformHook, require_id
from airflow_provider_flowinst.links import push_instance_url
from airflow_provider_flowinst.models import XCOM_INSTANCE_ID_KEY
from airflow_provider_flowinst.operators.trigger import DEFAULT_TIMEOUT, TriggerFlowOperator
from airflow_provider_flowinst.reruns import FAILURE_STATES
from airflow_provider_flowinst.waits import (
    DEFAULT_FAILURE_STATES,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
)

#: The graph node ids the rerun named (none where the platform shows no graph), pushed once it is sent.
XCOM_RERUN_NODES_KEY = "rerun_node_ids"


class RerunFailedNodesOperator(TriggerFlowOperator):
    """Reruns, in place, the failed nodes of a remote run that ended in a failure state (DataWorks: its
    failed task instances; LSF Process Manager: the flow instance, from its exited jobs on) and, by default,
    waits for that same run as ``FlowInstanceSensor`` would (in a worker or deferred); returns its dict.

    A run that is running or succeeded is never touched, and EnOS Batch and EnOS BPM cannot rerun in place:
    both fail the task with ``RerunNotSupported``. A retry of this task does not rerun twice: when an earlier
    try already sent the rerun and the run is going again, it only waits (the wait and its deadline are
    ``TriggerFlowOperator``'s).

    :param conn_id: the platform connection (templated).
    :param instance_id: the run to repair (templated).
    :param wait_for_completion: wait until the run ends again; otherwise return once the rerun is sent.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poke_interval: seconds between two looks at the run.
    :param timeout: seconds to wait for the run.
    :param cancel_on_kill: stop the run when the task is killed or times out (off: the run was not started here).
    """

    template_fields: Sequence[str] = ("conn_id", "instance_id")
    ui_color = "#e4d8c9"

    def __init__(
        self,
        *,
        conn_id: str,
        instance_id: str,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60.0,
        timeout: float = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = False,
        success_states: Iterable[str] = DEFAULT_SUCCESS_STATES,
        failure_states: Iterable[str] = DEFAULT_FAILURE_STATES,
        include_graph: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            conn_id=conn_id,
            flow="",
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poke_interval=poke_interval,
            timeout=timeout,
            cancel_on_kill=cancel_on_kill,
            success_states=success_states,
            failure_states=failure_states,
            include_graph=include_graph,
            max_consecutive_failures=max_consecutive_failures,
            **kwargs,
        )
        self.instance_id: str | None = instance_id

    def _execute(self, context: Any, hook: FlowPlatformHook[Any]) -> dict[str, Any] | None:
        instance_id = require_id(self.instance_id, hook.platform)
        self.instance_id = instance_id
        memory = RunMemory(context)
        context["ti"].xcom_push(key=XCOM_INSTANCE_ID_KEY, value=instance_id)
        push_instance_url(context, hook.client.instance_url(instance_id))
        if not self._rerun_sent_before(hook, memory, instance_id):
            memory.remember(instance_id)  # before the call: a retry after a lost answer looks, never resends
            nodes = hook.rerun_failed_nodes(instance_id)
            context["ti"].xcom_push(key=XCOM_RERUN_NODES_KEY, value=nodes)
            self.log.info(
                "Reran the failed nodes of %s run %s: %s",
                hook.platform,
                instance_id,
                ", ".join(nodes) or f"{hook.entry.title} reruns what failed without naming it",
            )
            seen = self._rerun_seen(hook, instance_id)  # the wait must not begin on the old failure
            if not self.wait_for_completion:
                return seen.to_dict()
        if not self.wait_for_completion:
            return hook.get_instance(instance_id, include_graph=self.include_graph).to_dict()
        if self.deferrable:
            self._defer_wait(context, hook, instance_id)
        return self._wait(hook, memory, instance_id)

    def _rerun_sent_before(self, hook: FlowPlatformHook[Any], memory: RunMemory, instance_id: str) -> bool:
        """An earlier try of this task sent the rerun, and the run is no longer failed: only wait for it."""
        if memory.recall() != instance_id:
            return False
        instance = hook.get_instance(instance_id, include_graph=False)
        if instance.state in FAILURE_STATES:
            return False
        self.log.info("An earlier try reran %s; it is %s now: waiting for it", instance_id, instance.state.value)
        return True
