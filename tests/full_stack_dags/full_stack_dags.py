"""DAGs the full-stack test runs in real Airflow processes (scheduler, dag-processor, triggerer, api-server).

The test copies this file and ``example_dags/example_remote_run_asset.py`` into the DAGs folder of a
temporary AIRFLOW_HOME; nothing else is parsed there. Each DAG takes what it works on from its run's conf.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

with DAG(dag_id="full_stack_deferrable_wait", schedule=None, start_date=START, catchup=False, tags=["test"]):
    # (a) a deferrable wait, handed to the triggerer and resumed in a worker when the instance succeeds.
    FlowInstanceSensor(
        task_id="wait",
        conn_id="enos_batch_default",
        instance_id="{{ dag_run.conf['instance_id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )

with DAG(dag_id="full_stack_start_and_kill", schedule=None, start_date=START, catchup=False, tags=["test"]):
    # (c) starts a remote run that lasts for hours and waits for it in the triggerer, until a user kills it.
    TriggerFlowOperator(
        task_id="run",
        conn_id="enos_batch_default",
        flow="{{ dag_run.conf['flow'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

with DAG(dag_id="full_stack_execution_timeout", schedule=None, start_date=START, catchup=False, tags=["test"]):
    # (e) a deferred wait whose try's execution_timeout comes long before its timeout: the triggerer ends it,
    # the run is stopped and the try fails as timed out; its retry starts a run of its own, stopped in turn.
    TriggerFlowOperator(
        task_id="run",
        conn_id="lsf_pm_default",
        flow="jsmith:long_flow",
        deferrable=True,
        poke_interval=1,
        timeout=600,
        # Long enough for the worker that deferred to have exited before the trigger fires (apache/airflow#71580).
        execution_timeout=dt.timedelta(seconds=20),
        retries=1,
        retry_delay=dt.timedelta(seconds=0),
    )

with DAG(dag_id="full_stack_start_from_trigger", schedule=None, start_date=START, catchup=False, tags=["test"]):
    # (f) a wait the scheduler starts in the triggerer (Airflow 3.3+), its instance id rendered there.
    FlowInstanceSensor(
        task_id="wait",
        conn_id="enos_batch_default",
        instance_id="{{ dag_run.conf['instance_id'] }}",
        start_from_trigger=True,
        poke_interval=1,
        timeout=300,
    )
