"""DAGs whose tasks meet failures no retry can change, and (Airflow 3.3+) tasks with FlowPlatformRetryPolicy.

Every task here has retries to spend: a failure that fails it at once shows in its try number (1).
In the emulator jsmith:flow1 ends Done; EnOS flow 2809's instances succeed.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
from tests.dags import TEST_DAG, retries

RETRIES = retries(2)


def fails_fast_dag(dag_id: str, **operator_kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:
        TriggerFlowOperator(task_id="run", **{"poke_interval": 0.2, "timeout": 120, **RETRIES, **operator_kwargs})
    return dag


#: platform -> (connection, a flow or process definition the emulator does not know).
UNKNOWN_FLOWS = {
    "enos_batch": ("enos_batch_default", "424242"),
    "lsf_pm": ("lsf_pm_default", "jsmith:no_such_flow"),
    "dataworks": ("dataworks_default", "999999"),
    "enos_bpm": ("enos_bpm_default", "noSuchProcess:1:x"),
}

# An unknown flow or process definition at start, on each platform.
for platform, (conn_id, unknown) in UNKNOWN_FLOWS.items():
    dag_id = f"fails_fast_{platform}_unknown_flow"
    globals()[dag_id] = fails_fast_dag(dag_id, conn_id=conn_id, flow=unknown)

# A look at the started run refused (the test injects a 403), and a start refused after a fresh login.
fails_fast_refused_look = fails_fast_dag("fails_fast_refused_look", conn_id="lsf_pm_default", flow="jsmith:flow1")
fails_fast_credentials_refused = fails_fast_dag(
    "fails_fast_credentials_refused", conn_id="lsf_pm_default", flow="jsmith:flow1"
)

# A deferrable sensor whose first look is refused (the test injects a 403).
with DAG(dag_id="fails_fast_sensor_refused", **TEST_DAG) as fails_fast_sensor_refused:
    FlowInstanceSensor(
        task_id="wait",
        conn_id="enos_batch_default",
        instance_id="2809-20300101000000",
        deferrable=True,
        poke_interval=0.2,
        timeout=60,
        **RETRIES,
    )


# -- FlowPlatformRetryPolicy (Airflow 3.3+) -------------------------------------------------------------

try:
    from airflow_provider_flowinst.retry import FlowPlatformRetryPolicy

    POLICY = FlowPlatformRetryPolicy()
except RuntimeError:  # Airflow before 3.3: no retry policies
    POLICY = None

if POLICY is not None:
    with DAG(dag_id="retry_policy", **TEST_DAG) as retry_policy:

        @task(retry_policy=POLICY, **RETRIES)
        def start_unknown_flow() -> str:
            """Permanent: the policy fails the task at once."""
            return get_hook("lsf_pm_default").start_run("jsmith:no_such_flow")

        @task(retry_policy=POLICY, **RETRIES)
        def read_throttled() -> str:
            """Throttled (the test sends a 429 with Retry-After): retried after the platform's delay."""
            return get_hook("enos_batch_default_quick_retry").get_instance("2809-20300101000000").state.value

        @task(retry_policy=POLICY, **RETRIES)
        def read_unavailable() -> str:
            """A passing fault without a delay asked (the test sends a 503): the task's own retries and delay."""
            return get_hook("enos_batch_default_quick_retry").get_instance("2809-20300101000001").state.value

        start_unknown_flow()
        read_throttled()
        read_unavailable()
