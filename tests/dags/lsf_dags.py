"""DAGs the LSF sensor tests run with dag.test(): submit a flow, find its new instance, wait on it.

In the emulator jsmith:flow1 ends Done, jsmith:flow_exit ends Exit and jsmith:flow_killed ends Killed,
each a few emulated seconds after it is submitted.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_flowinst.hooks.lsf import LSFProcessManagerHook
from airflow_provider_flowinst.sensors.lsf import LSFFlowInstanceSensor
from tests.dags import TEST_DAG

FLOWS = {"done": "jsmith:flow1", "exit": "jsmith:flow_exit", "killed": "jsmith:flow_killed"}
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "lsf_poke_done": ("done", {"mode": "poke"}),
    "lsf_reschedule_done": ("done", {"mode": "reschedule"}),
    "lsf_deferrable_done": ("done", {"deferrable": True}),
    "lsf_poke_exit": ("exit", {"mode": "poke"}),
    "lsf_deferrable_killed": ("killed", {"deferrable": True}),
}


def lsf_sensor_dag(dag_id: str, flow: str, **sensor_kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:

        @task
        def submit() -> str:
            # The submit answer does not name the new instance: start_run finds it. Closing the hook logs out.
            hook = LSFProcessManagerHook()
            try:
                return hook.start_run(flow, {"requested_by": "airflow"})
            finally:
                hook.close()

        LSFFlowInstanceSensor(task_id="wait", flow_instance_id=submit(), poke_interval=0.2, timeout=60, **sensor_kwargs)
    return dag


for dag_id, (outcome, kwargs) in SCENARIOS.items():
    globals()[dag_id] = lsf_sensor_dag(dag_id, FLOWS[outcome], **kwargs)
