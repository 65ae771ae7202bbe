"""The Remote graph tab's live reads: a short budget, one read per run at a time, a small bounded cache."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from airflow_provider_flowinst.plugins import live_reads
from airflow_provider_flowinst.plugins.live_reads import LiveReadFailed, LiveReads, read_through_hook
from tests.helpers import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def instance(instance_id: str, nodes: int = 1) -> dict:
    return {"instance_id": instance_id, "graph": {"nodes": [{"id": str(i)} for i in range(nodes)], "edges": []}}


class CountingReader:
    """Answers after ``delay`` seconds (or fails), counting its calls."""

    def __init__(self, delay: float = 0.0, fail: bool = False, nodes: int = 1) -> None:
        self.calls: list[tuple[str, str]] = []
        self.delay, self.fail, self.nodes = delay, fail, nodes

    async def __call__(self, conn_id: str, instance_id: str) -> dict:
        self.calls.append((conn_id, instance_id))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise LiveReadFailed(instance_id)
        return instance(instance_id, self.nodes)


def test_concurrent_loads_of_one_run_share_one_read():
    reader = CountingReader(delay=0.2)
    reads = LiveReads(reader)

    async def many() -> list[dict]:
        return await asyncio.gather(*(reads.read("conn", "run-1") for _ in range(20)))

    results = asyncio.run(many())

    assert reader.calls == [("conn", "run-1")]
    assert all(result["instance_id"] == "run-1" for result in results)


def test_a_result_is_kept_briefly_then_read_again():
    reader, clock = CountingReader(), Clock()
    reads = LiveReads(reader, clock=clock)

    asyncio.run(reads.read("conn", "run-1"))
    clock.now += live_reads.RESULT_SECONDS - 1
    asyncio.run(reads.read("conn", "run-1"))
    clock.now += 2
    asyncio.run(reads.read("conn", "run-1"))

    assert len(reader.calls) == 2


def test_a_failure_is_remembered_briefly():
    reader, clock = CountingReader(fail=True), Clock()
    reads = LiveReads(reader, clock=clock)

    for _ in range(3):
        with pytest.raises(LiveReadFailed):
            asyncio.run(reads.read("conn", "run-1"))
    clock.now += live_reads.FAILURE_SECONDS + 0.1
    with pytest.raises(LiveReadFailed):
        asyncio.run(reads.read("conn", "run-1"))

    assert len(reader.calls) == 2


def test_a_read_past_its_budget_fails_at_the_budget(caplog):
    reads = LiveReads(CountingReader(delay=30), budget=0.3)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(LiveReadFailed):
        asyncio.run(reads.read("conn", "run-1"))

    assert time.monotonic() - started < 5
    assert "took over 0.3 s" in caplog.text


def test_a_viewer_who_leaves_does_not_cancel_the_read_others_wait_for():
    reader = CountingReader(delay=0.2)
    reads = LiveReads(reader)

    async def one_leaves() -> dict:
        leaving = asyncio.ensure_future(reads.read("conn", "run-1"))
        staying = asyncio.ensure_future(reads.read("conn", "run-1"))
        await eventually(lambda: reader.calls, 5, "the shared read to begin")  # both viewers are in it
        leaving.cancel()
        return await staying

    assert asyncio.run(one_leaves())["instance_id"] == "run-1"
    assert len(reader.calls) == 1


def test_the_cache_is_bounded_in_entries_and_graph_items():
    reads = LiveReads(CountingReader())
    for index in range(live_reads.CACHE_ENTRIES + 10):
        asyncio.run(reads.read("conn", f"run-{index}"))
    assert len(reads) == live_reads.CACHE_ENTRIES

    big = LiveReads(CountingReader(nodes=live_reads.CACHE_GRAPH_ITEMS // 3))
    for index in range(5):
        asyncio.run(big.read("conn", f"run-{index}"))
    assert len(big) == 2  # three would hold more graph items than the cache may

    huge = LiveReads(CountingReader(nodes=live_reads.CACHE_GRAPH_ITEMS + 1))
    asyncio.run(huge.read("conn", "run-1"))
    assert len(huge) == 0


def test_a_platform_that_does_not_answer_costs_the_tab_its_budget_and_one_retry(emulator, caplog):
    emulator.inject_fault("timeout", platform="enos_batch", count=10, delay=10)
    reads = LiveReads(read_through_hook)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(LiveReadFailed):
        asyncio.run(reads.read("enos_batch_default", "2809-20240101000000"))
    elapsed = time.monotonic() - started

    # The connection's task settings would wait 60 s a try, five retries; the tab stops at its budget.
    assert elapsed < live_reads.READ_BUDGET_SECONDS + 3
    assert emulator.stats()["requests"].get("enos_batch fault: timeout", 0) <= 2
    assert "2809-20240101000000" in caplog.text


def test_a_live_read_through_the_connection_returns_the_instance_dict(emulator):
    emulator.create_enos_batch_instance("2809", instance_id="2809-20240202000000", running_seconds=3600)

    found = asyncio.run(LiveReads(read_through_hook).read("enos_batch_default", "2809-20240202000000"))

    assert found["instance_id"] == "2809-20240202000000"
    assert found["state"] in ("queued", "running")
    assert found["graph"]["nodes"]


PASSWORD = "pa ss/w+rd&secret"


class EchoingHook:
    """A hook whose platform echoes the request it refused, the password percent-encoded and base64-encoded
    in it (as a query string and a Basic-style header would carry it)."""

    class _connection:  # what ``redaction.connection_secrets`` reads of a hook
        password = PASSWORD
        extra = None

    async def aget_instance(self, instance_id: str, *, include_graph: bool = True) -> dict:
        from base64 import b64encode
        from urllib.parse import quote

        from airflow_provider_flowinst.errors import FlowPlatformError

        echoed = f"refused ?password={quote(PASSWORD, safe='')} auth={b64encode(PASSWORD.encode()).decode()}"
        raise FlowPlatformError("enos_batch", "Get Flow Instance", echoed)

    async def aclose(self) -> None:
        pass


def test_a_failed_live_read_logs_no_encoded_form_of_the_connections_secret(monkeypatch, caplog):
    from base64 import b64encode
    from urllib.parse import quote

    monkeypatch.setattr(live_reads, "_tab_hook", lambda conn_id: (EchoingHook(), "example.com"))

    with caplog.at_level(logging.WARNING), pytest.raises(LiveReadFailed):
        asyncio.run(read_through_hook("enos_batch_default", "run-1"))

    assert "Get Flow Instance" in caplog.text
    assert quote(PASSWORD, safe="") not in caplog.text
    assert b64encode(PASSWORD.encode()).decode() not in caplog.text
    assert "password=*** auth=***" in caplog.text
