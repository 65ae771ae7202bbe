"""One poller per connection and event loop: the waits of a triggerer share their reads of the platform.

Every FlowInstanceTrigger on a connection asks its poller for its instance. Reads asked for within a short
window are answered together: with a few waits, each is read on its own; with many, one platform list call
(``batch_instances``: DataWorks by ``Ids``, LSF by state, EnOS by status, BPM by ``processStatus``) answers
most of them, and only the rest (instances that have just ended, or were never seen) are read one by one.
Where a graph costs no extra request, those single reads take it, so a wait that is then decided does not read
its instance a second time for the graph.
Triggers poll on ticks aligned to their interval, so the waits of a triggerer poll together.

The poller holds nothing but the reads in flight, in this process: it works the same with one triggerer or
several, and with any executor. What a platform needs to list an instance (DataWorks: its workspace and data
timestamp) the hook's platform client remembers from its own reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_flowinst.hooks import aget_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.models import FlowInstance

log = logging.getLogger(__name__)

#: Reads asked for within this many seconds are answered together.
COALESCE_WINDOW_SECONDS = 0.05
#: Below this many waits in a window, single reads are cheaper than a listing.
BATCH_THRESHOLD = 8
#: Single reads in flight at once per connection.
MAX_CONCURRENT_READS = 32


def next_tick(interval: float, now: float | None = None) -> float:
    """Seconds until the next multiple of ``interval`` (epoch time): waits with one interval poll together."""
    now = time.time() if now is None else now
    return interval - (now % interval) if interval > 0 else 0.0


class InstancePoller:
    """Coalesces the instance reads of every wait on one connection in one event loop."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._hook: FlowPlatformHook[Any] | None = None
        self.users = 0
        self._pending: dict[str, list[asyncio.Future[FlowInstance]]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._reads = asyncio.Semaphore(MAX_CONCURRENT_READS)
        #: One batch read in flight at a time (see ``_flush_soon``).
        self._reading = asyncio.Lock()
        #: Instances the latest batch read with their graph, for their waits' ``get_full`` (only the latest
        #: batch's: a wait asks right after its poll, and nothing is held for waits that never ask).
        self._with_graph: dict[str, FlowInstance] = {}

    async def get(self, instance_id: str) -> FlowInstance:
        """The instance's current state (without its graph)."""
        self._with_graph.pop(instance_id, None)  # an earlier poll's read is stale now
        if self.users <= 1 and not self._pending:
            # A lone wait has nothing to share: no coalescing window, no extra wake-up.
            return await self._read_one(instance_id)
        future: asyncio.Future[FlowInstance] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(instance_id, []).append(future)
        if self._flush is None:
            self._flush = asyncio.create_task(self._flush_soon())
        return await future

    async def hook(self) -> FlowPlatformHook[Any]:
        """The connection's hook, made at the first read (so a bad connection fails the read, not the wait)."""
        if self._hook is None:
            self._hook = await aget_hook(self.conn_id)
        return self._hook

    async def get_full(self, instance_id: str) -> FlowInstance:
        """The instance with its graph: read once, when a wait is decided (by the poll that decided it, if that
        read took the graph)."""
        read = self._with_graph.pop(instance_id, None)
        if read is not None:
            return read
        hook = await self.hook()
        return await hook.aget_instance(instance_id, include_graph=True)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(COALESCE_WINDOW_SECONDS)
        # One batch read in flight at a time: reads asked for while one goes on gather and go out together when
        # it ends. Otherwise a burst of first reads (a triggerer starting a thousand waits over some seconds) is a
        # whole listing every coalescing window, each paging through every running instance of the flow.
        async with self._reading:
            batch, self._pending, self._flush = self._pending, {}, None
            try:
                outcomes = await self._read(list(batch))
            except BaseException as exc:  # no waiter may be left hanging, whatever happened
                outcomes = dict.fromkeys(batch, exc)
                if not isinstance(exc, Exception):
                    self._settle(batch, outcomes)
                    raise
            self._settle(batch, outcomes)

    def _settle(
        self, batch: dict[str, list[asyncio.Future[FlowInstance]]], outcomes: dict[str, FlowInstance | BaseException]
    ) -> None:
        for instance_id, futures in batch.items():
            outcome = outcomes[instance_id]
            for future in futures:
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _read(self, ids: list[str]) -> dict[str, FlowInstance | BaseException]:
        found: dict[str, FlowInstance] = {}
        listed = False
        if len(ids) >= BATCH_THRESHOLD:
            try:
                found = await (await self.hook()).abatch_instances(ids)
                listed = True
            except Exception as exc:  # the single reads below still answer every wait
                log.warning("A batched read of %d instances failed (%s); reading them one by one", len(ids), exc)
        rest = [instance_id for instance_id in ids if instance_id not in found]
        # Missing from a listing of the instances not yet ended: most of these have just ended, and their waits
        # will want the graph. Where it comes in the same answer, take it now.
        with_graph = listed and bool(rest) and getattr((await self.hook()).client, "graph_in_one_read", False)
        results = await asyncio.gather(
            *(self._read_one(instance_id, include_graph=with_graph) for instance_id in rest), return_exceptions=True
        )
        self._with_graph = {
            instance_id: result
            for instance_id, result in zip(rest, results, strict=True)
            if with_graph and isinstance(result, FlowInstance)
        }
        answers = dict(zip(rest, results, strict=True))
        for instance_id, instance in self._with_graph.items():  # the poll answers as always: without the graph
            answers[instance_id] = dataclasses.replace(instance, graph=None)
        return {**found, **answers}

    async def _read_one(self, instance_id: str, include_graph: bool = False) -> FlowInstance:
        async with self._reads:
            hook = await self.hook()
            return await hook.aget_instance(instance_id, include_graph=include_graph)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, InstancePoller]] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def instance_poller(conn_id: str) -> AsyncIterator[InstancePoller]:
    """This loop's poller for ``conn_id``, shared while any wait uses it and dropped after the last one."""
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(conn_id)
    if poller is None:
        poller = pollers[conn_id] = InstancePoller(conn_id)
    poller.users += 1
    try:
        yield poller
    finally:
        poller.users -= 1
        if poller.users == 0 and pollers.get(conn_id) is poller:
            del pollers[conn_id]
            if poller._hook is not None:  # the last wait on the connection: end its session (LSF logs out)
                await poller._hook.aclose()
