"""DAGs the OpenLineage tests run: on each platform, one remote run seen by all three of the provider's tasks.

``lineage_<platform>_success``: TriggerFlowOperator starts a run that succeeds, a deferrable FlowInstanceSensor
waits on it and FlowInstanceStatusOperator reads it. ``lineage_<platform>_failure``: the same on a run that
fails (BPM: is terminated); the sensor and the status operator run anyway (``all_done``) and fail too.
The flows are the emulator's (see trigger_dags); the EnOS ones are used by no other DAG (one start a minute).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_flowinst.operators.flow_instance import FlowInstanceStatusOperator
from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
from tests.dags import TEST_DAG
from tests.dags.trigger_dags import BPM

#: platform -> (conn_id, a flow whose run succeeds, one whose run fails or is cancelled)
FLOWS = {
    "enos_batch": ("enos_batch_default", "5109", "5204"),
    "lsf_pm": ("lsf_pm_default", "jsmith:flow1", "jsmith:flow_exit"),
    "dataworks": ("dataworks_default", "1001", "1002"),
    "enos_bpm": ("enos_bpm_default", BPM["success"], BPM["failure"]),
}
STARTED = "{{ ti.xcom_pull(task_ids='run', key='flow_instance_id') }}"


def lineage_dag(dag_id: str, conn_id: str, flow: str) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:
        run = TriggerFlowOperator(task_id="run", conn_id=conn_id, flow=flow, poke_interval=0.2, timeout=120)
        wait = FlowInstanceSensor(
            task_id="wait",
            conn_id=conn_id,
            instance_id=STARTED,
            deferrable=True,
            poke_interval=0.2,
            timeout=60,
            trigger_rule="all_done",
        )
        status = FlowInstanceStatusOperator(
            task_id="status",
            conn_id=conn_id,
            instance_id=STARTED,
            fail_on_states=["failed", "cancelled"],
            trigger_rule="all_done",
        )
        run >> wait >> status
    return dag


for platform, (conn_id, good, bad) in FLOWS.items():
    for outcome, flow in (("success", good), ("failure", bad)):
        dag_id = f"lineage_{platform}_{outcome}"
        globals()[dag_id] = lineage_dag(dag_id, conn_id, flow)
