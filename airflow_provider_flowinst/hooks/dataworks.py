"""Alibaba Cloud DataWorks (OpenAPI 2024-05-18): workflow instances, their task instances, create and stop."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_flowinst.errors import FlowInstanceNotFound
from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook, require_id
from airflow_provider_flowinst.platforms.dataworks import (
    DEFAULT_TIMEZONE,
    PLATFORM,
    DataWorksClient,
    DataWorksSettings,
    DataWorksSigner,
    endpoint_url,
    zone_of,
)
from airflow_provider_flowinst.registry import entry_for

ENTRY = entry_for(PLATFORM)


class DataWorksHook(FlowPlatformHook[DataWorksClient], entry=ENTRY):
    """Talks to the DataWorks OpenAPI, each request signed with ACS3-HMAC-SHA256.

    :param dataworks_conn_id: a ``dataworks`` connection: login = AccessKey ID, password = AccessKey secret,
        extras ``region_id`` or ``endpoint`` (one is required), ``security_token`` (STS), ``project_id``
        (default workspace), ``timezone`` (the zone business dates are counted in, default Asia/Shanghai),
        ``verify``.
    """

    can_rerun_failed_nodes = True

    def __init__(self, dataworks_conn_id: str = ENTRY.default_conn_name) -> None:
        super().__init__(dataworks_conn_id)

    def build(self, reader: ConnectionReader) -> tuple[DataWorksClient, DataWorksSigner]:
        try:
            endpoint = endpoint_url(reader.extra("region_id"), reader.extra("endpoint"))
        except ValueError as exc:
            raise reader.error(str(exc)) from None
        project_id = reader.extra("project_id")
        timezone = str(reader.extra("timezone", DEFAULT_TIMEZONE)).strip()
        try:
            zone_of(timezone)
        except ValueError as exc:
            raise reader.error(f"the extra 'timezone': {exc}") from None
        settings = DataWorksSettings(
            endpoint=endpoint, project_id=None if project_id is None else str(project_id), timezone=timezone
        )
        token = reader.extra("security_token")
        auth = DataWorksSigner(
            access_key_id=reader.required("login", "the AccessKey ID"),
            access_key_secret=reader.required("password", "the AccessKey secret"),
            security_token=None if token is None else str(token),
        )
        return DataWorksClient(settings), auth

    def check_connection(self) -> None:
        """A signed GetWorkflowInstance: "no such instance" proves the key and signature are accepted."""
        with contextlib.suppress(FlowInstanceNotFound):
            self.get_workflow_instance("0")

    # -- the platform's own calls --------------------------------------------------------------------

    def get_workflow_instance(self, id: str) -> dict[str, Any]:
        """GetWorkflowInstance: the platform's ``WorkflowInstance`` record."""
        return self.perform(self.client.get_workflow_instance(require_id(id, PLATFORM)))

    def list_task_instances(
        self, *, workflow_instance_id: str, bizdate: int | str | dt.date, project_id: Any = None
    ) -> list[dict[str, Any]]:
        """ListTaskInstances of a workflow instance, every page; ``bizdate`` in epoch ms, or a date (its
        midnight in the connection's business zone)."""
        return self.perform(
            self.client.list_task_instances(
                workflow_instance_id=require_id(workflow_instance_id, PLATFORM, "workflow instance id"),
                bizdate=bizdate,
                project_id=project_id,
            )
        )

    def list_upstream_task_instances(self, task_instance_id: str) -> list[dict[str, Any]]:
        """ListUpstreamTaskInstances, every page: ``{DependencyType, TaskInstance}`` records."""
        return self.perform(
            self.client.list_upstream_task_instances(require_id(task_instance_id, PLATFORM, "task instance id"))
        )

    def list_workflow_instances(self, *, bizdate: int | str | dt.date, **filters: Any) -> list[dict[str, Any]]:
        """ListWorkflowInstances, every page; the client's ``project_id``, ``workflow_id``, ``ids`` (many
        instances in one call per page) and ``type``, or the API's own names (Name, Owner, SortBy...)."""
        return self.perform(self.client.list_workflow_instances(bizdate=bizdate, **filters))

    def get_workflow(self, id: str) -> dict[str, Any]:
        """GetWorkflow: the workflow's record (its ``Trigger.Type`` says how it may be run)."""
        return self.perform(self.client.get_workflow(require_id(id, PLATFORM, "workflow id")))

    def create_workflow_instances(
        self,
        *,
        workflow_id: str,
        name: str | None = None,
        type: str = "ManualWorkflow",
        project_id: Any = None,
        periods: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        default_run_properties: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """CreateWorkflowInstances and wait until GetCreateWorkflowInstancesResult says Created.

        :param type: ``ManualWorkflow`` (manually triggered workflows only), ``SupplementData`` (a backfill of a
            scheduled workflow: give ``periods`` and ``default_run_properties``), ``TriggerWorkflow``...
        :param parameters: workflow parameters (``WorkflowParameters``: JSON for ManualWorkflow, ``key=value``
            text for the other types).
        :return: the new workflow instances' ids.
        """
        workflow_id = require_id(workflow_id, PLATFORM, "workflow id")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
        return self.perform(
            self.client.create_workflow_instances(
                workflow_id=workflow_id,
                name=name or f"airflow_{workflow_id}_{stamp}",
                type=type,
                project_id=project_id,
                periods=periods,
                parameters=parameters,
                default_run_properties=default_run_properties,
            )
        )

    def stop_workflow_instances(self, ids: Sequence[str] | str, comment: str | None = None) -> dict[str, Any]:
        """StopWorkflowInstances; returns ``SuccessInfo`` and raises if any instance was not stopped."""
        listed = [ids] if isinstance(ids, (str, int)) else list(ids)
        return self.perform(
            self.client.stop_workflow_instances([require_id(item, PLATFORM) for item in listed], comment)
        )

    def rerun_task_instances(
        self, ids: Sequence[str] | str, comment: str | None = None, use_latest_config: bool | None = None
    ) -> dict[str, Any]:
        """RerunTaskInstances; returns ``SuccessInfo`` and raises if any task instance was not rerun. Sent
        once: a lost answer raises ``RunOutcomeUnknown`` (``rerun_failed_nodes`` looks before it resends)."""
        listed = [ids] if isinstance(ids, (str, int)) else list(ids)
        return self.perform(
            self.client.rerun_task_instances(
                [require_id(item, PLATFORM, "task instance id") for item in listed], comment, use_latest_config
            )
        )

    def get_task_instance_log(self, task_instance_id: str, run_number: int | None = None) -> str:
        """GetTaskInstanceLog: the run log of a task instance (its latest run unless ``run_number``)."""
        return self.perform(
            self.client.get_task_instance_log(require_id(task_instance_id, PLATFORM, "task instance id"), run_number)
        )
