"""A triggerer whose event loop is busy still reads its waits in one batch per interval.

A triggerer's loop is often busy for tens of milliseconds at a time (Airflow 3.3 builds each trigger of a
``start_from_trigger`` task from the whole serialized DAG in that loop). The waits sleep until the same tick,
so however late the loop wakes, they wake in one pass of it and ask the poller together: one search of the
fewest pages per interval, not one per slice of the loop's time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.hooks import test_enos_batch

#: The fixture that changes the emulated service's settings for one test.
enos_settings = test_enos_batch.enos_settings
WAITS = 60
PAGE_ROWS = 20
POKE = 1.0
INTERVALS = 3
#: How long the loop is blocked at a time: more than the poller's 50 ms coalescing window in two passes.
BUSY_SECONDS = 0.03
SEARCH = "enos_batch POST /batch-processing-service/v2.1/flowInstances"


async def busy(until: asyncio.Event) -> None:
    """Blocks the event loop for ``BUSY_SECONDS`` at every pass of it, as a busy triggerer's loop is."""
    while not until.is_set():
        time.sleep(BUSY_SECONDS)  # the point: the loop does nothing else meanwhile
        await asyncio.sleep(0)


async def test_a_busy_loop_reads_its_waits_in_one_search_per_interval(emulator, enos_settings):
    enos_settings(page_cap=PAGE_ROWS)
    first = dt.datetime(2043, 9, 1)  # instances of their own, that run for hours
    ids = [f"4000-{first + dt.timedelta(seconds=n):%Y%m%d%H%M%S}" for n in range(WAITS)]
    ended: list[str] = []

    async def wait(instance_id: str) -> None:
        trigger = FlowInstanceTrigger(conn_id="enos_batch_default", instance_id=instance_id, poke_interval=POKE)
        async for event in trigger.run():
            ended.append(f"{instance_id}: {event.payload}")
            return

    done = asyncio.Event()
    waits = [asyncio.ensure_future(wait(instance_id)) for instance_id in ids]
    loop_hog = asyncio.ensure_future(busy(done))
    try:
        # Past the first reads (each new wait reads at once), then halfway between two ticks.
        await asyncio.sleep(POKE + POKE / 2 - time.time() % POKE)
        before = emulator.stats()["requests"].get(SEARCH, 0)
        await asyncio.sleep(POKE * INTERVALS)
        searches = emulator.stats()["requests"].get(SEARCH, 0) - before
    finally:
        done.set()
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, loop_hog, return_exceptions=True)
        await close_shared_session()

    assert not ended, ended[:3]
    fewest = math.ceil(WAITS / PAGE_ROWS) * INTERVALS
    assert fewest / 2 <= searches <= 1.2 * fewest + 1, searches  # two batches an interval would be 2 x fewest
