"""Rerunning, in place, the nodes of a remote run that failed: once, and never blindly twice.

A rerun changes the remote side like a start does, so the transport never resends it after a fault that may
have reached the platform (it raises ``RunOutcomeUnknown``). Then the run is looked at, a few times: the
platform shows whether the rerun took (DataWorks: a task instance's RunNumber went up or it left Failure;
LSF: the flow instance runs again or started anew). Took: done. Not seen: the call fails, still as
``RunOutcomeUnknown``, rather than rerun a second time; whoever comes next (the task's retry) reads the run
first and reruns only if it is still in a failure state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from airflow_provider_flowinst.errors import RerunNotSupported, RunOutcomeUnknown
from airflow_provider_flowinst.models import FlowInstance, FlowState
from airflow_provider_flowinst.protocol import Operation, Sleep

log = logging.getLogger(__name__)

#: The states of a run that ended badly: only such a run is rerun.
FAILURE_STATES = frozenset({FlowState.FAILED, FlowState.CANCELLED})
#: Seconds to wait before each look at a run whose rerun had an unclear outcome.
LOOK_DELAYS = (0.0, 2.0, 5.0)
CALL = "rerunning failed nodes"


@dataclass(frozen=True)
class RerunPlan:
    """What one rerun sends, and what the run looked like before it (to tell later whether it took).

    ``node_ids`` are the graph node ids rerun (empty where the platform shows no graph); ``targets`` the ids
    the platform's call takes; ``before`` whatever the platform's own evidence needs (RunNumber per task
    instance, the run's state and times).
    """

    instance_id: str
    node_ids: tuple[str, ...]
    targets: tuple[str, ...]
    before: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class RerunningClient(Protocol):
    """A platform client that can rerun the failed nodes of a run in place."""

    platform: str

    def plan_rerun(self, instance_id: str) -> Operation[RerunPlan]:
        """Read the run; its plan, or ``RerunNotSupported`` when it is not in a failure state (or shows
        nothing to rerun). Only reads."""

    def send_rerun(self, plan: RerunPlan) -> Operation[None]:
        """The platform's rerun call; raises ``RunOutcomeUnknown`` when its answer is lost."""

    def rerun_took_effect(self, plan: RerunPlan) -> Operation[bool]:
        """Whether the platform shows that the rerun of ``plan`` happened. Only reads."""


def require_failure_state(instance: FlowInstance) -> None:
    """``RerunNotSupported`` unless the run ended in a failure state: a running or successful run is never
    touched."""
    if instance.state not in FAILURE_STATES:
        raise RerunNotSupported(
            instance.platform,
            CALL,
            f"instance {instance.instance_id} is {instance.state.value} (platform state {instance.raw_state!r}); "
            "only a run that ended failed or cancelled has failed nodes to rerun",
        )


def look_after_unclear_rerun(
    client: RerunningClient, plan: RerunPlan, unclear: RunOutcomeUnknown, delays: tuple[float, ...] = LOOK_DELAYS
) -> Operation[list[str]]:
    """After a rerun whose answer was lost: the nodes rerun, once the run shows the rerun took;
    ``RunOutcomeUnknown`` when it never does (the rerun is not sent again)."""
    for delay in delays:
        if delay > 0:
            yield Sleep(delay)
        if (yield from client.rerun_took_effect(plan)):
            log.warning("The rerun of %s had an unclear outcome (%s); the run shows it took", plan.instance_id, unclear)
            return list(plan.node_ids)
    raise unclear.after_looking(
        f"The run {plan.instance_id} showed no sign of the rerun after {len(delays)} looks, so it is not sent "
        "again now; the next try reads the run before it reruns anything"
    )
