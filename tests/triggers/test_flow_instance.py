"""FlowInstanceTrigger.run() against the emulator, exactly as the triggerer drives it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_flowinst.testing.emulator.credentials import ENOS_APP_SECRET
from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.helpers import quick_retry_connection


async def first_event(trigger: FlowInstanceTrigger, timeout: float = 30.0) -> dict:
    """The single event's payload, as the triggerer would receive it."""
    return (await first_event_of(trigger, timeout)).payload


async def first_event_of(trigger: FlowInstanceTrigger, timeout: float = 30.0) -> TriggerEvent:
    """The single event the trigger yields."""
    try:
        async with asyncio.timeout(timeout):
            async for event in trigger.run():
                return event
    finally:
        await close_shared_session()
    raise AssertionError("the trigger ended without an event")


def trigger(instance_id: str, **kwargs) -> FlowInstanceTrigger:
    return FlowInstanceTrigger(
        conn_id="enos_batch_default", instance_id=instance_id, **{"poke_interval": 0.1, **kwargs}
    )


async def test_success_event_carries_the_instance_dict(emulator):
    event = await first_event(trigger("2809-20310101000000"))

    assert event["status"] == "success"
    assert event["instance"]["state"] == "success"
    assert event["instance"]["graph"]["nodes"]
    assert event["message"] == "enos_batch instance 2809-20310101000000 reached success"


async def test_failure_event_for_a_failure_state(emulator):
    event = await first_event(trigger("3257-20310101000000"))

    assert event["status"] == "failure"
    assert event["instance"]["raw_state"] == "FAIL"


async def test_timeout_event_when_end_time_passes(emulator):
    # Flow 4000 runs for hours: queued for 0.2 s, then running.
    event = await first_event(trigger("4000-20310101000000", end_time=time.time() + 1.5))

    assert event["status"] == "timeout"
    assert event["instance"]["instance_id"] == "4000-20310101000000"
    assert event["instance"]["state"] in ("queued", "running")
    assert f"last seen {event['instance']['state']}" in event["message"]


async def test_a_read_still_going_on_at_end_time_is_cut_one_attempt_after_it(emulator, monkeypatch):
    # Every attempt hangs until its 1 s read timeout: a call of 6 attempts lasts over 6 s, but the wait ends
    # at end_time + one attempt (connect_timeout + read_timeout = 2 s), as a sensor's deferral timeout expects.
    emulator.inject_fault("timeout", platform="enos_batch", count=50, delay=5)
    conn_id = quick_retry_connection(monkeypatch, emulator.url, max_retries=5, connect_timeout=1)
    started = time.monotonic()

    event = await first_event(
        FlowInstanceTrigger(
            conn_id=conn_id, instance_id="4000-20310101000000", poke_interval=0.1, end_time=time.time() + 0.5
        )
    )

    assert event["status"] == "timeout"
    assert time.monotonic() - started < 4.5


async def test_a_missing_instance_is_waited_for(emulator):
    emulator.create_enos_batch_instance("2515", "2515-20310101000000", appear_after=5)

    event = await first_event(trigger("2515-20310101000000"))

    assert event["status"] == "success"


async def test_a_missing_instance_with_fail_if_missing_is_an_error_event(emulator):
    event = await first_event(trigger("9999-20310101000000", fail_if_missing=True))

    assert event["status"] == "error"
    assert "fail_if_missing" in event["message"]
    assert event["instance"] is None


async def test_transient_faults_do_not_end_the_wait(emulator, monkeypatch):
    # More faults than one call's retries: whole polls fail (3 attempts each), and the trigger keeps polling.
    emulator.inject_fault("503", platform="enos_batch", count=14)
    conn_id = quick_retry_connection(monkeypatch, emulator.url)

    event = await first_event(
        FlowInstanceTrigger(conn_id=conn_id, instance_id="2809-20310102000000", poke_interval=0.1)
    )

    assert event["status"] == "success"


async def test_too_many_failed_polls_in_a_row_end_with_an_error_event(emulator, monkeypatch):
    emulator.inject_fault("503", platform="enos_batch", count=1000)
    conn_id = quick_retry_connection(monkeypatch, emulator.url)

    event = await first_event(
        FlowInstanceTrigger(
            conn_id=conn_id, instance_id="2809-20310103000000", poke_interval=0.1, max_consecutive_failures=3
        )
    )

    assert event["status"] == "error"
    assert "3 polls in a row failed" in event["message"]
    assert "HTTP 503" in event["message"]


async def test_a_poll_the_platform_refuses_ends_the_wait_as_a_permanent_error(emulator):
    emulator.inject_fault("403", platform="enos_batch", count=1, path_contains="flowInstances")

    event = await first_event(trigger("4000-20310101000000"))

    assert (event["status"], event["permanent"]) == ("error", True)
    assert "HTTP 403" in event["message"]


async def test_an_unknown_connection_is_an_error_event_not_a_crash(emulator):
    event = await first_event(
        FlowInstanceTrigger(conn_id="no_such_connection", instance_id="2809-20310101000000", poke_interval=0.1)
    )

    assert event["status"] == "error"
    assert "no_such_connection" in event["message"]


def test_serialised_kwargs_are_ids_and_settings_and_rebuild_the_same_trigger():
    original = trigger("2809-20310101000000", end_time=1234.5, success_states=["success", "skipped"])
    classpath, kwargs = original.serialize()

    assert classpath == "airflow_provider_flowinst.triggers.flow_instance.FlowInstanceTrigger"
    assert kwargs == {
        "conn_id": "enos_batch_default",
        "instance_id": "2809-20310101000000",
        "success_states": ["success", "skipped"],
        "failure_states": ["failed", "cancelled"],
        "include_graph": True,
        "fail_if_missing": False,
        "poke_interval": 0.1,
        "end_time": 1234.5,
        "max_consecutive_failures": 10,
        "cancel_on_kill": False,
        "end_time_limit": "timeout",
        "timeout_seconds": None,
        "end_from_trigger": False,
    }
    assert FlowInstanceTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert ENOS_APP_SECRET not in json.dumps(kwargs)


def test_unknown_states_are_refused():
    with pytest.raises(ValueError, match="failure_states"):
        trigger("x", failure_states=["exploded"])
