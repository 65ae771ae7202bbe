"""Start a DataWorks workflow and an LSF Process Manager flow, and wait for both to finish.

Each TriggerFlowOperator starts a run and defers until it ends, returning the run's dict. A retried task
reattaches to the run it started instead of starting another; a killed or timed-out task stops its run.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.reporting import render_report

with DAG(
    dag_id="example_start_remote_runs",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    params={"dataworks_workflow_id": "1001", "lsf_flow": "jsmith:flow1"},
    tags=["example", "flowinst"],
) as dag:
    dataworks = TriggerFlowOperator(
        task_id="run_dataworks_workflow",
        conn_id="dataworks_default",
        flow="{{ params.dataworks_workflow_id }}",
        parameters={"bizdate": "{{ ds_nodash }}"},
        deferrable=True,
        poke_interval=1,
        timeout=3600,
        retries=2,
    )
    lsf = TriggerFlowOperator(
        task_id="run_lsf_flow",
        conn_id="lsf_pm_default",
        flow="{{ params.lsf_flow }}",
        parameters={"RUN_DATE": "{{ ds }}"},
        deferrable=True,
        poke_interval=1,
        timeout=3600,
        retries=2,
    )

    @task
    def both_finished(*runs: dict) -> list[str]:
        print(render_report(runs))
        return [run["instance_id"] for run in runs]

    both_finished(dataworks.output, lsf.output)
