"""DAGs that start remote runs with TriggerFlowOperator, one per platform and behaviour.

In the emulator: EnOS flows 51xx succeed, 52xx fail and 53xx run for hours (each may be started once a
minute); LSF jsmith:flow1 ends Done, jsmith:flow_exit Exit, jsmith:long_flow runs for hours; DataWorks
workflow 1001 succeeds, 1002 fails, 1003 runs for hours; BPM purchaseApproval completes, expenseClaim is
terminated, contractReview runs for hours.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG

from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
from tests.dags import TEST_DAG, retries

BPM = {
    "success": "purchaseApproval:3:5abd9f71-e365-11ea-8a6b-be43f0d99bcd",
    "failure": "expenseClaim:2:7d1f2b33-e365-11ea-8a6b-be43f0d99bcd",
    "long": "contractReview:1:8e203c44-e365-11ea-8a6b-be43f0d99bcd",
}
#: platform -> (conn_id, flow that succeeds, fails, runs for hours, does not exist), per mode. EnOS refuses a
#: second start of one flow within a minute, so each EnOS DAG has a flow of its own.
PLATFORMS = {
    "enos_batch": {
        "poke": ("enos_batch_default", "5101", "5201", "5301", "424242"),
        "deferrable": ("enos_batch_default", "5103", "5202", "5302", "424242"),
    },
    "lsf_pm": dict.fromkeys(
        ("poke", "deferrable"),
        ("lsf_pm_default", "jsmith:flow1", "jsmith:flow_exit", "jsmith:long_flow", "jsmith:no_such_flow"),
    ),
    "dataworks": dict.fromkeys(("poke", "deferrable"), ("dataworks_default", "1001", "1002", "1003", "999999")),
    "enos_bpm": dict.fromkeys(
        ("poke", "deferrable"),
        ("enos_bpm_default", BPM["success"], BPM["failure"], BPM["long"], "noSuchProcess:1:x"),
    ),
}
NO_WAIT_ENOS_FLOW = {"poke": "5303", "deferrable": "5304"}


def trigger_dag(
    dag_id: str, conn_id: str, flow: str, operator: type[TriggerFlowOperator] = TriggerFlowOperator, **kwargs: Any
) -> DAG:
    with DAG(dag_id=dag_id, **TEST_DAG) as dag:
        operator(task_id="run", conn_id=conn_id, flow=flow, **{"poke_interval": 0.2, "timeout": 120, **kwargs})
    return dag


for platform, modes in PLATFORMS.items():
    for mode, (conn_id, good, bad, long, unknown) in modes.items():
        mode_kwargs = {"deferrable": True} if mode == "deferrable" else {}
        scenarios: dict[str, tuple[str, dict[str, Any]]] = {
            "success": (good, {}),
            "failure": (bad, {}),
            "unknown": (unknown, {}),
            "timeout": (long, {"timeout": 1}),
            # A run that lasts hours: it is surely still going when the task returns, however slow the machine.
            "no_wait": (NO_WAIT_ENOS_FLOW[mode] if platform == "enos_batch" else long, {"wait_for_completion": False}),
        }
        for scenario, (scenario_flow, kwargs) in scenarios.items():
            dag_id = f"trigger_{platform}_{mode}_{scenario}"
            globals()[dag_id] = trigger_dag(dag_id, conn_id, scenario_flow, **kwargs, **mode_kwargs)

# Killed in the worker: execution_timeout makes Airflow call on_kill.
trigger_killed = trigger_dag(
    "trigger_killed", "lsf_pm_default", "jsmith:long_flow", execution_timeout=dt.timedelta(seconds=2)
)
trigger_killed_keep_running = trigger_dag(
    "trigger_killed_keep_running",
    "lsf_pm_default",
    "jsmith:long_flow",
    execution_timeout=dt.timedelta(seconds=2),
    cancel_on_kill=False,
)
# Deferred: the try's execution_timeout ends the wait in the triggerer (Airflow does not while deferred); the
# run is stopped, and the retry starts a new run, stopped in turn. Its own timeout is far off.
trigger_deferred_execution_timeout = trigger_dag(
    "trigger_deferred_execution_timeout",
    "lsf_pm_default",
    "jsmith:long_flow",
    deferrable=True,
    timeout=300,
    execution_timeout=dt.timedelta(seconds=4),
    **retries(1),
)
# A first try that fails after the run started, and a retry that must reattach to it. The connection does not
# retry (the test sets it) and one failed look ends the try: one passing fault fails it.
trigger_retried = trigger_dag(
    "trigger_retried",
    "enos_batch_default_quick_retry",
    "5105",
    **retries(2),
    max_consecutive_failures=1,
)

# A retry that repairs the failed run in place (DataWorks 1002 and LSF flow_repaired fail, their reruns
# succeed), per platform and mode; on EnOS BPM, which cannot, it starts a new run (expenseClaim is terminated).
for platform, conn_id, flow in (
    ("dataworks", "dataworks_default", "1002"),
    ("lsf_pm", "lsf_pm_default", "jsmith:flow_repaired"),
    ("enos_bpm", "enos_bpm_default", BPM["failure"]),
):
    for mode in ("poke", "deferrable"):
        dag_id = f"trigger_{platform}_{mode}_rerun_on_retry"
        globals()[dag_id] = trigger_dag(
            dag_id,
            conn_id,
            flow,
            **retries(1),
            rerun_failed_on_retry=True,
            deferrable=mode == "deferrable",
        )


class TriggerFlowOperatorBefore33(TriggerFlowOperator):
    """As on Airflow 3.0-3.2, whose tasks have no task_state_store: the run id is kept in a Variable."""

    def execute(self, context: Any) -> Any:
        return super().execute({key: value for key, value in context.items() if key != "task_state_store"})


trigger_retried_before_33 = trigger_dag(
    "trigger_retried_before_33",
    "enos_batch_default_quick_retry",
    "5106",
    TriggerFlowOperatorBefore33,
    **retries(2),
    max_consecutive_failures=1,
)


class CrashAfterStartOperator(TriggerFlowOperator):
    """Its first try dies right after the platform started the run, before the run's id was stored."""

    def _send_start(self, hook: Any, attempt: Any) -> str:
        instance_id = super()._send_start(hook, attempt)
        if self._first_try:
            raise RuntimeError(f"the worker died after starting {instance_id}")
        return instance_id

    def execute(self, context: Any) -> Any:
        self._first_try = context["ti"].try_number == 1
        return super().execute(context)


# A flow no other test starts: the next try looks for the run by flow and start time (LSF keeps no marker), and
# another run of the flow in the 2 minutes before the attempt would make it ambiguous.
trigger_crash_mid_start = trigger_dag(
    "trigger_crash_mid_start", "lsf_pm_default", "jsmith:flow_retried", CrashAfterStartOperator, **retries(1)
)

# Poke mode with a connection that does not retry: each failed look counts (the test sets the connection).
trigger_tolerates_failed_looks = trigger_dag(
    "trigger_tolerates_failed_looks",
    "enos_batch_default_quick_retry",
    "5107",
    poke_interval=0.1,
    max_consecutive_failures=3,
)
