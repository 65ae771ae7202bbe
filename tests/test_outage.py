"""Waits that outlive their platform going away: the trigger keeps polling, and a rebuilt trigger carries on.

The outage tests run the emulator in a separate process (EmulatorProcess), stop it while a trigger polls,
and start a new one on the same port a few seconds later. The new process knows none of the old tokens
(the first call after the outage is refused and the token renewed) and recreates the periodic EnOS
instance when it is asked for, so the wait ends in success only if polling carried on after the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest

try:  # Airflow 3.2+
    from airflow.sdk._shared.module_loading import import_string
except ImportError:  # Airflow 3.1
    from airflow.utils.module_loading import import_string

from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess
from airflow_provider_flowinst.testing.emulator.server import free_port
from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.dags import outage_dags
from tests.helpers import eventually, run_dag, wait_for

OUTAGE_SECONDS = 3.0
OUTAGE_CONN_ID = "enos_batch_outage"


def instance_reads(requests: dict[str, int]) -> int:
    """EnOS flow instance reads in an emulator's request counts (one by one, or several in a search)."""
    return sum(count for key, count in requests.items() if key.startswith("enos_batch ") and "flowInstances" in key)


class RestartableEmulator:
    """An emulator process that can be stopped and started again on the same port."""

    def __init__(self, time_scale: float) -> None:
        self.port = free_port("127.0.0.1")
        self.time_scale = time_scale
        self.process: EmulatorProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RestartableEmulator:
        self.process = EmulatorProcess(self.port, extra_args=("--time-scale", str(self.time_scale))).start()
        self.starts += 1
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def instance_polls(self) -> int:
        """Reads of flow instances the running process has answered (0 while it is down)."""
        if self.process is None:
            return 0
        return instance_reads(self.process.stats()["requests"])

    def connect(self, monkeypatch: pytest.MonkeyPatch, **extra: object) -> None:
        spec = emulator_connection_specs(self.url)["enos_batch_default"]
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{OUTAGE_CONN_ID.upper()}", json.dumps({**spec, "extra": {**spec["extra"], **extra}})
        )


@pytest.fixture
def outage_emulator() -> Iterator[RestartableEmulator]:
    emulator = RestartableEmulator(time_scale=0.5).start()
    try:
        yield emulator
    finally:
        emulator.stop()


async def first_event(trigger: FlowInstanceTrigger) -> dict:
    try:
        async for event in trigger.run():
            return event.payload
    finally:
        await close_shared_session()
    raise AssertionError("the trigger ended without an event")


# -- the trigger through an outage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who_retries", "extra", "log_line"),
    [
        # Default connection settings: the transport's backoff (0.5, 1, 2, 4... s) bridges the outage in one poll.
        ("transport", {}, "Transient fault (ConnectFailed: ConnectionRefusedError"),
        # Quick retries: whole polls fail; the trigger counts them and keeps polling.
        ("trigger", {"max_retries": 1, "retry_max_wait": 0.05, "read_timeout": 1}, "Poll 1 failed"),
    ],
)
async def test_a_trigger_polling_through_an_outage_still_succeeds(
    outage_emulator, monkeypatch, caplog, capsys, who_retries, extra, log_line
):
    outage_emulator.connect(monkeypatch, **extra)
    instance_id = "2809-20350401000000"
    caplog.set_level(logging.INFO)
    waiting = asyncio.create_task(
        # Enough failed polls allowed to outlast the outage and a slow restart on a loaded machine.
        first_event(
            FlowInstanceTrigger(
                conn_id=OUTAGE_CONN_ID, instance_id=instance_id, poke_interval=0.5, max_consecutive_failures=100
            )
        )
    )

    await eventually(lambda: asyncio.to_thread(outage_emulator.instance_polls), what="a first poll")
    await asyncio.to_thread(outage_emulator.stop)
    await asyncio.sleep(OUTAGE_SECONDS)
    assert not waiting.done()
    await asyncio.to_thread(outage_emulator.start)
    event = await asyncio.wait_for(waiting, timeout=60)

    assert event["status"] == "success", event
    assert event["instance"]["instance_id"] == instance_id
    assert outage_emulator.instance_polls() >= 1  # the new process was polled: the wait carried on
    assert log_line in caplog.text + capsys.readouterr().out  # the outage was met, and survived


# -- a trigger rebuilt from serialize() ----------------------------------------------------------------


def rebuilt(trigger: FlowInstanceTrigger) -> FlowInstanceTrigger:
    """The trigger as another triggerer builds it: from the stored classpath and JSON kwargs."""
    classpath, kwargs = trigger.serialize()
    stored = json.loads(json.dumps(kwargs))
    again = import_string(classpath)(**stored)
    assert again.serialize() == (classpath, kwargs)
    return again


async def run_for_a_while(trigger: FlowInstanceTrigger, emulator, polls: int) -> None:
    """Run the trigger until it has polled ``polls`` times, then stop it as a triggerer shutting down does."""
    before = instance_reads(emulator.stats()["requests"])
    task = asyncio.create_task(first_event(trigger))
    await eventually(
        lambda: asyncio.to_thread(lambda: instance_reads(emulator.stats()["requests"]) >= before + polls),
        what=f"{polls} polls",
    )
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_trigger_rebuilt_from_serialize_carries_on_to_success(emulator):
    # 5 s of wall time in all: long enough that a loaded machine sees the original's two polls before it ends
    # (1.5 s was not: the original had already fired), short enough for the rebuilt trigger to see it end.
    instance_id = emulator.create_enos_batch_instance(
        "2809", "2809-20350501000000", queued_seconds=10, running_seconds=40
    )
    original = FlowInstanceTrigger(
        conn_id="enos_batch_default", instance_id=instance_id, poke_interval=0.2, end_time=time.time() + 60
    )

    await run_for_a_while(original, emulator, polls=2)
    event = await asyncio.wait_for(first_event(rebuilt(original)), timeout=30)

    assert event["status"] == "success"
    assert event["instance"]["instance_id"] == instance_id
    assert event["instance"]["graph"]["nodes"]


async def test_a_rebuilt_trigger_keeps_the_deadline_of_the_original(emulator):
    # 4000 runs for hours, from the start (not queued first, however late the first poll comes on a loaded
    # machine): only the deadline can end this wait. It passes while the trigger moves.
    instance_id = emulator.create_enos_batch_instance("4000", "4000-20350501000000", queued_seconds=0)
    original = FlowInstanceTrigger(
        conn_id="enos_batch_default",
        instance_id=instance_id,
        poke_interval=0.2,
        end_time=time.time() + 1.0,
    )

    await run_for_a_while(original, emulator, polls=1)
    await asyncio.sleep(max(0.0, (original.end_time or 0) - time.time()))
    started = time.monotonic()
    event = await asyncio.wait_for(first_event(rebuilt(original)), timeout=30)

    assert event["status"] == "timeout"
    assert "last seen running" in event["message"]
    assert time.monotonic() - started < 5.0  # at once (a poll would go on until the 30 s guard), with a margin


# -- a whole deferrable task through an outage -----------------------------------------------------------


def test_a_deferrable_sensor_succeeds_although_its_platform_goes_away(monkeypatch):
    # Emulated time at wall speed: the remote run takes 6 s, so it is still running when the outage begins.
    emulator = RestartableEmulator(time_scale=1.0).start()
    emulator.connect(monkeypatch)  # the connection's default retry settings
    failures: list[BaseException] = []

    def outage() -> None:
        try:
            # One look by the task itself, then the trigger's first poll: the task has deferred.
            wait_for(lambda: emulator.instance_polls() >= 2, 60, "the deferred wait's first poll")
            emulator.stop()
            time.sleep(OUTAGE_SECONDS)
            emulator.start()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    try:
        result = run_dag(outage_dags.dag)
        thread.join(timeout=60)
        polls_after_outage = emulator.instance_polls()
    finally:
        emulator.stop()

    assert failures == []
    assert emulator.starts == 2
    assert result.task_states["wait"] == "success"
    instance = result.xcom("wait")
    assert (instance["instance_id"], instance["state"]) == (f"2809-{result.logical_date:%Y%m%d%H%M%S}", "success")
    assert polls_after_outage >= 1
