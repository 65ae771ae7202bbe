"""``make bench-fleet``'s DAG: one task per wait (``fleet_waits.json`` beside it), each started in the triggerer.

Written for the benchmark (benchmarks/fleet.py copies it and the waits into the DAGs folder).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from airflow.sdk import DAG, BaseOperator
from airflow.triggers.base import StartTriggerArgs

WAITS = json.loads((Path(__file__).parent / "fleet_waits.json").read_text())


class FleetWait(BaseOperator):
    """Deferred from the start: the scheduler hands the wait straight to a triggerer (no worker)."""

    start_from_trigger = True

    def __init__(self, *, conn_id: str, instance_id: str, poke_interval: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls="fleet_trigger.FleetWaitTrigger",
            trigger_kwargs={"conn_id": conn_id, "instance_id": instance_id, "poke_interval": poke_interval},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=dt.timedelta(hours=2),
        )

    def execute(self, context: object) -> None:  # never runs: the trigger ends the task
        raise RuntimeError("a fleet wait is started from the triggerer")

    def execute_complete(self, context: object, event: object = None) -> object:
        return event


with DAG(
    dag_id="fleet",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_tasks=WAITS["max_active_tasks"],
    tags=["bench"],
):
    for index, wait in enumerate(WAITS["waits"]):
        FleetWait(task_id=f"wait_{index:05d}", poke_interval=WAITS["poke_interval"], **wait)
