"""Batched polling: many waits on one connection share their reads, and each ends with its own instance."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_flowinst.batching import next_tick
from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

POKE = 0.2
#: How long the waits on long runs watch before they time out; the quick runs end on their own state, however
#: slow a loaded machine makes them.
WATCH_SECONDS = 2.0
QUICK_END_SECONDS = 30.0


def test_ticks_align_on_multiples_of_the_interval():
    assert next_tick(60, now=120.0) == 60
    assert next_tick(60, now=150.0) == 30
    assert next_tick(0.5, now=10.2) == pytest.approx(0.3)


def make_instances(emulator, platform: str) -> tuple[list[str], list[str]]:
    """(instances that end soon in success, instances that run for hours)."""
    if platform == "enos_batch":
        # Twice as many waits as elsewhere: EnOS searches once per flow and interval (two flows here), so the
        # savings show clearly above the cost of those searches, however the polls fall on a loaded machine.
        return (
            [f"2809-203301{day:02d}000000" for day in range(1, 13)],
            [f"4000-203301{day:02d}000000" for day in range(1, 17)],
        )
    if platform == "lsf_pm":
        return (
            [emulator.create_lsf_pm_instance("jsmith:flow1") for _ in range(6)],
            [emulator.create_lsf_pm_instance("jsmith:long_flow") for _ in range(8)],
        )
    if platform == "dataworks":
        return (
            [emulator.create_dataworks_instance(1001) for _ in range(6)],
            [emulator.create_dataworks_instance(1003) for _ in range(8)],
        )
    return (
        [emulator.create_enos_bpm_instance("purchaseApproval") for _ in range(6)],
        [emulator.create_enos_bpm_instance("contractReview") for _ in range(8)],
    )


async def first_event(trigger: FlowInstanceTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


@pytest.mark.parametrize("platform", ["enos_batch", "lsf_pm", "dataworks", "enos_bpm"])
async def test_many_waits_share_reads_and_each_ends_with_its_own_instance(emulator, platform):
    quick, long = make_instances(emulator, platform)
    emulator.control("POST", "/_emulator/reset")
    started = time.time()
    triggers = [
        FlowInstanceTrigger(
            conn_id=f"{platform}_default",
            instance_id=instance_id,
            poke_interval=POKE,
            end_time=started + (QUICK_END_SECONDS if instance_id in quick else WATCH_SECONDS),
        )
        for instance_id in quick + long
    ]
    try:
        async with asyncio.timeout(60):
            events = await asyncio.gather(*(first_event(trigger) for trigger in triggers))
    finally:
        await close_shared_session()
    watched = time.time() - started

    assert [event["instance"]["instance_id"] for event in events] == quick + long
    assert [event["status"] for event in events] == ["success"] * len(quick) + ["timeout"] * len(long)
    if platform in ("enos_batch", "dataworks"):  # the graph is read once a wait is decided
        assert all(event["instance"]["graph"]["nodes"] for event in events[: len(quick)])
    # Against the time the waits really took: a loaded machine polls longer, not more often.
    one_read_per_wait_per_poll = len(triggers) * watched / POKE
    requests = sum(emulator.stats()["requests"].values())
    assert requests < one_read_per_wait_per_poll / 2, emulator.stats()["requests"]
