"""Wait on outside work on four platforms at once, then report each run's state, duration and graph.

A DAG that may only start its own work once an EnOS Batch flow, an EnOS BPM approval process, an LSF
Process Manager flow and a DataWorks workflow have all finished. The four waits are deferrable and run in
parallel in the triggerer; one task then reads the four XCom dicts, which share one shape whatever the
platform. The instance ids are params, so a run can be pointed at other instances; the defaults are
instances the bundled emulator serves.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_flowinst.reporting import render_report
from airflow_provider_flowinst.sensors.dataworks import DataWorksWorkflowInstanceSensor
from airflow_provider_flowinst.sensors.enos_batch import EnOSFlowInstanceSensor
from airflow_provider_flowinst.sensors.enos_bpm import EnOSProcessInstanceSensor
from airflow_provider_flowinst.sensors.lsf import LSFFlowInstanceSensor

WAIT = {"deferrable": True, "poke_interval": 1, "timeout": 600}

with DAG(
    dag_id="example_cross_platform_wait",
    schedule="@daily",
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    params={
        "enos_flow_id": "2809",
        "bpm_process_instance_id": "0b7c5e00-e39a-11ea-b667-e2b39eaec001",
        "lsf_flow_instance_id": "102",
        "dataworks_workflow_instance_id": "700001",
    },
    tags=["example", "flowinst"],
) as dag:
    waits = [
        EnOSFlowInstanceSensor(
            task_id="wait_enos_batch",
            flow_inst_id="{{ params.enos_flow_id }}-{{ logical_date.strftime('%Y%m%d%H%M%S') }}",
            **WAIT,
        ),
        EnOSProcessInstanceSensor(
            task_id="wait_enos_bpm", process_instance_id="{{ params.bpm_process_instance_id }}", **WAIT
        ),
        LSFFlowInstanceSensor(task_id="wait_lsf", flow_instance_id="{{ params.lsf_flow_instance_id }}", **WAIT),
        DataWorksWorkflowInstanceSensor(
            task_id="wait_dataworks", workflow_instance_id="{{ params.dataworks_workflow_instance_id }}", **WAIT
        ),
    ]

    @task
    def report(*instances: dict) -> list[str]:
        """One report over the four platforms: state, duration and graph of each run."""
        print(render_report(instances))
        return [instance["state"] for instance in instances]

    report(*(wait.output for wait in waits))
