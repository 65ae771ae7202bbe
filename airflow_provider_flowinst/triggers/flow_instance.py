"""Deferrable waits on remote instances, run by Airflow's triggerer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_flowinst.batching import InstancePoller, instance_poller, next_tick
from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.hooks import aget_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.models import XCOM_URL_KEY, FlowInstance, FlowState
from airflow_provider_flowinst.transport import shared_session_lease
from airflow_provider_flowinst.waits import (
    DEFAULT_FAILURE_STATES,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_SUCCESS_STATES,
    LIMITS,
    Deadline,
    Limit,
    Verdict,
    WaitEvent,
    WaitSettings,
    WaitsOn,
    Watch,
    describe,
    read_cutoff,
)

log = logging.getLogger(__name__)
#: ``asyncio.timeout`` (Python 3.11+), else None: ``asyncio.wait_for`` then, which runs the read as a task.
_timeout: Callable[[float | None], AbstractAsyncContextManager[Any]] | None = getattr(asyncio, "timeout", None)

DEFAULT_POKE_INTERVAL = 60.0


class FlowInstanceTrigger(WaitsOn, BaseTrigger):
    """Polls one remote instance until it reaches a success or failure state, or ``end_time`` passes.

    It yields a single event ``{"status": "success" | "failure" | "timeout" | "error", "instance": dict or
    None, "message": str}`` (a ``waits.WaitEvent``'s dict), judged as a sensor's poke judges (``waits.judge``).
    A ``timeout`` event also says which limit ``end_time`` stands for (``"limit"``: ``end_time_limit``, the
    task's own ``timeout`` or its try's ``execution_timeout``).
    Transient platform faults are retried by the transport; only ``max_consecutive_failures`` polls failing
    in a row end the wait with an ``error`` event, so a passing outage never fails a long wait. Its
    serialised kwargs are ids and settings, never a secret.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        instance_id: str,
        success_states: Iterable[str] = DEFAULT_SUCCESS_STATES,
        failure_states: Iterable[str] = DEFAULT_FAILURE_STATES,
        include_graph: bool = True,
        fail_if_missing: bool = False,
        poke_interval: float = DEFAULT_POKE_INTERVAL,
        end_time: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        cancel_on_kill: bool = False,
        end_time_limit: Limit = "timeout",
        timeout_seconds: float | None = None,
        end_from_trigger: bool = False,
    ) -> None:
        super().__init__()
        if end_time_limit not in LIMITS:
            raise ValueError(f"end_time_limit must be one of {', '.join(LIMITS)}, got {end_time_limit!r}")
        self.conn_id = conn_id
        self.instance_id = instance_id
        self.wait_settings = WaitSettings.of(
            success_states, failure_states, include_graph, fail_if_missing, max_consecutive_failures
        )
        self.poke_interval = float(poke_interval)
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.end_time_limit = end_time_limit
        # A trigger started by the scheduler (start_from_trigger) knows no end_time yet: it counts from its start.
        self.timeout_seconds = None if timeout_seconds is None else float(timeout_seconds)
        self.end_from_trigger = end_from_trigger
        self._attempt_seconds: float | None = None  # the connection's, once its hook is made

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "instance_id": self.instance_id,
                **self.wait_settings.to_kwargs(),
                "poke_interval": self.poke_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "end_time_limit": self.end_time_limit,
                "timeout_seconds": self.timeout_seconds,
                "end_from_trigger": self.end_from_trigger,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.end_time is None and self.timeout_seconds is not None:
            self.end_time = time.time() + self.timeout_seconds
        async with shared_session_lease(), instance_poller(self.conn_id) as poller:
            async for event in self._poll(poller):
                yield await self._ending_the_task(event, poller)
                return

    async def _ending_the_task(self, event: TriggerEvent, poller: InstancePoller) -> TriggerEvent:
        """With ``end_from_trigger``, a success ends the task here with the XComs a worker would have pushed
        (the instance dict, the console link's URL): no worker is started for it. Anything else resumes the
        task, whose ``execute_complete`` fails it as any deferred wait's."""
        payload = event.payload
        if not self.end_from_trigger or not isinstance(payload, dict) or payload.get("status") != "success":
            return event
        from airflow.triggers.base import TaskSuccessEvent  # Airflow 3.3+, the only release that starts here

        xcoms = {
            "return_value": payload["instance"],
            XCOM_URL_KEY: (await poller.hook()).client.instance_url(self.instance_id),
        }
        self.log.info("%s", payload.get("message"))
        # Pushed as a worker pushes them (the task SDK's XCom, through the execution API): Airflow 3.3.2 stores
        # a TaskSuccessEvent's own xcoms as JSON text, so a downstream task would pull a str, not the dict.
        ti = self.task_instance
        if ti is not None:
            try:
                from airflow.sdk.execution_time.xcom import XCom

                for key, value in xcoms.items():
                    await XCom.aset(
                        key, value, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index
                    )
            except Exception as exc:
                self.log.warning("Could not push the XComs as a worker does (%s); the event carries them", exc)
            else:
                return TaskSuccessEvent()
        return TaskSuccessEvent(xcoms=xcoms)

    def watch(self) -> Watch:
        """What this trigger waits for; its count of failed polls starts at zero in each run."""
        return self.wait_settings.watch(self.instance_id)

    @classmethod
    def waiting_on(
        cls,
        settings: WaitSettings,
        instance_id: str,
        *,
        conn_id: str,
        poke_interval: float,
        ends: Deadline | None,
        cancel_on_kill: bool = False,
    ) -> FlowInstanceTrigger:
        """The trigger a sensor or an operator defers to: the same wait, carried on in the triggerer until
        ``ends`` (None: a trigger the scheduler starts, which counts its own timeout)."""
        return cls(
            conn_id=conn_id,
            instance_id=instance_id,
            poke_interval=poke_interval,
            end_time=None if ends is None else ends.end_time,
            end_time_limit="timeout" if ends is None else ends.limit,
            cancel_on_kill=cancel_on_kill,
            **settings.to_kwargs(),
        )

    async def _poll(self, poller: InstancePoller) -> AsyncIterator[TriggerEvent]:
        watch = self.watch()
        last: FlowInstance | None = None
        reported: tuple[FlowState, str | None] | None = None
        judged: tuple[FlowInstance, Verdict] | None = None
        while True:
            try:
                # A light read, shared with the connection's other waits; the graph only once it is decided.
                read = poller.get(self.instance_id)
                last = await (read if self.end_time is None else self._by_end_time(poller, read))
                if judged is not None and judged[0] is last:
                    # The very instance of the last poll (a client reuses what an unchanged answer made).
                    watch.failures.reset()
                    verdict = judged[1]
                else:
                    verdict = watch.seen(last)
                judged = (last, verdict)
                if self.include_graph and verdict.done:
                    last = await self._by_end_time(poller, poller.get_full(self.instance_id))
                    verdict = watch.seen(last)
            except FlowPlatformError as exc:
                verdict = watch.failed(exc, self.log, last)
            except Exception as exc:  # never let a trigger die with a bare traceback: report it as an event
                unexpected = f"unexpected {type(exc).__name__} while polling: {exc}"
                verdict = Verdict("error", last, unexpected)
            else:
                # Each change of state is logged; a wait that goes on unchanged is not (thousands poll at once).
                if not verdict.done and (last.state, last.raw_state) != reported:
                    reported = (last.state, last.raw_state)
                    self.log.info("%s", verdict.message)
            if verdict.done:
                yield _event(verdict.event())
                return
            remaining = None if self.end_time is None else self.end_time - time.time()
            if remaining is not None and remaining <= 0:
                yield _event(WaitEvent.timed_out(self.instance_id, last, self.end_time_limit))
                return
            pause = next_tick(self.poke_interval)
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))

    async def _by_end_time(self, poller: InstancePoller, read: Awaitable[FlowInstance]) -> FlowInstance:
        """A read that ends at the latest one attempt's time after ``end_time`` (its retries are cut short)."""
        if self.end_time is None:
            return await read
        if self._attempt_seconds is None:
            self._attempt_seconds = (await poller.hook()).attempt_seconds
        cutoff = read_cutoff(self.end_time, self._attempt_seconds)
        try:
            if _timeout is not None:  # Python 3.11+: a timer on this task instead of a task for each poll
                async with _timeout(cutoff):
                    return await read
            return await asyncio.wait_for(read, timeout=cutoff)
        except asyncio.TimeoutError:
            raise FlowPlatformError(
                "flowinst", "polling", "the poll was still going on at end_time", retryable=True
            ) from None

    async def on_kill(self) -> None:
        """Stop the remote run when a user kills the deferred task (Airflow 3.3+ calls this).

        Only for runs the task started itself (``cancel_on_kill``): a sensor never stops what it watches.
        A triggerer restart or a move to another triggerer does not call this, so nothing is stopped then.
        """
        if not self.cancel_on_kill:
            return
        hook = await aget_hook(self.conn_id)
        self.log.info("The task was killed: stopping %s instance %s", hook.platform, self.instance_id)
        async with shared_session_lease():
            try:
                await hook.astop_run(self.instance_id)
            finally:
                await hook.aclose()  # done with the platform (LSF logs out)


def _event(event: WaitEvent) -> TriggerEvent:
    return TriggerEvent(event.to_dict())


#: How many instance ids an event trigger remembers (newest first); older ones have long left the listing.
CURSOR_SIZE = 1000
CURSOR_KEY_PREFIX = "flowinst_seen:"


class FlowInstanceEventTrigger(BaseEventTrigger):
    """Fires once for each new instance of ``flow`` that reaches one of ``states``: for ``AssetWatcher``.

    ``Asset("...", watchers=[AssetWatcher(name="...", trigger=FlowInstanceEventTrigger(conn_id=..., flow=...))])``
    schedules a DAG whenever the remote flow has a new successful run. Instances already in those states when
    the trigger first looks are the baseline and never fire; each later one fires once, never twice (the ids
    seen are the cursor). On Airflow 3.3+ the cursor is kept in the watched asset's state store, so a triggerer
    restart neither refires nor misses the runs that ended meanwhile; on older 3.x it lives in memory and a
    restart takes a new baseline. Watchers of the same connection, flow and filters share one poll (Airflow
    3.3's shared streams). Polls that fail are logged and retried at the next interval: a watcher never ends.

    Each event's payload holds ``instance_id`` and ``instance`` (the XCom dict, with its graph).

    :param flow: what to watch: an EnOS flow id, an LSF ``owner:flowname``, a DataWorks workflow id or a BPM
        process definition id.
    :param filters: platform list filters, e.g. DataWorks ``project_id`` or ``bizdates``.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        flow: str,
        states: Iterable[str] = (FlowState.SUCCESS.value,),
        poke_interval: float = DEFAULT_POKE_INTERVAL,
        filters: dict[str, Any] | None = None,
        include_graph: bool = True,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.flow = str(flow)
        self.states = FlowState.parse_many(states, argument="states")
        self.poke_interval = float(poke_interval)
        # Sorted, so equal watchers serialise (and hash) equally.
        self.filters = {key: (filters or {})[key] for key in sorted(filters or {})}
        self.include_graph = include_graph
        self._seen: list[str] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "flow": self.flow,
                "states": [state.value for state in self.states],
                "poke_interval": self.poke_interval,
                "filters": self.filters,
                "include_graph": self.include_graph,
            },
        )

    # -- one poll per trigger ------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        snapshots = poll_recent_instances(self.conn_id, self.flow, self.states, self.filters, self.poke_interval)
        # Closed here, inside the lease, when the watcher ends: each stream logs out of its hook (LSF frees the
        # token) while the shared session is still open, not whenever the generators are garbage-collected.
        async with (
            shared_session_lease(),
            aclosing(snapshots),
            aclosing(self.filter_shared_stream(snapshots)) as events,
        ):
            async for event in events:
                yield event

    # -- or one poll shared by every watcher of the same flow (Airflow 3.3+) -------------------------

    def shared_stream_key(self) -> Hashable | None:
        return ("flowinst", self.conn_id, self.flow, json.dumps(self.filters, sort_keys=True, default=str))

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        snapshots = poll_recent_instances(
            kwargs["conn_id"],
            str(kwargs["flow"]),
            tuple(FlowState),
            kwargs.get("filters") or {},
            float(kwargs.get("poke_interval", DEFAULT_POKE_INTERVAL)),
        )
        async with shared_session_lease(), aclosing(snapshots):
            async for snapshot in snapshots:
                yield snapshot

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncGenerator[TriggerEvent, None]:
        hook: FlowPlatformHook[Any] | None = None
        try:
            async for snapshot in shared_stream:
                for instance in await self._fresh(snapshot):
                    try:
                        hook = hook or await aget_hook(self.conn_id)
                        full = await hook.aget_instance(instance.instance_id, include_graph=self.include_graph)
                    except FlowPlatformError as exc:
                        self.log.warning("Could not read new instance %s in full (%s)", instance.instance_id, exc)
                        full = instance
                    self.log.info("%s reached %s: firing", describe(full), full.state.value)
                    yield TriggerEvent({"instance_id": full.instance_id, "instance": full.to_dict()})
        finally:
            if hook is not None:
                await hook.aclose()  # the watcher has ended (LSF logs out)

    # -- the cursor ----------------------------------------------------------------------------------

    async def _fresh(self, snapshot: list[FlowInstance]) -> list[FlowInstance]:
        """The instances of ``snapshot`` in ``states`` not seen before; the first snapshot is the baseline."""
        matching = [instance for instance in snapshot if instance.state in self.states]
        if self._seen is None:
            self._seen = await self._load_cursor()
        if self._seen is None:
            self._seen = [instance.instance_id for instance in matching][:CURSOR_SIZE]
            self.log.info("Baseline: %d instances of %s already in %s", len(self._seen), self.flow, self._state_names)
            await self._save_cursor()
            return []
        known = set(self._seen)
        # One entry per id: a listing may return a row twice (pages shifting under it), it fires once.
        fresh = list({i.instance_id: i for i in matching if i.instance_id not in known}.values())
        if fresh:
            self._seen = ([instance.instance_id for instance in fresh] + self._seen)[:CURSOR_SIZE]
            await self._save_cursor()
        return fresh

    @property
    def _state_names(self) -> str:
        return ", ".join(state.value for state in self.states)

    @property
    def _cursor_key(self) -> str:
        return f"{CURSOR_KEY_PREFIX}{self.conn_id}:{self.flow}:{self._state_names}"

    async def _load_cursor(self) -> list[str] | None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:
            value = await store.aget(self._cursor_key)
        except Exception as exc:  # no single watched asset, or a store this Airflow lacks: stay in memory
            self.log.info("No asset state store for the cursor (%s); it is kept in memory", exc)
            return None
        return [str(item) for item in value] if isinstance(value, list) else None

    async def _save_cursor(self) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None or self._seen is None:
            return
        try:
            await store.aset(self._cursor_key, self._seen)
        except Exception as exc:
            self.log.debug("Could not store the cursor (%s)", exc)


async def poll_recent_instances(
    conn_id: str, flow: str, states: Iterable[FlowState], filters: dict[str, Any], interval: float
) -> AsyncGenerator[list[FlowInstance], None]:
    """Every ``interval`` seconds, the newest instances of ``flow``; a failed poll is logged and skipped."""
    states = tuple(states)
    hook: FlowPlatformHook[Any] | None = None
    failures = 0
    try:
        while True:
            try:
                hook = hook or await aget_hook(conn_id)
                snapshot = await hook.arecent_instances(flow, states, filters)
                failures = 0
            except Exception as exc:  # an event trigger must outlive any outage
                failures += 1
                log.warning("Listing instances of %s failed %d time(s) in a row: %s", flow, failures, exc)
            else:
                yield snapshot
            await asyncio.sleep(interval)
    finally:
        if hook is not None:
            await hook.aclose()  # nobody watches any more (LSF logs out)
