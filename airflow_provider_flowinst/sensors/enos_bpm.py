"""Wait on an EnOS BPM process instance."""

from __future__ import annotations

from typing import Any

from airflow_provider_flowinst.hooks.enos_bpm import EnOSBPMHook
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor


class EnOSProcessInstanceSensor(FlowInstanceSensor):
    """``FlowInstanceSensor`` for an EnOS BPM process instance (its id, templated).

    ``completed`` is success, ``terminated`` is a failure state (``cancelled``), ``inProgress`` is waited on.
    """

    def __init__(
        self, *, process_instance_id: str, enos_bpm_conn_id: str = EnOSBPMHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(conn_id=enos_bpm_conn_id, instance_id=process_instance_id, **kwargs)

    @property
    def process_instance_id(self) -> str:
        return self.instance_id

    @property
    def enos_bpm_conn_id(self) -> str:
        return self.conn_id
