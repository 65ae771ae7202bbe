"""DAGs the DataWorks sensor tests run with dag.test(): create a workflow instance, then wait on it.

In the emulator workflow 1001 (daily_sales, four tasks in a diamond) succeeds and 1002 (failing_etl) ends
in Failure, each within a few emulated seconds of its asynchronous creation.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_flowinst.hooks.dataworks import DataWorksHook
from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.sensors.dataworks import DataWorksWorkflowInstanceSensor
from tests.dags import SENSOR_MODES, TEST_DAG

WORKFLOWS = {"succeeds": "1001", "fails": "1002"}
MODES = SENSOR_MODES


def dataworks_sensor_dag(dag_id: str, workflow_id: str, **sensor_kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:

        @task
        def create(run_id: str | None = None) -> str:
            return DataWorksHook().create_workflow_instances(workflow_id=workflow_id, name=run_id)[0]

        # The created instance's id, pushed by ``create``: the sensor waits for that task and then on the id.
        DataWorksWorkflowInstanceSensor(
            task_id="wait", workflow_instance_id=create(), poke_interval=0.2, timeout=60, **sensor_kwargs
        )
    return dag


for outcome, workflow in WORKFLOWS.items():
    for mode, mode_kwargs in MODES.items():
        dag_id = f"dataworks_{mode}_{outcome}"
        globals()[dag_id] = dataworks_sensor_dag(dag_id, workflow, **mode_kwargs)


#: TriggerFlowOperator on a scheduled workflow (1004, hourly_orders): started as a one-day backfill.
with DAG(dag_id="dataworks_start_scheduled", **TEST_DAG) as dataworks_start_scheduled:
    TriggerFlowOperator(
        task_id="run", conn_id="dataworks_default", flow="1004", parameters={"region": "east"}, poke_interval=0.2
    )
