"""DAGs the EnOS BPM sensor tests run with dag.test(): start a process instance, then wait on it.

In the emulator the purchase approval completes after two tasks and the expense claim is rejected by its
approver (terminated), each within a few emulated seconds.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_flowinst.hooks.enos_bpm import EnOSBPMHook
from airflow_provider_flowinst.sensors.enos_bpm import EnOSProcessInstanceSensor
from tests.dags import SENSOR_MODES, TEST_DAG

DEFINITIONS = {
    "completes": "purchaseApproval:3:5abd9f71-e365-11ea-8a6b-be43f0d99bcd",
    "terminated": "expenseClaim:2:7d1f2b33-e365-11ea-8a6b-be43f0d99bcd",
}
MODES = SENSOR_MODES


def bpm_sensor_dag(dag_id: str, definition_id: str, **sensor_kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:

        @task
        def start(run_id: str | None = None) -> str:
            return EnOSBPMHook().start_process_instance(definition_id, {"requested_by": "airflow"}, name=run_id)

        EnOSProcessInstanceSensor(
            task_id="wait", process_instance_id=start(), poke_interval=0.2, timeout=60, **sensor_kwargs
        )
    return dag


for outcome, definition in DEFINITIONS.items():
    for mode, mode_kwargs in MODES.items():
        dag_id = f"enos_bpm_{mode}_{outcome}"
        globals()[dag_id] = bpm_sensor_dag(dag_id, definition, **mode_kwargs)
