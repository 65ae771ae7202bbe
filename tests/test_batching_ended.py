"""A wait whose run leaves the poller's listing is read once for its end, graph included, where the graph comes
in the same answer; where it takes calls of its own (DataWorks), the graph is still read only once decided."""

from __future__ import annotations

import asyncio
from collections import Counter

from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

POKE = 0.2
SINGLE_READ = "enos_batch GET /batch-processing-service/v2.1/flowInstances"


async def first_event(trigger: FlowInstanceTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


async def watch(conn_id: str, quick: list[str], long: list[str]) -> list[dict]:
    """The quick waits' events; the long ones (enough to make the poller list) are cancelled after them."""
    triggers = [FlowInstanceTrigger(conn_id=conn_id, instance_id=i, poke_interval=POKE) for i in quick + long]
    tasks = [asyncio.ensure_future(first_event(trigger)) for trigger in triggers]
    try:
        async with asyncio.timeout(60):
            return await asyncio.gather(*tasks[: len(quick)])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_shared_session()


def make_instances(emulator, month: int, quick: int, long: int) -> tuple[list[str], list[str]]:
    """(instances that end soon in success, instances that run for hours): all listed from the start."""
    ids = [f"5101-2044{month:02d}{day:02d}000000" for day in range(1, quick + long + 1)]
    for index, instance_id in enumerate(ids):
        running = 5 if index < quick else 36_000
        emulator.create_enos_batch_instance("5101", instance_id, queued_seconds=0, running_seconds=running)
    return ids[:quick], ids[quick:]


async def test_an_ended_enos_batch_wait_is_read_once_for_its_end_with_its_graph(emulator):
    quick, long = make_instances(emulator, 2, quick=6, long=8)
    emulator.control("POST", "/_emulator/reset")

    events = await watch("enos_batch_default", quick, long)

    assert [event["status"] for event in events] == ["success"] * len(quick)
    assert [event["instance"]["instance_id"] for event in events] == quick
    assert all(event["instance"]["graph"]["nodes"] for event in events)
    # Each quick wait: read on its own once, when it had left the listing of runs not yet ended (not once more
    # for the graph); the long waits are always in the listing. Plus the first wait's first read, made while it
    # was the only wait (nothing to share it with).
    assert emulator.stats()["requests"].get(SINGLE_READ, 0) == len(quick) + 1, emulator.stats()["requests"]


async def test_a_wait_that_asked_for_no_graph_gets_none_when_its_end_was_read_with_one(emulator):
    quick, long = make_instances(emulator, 3, quick=4, long=8)
    triggers = [
        FlowInstanceTrigger(
            conn_id="enos_batch_default", instance_id=i, poke_interval=POKE, include_graph=i not in quick[:2]
        )
        for i in quick + long
    ]
    tasks = [asyncio.ensure_future(first_event(trigger)) for trigger in triggers]
    try:
        async with asyncio.timeout(60):
            events = await asyncio.gather(*tasks[: len(quick)])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_shared_session()

    graphs = Counter(event["instance"]["graph"] is None for event in events)
    assert graphs == Counter({True: 2, False: 2}), events
