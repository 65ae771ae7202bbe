"""The DAG the browser test repairs from the Remote graph tab: a wait on a DataWorks run that fails.

Copied into the browser test's DAGs folder; the run to wait on comes from the DAG run's conf.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

with DAG(
    dag_id="remote_graph_rerun",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["test"],
):
    FlowInstanceSensor(
        task_id="wait",
        conn_id="dataworks_default",
        instance_id="{{ dag_run.conf['instance_id'] }}",
        poke_interval=1,
        timeout=300,
    )
