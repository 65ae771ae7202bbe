"""DAGs that repair a remote run they did not start with RerunFailedNodesOperator (its id in the run's conf)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG

from airflow_provider_flowinst.operators.rerun import RerunFailedNodesOperator
from tests.dags import TEST_DAG


def rerun_dag(dag_id: str, conn_id: str, **kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:
        RerunFailedNodesOperator(
            task_id="repair",
            conn_id=conn_id,
            instance_id="{{ dag_run.conf['instance_id'] }}",
            **{"poke_interval": 0.2, "timeout": 120, **kwargs},
        )
    return dag


rerun_dataworks_poke = rerun_dag("rerun_dataworks_poke", "dataworks_default")
rerun_dataworks_deferrable = rerun_dag("rerun_dataworks_deferrable", "dataworks_default", deferrable=True)
rerun_dataworks_no_wait = rerun_dag("rerun_dataworks_no_wait", "dataworks_default", wait_for_completion=False)
rerun_lsf_pm_poke = rerun_dag("rerun_lsf_pm_poke", "lsf_pm_default")
rerun_enos_batch = rerun_dag("rerun_enos_batch", "enos_batch_default")
