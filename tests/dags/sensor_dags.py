"""DAGs the sensor and operator tests run with dag.test(); one per behaviour, named after it.

Each waits on the EnOS instance of a flow for the run's logical date, so every run has its own remote
instance. In the emulator flow 2809 succeeds, 3257 fails, 4000 runs for hours, 9999 does not exist and
2515 has instances only when a test creates them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG

from airflow_provider_flowinst.operators.flow_instance import FlowInstanceStatusOperator
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
from tests.dags import SENSOR_MODES, TEST_DAG, retries

INSTANCE_OF_RUN = "-{{ logical_date.strftime('%Y%m%d%H%M%S') }}"


def sensor_dag(dag_id: str, flow_id: str, **sensor_kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:
        FlowInstanceSensor(
            task_id="wait",
            conn_id="enos_batch_default",
            instance_id=flow_id + INSTANCE_OF_RUN,
            **{"poke_interval": 0.2, "timeout": 60, **sensor_kwargs},
        )
    return dag


SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "success": ("2809", {}),
    "failure": ("3257", {}),
    "soft_fail": ("3257", {"soft_fail": True}),
    "missing_fails": ("9999", {"fail_if_missing": True}),
    "missing_appears": ("2515", {}),
    "timeout": ("4000", {"timeout": 1}),
    "timeout_soft_fail": ("4000", {"timeout": 1, "soft_fail": True}),
    "failure_counts_as_success": ("3257", {"success_states": ["success", "failed"], "failure_states": []}),
}
MODES = SENSOR_MODES

for scenario, (flow, kwargs) in SCENARIOS.items():
    for mode, mode_kwargs in MODES.items():
        dag_id = f"sensor_{mode}_{scenario}"
        globals()[dag_id] = sensor_dag(dag_id, flow, **kwargs, **mode_kwargs)


with DAG(dag_id="status_operator", **TEST_DAG) as status_dag:
    FlowInstanceStatusOperator(task_id="status", conn_id="enos_batch_default", instance_id="2809" + INSTANCE_OF_RUN)
    FlowInstanceStatusOperator(
        task_id="status_failing",
        conn_id="enos_batch_default",
        instance_id="3257" + INSTANCE_OF_RUN,
        fail_on_states=["queued", "running", "failed"],
    )


with DAG(dag_id="find_flows", **TEST_DAG) as find_flows_dag:
    from airflow_provider_flowinst.operators.enos_batch import EnOSFindFlowsOperator

    EnOSFindFlowsOperator(task_id="find", expression="{{ params.expression }}", params={"expression": "shell"})


# Poke mode with a connection that does not retry (the test sets it): each failed look counts.
for limit in (2, 3):
    with DAG(dag_id=f"sensor_poke_failed_looks_{limit}", **TEST_DAG) as looks_dag:
        FlowInstanceSensor(
            task_id="wait",
            conn_id="enos_batch_default_quick_retry",
            instance_id="2809" + INSTANCE_OF_RUN,
            poke_interval=0.1,
            timeout=60,
            mode="poke",
            max_consecutive_failures=limit,
        )
    globals()[looks_dag.dag_id] = looks_dag


# A deferred wait on a run that lasts for hours, whose try's execution_timeout comes long before its timeout:
# each try times out after 4 s (and is retried once), not after 120 s.
sensor_deferrable_execution_timeout = sensor_dag(
    "sensor_deferrable_execution_timeout",
    "4000",
    deferrable=True,
    timeout=120,
    execution_timeout=dt.timedelta(seconds=4),
    **retries(1),
)
