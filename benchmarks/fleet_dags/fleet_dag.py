"""``make bench-fleet``'s DAGs: one task per wait (``fleet_waits.json`` beside it), each started in the triggerer.

The waits are shared out over DAGs of ``per_dag`` tasks (``fleet_000``, ``fleet_001``, ...), as a deployment with
many sensors has them: Airflow 3.3 hands a triggerer the whole serialized DAG with each task started from the
triggerer and keeps it deserialized for as long as the trigger runs, so one DAG of N such tasks costs each
trigger memory and start-up CPU in proportion to N (N squared in all).

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


PER_DAG = WAITS["per_dag"]
for first in range(0, len(WAITS["waits"]), PER_DAG):
    with DAG(
        dag_id=f"fleet_{first // PER_DAG:03d}",
        schedule=None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_tasks=PER_DAG,
        tags=["bench"],
    ):
        for index in range(first, min(first + PER_DAG, len(WAITS["waits"]))):
            FleetWait(task_id=f"wait_{index:05d}", poke_interval=WAITS["poke_interval"], **WAITS["waits"][index])
