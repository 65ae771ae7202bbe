"""FlowInstanceEventTrigger against the emulator: each new finished run fires once, never twice."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from airflow_provider_flowinst.hooks import aget_hook
from airflow_provider_flowinst.testing.emulator.credentials import (
    BPM_PASSWORD,
    DATAWORKS_ACCESS_KEY_SECRET,
    ENOS_APP_SECRET,
    LSF_PASSWORD,
)
from airflow_provider_flowinst.transport import TOKENS, close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceEventTrigger
from tests.dags.trigger_dags import BPM
from tests.helpers import eventually

#: platform -> (conn_id, a flow to watch and start runs of)
WATCHED = {
    "enos_batch": ("enos_batch_default", "5107"),
    "lsf_pm": ("lsf_pm_default", "jsmith:flow1"),
    "dataworks": ("dataworks_default", "1001"),
    "enos_bpm": ("enos_bpm_default", BPM["success"]),
}


class Watch:
    """Runs a trigger's event loop in the background and records what it fires and how often it polled.

    The tests wait on these (and on the emulator's runs), never on fixed sleeps: a loaded machine only makes
    them slower.
    """

    def __init__(self, trigger) -> None:
        self.trigger = trigger
        self.events: list[dict] = []
        self.polls = 0
        looked_at = trigger._fresh

        async def counting(snapshot):
            try:
                return await looked_at(snapshot)
            finally:
                self.polls += 1

        trigger._fresh = counting

    async def __aenter__(self) -> Watch:
        self.task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def wait_for(self, count: int, timeout: float = 20.0) -> None:
        await eventually(lambda: len(self.events) >= count, timeout, f"{count} events")

    async def baseline_taken(self, timeout: float = 20.0) -> None:
        await self.more_polls(1, timeout)

    async def more_polls(self, count: int, timeout: float = 20.0) -> None:
        """Until the trigger has looked at ``count`` more snapshots than now."""
        target = self.polls + count
        await eventually(lambda: self.polls >= target, timeout, f"{count} more polls")

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await close_shared_session()


@pytest.mark.parametrize("platform", list(WATCHED))
async def test_a_new_successful_run_fires_once_and_older_ones_never(emulator, platform):
    conn_id, flow = WATCHED[platform]
    hook = await aget_hook(conn_id)
    old = await hook.astart_run(flow) if platform != "enos_batch" else None
    if old is not None:
        await ended(hook, old)  # before the watch starts: it is part of the baseline

    async with Watch(FlowInstanceEventTrigger(conn_id=conn_id, flow=flow, poke_interval=0.2)) as watch:
        await watch.baseline_taken()
        new = await hook.astart_run(flow)
        await watch.wait_for(1)
        await watch.more_polls(5)  # nothing fires again

    assert [event["instance_id"] for event in watch.events] == [new]
    assert watch.events[0]["instance"]["state"] == "success"
    assert watch.events[0]["instance"]["platform"] == platform
    assert old not in [event["instance_id"] for event in watch.events]


async def test_only_the_chosen_states_fire(emulator):
    hook = await aget_hook("lsf_pm_default")
    trigger = FlowInstanceEventTrigger(
        conn_id="lsf_pm_default", flow="jsmith:flow_exit", states=["failed"], poke_interval=0.2
    )
    async with Watch(trigger) as watch:
        await watch.baseline_taken()
        failed = await hook.astart_run("jsmith:flow_exit")
        await watch.wait_for(1)

    assert [event["instance_id"] for event in watch.events] == [failed]
    assert watch.events[0]["instance"]["raw_state"] == "Exit"


async def test_a_watcher_that_ends_logs_out_of_lsf(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/tokens", {"drop": True})
    TOKENS.clear()  # hooks earlier tests left open hold no token of this one's
    hook = await aget_hook("lsf_pm_default")
    trigger = FlowInstanceEventTrigger(conn_id="lsf_pm_default", flow="jsmith:flow1", poke_interval=0.2)
    async with Watch(trigger) as watch:
        await watch.baseline_taken()
        await hook.astart_run("jsmith:flow1")
        await watch.wait_for(1)  # the listing and the full read of the new run: each holds the token
    await hook.aclose()

    # The token was freed once its last user (this test's hook) was done: the watcher had let go of it.
    assert emulator.control("GET", "/_emulator/lsf_pm/sessions") == {"live": 0, "logouts": 1}


class InMemoryAssetStateStore:
    """Stands in for the asset state store Airflow 3.3's triggerer injects (the full-stack test uses the real one)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    async def aget(self, key, default=None):
        return self.values.get(key, default)

    async def aset(self, key, value) -> None:
        self.values[key] = json.loads(json.dumps(value))


async def test_with_a_state_store_a_restart_neither_refires_nor_misses(emulator):
    hook = await aget_hook("dataworks_default")
    store = InMemoryAssetStateStore()

    first = FlowInstanceEventTrigger(conn_id="dataworks_default", flow="1001", poke_interval=0.2)
    first.asset_state_store = store
    async with Watch(first) as watch:
        await watch.baseline_taken()
        before_restart = await hook.astart_run("1001")
        await watch.wait_for(1)

    during_downtime = await hook.astart_run("1001")
    await ended(hook, during_downtime)  # while no trigger runs

    second = FlowInstanceEventTrigger(**first.serialize()[1])
    second.asset_state_store = store
    async with Watch(second) as watch_again:
        await watch_again.wait_for(1)
        await watch_again.more_polls(3)

    assert [event["instance_id"] for event in watch.events] == [before_restart]
    assert [event["instance_id"] for event in watch_again.events] == [during_downtime]


async def ended(hook, instance_id: str, timeout: float = 20.0) -> None:
    async def is_terminal() -> bool:
        return (await hook.aget_instance(instance_id, include_graph=False)).state.is_terminal

    await eventually(is_terminal, timeout, f"{instance_id} to end")


async def fired(watch: Watch, instance_id: str, timeout: float = 20.0) -> None:
    await eventually(lambda: instance_id in [event["instance_id"] for event in watch.events], timeout, instance_id)


async def test_without_a_state_store_a_restart_takes_a_new_baseline(emulator):
    # Before Airflow 3.3 no asset state store is injected: the cursor lives in memory (documented fallback).
    hook = await aget_hook("dataworks_default")

    first = FlowInstanceEventTrigger(conn_id="dataworks_default", flow="1001", poke_interval=0.2)
    async with Watch(first) as watch:
        await watch.baseline_taken()
        before_restart = await hook.astart_run("1001")
        await fired(watch, before_restart)

    during_downtime = await hook.astart_run("1001")
    await ended(hook, during_downtime)

    second = FlowInstanceEventTrigger(**first.serialize()[1])
    async with Watch(second) as watch_again:
        await watch_again.baseline_taken()
        after_restart = await hook.astart_run("1001")
        await fired(watch_again, after_restart)
        await watch_again.more_polls(3)

    # (The emulator's own earlier runs of the workflow may fire too; only the test's runs are asserted.)
    first_ids = [event["instance_id"] for event in watch.events]
    second_ids = [event["instance_id"] for event in watch_again.events]
    assert first_ids.count(before_restart) == 1
    # The run that ended while no trigger ran is part of the new baseline: it never fires.
    assert during_downtime in second._seen and during_downtime not in second_ids
    assert second_ids.count(after_restart) == 1 and before_restart not in second_ids


async def test_watchers_of_one_flow_share_one_poll(emulator):
    hook = await aget_hook("enos_bpm_default")
    succeeded = FlowInstanceEventTrigger(conn_id="enos_bpm_default", flow=BPM["success"], poke_interval=0.2)
    anything_ended = FlowInstanceEventTrigger(
        conn_id="enos_bpm_default", flow=BPM["success"], states=["success", "cancelled"], poke_interval=0.2
    )
    assert succeeded.shared_stream_key() == anything_ended.shared_stream_key()

    snapshots: list = []

    async def shared():
        async for snapshot in FlowInstanceEventTrigger.open_shared_stream(succeeded.serialize()[1]):
            snapshots.append(snapshot)
            yield snapshot

    # Fan the one stream out to both filters, as the triggerer does.
    queues = [asyncio.Queue(), asyncio.Queue()]

    async def fan_out():
        async for snapshot in shared():
            for queue in queues:
                await queue.put(snapshot)

    async def from_queue(queue):
        while True:
            yield await queue.get()

    fired: dict[int, list[str]] = {0: [], 1: []}

    async def consume(index, trigger):
        async for event in trigger.filter_shared_stream(from_queue(queues[index])):
            fired[index].append(event.payload["instance_id"])

    tasks = [
        asyncio.create_task(fan_out()),
        asyncio.create_task(consume(0, succeeded)),
        asyncio.create_task(consume(1, anything_ended)),
    ]
    try:
        await eventually(lambda: succeeded._seen is not None and anything_ended._seen is not None, what="baselines")
        new = await hook.astart_run(BPM["success"])
        await eventually(lambda: fired[0] and fired[1], what="both filters to fire")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_shared_session()

    assert fired == {0: [new], 1: [new]}


def test_serialised_kwargs_are_deterministic_and_hold_no_secret():
    one = FlowInstanceEventTrigger(conn_id="c", flow=1001, filters={"project_id": 100, "bizdates": ["2024-01-01"]})
    two = FlowInstanceEventTrigger(conn_id="c", flow="1001", filters={"bizdates": ["2024-01-01"], "project_id": 100})

    assert one.serialize() == two.serialize()
    assert one.serialize() == (
        "airflow_provider_flowinst.triggers.flow_instance.FlowInstanceEventTrigger",
        {
            "conn_id": "c",
            "flow": "1001",
            "states": ["success"],
            "poke_interval": 60.0,
            "filters": {"bizdates": ["2024-01-01"], "project_id": 100},
            "include_graph": True,
        },
    )
    text = json.dumps(one.serialize())
    for secret in (ENOS_APP_SECRET, BPM_PASSWORD, LSF_PASSWORD, DATAWORKS_ACCESS_KEY_SECRET):
        assert secret not in text
    assert FlowInstanceEventTrigger(**one.serialize()[1]).serialize() == one.serialize()


async def test_an_instance_listed_twice_in_one_snapshot_fires_once(emulator):
    hook = await aget_hook("dataworks_default")
    run_id = await hook.astart_run("1001")
    await ended(hook, run_id)
    instance = await hook.aget_instance(run_id, include_graph=False)
    trigger = FlowInstanceEventTrigger(conn_id="dataworks_default", flow="1001", include_graph=False)

    async def snapshots():
        yield []  # the baseline
        yield [instance, instance]  # a listing that returned the row twice (its pages shifted under it)

    try:
        events = [event.payload async for event in trigger.filter_shared_stream(snapshots())]
    finally:
        await close_shared_session()

    assert [event["instance_id"] for event in events] == [run_id]
