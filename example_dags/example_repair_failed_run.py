"""Repair a failed remote run in place instead of starting it all over again.

Two ways, on platforms that can rerun in place (DataWorks, LSF Process Manager):

- ``RerunFailedNodesOperator`` repairs a run the DAG did not start (its id in the run's conf,
  ``{"instance_id": "..."}``): it reruns that run's failed nodes, waits for the same run and returns its dict.
- ``TriggerFlowOperator(rerun_failed_on_retry=True)``: when the run a task started fails, the task's retry
  reruns the run's failed nodes and waits for that same run, instead of starting a new one (where the platform
  cannot, EnOS Batch and EnOS BPM, the retry starts a new run and says why).

In the emulator, DataWorks workflow 1002 fails at its last task and its rerun succeeds.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_flowinst.operators.rerun import RerunFailedNodesOperator
from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.reporting import render_report

with DAG(
    dag_id="example_repair_failed_run",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    params={"dataworks_workflow_id": "1002"},
    tags=["example", "flowinst"],
) as dag:
    repair = RerunFailedNodesOperator(
        task_id="repair_failed_run",
        conn_id="dataworks_default",
        instance_id="{{ dag_run.conf['instance_id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=3600,
    )
    start_and_repair = TriggerFlowOperator(
        task_id="start_and_repair_on_retry",
        conn_id="dataworks_default",
        flow="{{ params.dataworks_workflow_id }}",
        rerun_failed_on_retry=True,
        retries=1,
        retry_delay=dt.timedelta(seconds=1),
        deferrable=True,
        poke_interval=1,
        timeout=3600,
    )

    @task
    def repaired(*runs: dict) -> list[str]:
        print(render_report(runs))
        return [run["instance_id"] for run in runs]

    repaired(repair.output, start_and_repair.output)
