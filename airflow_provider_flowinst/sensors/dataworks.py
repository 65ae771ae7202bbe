"""Wait on an Alibaba Cloud DataWorks workflow instance."""

from __future__ import annotations

from typing import Any

from airflow_provider_flowinst.hooks.dataworks import DataWorksHook
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor


class DataWorksWorkflowInstanceSensor(FlowInstanceSensor):
    """``FlowInstanceSensor`` for a DataWorks workflow instance (its numeric ``Id``, templated)."""

    def __init__(
        self, *, workflow_instance_id: str, dataworks_conn_id: str = DataWorksHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(conn_id=dataworks_conn_id, instance_id=workflow_instance_id, **kwargs)

    @property
    def workflow_instance_id(self) -> str:
        return self.instance_id

    @property
    def dataworks_conn_id(self) -> str:
        return self.conn_id
