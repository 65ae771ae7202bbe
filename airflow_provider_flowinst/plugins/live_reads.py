"""The Remote graph tab's live reads: a short budget, one read per run at a time, a small cache.

A page load must not wait a task's worst case (minutes of retries) nor hold the api-server's threads, and
many viewers of one run must not each call the platform. So a live read:

- runs on the api-server's event loop over the async transport (aiohttp), within ``READ_BUDGET_SECONDS``
  in all (login, one retry and the connection lookup included), with the hook's transport held to the
  tab's own settings (``TAB_CALLS``) rather than the connection's task settings;
- is shared: concurrent loads of the same (connection, instance) await the one read in flight;
- is remembered: a result for ``RESULT_SECONDS``, a failure for ``FAILURE_SECONDS``, in a cache bounded
  in entries and in graph items (nodes + edges) so a few huge graphs cannot fill the api-server's memory.

A failure shows the page a plain sentence; what failed (host, path, the platform's message, with the
connection's secrets redacted) goes to the api-server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowinst.redaction import connection_secrets, redact
from airflow_provider_flowinst.transport import shared_session_lease

log = logging.getLogger(__name__)

#: A read's whole time: the connection lookup, login, the call and its one retry.
READ_BUDGET_SECONDS = 8.0
#: What the tab's calls may spend (each the smaller of this and the connection's own setting).
TAB_CALLS: dict[str, Any] = {
    "connect_timeout": 3.0,
    "read_timeout": 5.0,
    "max_retries": 1,
    "retry_max_wait": 1.0,
    "max_response_bytes": 8 * 1024 * 1024,
}
#: Closing the hook (an LSF logout) gets this long after the read.
CLOSE_SECONDS = 2.0
RESULT_SECONDS = 10.0
FAILURE_SECONDS = 5.0
CACHE_ENTRIES = 64
#: Nodes + edges held by the cache in all; a larger graph is shared while in flight but not kept.
CACHE_GRAPH_ITEMS = 50_000

Key = tuple[str, str]  # (conn_id, instance_id)
Reader = Callable[[str, str], Awaitable[dict[str, Any]]]


class LiveReadFailed(Exception):
    """The platform could not be read (the details are in the api-server's log)."""


@dataclass(frozen=True)
class _Entry:
    expires: float
    instance: dict[str, Any] | None  # None: the read failed
    weight: int


def graph_items(instance: dict[str, Any]) -> int:
    graph = instance.get("graph")
    if not isinstance(graph, dict):
        return 1
    return 1 + sum(len(graph.get(key) or ()) for key in ("nodes", "edges"))


async def read_through_hook(conn_id: str, instance_id: str) -> dict[str, Any]:
    """The instance dict, read through the connection's hook held to ``TAB_CALLS``; errors logged, not shown."""
    hook, where = None, "?"
    try:
        hook, where = await asyncio.to_thread(_tab_hook, conn_id)
        async with shared_session_lease():  # a test client's loop may end after the request: close with it
            instance = await hook.aget_instance(instance_id, include_graph=True)
        return dict(instance.to_dict())
    except Exception as exc:
        secrets = connection_secrets(hook) if hook is not None else ()
        log.warning(
            "Remote graph: could not read remote run %s through connection %s (host %s): %s",
            instance_id,
            conn_id,
            where,
            redact(str(exc), secrets),
        )
        raise LiveReadFailed(instance_id) from None
    finally:
        if hook is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hook.aclose(), CLOSE_SECONDS)


def _tab_hook(conn_id: str) -> tuple[Any, str]:
    """The connection's hook held to ``TAB_CALLS``, and where it calls (for the log only)."""
    from airflow.models.connection import Connection

    from airflow_provider_flowinst.hooks import hook_for_connection

    connection = Connection.get_connection_from_secrets(conn_id)
    hook = hook_for_connection(connection)
    hook.limit_calls(**TAB_CALLS)
    return hook, f"{connection.host}" + (f":{connection.port}" if connection.port else "")


class LiveReads:
    """Live reads with single flight and a bounded cache; one per api-server process (``LIVE_READS``)."""

    def __init__(
        self,
        reader: Reader = read_through_hook,
        *,
        budget: float = READ_BUDGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._budget = budget
        self._clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._weight = 0
        # Keyed by loop too: a task can only be awaited on its own loop (the api-server has one; tests more).
        self._in_flight: dict[tuple[asyncio.AbstractEventLoop, Key], asyncio.Task[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    async def read(self, conn_id: str, instance_id: str) -> dict[str, Any]:
        """The instance dict, from the cache, the read in flight or a new read; ``LiveReadFailed`` if not."""
        key = (conn_id, instance_id)
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._fresh(key)
            task = None if entry is not None else self._in_flight.get((loop, key))
            if entry is None and task is None:
                task = loop.create_task(self._read(key))
                self._in_flight[(loop, key)] = task
                task.add_done_callback(lambda done: self._finished(loop, key, done))
        if task is None:
            assert entry is not None
            if entry.instance is None:
                raise LiveReadFailed(instance_id)
            return entry.instance
        # Shielded: a viewer who leaves does not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _read(self, key: Key) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._reader(*key), self._budget)
        except asyncio.TimeoutError:
            log.warning("Remote graph: reading remote run %s through %s took over %s s", key[1], key[0], self._budget)
            raise LiveReadFailed(key[1]) from None

    def _finished(self, loop: asyncio.AbstractEventLoop, key: Key, task: asyncio.Task[dict[str, Any]]) -> None:
        failed = task.cancelled() or task.exception() is not None
        instance = None if failed else task.result()
        with self._lock:
            self._in_flight.pop((loop, key), None)
            seconds = FAILURE_SECONDS if instance is None else RESULT_SECONDS
            self._store(
                key, _Entry(self._clock() + seconds, instance, 1 if instance is None else graph_items(instance))
            )

    def _fresh(self, key: Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= self._clock():
            self._drop(key)
            return None
        return entry

    def _store(self, key: Key, entry: _Entry) -> None:
        self._drop(key)
        if entry.weight > CACHE_GRAPH_ITEMS:
            return
        self._entries[key] = entry
        self._weight += entry.weight
        while len(self._entries) > CACHE_ENTRIES or self._weight > CACHE_GRAPH_ITEMS:
            self._drop(next(iter(self._entries)))  # the oldest first

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._weight -= entry.weight

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def forget(self, conn_id: str, instance_id: str) -> None:
        """Forget what was read of one run (it just changed: the next page shows it as it is now)."""
        with self._lock:
            self._drop((conn_id, instance_id))

    def clear(self) -> None:
        """Forget every result and failure (reads in flight go on)."""
        with self._lock:
            self._entries.clear()
            self._weight = 0


LIVE_READS = LiveReads()
