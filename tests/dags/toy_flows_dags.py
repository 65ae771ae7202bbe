"""DAGs of the fifth-platform test (tests/test_fifth_platform.py): a FlowInstanceSensor on the toy platform
registered from tests/fifth_platform/, in poke and deferrable mode. dag.test() runs only DAGs in a bundle,
so they live here; the run to wait on comes in the DAG run's conf. Outside that test the platform is not
registered, and these DAGs are never run."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
from tests.dags import TEST_DAG

for mode in ("poke", "deferrable"):
    with DAG(dag_id=f"toy_flows_sensor_{mode}", **TEST_DAG) as dag:
        FlowInstanceSensor(
            task_id="wait",
            conn_id="toy_flows_default",
            instance_id="{{ dag_run.conf['run_id'] }}",
            poke_interval=0.2,
            timeout=60,
            deferrable=mode == "deferrable",
        )
    globals()[dag.dag_id] = dag
