"""Wait for the EnOS Batch Processing run of a flow for this DAG's own logical date, then report it.

EnOS names an instance ``<flowId>-<trigger time as yyyyMMddHHmmss>``, so the id is a template. The wait
is deferrable: it holds no worker slot while the remote flow runs.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_flowinst.operators.enos_batch import EnOSFindFlowsOperator
from airflow_provider_flowinst.operators.flow_instance import FlowInstanceStatusOperator
from airflow_provider_flowinst.reporting import render_instance
from airflow_provider_flowinst.sensors.enos_batch import EnOSFlowInstanceSensor

FLOW_ID = "2809"

with DAG(
    dag_id="example_enos_batch_wait",
    schedule="@daily",
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "flowinst", "enos_batch"],
) as dag:
    find_flows = EnOSFindFlowsOperator(task_id="find_flows", expression="map")

    wait = EnOSFlowInstanceSensor(
        task_id="wait_for_enos_flow",
        flow_inst_id=FLOW_ID + "-{{ logical_date.strftime('%Y%m%d%H%M%S') }}",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )

    status = FlowInstanceStatusOperator(
        task_id="report_status",
        conn_id="enos_batch_default",
        instance_id=FLOW_ID + "-{{ logical_date.strftime('%Y%m%d%H%M%S') }}",
    )

    @task
    def show_graph(instance: dict) -> str:
        """Print the instance and its remote graph as a tree (the demo shows this)."""
        text = render_instance(instance)
        print(text)
        return instance["state"]

    find_flows >> wait >> status
    show_graph(wait.output)
