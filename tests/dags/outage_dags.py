"""A deferrable wait whose platform goes away for a few seconds (tests/test_outage.py runs it).

The connection ``enos_batch_outage`` is set by the test: it points at an emulator in a separate process,
which the test stops and starts again on the same port while the trigger polls.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
from tests.dags import TEST_DAG

with DAG(dag_id="outage_deferrable_wait", **TEST_DAG) as dag:
    FlowInstanceSensor(
        task_id="wait",
        conn_id="enos_batch_outage",
        instance_id="2809-{{ logical_date.strftime('%Y%m%d%H%M%S') }}",
        deferrable=True,
        poke_interval=0.5,
        timeout=120,
    )
