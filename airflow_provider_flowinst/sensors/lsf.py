"""Wait on an IBM Spectrum LSF Process Manager flow instance."""

from __future__ import annotations

from typing import Any

from airflow_provider_flowinst.hooks.lsf import LSFProcessManagerHook
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor


class LSFFlowInstanceSensor(FlowInstanceSensor):
    """``FlowInstanceSensor`` for an LSF Process Manager flow instance (its numeric id, templated)."""

    def __init__(
        self, *, flow_instance_id: str, lsf_pm_conn_id: str = LSFProcessManagerHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(conn_id=lsf_pm_conn_id, instance_id=flow_instance_id, **kwargs)

    @property
    def flow_instance_id(self) -> str:
        return self.instance_id

    @property
    def lsf_pm_conn_id(self) -> str:
        return self.conn_id
