"""Deferrable waits on remote instances, run by Airflow's triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import aget_hook
from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.models import FlowInstance, FlowState
from airflow_provider_flowinst.transport import shared_session_lease

DEFAULT_POKE_INTERVAL = 60.0
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10


class FlowInstanceTrigger(BaseTrigger):
    """Polls one remote instance until it reaches a success or failure state, or ``end_time`` passes.

    It yields a single event ``{"status": "success" | "failure" | "timeout" | "error", "instance": dict or
    None, "message": str}``. Transient platform faults are retried by the transport; only
    ``max_consecutive_failures`` polls failing in a row end the wait with an ``error`` event, so a passing
    outage never fails a long wait. Its serialised kwargs are ids and settings, never a secret.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        instance_id: str,
        success_states: Iterable[str] = (FlowState.SUCCESS.value,),
        failure_states: Iterable[str] = (FlowState.FAILED.value, FlowState.CANCELLED.value),
        include_graph: bool = True,
        fail_if_missing: bool = False,
        poke_interval: float = DEFAULT_POKE_INTERVAL,
        end_time: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.instance_id = instance_id
        self.success_states = FlowState.parse_many(success_states, argument="success_states")
        self.failure_states = FlowState.parse_many(failure_states, argument="failure_states")
        self.include_graph = include_graph
        self.fail_if_missing = fail_if_missing
        self.poke_interval = float(poke_interval)
        self.end_time = end_time
        self.max_consecutive_failures = max(1, int(max_consecutive_failures))
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "instance_id": self.instance_id,
                "success_states": [state.value for state in self.success_states],
                "failure_states": [state.value for state in self.failure_states],
                "include_graph": self.include_graph,
                "fail_if_missing": self.fail_if_missing,
                "poke_interval": self.poke_interval,
                "end_time": self.end_time,
                "max_consecutive_failures": self.max_consecutive_failures,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with shared_session_lease():
            async for event in self._poll():
                yield event
                return

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        hook: FlowPlatformHook[Any] | None = None
        failures = 0
        last: FlowInstance | None = None
        while True:
            try:
                if hook is None:
                    hook = await aget_hook(self.conn_id)
                last = await hook.aget_instance(self.instance_id, include_graph=self.include_graph)
                failures = 0
            except FlowInstanceNotFound as exc:
                if self.fail_if_missing:
                    yield self._event("error", None, f"{exc}; fail_if_missing is set")
                    return
                self.log.info("Instance %s does not exist yet; waiting for it", self.instance_id)
            except FlowPlatformError as exc:
                failures += 1
                if not exc.retryable or failures >= self.max_consecutive_failures:
                    yield self._event("error", last, self._failure_message(exc, failures))
                    return
                self.log.warning("Poll %d failed (%s); will poll again", failures, exc)
            except Exception as exc:  # never let a trigger die with a bare traceback: report it as an event
                yield self._event("error", last, f"unexpected {type(exc).__name__} while polling: {exc}")
                return
            else:
                if last.state in self.success_states:
                    yield self._event("success", last, f"{describe(last)} reached {last.state.value}")
                    return
                if last.state in self.failure_states:
                    yield self._event("failure", last, f"{describe(last)} ended {last.state.value}")
                    return
                self.log.info("%s is %s (%s)", describe(last), last.state.value, last.raw_state)
            remaining = None if self.end_time is None else self.end_time - time.time()
            if remaining is not None and remaining <= 0:
                seen = f"last seen {last.state.value}" if last else "never seen"
                yield self._event("timeout", last, f"timed out waiting for instance {self.instance_id} ({seen})")
                return
            await asyncio.sleep(self.poke_interval if remaining is None else min(self.poke_interval, remaining))

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
            await hook.astop_run(self.instance_id)

    def _failure_message(self, exc: FlowPlatformError, failures: int) -> str:
        if exc.retryable:
            return f"{exc} ({failures} polls in a row failed)"
        return str(exc)

    def _event(self, status: str, instance: FlowInstance | None, message: str) -> TriggerEvent:
        return TriggerEvent(
            {"status": status, "instance": None if instance is None else instance.to_dict(), "message": message}
        )


def describe(instance: FlowInstance) -> str:
    return f"{instance.platform} instance {instance.instance_id}"
