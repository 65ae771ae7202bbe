"""Schedule a DAG whenever an EnOS Batch Processing flow has a new successful run.

An AssetWatcher runs FlowInstanceEventTrigger in the triggerer: it polls the flow's instances and fires once
for each new instance that succeeds (never twice, and never for runs that had already succeeded when it
started). Each firing becomes an asset event, which schedules ``example_remote_run_asset``. Airflow keeps the
trigger's payload in the event's extra under ``payload``:
``{"from_trigger": true, "payload": {"instance_id": "5108-...", "instance": {...the XCom dict...}}}``.
Events that arrive before the scheduler has created a run for the earlier ones share one DAG run, so the
task reads every triggering event.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceEventTrigger

ENOS_FLOW_ID = "5108"

enos_flow_succeeded = Asset(
    "enos_batch_flow_5108_succeeded",
    watchers=[
        AssetWatcher(
            name="enos_flow_5108_watcher",
            trigger=FlowInstanceEventTrigger(conn_id="enos_batch_default", flow=ENOS_FLOW_ID, poke_interval=2),
        )
    ],
)

with DAG(
    dag_id="example_remote_run_asset",
    schedule=[enos_flow_succeeded],
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "flowinst"],
) as dag:

    @task(inlets=[enos_flow_succeeded])
    def process_new_run(*, triggering_asset_events=None) -> list[str]:
        """Read which remote run scheduled this DAG run."""
        instance_ids = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                extra = event.extra or {}
                # A watcher's event carries the trigger's payload under "payload"; one posted by hand may not.
                instance = extra.get("payload", extra).get("instance", {})
                print(f"remote run {instance.get('instance_id')} of {instance.get('flow_id')}: {instance.get('state')}")
                instance_ids.append(instance.get("instance_id"))
        return instance_ids

    process_new_run()
