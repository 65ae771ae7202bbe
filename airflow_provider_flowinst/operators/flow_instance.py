"""Report a remote instance's status in one look."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_flowinst._compat import AirflowException
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.links import FlowInstanceLink, push_instance_url
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.openlineage_methods import RemoteRunLineage
from airflow_provider_flowinst.waits import failure_message, status_line


class FlowInstanceStatusOperator(RemoteRunLineage, BaseOperator):
    """Reads a remote instance once and returns its dict (state, times, graph) for XCom.

    :param conn_id: the platform connection (templated); its conn_type picks the platform.
    :param instance_id: the remote instance's id (templated).
    :param include_graph: also read the graph of remote tasks.
    :param fail_on_states: FlowState values that fail this task, e.g. ``("failed", "cancelled")``.
    """

    template_fields: Sequence[str] = ("conn_id", "instance_id")
    operator_extra_links = (FlowInstanceLink(),)

    def __init__(
        self,
        *,
        conn_id: str,
        instance_id: str,
        include_graph: bool = True,
        fail_on_states: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.instance_id = instance_id
        self.include_graph = include_graph
        self.fail_on_states = FlowState.parse_many(fail_on_states, argument="fail_on_states")

    def execute(self, context: Any) -> dict[str, Any]:
        self._hook: FlowPlatformHook[Any] | None = get_hook(self.conn_id)
        try:
            instance = self._hook.get_instance(self.instance_id, include_graph=self.include_graph)
        finally:
            self._close_hook()  # done with the platform (LSF logs out)
        push_instance_url(context, instance.url)
        self.log.info("%s", status_line(instance))
        self.remote_instance = instance.to_dict()
        if instance.state in self.fail_on_states:
            raise AirflowException(failure_message(instance))
        return self.remote_instance

    def on_kill(self) -> None:
        """Killed mid-call: close the hook now (LSF logs out), since a SIGKILL may follow before ``execute``'s
        own ``finally`` runs."""
        self._close_hook()

    def _close_hook(self) -> None:
        hook, self._hook = getattr(self, "_hook", None), None
        if hook is not None:
            hook.close()
