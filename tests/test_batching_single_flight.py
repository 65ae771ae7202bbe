"""Reads asked for while a batched read is still going on wait for it, then go out together in one more.

A triggerer starts its waits over seconds, and each new wait reads at once: without this, every coalescing
window of first reads would start a listing of its own, each paging through every running instance of the
flow (at 2,000 waits, a backlog of listings that kept the platform busy for minutes).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.helpers import eventually

GROUPS = 5
PER_GROUP = 8  # the poller's batch threshold: each group alone would be a listing
#: The first listing's answer is held back this long; the other groups ask meanwhile.
SLOW_LISTING_SECONDS = 1.5
GROUP_GAP_SECONDS = 0.2
SINGLE_READ = "enos_batch GET /batch-processing-service/v2.1/flowInstances"


async def test_first_reads_asked_during_a_listing_share_the_next_one(emulator, monkeypatch):
    listings: list[int] = []
    real = FlowPlatformHook.abatch_instances

    async def counted(self, ids):
        listings.append(len(ids))
        return await real(self, ids)

    monkeypatch.setattr(FlowPlatformHook, "abatch_instances", counted)
    first = dt.datetime(2044, 3, 1)  # instances of their own, that run for hours
    anchor, *ids = [f"4000-{first + dt.timedelta(seconds=n):%Y%m%d%H%M%S}" for n in range(1 + GROUPS * PER_GROUP)]
    reads: dict[str, str] = {}

    async def first_read(instance_id: str) -> None:
        trigger = FlowInstanceTrigger(conn_id="enos_batch_default", instance_id=instance_id, poke_interval=3600)
        async for event in trigger.run():  # not reached: the runs go on for hours
            reads[instance_id] = str(event.payload)

    # A wait alone reads on its own (no listing, no coalescing window): one first, so the groups share.
    waits = [asyncio.ensure_future(first_read(anchor))]
    try:
        await eventually(lambda: emulator.stats()["requests"].get(SINGLE_READ, 0) >= 1, what="the first wait's read")
        emulator.inject_fault(
            "timeout", platform="enos_batch", count=1, delay=SLOW_LISTING_SECONDS, path_contains="flowInstances"
        )
        for group in range(GROUPS):  # the groups start GROUP_GAP_SECONDS apart, as a triggerer starts them
            batch = ids[group * PER_GROUP : (group + 1) * PER_GROUP]
            waits += [asyncio.ensure_future(first_read(instance_id)) for instance_id in batch]
            await asyncio.sleep(GROUP_GAP_SECONDS)
        await eventually(lambda: sum(listings) >= len(ids), what="every group's first read listed")
        await asyncio.sleep(0.3)  # a listing more would have started by now
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await close_shared_session()

    assert not reads, reads
    # The first group's listing (held back), then one for the four groups that asked while it went on.
    assert listings == [PER_GROUP, (GROUPS - 1) * PER_GROUP], listings
