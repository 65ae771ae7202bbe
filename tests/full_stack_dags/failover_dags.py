"""DAGs of the PostgreSQL full-stack test (two triggerers, one killed): many deferred waits and starts.

The test copies this file and ``example_dags/example_remote_run_asset.py`` (the AssetWatcher) into the DAGs
folder of a temporary AIRFLOW_HOME.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
#: Remote runs the starts DAG begins, each long (hours), so that it is still waiting when its triggerer dies.
STARTS = {
    "start_enos_5300": ("enos_batch_default", "5300"),
    "start_enos_5301": ("enos_batch_default", "5301"),
    "start_lsf_long_1": ("lsf_pm_default", "jsmith:long_flow"),
    # Another flow: concurrent starts of one LSF flow are refused as ambiguous (remedy: a pool of one slot).
    "start_lsf_long_2": ("lsf_pm_default", "jsmith:long_flow_b"),
}

with DAG(
    dag_id="failover_waits",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_tasks=400,  # every wait may be deferred at once; only a few run in a worker at a time
    tags=["test"],
):

    @task
    def waits() -> list[dict[str, Any]]:
        """The waits to make, from the run's conf: ``[{"conn_id": ..., "instance_id": ...}, ...]``."""
        waits: list[dict[str, Any]] = get_current_context()["dag_run"].conf["waits"]
        return waits

    # One deferred wait per remote instance, each handed to a triggerer after the worker's first look.
    FlowInstanceSensor.partial(task_id="wait", deferrable=True, poke_interval=2, timeout=3600).expand_kwargs(waits())

with DAG(dag_id="failover_starts", schedule=None, start_date=START, catchup=False, tags=["test"]):
    for task_id, (conn_id, flow) in STARTS.items():
        TriggerFlowOperator(task_id=task_id, conn_id=conn_id, flow=flow, deferrable=True, poke_interval=2, timeout=3600)
