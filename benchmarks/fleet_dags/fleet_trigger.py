"""The trigger of ``make bench-fleet``'s waits: ``FlowInstanceTrigger``, whose end ends the task in the triggerer.

Airflow 3.3 cannot start a *mapped* task from the triggerer, and a task resumed in a worker costs a worker
process each (about 1.4 s of CPU on this machine): at 2,000 waits the workers, not the triggerers, would be
measured. So each wait is a task of its own started from the triggerer (``start_from_trigger``), and its end
is a ``TaskSuccessEvent`` / ``TaskFailedEvent`` carrying the instance dict as the task's XCom, which the
triggerer writes itself. The polling, batching and failover are the provider's own, unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger


class FleetWaitTrigger(FlowInstanceTrigger):
    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}.{type(self).__name__}", super().serialize()[1]

    async def run(self) -> AsyncIterator[TriggerEvent]:  # type: ignore[override]
        async for event in super().run():
            payload = event.payload
            if payload.get("status") == "success":
                yield TaskSuccessEvent(xcoms={"return_value": payload.get("instance")})
            else:
                yield TaskFailedEvent(xcoms={"return_value": payload})
            return
