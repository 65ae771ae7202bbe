"""Batched polling of EnOS Batch waits keeps its savings when the service caps its pages.

The emulated service serves at most ``page_cap`` rows a page, whatever ``pageSize`` asks, or refuses a larger
``pageSize``: the waits' reads cost about the fewest pages that hold them, never one request per wait.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

import pytest

from airflow_provider_flowinst.batching import InstancePoller
from airflow_provider_flowinst.models import FlowInstance
from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.helpers import eventually
from tests.hooks import test_enos_batch

WAITS = 200
#: The fixture that changes the emulated service's settings for one test.
enos_settings = test_enos_batch.enos_settings
POKE = 1.0
INTERVALS = 3


def enos_requests(stats: dict) -> int:
    return sum(
        count for key, count in stats["requests"].items() if key.split(" ", 1)[0] in ("enos_batch", "enos_gateway")
    )


def answered_reads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The ids whose reads the waits' poller has answered (a spy: the reads themselves are the real ones)."""
    answered: set[str] = set()
    real_get = InstancePoller.get

    async def get(self: InstancePoller, instance_id: str) -> FlowInstance:
        instance = await real_get(self, instance_id)
        answered.add(instance_id)
        return instance

    monkeypatch.setattr(InstancePoller, "get", get)
    return answered


async def requests_per_interval(emulator, monkeypatch: pytest.MonkeyPatch, ids: list[str]) -> float:
    """Requests per poll interval once every wait has been read once; fails if any wait ended."""
    ended: list[str] = []
    answered = answered_reads(monkeypatch)

    async def wait(instance_id: str) -> None:
        trigger = FlowInstanceTrigger(conn_id="enos_batch_default", instance_id=instance_id, poke_interval=POKE)
        async for event in trigger.run():
            ended.append(f"{instance_id}: {event.payload}")
            return

    tasks = [asyncio.ensure_future(wait(instance_id)) for instance_id in ids]
    try:
        await eventually(lambda: len(answered) == len(ids), 30, "every wait's first read")
        before, started = enos_requests(emulator.stats()), time.perf_counter()
        await asyncio.sleep(POKE * INTERVALS)  # the span the rate is measured over (the waits poll meanwhile)
        after, elapsed = enos_requests(emulator.stats()), time.perf_counter() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_shared_session()
    assert not ended, ended[:3]
    return (after - before) * POKE / elapsed


@pytest.mark.parametrize(
    ("setting", "rows", "month"),
    [({"page_cap": 20}, 20, 5), ({"page_cap": 100}, 100, 6), ({"max_page_size": 20}, 20, 7)],
)
async def test_capped_pages_cost_about_the_fewest_pages_that_hold_the_waits(
    emulator, monkeypatch, enos_settings, setting, rows, month
):
    enos_settings(**setting)
    first = dt.datetime(2043, month, 1)  # each case its own instances: a month apart, past the search's margin
    ids = [f"4000-{first + dt.timedelta(seconds=n):%Y%m%d%H%M%S}" for n in range(WAITS)]  # they run for hours

    per_interval = await requests_per_interval(emulator, monkeypatch, ids)
    print(f"{WAITS} waits, {setting}: {per_interval:.1f} requests per interval")

    fewest_pages = math.ceil(WAITS / rows)
    assert per_interval <= 1.2 * fewest_pages + 1, per_interval  # (+1: a page landing either side of a count)
    assert per_interval >= fewest_pages * 0.5  # the waits are being read


async def test_ids_with_12_and_10_digit_times_are_batched_like_14_digit_ones(emulator, monkeypatch, enos_settings):
    # Vendor samples write the time part with 12 or 10 digits too (2438-201907261239, 13774-2022031400).
    enos_settings(page_cap=20)
    first = dt.datetime(2044, 2, 1)
    ids = [f"4000-{first + dt.timedelta(minutes=n):%Y%m%d%H%M}" for n in range(WAITS // 2)]
    ids += [f"4000-{first + dt.timedelta(days=3, hours=n):%Y%m%d%H}" for n in range(WAITS // 2)]

    per_interval = await requests_per_interval(emulator, monkeypatch, ids)

    fewest_pages = math.ceil(WAITS / 20)
    assert per_interval <= 1.2 * fewest_pages + 1, per_interval  # not one read per wait
    assert per_interval >= fewest_pages * 0.5
