"""Wait on an EnOS Batch Processing flow instance."""

from __future__ import annotations

from typing import Any

from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor


class EnOSFlowInstanceSensor(FlowInstanceSensor):
    """``FlowInstanceSensor`` for an EnOS flow instance (``<flowId>-<yyyyMMddHHmmss>``, templated)."""

    def __init__(
        self, *, flow_inst_id: str, enos_batch_conn_id: str = EnOSBatchHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(conn_id=enos_batch_conn_id, instance_id=flow_inst_id, **kwargs)

    @property
    def flow_inst_id(self) -> str:
        return self.instance_id

    @property
    def enos_batch_conn_id(self) -> str:
        return self.conn_id
